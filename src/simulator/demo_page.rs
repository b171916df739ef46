//! The demo tenant's own small web page, on the simulator's port: a person trying Skyvault can
//! soft-delete, restore and purge users, groups and sites, add users, deliver mail, change and
//! delete files, and switch throttling and faults, without reading the control API. Every change
//! goes through the control API's own functions (`control`), so it obeys the same life-cycle
//! rules. It is part of the simulator, never of the console.
//!
//! It changes the tenant, so it is guarded: it lives under a secret path derived from the control
//! API's token (the console shows the link to partner administrators only), changes are POSTed
//! forms that carry a second token derived the same way and are refused from another origin, and
//! no GET changes anything. Each change answers with a redirect back to the page (post, redirect,
//! get), or with the page and the reason when the tenant refuses it.

use std::collections::HashMap;
use std::fmt::Write;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::control::{self, ControlError};
use super::faults::FaultPlan;
use super::generate::html_escape;
use super::graph::Reply;
use super::state::{Life, Simulator, Tenant, read};
use super::throttle::{ThrottleLimits, Workload};

/// Rows shown per table: a benchmark-sized tenant would make a page nobody can use.
const MAX_ROWS: usize = 100;

/// A secret derived from the control API's token: knowing it gives nothing back of the token.
fn derived(sim: &Simulator, purpose: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(purpose.as_bytes());
    hash.update([0]);
    hash.update(sim.admin_token.as_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// The page's secret path segment (`/_demo/{key}`).
pub fn page_key(sim: &Simulator) -> String {
    derived(sim, "skyvault simulator demo page")
}

fn form_token(sim: &Simulator) -> String {
    derived(sim, "skyvault simulator demo page form")
}

/// `/_demo/{key}[/{action}]`: the page on GET, a change on POST.
pub fn handle(
    sim: &Simulator,
    req: &HttpRequest,
    segments: &[String],
    body: &[u8],
) -> HttpResponse {
    let key = page_key(sim);
    let base = format!("/_demo/{key}");
    let (given, action) = match segments {
        [given] => (given, None),
        [given, action] => (given, Some(action.as_str())),
        _ => return not_found(),
    };
    if *given != key {
        return not_found();
    }
    let method = req.method().as_str();
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let Some(tenant) = sim.tenants.first() else {
        return not_found();
    };
    match (method, action) {
        ("GET" | "HEAD", None) => {
            let notice = query
                .get("done")
                .and_then(|code| done_message(code))
                .map(|text| ("ok", text.to_owned()));
            page(sim, req, tenant, &base, &query, notice, StatusCode::OK)
        }
        ("POST", Some(action)) => {
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(body).into_owned().collect();
            if !same_origin(sim, req) || form.get("token") != Some(&form_token(sim)) {
                return HttpResponse::Forbidden()
                    .content_type("text/html; charset=utf-8")
                    .body(
                        "<!DOCTYPE html><html lang=\"en\"><title>Refused</title><p>This change \
                         did not come from the demo tenant's page. Reload the page and try again.",
                    );
            }
            match change(sim, req, tenant, action, &form) {
                Ok(done) => {
                    let mut location = format!("{base}?done={done}");
                    if let Some(user) = form.get("user").filter(|u| !u.is_empty()) {
                        location.push_str("&user=");
                        location.push_str(
                            &url::form_urlencoded::byte_serialize(user.as_bytes())
                                .collect::<String>(),
                        );
                        location.push_str("#files");
                    }
                    HttpResponse::SeeOther()
                        .insert_header(("Location", location))
                        .finish()
                }
                Err(ControlError(status, _, message)) => {
                    let status = if status.is_server_error() {
                        StatusCode::CONFLICT
                    } else {
                        status
                    };
                    page(
                        sim,
                        req,
                        tenant,
                        &base,
                        &form,
                        Some(("error", message)),
                        status,
                    )
                }
            }
        }
        _ => HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", "GET, POST"))
            .finish(),
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body("<!DOCTYPE html><html lang=\"en\"><title>404</title><p>Not found.")
}

/// A browser names the page's own origin on a form post; a cross-site form names another one.
/// Clients that send neither header (curl) pass, since they still need both secrets.
fn same_origin(sim: &Simulator, req: &HttpRequest) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let origin_ok = header("origin").is_none_or(|origin| origin == sim.base_url);
    let site_ok = header("sec-fetch-site").is_none_or(|site| site == "same-origin");
    origin_ok && site_ok
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ControlError> {
    form.get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ControlError(
                StatusCode::BAD_REQUEST,
                "invalidRequest",
                format!("Fill in {name}."),
            )
        })
}

fn bad(message: &str) -> ControlError {
    ControlError(
        StatusCode::BAD_REQUEST,
        "invalidRequest",
        message.to_owned(),
    )
}

/// Makes one change; the code of the message shown after it.
fn change(
    sim: &Simulator,
    req: &HttpRequest,
    t: &Tenant,
    action: &str,
    form: &HashMap<String, String>,
) -> Result<&'static str, ControlError> {
    match action {
        "life" => {
            let kind = match field(form, "kind")? {
                kind @ ("users" | "groups" | "sites") => kind,
                _ => return Err(bad("kind must be users, groups or sites")),
            };
            let op = match field(form, "op")? {
                op @ ("delete" | "restore" | "purge") => op,
                _ => return Err(bad("op must be delete, restore or purge")),
            };
            control::life_cycle(sim, t, kind, field(form, "id")?, op)?;
            Ok(match op {
                "delete" => "deleted",
                "restore" => "restored",
                _ => "purged",
            })
        }
        "add-user" => {
            let body = json!({
                "displayName": field(form, "display_name")?,
                "messages": 5,
                "files": 3,
                "licensed": form.get("licensed").is_some(),
            });
            control::create_user(sim, t, body.to_string().as_bytes())?;
            Ok("user_added")
        }
        "mail" => {
            let body = json!({
                "subject": field(form, "subject")?,
                "body": form.get("body").map_or("", |b| b.as_str()),
            });
            control::add_message(sim, t, field(form, "user")?, body.to_string().as_bytes())?;
            Ok("mail_delivered")
        }
        "file-change" | "file-delete" => {
            let user = field(form, "user")?;
            let item = field(form, "item")?;
            let (method, path, body) = if action == "file-change" {
                let text = format!(
                    "Changed from the demo tenant's page at {}.\n",
                    sim.now().to_rfc3339()
                );
                (
                    "PUT",
                    vec!["users", user, "drive", "items", item, "content"],
                    text.into_bytes(),
                )
            } else {
                (
                    "DELETE",
                    vec!["users", user, "drive", "items", item],
                    Vec::new(),
                )
            };
            match control::graph_as_tenant(sim, req, t, method, "", &path, &body)? {
                Ok(_) => Ok(if action == "file-change" {
                    "file_changed"
                } else {
                    "file_deleted"
                }),
                Err(error) => Err(ControlError(
                    StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST),
                    "graph",
                    error.message,
                )),
            }
        }
        "throttling" => {
            let on = field(form, "on")? == "1";
            sim.throttle.set_limits(if on {
                ThrottleLimits::default()
            } else {
                ThrottleLimits::disabled()
            });
            Ok(if on {
                "throttling_on"
            } else {
                "throttling_off"
            })
        }
        "faults" => {
            let rate: f64 = field(form, "rate")?
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=100.0).contains(r))
                .ok_or_else(|| bad("The share of failing requests is a number from 0 to 100."))?;
            let workloads = match field(form, "workload")? {
                "all" => Workload::ALL.to_vec(),
                "directory" => vec![Workload::Directory],
                "mail" => vec![Workload::Mail],
                "drive" => vec![Workload::Drive],
                _ => return Err(bad("workload must be directory, mail, drive or all")),
            };
            let plan = FaultPlan {
                rate_503: rate,
                retry_after_seconds: 2.0,
                ..FaultPlan::default()
            };
            for w in workloads {
                sim.faults.set(w, plan.clone());
            }
            Ok("faults_on")
        }
        "faults-clear" => {
            sim.faults.clear();
            Ok("faults_off")
        }
        _ => Err(ControlError(
            StatusCode::NOT_FOUND,
            "notFound",
            "No such change.".to_owned(),
        )),
    }
}

fn done_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "deleted" => {
            "Deleted. It is soft-deleted: restorable for 30 days, and shown inactive (grayed out) in Skyvault after its next sync."
        }
        "restored" => "Restored. Skyvault shows it active again after its next sync.",
        "purged" => {
            "Purged for good. Skyvault stops listing it after its next sync; its backups stay in Backup storage."
        }
        "user_added" => {
            "User added, with a few messages and files. Skyvault lists them after its next sync."
        }
        "mail_delivered" => {
            "Message delivered to the inbox. The next backup of this mailbox picks it up incrementally."
        }
        "file_changed" => {
            "File changed. The next backup of this OneDrive stores the new version only."
        }
        "file_deleted" => "File deleted from the OneDrive.",
        "throttling_on" => "Throttling is on: Microsoft's published limits apply.",
        "throttling_off" => "Throttling is off: the tenant answers as fast as it can.",
        "faults_on" => "Faults are on: that share of requests now answers 503 Service Unavailable.",
        "faults_off" => "Faults are off.",
        _ => return None,
    })
}

/// A POST form with the page's token, one button, and hidden fields.
fn button_form(
    out: &mut String,
    base: &str,
    token: &str,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    danger: bool,
) {
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{base}/{action}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">"
    );
    for (name, value) in fields {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            html_escape(value)
        );
    }
    let class = if danger { " class=\"danger\"" } else { "" };
    let _ = write!(
        out,
        "<button type=\"submit\"{class}>{label}</button></form>"
    );
}

struct Row {
    id: String,
    name: String,
    detail: String,
    life: Life,
}

fn life_label(life: Life) -> String {
    match life {
        Life::Active => "Active".to_owned(),
        Life::SoftDeleted(at) => {
            format!("Deleted {} (restorable)", at.format("%Y-%m-%d %H:%M UTC"))
        }
        Life::Purged => "Purged".to_owned(),
    }
}

fn life_table(out: &mut String, base: &str, token: &str, kind: &str, title: &str, rows: &[Row]) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"{kind}-title\"><h2 id=\"{kind}-title\">{title}</h2>"
    );
    let shown = rows
        .iter()
        .filter(|r| r.life != Life::Purged)
        .take(MAX_ROWS);
    let _ = write!(
        out,
        "<div class=\"wrap\"><table class=\"life\"><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Address</th><th scope=\"col\">State</th><th scope=\"col\">Change</th></tr></thead><tbody>"
    );
    for row in shown {
        let deleted = matches!(row.life, Life::SoftDeleted(_));
        let _ = write!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td class=\"actions\">",
            if deleted { " class=\"deleted\"" } else { "" },
            html_escape(&row.name),
            html_escape(&row.detail),
            life_label(row.life)
        );
        let fields = [("kind", kind), ("id", row.id.as_str())];
        let with = |op: &'static str| {
            let mut f = fields.to_vec();
            f.push(("op", op));
            f
        };
        let name = html_escape(&row.name);
        if deleted {
            button_form(
                out,
                base,
                token,
                "life",
                &with("restore"),
                &format!("Restore<span class=\"sr\"> {name}</span>"),
                false,
            );
            button_form(
                out,
                base,
                token,
                "life",
                &with("purge"),
                &format!("Purge<span class=\"sr\"> {name}</span>"),
                true,
            );
        } else {
            button_form(
                out,
                base,
                token,
                "life",
                &with("delete"),
                &format!("Delete<span class=\"sr\"> {name}</span>"),
                true,
            );
        }
        if kind == "users" && !deleted {
            let _ = write!(
                out,
                "<a href=\"{base}?user={}#files\">Files<span class=\"sr\"> of {name}</span></a>",
                html_escape(&row.id)
            );
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></div></section>");
}

fn page(
    sim: &Simulator,
    req: &HttpRequest,
    t: &Tenant,
    base: &str,
    query: &HashMap<String, String>,
    notice: Option<(&str, String)>,
    status: StatusCode,
) -> HttpResponse {
    let token = form_token(sim);
    let (users, groups, sites) = {
        let state = read(&t.state);
        let users: Vec<Row> = state
            .users
            .iter()
            .map(|u| Row {
                id: u.id.to_string(),
                name: u.display_name.clone(),
                detail: u.user_principal_name.clone(),
                life: u.life,
            })
            .collect();
        let groups: Vec<Row> = state
            .groups
            .iter()
            .map(|g| Row {
                id: g.id.to_string(),
                name: g.display_name.clone(),
                detail: format!("{}@{}", g.mail_nickname, t.domain),
                life: g.life,
            })
            .collect();
        let sites: Vec<Row> = state
            .sites
            .iter()
            .filter(|s| !s.is_root && s.group.is_none())
            .map(|s| Row {
                id: t.site_id(s),
                name: s.display_name.clone(),
                detail: t.site_url(s),
                life: s.life,
            })
            .collect();
        (users, groups, sites)
    };
    let mut out = String::with_capacity(32 * 1024);
    let name = html_escape(&t.display_name);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{name}: demo tenant controls</title><style>{STYLE}</style></head><body><main><header><h1>{name} <span>simulated Microsoft 365 tenant</span></h1><p>Change the demo tenant here as its administrators and users would in Microsoft 365. Skyvault sees directory changes at its next sync (Refresh on the organization's page) and mail and file changes at the next backup.</p></header>"
    );
    if let Some((kind, text)) = notice {
        let role = if kind == "error" { "alert" } else { "status" };
        let _ = write!(
            out,
            "<p class=\"notice {kind}\" role=\"{role}\">{}</p>",
            html_escape(&text)
        );
    }
    life_table(&mut out, base, &token, "users", "Users", &users);
    let _ = write!(
        out,
        "<section aria-labelledby=\"add-title\"><h2 id=\"add-title\">Add a user</h2><form method=\"post\" action=\"{base}/add-user\" class=\"row\"><input type=\"hidden\" name=\"token\" value=\"{token}\"><label>Name <input name=\"display_name\" required placeholder=\"Alex Wilber\"></label><label class=\"check\"><input type=\"checkbox\" name=\"licensed\" value=\"1\" checked> Licensed (mailbox and OneDrive)</label><button type=\"submit\">Add user</button></form></section>"
    );
    life_table(&mut out, base, &token, "groups", "Groups", &groups);
    life_table(&mut out, base, &token, "sites", "Sites", &sites);
    let active: Vec<&Row> = users
        .iter()
        .filter(|u| u.life == Life::Active)
        .take(MAX_ROWS)
        .collect();
    let options = |selected: Option<&String>| {
        active
            .iter()
            .map(|u| {
                let sel = if selected == Some(&u.id) {
                    " selected"
                } else {
                    ""
                };
                format!(
                    "<option value=\"{}\"{sel}>{}</option>",
                    html_escape(&u.id),
                    html_escape(&u.name)
                )
            })
            .collect::<String>()
    };
    let _ = write!(
        out,
        "<section aria-labelledby=\"mail-title\"><h2 id=\"mail-title\">Deliver mail</h2><form method=\"post\" action=\"{base}/mail\" class=\"row\"><input type=\"hidden\" name=\"token\" value=\"{token}\"><label>To <select name=\"user\">{}</select></label><label>Subject <input name=\"subject\" required value=\"Quarterly figures\"></label><label>Text <input name=\"body\" value=\"Please find the figures below.\"></label><button type=\"submit\">Deliver</button></form></section>",
        options(None)
    );
    let chosen = query
        .get("user")
        .filter(|u| active.iter().any(|a| &a.id == *u));
    let _ = write!(
        out,
        "<section id=\"files\" aria-labelledby=\"files-title\"><h2 id=\"files-title\">Files</h2><form method=\"get\" action=\"{base}#files\" class=\"row\"><label>OneDrive of <select name=\"user\">{}</select></label><button type=\"submit\">Show files</button></form>",
        options(chosen)
    );
    if let Some(user) = chosen {
        files_table(&mut out, sim, req, t, base, &token, user);
    }
    out.push_str("</section>");
    let throttled = sim.throttle.limits().enabled;
    let _ = write!(
        out,
        "<section aria-labelledby=\"throttle-title\"><h2 id=\"throttle-title\">Throttling and faults</h2><p>Throttling is <strong>{}</strong>.</p>",
        if throttled {
            "on (Microsoft's published limits)"
        } else {
            "off"
        }
    );
    button_form(
        &mut out,
        base,
        &token,
        "throttling",
        &[("on", if throttled { "0" } else { "1" })],
        if throttled {
            "Switch throttling off"
        } else {
            "Switch throttling on"
        },
        false,
    );
    let plans = sim.faults.plans();
    if plans.is_empty() {
        out.push_str("<p>No faults: every request is answered normally.</p>");
    } else {
        out.push_str("<ul>");
        let mut plans: Vec<_> = plans.into_iter().collect();
        plans.sort_by_key(|(w, _)| format!("{w:?}"));
        for (workload, plan) in plans {
            let _ = write!(
                out,
                "<li>{}: {}% of requests answer 503</li>",
                json!(workload).as_str().unwrap_or(""),
                plan.rate_503
            );
        }
        out.push_str("</ul>");
        button_form(
            &mut out,
            base,
            &token,
            "faults-clear",
            &[],
            "Clear faults",
            false,
        );
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{base}/faults\" class=\"row\"><input type=\"hidden\" name=\"token\" value=\"{token}\"><label>Service <select name=\"workload\"><option value=\"all\">All</option><option value=\"directory\">Directory (users, groups, sites)</option><option value=\"mail\">Mail</option><option value=\"drive\">OneDrive and SharePoint</option></select></label><label>Failing requests (%) <input name=\"rate\" type=\"number\" min=\"0\" max=\"100\" value=\"50\" required></label><button type=\"submit\">Switch faults on</button></form></section></main></body></html>"
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(out)
}

fn files_table(
    out: &mut String,
    sim: &Simulator,
    req: &HttpRequest,
    t: &Tenant,
    base: &str,
    token: &str,
    user: &str,
) {
    let listing = control::graph_as_tenant(
        sim,
        req,
        t,
        "GET",
        "$top=100",
        &["users", user, "drive", "root", "children"],
        &[],
    );
    let items: Vec<Value> = match listing {
        Ok(Ok(Reply::Json(_, value))) => value["value"].as_array().cloned().unwrap_or_default(),
        _ => {
            out.push_str("<p>This user has no OneDrive (no licence).</p>");
            return;
        }
    };
    let files: Vec<&Value> = items.iter().filter(|i| i.get("file").is_some()).collect();
    if files.is_empty() {
        out.push_str("<p>No files at the top of this OneDrive.</p>");
        return;
    }
    out.push_str("<div class=\"wrap\"><table><thead><tr><th scope=\"col\">File</th><th scope=\"col\">Size</th><th scope=\"col\">Change</th></tr></thead><tbody>");
    for file in files {
        let id = file["id"].as_str().unwrap_or_default();
        let name = html_escape(file["name"].as_str().unwrap_or_default());
        let _ = write!(
            out,
            "<tr><td>{name}</td><td>{} bytes</td><td class=\"actions\">",
            file["size"].as_u64().unwrap_or(0)
        );
        let fields = [("user", user), ("item", id)];
        button_form(
            out,
            base,
            token,
            "file-change",
            &fields,
            &format!("Change<span class=\"sr\"> {name}</span>"),
            false,
        );
        button_form(
            out,
            base,
            token,
            "file-delete",
            &fields,
            &format!("Delete<span class=\"sr\"> {name}</span>"),
            true,
        );
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></div>");
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f5f6f8}header{background:#0b3a66;color:#fff;padding:16px 24px;margin:-16px -24px 16px}header h1{margin:0;font-size:22px}header h1 span{font-weight:400;font-size:15px}header p{margin:6px 0 0;max-width:70ch}main{padding:16px 24px;max-width:1100px}section{background:#fff;border:1px solid #d5d9de;border-radius:8px;padding:12px 16px;margin:0 0 16px}h2{font-size:17px;margin:4px 0 10px}.wrap{overflow-x:auto;position:relative}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:middle}tr.deleted td{color:#4f5762;background:#f1f2f4}td.actions{display:flex;flex-wrap:wrap;gap:6px;align-items:center}form{display:inline}form.row{display:flex;flex-wrap:wrap;gap:10px;align-items:end}label{display:flex;flex-direction:column;gap:2px;font-size:14px}label.check{flex-direction:row;align-items:center;gap:6px}input,select{font:inherit;padding:4px 6px;border:1px solid #6b7480;border-radius:4px}button{font:inherit;padding:4px 12px;border:1px solid #0b5cad;background:#0b5cad;color:#fff;border-radius:4px;cursor:pointer}button.danger{background:#fff;color:#a4161a;border-color:#a4161a}a{color:#0b5cad}.notice{padding:10px 14px;border-radius:6px}.notice.ok{background:#e5f4ea;border:1px solid #2b7a3d}.notice.error{background:#fdecec;border:1px solid #a4161a}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}:focus-visible{outline:3px solid #f5a623;outline-offset:2px}@media(max-width:600px){main{padding:12px}header{margin:-12px -12px 12px;padding:12px}section{padding:10px}table.life th:nth-child(2),table.life td:nth-child(2){display:none}}";
