//! The Graph v1.0 surface (`/v1.0/...`): authentication of the bearer token, request counting,
//! fault injection, throttling, routing to `directory`, `mail` and `drive`, and the response
//! decoration every Graph answer carries (`request-id`, `client-request-id`, OData headers,
//! error bodies of graph-protocol.md §5.5). Workload modules must never render HTTP themselves.

mod batch;
pub mod calendar;
pub mod conversations;
pub mod directory;
pub mod drive;
pub mod export;
pub mod mail;
pub mod mailbox_api;
pub mod odata;
pub mod sites;
pub mod teams;

use std::time::Duration as StdDuration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use serde_json::{Value, json};
use uuid::Uuid;

use super::faults::Fault;
use super::identity::{self, Claims};
use super::state::{Found, Simulator, Tenant, read};
use super::throttle::{Caller, Scope, Workload};

pub const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A Graph error: status, `error.code`, `error.message`, extra headers.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

impl GraphError {
    pub fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            headers: Vec::new(),
        }
    }
    pub fn bad_request(code: &str, message: &str) -> Self {
        Self::new(400, code, message)
    }
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
    /// Directory objects that do not exist (or are soft-deleted).
    pub fn directory_not_found(id: &str) -> Self {
        Self::new(
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
    pub fn segment_not_found(segment: &str) -> Self {
        Self::new(
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{segment}'."),
        )
    }
}

/// A successful answer, rendered by `respond`.
pub enum Reply {
    Json(u16, Value),
    Bytes {
        status: u16,
        content_type: String,
        body: Bytes,
        headers: Vec<(&'static str, String)>,
    },
    Redirect(String),
    NoContent,
}

pub type GraphResult = Result<Reply, GraphError>;

/// Everything a workload handler needs about the request.
pub struct Ctx<'a> {
    pub sim: &'a Simulator,
    pub tenant: &'a Tenant,
    pub claims: &'a Claims,
    pub req: &'a HttpRequest,
    pub query: odata::Query,
    pub body: &'a [u8],
    pub method: &'a str,
}

impl Ctx<'_> {
    pub fn base(&self) -> String {
        format!(
            "{}/{}",
            self.sim.base_url,
            if self.is_beta() { "beta" } else { "v1.0" }
        )
    }
    /// A `/beta/...` request (only the mailbox import/export API answers there).
    pub fn is_beta(&self) -> bool {
        self.req.path().starts_with("/beta/")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }
    /// A `Prefer` preference such as `odata.maxpagesize=5` or `IdType="ImmutableId"`.
    pub fn prefer(&self, name: &str) -> Option<String> {
        self.req
            .headers()
            .get_all("prefer")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|pref| {
                let pref = pref.trim();
                let (key, value) = pref.split_once('=').unwrap_or((pref, ""));
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().trim_matches('"').to_owned())
            })
    }
    /// This request's URL with `$skip` replaced (the `nextLink` of a `$skip`-paged listing).
    pub fn link_with_skip(&self, skip: usize) -> String {
        let mut params: Vec<String> = self
            .query
            .pairs
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skip"))
            .map(|(k, v)| format!("{}={}", odata::escape(k), odata::escape(v)))
            .collect();
        params.push(format!("$skip={skip}"));
        format!(
            "{}{}?{}",
            self.sim.base_url,
            self.req.path(),
            params.join("&")
        )
    }
    pub fn context(&self, fragment: &str) -> String {
        format!("{}/$metadata#{fragment}", self.base())
    }
}

fn bearer(req: &HttpRequest) -> &str {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("")
}

/// Where a request lands for throttling, counters and faults.
struct RouteInfo {
    workload: Workload,
    scope: Scope,
    cost: f64,
    endpoint: String,
    mailbox: Option<String>,
}

const KEYWORDS: &[&str] = &[
    "users",
    "groups",
    "sites",
    "drives",
    "drive",
    "items",
    "root",
    "children",
    "content",
    "delta",
    "delta()",
    "mailFolders",
    "childFolders",
    "messages",
    "attachments",
    "organization",
    "directory",
    "deletedItems",
    "microsoft.graph.user",
    "microsoft.graph.group",
    "getAllSites",
    "subscribedSkus",
    "$value",
    "createUploadSession",
    "restore",
    "me",
    "mailboxSettings",
    "members",
    "owners",
    "move",
    "domains",
    "$count",
    "microsoft.graph.delta()",
    "root:",
    "settings",
    "exchange",
    "admin",
    "mailboxes",
    "folders",
    "exportItems",
    "createImportSession",
    "events",
    "contacts",
    "threads",
    "posts",
    "conversations",
    "lists",
    "teams",
    "channels",
    "replies",
    "hostedContents",
];

fn classify(tenant: &Tenant, method: &str, segments: &[String], query: &odata::Query) -> RouteInfo {
    let endpoint = format!(
        "{method} /{}",
        segments
            .iter()
            .map(|s| if KEYWORDS.contains(&s.as_str()) {
                s.as_str()
            } else if s.ends_with(':') {
                "{path}:"
            } else {
                "{id}"
            })
            .collect::<Vec<_>>()
            .join("/")
    );
    let has = |name: &str| segments.iter().any(|s| s == name);
    if let Some((user, key)) = mailbox_owner(tenant, segments) {
        return RouteInfo {
            workload: Workload::Mail,
            scope: Scope::Mailbox { user },
            cost: 1.0,
            endpoint,
            mailbox: Some(key),
        };
    }
    let is_mail = segments.first().is_some_and(|s| s == "users")
        && (has("mailFolders") || has("messages") || has("mailboxSettings"));
    let is_drive = has("drive")
        || has("drives")
        || segments
            .first()
            .is_some_and(|s| s == "sites" || s == "drives");
    if is_mail {
        let key = segments.get(1).cloned().unwrap_or_default();
        let user = match read(&tenant.state).find_user(&key) {
            Found::Active(i) | Found::SoftDeleted(i) => i,
            Found::Missing => u32::MAX,
        };
        return RouteInfo {
            workload: Workload::Mail,
            scope: Scope::Mailbox { user },
            cost: 1.0,
            endpoint,
            mailbox: Some(key.to_ascii_lowercase()),
        };
    }
    if is_drive {
        // SharePoint resource units (§5.3): 1 single GET / delta with token / download,
        // 2 listing or delta without token or any write.
        let listing = has("children")
            || (has("delta") || has("delta()")) && query.get("token").is_none()
            || segments.last().is_some_and(|s| {
                ["drives", "getAllSites", "sites", "lists", "items"].contains(&s.as_str())
            })
            || segments.len() == 1;
        let cost = if method != "GET" || listing { 2.0 } else { 1.0 };
        return RouteInfo {
            workload: Workload::Drive,
            scope: Scope::Spo,
            cost,
            endpoint,
            mailbox: None,
        };
    }
    // Directory (§5.4): GET users = 2, GET subscribedSkus = 3, other GETs 1; $select -1,
    // $top < 20 -1; minimum 1.
    let mut cost: f64 = match segments.first().map(String::as_str) {
        Some("users") if segments.len() == 1 => 2.0,
        Some("subscribedSkus") if segments.len() == 1 => 3.0,
        _ => 1.0,
    };
    if query.get("$select").is_some() {
        cost -= 1.0;
    }
    if query
        .get("$top")
        .and_then(|t| t.parse::<u32>().ok())
        .is_some_and(|t| t < 20)
    {
        cost -= 1.0;
    }
    if query.get("$expand").is_some() {
        cost += 1.0;
    }
    RouteInfo {
        workload: Workload::Directory,
        scope: Scope::Directory,
        cost: cost.max(1.0),
        endpoint,
        mailbox: None,
    }
}

/// The mailbox (owner's user index, counter key) of a request to the mailbox import/export API,
/// events, contacts or a group's conversations: they share the owner's Outlook limits (§5.2).
/// Group mailboxes take indexes from the top of the range so they never meet a user's.
fn mailbox_owner(tenant: &Tenant, segments: &[String]) -> Option<(u32, String)> {
    let strs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let state = read(&tenant.state);
    match strs.as_slice() {
        ["admin", "exchange", "mailboxes", id, ..] => {
            let owner = super::mailbox::parse_mailbox_id(tenant, id)?;
            let key = state.users.get(owner.user as usize)?.id.to_string();
            Some((owner.user, key))
        }
        ["users", key, "settings" | "events" | "contacts", ..] => match state.find_user(key) {
            Found::Active(i) | Found::SoftDeleted(i) => Some((i, key.to_ascii_lowercase())),
            Found::Missing => Some((u32::MAX, key.to_ascii_lowercase())),
        },
        ["groups", key, "threads" | "conversations", ..] => match state.find_group(key) {
            Found::Active(i) | Found::SoftDeleted(i) => Some((
                u32::MAX - 1 - i,
                format!("group:{}", key.to_ascii_lowercase()),
            )),
            Found::Missing => None,
        },
        _ => None,
    }
}

/// Application permissions of the mailbox import/export API, events, contacts and group
/// conversations (their reference pages' permission tables); `None` for other paths.
fn outlook_roles(segments: &[String]) -> Option<&'static [&'static str]> {
    let strs: Vec<&str> = segments.iter().map(String::as_str).collect();
    Some(match strs.as_slice() {
        ["admin", "exchange", "mailboxes", _, "exportItems"] => {
            &["MailboxItem.Export.All", "MailboxItem.ImportExport.All"]
        }
        ["admin", "exchange", "mailboxes", _, "createImportSession"] => {
            &["MailboxItem.ImportExport.All"]
        }
        [
            "admin",
            "exchange",
            "mailboxes",
            _,
            "folders",
            _,
            "items",
            ..,
        ] => &[
            "MailboxItem.Read.All",
            "MailboxItem.Export.All",
            "MailboxItem.ImportExport.All",
        ],
        ["admin", "exchange", "mailboxes", ..] => {
            &["MailboxFolder.Read.All", "MailboxFolder.ReadWrite.All"]
        }
        ["users", _, "settings", "exchange"] => &[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        ["users", _, "events", ..] => &["Calendars.Read", "Calendars.ReadWrite"],
        ["users", _, "contacts", ..] => &["Contacts.Read", "Contacts.ReadWrite"],
        ["groups", _, "threads" | "conversations", ..] => {
            &["Group.Read.All", "Group.ReadWrite.All"]
        }
        _ => return None,
    })
}

/// Handles a `/v1.0/...` request.
pub async fn handle(
    sim: &Simulator,
    req: &HttpRequest,
    segments: &[String],
    body: Bytes,
) -> HttpResponse {
    if segments.len() == 1
        && segments[0] == "$batch"
        && req.method() == actix_web::http::Method::POST
    {
        return batch::handle(sim, req, &body).await;
    }
    let request_id = Uuid::new_v4().to_string();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| request_id.clone());
    let ids = (request_id.as_str(), client_request_id.as_str());
    let claims = match identity::validate(sim, bearer(req)) {
        Ok(claims) => claims,
        Err(error) => {
            let response = GraphError::new(401, "InvalidAuthenticationToken", &error.to_string())
                .with_header("WWW-Authenticate", format!("Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"", sim.base_url));
            return error_response(sim, &response, ids);
        }
    };
    let tenant = &sim.tenants[claims.tenant];
    sim.purge_expired(tenant);
    let mut segments = normalise(segments.to_vec());
    if segments.first().is_some_and(|s| s == "me") {
        let Some(user) = claims.user else {
            return error_response(
                sim,
                &GraphError::bad_request(
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                ),
                ids,
            );
        };
        let id = read(&tenant.state).users[user as usize].id.to_string();
        segments.splice(0..1, ["users".to_owned(), id]);
    }
    let query = match odata::Query::parse(req.query_string()) {
        Ok(query) => query,
        Err(error) => return error_response(sim, &error, ids),
    };
    let method = req.method().as_str().to_owned();
    let info = classify(tenant, &method, &segments, &query);
    sim.metrics.count(
        &claims.app_id,
        &tenant.id.to_string(),
        info.mailbox.as_deref(),
        &info.endpoint,
    );

    let (fault, latency) = sim.faults.pick(info.workload);
    if let Fault::Status(status, retry) = fault {
        return error_response(sim, &injected_error(status, retry), ids);
    }
    if let Err(error) = authorize(&claims, info.workload, &method, &segments) {
        return error_response(sim, &error, ids);
    }
    if let Some(error) = user_fault(sim, tenant, &segments, info.workload) {
        return error_response(sim, &error, ids);
    }
    let upload = if info.workload == Workload::Mail && method != "GET" {
        body.len() as u64
    } else {
        0
    };
    let tenant_id = tenant.id.to_string();
    let users = read(&tenant.state).users.len();
    let caller = Caller {
        now: sim.now(),
        app_id: &claims.app_id,
        tenant: tenant.index,
        tenant_id: &tenant_id,
        users_in_tenant: users,
        licences_in_tenant: tenant.licences() as usize,
        resource: info.mailbox.as_deref().unwrap_or(&info.endpoint),
    };
    let admission = match sim.throttle.admit(&caller, info.scope, info.cost, upload) {
        Ok(admission) => admission,
        Err(refusal) => {
            let mut error = GraphError::new(refusal.status, refusal.code, &refusal.message);
            if let Some(retry) = refusal.retry_after {
                error = error.with_header("Retry-After", format_retry(retry));
            }
            error.headers.extend(refusal.headers);
            return error_response(sim, &error, ids);
        }
    };
    // Latency is service time: it is spent holding the mailbox's concurrency slot.
    if latency > 0 {
        tokio::time::sleep(StdDuration::from_millis(latency)).await;
    }
    let ctx = Ctx {
        sim,
        tenant,
        claims: &claims,
        req,
        query,
        body: &body,
        method: &method,
    };
    let strs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let result = route(&ctx, &strs);
    let mut response = match result {
        Ok(reply) => respond(sim, reply, ids, &admission.headers),
        Err(error) => {
            let mut error = error;
            error.headers.extend(admission.headers.iter().cloned());
            return error_response(sim, &error, ids);
        }
    };
    drop(admission.permit);
    match fault {
        Fault::ConnectionReset => response = broken_body(response, false, 0),
        Fault::SlowBody(ms) => response = broken_body(response, true, ms),
        _ => {}
    }
    response
}

/// Application permissions (`roles`) gate each workload as Graph does (§2.5); delegated tokens
/// act as their user and are not narrowed further here.
fn authorize(
    claims: &Claims,
    workload: Workload,
    method: &str,
    segments: &[String],
) -> Result<(), GraphError> {
    if claims.user.is_some() {
        return Ok(());
    }
    let has = |names: &[&str]| {
        names
            .iter()
            .any(|n| claims.roles.iter().any(|r| r.eq_ignore_ascii_case(n)))
    };
    let creates_folder = method == "POST"
        && matches!(
            segments
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
            ["admin", "exchange", "mailboxes", _, "folders"]
                | [
                    "admin",
                    "exchange",
                    "mailboxes",
                    _,
                    "folders",
                    _,
                    "childFolders"
                ]
        );
    // mailbox-post-folders: only the ReadWrite permission creates folders.
    let roles = if creates_folder {
        Some(&["MailboxFolder.ReadWrite.All"][..])
    } else {
        outlook_roles(segments)
    };
    if let Some(roles) = roles {
        return if has(roles) {
            Ok(())
        } else {
            Err(GraphError::new(
                403,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ))
        };
    }
    let write = method != "GET";
    let allowed = match workload {
        Workload::Mail if segments.iter().any(|s| s == "mailboxSettings") => {
            has(&["MailboxSettings.Read", "MailboxSettings.ReadWrite"])
        }
        Workload::Mail => {
            has(&["Mail.ReadWrite"])
                || (!write && has(&["Mail.Read", "Mail.ReadBasic.All", "Mail.ReadBasic"]))
        }
        Workload::Drive => {
            has(&[
                "Files.ReadWrite.All",
                "Sites.ReadWrite.All",
                "Sites.FullControl.All",
            ]) || (!write && has(&["Files.Read.All", "Sites.Read.All"]))
        }
        Workload::Directory => match segments.first().map(String::as_str) {
            Some("subscribedSkus") => has(&[
                "LicenseAssignment.Read.All",
                "Organization.Read.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ]),
            Some("organization") | Some("domains") => has(&[
                "Organization.Read.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
                "User.Read.All",
            ]),
            Some("groups") => has(&[
                "Group.Read.All",
                "Group.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ]),
            // Channels need Channel.ReadBasic.All; messages ChannelMessage.Read.All, checked
            // in `teams` (which also plays the protected-API approval).
            Some("teams") => has(&[
                "Channel.ReadBasic.All",
                "ChannelMessage.Read.All",
                "Group.Read.All",
                "Directory.Read.All",
            ]),
            _ => has(&[
                "User.Read.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
                "Group.Read.All",
            ]),
        },
    };
    if allowed {
        return Ok(());
    }
    Err(match workload {
        Workload::Mail => GraphError::new(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ),
        Workload::Drive => GraphError::new(
            403,
            "accessDenied",
            "Either scp or roles claim need to be present in the token.",
        ),
        Workload::Directory => GraphError::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ),
    })
}

fn format_retry(seconds: f64) -> String {
    if (seconds - seconds.round()).abs() < 1e-9 {
        format!("{}", seconds.round() as i64)
    } else {
        format!("{seconds:.3}")
    }
}

/// The answer a user's mailbox or OneDrive is set to give (`/_sim/tenants/{t}/users/{id}/faults`).
fn user_fault(
    sim: &Simulator,
    tenant: &Tenant,
    segments: &[String],
    workload: Workload,
) -> Option<GraphError> {
    let user = match segments {
        [admin, _, _, id, ..] if admin == "admin" => {
            super::mailbox::parse_mailbox_id(tenant, id)?.user
        }
        [users, key, _, ..] if users == "users" => match read(&tenant.state).find_user(key) {
            Found::Active(i) | Found::SoftDeleted(i) => i,
            Found::Missing => return None,
        },
        _ => return None,
    };
    let fault = sim.faults.user_fault(tenant.index, user)?;
    let status = match workload {
        Workload::Mail => fault.mail?,
        Workload::Drive => fault.drive?,
        Workload::Directory => return None,
    };
    let mail = workload == Workload::Mail;
    Some(match status {
        400 if mail => GraphError::bad_request("ErrorInvalidRequest", "The request is invalid."),
        400 => GraphError::bad_request("invalidRequest", "Invalid request"),
        403 if mail => GraphError::new(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ),
        403 => GraphError::new(403, "accessDenied", "Access denied"),
        503 if fault.retry_after_seconds > 0.0 => injected_error(503, fault.retry_after_seconds),
        503 => GraphError::new(
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        other => GraphError::new(other, "generalException", "An error occurred."),
    })
}

fn injected_error(status: u16, retry: f64) -> GraphError {
    match status {
        429 => GraphError::new(429, "TooManyRequests", "Please retry again later.")
            .with_header("Retry-After", format_retry(retry)),
        503 => GraphError::new(
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
        )
        .with_header("Retry-After", format_retry(retry)),
        504 => GraphError::new(
            504,
            "UnknownError",
            "The gateway did not receive a timely response.",
        ),
        other => GraphError::new(other, "generalException", "An error occurred."),
    }
}

/// Replaces a response body with one that stalls (slow) or breaks off half-way (reset).
fn broken_body(response: HttpResponse, slow: bool, total_ms: u64) -> HttpResponse {
    use actix_web::body::MessageBody;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().try_into_bytes().unwrap_or_default();
    let mut builder = HttpResponse::build(status);
    for (name, value) in headers.iter() {
        if name != "content-length" {
            builder.insert_header((name.clone(), value.clone()));
        }
    }
    if slow {
        let chunks: Vec<Bytes> = bytes
            .chunks(bytes.len().div_ceil(10).max(1))
            .map(Bytes::copy_from_slice)
            .collect();
        let pause = StdDuration::from_millis(total_ms / chunks.len().max(1) as u64);
        let stream = futures::stream::unfold(chunks.into_iter(), move |mut chunks| async move {
            let chunk = chunks.next()?;
            tokio::time::sleep(pause).await;
            Some((Ok::<Bytes, std::io::Error>(chunk), chunks))
        });
        builder.streaming(stream)
    } else {
        let half = bytes.slice(0..bytes.len() / 2);
        let stream = futures::stream::iter(vec![
            Ok(half),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected connection reset",
            )),
        ]);
        builder.streaming(stream)
    }
}

fn decorate(builder: &mut HttpResponseBuilder, sim: &Simulator, ids: (&str, &str)) {
    let _ = sim;
    builder
        .insert_header(("request-id", ids.0.to_owned()))
        .insert_header(("client-request-id", ids.1.to_owned()))
        .insert_header(("x-ms-ags-diagnostic", r#"{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SIM000000000"}}"#))
        .insert_header(("Strict-Transport-Security", "max-age=31536000"))
        .insert_header(("Cache-Control", "no-store, no-cache"));
}

pub fn error_response(sim: &Simulator, error: &GraphError, ids: (&str, &str)) -> HttpResponse {
    let date = sim.now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let body = json!({"error": {"code": error.code, "message": error.message, "innerError": {"date": date, "request-id": ids.0, "client-request-id": ids.1}}});
    let mut builder = HttpResponse::build(
        StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    decorate(&mut builder, sim, ids);
    for (name, value) in &error.headers {
        builder.insert_header((*name, value.clone()));
    }
    sim.metrics.status(error.status);
    builder
        .content_type("application/json")
        .body(body.to_string())
}

fn respond(
    sim: &Simulator,
    reply: Reply,
    ids: (&str, &str),
    extra: &[(&'static str, String)],
) -> HttpResponse {
    let status = match &reply {
        Reply::Json(status, _) | Reply::Bytes { status, .. } => *status,
        Reply::Redirect(_) => 302,
        Reply::NoContent => 204,
    };
    sim.metrics.status(status);
    let mut builder = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    decorate(&mut builder, sim, ids);
    for (name, value) in extra {
        builder.insert_header((*name, value.clone()));
    }
    match reply {
        Reply::Json(_, value) => builder
            .insert_header(("OData-Version", "4.0"))
            .content_type(JSON_CONTENT_TYPE)
            .body(value.to_string()),
        Reply::Bytes {
            content_type,
            body,
            headers,
            ..
        } => {
            for (name, value) in headers {
                builder.insert_header((name, value));
            }
            builder.content_type(content_type).body(body)
        }
        Reply::Redirect(location) => builder.insert_header(("Location", location)).finish(),
        Reply::NoContent => builder.finish(),
    }
}

fn route(ctx: &Ctx<'_>, segments: &[&str]) -> GraphResult {
    if let Some(result) = mailbox_api::route(ctx, segments) {
        return result;
    }
    if let Some(result) = calendar::route(ctx, segments) {
        return result;
    }
    if let Some(result) = conversations::route(ctx, segments) {
        return result;
    }
    if let Some(result) = drive::route(ctx, segments) {
        return result;
    }
    if let Some(result) = sites::route(ctx, segments) {
        return result;
    }
    if let Some(result) = teams::route(ctx, segments) {
        return result;
    }
    if let Some(result) = mail::route(ctx, segments) {
        return result;
    }
    if let Some(result) = directory::route(ctx, segments) {
        return result;
    }
    Err(match segments.first() {
        Some(first) => GraphError::segment_not_found(first),
        None => GraphError::bad_request("BadRequest", "Invalid request."),
    })
}

/// The control API's forwarder: the same routes, without token, throttling or faults.
pub fn route_for_control(ctx: &Ctx<'_>, segments: &[&str]) -> GraphResult {
    let owned = normalise(segments.iter().map(|s| (*s).to_owned()).collect());
    let strs: Vec<&str> = owned.iter().map(String::as_str).collect();
    route(ctx, &strs)
}

/// `mailFolders('AAMk…')` → `mailFolders`, `AAMk…` (the OData key form some links use).
fn normalise(segments: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(segments.len());
    for segment in segments {
        match segment.split_once("('") {
            Some((name, rest)) if rest.ends_with("')") && !name.is_empty() => {
                out.push(name.to_owned());
                out.push(rest.trim_end_matches("')").to_owned());
            }
            _ => out.push(segment),
        }
    }
    out
}

/// `/beta/...`: only the mailbox import/export API (archives are reachable there) is served.
pub async fn handle_beta(
    sim: &Simulator,
    req: &HttpRequest,
    segments: &[String],
    body: Bytes,
) -> HttpResponse {
    let strs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match strs.as_slice() {
        ["admin", "exchange", "mailboxes", ..] | ["users", _, "settings", "exchange"] => {
            handle(sim, req, segments, body).await
        }
        _ => not_supported_version(),
    }
}

pub fn not_supported_version() -> HttpResponse {
    HttpResponse::BadRequest().content_type("application/json").body(json!({"error": {"code": "BadRequest", "message": "The simulator serves Graph v1.0, and on beta only the mailbox import and export API."}}).to_string())
}

/// Page size from `Prefer: odata.maxpagesize`, bounded.
pub fn max_page_size(ctx: &Ctx<'_>, default: usize, max: usize) -> usize {
    ctx.prefer("odata.maxpagesize")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .map_or(default, |n| n.min(max))
}
