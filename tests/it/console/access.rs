//! Tenancy: partners manage customers, customers see only themselves, and no id in a URL reaches
//! another tenant: every route of `routes::ROUTES`, walked by every role with every other
//! tenant's ids.

use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use skyvault::accounts::entities::{console_user, customer as customer_entity};
use skyvault::inventory::entities::{organization, protected_item};
use skyvault::jobs::entities::job;

use super::routes::{self, Route};
use crate::support::app::{PARTNER_EMAIL, PASSWORD, TestApp, Visitor};

/// An organization of `customer` as the consent flow stores it, with one user (Alice Example),
/// without the flow: these tests are about the routes that take its id, not about how it was
/// added.
pub(crate) async fn organization_fixture(app: &TestApp, customer: &str, name: &str) -> String {
    let id = uuid::Uuid::new_v4();
    let now = app.state.clock.now();
    organization::ActiveModel {
        id: Set(id),
        customer_id: Set(customer.parse().unwrap()),
        tenant_id: Set(uuid::Uuid::new_v4().to_string()),
        display_name: Set(name.to_string()),
        default_domain: Set(format!("{}.example", name.to_lowercase())),
        initial_domain: Set(format!("{}.onmicrosoft.com", name.to_lowercase())),
        added_at: Set(now),
        last_sync_at: Set(None),
        last_sync_outcome: Set(None),
        next_sync_at: Set(now + chrono::Duration::hours(24)),
        item_counts: Set("{}".into()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    protected_item::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        org_id: Set(id),
        kind: Set("user".into()),
        graph_id: Set(uuid::Uuid::new_v4().to_string()),
        display_name: Set("Alice Example".into()),
        address: Set(format!("alice@{}.example", name.to_lowercase())),
        detail: Set("Member".into()),
        state: Set("active".into()),
        has_mailbox: Set(Some(true)),
        has_drive: Set(Some(true)),
        first_seen_at: Set(now),
        changed_at: Set(now),
        inactive_since: Set(None),
        checked_at: Set(Some(now)),
        check_error: Set(None),
        directory_hints: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    id.to_string()
}

/// A form that would change something if a handler accepted it.
const INTRUDER_FIELDS: &[(&str, &str)] = &[
    ("name", "Renamed by an intruder"),
    ("display_name", "Intruder"),
    ("email", "intruder@example.com"),
    ("password", "intruder password 123"),
    ("role", "customer_admin"),
];

async fn request(visitor: &Visitor, route: &Route, path: &str) -> crate::support::app::Page {
    match route.method {
        "GET" => visitor.get(path).await,
        "HEAD" => visitor.head(path).await,
        _ => visitor.post(path, INTRUDER_FIELDS).await,
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
        .expect_redirect(&format!("/c/{id}/overview"));
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
async fn another_partner_cannot_reach_our_customers_but_a_parent_partner_can_reach_sub_partners() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Adatum", "casey@adatum.example")
        .await;

    // A sub-partner with its own administrator and customer.
    let sub = app.sub_partner_with_admin(&partner).await;
    let sub_customer = app
        .customer_with_admin(&sub, "Tailspin", "tia@tailspin.example")
        .await;

    // The sub-partner sees only its own customer; ours is out of reach.
    let list = sub.get("/customers").await;
    assert!(list.body.contains("Tailspin") && !list.body.contains("Adatum"));
    sub.get(&format!("/c/{customer}/devices"))
        .await
        .expect_status(StatusCode::NOT_FOUND);
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
        .expect_redirect(&format!("/c/{id}/overview"));

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
        .expect_redirect(&format!("/c/{id}/overview"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_users_see_but_cannot_change() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let id = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let admin = app.visitor();
    admin.sign_in("casey@contoso.example", PASSWORD).await;
    let reader = app.read_only_user(&admin, &id).await;
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

/// A tenant someone must not reach: its customer, its organization and the names that must not
/// show up in any answer.
struct Foreign {
    customer: String,
    org: String,
    names: [&'static str; 2],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_role_reaches_another_tenant_through_any_route() {
    // Northwind (the partner) has Contoso and Fabrikam; its sub-partner Reseller East has
    // Tailspin. Each customer has an organization.
    let (app, partner) = TestApp::with_partner_admin().await;
    let contoso = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let fabrikam = app
        .customer_with_admin(&partner, "Fabrikam", "fran@fabrikam.example")
        .await;
    let sub = app.sub_partner_with_admin(&partner).await;
    let tailspin = app
        .customer_with_admin(&sub, "Tailspin", "tia@tailspin.example")
        .await;
    let contoso_org = organization_fixture(&app, &contoso, "ContosoOrg").await;
    let fabrikam_org = organization_fixture(&app, &fabrikam, "FabrikamOrg").await;
    let tailspin_org = organization_fixture(&app, &tailspin, "TailspinOrg").await;

    let casey = app.visitor();
    casey
        .sign_in("casey@contoso.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{contoso}/overview"));
    let robin = app.read_only_user(&casey, &contoso).await;

    let fabrikam_t = Foreign {
        customer: fabrikam.clone(),
        org: fabrikam_org.clone(),
        names: ["Fabrikam", "FabrikamOrg"],
    };
    let tailspin_t = Foreign {
        customer: tailspin.clone(),
        org: tailspin_org.clone(),
        names: ["Tailspin", "TailspinOrg"],
    };
    let contoso_t = Foreign {
        customer: contoso.clone(),
        org: contoso_org.clone(),
        names: ["Contoso", "ContosoOrg"],
    };
    let nobody = Foreign {
        customer: uuid::Uuid::new_v4().to_string(),
        org: uuid::Uuid::new_v4().to_string(),
        names: ["Renamed by an intruder", "intruder@example.com"],
    };
    // (who, their own customer, the tenants out of their reach)
    let cases: [(&str, &Visitor, &str, Vec<&Foreign>); 4] = [
        (
            "customer admin",
            &casey,
            &contoso,
            vec![&fabrikam_t, &tailspin_t],
        ),
        (
            "read-only user",
            &robin,
            &contoso,
            vec![&fabrikam_t, &tailspin_t],
        ),
        (
            "sub-partner admin",
            &sub,
            &tailspin,
            vec![&contoso_t, &fabrikam_t],
        ),
        // The top partner reaches every customer; ids that exist nowhere are still not found.
        ("partner admin", &partner, &contoso, vec![&nobody]),
    ];
    let scoped: Vec<&Route> = routes::walk_order()
        .into_iter()
        .filter(|r| r.is_scoped())
        .collect();
    let mut walked = 0;
    for (who, visitor, own, foreign) in &cases {
        for tenant in foreign {
            for route in &scoped {
                // Another tenant's customer with its organization, and our own customer with
                // another tenant's organization.
                let mut paths = route.paths(&tenant.customer, &tenant.org, "");
                if route.path.contains("{org}") {
                    paths.extend(route.paths(own, &tenant.org, ""));
                }
                for path in paths {
                    visitor.get("/").await; // a page with a fresh CSRF token, as a browser has
                    visitor.get(&format!("/c/{own}/devices")).await;
                    let page = request(visitor, route, &path).await;
                    walked += 1;
                    assert_eq!(
                        page.status,
                        StatusCode::NOT_FOUND,
                        "{who}: {} {path} must not reach another tenant:\n{}",
                        route.method,
                        page.body
                    );
                    for name in tenant.names {
                        assert!(
                            !page.body.contains(name),
                            "{who}: {} {path} leaked {name}",
                            route.method
                        );
                    }
                }
            }
        }
    }
    // The partner reaches both of its customers, but never one's organization through the other.
    for route in scoped.iter().filter(|r| r.path.contains("{org}")) {
        for path in route.paths(&contoso, &fabrikam_org, "") {
            partner.get("/customers").await;
            let page = request(&partner, route, &path).await;
            walked += 1;
            assert_eq!(
                page.status,
                StatusCode::NOT_FOUND,
                "partner admin: {} {path} mixed two customers' ids",
                route.method
            );
        }
    }
    assert!(walked > 100, "walked {walked} requests");

    // Nothing changed anywhere: names, states, users, organizations, queued work.
    let customers = customer_entity::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    let mut names: Vec<_> = customers.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Contoso", "Fabrikam", "Tailspin"]);
    assert!(customers.iter().all(|c| !c.disabled));
    let intruders = console_user::Entity::find()
        .filter(console_user::Column::Email.eq("intruder@example.com"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(intruders.is_empty());
    assert_eq!(
        organization::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        job::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .is_empty(),
        "no sync or check was queued"
    );
}
