//! Writes to mailbox items: add (messages of the primary mailbox go where the mail endpoints
//! see them), replace, move, delete, per-item export failures and expiring delta tokens. Every
//! write takes the tenant's next change number.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::super::graph::mail;
use super::super::record::{self, Content, ItemRecord};
use super::super::state::{ItemsOverlay, StoredItem, Tenant, TenantState, mail_kind};
use super::{ItemKey, MailboxKind, MailboxRef, generated_count, summary};

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
