//! The control API under `/_sim/...` (never a Graph path): JSON endpoints, guarded by their own
//! admin bearer token, that register apps and consents, create/update/soft-delete/restore/purge
//! users, groups and sites, add mail, forward any Graph write without auth or throttling
//! (`/_sim/tenants/{t}/graph/...`: change, move and delete messages and files), set limits,
//! faults and retention, read counters and throttling events, and change mailbox items of every
//! type (`.../users/{u}/mailbox/...`, in `control_mailbox`). It changes the world the way
//! an admin or a user would; it must never bypass the state module's life-cycle rules.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppRegistration;
use super::faults::{FaultPlan, UserFault};
use super::generate::{self, MailAddress, MessageMeta, Stream};
use super::graph::{self, Ctx, GraphError, Reply, directory, odata};
use super::identity::Claims;
use super::state::{Found, Group, Life, Simulator, Site, Tenant, User, read, write};
use super::throttle::{ThrottleLimits, Workload};

pub(super) struct ControlError(pub StatusCode, pub &'static str, pub String);

impl ControlError {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, "invalidRequest", message.into())
    }
    fn not_found(what: &str) -> Self {
        Self(
            StatusCode::NOT_FOUND,
            "notFound",
            format!("{what} was not found."),
        )
    }
}

pub(super) type ControlResult = Result<HttpResponse, ControlError>;

fn ok(value: Value) -> ControlResult {
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(value.to_string()))
}

fn created(value: Value) -> ControlResult {
    Ok(HttpResponse::Created()
        .content_type("application/json")
        .body(value.to_string()))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(|e| ControlError::bad(format!("invalid JSON body: {e}")))
}

pub async fn handle(
    sim: &Simulator,
    req: &HttpRequest,
    segments: &[String],
    body: &[u8],
) -> HttpResponse {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let result = if token != sim.admin_token {
        Err(ControlError(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The control API needs `Authorization: Bearer <admin token>`.".to_owned(),
        ))
    } else {
        route(sim, req, segments, body)
    };
    match result {
        Ok(response) => response,
        Err(ControlError(status, code, message)) => HttpResponse::build(status)
            .content_type("application/json")
            .body(json!({"error": {"code": code, "message": message}}).to_string()),
    }
}

fn tenant<'a>(sim: &'a Simulator, key: &str) -> Result<&'a Arc<Tenant>, ControlError> {
    if key == "default" {
        return sim
            .tenants
            .first()
            .ok_or_else(|| ControlError::not_found("tenant"));
    }
    sim.find_tenant(key)
        .ok_or_else(|| ControlError::not_found("tenant"))
}

fn route(sim: &Simulator, req: &HttpRequest, segments: &[String], body: &[u8]) -> ControlResult {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = req.method().as_str();
    match (m, s.as_slice()) {
        ("GET", ["tenants"]) => ok(json!(
            sim.tenants
                .iter()
                .map(|t| tenant_json(t))
                .collect::<Vec<_>>()
        )),
        ("GET", ["apps"]) => ok(json!(sim.identity.apps())),
        ("POST", ["apps"]) => {
            let app: AppRegistration = parse(body)?;
            sim.identity.register(app.clone());
            created(json!(app))
        }
        ("POST" | "DELETE", ["tenants", t, "consents", client]) => {
            let t = tenant(sim, t)?;
            if m == "POST" {
                sim.identity.grant_consent(t.index, client)
            } else {
                sim.identity.revoke_consent(t.index, client)
            }
            ok(json!({"tenant": t.id, "client_id": client, "consented": m == "POST"}))
        }
        ("POST", ["tenants", t, "users"]) => create_user(sim, tenant(sim, t)?, body),
        ("PATCH", ["tenants", t, "users", id]) => update_user(tenant(sim, t)?, id, body),
        ("PUT" | "DELETE", ["tenants", t, "users", id, "faults"]) => {
            let t = tenant(sim, t)?;
            let user = match read(&t.state).find_user(id) {
                Found::Active(i) | Found::SoftDeleted(i) => i,
                Found::Missing => return Err(ControlError::not_found("user")),
            };
            let fault: Option<UserFault> = if m == "PUT" { Some(parse(body)?) } else { None };
            sim.faults.set_user_fault(t.index, user, fault);
            ok(json!(fault))
        }
        ("POST", ["tenants", t, "users", id, "messages"]) => {
            add_message(sim, tenant(sim, t)?, id, body)
        }
        (_, ["tenants", t, "users", id, "mailbox", rest @ ..]) => {
            mailbox_control(sim, tenant(sim, t)?, m, id, rest, body)
        }
        ("POST", ["tenants", t, "groups"]) => create_group(tenant(sim, t)?, body),
        ("POST", ["tenants", t, "sites"]) => create_site(tenant(sim, t)?, body),
        ("DELETE", ["tenants", t, kind @ ("users" | "groups" | "sites"), id]) => {
            life_cycle(sim, tenant(sim, t)?, kind, id, "delete")
        }
        (
            "POST",
            [
                "tenants",
                t,
                kind @ ("users" | "groups" | "sites"),
                id,
                action @ ("restore" | "purge"),
            ],
        ) => life_cycle(sim, tenant(sim, t)?, kind, id, action),
        ("POST", ["tenants", t, "drives", drive, "resync"]) => {
            let t = tenant(sim, t)?;
            let d = t
                .parse_drive_id(drive)
                .ok_or_else(|| ControlError::not_found("drive"))?;
            let mut state = write(&t.state);
            let seq = state.bump();
            state.drive_overlays.entry(d).or_default().resync_floor = seq;
            ok(json!({"drive": drive, "resync_floor": seq}))
        }
        ("POST", ["tenants", t, "directory", "resync"]) => {
            let t = tenant(sim, t)?;
            let mut state = write(&t.state);
            let seq = state.bump();
            state.directory_resync_floor = seq;
            ok(json!({"resync_floor": seq}))
        }
        (_, ["tenants", t, "graph", rest @ ..]) => forward(sim, req, tenant(sim, t)?, rest, body),
        ("POST", ["tenants", t, "drives", drive, "synthetic-files"]) => {
            forward_with(sim, req, tenant(sim, t)?, body, |ctx| {
                graph::drive::add_synthetic_file(ctx, drive)
            })
        }
        (_, ["tenants", t, "teams", rest @ ..]) => {
            forward_with(sim, req, tenant(sim, t)?, body, |ctx| {
                graph::teams::control(ctx, rest)
            })
        }
        ("GET", ["throttling"]) => ok(json!(sim.throttle.limits())),
        ("PUT", ["throttling"]) => {
            let limits: ThrottleLimits = parse(body)?;
            sim.throttle.set_limits(limits.clone());
            ok(json!(limits))
        }
        ("GET", ["throttling", "events"]) => ok(json!(sim.throttle.events())),
        ("GET", ["faults"]) => ok(json!(sim.faults.plans())),
        ("DELETE", ["faults"]) => {
            sim.faults.clear();
            ok(json!({}))
        }
        ("PUT", ["faults", workload]) => {
            let plan: FaultPlan = parse(body)?;
            let targets: Vec<Workload> = match *workload {
                "all" => Workload::ALL.to_vec(),
                name => vec![serde_json::from_value(json!(name)).map_err(|_| {
                    ControlError::bad("workload must be directory, mail, drive or all")
                })?],
            };
            for w in targets {
                sim.faults.set(w, plan.clone());
            }
            ok(json!(plan))
        }
        ("GET", ["counters"]) => ok(json!(sim.metrics.snapshot())),
        ("DELETE", ["counters"]) => {
            sim.metrics.reset();
            ok(json!({}))
        }
        ("PUT", ["retention"]) => {
            #[derive(Deserialize)]
            struct Retention {
                seconds: i64,
            }
            let r: Retention = parse(body)?;
            *write(&sim.retention) = Duration::seconds(r.seconds.max(0));
            ok(json!({"seconds": r.seconds}))
        }
        _ => Err(ControlError::not_found("control endpoint")),
    }
}

/// `/_sim/tenants/{t}/users/{u}/mailbox/...` (see `control_mailbox`).
fn mailbox_control(
    sim: &Simulator,
    t: &Tenant,
    method: &str,
    user: &str,
    rest: &[&str],
    body: &[u8],
) -> ControlResult {
    use super::control_mailbox as cm;
    let now = sim.now();
    let result = match (method, rest) {
        ("GET", []) => cm::mailbox_ids(t, user),
        ("POST", ["items"]) => cm::add_item(t, user, parse(body)?, now),
        ("PATCH", ["items", item]) => cm::change_item(t, user, item, parse(body)?, now),
        ("POST", ["items", item, "move"]) => cm::move_item(t, user, item, &parse(body)?, now),
        ("DELETE", ["items", item]) => cm::delete_item(t, user, item, now),
        ("PUT" | "DELETE", ["items", item, "export-failure"]) => {
            cm::export_failure(t, user, item, method == "PUT")
        }
        ("POST", ["resync"]) => cm::expire_delta_tokens(t, user),
        _ => return Err(ControlError::not_found("control endpoint")),
    };
    match result {
        Ok(value) if method == "POST" && rest == ["items"] => created(value),
        Ok(value) => ok(value),
        Err((status, message)) => Err(ControlError(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            match status {
                404 => "notFound",
                409 => "conflict",
                _ => "invalidRequest",
            },
            message,
        )),
    }
}

fn tenant_json(t: &Tenant) -> Value {
    let info = t.info();
    json!({"tenant_id": info.tenant_id, "display_name": info.display_name, "domain": info.domain, "admin_user_principal_name": info.admin_user_principal_name, "admin_password": info.admin_password, "member_password": t.member_password})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    #[serde(rename = "displayName")]
    display_name: String,
    #[serde(rename = "mailNickname", default)]
    mail_nickname: Option<String>,
    #[serde(rename = "jobTitle", default)]
    job_title: Option<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(rename = "isAdmin", default)]
    is_admin: bool,
    /// Generated messages in the new mailbox (default 0: an empty mailbox).
    #[serde(default)]
    messages: u32,
    #[serde(default)]
    files: u32,
    /// Give the user a licence (default); without one, mailbox and OneDrive do not answer.
    #[serde(default = "yes")]
    licensed: bool,
}

pub(super) fn create_user(sim: &Simulator, t: &Tenant, body: &[u8]) -> ControlResult {
    let new: NewUser = parse(body)?;
    let nickname = new
        .mail_nickname
        .unwrap_or_else(|| generate::ascii_fold(&new.display_name.replace(' ', ".")));
    if nickname.is_empty() {
        return Err(ControlError::bad("mailNickname is empty"));
    }
    let upn = format!("{nickname}@{}", t.domain);
    let mut state = write(&t.state);
    if state.find_user(&upn) != Found::Missing
        || state.user_keys.contains_key(&upn.to_ascii_lowercase())
    {
        return Err(ControlError(
            StatusCode::CONFLICT,
            "conflict",
            format!("{upn} already exists"),
        ));
    }
    let version = state.bump();
    let mut rng = Stream::new(&[t.spec.seed, 400, state.users.len() as u64, version]);
    let (given, surname) = new
        .display_name
        .split_once(' ')
        .map_or((new.display_name.clone(), String::new()), |(g, s)| {
            (g.to_owned(), s.to_owned())
        });
    let user = User {
        id: rng.uuid(),
        display_name: new.display_name,
        given_name: given,
        surname,
        user_principal_name: upn,
        mail_nickname: nickname,
        job_title: new.job_title,
        department: new.department,
        office_location: None,
        mobile_phone: None,
        business_phones: Vec::new(),
        account_enabled: true,
        created: sim.now(),
        is_admin: new.is_admin,
        generated_messages: new.messages,
        drive: 0,
        licensed: new.licensed,
        life: Life::Active,
        version,
    };
    let index = state.add_user(user, new.files, sim.now());
    let value = directory::user_json(t, &state.users[index as usize]);
    created(value)
}

fn update_user(t: &Tenant, id: &str, body: &[u8]) -> ControlResult {
    let patch: Value = parse(body)?;
    let mut state = write(&t.state);
    let Found::Active(i) = state.find_user(id) else {
        return Err(ControlError::not_found("user"));
    };
    let version = state.bump();
    let user = &mut state.users[i as usize];
    for (key, value) in patch.as_object().into_iter().flatten() {
        match (key.as_str(), value) {
            ("displayName", Value::String(v)) => user.display_name = v.clone(),
            ("jobTitle", v) => user.job_title = v.as_str().map(str::to_owned),
            ("department", v) => user.department = v.as_str().map(str::to_owned),
            ("officeLocation", v) => user.office_location = v.as_str().map(str::to_owned),
            ("mobilePhone", v) => user.mobile_phone = v.as_str().map(str::to_owned),
            ("accountEnabled", Value::Bool(v)) => user.account_enabled = *v,
            ("isAdmin", Value::Bool(v)) => user.is_admin = *v,
            ("licensed", Value::Bool(v)) => user.licensed = *v,
            _ => {
                return Err(ControlError::bad(format!(
                    "property {key} cannot be changed here"
                )));
            }
        }
    }
    user.version = version;
    let value = directory::user_json(t, &state.users[i as usize]);
    ok(value)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    #[serde(rename = "displayName")]
    display_name: String,
    #[serde(default = "yes")]
    unified: bool,
    #[serde(default)]
    team: bool,
    #[serde(default)]
    members: Vec<String>,
}

fn yes() -> bool {
    true
}

fn create_group(t: &Tenant, body: &[u8]) -> ControlResult {
    let new: NewGroup = parse(body)?;
    let nickname: String = new
        .display_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let mut state = write(&t.state);
    let version = state.bump();
    let mut rng = Stream::new(&[t.spec.seed, 401, state.groups.len() as u64, version]);
    let members: Vec<u32> = new
        .members
        .iter()
        .filter_map(|m| match state.find_user(m) {
            Found::Active(i) => Some(i),
            _ => None,
        })
        .collect();
    let now = generate::content_epoch();
    let site = if new.unified {
        let site = Site {
            collection_id: rng.uuid(),
            web_id: rng.uuid(),
            url_name: nickname.clone(),
            display_name: new.display_name.clone(),
            description: format!("Team site of {}", new.display_name),
            is_root: false,
            group: Some(state.groups.len() as u32),
            created: now,
            drives: Vec::new(),
            life: Life::Active,
            version,
        };
        Some(state.add_site(site, &["Documents"], 0))
    } else {
        None
    };
    let index = state.add_group(Group {
        id: rng.uuid(),
        display_name: new.display_name.clone(),
        description: new.display_name,
        mail_nickname: nickname,
        unified: new.unified,
        team: new.team && new.unified,
        visibility: "Private".to_owned(),
        created: now,
        members,
        site,
        life: Life::Active,
        version,
    });
    let value = directory::group_json(t, &state.groups[index as usize]);
    created(value)
}

fn create_site(t: &Tenant, body: &[u8]) -> ControlResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewSite {
        #[serde(rename = "displayName")]
        display_name: String,
    }
    let new: NewSite = parse(body)?;
    let mut state = write(&t.state);
    let version = state.bump();
    let mut rng = Stream::new(&[t.spec.seed, 402, state.sites.len() as u64, version]);
    let url: String = new
        .display_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let site = Site {
        collection_id: rng.uuid(),
        web_id: rng.uuid(),
        url_name: url,
        display_name: new.display_name.clone(),
        description: new.display_name,
        is_root: false,
        group: None,
        created: generate::content_epoch(),
        drives: Vec::new(),
        life: Life::Active,
        version,
    };
    let index = state.add_site(site, &["Documents"], 0);
    let value = directory::site_json(t, &state.sites[index as usize]);
    created(value)
}

fn site_index(t: &Tenant, state: &super::state::TenantState, id: &str) -> Option<u32> {
    let lower = id.to_ascii_lowercase();
    state
        .sites
        .iter()
        .position(|s| {
            t.site_id(s).to_ascii_lowercase() == lower || s.collection_id.to_string() == lower
        })
        .map(|i| i as u32)
}

pub(super) fn life_cycle(
    sim: &Simulator,
    t: &Tenant,
    kind: &str,
    id: &str,
    action: &str,
) -> ControlResult {
    let now = sim.now();
    let mut state = write(&t.state);
    let done = match kind {
        "users" => {
            let i = match state.find_user(id) {
                Found::Active(i) | Found::SoftDeleted(i) => i,
                Found::Missing => return Err(ControlError::not_found("user")),
            };
            match action {
                "delete" => state.soft_delete_user(i, now),
                "restore" => state.restore_user(i),
                _ => {
                    state.purge_user(i);
                    true
                }
            }
        }
        "groups" => {
            let i = match state.find_group(id) {
                Found::Active(i) | Found::SoftDeleted(i) => i,
                Found::Missing => return Err(ControlError::not_found("group")),
            };
            match action {
                "delete" => state.delete_group(i, now),
                "restore" => state.restore_group(i),
                _ => {
                    state.purge_group(i);
                    true
                }
            }
        }
        _ => {
            let i = site_index(t, &state, id)
                .filter(|&i| state.sites[i as usize].life != Life::Purged)
                .ok_or_else(|| ControlError::not_found("site"))?;
            match action {
                "delete" => state.soft_delete_site(i, now),
                "restore" => state.restore_site(i),
                _ => {
                    state.purge_site(i);
                    true
                }
            }
        }
    };
    if !done {
        return Err(ControlError(
            StatusCode::CONFLICT,
            "conflict",
            format!("cannot {action} {kind} {id} in its current state"),
        ));
    }
    ok(json!({"id": id, "action": action}))
}

/// Adds a received (non-draft) message to a mailbox folder.
pub(super) fn add_message(sim: &Simulator, t: &Tenant, id: &str, body: &[u8]) -> ControlResult {
    let v: Value = parse(body)?;
    let (user, owner) = {
        let state = read(&t.state);
        let Found::Active(i) = state.find_user(id) else {
            return Err(ControlError::not_found("user"));
        };
        let u = &state.users[i as usize];
        (
            i,
            MailAddress {
                name: u.display_name.clone(),
                address: u.user_principal_name.clone(),
            },
        )
    };
    let now = sim.now();
    let text = v["body"]
        .as_str()
        .unwrap_or("Hello from the simulator.")
        .to_owned();
    let from = MailAddress {
        name: v["fromName"]
            .as_str()
            .unwrap_or("Northwind Traders")
            .to_owned(),
        address: v["from"]
            .as_str()
            .unwrap_or("orders@northwindtraders.example")
            .to_owned(),
    };
    let meta = MessageMeta {
        subject: v["subject"]
            .as_str()
            .unwrap_or("Simulated message")
            .to_owned(),
        from,
        to: vec![owner],
        cc: Vec::new(),
        received: now,
        sent: now,
        body_html: format!(
            "<html><body><p>{}</p></body></html>",
            generate::html_escape(&text)
        ),
        body_text: text,
        internet_message_id: format!(
            "<{:016x}@northwindtraders.example>",
            generate::hash(&[now.timestamp_nanos_opt().unwrap_or(0) as u64, user as u64])
        ),
        conversation_id: generate::hash(&[now.timestamp() as u64, user as u64]),
        in_reply_to: None,
        is_read: v["isRead"].as_bool().unwrap_or(false),
        is_draft: false,
        importance: "normal".to_owned(),
        categories: Vec::new(),
        attachments: Vec::new(),
        flagged: false,
    };
    let folder = v["folder"].as_str().unwrap_or("inbox");
    let key = graph::mail::control::add_message(t, user, folder, meta, now)
        .ok_or_else(|| ControlError::not_found("user"))?;
    created(json!({
        "id": t.mail_id(super::state::mail_kind::MESSAGE, user, key, 0),
        "immutableId": t.mail_id(super::state::mail_kind::IMMUTABLE_MESSAGE, user, key, 0),
    }))
}

/// Runs a Graph request as the tenant itself: no token, no throttling, no faults, not counted.
fn forward(
    sim: &Simulator,
    req: &HttpRequest,
    t: &Tenant,
    rest: &[&str],
    body: &[u8],
) -> ControlResult {
    forward_with(sim, req, t, body, |ctx| graph::route_for_control(ctx, rest))
}

/// Runs a Graph-side handler for the control API (no token, throttling or faults) and renders
/// its answer as plain JSON.
fn forward_with(
    sim: &Simulator,
    req: &HttpRequest,
    t: &Tenant,
    body: &[u8],
    handler: impl FnOnce(&Ctx<'_>) -> graph::GraphResult,
) -> ControlResult {
    let reply = run_as_tenant(
        sim,
        req,
        t,
        req.method().as_str(),
        req.query_string(),
        body,
        handler,
    )?;
    match reply {
        Ok(Reply::Json(status, value)) => Ok(HttpResponse::build(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        )
        .content_type("application/json")
        .body(value.to_string())),
        Ok(Reply::Bytes {
            status,
            content_type,
            body,
            ..
        }) => Ok(
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                .content_type(content_type)
                .body(body),
        ),
        Ok(Reply::Redirect(location)) => Ok(HttpResponse::Found()
            .insert_header(("Location", location))
            .finish()),
        Ok(Reply::NoContent) => Ok(HttpResponse::NoContent().finish()),
        Err(GraphError {
            status,
            code,
            message,
            ..
        }) => Ok(HttpResponse::build(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        )
        .content_type("application/json")
        .body(json!({"error": {"code": code, "message": message}}).to_string())),
    }
}

/// A Graph request (`method` on `rest` with `query`) run as the tenant itself, as `forward`
/// and the demo page make it: Graph's own answer, or a bad query string.
pub(super) fn graph_as_tenant(
    sim: &Simulator,
    req: &HttpRequest,
    t: &Tenant,
    method: &str,
    query: &str,
    rest: &[&str],
    body: &[u8],
) -> Result<Result<Reply, GraphError>, ControlError> {
    run_as_tenant(sim, req, t, method, query, body, |ctx| {
        graph::route_for_control(ctx, rest)
    })
}

fn run_as_tenant(
    sim: &Simulator,
    req: &HttpRequest,
    t: &Tenant,
    method: &str,
    query: &str,
    body: &[u8],
    handler: impl FnOnce(&Ctx<'_>) -> graph::GraphResult,
) -> Result<Result<Reply, GraphError>, ControlError> {
    let claims = Claims {
        tenant: t.index,
        app_id: "_sim".to_owned(),
        roles: Vec::new(),
        user: None,
    };
    let query = odata::Query::parse(query).map_err(|e| ControlError::bad(e.message))?;
    let ctx = Ctx {
        sim,
        tenant: t,
        claims: &claims,
        req,
        query,
        body,
        method,
    };
    Ok(handler(&ctx))
}
