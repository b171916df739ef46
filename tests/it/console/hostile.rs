//! Hostile input on every route: signed out and signed in as each role, every form field and
//! query parameter of every route in `routes::ROUTES` (and every id in its path) gets NUL and
//! other control characters, invalid UTF-8 percent-encodings, 10 kB and 100 kB strings, and SQL
//! and HTML metacharacters. No answer may be a 5xx, and no answer may carry the HTML unescaped.

use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use skyvault::inventory::entities::organization;

use super::access::organization_fixture;
use super::routes::{self, Route};
use crate::support::app::{PASSWORD, Page, TestApp, Visitor};

const MAX_URL_BYTES: usize = 60_000;

/// Hostile values, already percent-encoded as they go on the wire.
fn hostile_values() -> Vec<String> {
    let mut values: Vec<String> = [
        "%00",
        "a%00b",
        "%01%02%08%0B%0C%1B%7F",
        "%C2%85%C2%9F",
        "%0D%0AX-Injected:%20yes",
        "%C3%28",
        "%FF",
        "%FE%FF%00",
        "%C0%AF",
        "%ED%A0%80",
        "%E2%80%AE%E2%80%8B",
        "%27%20OR%20%271%27%3D%271",
        "%27%3B%20DROP%20TABLE%20console_users%3B--",
        "%25%25_%5C%5C%25",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        "hostile%00%40example.com",
        "",
        "%",
        "%%%zz",
        "-1",
        "99999999999999999999999",
    ]
    .iter()
    .map(|v| v.to_string())
    .collect();
    values.push("A".repeat(10 * 1024));
    values.push("%F0%9F%92%A5".repeat(10 * 1024 / 12));
    values.push("b".repeat(100 * 1024));
    values
}

/// What a field holds when another field is the hostile one: valid, so the hostile value is
/// what the handler meets. The current password is never right, so no password changes.
fn baseline(field: &str) -> &'static str {
    match field {
        "name" => "Hostile Test Co",
        "organisation" => "Hostile Org",
        "display_name" => "Hostile Tester",
        "email" => "hostile.tester@example.com",
        "password" | "confirm" | "new_password" | "confirm_password" => "another password 123",
        "current_password" => "not the current password",
        "role" => "read_only",
        "tab" => "users",
        "page" => "0",
        "notice" => "added",
        "was" => "pending",
        _ => "x",
    }
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `field=hostile` and every other field at its baseline, as a query or form body.
fn fields_with(route: &Route, field: &str, hostile: &str) -> String {
    let mut pairs: Vec<String> = route
        .fields
        .iter()
        .filter(|f| **f != field)
        .map(|f| format!("{f}={}", encode(baseline(f))))
        .collect();
    pairs.push(format!("{field}={hostile}"));
    pairs.join("&")
}

struct Walker<'a> {
    app: &'a TestApp,
    customer: String,
    org: String,
    requests: usize,
}

impl Walker<'_> {
    async fn send(&mut self, who: &str, visitor: &Visitor, route: &Route, path: &str, data: &str) {
        self.restore_org().await;
        let page = match route.method {
            "GET" | "HEAD" => {
                let separator = if path.contains('?') { '&' } else { '?' };
                let mut url = format!("{path}{separator}{data}");
                // An address is at most 64 kB on the wire (browsers and the HTTP client stop
                // there); the longest address a client can send is what a GET gets.
                url.truncate(MAX_URL_BYTES);
                if route.method == "HEAD" {
                    visitor.head(&url).await
                } else {
                    visitor.get(&url).await
                }
            }
            _ => visitor.post_encoded(path, data).await,
        };
        self.requests += 1;
        check(who, route, path, data, &page);
    }

    /// A walk may remove the organization; the next request should still meet a real one.
    async fn restore_org(&self) {
        let id: uuid::Uuid = self.org.parse().unwrap();
        if organization::Entity::find_by_id(id)
            .one(&self.app.state.db)
            .await
            .unwrap()
            .is_some()
        {
            return;
        }
        let now = self.app.state.clock.now();
        organization::ActiveModel {
            id: Set(id),
            customer_id: Set(self.customer.parse().unwrap()),
            tenant_id: Set(uuid::Uuid::new_v4().to_string()),
            display_name: Set("ContosoOrg".into()),
            default_domain: Set("contoso.example".into()),
            initial_domain: Set("contoso.onmicrosoft.com".into()),
            added_at: Set(now),
            last_sync_at: Set(None),
            last_sync_outcome: Set(None),
            next_sync_at: Set(now),
            item_counts: Set("{}".into()),
        }
        .insert(&self.app.state.db)
        .await
        .unwrap();
    }
}

fn check(who: &str, route: &Route, path: &str, data: &str, page: &Page) {
    let shown: String = data.chars().take(120).collect();
    assert!(
        !page.status.is_server_error(),
        "{who}: {} {} with {shown}… answered {}:\n{}",
        route.method,
        path.chars().take(200).collect::<String>(),
        page.status,
        page.body.chars().take(2000).collect::<String>()
    );
    for raw in ["<script>alert(1)", "<img src=x"] {
        assert!(
            !page.body.contains(raw),
            "{who}: {} {path} reflected {raw} unescaped",
            route.method
        );
    }
}

/// Signs in (again) after the throttle window, and loads a page for a fresh CSRF token.
async fn sign_in(app: &TestApp, visitor: &Visitor, email: &str) {
    // Hostile sign-ins count as failures from this address; let them age out first.
    app.clock.advance(chrono::Duration::minutes(16));
    let page = visitor.sign_in(email, PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{email} signs in");
    visitor
        .get("/account/password")
        .await
        .expect_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_every_field_of_every_route_never_get_a_5xx() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let casey = app.visitor();
    sign_in(&app, &casey, "casey@contoso.example").await;
    app.read_only_user(&casey, &customer).await;
    let org = organization_fixture(&app, &customer, "ContosoOrg").await;
    let mut walker = Walker {
        app: &app,
        customer: customer.clone(),
        org,
        requests: 0,
    };
    let values = hostile_values();
    let path_values: Vec<&str> = ["%00", "%FF", "%C3%28", "..%2F..%2Fetc%2Fpasswd", "%27--"]
        .into_iter()
        .chain([values[values.len() - 3].as_str()])
        .collect();

    // The partner goes last: disabling the customer ends its users' sessions.
    let roles: [(&str, Option<&str>); 4] = [
        ("signed out", None),
        ("read-only user", Some("robin@contoso.example")),
        ("customer admin", Some("casey@contoso.example")),
        ("partner admin", Some(crate::support::app::PARTNER_EMAIL)),
    ];
    for (who, email) in roles {
        let visitor = app.visitor();
        match email {
            Some(email) => sign_in(&app, &visitor, email).await,
            None => {
                visitor.get("/signin").await;
            }
        }
        for route in routes::walk_order() {
            let paths = route.paths(&customer, &walker.org, "not-the-setup-token");
            // A route without fields still gets a hostile parameter it does not expect.
            let fields: &[&str] = if route.fields.is_empty() {
                &["unexpected"]
            } else {
                route.fields
            };
            for path in &paths {
                for field in fields {
                    for value in &values {
                        let data = fields_with(route, field, value);
                        walker.send(who, &visitor, route, path, &data).await;
                        if route.path == "/signout"
                            && let Some(email) = email
                        {
                            sign_in(&app, &visitor, email).await;
                        }
                    }
                }
            }
            // Every id in the path, hostile.
            for placeholder in ["{customer}", "{org}", "{token}"] {
                if !route.path.contains(placeholder) {
                    continue;
                }
                for value in &path_values {
                    let (c, o, t) = match placeholder {
                        "{customer}" => (*value, walker.org.as_str(), "x"),
                        "{org}" => (customer.as_str(), *value, "x"),
                        _ => (customer.as_str(), walker.org.as_str(), *value),
                    };
                    for path in route.paths(c, o, t) {
                        let data = fields_with(route, fields[0], &encode(baseline(fields[0])));
                        walker.send(who, &visitor, route, &path, &data).await;
                    }
                }
            }
        }
    }
    eprintln!(
        "hostile walk: {} requests, none answered 5xx",
        walker.requests
    );
    assert!(
        walker.requests > 4 * 1000,
        "walked {} requests",
        walker.requests
    );
}
