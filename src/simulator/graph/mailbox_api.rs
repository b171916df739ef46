//! The mailbox import/export API's read side (graph-protocol.md §3.6): `users/{id}/settings/exchange`
//! (mailbox discovery; the archive id on `/beta` only), and under
//! `admin/exchange/mailboxes/{mailboxId}`: folders, child folders, folder delta, items, one item,
//! item delta with `@removed`, paging and expiring tokens, and the auxiliary archive's
//! `308 Permanent Redirect`. `exportItems` and `createImportSession` live in `export`.
//! It renders JSON only; items and ids come from `mailbox`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Ctx, GraphError, GraphResult, Reply, export, mail, max_page_size, odata};
use crate::simulator::generate::folder;
use crate::simulator::mailbox::{self, Folder, ItemKey, ItemSummary, MailboxKind, MailboxRef};
use crate::simulator::state::{Found, TenantState, read};

fn ts(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Option<GraphResult> {
    match segments {
        ["users", user, "settings", "exchange"] if ctx.method == "GET" => {
            Some(exchange_settings(ctx, user))
        }
        ["admin", "exchange", "mailboxes", id, rest @ ..] => Some(mailbox_route(ctx, id, rest)),
        _ => None,
    }
}

/// The owner of a mailbox must be live and licensed, as for the mail endpoints.
fn live_owner(state: &TenantState, user: u32) -> Result<(), GraphError> {
    match state.users.get(user as usize) {
        Some(u) if u.licensed && u.life == crate::simulator::state::Life::Active => Ok(()),
        _ => Err(mail::mailbox_not_enabled()),
    }
}

fn exchange_settings(ctx: &Ctx<'_>, user_key: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let user = match state.find_user(user_key) {
        Found::Active(i) | Found::SoftDeleted(i) => i,
        Found::Missing => return Err(GraphError::directory_not_found(user_key)),
    };
    live_owner(&state, user)?;
    let id = |kind| mailbox::mailbox_id(ctx.tenant, MailboxRef { user, kind });
    let mut value = json!({
        "@odata.context": ctx.context(&format!("users('{}')/settings/exchange/$entity", odata::escape(user_key))),
        "primaryMailboxId": id(MailboxKind::Primary),
    });
    if ctx.is_beta() {
        let archive = MailboxRef {
            user,
            kind: MailboxKind::Archive,
        };
        value["id"] = json!(state.users[user as usize].id.to_string());
        value["inPlaceArchiveMailboxId"] = if mailbox::exists(ctx.tenant, &state, archive) {
            json!(id(MailboxKind::Archive))
        } else {
            Value::Null
        };
    }
    Ok(Reply::Json(200, value))
}

/// Resolves `{mailboxId}`: this tenant's, existing, reachable on this version of the API.
pub fn resolve_mailbox(ctx: &Ctx<'_>, id: &str) -> Result<MailboxRef, GraphError> {
    let state = read(&ctx.tenant.state);
    let not_found = || {
        GraphError::new(
            404,
            "ErrorInvalidMailbox",
            &format!("The mailbox '{id}' was not found."),
        )
    };
    let found = mailbox::parse_mailbox_id(ctx.tenant, id)
        .filter(|m| mailbox::exists(ctx.tenant, &state, *m))
        .ok_or_else(not_found)?;
    live_owner(&state, found.user)?;
    if found.kind != MailboxKind::Primary && !ctx.is_beta() {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "Archive mailboxes are supported on the beta endpoint only.",
        ));
    }
    Ok(found)
}

fn mailbox_route(ctx: &Ctx<'_>, id: &str, rest: &[&str]) -> GraphResult {
    let mb = resolve_mailbox(ctx, id)?;
    let api = MailboxApi { ctx, mb, id };
    let m = ctx.method;
    match rest {
        ["folders"] if m == "GET" => api.list_folders(folder::ROOT),
        ["folders"] if m == "POST" => api.create_folder(folder::ROOT),
        ["folders", "delta" | "delta()"] if m == "GET" => api.folder_delta(None),
        ["folders", f, tail @ ..] => {
            let found = api.folder(f)?;
            if mailbox::is_expanded(mb, found.key) {
                return Ok(api.redirect_to_auxiliary());
            }
            match tail {
                [] if m == "GET" => api.get_folder(&found),
                ["childFolders"] if m == "GET" => api.list_folders(found.key),
                ["childFolders"] if m == "POST" => api.create_folder(found.key),
                ["childFolders", "delta" | "delta()"] if m == "GET" => {
                    api.folder_delta(Some(found.key))
                }
                ["items"] if m == "GET" => api.list_items(&found),
                ["items", "delta" | "delta()"] if m == "GET" => api.item_delta(&found),
                ["items", item] if m == "GET" => api.get_item(&found, item),
                [first, ..] => Err(GraphError::segment_not_found(first)),
                [] => Err(method_not_allowed()),
            }
        }
        ["exportItems"] if m == "POST" => export::export_items(ctx, mb),
        ["createImportSession"] if m == "POST" => export::create_import_session(ctx, mb),
        [first, ..] => Err(GraphError::segment_not_found(first)),
        [] => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> GraphError {
    GraphError::new(
        405,
        "ErrorInvalidRequest",
        "The OData request is not supported.",
    )
}

fn item_not_found() -> GraphError {
    GraphError::new(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn sync_state_invalid() -> GraphError {
    GraphError::bad_request(
        "SyncStateInvalid",
        "The sync state is invalid or was generated for another folder; restart synchronization.",
    )
}

struct MailboxApi<'a, 'b> {
    ctx: &'a Ctx<'b>,
    mb: MailboxRef,
    id: &'a str,
}

impl MailboxApi<'_, '_> {
    fn folder(&self, id: &str) -> Result<Folder, GraphError> {
        let state = read(&self.ctx.tenant.state);
        mailbox::find_folder(self.ctx.tenant, &state, self.mb, id).ok_or_else(|| {
            if id.len() < 20 {
                GraphError::bad_request("ErrorInvalidIdMalformed", "Id is malformed.")
            } else {
                item_not_found()
            }
        })
    }

    fn root(&self) -> String {
        format!("{}/admin/exchange/mailboxes/{}", self.ctx.base(), self.id)
    }

    /// The same request against the auxiliary archive (handle-archive-mailbox-redirects).
    fn redirect_to_auxiliary(&self) -> Reply {
        let auxiliary = mailbox::mailbox_id(
            self.ctx.tenant,
            MailboxRef {
                user: self.mb.user,
                kind: MailboxKind::Auxiliary,
            },
        );
        // Swap the raw `{mailboxId}` segment, however it was escaped, for the auxiliary's id.
        let raw = self.ctx.req.path();
        let path = match raw.find("/mailboxes/") {
            Some(at) => {
                let start = at + "/mailboxes/".len();
                let end = raw[start..].find('/').map_or(raw.len(), |i| start + i);
                format!("{}{auxiliary}{}", &raw[..start], &raw[end..])
            }
            None => raw.to_owned(),
        };
        let query = self.ctx.req.query_string();
        let location = if query.is_empty() {
            format!("{}{path}", self.ctx.sim.base_url)
        } else {
            format!("{}{path}?{query}", self.ctx.sim.base_url)
        };
        Reply::Bytes {
            status: 308,
            content_type: "text/plain".to_owned(),
            body: bytes::Bytes::new(),
            headers: vec![("Location", location)],
        }
    }

    fn folder_json(&self, state: &TenantState, f: &Folder, all: &[Folder]) -> Value {
        let count = mailbox::folder_items(self.ctx.tenant, state, self.mb, f.key).len();
        json!({
            "@odata.type": "#microsoft.graph.mailboxFolder",
            "id": mailbox::folder_id(self.ctx.tenant, self.mb, f.key),
            "displayName": f.name,
            "parentFolderId": mailbox::folder_id(self.ctx.tenant, self.mb, f.parent),
            "childFolderCount": all.iter().filter(|c| c.parent == f.key && c.key != f.key).count(),
            "totalItemCount": count,
            "type": f.class,
            "wellKnownName": f.well_known,
        })
    }

    fn page_params(&self) -> Result<(usize, usize), GraphError> {
        let top = self.ctx.query.top(1000)?.unwrap_or(10);
        let skip = match self.ctx.query.get("$skip") {
            None => 0,
            Some(text) => text.parse::<usize>().map_err(|_| {
                GraphError::bad_request("BadRequest", &format!("Invalid $skip value '{text}'."))
            })?,
        };
        Ok((top, skip))
    }

    /// Applies `$filter`, `$select`, `$skip` and `$top` to rendered entities.
    fn page(&self, all: Vec<Value>, type_name: &str, context: String) -> GraphResult {
        let (top, skip) = self.page_params()?;
        let filter = self
            .ctx
            .query
            .get("$filter")
            .map(odata::parse_filter)
            .transpose()?;
        let matching: Vec<Value> = all
            .into_iter()
            .filter(|v| filter.as_ref().is_none_or(|f| odata::matches(f, v)))
            .collect();
        let select = self.ctx.query.select();
        let page = matching
            .iter()
            .skip(skip)
            .take(top)
            .map(|v| odata::project(v, select.as_deref(), type_name, None))
            .collect::<Result<Vec<_>, _>>()?;
        let next = (skip + top < matching.len()).then(|| self.ctx.link_with_skip(skip + top));
        Ok(Reply::Json(
            200,
            odata::collection(context, page, next, None),
        ))
    }

    fn list_folders(&self, parent: u16) -> GraphResult {
        let state = read(&self.ctx.tenant.state);
        let all = mailbox::folders(&state, self.mb);
        let children: Vec<Value> = all
            .iter()
            .filter(|f| f.parent == parent && f.key != folder::ROOT)
            .map(|f| self.folder_json(&state, f, &all))
            .collect();
        let context = self
            .ctx
            .context(&format!("admin/exchange/mailboxes/{}/folders", self.id));
        self.page(children, "mailboxFolder", context)
    }

    /// `mailbox-post-folders`: a new folder of the primary mailbox (it shares its folders with
    /// `mailFolders`); a name taken under the parent answers 409 `ErrorFolderExists`.
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
        if self.mb.kind != MailboxKind::Primary {
            return Err(GraphError::new(
                403,
                "ErrorAccessDenied",
                "Folders can be created only in primary mailboxes in this simulator.",
            ));
        }
        let mut state = crate::simulator::state::write(&self.ctx.tenant.state);
        if mailbox::folders(&state, self.mb).iter().any(|f| {
            f.parent == parent && f.key != folder::ROOT && f.name.eq_ignore_ascii_case(name)
        }) {
            return Err(GraphError::new(
                409,
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            ));
        }
        let version = state.bump();
        let overlay = state.mailboxes.entry(self.mb.user).or_default();
        let key = folder::FIRST_CREATED + overlay.created_folders.len() as u16;
        overlay
            .created_folders
            .push(crate::simulator::state::FolderState {
                key,
                parent,
                display_name: name.to_owned(),
                hidden: false,
                deleted: false,
                version,
            });
        let all = mailbox::folders(&state, self.mb);
        let created = all
            .iter()
            .find(|f| f.key == key)
            .cloned()
            .ok_or_else(item_not_found)?;
        let mut value = self.folder_json(&state, &created, &all);
        value["@odata.context"] = json!(self.ctx.context(&format!(
            "admin/exchange/mailboxes/{}/folders/$entity",
            self.id
        )));
        Ok(Reply::Json(201, value))
    }

    fn get_folder(&self, f: &Folder) -> GraphResult {
        let state = read(&self.ctx.tenant.state);
        let all = mailbox::folders(&state, self.mb);
        let mut value = odata::project(
            &self.folder_json(&state, f, &all),
            self.ctx.query.select().as_deref(),
            "mailboxFolder",
            None,
        )?;
        value["@odata.context"] = json!(self.ctx.context(&format!(
            "admin/exchange/mailboxes/{}/folders/$entity",
            self.id
        )));
        Ok(Reply::Json(200, value))
    }

    /// Reads a `$deltatoken`/`$skiptoken`, refusing foreign, garbled or expired ones.
    fn token(
        &self,
        state: &TenantState,
        expect_folder: Option<u16>,
    ) -> Result<Option<Value>, GraphError> {
        let Some(text) = self
            .ctx
            .query
            .get("$skiptoken")
            .or(self.ctx.query.get("$deltatoken"))
        else {
            return Ok(None);
        };
        let token = odata::decode_token(text)
            .filter(|v| v["k"].as_str() == Some(kind_name(self.mb.kind)))
            .filter(|v| v["f"].as_u64() == expect_folder.map(u64::from))
            .ok_or_else(sync_state_invalid)?;
        let taken = token["s"]
            .as_u64()
            .unwrap_or(token["u"].as_u64().unwrap_or(0));
        if taken < mailbox::resync_floor(state, self.mb.user) {
            let initial = format!("{}{}", self.ctx.sim.base_url, self.ctx.req.path());
            return Err(GraphError::new(
                410,
                "syncStateNotFound",
                "The sync state generation is not found or has expired. Restart synchronization.",
            )
            .with_header("Location", initial));
        }
        Ok(Some(token))
    }

    /// `folders/delta` (every folder) or `folders/{id}/childFolders/delta` (its children).
    fn folder_delta(&self, parent: Option<u16>) -> GraphResult {
        let page_size = max_page_size(self.ctx, 100, 1000);
        let state = read(&self.ctx.tenant.state);
        let token = self.token(&state, parent)?;
        let since = token.as_ref().and_then(|t| t["s"].as_u64());
        let offset = token.as_ref().and_then(|t| t["o"].as_u64()).unwrap_or(0) as usize;
        let upto = token
            .as_ref()
            .filter(|t| t["o"].is_u64())
            .and_then(|t| t["u"].as_u64())
            .unwrap_or(state.seq);
        let all = mailbox::folders(&state, self.mb);
        let mut entries: Vec<Value> = Vec::new();
        let overlay = state.mailboxes.get(&self.mb.user);
        let version_of = |key: u16| {
            overlay
                .and_then(|o| o.created_folders.iter().find(|c| c.key == key))
                .map_or(0, |c| c.version)
        };
        let wanted = |f: &&Folder| f.key != folder::ROOT && parent.is_none_or(|p| f.parent == p);
        for f in all.iter().filter(wanted) {
            if since.is_none_or(|s| version_of(f.key) > s) {
                entries.push(self.folder_json(&state, f, &all));
            }
        }
        if let (Some(s), Some(overlay), MailboxKind::Primary) = (since, overlay, self.mb.kind) {
            for gone in overlay
                .created_folders
                .iter()
                .filter(|c| c.deleted && c.version > s && parent.is_none_or(|p| c.parent == p))
            {
                entries.push(json!({
                    "@odata.type": "#microsoft.graph.mailboxFolder",
                    "id": mailbox::folder_id(self.ctx.tenant, self.mb, gone.key),
                    "@removed": {"reason": "deleted"},
                }));
            }
        }
        let select = token
            .as_ref()
            .and_then(|t| {
                t["sel"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
            })
            .or_else(|| self.ctx.query.select());
        let page = entries
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|v| odata::project(v, select.as_deref(), "mailboxFolder", None))
            .collect::<Result<Vec<_>, _>>()?;
        let base = match parent {
            None => format!("{}/folders/delta", self.root()),
            Some(p) => format!(
                "{}/folders/{}/childFolders/delta",
                self.root(),
                mailbox::folder_id(self.ctx.tenant, self.mb, p)
            ),
        };
        let kind = kind_name(self.mb.kind);
        let (next, delta) = if offset + page_size < entries.len() {
            let state_token = json!({"k": kind, "f": parent, "s": since, "u": upto, "o": offset + page_size, "sel": select});
            (
                Some(format!(
                    "{base}?$skiptoken={}",
                    odata::encode_token(&state_token)
                )),
                None,
            )
        } else {
            let state_token = json!({"k": kind, "f": parent, "s": upto, "sel": select});
            (
                None,
                Some(format!(
                    "{base}?$deltatoken={}",
                    odata::encode_token(&state_token)
                )),
            )
        };
        Ok(Reply::Json(
            200,
            odata::collection(
                self.ctx.context("Collection(mailboxFolder)"),
                page,
                next,
                delta,
            ),
        ))
    }

    fn item_json(&self, summary: &ItemSummary) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.mailboxItem",
            "@odata.etag": format!("W/\"{}\"", summary.change_key),
            "id": mailbox::item_id(self.ctx.tenant, self.mb.user, summary.item),
            "createdDateTime": ts(summary.created),
            "lastModifiedDateTime": ts(summary.modified),
            "changeKey": summary.change_key,
            "categories": summary.categories,
            "type": summary.class,
            "size": summary.size,
        })
    }

    fn list_items(&self, f: &Folder) -> GraphResult {
        let state = read(&self.ctx.tenant.state);
        let keys = mailbox::folder_items(self.ctx.tenant, &state, self.mb, f.key);
        let context = self.ctx.context(&format!(
            "admin/exchange/mailboxes/{}/folders('{}')/items",
            self.id,
            mailbox::folder_id(self.ctx.tenant, self.mb, f.key)
        ));
        let render = |item: ItemKey| {
            mailbox::summary(self.ctx.tenant, &state, self.mb.user, item)
                .map(|s| self.item_json(&s))
        };
        if self.ctx.query.get("$filter").is_some() {
            return self.page(
                keys.into_iter().filter_map(render).collect(),
                "mailboxItem",
                context,
            );
        }
        // Without a filter only the requested page is built: a folder may hold many thousands.
        let (top, skip) = self.page_params()?;
        let select = self.ctx.query.select();
        let page = keys
            .iter()
            .skip(skip)
            .take(top)
            .filter_map(|item| render(*item))
            .map(|v| odata::project(&v, select.as_deref(), "mailboxItem", None))
            .collect::<Result<Vec<_>, _>>()?;
        let next = (skip + top < keys.len()).then(|| self.ctx.link_with_skip(skip + top));
        Ok(Reply::Json(
            200,
            odata::collection(context, page, next, None),
        ))
    }

    fn get_item(&self, f: &Folder, id: &str) -> GraphResult {
        let state = read(&self.ctx.tenant.state);
        let summary = mailbox::parse_item_id(self.ctx.tenant, self.mb.user, id)
            .and_then(|item| mailbox::summary(self.ctx.tenant, &state, self.mb.user, item))
            .filter(|s| s.folder == f.key)
            .ok_or_else(item_not_found)?;
        Ok(Reply::Json(
            200,
            odata::project(
                &self.item_json(&summary),
                self.ctx.query.select().as_deref(),
                "mailboxItem",
                None,
            )?,
        ))
    }

    fn removed(&self, item: ItemKey) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.mailboxItem",
            "id": mailbox::item_id(self.ctx.tenant, self.mb.user, item),
            "@removed": {"reason": "deleted"},
        })
    }

    fn item_delta(&self, f: &Folder) -> GraphResult {
        let page_size = max_page_size(self.ctx, 10, 1000);
        let state = read(&self.ctx.tenant.state);
        let token = self.token(&state, Some(f.key))?;
        let paging = self.ctx.query.get("$skiptoken").is_some();
        // since: None on the first round; upto: the snapshot; cursor: first (kind, key) to look at.
        let since = token.as_ref().and_then(|t| t["s"].as_u64());
        let upto = match &token {
            Some(t) if paging => t["u"].as_u64().unwrap_or(state.seq),
            _ => state.seq,
        };
        let cursor = match &token {
            Some(t) if paging => ItemKey {
                kind: t["ck"].as_u64().unwrap_or(0) as u8,
                key: t["c"].as_u64().unwrap_or(0) as u32,
            },
            _ => ItemKey { kind: 0, key: 0 },
        };
        let select = match &token {
            Some(t) => t["sel"].as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            }),
            None => self.ctx.query.select(),
        };
        let tenant = self.ctx.tenant;
        let user = self.mb.user;
        let mut items = Vec::new();
        let mut next = None;
        let mut push = |item: ItemKey, value: Value, items: &mut Vec<Value>| -> bool {
            if items.len() == page_size {
                next = Some(item);
                return false;
            }
            items.push(value);
            true
        };
        match since {
            None => {
                let changed_after: std::collections::HashSet<ItemKey> =
                    mailbox::changes(&state, self.mb, upto, u64::MAX)
                        .into_iter()
                        .map(|c| c.item)
                        .collect();
                for item in mailbox::folder_items(tenant, &state, self.mb, f.key) {
                    if item < cursor || changed_after.contains(&item) {
                        continue;
                    }
                    let Some(summary) = mailbox::summary(tenant, &state, user, item) else {
                        continue;
                    };
                    let value = odata::project(
                        &self.item_json(&summary),
                        select.as_deref(),
                        "mailboxItem",
                        None,
                    )?;
                    if !push(item, value, &mut items) {
                        break;
                    }
                }
            }
            Some(s) => {
                for change in mailbox::changes(&state, self.mb, s, upto) {
                    if change.item < cursor || !mailbox::holds_change(self.mb, &change) {
                        continue;
                    }
                    let left_here = change
                        .left
                        .iter()
                        .any(|(lf, v)| *lf == f.key && *v > s && *v <= upto);
                    let value = if change.folder == f.key && !change.deleted {
                        match mailbox::summary(tenant, &state, user, change.item) {
                            Some(summary) => odata::project(
                                &self.item_json(&summary),
                                select.as_deref(),
                                "mailboxItem",
                                None,
                            )?,
                            None => continue,
                        }
                    } else if change.folder == f.key || left_here {
                        self.removed(change.item)
                    } else {
                        continue;
                    };
                    if !push(change.item, value, &mut items) {
                        break;
                    }
                }
            }
        }
        let base = format!(
            "{}/folders/{}/items/delta",
            self.root(),
            mailbox::folder_id(tenant, self.mb, f.key)
        );
        let kind = kind_name(self.mb.kind);
        let (next_link, delta_link) = match next {
            Some(c) => {
                let t = json!({"k": kind, "f": f.key, "s": since, "u": upto, "ck": c.kind, "c": c.key, "sel": select});
                (
                    Some(format!("{base}?$skiptoken={}", odata::encode_token(&t))),
                    None,
                )
            }
            None => {
                let t = json!({"k": kind, "f": f.key, "s": upto, "sel": select});
                (
                    None,
                    Some(format!("{base}?$deltatoken={}", odata::encode_token(&t))),
                )
            }
        };
        Ok(Reply::Json(
            200,
            odata::collection(
                self.ctx.context("Collection(mailboxItem)"),
                items,
                next_link,
                delta_link,
            ),
        ))
    }
}

fn kind_name(kind: MailboxKind) -> &'static str {
    match kind {
        MailboxKind::Primary => "p",
        MailboxKind::Archive => "a",
        MailboxKind::Auxiliary => "x",
    }
}
