//! Activities: Run now shown with who pressed it, sorting and the item filter in the URL, the
//! job's page with per-item outcomes, and a running backup's progress streamed as server-sent
//! events until 100 %; another customer's job and stream answer 404.

use futures::StreamExt;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use skyvault::inventory::entities::protected_item;
use skyvault::jobs::entities::job;
use skyvault::jobs::queue::JobKind;

use super::organizations::{added_and_synced, control, customer_admin, run_jobs};
use crate::support::app::{PARTNER_EMAIL, PASSWORD, TestApp, Visitor};

/// Protects one user's mailbox in a new plan; returns (customer, plan id, item id).
pub(super) async fn mailbox_plan(
    app: &TestApp,
    admin: &Visitor,
    org_page: &str,
) -> (String, String, String) {
    let mut parts = org_page.trim_start_matches("/c/").split('/');
    let customer = parts.next().unwrap().to_string();
    let org = parts.nth(1).unwrap().to_string();
    let user = protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .filter(protected_item::Column::HasMailbox.eq(true))
        .filter(protected_item::Column::State.eq("active"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a user with a mailbox");
    let item = user.id.to_string();
    admin.get(&format!("/c/{customer}/plans/new")).await;
    let created = admin
        .post(
            &format!("/c/{customer}/plans"),
            &[
                ("name", "Mailboxes"),
                ("org", org.as_str()),
                ("retention_kind", "points"),
                ("retention_value", "5"),
                ("workload", "mailbox"),
                ("item", item.as_str()),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let plan = created
        .location()
        .trim_start_matches(&format!("/c/{customer}/plans/"))
        .trim_end_matches("?notice=created")
        .to_string();
    (customer, plan, item)
}

pub(super) async fn plan_run_id(app: &TestApp) -> uuid::Uuid {
    job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::PlanRun.as_str()))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a plan run")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_streams_progress_to_100_percent_and_activities_say_who_started_it() {
    let (app, admin, org_page, _) = added_and_synced().await;
    let (customer, plan, item) = mailbox_plan(&app, &admin, &org_page).await;
    admin.get(&format!("/c/{customer}/plans/{plan}")).await;
    admin
        .post(&format!("/c/{customer}/plans/{plan}/run"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/plans/{plan}?notice=run_queued"));
    let run = plan_run_id(&app).await;

    // The stream is open before the worker starts, as a browser on the page would be.
    let events = admin
        .stream(&format!("/c/{customer}/activities/{run}/events"))
        .await;
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(
        events.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let reader = tokio::spawn(async move {
        let mut body = String::new();
        let mut chunks = events.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if body.contains("event: done") {
                break;
            }
        }
        body
    });
    run_jobs(&app).await;
    let body = tokio::time::timeout(std::time::Duration::from_secs(30), reader)
        .await
        .expect("the stream ends when the job does")
        .unwrap();
    assert!(body.starts_with("event: progress\n"), "{body}");
    assert!(
        body.contains("data: <progress max=\"100\" value=\"100\""),
        "{body}"
    );
    let done = body.split("event: done").nth(1).unwrap();
    assert!(
        done.contains("100 %") && done.contains("Succeeded."),
        "{body}"
    );
    // Before it, the status badge that replaces "Running" on the job page and in the list.
    let status = body.split("event: status").nth(1).unwrap();
    assert!(status.contains("badge-ok\">Succeeded"), "{body}");

    // A finished job's stream says so at once and ends.
    let again = admin
        .get(&format!("/c/{customer}/activities/{run}/events"))
        .await
        .expect_status(StatusCode::OK);
    assert!(again.body.starts_with("event: status\n"), "{}", again.body);
    assert!(again.body.contains("event: done\n"), "{}", again.body);

    // Activities: who started it, sortable headers, the item filter.
    let list = admin
        .get(&format!("/c/{customer}/activities"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        list.body.contains("Run now by casey@contoso.example"),
        "{}",
        list.body
    );
    assert!(list.body.contains("aria-sort=\"descending\""));
    assert!(list.body.contains("Directory sync"));
    let by_status = admin
        .get(&format!("/c/{customer}/activities?sort=status&dir=asc"))
        .await
        .expect_status(StatusCode::OK);
    assert!(by_status.body.contains("aria-sort=\"ascending\""));
    let of_item = admin
        .get(&format!("/c/{customer}/activities?item={item}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(of_item.body.contains("1 activity"), "{}", of_item.body);
    assert!(of_item.body.contains("Plan “Mailboxes”"));
    assert!(!of_item.body.contains(">Directory sync<"));
    let bad = admin
        .get(&format!("/c/{customer}/activities?item=nope"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // The job's page lists the item and links to its history.
    let page = admin
        .get(&format!("/c/{customer}/activities/{run}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(page.body.contains(&format!("activities?item={item}")));
    assert!(page.body.contains("Run now by casey@contoso.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_customers_job_and_its_progress_stream_answer_404() {
    let (app, admin, org_page, _) = added_and_synced().await;
    let (customer, plan, _) = mailbox_plan(&app, &admin, &org_page).await;
    admin.get(&format!("/c/{customer}/plans/{plan}")).await;
    admin
        .post(&format!("/c/{customer}/plans/{plan}/run"), &[])
        .await;
    let run = plan_run_id(&app).await;
    let partner = app.visitor();
    partner.sign_in(PARTNER_EMAIL, PASSWORD).await;
    let (other, fiona) = customer_admin(&app, &partner, "Fabrikam", "fiona@fabrikam.example").await;
    for path in [
        format!("/c/{other}/activities/{run}"),
        format!("/c/{other}/activities/{run}/events"),
        format!("/c/{customer}/activities/{run}/events"),
    ] {
        fiona.get(&path).await.expect_status(StatusCode::NOT_FOUND);
    }
}

async fn evaluate(app: &TestApp) -> skyvault::jobs::alerts::Evaluation {
    skyvault::jobs::alerts::evaluate(&app.state.db, app.state.clock.as_ref())
        .await
        .unwrap()
}

pub(super) async fn user_fault(
    app: &TestApp,
    tenant: uuid::Uuid,
    item: &str,
    fault: Option<serde_json::Value>,
) {
    let graph_id = protected_item::Entity::find_by_id(item.parse::<uuid::Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .graph_id;
    let method = if fault.is_some() {
        reqwest::Method::PUT
    } else {
        reqwest::Method::DELETE
    };
    control(
        app,
        method,
        &format!("tenants/{tenant}/users/{graph_id}/faults"),
        fault,
    )
    .await;
}

pub(super) async fn run_now(admin: &Visitor, customer: &str, plan: &str) {
    admin.get(&format!("/c/{customer}/plans/{plan}")).await;
    admin
        .post(&format!("/c/{customer}/plans/{plan}/run"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/plans/{plan}?notice=run_queued"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_raises_one_alert_that_admins_acknowledge_and_a_good_run_resolves() {
    let (app, admin, org_page, tenant) = added_and_synced().await;
    let (customer, plan, item) = mailbox_plan(&app, &admin, &org_page).await;
    // Microsoft refuses the user's mailbox: the run fails, in plain words.
    user_fault(
        &app,
        tenant.tenant_id,
        &item,
        Some(serde_json::json!({"mail": 403})),
    )
    .await;
    run_now(&admin, &customer, &plan).await;
    run_jobs(&app).await;
    let run = plan_run_id(&app).await;
    let page = admin
        .get(&format!("/c/{customer}/activities/{run}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        page.body
            .contains("Microsoft 365 refused to let Skyvault read this item"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<summary>Details</summary>"));

    let first = evaluate(&app).await;
    assert_eq!(first.opened, 1, "{first:?}");
    assert_eq!(evaluate(&app).await.opened, 0, "a repeat opens nothing");
    // A second failed run updates the same alert.
    app.clock.advance(chrono::Duration::minutes(10));
    run_now(&admin, &customer, &plan).await;
    run_jobs(&app).await;
    let again = evaluate(&app).await;
    assert_eq!((again.opened, again.repeated), (0, 1), "{again:?}");
    let alerts = skyvault::jobs::alerts::entities::alert::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].occurrences, 2);

    let list = admin
        .get(&format!("/c/{customer}/alerts"))
        .await
        .expect_status(StatusCode::OK);
    assert!(list.body.contains("Backup failed") && list.body.contains("Plan “Mailboxes”"));
    assert!(list.body.contains(">Acknowledge</button>"));
    let badge = admin
        .get(&format!("/c/{customer}/alerts/badge"))
        .await
        .expect_status(StatusCode::OK);
    assert!(badge.body.contains(">1</span>"), "{}", badge.body);
    let ack_url = format!("/c/{customer}/alerts/{}/acknowledge", alerts[0].id);

    // Read-only users see it but cannot acknowledge; another customer cannot reach it.
    let robin = app.read_only_user(&admin, &customer).await;
    let seen = robin
        .get(&format!("/c/{customer}/alerts"))
        .await
        .expect_status(StatusCode::OK);
    assert!(seen.body.contains("Backup failed"));
    assert!(!seen.body.contains(">Acknowledge</button>"));
    robin
        .post(&ack_url, &[])
        .await
        .expect_status(StatusCode::FORBIDDEN);
    let partner = app.visitor();
    partner.sign_in(PARTNER_EMAIL, PASSWORD).await;
    let (other, fiona) = customer_admin(&app, &partner, "Fabrikam", "fiona@fabrikam.example").await;
    fiona.get(&format!("/c/{other}/alerts")).await;
    fiona
        .post(
            &format!("/c/{other}/alerts/{}/acknowledge", alerts[0].id),
            &[],
        )
        .await
        .expect_status(StatusCode::NOT_FOUND);
    let theirs = fiona
        .get(&format!("/c/{other}/alerts"))
        .await
        .expect_status(StatusCode::OK);
    assert!(theirs.body.contains("No open alerts"));

    admin.get(&format!("/c/{customer}/alerts")).await;
    admin
        .post(&ack_url, &[])
        .await
        .expect_redirect(&format!("/c/{customer}/alerts?notice=acknowledged"));
    let acknowledged = admin
        .open(&format!("/c/{customer}/alerts?notice=acknowledged"))
        .await;
    assert!(acknowledged.body.contains("by casey@contoso.example"));

    // The fault goes, a good run follows: the alert resolves by itself.
    user_fault(&app, tenant.tenant_id, &item, None).await;
    app.clock.advance(chrono::Duration::minutes(10));
    run_now(&admin, &customer, &plan).await;
    run_jobs(&app).await;
    let resolved = evaluate(&app).await;
    assert_eq!(resolved.resolved, 1, "{resolved:?}");
    let list = admin
        .get(&format!("/c/{customer}/alerts"))
        .await
        .expect_status(StatusCode::OK);
    assert!(list.body.contains("No open alerts") && list.body.contains("Recently resolved"));
}
