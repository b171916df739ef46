//! Restoring mailbox items into a mailbox: the original or another one, of the same or another
//! organization of the customer. Each item's full-fidelity export stream (`<id>.item`) is
//! imported through the mailbox import API (`createImportSession`, then `Mode: create`), so it
//! comes back as it was, a received message as received mail, never a draft. Where the
//! organization has not granted the import permission, messages are created from their MIME
//! copy by a JSON create that sets `PR_MESSAGE_FLAGS` at creation (non-draft), and each such
//! item says what that path loses; calendar items and contacts need the import API.
//!
//! Items go into their original folders (created by path when missing) or under a new
//! "Restored <date>" folder. Nothing in the target mailbox is ever changed or deleted: a restore
//! only adds. A mailbox that is over quota or gone stops the restore of the remaining items,
//! each of which is reported with the reason. Throttling only slows it: the governor paces
//! requests under the mailbox's limits, and an item throttled past its request's retries is
//! tried again, until Microsoft has let nothing through for longer than a request may wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::job::{ItemResult, RestoreSink};
use crate::m365::mail_create::{MAX_ATTACHMENT, MAX_SIMPLE_ATTACHMENT, NewAttachment};
use crate::m365::{ErrorKind, GraphError, ImportSession, MailboxRef, TenantClient};
use crate::storage::catalog::{CatalogEntry, ItemKind, RecoveryPointId};
use crate::storage::scope::TenantScope;
use crate::storage::{BackupStorage, read};

/// Items imported at once; the governor keeps a mailbox at Outlook's four concurrent requests,
/// the rest read the next items from the repository meanwhile.
const IN_FLIGHT: usize = 8;

/// Where restored items go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderMode {
    /// The folders they came from, created by path where missing.
    Original,
    /// A new top-level folder with this name ("Restored 2026-11-30 14:05"), the original
    /// folder tree under it.
    NewFolder(String),
}

/// The mailbox to restore into.
#[derive(Debug, Clone)]
pub struct MailboxTarget {
    /// The owning user's object id (the JSON create path addresses the user).
    pub user_id: String,
    pub mailbox: MailboxRef,
    pub folders: FolderMode,
}

/// What the restore did, for the job's summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MailboxSummary {
    pub restored: u64,
    /// Created by the JSON path: present, not a draft, but not every property came back.
    pub restored_with_loss: u64,
    pub failed: u64,
    /// Set when the import permission was missing and the JSON path was used.
    pub without_import_permission: bool,
    /// Why the restore stopped early, if it did.
    pub stopped: Option<String>,
}

/// What the JSON create path cannot carry, said on every item restored through it.
pub const JSON_PATH_LOSS: &str = "Restored without the import permission, from the message's MIME copy: \
read/unread state, follow-up flags, categories, Exchange-only properties and internet headers other than \
the addressing ones were not restored";

/// The items of `entries` a restore acts on: each exported item once (a selected `.eml` or
/// `.json` copy stands for its `.item` sibling), with its MIME copy when there is one.
pub fn plan_items(entries: &[CatalogEntry]) -> Vec<PlannedItem> {
    let mut by_stem: HashMap<String, PlannedItem> = HashMap::new();
    let mut order = Vec::new();
    for entry in entries {
        let Some(stem) = stem_of(&entry.path) else {
            continue;
        };
        let planned = by_stem.entry(stem.clone()).or_insert_with(|| {
            order.push(stem.clone());
            PlannedItem::default()
        });
        match entry.kind {
            ItemKind::MailboxItem => planned.export = Some(entry.clone()),
            ItemKind::Message => planned.mime = Some(entry.clone()),
            _ => planned.other = Some(entry.clone()),
        }
    }
    order
        .into_iter()
        .filter_map(|stem| by_stem.remove(&stem))
        .filter(|p| p.export.is_some() || p.mime.is_some())
        .collect()
}

/// One item to restore: its export stream and, for messages, its MIME copy.
#[derive(Debug, Clone, Default)]
pub struct PlannedItem {
    pub export: Option<CatalogEntry>,
    pub mime: Option<CatalogEntry>,
    /// A readable copy (`.json`) of a calendar item or contact, only to name it.
    pub other: Option<CatalogEntry>,
}

impl PlannedItem {
    /// The path results are recorded under: the export stream's, else the MIME copy's.
    pub fn path(&self) -> &str {
        self.export
            .as_ref()
            .or(self.mime.as_ref())
            .or(self.other.as_ref())
            .map_or("", |e| e.path.as_str())
    }

    fn folder(&self) -> &str {
        self.path().rsplit_once('/').map_or("", |(dir, _)| dir)
    }
}

/// `Inbox/AAMk.item` → `Inbox/AAMk`.
fn stem_of(path: &str) -> Option<String> {
    let (stem, ext) = path.rsplit_once('.')?;
    matches!(ext, "item" | "eml" | "json").then(|| stem.to_string())
}

/// A folder path component back to the display name it was made from (the backup replaced
/// `/` and `\` with look-alikes so they would not split the path).
fn display_name(component: &str) -> String {
    component.replace('\u{2215}', "/").replace('\u{2216}', "\\")
}

/// Why the whole restore must stop, if this error says the mailbox cannot take more.
fn stop_reason(error: &GraphError) -> Option<String> {
    let code = error.code().unwrap_or_default().to_ascii_lowercase();
    if error.status() == Some(507) || code.contains("quota") {
        return Some(
            "The target mailbox is over its quota; nothing more can be added to it.".into(),
        );
    }
    if code.contains("invalidmailbox")
        || code.contains("mailboxnotenabled")
        || code.contains("mailboxnotfound")
        || (error.kind() == ErrorKind::NotFound && code.contains("user"))
    {
        return Some("The target mailbox no longer exists.".into());
    }
    None
}

/// Why a restore stops when Microsoft has let no item through for too long.
const THROTTLED_TOO_LONG: &str = "Microsoft throttled the target mailbox without letting any item \
through for longer than the restore waits; try the restore again later.";

/// What one try of an item came to.
enum Attempt {
    Done(ItemResult, String),
    /// Microsoft throttled it past one request's retries; nothing was created.
    Throttled,
}

struct Shared<'a> {
    client: &'a TenantClient,
    storage: &'a BackupStorage,
    scope: &'a dyn TenantScope,
    point: RecoveryPointId,
    target: &'a MailboxTarget,
    sink: &'a dyn RestoreSink,
    folders: Mutex<HashMap<String, String>>,
    session: Mutex<Option<ImportSession>>,
    stopped: std::sync::Mutex<Option<String>>,
    done: AtomicU64,
    total: u64,
    /// When an item last got through (or the restore started).
    last_progress: std::sync::Mutex<Instant>,
    /// How long throttled items keep being tried with no item getting through: twice as long as
    /// one request may wait (an hour with the default 30 minutes), so an hour of throttling
    /// still ends in a finished restore.
    patience: Duration,
}

impl Shared<'_> {
    fn keeps_patience(&self) -> bool {
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        !stopped
            && self
                .last_progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                < self.patience
    }
}

/// Restores `items` of recovery point `point` into the target mailbox, recording each item's
/// result with `sink`.
pub async fn restore_items(
    client: &TenantClient,
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    items: Vec<PlannedItem>,
    target: &MailboxTarget,
    sink: &dyn RestoreSink,
) -> MailboxSummary {
    let mut summary = MailboxSummary::default();
    let started = Instant::now();
    let patience = client.executor().policy.max_total_wait.saturating_mul(2);
    let opened = loop {
        match client.create_import_session(&target.mailbox).await {
            Err(e) if e.kind() == ErrorKind::Throttled && started.elapsed() < patience => {}
            opened => break opened,
        }
    };
    let session = match opened {
        Ok(session) => Some(session),
        Err(e) if e.kind() == ErrorKind::Forbidden => {
            summary.without_import_permission = true;
            None
        }
        Err(e) => {
            let reason = if e.kind() == ErrorKind::Throttled {
                THROTTLED_TOO_LONG.to_string()
            } else {
                stop_reason(&e)
                    .unwrap_or_else(|| format!("Microsoft refused to open an import session: {e}"))
            };
            for item in &items {
                sink.record(item.path(), ItemResult::Failed, &reason).await;
            }
            summary.failed = items.len() as u64;
            summary.stopped = Some(reason);
            return summary;
        }
    };
    let shared = Shared {
        client,
        storage,
        scope,
        point,
        target,
        sink,
        folders: Mutex::new(HashMap::new()),
        session: Mutex::new(session),
        stopped: std::sync::Mutex::new(None),
        done: AtomicU64::new(0),
        total: items.len() as u64,
        last_progress: std::sync::Mutex::new(started),
        patience,
    };
    let shared = &shared;
    let results: Vec<ItemResult> = futures::stream::iter(items)
        .map(|item| async move {
            let stopped = shared
                .stopped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let (result, detail) = match stopped {
                Some(reason) => (ItemResult::Failed, format!("Not restored: {reason}")),
                None => restore_one(shared, &item).await,
            };
            shared.sink.record(item.path(), result, &detail).await;
            let done = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
            shared.sink.progress(done, shared.total);
            result
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for result in results {
        match result {
            ItemResult::Restored => summary.restored += 1,
            ItemResult::RestoredWithLoss => summary.restored_with_loss += 1,
            ItemResult::Skipped => {}
            ItemResult::Failed => summary.failed += 1,
        }
    }
    summary.stopped = shared
        .stopped
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    summary
}

/// One item, tried again while Microsoft only throttles and the restore still gets items
/// through now and then; a throttled attempt created nothing, so trying again cannot double it.
async fn restore_one(shared: &Shared<'_>, item: &PlannedItem) -> (ItemResult, String) {
    loop {
        match attempt(shared, item).await {
            Attempt::Done(result, detail) => {
                if matches!(result, ItemResult::Restored | ItemResult::RestoredWithLoss) {
                    *shared
                        .last_progress
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Instant::now();
                }
                return (result, detail);
            }
            Attempt::Throttled if shared.keeps_patience() => {
                tracing::debug!(
                    path = item.path(),
                    "throttled past a request's retries; trying the item again"
                );
            }
            Attempt::Throttled => {
                let reason = THROTTLED_TOO_LONG.to_string();
                let mut stopped = shared.stopped.lock().unwrap_or_else(|p| p.into_inner());
                stopped.get_or_insert(reason.clone());
                return (ItemResult::Failed, format!("Not restored: {reason}"));
            }
        }
    }
}

async fn attempt(shared: &Shared<'_>, item: &PlannedItem) -> Attempt {
    let folder = match target_folder(shared, item.folder()).await {
        Ok(id) => id,
        Err(e) => return failed(shared, "Its folder could not be found or made", &e),
    };
    let has_session = shared.session.lock().await.is_some();
    if has_session && let Some(export) = &item.export {
        return import(shared, export, &folder).await;
    }
    match &item.mime {
        Some(mime) => create_from_mime(shared, mime, &folder).await,
        None => Attempt::Done(
            ItemResult::Failed,
            "Calendar items, contacts and other non-mail items need the mailbox import permission \
             (MailboxItem.ImportExport.All), which the organization has not granted"
                .into(),
        ),
    }
}

fn failed(shared: &Shared<'_>, what: &str, error: &GraphError) -> Attempt {
    if error.kind() == ErrorKind::Throttled {
        return Attempt::Throttled;
    }
    if let Some(reason) = stop_reason(error) {
        let mut stopped = shared.stopped.lock().unwrap_or_else(|p| p.into_inner());
        stopped.get_or_insert(reason.clone());
        return Attempt::Done(ItemResult::Failed, format!("Not restored: {reason}"));
    }
    Attempt::Done(ItemResult::Failed, format!("{what}: {error}"))
}

async fn import(shared: &Shared<'_>, export: &CatalogEntry, folder: &str) -> Attempt {
    let data = match read::read_item_to_vec(
        shared.storage,
        shared.scope,
        shared.point,
        &export.path,
    )
    .await
    {
        Ok(data) => data,
        Err(e) => {
            return Attempt::Done(
                ItemResult::Failed,
                format!("Could not read the backup: {e}"),
            );
        }
    };
    for attempt in 0..2 {
        let Some(session) = shared.session.lock().await.clone() else {
            break;
        };
        match shared
            .client
            .import_mailbox_item(&session, folder, &data)
            .await
        {
            Ok(_) => return Attempt::Done(ItemResult::Restored, String::new()),
            // An expired session answers 401/403: open a new one once.
            Err(e)
                if attempt == 0
                    && matches!(e.kind(), ErrorKind::Unauthenticated | ErrorKind::Forbidden) =>
            {
                match shared
                    .client
                    .create_import_session(&shared.target.mailbox)
                    .await
                {
                    Ok(fresh) => *shared.session.lock().await = Some(fresh),
                    Err(e) => return failed(shared, "The import session could not be renewed", &e),
                }
            }
            Err(e) => return failed(shared, "Microsoft refused the import", &e),
        }
    }
    Attempt::Done(
        ItemResult::Failed,
        "The import session kept being refused".into(),
    )
}

/// The id of the folder `path` maps to in the target, creating what is missing.
async fn target_folder(shared: &Shared<'_>, path: &str) -> Result<String, GraphError> {
    // One folder lookup at a time: two items of a new folder must not both create it.
    let mut known = shared.folders.lock().await;
    let mut components: Vec<String> = Vec::new();
    if let FolderMode::NewFolder(name) = &shared.target.folders {
        components.push(name.clone());
    }
    components.extend(path.split('/').filter(|c| !c.is_empty()).map(display_name));
    if components.is_empty() {
        // An item at the top of the archive: the inbox takes it.
        components.push("Inbox".into());
    }
    let mut parent: Option<String> = None;
    let mut key = String::new();
    for name in components {
        key.push('/');
        key.push_str(&name.to_lowercase());
        if let Some(id) = known.get(&key) {
            parent = Some(id.clone());
            continue;
        }
        let mailbox = &shared.target.mailbox;
        let children = shared
            .client
            .mailbox_child_folders(mailbox, parent.as_deref())
            .await?;
        let id = match children
            .iter()
            .find(|f| f.display_name.eq_ignore_ascii_case(&name))
        {
            Some(found) => found.id.clone(),
            None => {
                shared
                    .client
                    .create_mailbox_folder(mailbox, parent.as_deref(), &name)
                    .await?
                    .id
            }
        };
        known.insert(key.clone(), id.clone());
        parent = Some(id);
    }
    parent.ok_or_else(|| GraphError::Settings("no folder".into()))
}

/// The JSON create of a message from its MIME copy, `PR_MESSAGE_FLAGS` set at creation.
async fn create_from_mime(shared: &Shared<'_>, mime: &CatalogEntry, folder: &str) -> Attempt {
    let raw = match read::read_item_to_vec(shared.storage, shared.scope, shared.point, &mime.path)
        .await
    {
        Ok(raw) => raw,
        Err(e) => {
            return Attempt::Done(
                ItemResult::Failed,
                format!("Could not read the backup: {e}"),
            );
        }
    };
    let Some((message, attachments, mut lost)) = message_json(&raw) else {
        return Attempt::Done(
            ItemResult::Failed,
            "The backed-up MIME copy could not be read as a message".into(),
        );
    };
    let user = &shared.target.user_id;
    let id = match shared
        .client
        .create_message_json(user, folder, &message)
        .await
    {
        Ok(id) => id,
        Err(e) => return failed(shared, "Microsoft refused to create the message", &e),
    };
    for attachment in attachments {
        // From 3 MB an attachment goes through an upload session (up to 150 MB).
        let added = if attachment.bytes.len() >= MAX_SIMPLE_ATTACHMENT {
            shared
                .client
                .add_large_file_attachment(user, &id, &attachment)
                .await
        } else {
            shared
                .client
                .add_file_attachment(user, &id, &attachment)
                .await
        };
        if let Err(e) = added {
            lost.push(format!(
                "attachment “{}” could not be added ({})",
                attachment.name, e
            ));
        }
    }
    let mut detail = JSON_PATH_LOSS.to_string();
    if !lost.is_empty() {
        detail.push_str("; ");
        detail.push_str(&lost.join("; "));
    }
    detail.push('.');
    Attempt::Done(ItemResult::RestoredWithLoss, detail)
}

/// A Graph message resource for a JSON create from RFC 822 bytes, its attachments, and what
/// could not be carried.
pub fn message_json(raw: &[u8]) -> Option<(serde_json::Value, Vec<NewAttachment>, Vec<String>)> {
    use mail_parser::{MessageParser, MimeHeaders};
    let parsed = MessageParser::default().parse(raw)?;
    let addresses = |list: Option<&mail_parser::Address<'_>>| -> Vec<serde_json::Value> {
        list.map(|a| {
            a.iter()
                .filter_map(|addr| {
                    let address = addr.address()?;
                    Some(serde_json::json!({"emailAddress": {
                        "name": addr.name().unwrap_or_default(),
                        "address": address,
                    }}))
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let (content_type, content) = match parsed.body_html(0) {
        Some(html) => ("html", html.into_owned()),
        None => (
            "text",
            parsed
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
        ),
    };
    let sent = parsed
        .date()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(&d.to_rfc3339()).ok())
        .map(|d| d.with_timezone(&chrono::Utc));
    let mut props = vec![serde_json::json!({"id": "Integer 0x0E07", "value": "1"})];
    if let Some(sent) = sent {
        let at = sent.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        props.push(serde_json::json!({"id": "SystemTime 0x0E06", "value": at}));
        props.push(serde_json::json!({"id": "SystemTime 0x0039", "value": at}));
    }
    let mut message = serde_json::json!({
        "subject": parsed.subject().unwrap_or_default(),
        "body": {"contentType": content_type, "content": content},
        "toRecipients": addresses(parsed.to()),
        "ccRecipients": addresses(parsed.cc()),
        "bccRecipients": addresses(parsed.bcc()),
        "replyTo": addresses(parsed.reply_to()),
        "isRead": true,
        "singleValueExtendedProperties": props,
    });
    if let Some(from) = addresses(parsed.from()).into_iter().next() {
        message["from"] = from.clone();
        message["sender"] = from;
    }
    if let Some(id) = parsed.message_id() {
        message["internetMessageId"] = serde_json::json!(format!("<{id}>"));
    }
    let mut attachments = Vec::new();
    let mut lost = Vec::new();
    for part in parsed.attachments() {
        let name = part
            .attachment_name()
            .map(str::to_string)
            .unwrap_or_else(|| "attachment".into());
        let bytes = part.contents().to_vec();
        if bytes.len() > MAX_ATTACHMENT {
            lost.push(format!(
                "attachment “{name}” ({}) is larger than the 150 MB Outlook takes",
                bytesize::ByteSize::b(bytes.len() as u64)
            ));
            continue;
        }
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        attachments.push(NewAttachment {
            name,
            content_type,
            bytes,
            content_id: part.content_id().map(str::to_string),
            is_inline: part.content_disposition().is_some_and(|d| d.is_inline()),
        });
    }
    Some((message, attachments, lost))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_becomes_a_non_draft_create() {
        let raw = b"From: Ann <ann@contoso.com>\r\nTo: Bob <bob@contoso.com>\r\nSubject: Hello\r\n\
Date: Tue, 22 Sep 2026 10:00:00 +0000\r\nMessage-ID: <abc@contoso.com>\r\n\r\nHi Bob\r\n";
        let (json, attachments, lost) = message_json(raw).unwrap();
        assert_eq!(json["subject"], "Hello");
        assert_eq!(json["from"]["emailAddress"]["address"], "ann@contoso.com");
        assert_eq!(
            json["toRecipients"][0]["emailAddress"]["address"],
            "bob@contoso.com"
        );
        assert_eq!(json["internetMessageId"], "<abc@contoso.com>");
        let flags = &json["singleValueExtendedProperties"][0];
        assert_eq!(flags["id"], "Integer 0x0E07");
        let value: i64 = flags["value"].as_str().unwrap().parse().unwrap();
        assert_eq!(value & 0x8, 0, "the unsent bit makes a draft");
        assert_eq!(
            json["singleValueExtendedProperties"][1]["value"],
            "2026-09-22T10:00:00Z"
        );
        assert!(attachments.is_empty() && lost.is_empty());
    }

    #[test]
    fn copies_stand_for_their_export() {
        let entry = |path: &str, kind| CatalogEntry {
            path: path.into(),
            name: path.rsplit('/').next().unwrap().into(),
            kind,
            graph_id: None,
            change_key: None,
            last_modified: None,
            source_size: None,
            size: 1,
            subject: None,
            sender: None,
            recipients: Vec::new(),
            sent_at: None,
            has_attachments: None,
            item_class: None,
        };
        let planned = plan_items(&[
            entry("Inbox/A.item", ItemKind::MailboxItem),
            entry("Inbox/A.eml", ItemKind::Message),
            entry("Calendar/B.item", ItemKind::MailboxItem),
            entry("Calendar/B.json", ItemKind::Event),
        ]);
        assert_eq!(planned.len(), 2);
        assert_eq!(planned[0].path(), "Inbox/A.item");
        assert!(planned[0].mime.is_some());
        assert_eq!(planned[1].folder(), "Calendar");
        assert_eq!(display_name("a\u{2215}b"), "a/b");
    }
}
