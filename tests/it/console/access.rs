//! Tenancy: partners manage customers, customers see only themselves, and no id in a URL reaches
//! another tenant.

use reqwest::StatusCode;
use sea_orm::EntityTrait;

use crate::support::app::{PARTNER_EMAIL, PASSWORD, TestApp, Visitor};

/// Every route that takes a customer id, with its method. When a route is added to
/// `skyvault::web::routes`, add it here: `every_customer_route_is_listed` checks the count.
const CUSTOMER_ROUTES: &[(&str, &str)] = &[
    ("GET", "/customers/{customer}"),
    ("POST", "/customers/{customer}/rename"),
    ("POST", "/customers/{customer}/disable"),
    ("POST", "/customers/{customer}/enable"),
    ("POST", "/customers/{customer}/users"),
    ("POST", "/c/{customer}/settings/users"),
    ("GET", "/c/{customer}/devices"),
    ("GET", "/c/{customer}/m365"),
    ("GET", "/c/{customer}/plans"),
    ("GET", "/c/{customer}/storage"),
    ("GET", "/c/{customer}/activities"),
    ("GET", "/c/{customer}/alerts"),
    ("GET", "/c/{customer}/settings"),
    ("GET", "/c/{customer}/devices/add/m365"),
    ("GET", "/c/{customer}/devices/{org}/remove"),
    ("POST", "/c/{customer}/devices/{org}/remove"),
    ("GET", "/c/{customer}/m365/{org}"),
    ("GET", "/c/{customer}/m365/{org}/sync"),
    ("POST", "/c/{customer}/m365/{org}/refresh"),
    ("POST", "/c/{customer}/storage/check"),
    ("POST", "/c/{customer}/users/{org}/disable"),
];

async fn request(visitor: &Visitor, method: &str, path: &str) -> crate::support::app::Page {
    match method {
        "GET" => visitor.get(path).await,
        _ => {
            let fields = [
                ("name", "Renamed by an intruder"),
                ("display_name", "Intruder"),
                ("email", "intruder@example.com"),
                ("password", "intruder password 123"),
                ("role", "customer_admin"),
            ];
            visitor.post(path, &fields).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_creates_a_customer_adds_its_admin_and_manages_it() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let id = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;

    let list = partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    assert!(list.body.contains("Contoso Ltd"));
    let duplicate = partner.post("/customers", &[("name", "contoso ltd")]).await;
    assert_eq!(duplicate.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        duplicate
            .body
            .contains("A customer with this name already exists.")
    );

    // Manage: the customer's console, with the partner's identity in the top bar.
    let devices = partner
        .get(&format!("/c/{id}/devices"))
        .await
        .expect_status(StatusCode::OK);
    assert!(devices.body.contains("Contoso Ltd") && devices.body.contains("Northwind Partners"));
    assert!(devices.body.contains("Managing"));
    assert!(devices.body.contains("No Microsoft 365 organization yet"));

    partner.get(&format!("/customers/{id}")).await;
    partner
        .post(
            &format!("/customers/{id}/rename"),
            &[("name", "Contoso Group")],
        )
        .await
        .expect_redirect(&format!("/customers/{id}"));

    // The customer's administrator lands in their own console, without partner pages.
    let customer = app.visitor();
    customer
        .sign_in("casey@contoso.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{id}/devices"));
    let own = customer
        .get(&format!("/c/{id}/devices"))
        .await
        .expect_status(StatusCode::OK);
    assert!(own.body.contains("Contoso Group"));
    assert!(!own.body.contains("Northwind Partners"));
    customer
        .get("/customers")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    customer
        .get("/partners")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    for section in [
        "devices",
        "m365",
        "plans",
        "storage",
        "activities",
        "alerts",
        "settings",
    ] {
        customer
            .get(&format!("/c/{id}/{section}"))
            .await
            .expect_status(StatusCode::OK);
    }
    customer
        .get(&format!("/c/{id}/nonsense"))
        .await
        .expect_status(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_admin_cannot_reach_another_customer_by_changing_ids() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let own = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let other = app
        .customer_with_admin(&partner, "Fabrikam", "fran@fabrikam.example")
        .await;

    let intruder = app.visitor();
    intruder
        .sign_in("casey@contoso.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{own}/devices"));
    for (method, template) in CUSTOMER_ROUTES {
        intruder.get(&format!("/c/{own}/devices")).await; // a fresh CSRF token, as a real page gives
        let path = template
            .replace("{customer}", &other)
            .replace("{org}", &uuid::Uuid::new_v4().to_string());
        let page = request(&intruder, method, &path).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "{method} {path} must not reach another customer:\n{}",
            page.body
        );
        assert!(
            !page.body.contains("Fabrikam"),
            "{method} {path} leaked the other customer's name"
        );
    }
    // Nothing changed on the other customer.
    let list = partner.get("/customers").await;
    assert!(list.body.contains("Fabrikam") && !list.body.contains("intruder"));
    let fabrikam = partner.get(&format!("/customers/{other}")).await;
    assert!(!fabrikam.body.contains("intruder@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_partner_cannot_reach_our_customers_but_a_parent_partner_can_reach_sub_partners() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Adatum", "casey@adatum.example")
        .await;

    // A sub-partner with its own administrator and customer.
    partner.get("/partners").await.expect_status(StatusCode::OK);
    partner
        .post(
            "/partners",
            &[
                ("name", "Reseller East"),
                ("display_name", "Sam Sub"),
                ("email", "sam@east.example"),
                ("password", PASSWORD),
            ],
        )
        .await
        .expect_redirect("/partners");
    let sub = app.visitor();
    sub.sign_in("sam@east.example", PASSWORD)
        .await
        .expect_redirect("/customers");
    let sub_customer = app
        .customer_with_admin(&sub, "Tailspin", "tia@tailspin.example")
        .await;

    // The sub-partner sees only its own customer; ours is out of reach.
    let list = sub.get("/customers").await;
    assert!(list.body.contains("Tailspin") && !list.body.contains("Adatum"));
    for (method, template) in CUSTOMER_ROUTES {
        sub.get("/customers").await;
        let path = template
            .replace("{customer}", &customer)
            .replace("{org}", &uuid::Uuid::new_v4().to_string());
        let page = request(&sub, method, &path).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "sub-partner reached {method} {path}"
        );
    }
    // The parent partner reaches the sub-partner's customer.
    let parent_view = partner.get("/customers").await;
    assert!(parent_view.body.contains("Tailspin") && parent_view.body.contains("Reseller East"));
    partner
        .get(&format!("/c/{sub_customer}/devices"))
        .await
        .expect_status(StatusCode::OK);
    // And the sub-partner cannot see the parent's sub-partner list entries above it.
    let subs = sub.get("/partners").await.expect_status(StatusCode::OK);
    assert!(!subs.body.contains("Northwind"));
    let _ = PARTNER_EMAIL;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_customer_signs_its_users_out_and_keeps_them_out() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let id = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let customer = app.visitor();
    customer
        .sign_in("casey@contoso.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{id}/devices"));

    partner.get(&format!("/customers/{id}")).await;
    partner
        .post(&format!("/customers/{id}/disable"), &[])
        .await
        .expect_redirect(&format!("/customers/{id}"));
    customer
        .get(&format!("/c/{id}/devices"))
        .await
        .expect_redirect("/signin");
    let again = app
        .visitor()
        .sign_in("casey@contoso.example", PASSWORD)
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    let detail = partner.get(&format!("/customers/{id}")).await;
    assert!(detail.body.contains("Disabled"));

    partner.post(&format!("/customers/{id}/enable"), &[]).await;
    app.visitor()
        .sign_in("casey@contoso.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{id}/devices"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_users_see_but_cannot_change() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let id = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let admin = app.visitor();
    admin.sign_in("casey@contoso.example", PASSWORD).await;
    admin
        .get(&format!("/c/{id}/settings"))
        .await
        .expect_status(StatusCode::OK);
    admin
        .post(
            &format!("/c/{id}/settings/users"),
            &[
                ("display_name", "Robin Reader"),
                ("email", "robin@contoso.example"),
                ("password", PASSWORD),
                ("role", "read_only"),
            ],
        )
        .await
        .expect_redirect(&format!("/c/{id}/settings"));

    let reader = app.visitor();
    reader
        .sign_in("robin@contoso.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{id}/devices"));
    let settings = reader
        .get(&format!("/c/{id}/settings"))
        .await
        .expect_status(StatusCode::OK);
    assert!(settings.body.contains("Read-only user") && settings.body.contains("read-only access"));
    assert!(!settings.body.contains("Add user"));
    let refused = reader
        .post(
            &format!("/c/{id}/settings/users"),
            &[
                ("display_name", "Eve"),
                ("email", "eve@contoso.example"),
                ("password", PASSWORD),
                ("role", "customer_admin"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[test]
fn every_customer_route_is_listed() {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/mod.rs")).unwrap();
    // Route paths are string literals in `routes`; count those with a customer id.
    let routes_with_ids = source
        .lines()
        .filter(|l| l.trim_start().starts_with("\"/") && l.contains("{customer}"))
        .count()
        + source
            .lines()
            .filter(|l| l.contains(".route(\"") && l.contains("{customer}"))
            .count();
    // `/c/{customer}/{section}` stands for the seven sections listed one by one above.
    assert_eq!(
        routes_with_ids - 1 + 7,
        CUSTOMER_ROUTES.len(),
        "a route with a customer id is missing from CUSTOMER_ROUTES"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_partner_whose_administrator_is_refused_is_not_created() {
    let (app, partner) = TestApp::with_partner_admin().await;
    partner.get("/partners").await.expect_status(StatusCode::OK);
    let refused = partner
        .post(
            "/partners",
            &[
                ("name", "Reseller West"),
                ("display_name", "Dup"),
                ("email", PARTNER_EMAIL),
                ("password", PASSWORD),
            ],
        )
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("A user with this email already exists.")
    );
    assert!(
        refused.body.contains("value=\"Reseller West\""),
        "the typed name is kept"
    );
    let partners = skyvault::accounts::entities::partner::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(
        partners.iter().all(|p| p.name != "Reseller West"),
        "no partner is left without an administrator"
    );
}
