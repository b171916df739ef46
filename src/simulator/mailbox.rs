//! A user's mailboxes as the mailbox import/export API sees them: the primary mailbox (mail
//! folders plus Calendar, Contacts, Tasks and Notes), the in-place archive and its auxiliary
//! (auto-expanded) archive. It owns mailbox ids (`MBX:{mailbox guid}@{tenant guid}`), folder and
//! item ids, the folder layouts, which items live where, and every change to an item (add,
//! update, move, delete, import). Messages of the primary mailbox stay in the mail overlay so the
//! message endpoints and this API see one item under one id. It must never speak HTTP.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::generate::{self, FOLDERS, folder};
use super::graph::mail;
use super::pim;
use super::record::{self, Content, ItemRecord};
use super::state::{ItemsOverlay, StoredItem, Tenant, TenantState, mail_kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxKind {
    Primary,
    Archive,
    Auxiliary,
}

impl MailboxKind {
    fn tag(self) -> u8 {
        match self {
            MailboxKind::Primary => 1,
            MailboxKind::Archive => 2,
            MailboxKind::Auxiliary => 3,
        }
    }
}

/// One mailbox of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxRef {
    pub user: u32,
    pub kind: MailboxKind,
}

/// `MBX:{guid}@{tenant id}`: the guid carries the user and the mailbox kind, checked by a hash.
pub fn mailbox_id(tenant: &Tenant, mailbox: MailboxRef) -> String {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&mailbox.user.to_be_bytes());
    bytes[4] = mailbox.kind.tag();
    let check = generate::hash(&[
        tenant.spec.seed,
        200,
        tenant.index as u64,
        mailbox.user as u64,
        mailbox.kind.tag() as u64,
    ]);
    bytes[8..].copy_from_slice(&check.to_be_bytes());
    format!("MBX:{}@{}", Uuid::from_bytes(bytes), tenant.id)
}

/// A mailbox id of this tenant (another tenant's id is not found here).
pub fn parse_mailbox_id(tenant: &Tenant, id: &str) -> Option<MailboxRef> {
    let (guid, tenant_part) = id.strip_prefix("MBX:")?.split_once('@')?;
    if !tenant_part.eq_ignore_ascii_case(&tenant.id.to_string()) {
        return None;
    }
    let bytes = Uuid::parse_str(guid).ok()?.into_bytes();
    let user = u32::from_be_bytes(bytes[..4].try_into().ok()?);
    let kind = match bytes[4] {
        1 => MailboxKind::Primary,
        2 => MailboxKind::Archive,
        3 => MailboxKind::Auxiliary,
        _ => return None,
    };
    let mailbox = MailboxRef { user, kind };
    (mailbox_id(tenant, mailbox).eq_ignore_ascii_case(id)).then_some(mailbox)
}

/// Whether the user has this mailbox at all (archives exist for some generated users only).
pub fn exists(tenant: &Tenant, state: &TenantState, mailbox: MailboxRef) -> bool {
    let generated = mailbox.user < tenant.spec.users.max(1)
        && state
            .users
            .get(mailbox.user as usize)
            .is_some_and(|u| u.generated_messages > 0);
    match mailbox.kind {
        MailboxKind::Primary => (mailbox.user as usize) < state.users.len(),
        MailboxKind::Archive => generated && pim::has_archive(mailbox.user),
        MailboxKind::Auxiliary => generated && pim::has_auxiliary_archive(mailbox.user),
    }
}

// ---------------------------------------------------------------------------------------------
// Folders

pub const CALENDAR: u16 = 20;
pub const CONTACTS: u16 = 21;
pub const TASKS: u16 = 22;
pub const NOTES: u16 = 23;
const ARCHIVE_2024: u16 = 30;
/// The archive folder whose content lives in the auxiliary archive (an "expanded folder").
pub const EXPANDED: u16 = 31;

/// Non-mail folders of the primary mailbox: (key, name, well-known name, class).
const PIM_FOLDERS: &[(u16, &str, &str, &str)] = &[
    (CALENDAR, "Calendar", "calendar", "IPF.Appointment"),
    (CONTACTS, "Contacts", "contacts", "IPF.Contact"),
    (TASKS, "Tasks", "tasks", "IPF.Task"),
    (NOTES, "Notes", "notes", "IPF.StickyNote"),
];

/// Folders of the archive: (key, parent, name). Well-known names are not served for archives.
const ARCHIVE_FOLDERS: &[(u16, u16, &str)] = &[
    (folder::ROOT, folder::ROOT, "Top of Information Store"),
    (folder::INBOX, folder::ROOT, "Inbox"),
    (folder::SENT, folder::ROOT, "Sent Items"),
    (folder::DELETED, folder::ROOT, "Deleted Items"),
    (ARCHIVE_2024, folder::ROOT, "2024"),
    (EXPANDED, folder::ROOT, "2023"),
];

#[derive(Debug, Clone)]
pub struct Folder {
    pub key: u16,
    pub parent: u16,
    pub name: String,
    pub well_known: Option<&'static str>,
    pub class: &'static str,
}

/// Every folder of a mailbox, the root included.
pub fn folders(state: &TenantState, mailbox: MailboxRef) -> Vec<Folder> {
    match mailbox.kind {
        MailboxKind::Primary => {
            let mut out: Vec<Folder> = FOLDERS
                .iter()
                .map(|&(key, parent, name, well_known, _)| Folder {
                    key,
                    parent,
                    name: name.to_owned(),
                    well_known,
                    class: "IPF.Note",
                })
                .collect();
            if let Some(overlay) = state.mailboxes.get(&mailbox.user) {
                out.extend(
                    overlay
                        .created_folders
                        .iter()
                        .filter(|f| !f.deleted)
                        .map(|f| Folder {
                            key: f.key,
                            parent: f.parent,
                            name: f.display_name.clone(),
                            well_known: None,
                            class: "IPF.Note",
                        }),
                );
            }
            out.extend(
                PIM_FOLDERS
                    .iter()
                    .map(|&(key, name, well_known, class)| Folder {
                        key,
                        parent: folder::ROOT,
                        name: name.to_owned(),
                        well_known: Some(well_known),
                        class,
                    }),
            );
            out
        }
        MailboxKind::Archive | MailboxKind::Auxiliary => ARCHIVE_FOLDERS
            .iter()
            .filter(|(key, ..)| {
                let in_auxiliary = *key == folder::ROOT || *key == EXPANDED;
                mailbox.kind == MailboxKind::Archive
                    && (*key != EXPANDED || pim::has_auxiliary_archive(mailbox.user))
                    || mailbox.kind == MailboxKind::Auxiliary && in_auxiliary
            })
            .map(|&(key, parent, name)| Folder {
                key,
                parent,
                name: name.to_owned(),
                well_known: None,
                class: "IPF.Note",
            })
            .collect(),
    }
}

/// Folder ids: the primary mailbox's mail folders keep the ids `mailFolders` gives them.
pub fn folder_id(tenant: &Tenant, mailbox: MailboxRef, key: u16) -> String {
    let kind = match mailbox.kind {
        MailboxKind::Primary => mail_kind::FOLDER,
        MailboxKind::Archive | MailboxKind::Auxiliary => mail_kind::ARCHIVE_FOLDER,
    };
    tenant.mail_id(kind, mailbox.user, key as u32, 0)
}

/// A folder of the mailbox by id (or, for the primary mailbox, by well-known name).
pub fn find_folder(
    tenant: &Tenant,
    state: &TenantState,
    mailbox: MailboxRef,
    id: &str,
) -> Option<Folder> {
    let all = folders(state, mailbox);
    if mailbox.kind == MailboxKind::Primary
        && let Some(found) = all
            .iter()
            .find(|f| f.well_known.is_some_and(|w| w.eq_ignore_ascii_case(id)))
    {
        return Some(found.clone());
    }
    all.into_iter()
        .find(|f| folder_id(tenant, mailbox, f.key) == id)
}

/// Whether a folder of the main archive physically lives in the auxiliary archive.
pub fn is_expanded(mailbox: MailboxRef, key: u16) -> bool {
    mailbox.kind == MailboxKind::Archive
        && key == EXPANDED
        && pim::has_auxiliary_archive(mailbox.user)
}

// ---------------------------------------------------------------------------------------------
// Items

/// An item of a user's mailboxes: its `mail_kind` and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    pub kind: u8,
    pub key: u32,
}

const PRIMARY_KINDS: [u8; 5] = [
    mail_kind::IMMUTABLE_MESSAGE,
    mail_kind::EVENT,
    mail_kind::CONTACT,
    mail_kind::TASK,
    mail_kind::NOTE,
];

/// An item's id: messages use their immutable id, which the message endpoints accept too.
pub fn item_id(tenant: &Tenant, user: u32, item: ItemKey) -> String {
    tenant.mail_id(item.kind, user, item.key, 0)
}

/// An item id of this user's mailboxes (a regular message id is accepted for messages).
pub fn parse_item_id(tenant: &Tenant, user: u32, id: &str) -> Option<ItemKey> {
    let (kind, owner, key, moves) = tenant.parse_mail_id(id)?;
    if owner != user {
        return None;
    }
    let kind = match kind {
        mail_kind::MESSAGE => mail_kind::IMMUTABLE_MESSAGE,
        kind if kind == mail_kind::ARCHIVE_ITEM || PRIMARY_KINDS.contains(&kind) => {
            if moves != 0 {
                return None;
            }
            kind
        }
        _ => return None,
    };
    Some(ItemKey { kind, key })
}

fn generated_count(tenant: &Tenant, state: &TenantState, user: u32, kind: u8) -> u32 {
    let Some(owner) = state.users.get(user as usize) else {
        return 0;
    };
    let messages = owner.generated_messages;
    let counts = pim::counts(messages);
    match kind {
        mail_kind::EVENT => counts.events,
        mail_kind::CONTACT => counts.contacts,
        mail_kind::TASK => counts.tasks,
        mail_kind::NOTE => counts.notes,
        mail_kind::ARCHIVE_ITEM
            if exists(
                tenant,
                state,
                MailboxRef {
                    user,
                    kind: MailboxKind::Archive,
                },
            ) =>
        {
            pim::archive_count(messages)
        }
        _ => 0,
    }
}

fn generated_folder(tenant: &Tenant, user: u32, item: ItemKey) -> u16 {
    match item.kind {
        mail_kind::EVENT => CALENDAR,
        mail_kind::CONTACT => CONTACTS,
        mail_kind::TASK => TASKS,
        mail_kind::NOTE => NOTES,
        _ => match generate::hash(&[tenant.spec.seed, 341, user as u64, item.key as u64]) % 10 {
            0..=3 => folder::INBOX,
            4..=5 => folder::SENT,
            6..=7 => ARCHIVE_2024,
            _ if pim::has_auxiliary_archive(user) => EXPANDED,
            _ => ARCHIVE_2024,
        },
    }
}

fn generated_record(tenant: &Tenant, state: &TenantState, user: u32, item: ItemKey) -> ItemRecord {
    let ctx = tenant.mailbox_context(state, user);
    match item.kind {
        mail_kind::EVENT => pim::event(&ctx, item.key),
        mail_kind::CONTACT => pim::contact(&ctx, item.key),
        mail_kind::TASK => pim::task(&ctx, item.key),
        mail_kind::NOTE => pim::note(&ctx, item.key),
        _ => {
            let meta = pim::archived_message(&ctx, item.key);
            record::from_message(tenant.spec.seed, &meta, meta.received)
        }
    }
}

/// Which mailbox holds items of `kind` in folder `folder` for this user.
fn holds(mailbox: MailboxRef, kind: u8, folder: u16) -> bool {
    match mailbox.kind {
        MailboxKind::Primary => kind != mail_kind::ARCHIVE_ITEM,
        MailboxKind::Archive => kind == mail_kind::ARCHIVE_ITEM && !is_expanded(mailbox, folder),
        MailboxKind::Auxiliary => kind == mail_kind::ARCHIVE_ITEM && folder == EXPANDED,
    }
}

fn kinds(mailbox: MailboxRef) -> &'static [u8] {
    match mailbox.kind {
        MailboxKind::Primary => &PRIMARY_KINDS,
        MailboxKind::Archive | MailboxKind::Auxiliary => &[mail_kind::ARCHIVE_ITEM],
    }
}

/// An item as it is now, with what the listing needs; `record` builds the full content.
#[derive(Debug, Clone)]
pub struct ItemSummary {
    pub item: ItemKey,
    pub folder: u16,
    pub class: &'static str,
    pub categories: Vec<String>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub size: u64,
    pub change_key: String,
}

fn change_key(item: ItemKey, version: u64) -> String {
    if item.kind == mail_kind::IMMUTABLE_MESSAGE {
        return mail::change_key(version, item.key);
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(
        [
            b"CQAAABYAAAA".as_slice(),
            &version.to_be_bytes(),
            &[item.kind],
            &item.key.to_be_bytes(),
        ]
        .concat(),
    )
}

fn stored(state: &TenantState, user: u32, item: ItemKey) -> Option<&StoredItem> {
    state.items.get(&user)?.items.get(&(item.kind, item.key))
}

/// The live item `item` of the user (in whichever of their mailboxes).
pub fn summary(
    tenant: &Tenant,
    state: &TenantState,
    user: u32,
    item: ItemKey,
) -> Option<ItemSummary> {
    if item.kind == mail_kind::IMMUTABLE_MESSAGE {
        let view = mail::message_view(tenant, state, user, item.key)?;
        let version = view.state.as_ref().map_or(0, |s| s.version);
        return Some(ItemSummary {
            item,
            folder: view.folder,
            class: "IPM.Note",
            categories: view.meta.categories.clone(),
            created: view.meta.received,
            modified: view
                .state
                .as_ref()
                .map_or(view.meta.received, |s| s.modified),
            size: record::approximate_message_size(tenant.spec.seed, &view.meta),
            change_key: change_key(item, version),
        });
    }
    let generated = item.key < generated_count(tenant, state, user, item.kind);
    let entry = stored(state, user, item);
    if entry.is_some_and(|s| s.deleted) || entry.is_none_or(|s| s.record.is_none()) && !generated {
        return None;
    }
    let folder = entry.map_or_else(|| generated_folder(tenant, user, item), |s| s.folder);
    let version = entry.map_or(0, |s| s.version);
    let (class, categories, created, modified, size) = match entry.and_then(|s| s.record.clone()) {
        Some(record) => (
            record.content.class(),
            record.categories.clone(),
            record.created,
            record.modified,
            serde_json::to_vec(&record.content).map_or(0, |v| v.len() as u64) + 512,
        ),
        // Archived mail is summarised without materialising its attachments.
        None if item.kind == mail_kind::ARCHIVE_ITEM => {
            let meta = pim::archived_message(&tenant.mailbox_context(state, user), item.key);
            (
                "IPM.Note",
                meta.categories.clone(),
                meta.received,
                meta.received,
                record::approximate_message_size(tenant.spec.seed, &meta),
            )
        }
        None => {
            let record = generated_record(tenant, state, user, item);
            (
                record.content.class(),
                record.categories.clone(),
                record.created,
                record.modified,
                serde_json::to_vec(&record.content).map_or(0, |v| v.len() as u64) + 512,
            )
        }
    };
    Some(ItemSummary {
        item,
        folder,
        class,
        categories,
        created,
        modified: entry.map_or(modified, |s| s.modified),
        size,
        change_key: change_key(item, version),
    })
}

/// The full content of a live item (what `exportItems` encodes).
pub fn full_record(
    tenant: &Tenant,
    state: &TenantState,
    user: u32,
    item: ItemKey,
) -> Option<ItemRecord> {
    if item.kind == mail_kind::IMMUTABLE_MESSAGE {
        let view = mail::message_view(tenant, state, user, item.key)?;
        let modified = view
            .state
            .as_ref()
            .map_or(view.meta.received, |s| s.modified);
        return Some(record::from_message(tenant.spec.seed, &view.meta, modified));
    }
    let summary = summary(tenant, state, user, item)?;
    let mut record = match stored(state, user, item).and_then(|s| s.record.clone()) {
        Some(record) => record.as_ref().clone(),
        None => generated_record(tenant, state, user, item),
    };
    record.modified = summary.modified;
    Some(record)
}

/// Live items of one folder of a mailbox, in (kind, key) order, without building content for
/// messages.
pub fn folder_items(
    tenant: &Tenant,
    state: &TenantState,
    mailbox: MailboxRef,
    folder: u16,
) -> Vec<ItemKey> {
    let user = mailbox.user;
    let mut out = Vec::new();
    for &kind in kinds(mailbox) {
        if !holds(mailbox, kind, folder) {
            continue;
        }
        if kind == mail_kind::IMMUTABLE_MESSAGE {
            out.extend(
                mail::message_keys(tenant, state, user)
                    .into_iter()
                    .filter(|(_, f, _)| *f == folder)
                    .map(|(key, ..)| ItemKey { kind, key }),
            );
            continue;
        }
        let overlay = state.items.get(&user);
        let generated = generated_count(tenant, state, user, kind);
        for key in 0..generated {
            let item = ItemKey { kind, key };
            let here = match overlay.and_then(|o| o.items.get(&(kind, key))) {
                Some(s) => !s.deleted && s.folder == folder,
                None => generated_folder(tenant, user, item) == folder,
            };
            if here {
                out.push(item);
            }
        }
        if let Some(overlay) = overlay {
            let mut added: Vec<ItemKey> = overlay
                .items
                .iter()
                .filter(|((k, key), s)| {
                    *k == kind && *key >= generated && !s.deleted && s.folder == folder
                })
                .map(|((k, key), _)| ItemKey {
                    kind: *k,
                    key: *key,
                })
                .collect();
            added.sort();
            out.extend(added);
        }
    }
    out
}

/// A change recorded since a delta token: where the item is now and which folders it left.
pub struct Change {
    pub item: ItemKey,
    pub folder: u16,
    pub deleted: bool,
    pub left: Vec<(u16, u64)>,
}

/// Items of a mailbox changed with a change number in `(since, upto]`, in (kind, key) order.
pub fn changes(state: &TenantState, mailbox: MailboxRef, since: u64, upto: u64) -> Vec<Change> {
    let user = mailbox.user;
    let in_range = |v: u64| v > since && v <= upto;
    let mut out: Vec<Change> = Vec::new();
    if mailbox.kind == MailboxKind::Primary
        && let Some(overlay) = state.mailboxes.get(&user)
    {
        out.extend(
            overlay
                .messages
                .iter()
                .filter(|(_, m)| in_range(m.version))
                .map(|(key, m)| Change {
                    item: ItemKey {
                        kind: mail_kind::IMMUTABLE_MESSAGE,
                        key: *key,
                    },
                    folder: m.folder,
                    deleted: m.deleted,
                    left: m.left.clone(),
                }),
        );
    }
    if let Some(overlay) = state.items.get(&user) {
        out.extend(
            overlay
                .items
                .iter()
                .filter(|((kind, _), s)| kinds(mailbox).contains(kind) && in_range(s.version))
                .map(|((kind, key), s)| Change {
                    item: ItemKey {
                        kind: *kind,
                        key: *key,
                    },
                    folder: s.folder,
                    deleted: s.deleted,
                    left: s.left.clone(),
                }),
        );
    }
    out.sort_by_key(|c| c.item);
    out
}

/// Whether a change concerns folder `folder` of `mailbox` (the item is or was there).
pub fn holds_change(mailbox: MailboxRef, change: &Change) -> bool {
    holds(mailbox, change.item.kind, change.folder)
        || change
            .left
            .iter()
            .any(|(f, _)| holds(mailbox, change.item.kind, *f))
}

// ---------------------------------------------------------------------------------------------
// Changes

fn overlay(state: &mut TenantState, user: u32) -> &mut ItemsOverlay {
    state.items.entry(user).or_default()
}

/// Stores a changed non-message item (taking the next change number).
fn store_item(
    tenant: &Tenant,
    state: &mut TenantState,
    user: u32,
    item: ItemKey,
    now: DateTime<Utc>,
    update: impl FnOnce(&mut StoredItem),
) -> bool {
    let Some(base) = summary(tenant, state, user, item) else {
        return false;
    };
    let version = state.bump();
    let entry = overlay(state, user)
        .items
        .entry((item.kind, item.key))
        .or_insert_with(|| StoredItem {
            folder: base.folder,
            record: None,
            deleted: false,
            version,
            left: Vec::new(),
            modified: now,
        });
    entry.version = version;
    entry.modified = now;
    update(entry);
    true
}

/// Adds an item to a folder; messages of the primary mailbox go where the mail endpoints see
/// them. Returns the new item's key.
pub fn add(
    tenant: &Tenant,
    state: &mut TenantState,
    mailbox: MailboxRef,
    folder: u16,
    record: ItemRecord,
    now: DateTime<Utc>,
) -> Option<ItemKey> {
    let user = mailbox.user;
    let kind = match (&record.content, mailbox.kind) {
        (_, MailboxKind::Archive | MailboxKind::Auxiliary) => mail_kind::ARCHIVE_ITEM,
        (Content::Message(message), MailboxKind::Primary) => {
            let meta = record::to_message(&record, message);
            let key = mail::add_message(state, user, folder, meta, None, now)?;
            return Some(ItemKey {
                kind: mail_kind::IMMUTABLE_MESSAGE,
                key,
            });
        }
        (Content::Event(_), _) => mail_kind::EVENT,
        (Content::Contact(_), _) => mail_kind::CONTACT,
        (Content::Task(_), _) => mail_kind::TASK,
        (Content::Note(_), _) => mail_kind::NOTE,
    };
    let generated = generated_count(tenant, state, user, kind);
    let version = state.bump();
    let overlay = overlay(state, user);
    let key = overlay
        .next_keys
        .get(&kind)
        .copied()
        .unwrap_or(generated)
        .max(generated);
    overlay.next_keys.insert(kind, key + 1);
    overlay.items.insert(
        (kind, key),
        StoredItem {
            folder,
            record: Some(Arc::new(record)),
            deleted: false,
            version,
            left: Vec::new(),
            modified: now,
        },
    );
    Some(ItemKey { kind, key })
}

/// Replaces an item's content (import `update`, control API changes). False if it is gone.
pub fn replace(
    tenant: &Tenant,
    state: &mut TenantState,
    user: u32,
    item: ItemKey,
    record: ItemRecord,
    now: DateTime<Utc>,
) -> bool {
    if item.kind == mail_kind::IMMUTABLE_MESSAGE {
        let Content::Message(message) = &record.content else {
            return false;
        };
        let meta = record::to_message(&record, message);
        return mail::store_message(tenant, state, user, item.key, now, |e| {
            e.meta = Some(Arc::new(meta));
            e.mime = None;
        })
        .is_some();
    }
    let expected = match &record.content {
        Content::Message(_) => mail_kind::ARCHIVE_ITEM,
        Content::Event(_) => mail_kind::EVENT,
        Content::Contact(_) => mail_kind::CONTACT,
        Content::Task(_) => mail_kind::TASK,
        Content::Note(_) => mail_kind::NOTE,
    };
    if item.kind != mail_kind::ARCHIVE_ITEM && item.kind != expected {
        return false;
    }
    store_item(tenant, state, user, item, now, |e| {
        e.record = Some(Arc::new(record))
    })
}

/// Moves an item to another folder of the same mailbox; its id stays.
pub fn move_to(
    tenant: &Tenant,
    state: &mut TenantState,
    user: u32,
    item: ItemKey,
    target: u16,
    now: DateTime<Utc>,
) -> bool {
    if item.kind == mail_kind::IMMUTABLE_MESSAGE {
        let Some(view) = mail::message_view(tenant, state, user, item.key) else {
            return false;
        };
        return mail::move_message(tenant, state, user, view, target, now).is_some();
    }
    let Some(current) = summary(tenant, state, user, item) else {
        return false;
    };
    if current.folder == target {
        return true;
    }
    let seq = state.seq + 1;
    store_item(tenant, state, user, item, now, |e| {
        e.left.push((current.folder, seq));
        e.folder = target;
    })
}

/// Deletes an item permanently (delta reports it removed).
pub fn delete(
    tenant: &Tenant,
    state: &mut TenantState,
    user: u32,
    item: ItemKey,
    now: DateTime<Utc>,
) -> bool {
    if item.kind == mail_kind::IMMUTABLE_MESSAGE {
        return mail::store_message(tenant, state, user, item.key, now, |e| e.deleted = true)
            .is_some();
    }
    store_item(tenant, state, user, item, now, |e| e.deleted = true)
}

/// Makes an item's export fail (or succeed again).
pub fn set_export_failure(state: &mut TenantState, user: u32, item_id: &str, fail: bool) {
    let failures = &mut overlay(state, user).export_failures;
    if fail {
        failures.insert(item_id.to_owned());
    } else {
        failures.remove(item_id);
    }
}

pub fn export_fails(state: &TenantState, user: u32, item_id: &str) -> bool {
    state
        .items
        .get(&user)
        .is_some_and(|o| o.export_failures.contains(item_id))
}

/// Expires every mailbox API delta token of the user's mailboxes.
pub fn expire_delta_tokens(state: &mut TenantState, user: u32) -> u64 {
    let seq = state.bump();
    overlay(state, user).resync_floor = seq;
    seq
}

pub fn resync_floor(state: &TenantState, user: u32) -> u64 {
    state.items.get(&user).map_or(0, |o| o.resync_floor)
}
