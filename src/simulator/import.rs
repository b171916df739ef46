//! The stand-in for `outlook.office365.com`'s import endpoint (import-exchange-mailbox-item):
//! `POST /_outlook/api/{gv1.0|gbeta}/Mailboxes('{mailboxId}')/importItem?authtoken=...`, reached
//! through the `importUrl` of a session `createImportSession` opened. The token in the URL is the
//! only credential (no bearer); sessions expire. `Mode: create` makes a new item from the opaque
//! stream (a message keeps the stream's draft state, so an exported received message comes back
//! as a received message, not a draft); `Mode: update` replaces an item whose `ItemId` and
//! `ChangeKey` still match. The same mailbox limits and mail faults apply as on Graph.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::faults::Fault;
use super::mailbox::{self, MailboxKind, MailboxRef};
use super::record::{self, StreamError};
use super::state::{Simulator, lock, read, write};
use super::throttle::{Caller, Scope, Workload};

/// First path segment of import URLs.
pub const PATH_PREFIX: &str = "_outlook";

/// An open import session.
#[derive(Debug, Clone)]
pub struct ImportSession {
    pub tenant: usize,
    pub mailbox: MailboxRef,
    pub app_id: String,
    pub expires: DateTime<Utc>,
}

/// Sessions by token; expired ones are dropped whenever a new one opens.
pub type ImportSessions = std::sync::Mutex<HashMap<String, ImportSession>>;

/// Opens a session and returns its token.
pub fn open_session(sim: &Simulator, session: ImportSession) -> String {
    let mut random = [0u8; 24];
    rand::Rng::fill(&mut rand::rng(), &mut random);
    let token = hex::encode(random);
    let now = sim.now();
    let mut sessions = lock(&sim.import_sessions);
    sessions.retain(|_, s| s.expires > now);
    sessions.insert(token.clone(), session);
    token
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json")
        .body(json!({"error": {"code": code, "message": message}}).to_string())
}

/// The `Mailboxes('MBX:...')` segment's id.
fn path_mailbox(segment: &str) -> Option<&str> {
    segment
        .strip_prefix("Mailboxes('")
        .and_then(|rest| rest.strip_suffix("')"))
}

pub async fn handle(
    sim: &Simulator,
    req: &HttpRequest,
    segments: &[String],
    body: &[u8],
) -> HttpResponse {
    let version = match segments {
        [api, version, mailbox, action]
            if api == "api"
                && (version == "gv1.0" || version == "gbeta")
                && action == "importItem"
                && path_mailbox(mailbox).is_some() =>
        {
            version.clone()
        }
        _ => return error(404, "ErrorInvalidUrl", "The requested URL was not found."),
    };
    if req.method() != actix_web::http::Method::POST {
        return error(
            405,
            "ErrorInvalidRequest",
            "Only POST is supported on an import URL.",
        );
    }
    let token = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "authtoken")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let session = lock(&sim.import_sessions).get(&token).cloned();
    let Some(session) = session.filter(|s| s.expires > sim.now()) else {
        return error(
            401,
            "InvalidAuthenticationToken",
            "The import session is unknown or has expired; create a new import session.",
        );
    };
    let Some(tenant) = sim.tenants.get(session.tenant) else {
        return error(
            401,
            "InvalidAuthenticationToken",
            "The import session is unknown.",
        );
    };
    let session_mailbox = mailbox::mailbox_id(tenant, session.mailbox);
    if path_mailbox(&segments[2]) != Some(session_mailbox.as_str()) {
        return error(
            401,
            "InvalidAuthenticationToken",
            "The token does not belong to this mailbox.",
        );
    }
    // Counted like every Graph request, so a benchmark sees what an import restore costs.
    sim.metrics.count(
        &session.app_id,
        &tenant.id.to_string(),
        Some(&session_mailbox),
        "importItem",
    );
    let (fault, latency) = sim.faults.pick(Workload::Mail);
    if let Fault::Status(status, retry) = fault {
        let mut response = error(
            status,
            if status == 429 {
                "TooManyRequests"
            } else {
                "ErrorServerBusy"
            },
            "Please retry again later.",
        );
        if retry > 0.0
            && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&format!("{retry}"))
        {
            response
                .headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, value);
        }
        return response;
    }
    let tenant_id = tenant.id.to_string();
    let users = read(&tenant.state).users.len();
    let caller = Caller {
        now: sim.now(),
        app_id: &session.app_id,
        tenant: tenant.index,
        tenant_id: &tenant_id,
        users_in_tenant: users,
        licences_in_tenant: tenant.licences() as usize,
        resource: &session_mailbox,
    };
    let admission = match sim.throttle.admit(
        &caller,
        Scope::Mailbox {
            user: session.mailbox.user,
        },
        1.0,
        body.len() as u64,
    ) {
        Ok(admission) => admission,
        Err(refusal) => {
            sim.metrics.status(refusal.status);
            let mut response = error(refusal.status, refusal.code, &refusal.message);
            if let Some(retry) = refusal.retry_after
                && let Ok(value) =
                    actix_web::http::header::HeaderValue::from_str(&format!("{retry}"))
            {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, value);
            }
            return response;
        }
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let response = import_item(sim, tenant, session.mailbox, &version, body);
    drop(admission.permit);
    response
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn import_item(
    sim: &Simulator,
    tenant: &super::state::Tenant,
    mb: MailboxRef,
    version: &str,
    body: &[u8],
) -> HttpResponse {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(
            400,
            "ErrorInvalidRequest",
            "The request body is not valid JSON.",
        );
    };
    let (Some(folder_id), Some(mode), Some(data)) = (
        field(&body, "FolderId"),
        field(&body, "Mode"),
        field(&body, "Data"),
    ) else {
        return error(
            400,
            "ErrorInvalidRequest",
            "FolderId, Mode and Data are required.",
        );
    };
    let record = match record::decode(data) {
        Ok(record) => record,
        Err(StreamError::Base64) => {
            return error(
                400,
                "ErrorInvalidRequest",
                "Data is not a valid base64 string.",
            );
        }
        Err(StreamError::Corrupt) => {
            return error(
                400,
                "ErrorCorruptData",
                "The item data is corrupt or was not produced by an export.",
            );
        }
    };
    let now = sim.now();
    let mut state = write(&tenant.state);
    let owner_live = state
        .users
        .get(mb.user as usize)
        .is_some_and(|u| u.licensed && u.life == super::state::Life::Active);
    if !owner_live {
        return error(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        );
    }
    let Some(folder) = mailbox::find_folder(tenant, &state, mb, folder_id) else {
        return error(
            404,
            "ErrorFolderNotFound",
            "The specified folder could not be found in the store.",
        );
    };
    if mailbox::is_expanded(mb, folder.key) {
        let auxiliary = mailbox::mailbox_id(
            tenant,
            MailboxRef {
                user: mb.user,
                kind: MailboxKind::Auxiliary,
            },
        );
        return HttpResponse::Conflict().content_type("application/json").body(
            json!({"Message": format!("Invalid import session. The target session is expected in mailbox {auxiliary}.")}).to_string(),
        );
    }
    let item_id = field(&body, "ItemId");
    let change_key = field(&body, "ChangeKey");
    let item = match mode.to_ascii_lowercase().as_str() {
        "create" => {
            if item_id.is_some() || change_key.is_some() {
                return error(
                    400,
                    "ErrorInvalidRequest",
                    "ItemId and ChangeKey are not allowed in create mode.",
                );
            }
            match mailbox::add(tenant, &mut state, mb, folder.key, record, now) {
                Some(item) => item,
                None => return error(404, "ErrorItemNotFound", "The mailbox is not available."),
            }
        }
        "update" => {
            let (Some(item_id), Some(change_key)) = (item_id, change_key) else {
                return error(
                    400,
                    "ErrorInvalidRequest",
                    "ItemId and ChangeKey are required in update mode.",
                );
            };
            let current = mailbox::parse_item_id(tenant, mb.user, item_id)
                .and_then(|item| mailbox::summary(tenant, &state, mb.user, item))
                .filter(|s| s.folder == folder.key);
            let Some(current) = current else {
                return error(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            };
            if current.change_key != change_key {
                return error(
                    409,
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                );
            }
            if !mailbox::replace(tenant, &mut state, mb.user, current.item, record, now) {
                return error(
                    400,
                    "ErrorInvalidRequest",
                    "The data is of another item type than the item to update.",
                );
            }
            current.item
        }
        _ => return error(400, "ErrorInvalidRequest", "Mode must be create or update."),
    };
    let Some(summary) = mailbox::summary(tenant, &state, mb.user, item) else {
        return error(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    HttpResponse::Ok().content_type("application/json").body(
        json!({
            "@odata.context": format!("{}/{PATH_PREFIX}/api/{version}/$metadata#microsoft.graph.importMailboxItemResponse", sim.base_url),
            "itemId": mailbox::item_id(tenant, mb.user, item),
            "changeKey": summary.change_key,
        })
        .to_string(),
    )
}
