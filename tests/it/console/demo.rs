//! Demo mode across a restart: the built-in tenant keeps the consent of the organization the
//! console already has, so its syncs go on working, as they would against Microsoft; and consent
//! given again for an organization already added queues a directory sync at once; and the demo
//! tenant's own page changes the tenant through guarded forms.

use reqwest::StatusCode;
use sea_orm::EntityTrait;
use skyvault::inventory::entities::organization;

use super::organizations::{consent, control, customer_admin, run_jobs};
use crate::support::app::TestApp;

async fn the_organization(app: &TestApp) -> organization::Model {
    organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("organization stored")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_keeps_its_organization_working_after_a_restart() {
    let app = TestApp::start_demo().await;
    let partner = app.first_partner_admin().await;
    let (customer, admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let tenant = app.simulator.tenant().clone();
    let landed = consent(
        &app,
        &admin,
        &customer,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    let org_page = landed.location().replace("?notice=added", "");
    assert_eq!(run_jobs(&app).await, 1);
    assert!(
        the_organization(&app)
            .await
            .last_sync_outcome
            .unwrap()
            .starts_with("Succeeded")
    );

    let app = app.restart().await;
    assert_eq!(
        app.simulator.tenant().tenant_id,
        tenant.tenant_id,
        "the same demo tenant"
    );
    // The administrator is still signed in (the session and the key that signs it survived).
    let page = admin.get(&org_page).await.expect_status(StatusCode::OK);
    let token = admin.csrf_token();
    assert!(page.body.contains(&tenant.display_name));
    admin
        .htmx_post(&format!("{org_page}/refresh"), &token)
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(run_jobs(&app).await, 1);
    let outcome = the_organization(&app).await.last_sync_outcome.unwrap();
    assert!(
        outcome.starts_with("Succeeded"),
        "sync after the restart: {outcome}"
    );
}

/// Through the console: renewing consent (Devices > Add again, for the organization already
/// added) queues a sync, so a sync that failed for lack of consent is retried at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_an_organization_again_queues_a_sync() {
    let app = TestApp::start_demo().await;
    let partner = app.first_partner_admin().await;
    let (customer, admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let tenant = app.simulator.tenant().clone();
    for _ in 0..2 {
        consent(
            &app,
            &admin,
            &customer,
            &tenant.admin_user_principal_name,
            &tenant.admin_password,
            "accept",
        )
        .await;
        assert_eq!(run_jobs(&app).await, 1, "each consent queues one sync");
    }
}

/// The demo tenant's own page: linked for partner administrators only, and every change it
/// offers made through a form that carries its token; nothing changes from another origin, from
/// a form without the token, or on a GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tenant_page_changes_the_tenant_through_guarded_forms() {
    let app = TestApp::start_demo().await;
    let partner = app.first_partner_admin().await;
    let (customer, admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let url = app.simulator.demo_page_url();
    let devices = format!("/c/{customer}/devices");
    assert!(partner.get(&devices).await.body.contains(&url));
    assert!(!admin.get(&devices).await.body.contains("/_demo/"));

    let users = control(
        &app,
        reqwest::Method::GET,
        "tenants/default/graph/users",
        None,
    )
    .await;
    let alex = users["value"][3]["id"].as_str().unwrap().to_string();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page_text = |address: String| {
        let request = browser.get(address).send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };
    let body = page_text(url.clone()).await;
    let start = body.find("name=\"token\" value=\"").unwrap() + 20;
    let token = body[start..start + 32].to_string();
    let post = |action: &str, fields: Vec<(&str, &str)>| {
        let mut form = fields;
        form.push(("token", token.as_str()));
        browser
            .post(format!("{url}/{action}"))
            .header("Origin", app.simulator.base_url().trim_end_matches('/'))
            .form(&form)
            .send()
    };
    let done = |response: reqwest::Response| {
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response.headers()["location"].to_str().unwrap().to_string()
    };

    // Soft-delete a user: the page shows it deleted, restorable; restoring an active user is
    // refused with the reason.
    let deleted = post(
        "life",
        vec![("kind", "users"), ("id", &alex), ("op", "delete")],
    )
    .await
    .unwrap();
    assert!(done(deleted).contains("done=deleted"));
    let shown = page_text(format!("{url}?done=deleted")).await;
    assert!(shown.contains("(restorable)") && shown.contains("soft-deleted"));
    let gone = control(
        &app,
        reqwest::Method::GET,
        &format!("tenants/default/graph/directory/deletedItems/{alex}"),
        None,
    )
    .await;
    assert_eq!(gone["id"], alex.as_str());
    post(
        "life",
        vec![("kind", "users"), ("id", &alex), ("op", "restore")],
    )
    .await
    .unwrap();
    let refused = post(
        "life",
        vec![("kind", "users"), ("id", &alex), ("op", "restore")],
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(refused.text().await.unwrap().contains("cannot restore"));

    // Add a user, deliver mail, change and delete a file.
    done(
        post(
            "add-user",
            vec![("display_name", "Demo Newcomer"), ("licensed", "1")],
        )
        .await
        .unwrap(),
    );
    let page = page_text(url.clone()).await;
    assert!(page.contains("Demo Newcomer"));
    let mail = post(
        "mail",
        vec![("user", &alex), ("subject", "Hello"), ("body", "Hi")],
    )
    .await
    .unwrap();
    assert!(done(mail).contains("done=mail_delivered"));
    let files = page_text(format!("{url}?user={alex}")).await;
    let start = files.find("name=\"item\" value=\"").unwrap() + 19;
    let item = files[start..start + files[start..].find('"').unwrap()].to_string();
    let changed = post("file-change", vec![("user", &alex), ("item", &item)])
        .await
        .unwrap();
    assert!(done(changed).contains("done=file_changed"));
    let removed = post("file-delete", vec![("user", &alex), ("item", &item)])
        .await
        .unwrap();
    assert!(done(removed).contains("done=file_deleted"));

    // Throttling off, faults on then cleared.
    done(post("throttling", vec![("on", "0")]).await.unwrap());
    assert!(
        !control(&app, reqwest::Method::GET, "throttling", None).await["enabled"]
            .as_bool()
            .unwrap()
    );
    done(
        post("faults", vec![("workload", "mail"), ("rate", "40")])
            .await
            .unwrap(),
    );
    assert_eq!(
        control(&app, reqwest::Method::GET, "faults", None).await["mail"]["rate_503"],
        40.0
    );
    let bad = post("faults", vec![("workload", "mail"), ("rate", "4000")])
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    done(post("faults-clear", vec![]).await.unwrap());

    // Guarded: no token, another origin, a GET on a change, or a wrong page key change nothing.
    let no_token = browser
        .post(format!("{url}/throttling"))
        .form(&[("on", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let cross_site = browser
        .post(format!("{url}/throttling"))
        .header("Origin", "http://evil.example")
        .form(&[("on", "1"), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let get = browser
        .get(format!("{url}/throttling?on=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let base = app.simulator.base_url().trim_end_matches('/');
    let guessed = browser
        .get(format!("{base}/_demo/0123"))
        .send()
        .await
        .unwrap();
    assert_eq!(guessed.status(), StatusCode::NOT_FOUND);
    assert!(
        !control(&app, reqwest::Method::GET, "throttling", None).await["enabled"]
            .as_bool()
            .unwrap(),
        "throttling stayed off"
    );
}
