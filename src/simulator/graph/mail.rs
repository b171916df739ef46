//! Exchange Online mail on Graph v1.0 (graph-protocol.md §3): folders (`mailFolders`,
//! `childFolders`, `includeHiddenFolders`), message listing and per-folder delta with
//! `Prefer: odata.maxpagesize` and `IdType="ImmutableId"`, `$value` MIME, attachments, message
//! creation (JSON with extended properties, base64 MIME making a draft), PATCH, move and delete.
//! Generated messages are computed on demand; only changed ones live in the mailbox overlay.
//! It must never touch the directory's life cycle: a soft-deleted user's mailbox only answers
//! `MailboxNotEnabledForRESTAPI`.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::odata;
use super::{Ctx, GraphError, GraphResult, Reply, max_page_size};
use crate::simulator::generate::{
    self, AttachmentBytes, AttachmentSpec, FOLDERS, MailAddress, MessageMeta, folder,
};
use crate::simulator::mime;
use crate::simulator::state::{
    FolderState, Found, MailboxOverlay, MessageState, Tenant, TenantState, mail_kind, read, write,
};

fn ts(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Option<GraphResult> {
    let ["users", user, rest @ ..] = segments else {
        return None;
    };
    if !matches!(
        rest.first(),
        Some(&"mailFolders" | &"messages" | &"mailboxSettings")
    ) {
        return None;
    }
    Some(mailbox_route(ctx, user, rest))
}

fn mailbox_route(ctx: &Ctx<'_>, user_key: &str, rest: &[&str]) -> GraphResult {
    let user = {
        let state = read(&ctx.tenant.state);
        match state.find_user(user_key) {
            Found::Active(i) if state.users[i as usize].licensed => i,
            // Unlicensed users answer like soft-deleted ones (§2.3).
            Found::Active(_) | Found::SoftDeleted(_) => return Err(mailbox_not_enabled()),
            Found::Missing => {
                return Err(GraphError::new(
                    404,
                    "ErrorInvalidUser",
                    &format!("The requested user '{user_key}' is invalid."),
                ));
            }
        }
    };
    let m = ctx.method;
    let mb = Mailbox { ctx, user };
    match rest {
        ["mailboxSettings"] if m == "GET" => mb.settings(),
        ["mailFolders"] if m == "GET" => mb.list_folders(folder::ROOT),
        ["mailFolders"] if m == "POST" => mb.create_folder(folder::ROOT),
        ["mailFolders", "delta" | "delta()"] if m == "GET" => mb.folder_delta(),
        ["mailFolders", f] if m == "GET" => mb.get_folder(f),
        ["mailFolders", f, "childFolders"] if m == "GET" => mb.list_folders(mb.folder_key(f)?),
        ["mailFolders", f, "childFolders"] if m == "POST" => mb.create_folder(mb.folder_key(f)?),
        ["mailFolders", f, "messages"] if m == "GET" => mb.list_messages(Some(mb.folder_key(f)?)),
        ["mailFolders", f, "messages"] if m == "POST" => mb.create_message(mb.folder_key(f)?),
        ["mailFolders", f, "messages", "delta" | "delta()"] if m == "GET" => {
            mb.message_delta(mb.folder_key(f)?)
        }
        ["mailFolders", _, "messages", id, tail @ ..] => mb.message_route(id, tail),
        ["messages"] if m == "GET" => mb.list_messages(None),
        ["messages"] if m == "POST" => mb.create_message(folder::DRAFTS),
        ["messages", id, tail @ ..] => mb.message_route(id, tail),
        [first, ..] => Err(GraphError::segment_not_found(first)),
        [] => Err(GraphError::segment_not_found("users")),
    }
}

/// A message as seen now: its folder, content and overlay entry (if changed).
pub struct MessageView {
    pub key: u32,
    pub folder: u16,
    pub meta: Arc<MessageMeta>,
    pub state: Option<MessageState>,
}

/// The answer for a mailbox that does not serve REST (unlicensed or soft-deleted owner).
pub fn mailbox_not_enabled() -> GraphError {
    GraphError::new(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )
}

/// `changeKey` (and the etag) of a message at `version`.
pub fn change_key(version: u64, key: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(
        [
            b"CQAAABYAAAA".as_slice(),
            &version.to_be_bytes(),
            &key.to_be_bytes(),
        ]
        .concat(),
    )
}

fn generated_count(state: &TenantState, user: u32) -> u32 {
    state
        .users
        .get(user as usize)
        .map_or(0, |u| u.generated_messages)
}

/// Every live message key of a mailbox with its folder and read state, in key order, without
/// building content.
pub fn message_keys(tenant: &Tenant, state: &TenantState, user: u32) -> Vec<(u32, u16, bool)> {
    let seed = tenant.spec.seed;
    let overlay = state.mailboxes.get(&user);
    let generated = generated_count(state, user);
    let mut out = Vec::with_capacity(generated as usize);
    for key in 0..generated {
        match overlay.and_then(|o| o.messages.get(&key)) {
            Some(s) if s.deleted => {}
            Some(s) => out.push((
                key,
                s.folder,
                s.meta.as_ref().map_or_else(
                    || generate::generated_is_read(seed, user, key),
                    |m| m.is_read,
                ),
            )),
            None => out.push((
                key,
                generate::generated_folder(seed, user, key),
                generate::generated_is_read(seed, user, key),
            )),
        }
    }
    if let Some(overlay) = overlay {
        let mut added: Vec<(&u32, &MessageState)> = overlay
            .messages
            .iter()
            .filter(|(k, s)| **k >= generated && !s.deleted)
            .collect();
        added.sort_by_key(|(k, _)| **k);
        out.extend(
            added
                .into_iter()
                .map(|(k, s)| (*k, s.folder, s.meta.as_ref().is_some_and(|m| m.is_read))),
        );
    }
    out
}

/// A live message of a mailbox by key.
pub fn message_view(
    tenant: &Tenant,
    state: &TenantState,
    user: u32,
    key: u32,
) -> Option<MessageView> {
    let overlay_state = state
        .mailboxes
        .get(&user)
        .and_then(|o| o.messages.get(&key))
        .cloned();
    let generated = generated_count(state, user);
    match overlay_state {
        Some(s) if s.deleted => None,
        Some(s) => {
            let meta = match &s.meta {
                Some(meta) => meta.clone(),
                None if key < generated => Arc::new(generate::generated_message(
                    &tenant.mailbox_context(state, user),
                    key,
                )),
                None => return None,
            };
            Some(MessageView {
                key,
                folder: s.folder,
                meta,
                state: Some(s),
            })
        }
        None if key < generated => Some(MessageView {
            key,
            folder: generate::generated_folder(tenant.spec.seed, user, key),
            meta: Arc::new(generate::generated_message(
                &tenant.mailbox_context(state, user),
                key,
            )),
            state: None,
        }),
        None => None,
    }
}

/// Stores a changed message (taking the next change number) and returns its new view.
pub fn store_message(
    tenant: &Tenant,
    state: &mut TenantState,
    user: u32,
    key: u32,
    now: DateTime<Utc>,
    update: impl FnOnce(&mut MessageState),
) -> Option<MessageView> {
    let base = message_view(tenant, state, user, key)?;
    let version = state.bump();
    let overlay = state.mailboxes.entry(user).or_default();
    let entry = overlay.messages.entry(key).or_insert_with(|| MessageState {
        folder: base.folder,
        meta: None,
        mime: None,
        deleted: false,
        version,
        moves: 0,
        left: Vec::new(),
        modified: now,
    });
    entry.version = version;
    entry.modified = now;
    update(entry);
    message_view(tenant, state, user, key).or(Some(MessageView {
        key,
        folder: base.folder,
        meta: base.meta,
        state: None,
    }))
}

/// Moves a message (its regular id changes, its immutable id stays); delta shows it leaving.
pub fn move_message(
    tenant: &Tenant,
    state: &mut TenantState,
    user: u32,
    view: MessageView,
    target: u16,
    now: DateTime<Utc>,
) -> Option<MessageView> {
    if view.folder == target {
        return Some(view);
    }
    let from = view.folder;
    let seq = state.seq + 1;
    store_message(tenant, state, user, view.key, now, |e| {
        e.left.push((from, seq));
        e.folder = target;
        e.moves += 1;
    })
}

/// Adds a file attachment to a live message (the last range of an attachment upload session);
/// answers the new attachment's id, or `None` when the message is gone.
pub fn attach_file(
    tenant: &Tenant,
    state: &mut TenantState,
    user: u32,
    key: u32,
    spec: AttachmentSpec,
    now: DateTime<Utc>,
) -> Option<String> {
    let view = message_view(tenant, state, user, key)?;
    let mut meta = view.meta.as_ref().clone();
    meta.attachments.push(spec);
    let index = meta.attachments.len() - 1;
    store_message(tenant, state, user, key, now, |e| {
        e.meta = Some(Arc::new(meta));
        e.mime = None;
    })?;
    Some(tenant.mail_id(mail_kind::ATTACHMENT, user, key, index as u32))
}

/// Adds a message to a folder of a mailbox; returns its key.
pub fn add_message(
    state: &mut TenantState,
    user: u32,
    folder_key: u16,
    meta: MessageMeta,
    raw: Option<Arc<Vec<u8>>>,
    now: DateTime<Utc>,
) -> Option<u32> {
    let generated = state.users.get(user as usize)?.generated_messages;
    let version = state.bump();
    let overlay: &mut MailboxOverlay = state.mailboxes.entry(user).or_default();
    let key = overlay.next_key.unwrap_or(generated).max(generated);
    overlay.next_key = Some(key + 1);
    overlay.messages.insert(
        key,
        MessageState {
            folder: folder_key,
            meta: Some(Arc::new(meta)),
            mime: raw,
            deleted: false,
            version,
            moves: 0,
            left: Vec::new(),
            modified: now,
        },
    );
    Some(key)
}

struct Mailbox<'a, 'b> {
    ctx: &'a Ctx<'b>,
    user: u32,
}

fn item_not_found() -> GraphError {
    GraphError::new(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

impl Mailbox<'_, '_> {
    fn tenant(&self) -> &Tenant {
        self.ctx.tenant
    }

    fn immutable(&self) -> bool {
        self.ctx
            .prefer("IdType")
            .is_some_and(|v| v.eq_ignore_ascii_case("ImmutableId"))
    }

    fn folders(&self, state: &TenantState) -> Vec<FolderState> {
        let mut out: Vec<FolderState> = FOLDERS
            .iter()
            .map(|&(key, parent, name, _, hidden)| FolderState {
                key,
                parent,
                display_name: name.to_owned(),
                hidden,
                deleted: false,
                version: 0,
            })
            .collect();
        if let Some(overlay) = state.mailboxes.get(&self.user) {
            out.extend(overlay.created_folders.iter().cloned());
        }
        out
    }

    fn folder_id(&self, key: u16) -> String {
        self.tenant()
            .mail_id(mail_kind::FOLDER, self.user, key as u32, 0)
    }

    /// A folder by id or well-known name.
    fn folder_key(&self, id: &str) -> Result<u16, GraphError> {
        if let Some(&(key, ..)) = FOLDERS
            .iter()
            .find(|f| f.3.is_some_and(|w| w.eq_ignore_ascii_case(id)))
        {
            return Ok(key);
        }
        let not_found = || {
            GraphError::new(
                404,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )
        };
        match self.tenant().parse_mail_id(id) {
            Some((mail_kind::FOLDER, user, key, _)) if user == self.user => {
                let state = read(&self.tenant().state);
                self.folders(&state)
                    .iter()
                    .any(|f| f.key as u32 == key && !f.deleted)
                    .then_some(key as u16)
                    .ok_or_else(not_found)
            }
            _ if id.len() > 20 => Err(not_found()),
            _ => Err(GraphError::new(
                400,
                "ErrorInvalidIdMalformed",
                "Id is malformed.",
            )),
        }
    }

    fn generated_count(&self, state: &TenantState) -> u32 {
        generated_count(state, self.user)
    }

    /// Every live message key with its folder, in key order, without building content.
    fn keys(&self, state: &TenantState) -> Vec<(u32, u16, bool)> {
        message_keys(self.tenant(), state, self.user)
    }

    fn view(&self, state: &TenantState, key: u32) -> Option<MessageView> {
        message_view(self.tenant(), state, self.user, key)
    }

    fn message_id(&self, view: &MessageView) -> String {
        if self.immutable() {
            self.tenant()
                .mail_id(mail_kind::IMMUTABLE_MESSAGE, self.user, view.key, 0)
        } else {
            self.tenant().mail_id(
                mail_kind::MESSAGE,
                self.user,
                view.key,
                view.state.as_ref().map_or(0, |s| s.moves),
            )
        }
    }

    /// Resolves a message id; a regular id from before a move no longer resolves (§3.2).
    fn resolve(&self, state: &TenantState, id: &str) -> Result<MessageView, GraphError> {
        match self.tenant().parse_mail_id(id) {
            Some((kind, user, key, moves))
                if user == self.user
                    && (kind == mail_kind::MESSAGE || kind == mail_kind::IMMUTABLE_MESSAGE) =>
            {
                let view = self.view(state, key).ok_or_else(item_not_found)?;
                if kind == mail_kind::MESSAGE && view.state.as_ref().map_or(0, |s| s.moves) != moves
                {
                    return Err(item_not_found());
                }
                Ok(view)
            }
            Some(_) => Err(item_not_found()),
            None if id.len() < 20 => Err(GraphError::new(
                400,
                "ErrorInvalidIdMalformed",
                "Id is malformed.",
            )),
            None => Err(item_not_found()),
        }
    }

    fn folder_json(
        &self,
        state: &TenantState,
        f: &FolderState,
        keys: &[(u32, u16, bool)],
    ) -> Value {
        let folders = self.folders(state);
        json!({
            "id": self.folder_id(f.key),
            "displayName": f.display_name,
            "parentFolderId": self.folder_id(f.parent),
            "childFolderCount": folders.iter().filter(|c| c.parent == f.key && c.key != f.key && !c.deleted).count(),
            "unreadItemCount": keys.iter().filter(|(_, fk, read)| *fk == f.key && !read).count(),
            "totalItemCount": keys.iter().filter(|(_, fk, _)| *fk == f.key).count(),
            "isHidden": f.hidden,
        })
    }

    fn list_folders(&self, parent: u16) -> GraphResult {
        let include_hidden = self.ctx.query.flag("includeHiddenFolders");
        let state = read(&self.tenant().state);
        let keys = self.keys(&state);
        let items: Vec<Value> = self
            .folders(&state)
            .iter()
            .filter(|f| {
                f.parent == parent
                    && f.key != folder::ROOT
                    && !f.deleted
                    && (include_hidden || !f.hidden)
            })
            .map(|f| self.folder_json(&state, f, &keys))
            .map(|v| odata::project(&v, self.ctx.query.select().as_deref(), "mailFolder", None))
            .collect::<Result<_, _>>()?;
        let top = self.ctx.query.top(1000)?.unwrap_or(10);
        let skip = self
            .ctx
            .query
            .get("$skip")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        let page: Vec<Value> = items.iter().skip(skip).take(top).cloned().collect();
        let next = (skip + top < items.len()).then(|| self.ctx.link_with_skip(skip + top));
        Ok(Reply::Json(
            200,
            odata::collection(
                self.ctx
                    .context(&format!("users('{}')/mailFolders", self.user_id(&state))),
                page,
                next,
                None,
            ),
        ))
    }

    fn user_id(&self, state: &TenantState) -> String {
        state.users[self.user as usize].id.to_string()
    }

    fn get_folder(&self, id: &str) -> GraphResult {
        let key = self.folder_key(id)?;
        let state = read(&self.tenant().state);
        let keys = self.keys(&state);
        let f = self
            .folders(&state)
            .into_iter()
            .find(|f| f.key == key)
            .ok_or_else(item_not_found)?;
        let value = odata::project(
            &self.folder_json(&state, &f, &keys),
            self.ctx.query.select().as_deref(),
            "mailFolder",
            None,
        )?;
        Ok(Reply::Json(200, value))
    }

    fn create_folder(&self, parent: u16) -> GraphResult {
        let body: Value = serde_json::from_slice(self.ctx.body).map_err(|_| {
            GraphError::bad_request("RequestBodyRead", "The request body is not valid JSON.")
        })?;
        let Some(name) = body["displayName"]
            .as_str()
            .filter(|n| !n.trim().is_empty())
        else {
            return Err(GraphError::bad_request(
                "ErrorInvalidParameter",
                "The value of the parameter 'DisplayName' is empty.",
            ));
        };
        let mut state = write(&self.tenant().state);
        if self
            .folders(&state)
            .iter()
            .any(|f| f.parent == parent && !f.deleted && f.display_name.eq_ignore_ascii_case(name))
        {
            return Err(GraphError::new(
                409,
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            ));
        }
        let version = state.bump();
        let overlay = state.mailboxes.entry(self.user).or_default();
        let key = folder::FIRST_CREATED + overlay.created_folders.len() as u16;
        let created = FolderState {
            key,
            parent,
            display_name: name.to_owned(),
            hidden: body["isHidden"].as_bool().unwrap_or(false),
            deleted: false,
            version,
        };
        overlay.created_folders.push(created.clone());
        let keys = self.keys(&state);
        Ok(Reply::Json(201, self.folder_json(&state, &created, &keys)))
    }

    fn folder_delta(&self) -> GraphResult {
        let state = read(&self.tenant().state);
        let since = match self.ctx.query.get("$deltatoken") {
            Some(token) => Some(
                odata::decode_token(token)
                    .and_then(|v| v["s"].as_u64())
                    .ok_or_else(sync_state_invalid)?,
            ),
            None => None,
        };
        let keys = self.keys(&state);
        let items: Vec<Value> = self
            .folders(&state)
            .iter()
            .filter(|f| f.key != folder::ROOT && since.is_none_or(|s| f.version > s))
            .map(|f| self.folder_json(&state, f, &keys))
            .collect();
        let link = format!(
            "{}/users/{}/mailFolders/delta?$deltatoken={}",
            self.ctx.base(),
            self.user_id(&state),
            odata::encode_token(&json!({"s": state.seq}))
        );
        Ok(Reply::Json(
            200,
            odata::collection(
                self.ctx.context("Collection(mailFolder)"),
                items,
                None,
                Some(link),
            ),
        ))
    }

    fn settings(&self) -> GraphResult {
        let state = read(&self.tenant().state);
        Ok(Reply::Json(
            200,
            json!({
                "@odata.context": self.ctx.context(&format!("users('{}')/mailboxSettings", self.user_id(&state))),
                "archiveFolder": self.folder_id(folder::ARCHIVE),
                "timeZone": "Pacific Standard Time",
                "dateFormat": "M/d/yyyy",
                "timeFormat": "h:mm tt",
                "userPurpose": "user",
                "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
                "language": {"locale": "en-US", "displayName": "English (United States)"},
                "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all", "internalReplyMessage": "", "externalReplyMessage": "",
                    "scheduledStartDateTime": {"dateTime": "2026-11-01T00:00:00.0000000", "timeZone": "UTC"}, "scheduledEndDateTime": {"dateTime": "2026-11-02T00:00:00.0000000", "timeZone": "UTC"}},
            }),
        ))
    }

    fn message_json(&self, view: &MessageView) -> Value {
        let meta = &view.meta;
        let version = view.state.as_ref().map_or(0, |s| s.version);
        let change_key = change_key(version, view.key);
        let modified = view.state.as_ref().map_or(meta.received, |s| s.modified);
        let address =
            |a: &MailAddress| json!({"emailAddress": {"name": a.name, "address": a.address}});
        let preview: String = meta
            .body_text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(255)
            .collect();
        let id = self.message_id(view);
        json!({
            "@odata.etag": format!("W/\"{change_key}\""),
            "id": id,
            "createdDateTime": ts(meta.received),
            "lastModifiedDateTime": ts(modified),
            "changeKey": change_key,
            "categories": meta.categories,
            "receivedDateTime": ts(meta.received),
            "sentDateTime": ts(meta.sent),
            "hasAttachments": meta.attachments.iter().any(|a| !a.is_inline),
            "internetMessageId": meta.internet_message_id,
            "subject": meta.subject,
            "bodyPreview": preview,
            "importance": meta.importance,
            "parentFolderId": self.folder_id(view.folder),
            "conversationId": base64::engine::general_purpose::URL_SAFE.encode([b"AAQk".as_slice(), &meta.conversation_id.to_be_bytes()].concat()),
            "conversationIndex": base64::engine::general_purpose::STANDARD.encode([&[1u8][..], &meta.conversation_id.to_be_bytes()[..]].concat()),
            "isDeliveryReceiptRequested": false,
            "isReadReceiptRequested": false,
            "isRead": meta.is_read,
            "isDraft": meta.is_draft,
            "webLink": format!("https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem", odata::escape(&id)),
            "inferenceClassification": "focused",
            "body": {"contentType": "html", "content": meta.body_html},
            "sender": address(&meta.from),
            "from": address(&meta.from),
            "toRecipients": meta.to.iter().map(address).collect::<Vec<_>>(),
            "ccRecipients": meta.cc.iter().map(address).collect::<Vec<_>>(),
            "bccRecipients": [],
            "replyTo": [],
            "flag": {"flagStatus": if meta.flagged { "flagged" } else { "notFlagged" }},
        })
    }

    fn list_messages(&self, folder_key: Option<u16>) -> GraphResult {
        let top = self.ctx.query.top(1000)?.unwrap_or(10);
        let skip = self
            .ctx
            .query
            .get("$skip")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        let select = self.ctx.query.select();
        let state = read(&self.tenant().state);
        let mut keys: Vec<(u32, u16, bool)> = self
            .keys(&state)
            .into_iter()
            .filter(|(_, f, _)| folder_key.is_none_or(|k| k == *f))
            .collect();
        // Newest first, as Outlook lists; generated keys grow older with the key.
        let generated = self.generated_count(&state);
        keys.sort_by_key(|(k, _, _)| {
            if *k >= generated {
                (0, u32::MAX - *k)
            } else {
                (1, *k)
            }
        });
        if let Some(filter) = self
            .ctx
            .query
            .get("$filter")
            .map(odata::parse_filter)
            .transpose()?
        {
            keys.retain(|(key, _, _)| {
                self.view(&state, *key)
                    .is_some_and(|view| odata::matches(&filter, &self.message_json(&view)))
            });
        }
        let mut items = Vec::new();
        for (key, _, _) in keys.iter().skip(skip).take(top) {
            if let Some(view) = self.view(&state, *key) {
                items.push(odata::project(
                    &self.message_json(&view),
                    select.as_deref(),
                    "message",
                    None,
                )?);
            }
        }
        let next = (skip + top < keys.len()).then(|| self.ctx.link_with_skip(skip + top));
        Ok(Reply::Json(
            200,
            odata::collection(
                self.ctx
                    .context(&format!("users('{}')/messages", self.user_id(&state))),
                items,
                next,
                None,
            ),
        ))
    }

    fn message_delta(&self, folder_key: u16) -> GraphResult {
        let page_size = max_page_size(self.ctx, 10, 1000);
        let state = read(&self.tenant().state);
        // State: since (None = initial round), upto (snapshot), cursor (next key), selection.
        let (since, upto, cursor, select) = if let Some(token) = self.ctx.query.get("$skiptoken") {
            let v = odata::decode_token(token)
                .filter(|v| v["f"].as_u64() == Some(folder_key as u64))
                .ok_or_else(sync_state_invalid)?;
            (
                v["s"].as_u64(),
                v["u"].as_u64().unwrap_or(0),
                v["c"].as_u64().unwrap_or(0) as u32,
                strings(&v["sel"]),
            )
        } else if let Some(token) = self.ctx.query.get("$deltatoken") {
            let v = odata::decode_token(token)
                .filter(|v| v["f"].as_u64() == Some(folder_key as u64))
                .ok_or_else(sync_state_invalid)?;
            (
                Some(v["s"].as_u64().unwrap_or(0)),
                state.seq,
                0,
                strings(&v["sel"]),
            )
        } else {
            (None, state.seq, 0, self.ctx.query.select())
        };
        // `$filter=receivedDateTime ge …` is set on the first request and kept in the tokens.
        let filter_text = match self
            .ctx
            .query
            .get("$skiptoken")
            .or(self.ctx.query.get("$deltatoken"))
        {
            Some(token) => {
                odata::decode_token(token).and_then(|v| v["flt"].as_str().map(str::to_owned))
            }
            None => self.ctx.query.get("$filter").map(str::to_owned),
        };
        let filter = filter_text
            .as_deref()
            .map(odata::parse_filter)
            .transpose()?;
        let overlay = state.mailboxes.get(&self.user);
        // Candidate keys in key order: everything on the first round, changes afterwards.
        let candidates: Vec<u32> = match since {
            None => self
                .keys(&state)
                .into_iter()
                .filter(|(k, f, _)| *f == folder_key && *k >= cursor)
                .map(|(k, _, _)| k)
                .collect(),
            Some(s) => {
                let mut changed: Vec<u32> = overlay
                    .map(|o| {
                        o.messages
                            .iter()
                            .filter(|(k, m)| **k >= cursor && m.version > s && m.version <= upto)
                            .map(|(k, _)| *k)
                            .collect()
                    })
                    .unwrap_or_default();
                changed.sort_unstable();
                changed
            }
        };
        let mut items = Vec::new();
        let mut next = None;
        for key in candidates {
            let entry = overlay.and_then(|o| o.messages.get(&key));
            if since.is_none() && entry.is_some_and(|e| e.version > upto) {
                continue;
            }
            let item = match (since, entry) {
                (Some(_), Some(e)) if e.deleted && e.folder == folder_key => {
                    Some(self.removed(key, e))
                }
                (Some(s), Some(e)) if e.folder != folder_key => e
                    .left
                    .iter()
                    .any(|(f, v)| *f == folder_key && *v > s && *v <= upto)
                    .then(|| self.removed(key, e)),
                (Some(_), Some(e)) if e.deleted => None,
                _ => match self.view(&state, key) {
                    Some(view)
                        if view.folder == folder_key
                            && filter
                                .as_ref()
                                .is_none_or(|f| odata::matches(f, &self.message_json(&view))) =>
                    {
                        Some(odata::project(
                            &with_type(self.message_json(&view)),
                            select.as_deref(),
                            "message",
                            None,
                        )?)
                    }
                    _ => None,
                },
            };
            let Some(item) = item else { continue };
            if items.len() == page_size {
                next = Some(key);
                break;
            }
            items.push(item);
        }
        let base = format!(
            "{}/users/{}/mailFolders/{}/messages/delta",
            self.ctx.base(),
            self.user_id(&state),
            self.folder_id(folder_key)
        );
        let (next_link, delta_link) = match next {
            Some(c) => (
                Some(format!(
                    "{base}?$skiptoken={}",
                    odata::encode_token(
                        &json!({"f": folder_key, "s": since, "u": upto, "c": c, "sel": select, "flt": filter_text})
                    )
                )),
                None,
            ),
            None => (
                None,
                Some(format!(
                    "{base}?$deltatoken={}",
                    odata::encode_token(
                        &json!({"f": folder_key, "s": upto, "sel": select, "flt": filter_text})
                    )
                )),
            ),
        };
        Ok(Reply::Json(
            200,
            odata::collection(
                self.ctx.context("Collection(message)"),
                items,
                next_link,
                delta_link,
            ),
        ))
    }

    fn removed(&self, key: u32, entry: &MessageState) -> Value {
        let id = if self.immutable() {
            self.tenant()
                .mail_id(mail_kind::IMMUTABLE_MESSAGE, self.user, key, 0)
        } else {
            // The id the client knew: from before the last move.
            self.tenant().mail_id(
                mail_kind::MESSAGE,
                self.user,
                key,
                entry.moves.saturating_sub(u32::from(!entry.deleted)),
            )
        };
        json!({"@odata.type": "#microsoft.graph.message", "id": id, "@removed": {"reason": "deleted"}})
    }

    fn message_route(&self, id: &str, tail: &[&str]) -> GraphResult {
        let m = self.ctx.method;
        match tail {
            [] if m == "GET" => {
                let state = read(&self.tenant().state);
                let view = self.resolve(&state, id)?;
                Ok(Reply::Json(
                    200,
                    odata::project(
                        &with_type(self.message_json(&view)),
                        self.ctx.query.select().as_deref(),
                        "message",
                        None,
                    )?,
                ))
            }
            [] if m == "PATCH" => self.patch(id),
            [] if m == "DELETE" => self.delete(id),
            ["$value"] if m == "GET" => self.mime(id),
            ["move" | "microsoft.graph.move"] if m == "POST" => self.move_to(id),
            ["attachments"] if m == "GET" => self.attachments(id),
            ["attachments"] if m == "POST" => self.add_attachment(id),
            [
                "attachments",
                "createUploadSession" | "microsoft.graph.createUploadSession",
            ] if m == "POST" => self.create_attachment_session(id),
            ["attachments", a] if m == "GET" => self.attachment(id, a, false),
            ["attachments", a, "$value"] if m == "GET" => self.attachment(id, a, true),
            [first, ..] => Err(GraphError::segment_not_found(first)),
            [] => Err(GraphError::new(
                405,
                "ErrorInvalidRequest",
                "The OData request is not supported.",
            )),
        }
    }

    fn mime(&self, id: &str) -> GraphResult {
        let state = read(&self.tenant().state);
        let view = self.resolve(&state, id)?;
        let bytes = match view.state.as_ref().and_then(|s| s.mime.clone()) {
            Some(raw) => raw.as_ref().clone(),
            None => mime::render(self.tenant().spec.seed, &view.meta),
        };
        Ok(Reply::Bytes {
            status: 200,
            content_type: "text/plain".to_owned(),
            body: Bytes::from(bytes),
            headers: Vec::new(),
        })
    }

    fn attachment_id(&self, view: &MessageView, index: usize) -> String {
        self.tenant()
            .mail_id(mail_kind::ATTACHMENT, self.user, view.key, index as u32)
    }

    fn attachment_json(
        &self,
        view: &MessageView,
        index: usize,
        spec: &AttachmentSpec,
        with_bytes: bool,
    ) -> Value {
        let bytes = mime::attachment_bytes(self.tenant().spec.seed, spec);
        let mut value = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": spec.content_type,
            "id": self.attachment_id(view, index),
            "lastModifiedDateTime": ts(view.meta.received),
            "name": spec.name,
            "contentType": spec.content_type,
            "size": bytes.len() + 300,
            "isInline": spec.is_inline,
            "contentId": spec.content_id,
            "contentLocation": Value::Null,
        });
        if with_bytes {
            value["contentBytes"] =
                json!(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()));
        }
        value
    }

    fn attachments(&self, id: &str) -> GraphResult {
        let state = read(&self.tenant().state);
        let view = self.resolve(&state, id)?;
        let items = view
            .meta
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| self.attachment_json(&view, i, a, true))
            .collect();
        Ok(Reply::Json(
            200,
            odata::collection(
                self.ctx.context("Collection(attachment)"),
                items,
                None,
                None,
            ),
        ))
    }

    fn attachment(&self, id: &str, attachment: &str, raw: bool) -> GraphResult {
        let state = read(&self.tenant().state);
        let view = self.resolve(&state, id)?;
        let index = match self.tenant().parse_mail_id(attachment) {
            Some((mail_kind::ATTACHMENT, user, key, index))
                if user == self.user && key == view.key =>
            {
                index as usize
            }
            _ => return Err(item_not_found()),
        };
        let spec = view
            .meta
            .attachments
            .get(index)
            .ok_or_else(item_not_found)?;
        if raw {
            let bytes = mime::attachment_bytes(self.tenant().spec.seed, spec);
            return Ok(Reply::Bytes {
                status: 200,
                content_type: spec.content_type.clone(),
                body: Bytes::from(bytes.as_ref().clone()),
                headers: Vec::new(),
            });
        }
        Ok(Reply::Json(
            200,
            self.attachment_json(&view, index, spec, true),
        ))
    }

    /// Stores a changed message and returns its new view.
    fn store(
        &self,
        state: &mut TenantState,
        key: u32,
        update: impl FnOnce(&mut MessageState),
    ) -> Option<MessageView> {
        store_message(
            self.tenant(),
            state,
            self.user,
            key,
            self.ctx.sim.now(),
            update,
        )
    }

    fn patch(&self, id: &str) -> GraphResult {
        let body: Value = serde_json::from_slice(self.ctx.body).map_err(|_| {
            GraphError::bad_request("RequestBodyRead", "The request body is not valid JSON.")
        })?;
        let mut state = write(&self.tenant().state);
        let view = self.resolve(&state, id)?;
        let mut meta = view.meta.as_ref().clone();
        if let Some(read) = body["isRead"].as_bool() {
            meta.is_read = read;
        }
        // Only drafts take a new subject.
        if let Some(subject) = body["subject"].as_str().filter(|_| meta.is_draft) {
            meta.subject = subject.to_owned();
        }
        if let Some(categories) = body["categories"].as_array() {
            meta.categories = categories
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect();
        }
        if let Some(importance) = body["importance"].as_str() {
            meta.importance = importance.to_ascii_lowercase();
        }
        if let Some(status) = body["flag"]["flagStatus"].as_str() {
            meta.flagged = status == "flagged";
        }
        // PR_MESSAGE_FLAGS is read-only after the first save: PATCHing it succeeds and changes
        // nothing (§3.4).
        let view = self
            .store(&mut state, view.key, |e| e.meta = Some(Arc::new(meta)))
            .ok_or_else(item_not_found)?;
        Ok(Reply::Json(200, with_type(self.message_json(&view))))
    }

    fn delete(&self, id: &str) -> GraphResult {
        let mut state = write(&self.tenant().state);
        let view = self.resolve(&state, id)?;
        self.store(&mut state, view.key, |e| e.deleted = true);
        Ok(Reply::NoContent)
    }

    fn move_to(&self, id: &str) -> GraphResult {
        let body: Value = serde_json::from_slice(self.ctx.body).map_err(|_| {
            GraphError::bad_request("RequestBodyRead", "The request body is not valid JSON.")
        })?;
        let destination = body["destinationId"].as_str().ok_or_else(|| {
            GraphError::bad_request(
                "ErrorInvalidParameter",
                "The parameter 'destinationId' is missing.",
            )
        })?;
        let target = self.folder_key(destination)?;
        let mut state = write(&self.tenant().state);
        let view = self.resolve(&state, id)?;
        let view = self
            .move_message(&mut state, view, target)
            .ok_or_else(item_not_found)?;
        Ok(Reply::Json(201, with_type(self.message_json(&view))))
    }

    fn move_message(
        &self,
        state: &mut TenantState,
        view: MessageView,
        target: u16,
    ) -> Option<MessageView> {
        move_message(
            self.tenant(),
            state,
            self.user,
            view,
            target,
            self.ctx.sim.now(),
        )
    }

    fn add_attachment(&self, id: &str) -> GraphResult {
        let body: Value = serde_json::from_slice(self.ctx.body).map_err(|_| {
            GraphError::bad_request("RequestBodyRead", "The request body is not valid JSON.")
        })?;
        let spec = attachment_from_json(&body)?;
        // outlook-large-attachments: one POST carries a file under 3 MB; larger ones need an
        // upload session.
        if let AttachmentBytes::Stored(bytes) = &spec.bytes
            && bytes.len() as u64 >= crate::simulator::attach::MIN_SIZE
        {
            return Err(GraphError::new(
                413,
                "ErrorRequestEntityTooLarge",
                "The attachment is too large for one request; attach files of 3 MB and more through an upload session.",
            ));
        }
        let mut state = write(&self.tenant().state);
        let view = self.resolve(&state, id)?;
        let mut meta = view.meta.as_ref().clone();
        meta.attachments.push(spec.clone());
        let index = meta.attachments.len() - 1;
        let view = self
            .store(&mut state, view.key, |e| {
                e.meta = Some(Arc::new(meta));
                e.mime = None;
            })
            .ok_or_else(item_not_found)?;
        Ok(Reply::Json(
            201,
            self.attachment_json(&view, index, &spec, false),
        ))
    }

    /// `POST …/messages/{id}/attachments/createUploadSession` with `{"AttachmentItem": {…}}`
    /// (attachment-createuploadsession): a file attachment of 3 MB to 150 MB, uploaded through
    /// the session's URL (`simulator::attach`).
    fn create_attachment_session(&self, id: &str) -> GraphResult {
        use crate::simulator::attach::{self, NewSession};
        let body: Value = serde_json::from_slice(self.ctx.body).map_err(|_| {
            GraphError::bad_request("RequestBodyRead", "The request body is not valid JSON.")
        })?;
        // Parameter names are case-insensitive in Graph; the docs write `AttachmentItem`.
        let item = body
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("attachmentItem"))
            })
            .map(|(_, v)| v)
            .filter(|v| v.is_object())
            .ok_or_else(|| {
                GraphError::bad_request(
                    "ErrorInvalidParameter",
                    "The AttachmentItem parameter is missing.",
                )
            })?;
        match item["attachmentType"].as_str() {
            Some(t) if t.eq_ignore_ascii_case("file") => {}
            Some(_) => {
                return Err(GraphError::bad_request(
                    "ErrorInvalidRequest",
                    "Only file attachments are supported by the simulator's upload sessions.",
                ));
            }
            None => {
                return Err(GraphError::bad_request(
                    "ErrorInvalidParameter",
                    "attachmentType is required.",
                ));
            }
        }
        let name = item["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                GraphError::bad_request("ErrorInvalidParameter", "The attachment name is missing.")
            })?;
        let size = item["size"].as_u64().ok_or_else(|| {
            GraphError::bad_request("ErrorInvalidParameter", "The attachment size is missing.")
        })?;
        if size < attach::MIN_SIZE {
            return Err(GraphError::bad_request(
                "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                "Attachment size must be greater than the minimum size.",
            ));
        }
        if size > attach::MAX_SIZE {
            return Err(GraphError::bad_request(
                "ErrorMessageSizeExceeded",
                "The message exceeds the maximum supported size.",
            ));
        }
        let key = {
            let state = read(&self.tenant().state);
            self.resolve(&state, id)?.key
        };
        let session = attach::open(
            self.ctx.sim,
            self.tenant(),
            NewSession {
                tenant: self.tenant().index,
                user: self.user,
                message: key,
                message_id: id.to_owned(),
                name: name.to_owned(),
                content_type: item["contentType"]
                    .as_str()
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                is_inline: item["isInline"].as_bool().unwrap_or(false),
                content_id: item["contentId"].as_str().map(str::to_owned),
                size,
                app_id: self.ctx.claims.app_id.clone(),
            },
        );
        Ok(Reply::Json(201, session))
    }

    fn create_message(&self, folder_key: u16) -> GraphResult {
        let now = self.ctx.sim.now();
        let content_type = self
            .ctx
            .header("content-type")
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        let (meta, raw) = if content_type.starts_with("text/plain") {
            // MIME create: base64 text; the result is always a draft (§3.4).
            let raw = mime::decode_base64_mime(self.ctx.body).map_err(|_| {
                GraphError::bad_request(
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                )
            })?;
            let meta = mime::parse(&raw, now).map_err(|_| {
                GraphError::bad_request("ErrorMimeContentInvalid", "The MIME content is invalid.")
            })?;
            (meta, Some(Arc::new(raw)))
        } else {
            let body: Value = serde_json::from_slice(self.ctx.body).map_err(|_| {
                GraphError::bad_request("RequestBodyRead", "The request body is not valid JSON.")
            })?;
            (message_from_json(&body, &self.owner_address(), now)?, None)
        };
        let mut state = write(&self.tenant().state);
        let key = add_message(&mut state, self.user, folder_key, meta, raw, now)
            .ok_or_else(item_not_found)?;
        let view = self.view(&state, key).ok_or_else(item_not_found)?;
        Ok(Reply::Json(201, with_type(self.message_json(&view))))
    }

    fn owner_address(&self) -> MailAddress {
        let state = read(&self.tenant().state);
        let user = &state.users[self.user as usize];
        MailAddress {
            name: user.display_name.clone(),
            address: user.user_principal_name.clone(),
        }
    }
}

fn with_type(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        let mut out = serde_json::Map::new();
        out.insert("@odata.type".to_owned(), json!("#microsoft.graph.message"));
        out.extend(std::mem::take(map));
        return Value::Object(out);
    }
    value
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    })
}

fn sync_state_invalid() -> GraphError {
    GraphError::bad_request(
        "SyncStateInvalid",
        "The sync state is invalid or was generated for another folder; restart synchronization.",
    )
}

fn attachment_from_json(body: &Value) -> Result<AttachmentSpec, GraphError> {
    if body["@odata.type"]
        .as_str()
        .is_some_and(|t| t != "#microsoft.graph.fileAttachment")
    {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "Only fileAttachment is supported by the simulator.",
        ));
    }
    let name = body["name"].as_str().ok_or_else(|| {
        GraphError::bad_request("ErrorInvalidParameter", "The attachment name is missing.")
    })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["contentBytes"].as_str().unwrap_or_default())
        .map_err(|_| {
            GraphError::bad_request(
                "ErrorInvalidRequest",
                "Invalid base64 string in contentBytes.",
            )
        })?;
    Ok(AttachmentSpec {
        name: name.to_owned(),
        content_type: body["contentType"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_owned(),
        bytes: AttachmentBytes::Stored(Arc::new(bytes)),
        is_inline: body["isInline"].as_bool().unwrap_or(false),
        content_id: body["contentId"].as_str().map(str::to_owned),
    })
}

fn recipients(value: &Value) -> Vec<MailAddress> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| {
                    let address = r["emailAddress"]["address"].as_str()?;
                    Some(MailAddress {
                        name: r["emailAddress"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        address: address.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON create. `PR_MESSAGE_FLAGS` (`Integer 0x0E07`) without `mfUnsent` (0x8) makes a
/// non-draft; `0x0E06`/`0x0039` set received/sent times (§3.4).
fn message_from_json(
    body: &Value,
    owner: &MailAddress,
    now: DateTime<Utc>,
) -> Result<MessageMeta, GraphError> {
    let mut is_draft = true;
    let mut is_read = body["isRead"].as_bool().unwrap_or(false);
    let (mut received, mut sent) = (now, now);
    if let Some(props) = body["singleValueExtendedProperties"].as_array() {
        for prop in props {
            let id = prop["id"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .replace("  ", " ");
            let value = prop["value"].as_str().unwrap_or_default();
            match id.as_str() {
                "integer 0x0e07" => {
                    let flags: i64 = value.parse().map_err(|_| {
                        GraphError::bad_request(
                            "ErrorInvalidExtendedPropertyValue",
                            "The extended property value is invalid.",
                        )
                    })?;
                    is_draft = flags & 0x8 != 0;
                    is_read = is_read || flags & 0x1 != 0;
                }
                "systemtime 0x0e06" => received = parse_time(value)?,
                "systemtime 0x0039" => sent = parse_time(value)?,
                _ => {}
            }
        }
    }
    let body_content = body["body"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let html = body["body"]["contentType"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let from = recipients(&json!([body["from"].clone()]))
        .into_iter()
        .next()
        .unwrap_or_else(|| owner.clone());
    let attachments = match body["attachments"].as_array() {
        Some(list) => list
            .iter()
            .map(attachment_from_json)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let text = if html {
        strip_tags(&body_content)
    } else {
        body_content.clone()
    };
    Ok(MessageMeta {
        subject: body["subject"].as_str().unwrap_or_default().to_owned(),
        from,
        to: recipients(&body["toRecipients"]),
        cc: recipients(&body["ccRecipients"]),
        received,
        sent,
        body_html: if html {
            body_content
        } else {
            format!(
                "<html><body><pre>{}</pre></body></html>",
                generate::html_escape(&body_content)
            )
        },
        body_text: text,
        internet_message_id: body["internetMessageId"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!(
                    "<{:x}@simulator.local>",
                    generate::hash(&[now.timestamp_nanos_opt().unwrap_or(0) as u64])
                )
            }),
        conversation_id: generate::hash(&[
            body["subject"].as_str().unwrap_or_default().len() as u64,
            received.timestamp() as u64,
        ]),
        in_reply_to: None,
        is_read,
        is_draft,
        importance: body["importance"]
            .as_str()
            .unwrap_or("normal")
            .to_ascii_lowercase(),
        categories: body["categories"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        attachments,
        flagged: body["flag"]["flagStatus"].as_str() == Some("flagged"),
    })
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, GraphError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            GraphError::bad_request(
                "ErrorInvalidExtendedPropertyValue",
                "The SystemTime extended property value is invalid.",
            )
        })
}

/// The text of an HTML body (tags dropped), for previews.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for ch in html.chars() {
        match ch {
            '<' => inside = true,
            '>' => inside = false,
            _ if !inside => out.push(ch),
            _ => {}
        }
    }
    out
}

/// Control-API helpers: changes made "by the user in Outlook".
pub mod control {
    use super::*;

    /// Adds a message to a folder (by well-known name or id) of a user's mailbox.
    pub fn add_message(
        tenant: &Tenant,
        user: u32,
        folder_name: &str,
        meta: MessageMeta,
        now: DateTime<Utc>,
    ) -> Option<u32> {
        let folder_key = FOLDERS
            .iter()
            .find(|f| f.3 == Some(folder_name) || f.2.eq_ignore_ascii_case(folder_name))
            .map(|f| f.0)
            .unwrap_or(folder::INBOX);
        let mut state = write(&tenant.state);
        super::add_message(&mut state, user, folder_key, meta, None, now)
    }
}
