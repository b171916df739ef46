//! The stand-in for Outlook's attachment upload sessions (learn: `attachment-createuploadsession`,
//! `outlook-large-attachments`). `POST /users/{id}/messages/{id}/attachments/createUploadSession`
//! (routed in `graph::mail`) opens a session for one file attachment of 3 MB to 150 MB and
//! answers `201` with an opaque, pre-authenticated `uploadUrl` in Outlook's shape
//! (`/_outlook/api/v2.0/Users('…')/Messages('…')/AttachmentSessions('…')?authtoken=…`). The
//! bytes then come in order, one `PUT` per range with `Content-Range: bytes {start}-{end}/{total}`
//! and no `Authorization` header; each range but the last is answered `200` with
//! `nextExpectedRanges: ["{next}"]` (a single start, not a range, as the docs say for Outlook),
//! the last `201 Created` with an empty body and a `Location` naming the new attachment. The
//! attachment joins the message only when every byte is there, so a broken-off upload leaves
//! the message as it was. The mailbox's limits and mail faults apply to every range.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::faults::Fault;
use super::generate::{AttachmentBytes, AttachmentSpec};
use super::state::{Simulator, Tenant, lock, read, write};
use super::throttle::{Caller, Scope, Workload};

/// Second path segment of attachment upload URLs (under `import::PATH_PREFIX`).
pub const API_VERSION: &str = "v2.0";
/// Smaller files are refused (`ErrorAttachmentSizeShouldNotBeLessThanMinimumSize`): they go
/// through one `POST /attachments`.
pub const MIN_SIZE: u64 = 3 * 1024 * 1024;
/// The largest attachment Outlook takes through a session.
pub const MAX_SIZE: u64 = 150 * 1024 * 1024;
/// Microsoft asks for ranges under 4 MB; the simulator holds clients to it.
pub const MAX_RANGE: usize = 4 * 1024 * 1024;
/// How long a session's URL stays valid.
const LIFETIME_MINUTES: i64 = 15;

/// An open attachment upload session.
#[derive(Debug)]
pub struct AttachmentSession {
    pub tenant: usize,
    pub user: u32,
    /// The message's key in the mailbox.
    pub message: u32,
    /// The URL's `Users('…')` and `Messages('…')` segments, checked on every range.
    pub user_segment: String,
    pub message_segment: String,
    pub token: String,
    pub name: String,
    pub content_type: String,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub size: u64,
    pub received: Vec<u8>,
    pub app_id: String,
    pub expires: DateTime<Utc>,
}

/// Sessions by session id.
pub type AttachmentSessions = std::sync::Mutex<HashMap<String, AttachmentSession>>;

fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::rng(), random.as_mut_slice());
    hex::encode(random)
}

/// What `createUploadSession` was asked for, already checked by the caller.
pub struct NewSession {
    pub tenant: usize,
    pub user: u32,
    pub message: u32,
    pub message_id: String,
    pub name: String,
    pub content_type: String,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub size: u64,
    pub app_id: String,
}

/// Opens a session; answers the `uploadSession` resource.
pub fn open(sim: &Simulator, tenant: &Tenant, new: NewSession) -> serde_json::Value {
    let user_id = read(&tenant.state)
        .users
        .get(new.user as usize)
        .map(|u| u.id.to_string())
        .unwrap_or_default();
    let id = random_hex(16);
    let token = random_hex(24);
    let now = sim.now();
    let expires = now + chrono::Duration::minutes(LIFETIME_MINUTES);
    let user_segment = format!("Users('{user_id}@{}')", tenant.id);
    let message_segment = format!("Messages('{}')", new.message_id);
    let url = format!(
        "{}/{}/api/{API_VERSION}/{user_segment}/{message_segment}/AttachmentSessions('{id}')?authtoken={token}",
        sim.base_url,
        super::import::PATH_PREFIX,
    );
    let session = AttachmentSession {
        tenant: new.tenant,
        user: new.user,
        message: new.message,
        user_segment,
        message_segment,
        token,
        name: new.name,
        content_type: new.content_type,
        is_inline: new.is_inline,
        content_id: new.content_id,
        size: new.size,
        received: Vec::new(),
        app_id: new.app_id,
        expires,
    };
    let mut sessions = lock(&sim.attachment_sessions);
    sessions.retain(|_, s| s.expires > now);
    sessions.insert(id, session);
    json!({
        "@odata.context": format!("{}/v1.0/$metadata#microsoft.graph.uploadSession", sim.base_url),
        "uploadUrl": url,
        "expirationDateTime": expires.to_rfc3339_opts(SecondsFormat::Millis, true),
        "nextExpectedRanges": ["0-"],
    })
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json")
        .body(json!({"error": {"code": code, "message": message}}).to_string())
}

fn with_retry_after(mut response: HttpResponse, retry: Option<f64>) -> HttpResponse {
    if let Some(retry) = retry.filter(|r| *r > 0.0)
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&format!("{retry}"))
    {
        response
            .headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, value);
    }
    response
}

/// `AttachmentSessions('…')` → the session id.
fn session_segment(segment: &str) -> Option<&str> {
    segment
        .strip_prefix("AttachmentSessions('")
        .and_then(|rest| rest.strip_suffix("')"))
}

fn parse_content_range(header: &str) -> Option<(u64, u64, u64)> {
    let spec = header.trim().strip_prefix("bytes ")?;
    let (range, total) = spec.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (start, end, total): (u64, u64, u64) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (start <= end && end < total).then_some((start, end, total))
}

/// `PUT /_outlook/api/v2.0/Users('…')/Messages('…')/AttachmentSessions('…')?authtoken=…`.
pub async fn handle(
    sim: &Simulator,
    req: &HttpRequest,
    segments: &[String],
    body: &[u8],
) -> HttpResponse {
    let [api, version, user_segment, message_segment, session] = segments else {
        return error(404, "ErrorInvalidUrl", "The requested URL was not found.");
    };
    let Some(id) = (api == "api" && version == API_VERSION)
        .then(|| session_segment(session))
        .flatten()
    else {
        return error(404, "ErrorInvalidUrl", "The requested URL was not found.");
    };
    if req.headers().contains_key("authorization") {
        return error(
            400,
            "ErrorInvalidRequest",
            "Do not send an Authorization header to a pre-authenticated upload URL.",
        );
    }
    if req.method() == actix_web::http::Method::DELETE {
        lock(&sim.attachment_sessions).remove(id);
        return HttpResponse::NoContent().finish();
    }
    if req.method() != actix_web::http::Method::PUT {
        return error(
            405,
            "ErrorInvalidRequest",
            "Upload the attachment's bytes with PUT.",
        );
    }
    let token = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "authtoken")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    // Taken out while this range is handled (ranges come one at a time), so the bytes
    // received so far are never copied; put back unless the upload is finished.
    let now = sim.now();
    let taken = {
        let mut sessions = lock(&sim.attachment_sessions);
        let valid = sessions.get(id).is_some_and(|s| {
            s.token == token
                && s.expires > now
                && s.user_segment == *user_segment
                && s.message_segment == *message_segment
        });
        if valid { sessions.remove(id) } else { None }
    };
    let Some(mut session) = taken else {
        return error(
            401,
            "InvalidAuthenticationToken",
            "The upload session is unknown or has expired; create a new upload session.",
        );
    };
    let response = take_range(sim, req, &mut session, body).await;
    if response.status() != StatusCode::CREATED {
        lock(&sim.attachment_sessions).insert(id.to_owned(), session);
    }
    response
}

async fn take_range(
    sim: &Simulator,
    req: &HttpRequest,
    session: &mut AttachmentSession,
    body: &[u8],
) -> HttpResponse {
    let Some(tenant) = sim.tenants.get(session.tenant).cloned() else {
        return error(
            401,
            "InvalidAuthenticationToken",
            "The upload session is unknown.",
        );
    };
    let (fault, latency) = sim.faults.pick(Workload::Mail);
    if let Fault::Status(status, retry) = fault {
        let code = if status == 429 {
            "TooManyRequests"
        } else {
            "ErrorServerBusy"
        };
        return with_retry_after(
            error(status, code, "Please retry again later."),
            Some(retry),
        );
    }
    let tenant_id = tenant.id.to_string();
    let users = read(&tenant.state).users.len();
    let resource = super::mailbox::mailbox_id(
        &tenant,
        super::mailbox::MailboxRef {
            user: session.user,
            kind: super::mailbox::MailboxKind::Primary,
        },
    );
    let caller = Caller {
        now: sim.now(),
        app_id: &session.app_id,
        tenant: tenant.index,
        tenant_id: &tenant_id,
        users_in_tenant: users,
        licences_in_tenant: tenant.licences() as usize,
        resource: &resource,
    };
    let admission = match sim.throttle.admit(
        &caller,
        Scope::Mailbox { user: session.user },
        1.0,
        body.len() as u64,
    ) {
        Ok(admission) => admission,
        Err(refusal) => {
            return with_retry_after(
                error(refusal.status, refusal.code, &refusal.message),
                refusal.retry_after,
            );
        }
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let response = store_range(sim, &tenant, req, session, body);
    drop(admission.permit);
    response
}

fn store_range(
    sim: &Simulator,
    tenant: &Tenant,
    req: &HttpRequest,
    session: &mut AttachmentSession,
    body: &[u8],
) -> HttpResponse {
    let Some((start, end, total)) = req
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range)
    else {
        return error(
            400,
            "ErrorInvalidContentRange",
            "The Content-Range header is missing or malformed.",
        );
    };
    let length = (end + 1 - start) as usize;
    if length != body.len() {
        return error(
            400,
            "ErrorInvalidContentRange",
            "The Content-Range header length does not match the provided number of bytes.",
        );
    }
    if length > MAX_RANGE {
        return error(
            413,
            "ErrorRequestEntityTooLarge",
            "Upload the attachment in ranges of less than 4 MB.",
        );
    }
    if total != session.size {
        return error(
            400,
            "ErrorInvalidContentRange",
            "The total in Content-Range is not the size the upload session was created for.",
        );
    }
    if start != session.received.len() as u64 {
        return error(
            416,
            "ErrorInvalidContentRange",
            &format!(
                "Bytes must be uploaded in order; the next expected byte is {}.",
                session.received.len()
            ),
        );
    }
    session.received.extend_from_slice(body);
    if end + 1 < total {
        return HttpResponse::Ok().content_type("application/json").body(
            json!({
                "@odata.context": format!("{}/{}/api/{API_VERSION}/$metadata#{}/{}/AttachmentSessions/$entity", sim.base_url, super::import::PATH_PREFIX, session.user_segment, session.message_segment),
                "ExpirationDateTime": session.expires.to_rfc3339_opts(SecondsFormat::Millis, true),
                "nextExpectedRanges": [session.received.len().to_string()],
            })
            .to_string(),
        );
    }
    let spec = AttachmentSpec {
        name: session.name.clone(),
        content_type: session.content_type.clone(),
        bytes: AttachmentBytes::Stored(std::sync::Arc::new(std::mem::take(&mut session.received))),
        is_inline: session.is_inline,
        content_id: session.content_id.clone(),
    };
    let attached = {
        let mut state = write(&tenant.state);
        super::graph::mail::attach_file(
            tenant,
            &mut state,
            session.user,
            session.message,
            spec,
            sim.now(),
        )
    };
    let Some(attachment_id) = attached else {
        return error(
            404,
            "ErrorItemNotFound",
            "The message the attachment was for no longer exists.",
        );
    };
    HttpResponse::Created()
        .insert_header((
            "location",
            format!(
                "{}/{}/api/{API_VERSION}/{}/{}/Attachments('{attachment_id}')",
                sim.base_url,
                super::import::PATH_PREFIX,
                session.user_segment,
                session.message_segment
            ),
        ))
        .finish()
}
