//! Demo mode across a restart: the built-in tenant keeps the consent of the organization the
//! console already has, so its syncs go on working, as they would against Microsoft; and consent
//! given again for an organization already added queues a directory sync at once.

use reqwest::StatusCode;
use sea_orm::EntityTrait;
use skyvault::inventory::entities::organization;

use super::organizations::{consent, customer_admin, run_jobs};
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
