//! Discovery against tenant shapes Microsoft's documentation allows: objects already deleted
//! when the organization is added, workload checks Microsoft answers oddly, licences assigned
//! after the first sync. The organization is set up directly (consent granted in the simulator,
//! its row written as the consent callback would), so these tests do not depend on the consent
//! pages; the sync runs as the worker runs it.

use chrono::TimeZone;
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use skyvault::inventory::entities::{organization, protected_item};
use skyvault::jobs::entities::job;
use skyvault::jobs::queue;
use skyvault::jobs::worker::run_until_idle;

use crate::support::app::{PASSWORD, TEST_CLIENT_ID, TestApp};

struct Added {
    app: TestApp,
    org: organization::Model,
    tenant: String,
}

/// A customer administrator signed in, and Contoso (the simulator's first tenant) consented,
/// its organization row written but not yet synced.
async fn organization_added() -> Added {
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let info = app.simulator.tenants()[0].clone();
    let tenant = info.tenant_id.to_string();
    control(
        &app,
        Method::POST,
        &format!("tenants/{tenant}/consents/{TEST_CLIENT_ID}"),
        None,
    )
    .await;
    let now = app.state.clock.now();
    let org = organization::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        customer_id: Set(customer.parse().unwrap()),
        tenant_id: Set(tenant.clone()),
        display_name: Set(info.display_name.clone()),
        default_domain: Set(info.domain.clone()),
        initial_domain: Set(info.domain.clone()),
        added_at: Set(now),
        last_sync_at: Set(None),
        last_sync_outcome: Set(None),
        next_sync_at: Set(now + chrono::Duration::hours(24)),
        item_counts: Set("{}".into()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    Added { app, org, tenant }
}

async fn control(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new()
        .request(
            method,
            format!(
                "{}/_sim/{path}",
                app.simulator.base_url().trim_end_matches('/')
            ),
        )
        .bearer_auth(app.simulator.admin_token());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "control {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Queues a sync as Refresh does and runs it; returns the finished job.
async fn sync(added: &Added) -> job::Model {
    let app = &added.app;
    let queued = queue::enqueue_sync(&app.state.db, app.state.clock.as_ref(), &added.org)
        .await
        .unwrap();
    run_until_idle(&skyvault::app::worker_context(&app.state))
        .await
        .unwrap();
    job::Entity::find_by_id(queued.id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

async fn row(app: &TestApp, kind: &str, name: &str) -> Option<protected_item::Model> {
    protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq(kind))
        .filter(protected_item::Column::DisplayName.eq(name))
        .one(&app.state.db)
        .await
        .unwrap()
}

/// The organization page as the customer administrator sees it (signed in afresh: tests move
/// the clock by days, past a session's lifetime).
async fn org_page(added: &Added, tab: &str) -> String {
    let admin = added.app.visitor();
    admin
        .sign_in("casey@contoso.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{}/overview", added.org.customer_id));
    admin
        .get(&format!(
            "/c/{}/m365/{}?tab={tab}",
            added.org.customer_id, added.org.id
        ))
        .await
        .expect_status(StatusCode::OK)
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_deleted_before_the_organization_was_added_show_inactive_then_leave_when_purged() {
    let added = organization_added().await;
    let (app, t) = (&added.app, added.tenant.as_str());
    let user = control(
        app,
        Method::POST,
        &format!("tenants/{t}/users"),
        Some(json!({"displayName": "Dana Departed"})),
    )
    .await;
    let group = control(
        app,
        Method::POST,
        &format!("tenants/{t}/groups"),
        Some(json!({"displayName": "Old Project", "unified": true, "team": true})),
    )
    .await;
    let site = control(
        app,
        Method::POST,
        &format!("tenants/{t}/sites"),
        Some(json!({"displayName": "Old Intranet"})),
    )
    .await;
    let deleted_at = chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
    for (kind, object) in [("users", &user), ("groups", &group), ("sites", &site)] {
        let id = object["id"].as_str().unwrap();
        control(
            app,
            Method::DELETE,
            &format!("tenants/{t}/{kind}/{id}"),
            None,
        )
        .await;
    }
    // The organization is added (and synced for the first time) a day later.
    app.clock.advance(chrono::Duration::days(1));

    let first = sync(&added).await;
    assert_eq!(first.status, "succeeded", "{:?}", first.error);
    for (kind, name) in [
        ("user", "Dana Departed"),
        ("group", "Old Project"),
        ("team", "Old Project"),
        ("site", "Old Intranet"),
    ] {
        let item = row(app, kind, name)
            .await
            .unwrap_or_else(|| panic!("{kind} {name} is listed on the first sync"));
        assert_eq!(item.state, "inactive", "{kind} {name}");
        let since = item.inactive_since.expect("deletion date");
        if kind == "site" {
            // Microsoft gives no deletion date for sites: the sync that first saw it deleted.
            assert_eq!(since, deleted_at + chrono::Duration::days(1));
        } else {
            assert_eq!(since, deleted_at, "{kind}: Microsoft's deletedDateTime");
        }
    }
    // A deleted user is never checked, let alone backed up.
    let dana = row(app, "user", "Dana Departed").await.unwrap();
    assert_eq!((dana.has_mailbox, dana.checked_at), (None, None));
    let users = org_page(&added, "users").await;
    let dana_row = users
        .split("<tr")
        .find(|r| r.contains("Dana Departed"))
        .expect("Dana's row");
    assert!(dana_row.contains("row-inactive"), "{dana_row}");
    assert!(dana_row.contains("Deleted 2026-11-02 09:00"), "{dana_row}");
    assert!(
        dana_row.contains("Not backed up while deleted"),
        "{dana_row}"
    );
    assert!(org_page(&added, "sites").await.contains("Old Intranet"));

    // A second sync changes nothing: they stay inactive with the same date.
    let again = sync(&added).await;
    assert_eq!(again.status, "succeeded", "{:?}", again.error);
    assert_eq!(
        row(app, "user", "Dana Departed")
            .await
            .unwrap()
            .inactive_since,
        Some(deleted_at)
    );

    // Purged in Microsoft 365: gone from the page, but the row stays, marked gone, under the
    // same id (plans and archives keep their reference).
    let dana_id = row(app, "user", "Dana Departed").await.unwrap().id;
    for (kind, object) in [("users", &user), ("groups", &group), ("sites", &site)] {
        let id = object["id"].as_str().unwrap();
        control(
            app,
            Method::POST,
            &format!("tenants/{t}/{kind}/{id}/purge"),
            None,
        )
        .await;
    }
    let purged = sync(&added).await;
    assert_eq!(purged.status, "succeeded", "{:?}", purged.error);
    for (kind, name) in [
        ("user", "Dana Departed"),
        ("group", "Old Project"),
        ("team", "Old Project"),
        ("site", "Old Intranet"),
    ] {
        let item = row(app, kind, name)
            .await
            .unwrap_or_else(|| panic!("{kind} {name} keeps its row"));
        assert_eq!(item.state, "gone", "{kind} {name}");
    }
    assert_eq!(row(app, "user", "Dana Departed").await.unwrap().id, dana_id);
    assert!(!org_page(&added, "users").await.contains("Dana Departed"));
    assert!(!org_page(&added, "sites").await.contains("Old Intranet"));
    // A later sync leaves gone items as they are, and does not count them again.
    let later = sync(&added).await;
    assert_eq!(later.status, "succeeded", "{:?}", later.error);
    assert!(
        later
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains(", 0 gone"),
        "{:?}",
        later.summary
    );
    assert_eq!(
        row(app, "user", "Dana Departed").await.unwrap().state,
        "gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_answers_to_workload_checks_are_recorded_per_user_and_the_sync_succeeds() {
    let added = organization_added().await;
    let (app, t) = (&added.app, added.tenant.as_str());
    let mut odd = Vec::new();
    for (name, fault) in [
        ("Bad Request", json!({"mail": 400})),
        ("No Licence", json!({"drive": 403})),
        (
            "Busy Server",
            json!({"mail": 503, "retryAfterSeconds": 0.01}),
        ),
    ] {
        let user = control(
            app,
            Method::POST,
            &format!("tenants/{t}/users"),
            Some(json!({"displayName": name})),
        )
        .await;
        let id = user["id"].as_str().unwrap().to_string();
        control(
            app,
            Method::PUT,
            &format!("tenants/{t}/users/{id}/faults"),
            Some(fault),
        )
        .await;
        odd.push((name, id));
    }

    let first = sync(&added).await;
    assert_eq!(first.status, "succeeded", "{:?}", first.error);
    let summary = first.summary.unwrap_or_default();
    assert!(
        summary.contains("3 users could not be checked"),
        "{summary}"
    );
    let org = organization::Entity::find_by_id(added.org.id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(!org.last_sync_failed(), "{:?}", org.last_sync_outcome);

    let bad = row(app, "user", "Bad Request").await.unwrap();
    let error = bad.check_error.clone().unwrap();
    assert!(error.starts_with("could not check mailbox"), "{error}");
    assert!(error.contains("400"), "{error}");
    // The OneDrive answer that did come is kept.
    assert_eq!((bad.has_mailbox, bad.has_drive), (None, Some(true)));
    let unlicensed = row(app, "user", "No Licence").await.unwrap();
    let error = unlicensed.check_error.clone().unwrap();
    assert!(
        error.contains("OneDrive") && error.contains("403"),
        "{error}"
    );
    assert_eq!(unlicensed.has_mailbox, Some(true));
    let busy = row(app, "user", "Busy Server").await.unwrap();
    assert!(busy.check_error.clone().unwrap().contains("503"));
    // Everyone else was checked normally.
    let others = protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .all(&app.state.db)
        .await
        .unwrap();
    let fine: Vec<_> = others
        .iter()
        .filter(|r| !odd.iter().any(|(name, _)| *name == r.display_name))
        .collect();
    assert!(!fine.is_empty());
    for user in fine {
        assert_eq!(user.check_error, None, "{}", user.display_name);
        assert_eq!(
            (user.has_mailbox, user.has_drive),
            (Some(true), Some(true)),
            "{}",
            user.display_name
        );
    }
    let page = org_page(&added, "users").await;
    let bad_row = page
        .split("<tr")
        .find(|r| r.contains("Bad Request"))
        .unwrap();
    assert!(bad_row.contains("Could not check mailbox"), "{bad_row}");
    assert!(
        bad_row.contains("checked again at the next sync"),
        "{bad_row}"
    );

    // Microsoft answers normally again: the next sync checks them once more.
    for (_, id) in &odd {
        control(
            app,
            Method::DELETE,
            &format!("tenants/{t}/users/{id}/faults"),
            None,
        )
        .await;
    }
    let second = sync(&added).await;
    assert_eq!(second.status, "succeeded", "{:?}", second.error);
    assert!(
        !second
            .summary
            .unwrap_or_default()
            .contains("could not be checked")
    );
    for (name, _) in &odd {
        let user = row(app, "user", name).await.unwrap();
        assert_eq!(user.check_error, None, "{name}");
        assert_eq!(
            (user.has_mailbox, user.has_drive),
            (Some(true), Some(true)),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_licence_assigned_after_the_first_sync_is_noticed() {
    let added = organization_added().await;
    let (app, t) = (&added.app, added.tenant.as_str());
    let user = control(
        app,
        Method::POST,
        &format!("tenants/{t}/users"),
        Some(json!({"displayName": "Late Licence", "licensed": false})),
    )
    .await;
    let id = user["id"].as_str().unwrap();

    assert_eq!(sync(&added).await.status, "succeeded");
    let before = row(app, "user", "Late Licence").await.unwrap();
    assert_eq!(
        (before.has_mailbox, before.has_drive),
        (Some(false), Some(false))
    );
    assert!(
        org_page(&added, "users")
            .await
            .contains("Nothing to back up")
    );

    control(
        app,
        Method::PATCH,
        &format!("tenants/{t}/users/{id}"),
        Some(json!({"licensed": true})),
    )
    .await;
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(sync(&added).await.status, "succeeded");
    let after = row(app, "user", "Late Licence").await.unwrap();
    assert_eq!(
        (after.has_mailbox, after.has_drive),
        (Some(true), Some(true))
    );
    assert_eq!(after.check_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_workloads_are_checked_again_after_a_week() {
    let added = organization_added().await;
    let app = &added.app;
    assert_eq!(sync(&added).await.status, "succeeded");
    let first = row(app, "user", &first_user_name(app).await).await.unwrap();
    let checked = first.checked_at.expect("checked on the first sync");

    // A day later nothing is due; a week later everyone is.
    app.clock.advance(chrono::Duration::days(1));
    assert_eq!(sync(&added).await.status, "succeeded");
    let next_day = row(app, "user", &first.display_name).await.unwrap();
    assert_eq!(next_day.checked_at, Some(checked));
    app.clock.advance(chrono::Duration::days(7));
    assert_eq!(sync(&added).await.status, "succeeded");
    let week_later = row(app, "user", &first.display_name).await.unwrap();
    assert!(week_later.checked_at.unwrap() > checked);
}

async fn first_user_name(app: &TestApp) -> String {
    protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .display_name
}
