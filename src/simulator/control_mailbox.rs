//! Control API for mailbox items of every type (`/_sim/tenants/{t}/users/{u}/mailbox/...`):
//! changes "made by the user in Outlook" to messages, events, contacts, tasks, notes and
//! archived mail (add, change, move, delete), a per-item export failure, and expiring the
//! mailbox import/export API's delta tokens. It changes items only through `mailbox`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::generate::{self, MailboxContext};
use super::generate::{MailAddress, MessageMeta};
use super::mailbox::{self, ItemKey, MailboxKind, MailboxRef};
use super::pim;
use super::record::{Content, ItemRecord};
use super::state::{Found, Tenant, TenantState, mail_kind, read, write};

/// A control failure: HTTP status and message (rendered by `control`).
pub type Failure = (u16, String);

fn fail(status: u16, message: &str) -> Failure {
    (status, message.to_owned())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewItem {
    /// `message`, `event`, `contact`, `task` or `note`.
    #[serde(rename = "type")]
    kind: String,
    /// Folder id or well-known name; the type's default folder if absent.
    folder: Option<String>,
    /// Put it in the in-place archive (messages only).
    #[serde(default)]
    archive: bool,
    subject: Option<String>,
    body: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    is_read: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ItemChange {
    subject: Option<String>,
    categories: Option<Vec<String>>,
    is_read: Option<bool>,
    flagged: Option<bool>,
}

fn user_index(state: &TenantState, key: &str) -> Result<u32, Failure> {
    match state.find_user(key) {
        Found::Active(i) => Ok(i),
        _ => Err(fail(404, "user was not found.")),
    }
}

fn mailbox_of(user: u32, item: ItemKey) -> MailboxRef {
    MailboxRef {
        user,
        kind: if item.kind == mail_kind::ARCHIVE_ITEM {
            MailboxKind::Archive
        } else {
            MailboxKind::Primary
        },
    }
}

fn template(
    ctx: &MailboxContext,
    kind: &str,
    owner: &MailAddress,
    now: DateTime<Utc>,
) -> Result<ItemRecord, Failure> {
    let n = generate::hash(&[now.timestamp_nanos_opt().unwrap_or(0) as u64, 500]) as u32 % 10_000;
    let mut record = match kind {
        "event" => pim::event(ctx, n),
        "contact" => pim::contact(ctx, n),
        "task" => pim::task(ctx, n),
        "note" => pim::note(ctx, n),
        "message" => ItemRecord {
            created: now,
            modified: now,
            categories: Vec::new(),
            content: Content::Message(MessageMeta {
                subject: "Simulated message".to_owned(),
                from: MailAddress {
                    name: "Northwind Traders".to_owned(),
                    address: "orders@northwindtraders.example".to_owned(),
                },
                to: vec![owner.clone()],
                cc: Vec::new(),
                received: now,
                sent: now,
                body_html: String::new(),
                body_text: String::new(),
                internet_message_id: format!("<{n:08x}@northwindtraders.example>"),
                conversation_id: n as u64,
                in_reply_to: None,
                is_read: false,
                is_draft: false,
                importance: "normal".to_owned(),
                flagged: false,
                categories: Vec::new(),
                attachments: Vec::new(),
            }),
        },
        _ => {
            return Err(fail(
                400,
                "type must be message, event, contact, task or note",
            ));
        }
    };
    record.created = now;
    record.modified = now;
    Ok(record)
}

/// Applies a change to a record's content.
fn edit(record: &mut ItemRecord, change: &ItemChange) {
    if let Some(categories) = &change.categories {
        record.categories = categories.clone();
    }
    match &mut record.content {
        Content::Message(m) => {
            if let Some(subject) = &change.subject {
                m.subject = subject.clone();
            }
            if let Some(read) = change.is_read {
                m.is_read = read;
            }
            if let Some(flagged) = change.flagged {
                m.flagged = flagged;
            }
        }
        Content::Event(e) => {
            if let Some(subject) = &change.subject {
                e.subject = subject.clone();
            }
        }
        Content::Contact(c) => {
            if let Some(subject) = &change.subject {
                c.display_name = subject.clone();
            }
        }
        Content::Task(t) => {
            if let Some(subject) = &change.subject {
                t.subject = subject.clone();
            }
        }
        Content::Note(n) => {
            if let Some(subject) = &change.subject {
                n.text = subject.clone();
            }
        }
    }
}

fn default_folder(kind: &str) -> &'static str {
    match kind {
        "event" => "calendar",
        "contact" => "contacts",
        "task" => "tasks",
        "note" => "notes",
        _ => "inbox",
    }
}

pub fn add_item(
    tenant: &Tenant,
    user_key: &str,
    new: NewItem,
    now: DateTime<Utc>,
) -> Result<Value, Failure> {
    let mut state = write(&tenant.state);
    let user = user_index(&state, user_key)?;
    let mb = MailboxRef {
        user,
        kind: if new.archive {
            MailboxKind::Archive
        } else {
            MailboxKind::Primary
        },
    };
    if !mailbox::exists(tenant, &state, mb) {
        return Err(fail(404, "the user has no such mailbox"));
    }
    let ctx = tenant.mailbox_context(&state, user);
    let owner = ctx.owner.clone();
    let mut record = template(&ctx, &new.kind, &owner, now)?;
    edit(
        &mut record,
        &ItemChange {
            subject: new.subject.clone(),
            categories: Some(new.categories.clone()),
            is_read: Some(new.is_read),
            flagged: None,
        },
    );
    if let (Some(body), Content::Message(m)) = (&new.body, &mut record.content) {
        m.body_text = body.clone();
        m.body_html = format!(
            "<html><body><p>{}</p></body></html>",
            generate::html_escape(body)
        );
    }
    let folder_name = new.folder.as_deref().unwrap_or(if new.archive {
        ""
    } else {
        default_folder(&new.kind)
    });
    let folder = if new.archive && new.folder.is_none() {
        mailbox::folders(&state, mb)
            .into_iter()
            .find(|f| f.name == "Inbox")
    } else {
        mailbox::find_folder(tenant, &state, mb, folder_name)
    }
    .ok_or_else(|| fail(404, "folder was not found."))?;
    let item = mailbox::add(tenant, &mut state, mb, folder.key, record, now)
        .ok_or_else(|| fail(404, "user was not found."))?;
    Ok(json!({
        "id": mailbox::item_id(tenant, user, item),
        "mailboxId": mailbox::mailbox_id(tenant, mb),
        "folderId": mailbox::folder_id(tenant, mb, folder.key),
    }))
}

fn find_item(
    tenant: &Tenant,
    state: &TenantState,
    user_key: &str,
    id: &str,
) -> Result<(u32, ItemKey), Failure> {
    let user = user_index(state, user_key)?;
    let item = mailbox::parse_item_id(tenant, user, id)
        .filter(|item| mailbox::summary(tenant, state, user, *item).is_some())
        .ok_or_else(|| fail(404, "item was not found."))?;
    Ok((user, item))
}

pub fn change_item(
    tenant: &Tenant,
    user_key: &str,
    id: &str,
    change: ItemChange,
    now: DateTime<Utc>,
) -> Result<Value, Failure> {
    let mut state = write(&tenant.state);
    let (user, item) = find_item(tenant, &state, user_key, id)?;
    let mut record = mailbox::full_record(tenant, &state, user, item)
        .ok_or_else(|| fail(404, "item was not found."))?;
    edit(&mut record, &change);
    record.modified = now;
    if !mailbox::replace(tenant, &mut state, user, item, record, now) {
        return Err(fail(409, "the item cannot take this change"));
    }
    let summary = mailbox::summary(tenant, &state, user, item)
        .ok_or_else(|| fail(404, "item was not found."))?;
    Ok(json!({"id": id, "changeKey": summary.change_key}))
}

pub fn move_item(
    tenant: &Tenant,
    user_key: &str,
    id: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Value, Failure> {
    let target = body["folder"]
        .as_str()
        .ok_or_else(|| fail(400, "folder is required"))?;
    let mut state = write(&tenant.state);
    let (user, item) = find_item(tenant, &state, user_key, id)?;
    let mb = mailbox_of(user, item);
    let folder = mailbox::find_folder(tenant, &state, mb, target)
        .ok_or_else(|| fail(404, "folder was not found."))?;
    if !mailbox::move_to(tenant, &mut state, user, item, folder.key, now) {
        return Err(fail(404, "item was not found."));
    }
    Ok(json!({"id": id, "folderId": mailbox::folder_id(tenant, mb, folder.key)}))
}

pub fn delete_item(
    tenant: &Tenant,
    user_key: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Value, Failure> {
    let mut state = write(&tenant.state);
    let (user, item) = find_item(tenant, &state, user_key, id)?;
    if !mailbox::delete(tenant, &mut state, user, item, now) {
        return Err(fail(404, "item was not found."));
    }
    Ok(json!({"id": id, "deleted": true}))
}

pub fn export_failure(
    tenant: &Tenant,
    user_key: &str,
    id: &str,
    fail_export: bool,
) -> Result<Value, Failure> {
    let mut state = write(&tenant.state);
    let user = user_index(&state, user_key)?;
    mailbox::set_export_failure(&mut state, user, id, fail_export);
    Ok(json!({"id": id, "exportFails": fail_export}))
}

pub fn expire_delta_tokens(tenant: &Tenant, user_key: &str) -> Result<Value, Failure> {
    let mut state = write(&tenant.state);
    let user = user_index(&state, user_key)?;
    let floor = mailbox::expire_delta_tokens(&mut state, user);
    Ok(json!({"resync_floor": floor}))
}

/// The user's mailbox ids (primary, archive, auxiliary archive) for tests and demos.
pub fn mailbox_ids(tenant: &Tenant, user_key: &str) -> Result<Value, Failure> {
    let state = read(&tenant.state);
    let user = user_index(&state, user_key)?;
    let id = |kind| {
        let mb = MailboxRef { user, kind };
        mailbox::exists(tenant, &state, mb).then(|| mailbox::mailbox_id(tenant, mb))
    };
    Ok(json!({
        "primary": id(MailboxKind::Primary),
        "archive": id(MailboxKind::Archive),
        "auxiliaryArchive": id(MailboxKind::Auxiliary),
    }))
}
