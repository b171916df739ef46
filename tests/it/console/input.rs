//! Bad input gets a field message or a 4xx with a stable code, never a 500, on both databases:
//! control characters in names and addresses, overlong text, roles that do not exist, and
//! addresses that belong to other tenants' accounts.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use skyvault::accounts::entities::{console_user, customer, partner};
use skyvault::accounts::users::EMAIL_UNAVAILABLE;

use super::access::organization_fixture;
use crate::support::app::{PARTNER_EMAIL, PASSWORD, Page, TestApp, Visitor};

const CONTROL_MESSAGE: &str = "Remove control characters (such as tabs, line breaks or NUL).";
const EMAIL_MESSAGE: &str = "Enter an email address like name@example.com.";

fn refused(page: Page, code: &str, message: &str) -> Page {
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "expected a refusal ({code}); body:\n{}",
        page.body
    );
    assert_eq!(page.error_code().as_deref(), Some(code), "{}", page.body);
    assert!(
        page.body.contains(message),
        "expected “{message}” in:\n{}",
        page.body
    );
    page
}

async fn user_count(app: &TestApp) -> u64 {
    console_user::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

/// A customer with its administrator signed in; returns (customer id, administrator).
async fn customer_admin(
    app: &TestApp,
    partner: &Visitor,
    name: &str,
    email: &str,
) -> (String, Visitor) {
    let id = app.customer_with_admin(partner, name, email).await;
    let admin = app.visitor();
    admin
        .sign_in(email, PASSWORD)
        .await
        .expect_redirect(&format!("/c/{id}/overview"));
    admin.get(&format!("/c/{id}/settings")).await;
    (id, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_names_and_addresses_get_a_field_message() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (id, casey) = customer_admin(&app, &partner, "Contoso", "casey@contoso.example").await;
    let users_before = user_count(&app).await;

    for name in [
        "Evil\0Corp",
        "Line\nbreak",
        "Tab\there",
        "Bell\u{7}",
        "C1\u{85}inside",
    ] {
        partner.get("/customers").await;
        refused(
            partner.post("/customers", &[("name", name)]).await,
            "invalid_name",
            CONTROL_MESSAGE,
        );
        partner.get(&format!("/customers/{id}")).await;
        refused(
            partner
                .post(&format!("/customers/{id}/rename"), &[("name", name)])
                .await,
            "invalid_name",
            CONTROL_MESSAGE,
        );
        partner.get("/partners").await;
        refused(
            partner
                .post(
                    "/partners",
                    &[
                        ("name", name),
                        ("display_name", "Sam"),
                        ("email", "sam@east.example"),
                        ("password", PASSWORD),
                    ],
                )
                .await,
            "invalid_name",
            CONTROL_MESSAGE,
        );
        for (display_name, email, code, message) in [
            (
                name,
                "ok@contoso.example",
                "invalid_display_name",
                CONTROL_MESSAGE,
            ),
            (
                "Robin",
                "nul\0@contoso.example",
                "invalid_email",
                EMAIL_MESSAGE,
            ),
        ] {
            let fields = [
                ("display_name", display_name),
                ("email", email),
                ("password", PASSWORD),
                ("role", "read_only"),
            ];
            refused(
                casey
                    .post(&format!("/c/{id}/settings/users"), &fields)
                    .await,
                code,
                message,
            );
            partner.get(&format!("/customers/{id}")).await;
            refused(
                partner
                    .post(&format!("/customers/{id}/users"), &fields)
                    .await,
                code,
                message,
            );
        }
    }
    // Signing in with such an address is refused before it reaches the database.
    let visitor = app.visitor();
    visitor.get("/signin").await;
    refused(
        visitor
            .post(
                "/signin",
                &[("email", "pat\0@northwind.example"), ("password", PASSWORD)],
            )
            .await,
        "invalid_email",
        EMAIL_MESSAGE,
    );
    // The organization search drops control characters and searches the rest.
    let org = organization_fixture(&app, &id, "ContosoOrg").await;
    let search = casey
        .get(&format!("/c/{id}/m365/{org}?tab=users&q=ali%00ce%0A"))
        .await
        .expect_status(StatusCode::OK);
    assert!(search.body.contains("value=\"alice\""), "{}", search.body);
    assert!(
        search.body.contains("Alice Example"),
        "the cleaned search finds her"
    );

    assert_eq!(user_count(&app).await, users_before, "nobody was added");
    let names: Vec<String> = customer::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Contoso"]);
    assert_eq!(
        partner::Entity::find().count(&app.state.db).await.unwrap(),
        1,
        "no sub-partner was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_setup_never_spends_the_setup_link() {
    let app = TestApp::start().await;
    let token = app.setup_token.clone().unwrap();
    let visitor = app.visitor();
    visitor
        .get(&format!("/setup/{token}"))
        .await
        .expect_status(StatusCode::OK);
    let good = [
        ("organisation", "Northwind Partners"),
        ("display_name", "Pat Partner"),
        ("email", PARTNER_EMAIL),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let long = "x".repeat(10_000);
    for (field, value, code, message) in [
        (
            "organisation",
            "North\0wind",
            "invalid_organisation",
            CONTROL_MESSAGE,
        ),
        (
            "display_name",
            "Pat\0",
            "invalid_display_name",
            CONTROL_MESSAGE,
        ),
        (
            "email",
            "pat\0@northwind.example",
            "invalid_email",
            EMAIL_MESSAGE,
        ),
        (
            "organisation",
            long.as_str(),
            "invalid_organisation",
            "Use at most 120 characters.",
        ),
        (
            "email",
            long.as_str(),
            "invalid_email",
            "Use at most 254 characters.",
        ),
    ] {
        let fields: Vec<(&str, &str)> = good
            .iter()
            .map(|&(name, good_value)| (name, if name == field { value } else { good_value }))
            .collect();
        refused(
            visitor.post(&format!("/setup/{token}"), &fields).await,
            code,
            message,
        );
        // The link still opens the form: nothing was spent.
        visitor
            .get(&format!("/setup/{token}"))
            .await
            .expect_status(StatusCode::OK);
    }
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(
        partner::Entity::find().count(&app.state.db).await.unwrap(),
        0
    );
    visitor
        .post(&format!("/setup/{token}"), &good)
        .await
        .expect_redirect("/customers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_text_gets_a_message_not_a_500() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (id, casey) = customer_admin(&app, &partner, "Contoso", "casey@contoso.example").await;
    let org = organization_fixture(&app, &id, "ContosoOrg").await;
    let long = "a".repeat(50_000);

    // Any user may search; 50,000 characters once made SQLite refuse the LIKE pattern.
    let page = casey
        .get(&format!("/c/{id}/m365/{org}?tab=users&q={long}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        page.body.contains("Search for at most 200 characters."),
        "{}",
        page.body
    );
    // The same through htmx, which asks for the list alone.
    let fragment = casey
        .get_with_headers(
            &format!("/c/{id}/m365/{org}?tab=users&q={long}"),
            &[("HX-Request", "true"), ("HX-Target", "items")],
        )
        .await
        .expect_status(StatusCode::OK);
    assert!(fragment.body.contains("Search for at most 200 characters."));
    assert!(fragment.body.starts_with("<div id=\"items\""));
    // 200 characters are still searched.
    casey
        .get(&format!("/c/{id}/m365/{org}?q={}", "b".repeat(200)))
        .await
        .expect_status(StatusCode::OK);

    refused(
        casey
            .post(
                &format!("/c/{id}/settings/users"),
                &[
                    ("display_name", "Robin"),
                    ("email", &format!("{long}@contoso.example")),
                    ("password", PASSWORD),
                    ("role", "read_only"),
                ],
            )
            .await,
        "invalid_email",
        "Use at most 254 characters.",
    );
    partner.get("/customers").await;
    refused(
        partner.post("/customers", &[("name", &long)]).await,
        "invalid_name",
        "Use at most 120 characters.",
    );
    let visitor = app.visitor();
    visitor.get("/signin").await;
    refused(
        visitor
            .post("/signin", &[("email", &long), ("password", PASSWORD)])
            .await,
        "invalid_email",
        "Use at most 254 characters.",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_does_not_exist_is_refused_not_made_an_administrator() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (id, casey) = customer_admin(&app, &partner, "Contoso", "casey@contoso.example").await;
    let before = user_count(&app).await;
    for role in [
        "READ_ONLY",
        "read-only",
        "admin",
        "",
        "partner_admin",
        "customer_admin ",
        "read_only\0",
    ] {
        let fields = [
            ("display_name", "Robin Reader"),
            ("email", "robin@contoso.example"),
            ("password", PASSWORD),
            ("role", role),
        ];
        let page = refused(
            casey
                .post(&format!("/c/{id}/settings/users"), &fields)
                .await,
            "invalid_role",
            "Choose Customer administrator or Read-only user.",
        );
        assert!(
            page.body.contains("value=\"robin@contoso.example\""),
            "the form keeps what was typed"
        );
        partner.get(&format!("/customers/{id}")).await;
        refused(
            partner
                .post(&format!("/customers/{id}/users"), &fields)
                .await,
            "invalid_role",
            "Choose Customer administrator or Read-only user.",
        );
    }
    assert_eq!(user_count(&app).await, before, "no user was created");

    // The two real roles still work, and give what they say.
    for (email, role, label) in [
        ("robin@contoso.example", "read_only", "Read-only user"),
        (
            "ada@contoso.example",
            "customer_admin",
            "Customer administrator",
        ),
    ] {
        casey.get(&format!("/c/{id}/settings")).await;
        casey
            .post(
                &format!("/c/{id}/settings/users"),
                &[
                    ("display_name", "New User"),
                    ("email", email),
                    ("password", PASSWORD),
                    ("role", role),
                ],
            )
            .await
            .expect_redirect(&format!("/c/{id}/settings"));
        let stored = console_user::Entity::find()
            .filter(console_user::Column::Email.eq(email))
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.role, role, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_user_never_confirms_accounts_of_other_tenants() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (contoso, casey) = customer_admin(&app, &partner, "Contoso", "casey@contoso.example").await;
    let _fabrikam = app
        .customer_with_admin(&partner, "Fabrikam", "fran@fabrikam.example")
        .await;
    let add = |email: &'static str| {
        [
            ("display_name", "Someone"),
            ("email", email),
            ("password", PASSWORD),
            ("role", "read_only"),
        ]
    };

    // Another customer's user and the partner's own administrator: not confirmed to Contoso.
    for email in ["fran@fabrikam.example", PARTNER_EMAIL] {
        casey.get(&format!("/c/{contoso}/settings")).await;
        let page = refused(
            casey
                .post(&format!("/c/{contoso}/settings/users"), &add(email))
                .await,
            "invalid_email",
            EMAIL_UNAVAILABLE,
        );
        assert!(!page.body.contains("already exists"), "{}", page.body);
        assert!(!page.body.contains("Fabrikam") && !page.body.contains("Northwind"));
    }
    // An address that is nowhere gives the same message as one in another tenant would not:
    // it is simply added. An address in Contoso itself is named as taken (Contoso sees it).
    casey.get(&format!("/c/{contoso}/settings")).await;
    refused(
        casey
            .post(
                &format!("/c/{contoso}/settings/users"),
                &add("casey@contoso.example"),
            )
            .await,
        "invalid_email",
        "A user with this email already exists.",
    );
    // The partner administrator sees every account of its tree, so it is told plainly.
    partner.get(&format!("/customers/{contoso}")).await;
    refused(
        partner
            .post(
                &format!("/customers/{contoso}/users"),
                &add("fran@fabrikam.example"),
            )
            .await,
        "invalid_email",
        "A user with this email already exists.",
    );
    // A sub-partner is outside its parent's customers: not confirmed to it either.
    let sam = app.sub_partner_with_admin(&partner).await;
    sam.get("/partners").await;
    let page = refused(
        sam.post(
            "/partners",
            &[
                ("name", "Reseller South"),
                ("display_name", "Someone"),
                ("email", "casey@contoso.example"),
                ("password", PASSWORD),
            ],
        )
        .await,
        "invalid_email",
        EMAIL_UNAVAILABLE,
    );
    assert!(!page.body.contains("already exists"));
}
