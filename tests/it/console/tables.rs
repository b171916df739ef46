//! Lists that keep their state in the URL (search, filters, sort, page), answer bad parameters
//! with a clear 400 or by ignoring them, and show a failed sync where a technician looks first.

use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::json;
use skyvault::inventory::entities::organization;

use crate::console::organizations::{consent, control, run_jobs};
use crate::console::storage::row_with;
use crate::support::app::{PASSWORD, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_lists_filter_sort_and_page_from_the_url_and_a_failed_sync_is_explained() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let tenant = app.simulator.tenants()[0].clone();
    let casey = app.visitor();
    casey.sign_in("casey@contoso.example", PASSWORD).await;
    let landed = consent(
        &app,
        &casey,
        &customer,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    let org_page = landed.location().replace("?notice=added", "");
    assert_eq!(run_jobs(&app).await, 1);

    // Sorted by name descending: the last name comes first, and the heading links the other way.
    let desc = casey
        .get(&format!("{org_page}?tab=users&dir=desc"))
        .await
        .expect_status(StatusCode::OK);
    let asc = casey.get(&format!("{org_page}?tab=users")).await;
    let first_row = |body: &str| {
        let tbody = &body[body.find("<tbody>").unwrap()..];
        let start = tbody.find("<td class=\"strong\">").unwrap() + 19;
        tbody[start..start + tbody[start..].find(['<', '\n']).unwrap()].to_string()
    };
    assert_ne!(first_row(&desc.body), first_row(&asc.body));
    assert!(desc.body.contains("Name ▼"));
    // Filters: none inactive yet; unknown values are ignored rather than failing.
    let inactive = casey
        .get(&format!("{org_page}?tab=users&state=inactive"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        inactive
            .body
            .contains("Nothing matches with these filters.")
    );
    let odd = casey
        .get(&format!(
            "{org_page}?tab=users&state=%3Cb%3E&sort=%3Cb%3E&type=%3Cscript%3E&dir=up"
        ))
        .await
        .expect_status(StatusCode::OK);
    assert!(!odd.body.contains("<script>"));
    let bad = casey.get(&format!("{org_page}?tab=users&page=-1")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Microsoft 365 fails every directory request: the sync fails, and says so in words on the
    // organization, on Devices, in Activities and on the partner's Customers list.
    control(
        &app,
        reqwest::Method::PUT,
        "faults/directory",
        Some(json!({"rate_503": 100.0, "retry_after_seconds": 0.01})),
    )
    .await;
    casey.get(&org_page).await;
    casey.post(&format!("{org_page}/refresh"), &[]).await;
    assert_eq!(run_jobs(&app).await, 1);
    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let outcome = org.last_sync_outcome.clone().unwrap();
    assert!(outcome.starts_with("Failed: [unavailable]"), "{outcome}");
    let page = casey.get(&org_page).await.expect_status(StatusCode::OK);
    assert!(page.body.contains("Microsoft 365 could not be reached"));
    assert!(
        page.body
            .contains("Skyvault tries again at the next scheduled sync")
    );
    assert!(page.body.contains("<summary>Details</summary>"));
    assert!(page.body.contains("<dt>Request id</dt>"));
    assert!(!page.body.contains("Failed: "), "no raw outcome text");
    let devices = casey.get(&format!("/c/{customer}/devices")).await;
    let row = row_with(&devices.body, "Sync failed");
    assert!(row.contains("Microsoft 365 could not be reached"), "{row}");
    let activities = casey.get(&format!("/c/{customer}/activities")).await;
    assert!(
        activities
            .body
            .contains("Microsoft 365 could not be reached")
    );
    let failed_only = casey
        .get(&format!(
            "/c/{customer}/activities?kind=directory_sync&status=failed"
        ))
        .await
        .expect_status(StatusCode::OK);
    assert!(failed_only.body.contains("1 activity"));
    let bad = casey
        .get(&format!("/c/{customer}/activities?page=many"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("malformed"));
    let customers = partner.get("/customers").await;
    let row = row_with(&customers.body, &format!("href=\"/customers/{customer}\""));
    assert!(
        row.contains("Sync failed") && row.contains("1 of 1 organization"),
        "{row}"
    );
    let failing = partner.get("/customers?status=sync_failed").await;
    assert!(failing.body.contains("Contoso Ltd"));
    let healthy = partner
        .get("/customers?status=active&q=nothing-like-it")
        .await;
    assert!(healthy.body.contains("No customer matches"));
    assert!(
        healthy.body.contains("value=\"nothing-like-it\""),
        "the search is kept"
    );

    // The repository's path is for partners; the customer sees the space used.
    let own = casey.get(&format!("/c/{customer}/storage")).await;
    let location = app
        .state
        .storage
        .repository_location(customer.parse().unwrap());
    assert!(!own.body.contains(&location));
    assert!(own.body.contains("Space used"));
    let theirs = partner.get(&format!("/c/{customer}/storage")).await;
    assert!(theirs.body.contains(&location));
}

/// The position of each name in a page, in the order they appear.
fn order_of<'a>(body: &str, names: &[&'a str]) -> Vec<&'a str> {
    let mut found: Vec<(usize, &str)> = names
        .iter()
        .map(|name| {
            (
                body.find(name).unwrap_or_else(|| panic!("{name} listed")),
                *name,
            )
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, name)| name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_console_users_and_sub_partners_sort_from_their_headers() {
    let (app, partner) = TestApp::with_partner_admin().await;
    for name in ["Bravo Ltd", "Alpha Ltd", "Charlie Ltd"] {
        app.clock.advance(chrono::Duration::minutes(1));
        app.customer_with_admin(&partner, name, &format!("admin@{}.example", &name[..5]))
            .await;
    }
    let names = ["Alpha Ltd", "Bravo Ltd", "Charlie Ltd"];

    // By name by default, with the sorted header saying so; the header links the other way.
    let list = partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(order_of(&list.body, &names), names);
    assert!(list.body.contains("<th scope=\"col\" aria-sort=\"ascending\"><a class=\"th-sort\" href=\"/customers?dir=desc\">Name"));
    let desc = partner.get("/customers?dir=desc").await;
    assert_eq!(
        order_of(&desc.body, &names),
        ["Charlie Ltd", "Bravo Ltd", "Alpha Ltd"]
    );
    // Newest first when sorting by creation, and the search form keeps the sort.
    let newest = partner
        .get("/customers?sort=created")
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(
        order_of(&newest.body, &names),
        ["Charlie Ltd", "Alpha Ltd", "Bravo Ltd"]
    );
    assert!(
        newest
            .body
            .contains("<input type=\"hidden\" name=\"sort\" value=\"created\">")
    );
    // Unknown columns and directions fall back to the default order.
    let odd = partner
        .get("/customers?sort=%3Cb%3E&dir=sideways")
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(order_of(&odd.body, &names), names);

    // Console users on the customer page, by e-mail descending.
    let alpha = partner.get("/customers?q=Alpha").await;
    let start = alpha.body.find("href=\"/customers/").unwrap() + 17;
    let id = &alpha.body[start..start + 36];
    partner.get(&format!("/customers/{id}")).await;
    partner
        .post(
            &format!("/customers/{id}/users"),
            &[
                ("display_name", "Zed Reader"),
                ("email", "aaron@alpha.example"),
                ("password", PASSWORD),
                ("role", "read_only"),
            ],
        )
        .await;
    let by_name = partner.get(&format!("/customers/{id}")).await;
    assert_eq!(
        order_of(&by_name.body, &["Casey Admin", "Zed Reader"]),
        ["Casey Admin", "Zed Reader"]
    );
    let by_email = partner
        .get(&format!("/customers/{id}?sort=email"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(
        order_of(&by_email.body, &["Casey Admin", "Zed Reader"]),
        ["Zed Reader", "Casey Admin"]
    );
    assert!(
        by_email
            .body
            .contains("aria-sort=\"ascending\"><a class=\"th-sort\" href=\"/customers/")
    );

    // Sub-partners by customer count, most first.
    app.sub_partner_with_admin(&partner).await;
    let subs = partner
        .get("/partners?sort=customers")
        .await
        .expect_status(StatusCode::OK);
    assert!(subs.body.contains("aria-sort=\"descending\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sort_from_their_headers() {
    use crate::console::organizations::{consent, customer_admin, run_jobs};

    let (app, partner) = TestApp::with_partner_admin().await;
    let (customer, admin) = customer_admin(
        &app,
        &partner,
        "Northwind Traders",
        "casey@northwind.example",
    )
    .await;
    let tenants = app.simulator.tenants();
    for tenant in &tenants[..2] {
        consent(
            &app,
            &admin,
            &customer,
            &tenant.admin_user_principal_name,
            &tenant.admin_password,
            "accept",
        )
        .await;
    }
    assert_eq!(run_jobs(&app).await, 2, "both first syncs ran");
    let mut names: Vec<&str> = tenants[..2]
        .iter()
        .map(|t| t.display_name.as_str())
        .collect();
    names.sort();

    // By organization name, A to Z by default; the header says so and links the other way.
    let devices = admin
        .get(&format!("/c/{customer}/devices"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(order_of(&devices.body, &names), names);
    assert!(devices.body.contains(&format!(
        "<th scope=\"col\" aria-sort=\"ascending\"><a class=\"th-sort\" href=\"/c/{customer}/devices?dir=desc\">Organization"
    )));
    let reversed = admin
        .get(&format!("/c/{customer}/devices?dir=desc"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(
        order_of(&reversed.body, &names),
        [names[1], names[0]],
        "Z to A after one click"
    );
    // Every column has a header link, and an unknown column falls back to the name.
    for column in ["items", "last", "next", "status"] {
        assert!(
            devices
                .body
                .contains(&format!("href=\"/c/{customer}/devices?sort={column}")),
            "{column} header"
        );
        admin
            .get(&format!("/c/{customer}/devices?sort={column}"))
            .await
            .expect_status(StatusCode::OK);
    }
    let odd = admin
        .get(&format!("/c/{customer}/devices?sort=%3Cb%3E&dir=sideways"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(order_of(&odd.body, &names), names);
}
