//! Which items live in which folder of which mailbox, their ids, summaries (what a listing
//! shows), full records (what an export encodes) and the changes a delta reports. Generated
//! items are computed on demand; only changed ones are stored.

use chrono::{DateTime, Utc};

use super::super::generate::{self, folder};
use super::super::graph::mail;
use super::super::pim;
use super::super::record::{self, ItemRecord};
use super::super::state::{StoredItem, Tenant, TenantState, mail_kind};
use super::{
    ARCHIVE_2024, CALENDAR, CONTACTS, EXPANDED, MailboxKind, MailboxRef, NOTES, TASKS, exists,
    is_expanded,
};

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

pub(super) fn generated_count(tenant: &Tenant, state: &TenantState, user: u32, kind: u8) -> u32 {
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
