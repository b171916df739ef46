//! Every route the console mounts, with the form fields or query parameters its handler reads.
//! The isolation test (`access`) and the hostile-input test (`hostile`) walk this one list, and
//! `every_mounted_route_is_listed` fails when a route is added to `skyvault::web::routes` without
//! being listed here, so a new route is tested for tenant isolation and hostile input from the
//! day it is added.

pub struct Route {
    pub method: &'static str,
    /// The path exactly as `src/web/mod.rs` mounts it.
    pub path: &'static str,
    /// Form fields (POST) or query parameters (GET) the handler reads.
    pub fields: &'static [&'static str],
}

const USER_FIELDS: &[&str] = &["email", "display_name", "password", "role"];
const RECIPIENT_FIELDS: &[&str] = &[
    "alert_user",
    "summary_user",
    "alert_addresses",
    "summary_addresses",
];
const PLAN_FIELDS: &[&str] = &[
    "name",
    "org",
    "workload",
    "all",
    "item",
    "retention_kind",
    "retention_value",
    "version",
    "encrypt",
    "encryption_password",
    "encryption_password_again",
];

pub const ROUTES: &[Route] = &[
    route("GET", "/static/{path:.*}", &[]),
    route("GET", "/", &[]),
    route("GET", "/healthz", &[]),
    route("HEAD", "/healthz", &[]),
    route("GET", "/signin", &[]),
    route("POST", "/signin", &["email", "password"]),
    route("POST", "/signout", &[]),
    route("GET", "/setup/{token}", &[]),
    route(
        "POST",
        "/setup/{token}",
        &[
            "organisation",
            "display_name",
            "email",
            "password",
            "confirm",
        ],
    ),
    route("GET", "/account/password", &[]),
    route(
        "POST",
        "/account/password",
        &["current_password", "new_password", "confirm_password"],
    ),
    route(
        "GET",
        "/customers",
        &["q", "status", "state", "page", "sort", "dir", "partner"],
    ),
    route("POST", "/customers", &["name", "partner"]),
    route("GET", "/customers/{customer}", &["sort", "dir"]),
    route("POST", "/customers/{customer}/rename", &["name"]),
    route("POST", "/customers/{customer}/disable", &[]),
    route("POST", "/customers/{customer}/enable", &[]),
    route("POST", "/customers/{customer}/users", USER_FIELDS),
    route("GET", "/partners", &["sort", "dir"]),
    route("GET", "/partners/{partner}", &[]),
    route("POST", "/partners/{partner}/rename", &["name"]),
    route("POST", "/partners/{partner}/disable", &[]),
    route("POST", "/partners/{partner}/enable", &[]),
    route("GET", "/audit", &["actor", "action", "sort", "dir", "page"]),
    route("GET", "/email", &["notice"]),
    route("POST", "/email/recipients", RECIPIENT_FIELDS),
    route(
        "POST",
        "/email/server",
        &[
            "enabled",
            "host",
            "port",
            "security",
            "username",
            "password",
            "clear_password",
            "sender",
        ],
    ),
    route("POST", "/email/server/test", &["to"]),
    route("GET", "/c/{customer}/settings/email", &["notice"]),
    route("POST", "/c/{customer}/settings/email", RECIPIENT_FIELDS),
    route("GET", "/alerts", &[]),
    route("GET", "/usage", &["month"]),
    route("GET", "/usage/csv", &["month"]),
    route("GET", "/c/{customer}/usage/csv", &[]),
    route(
        "POST",
        "/partners",
        &["name", "email", "display_name", "password"],
    ),
    route("POST", "/c/{customer}/settings/users", USER_FIELDS),
    route("GET", "/c/{customer}/devices/add/m365", &[]),
    route("GET", "/c/{customer}/devices/{org}/remove", &[]),
    route("POST", "/c/{customer}/devices/{org}/remove", &[]),
    route(
        "GET",
        "/c/{customer}/m365/{org}",
        &["tab", "q", "page", "state", "type", "sort", "dir", "notice"],
    ),
    route("GET", "/c/{customer}/m365/{org}/sync", &["was"]),
    route("POST", "/c/{customer}/m365/{org}/refresh", &[]),
    route("POST", "/c/{customer}/storage/check", &[]),
    route("GET", "/c/{customer}/plans/new", &["org", "item"]),
    route("POST", "/c/{customer}/plans", PLAN_FIELDS),
    route("GET", "/c/{customer}/plans/{plan}", &["notice"]),
    route("POST", "/c/{customer}/plans/{plan}", PLAN_FIELDS),
    route("POST", "/c/{customer}/plans/{plan}/enable", &[]),
    route("POST", "/c/{customer}/plans/{plan}/disable", &[]),
    route("POST", "/c/{customer}/plans/{plan}/run", &[]),
    route("GET", "/c/{customer}/plans/{plan}/delete", &[]),
    route("POST", "/c/{customer}/plans/{plan}/delete", &["backups"]),
    route(
        "POST",
        "/c/{customer}/m365/{org}/protect",
        &["item", "plan"],
    ),
    route("GET", "/c/{customer}/activities/{job}", &[]),
    route("GET", "/c/{customer}/activities/{job}/events", &[]),
    route("GET", "/c/{customer}/alerts/badge", &[]),
    route("POST", "/c/{customer}/alerts/{alert}/acknowledge", &[]),
    route(
        "GET",
        "/c/{customer}/backups/{archive}/points/{point}/restore",
        &["path"],
    ),
    route(
        "POST",
        "/c/{customer}/backups/{archive}/points/{point}/restore",
        &["path", "target", "folders", "new_folder", "collision"],
    ),
    route(
        "GET",
        "/m365/consent/callback",
        &[
            "state",
            "tenant",
            "admin_consent",
            "error",
            "error_description",
            "scope",
            "code",
        ],
    ),
    route(
        "POST",
        "/c/{customer}/users/{user}/{action}",
        &["role", "from"],
    ),
    route("GET", "/reset/{token}", &[]),
    route(
        "POST",
        "/reset/{token}",
        &["new_password", "confirm_password"],
    ),
    route(
        "GET",
        "/c/{customer}/storage/search",
        &[
            "q",
            "subject",
            "from",
            "to",
            "name",
            "after",
            "before",
            "attachments",
            "kind",
            "archive",
        ],
    ),
    route("GET", "/c/{customer}/backups/repository-password", &[]),
    route("POST", "/c/{customer}/backups/repository-password", &[]),
    route("GET", "/c/{customer}/backups/{archive}", &["day"]),
    route(
        "POST",
        "/c/{customer}/backups/{archive}/unlock",
        &["password", "next"],
    ),
    route(
        "GET",
        "/c/{customer}/backups/{archive}/points/{point}",
        &["folder", "sort", "dir", "page"],
    ),
    route(
        "GET",
        "/c/{customer}/backups/{archive}/points/{point}/preview",
        &["path"],
    ),
    route(
        "GET",
        "/c/{customer}/backups/{archive}/points/{point}/body",
        &["path"],
    ),
    route(
        "GET",
        "/c/{customer}/backups/{archive}/points/{point}/download",
        &["path"],
    ),
    route(
        "GET",
        "/c/{customer}/backups/{archive}/points/{point}/zip",
        &["path"],
    ),
    route(
        "GET",
        "/c/{customer}/backups/{archive}/points/{point}/mbox",
        &["folder"],
    ),
    route(
        "GET",
        "/c/{customer}/{section}",
        &[
            "notice", "kind", "status", "page", "sort", "dir", "actor", "action", "item",
        ],
    ),
];

const fn route(method: &'static str, path: &'static str, fields: &'static [&'static str]) -> Route {
    Route {
        method,
        path,
        fields,
    }
}

impl Route {
    /// True when the route reaches a customer's data through an id in its path.
    pub fn is_scoped(&self) -> bool {
        self.path.contains("{customer}") || self.path.contains("{org}")
    }

    /// Changes state that the rest of a walk depends on (the session, the customer being
    /// enabled, the organization existing): walks visit these last.
    pub fn ends_something(&self) -> bool {
        self.method == "POST"
            && (self.path == "/signout"
                || self.path.ends_with("/disable")
                || self.path.ends_with("/remove")
                || self.path.ends_with("/delete"))
    }

    /// The concrete paths of this route for the given ids; `{section}` stands for each section
    /// of the customer's console.
    pub fn paths(&self, customer: &str, org: &str, token: &str) -> Vec<String> {
        let filled = self
            .path
            .replace("{customer}", customer)
            .replace("{org}", org)
            .replace("{token}", token)
            // A console user of nobody's: the route must answer 404 for it in any tenant.
            .replace("{user}", "00000000-0000-4000-8000-000000000000")
            // A partner of nobody's, likewise (`partners::` walks real sub-partners).
            .replace("{partner}", "00000000-0000-4000-8000-00000000beef")
            .replace("{action}", "disable")
            // Plans and jobs of nobody's: `plans::other_customers_plan_and_job_ids_answer_404`
            // walks these routes with another customer's real ones.
            .replace("{plan}", "00000000-0000-4000-8000-000000000001")
            .replace("{job}", "00000000-0000-4000-8000-000000000002")
            // Archives and points of nobody's: `restore::console` and `restore::jobs` walk the
            // backup and restore routes with another customer's real ones.
            .replace("{archive}", "00000000-0000-4000-8000-000000000003")
            .replace("{point}", "00000000-0000-4000-8000-000000000004")
            .replace("{alert}", "00000000-0000-4000-8000-000000000005")
            .replace("{path:.*}", "app.css");
        if filled.contains("{section}") {
            skyvault::web::console::SECTIONS
                .iter()
                .map(|(slug, _)| filled.replace("{section}", slug))
                .collect()
        } else {
            vec![filled]
        }
    }
}

/// Routes in walking order: those that end something come last.
pub fn walk_order() -> Vec<&'static Route> {
    let mut routes: Vec<&Route> = ROUTES.iter().collect();
    routes.sort_by_key(|r| r.ends_something());
    routes
}

/// (method, path) of every `.route(...)` in `skyvault::web::routes`, read from its source.
fn mounted_routes() -> Vec<(String, String)> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/mod.rs")).unwrap();
    let start = source.find("pub fn routes(").expect("routes function");
    let body = &source[start..];
    let body = &body[..body.find(".default_service(").expect("end of routes")];
    body.split(".route(")
        .skip(1)
        .map(|chunk| {
            let open = chunk.find('"').expect("route path") + 1;
            let close = open + chunk[open..].find('"').expect("end of route path");
            let method = if chunk.contains("web::get()") {
                "GET"
            } else if chunk.contains("web::head()") {
                "HEAD"
            } else if chunk.contains("web::post()") {
                "POST"
            } else {
                panic!("a route with an unknown method: {chunk}")
            };
            (method.to_string(), chunk[open..close].to_string())
        })
        .collect()
}

#[test]
fn every_mounted_route_is_listed() {
    let mounted = mounted_routes();
    assert!(mounted.len() > 20, "routes were read: {mounted:?}");
    for (method, path) in &mounted {
        assert!(
            ROUTES.iter().any(|r| r.method == method && r.path == path),
            "{method} {path} is mounted but not listed in tests/it/console/routes.rs; list it \
             with the fields its handler reads so the isolation and hostile-input tests cover it"
        );
    }
    for route in ROUTES {
        assert!(
            mounted
                .iter()
                .any(|(m, p)| m == route.method && p == route.path),
            "{} {} is listed but no longer mounted",
            route.method,
            route.path
        );
    }
}
