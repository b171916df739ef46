//! Protection plans through the browser: the plan form and its messages, one plan per item and
//! workload, two browsers saving one plan, another customer's plan and job ids, Protect from the
//! Microsoft 365 page, and the whole daily cycle with a moved clock: plans run at their time,
//! once, with Run now beside it, and retention after each run.

use chrono::Duration;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use skyvault::inventory::entities::protected_item;
use skyvault::jobs::entities::{job, job_item};
use skyvault::jobs::plan_run::{self, ItemOutcome};
use skyvault::jobs::queue::{JobKind, JobStatus};
use skyvault::plans::entities::plan;
use skyvault::storage::catalog::Workload;

use super::access::organization_fixture;
use super::organizations::{added_and_synced, customer_admin, run_jobs};
use crate::support::app::{Page, TestApp, Visitor};

/// A plan form's fields.
fn plan_form<'a>(
    name: &'a str,
    org: &'a str,
    workloads: &[&'a str],
    all: &[&'a str],
    items: &[&'a str],
    retention: (&'a str, &'a str),
) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("name", name),
        ("org", org),
        ("retention_kind", retention.0),
        ("retention_value", retention.1),
    ];
    fields.extend(workloads.iter().map(|w| ("workload", *w)));
    fields.extend(all.iter().map(|k| ("all", *k)));
    fields.extend(items.iter().map(|i| ("item", *i)));
    fields
}

async fn create(admin: &Visitor, customer: &str, fields: &[(&str, &str)]) -> Page {
    admin.get(&format!("/c/{customer}/plans/new")).await;
    admin.post(&format!("/c/{customer}/plans"), fields).await
}

/// Creates a plan that must be accepted; returns its id.
async fn created(admin: &Visitor, customer: &str, fields: &[(&str, &str)]) -> String {
    let page = create(admin, customer, fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location();
    let id = location
        .trim_start_matches(&format!("/c/{customer}/plans/"))
        .trim_end_matches("?notice=created")
        .to_string();
    assert_eq!(id.len(), 36, "{location}");
    id
}

async fn plan_count(app: &TestApp) -> u64 {
    plan::Entity::find().count(&app.state.db).await.unwrap()
}

async fn item_id(app: &TestApp, org: &str) -> String {
    protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.eq(org.parse::<uuid::Uuid>().unwrap()))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string()
}

/// Two customers, each with an organization holding Alice; Contoso's administrator signed in.
async fn two_customers() -> (TestApp, Visitor, String, String, Visitor, String, String) {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (contoso, casey) = customer_admin(&app, &partner, "Contoso", "casey@contoso.example").await;
    let (fabrikam, fiona) =
        customer_admin(&app, &partner, "Fabrikam", "fiona@fabrikam.example").await;
    let contoso_org = organization_fixture(&app, &contoso, "ContosoOrg").await;
    let fabrikam_org = organization_fixture(&app, &fabrikam, "FabrikamOrg").await;
    (
        app,
        casey,
        contoso,
        contoso_org,
        fiona,
        fabrikam,
        fabrikam_org,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_form_refuses_bad_input_with_messages_beside_the_fields_and_changes_nothing() {
    let (app, casey, contoso, org, _, _, fabrikam_org) = two_customers().await;
    let alice = item_id(&app, &org).await;
    let foreign_alice = item_id(&app, &fabrikam_org).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            plan_form("Empty", &org, &["mailbox"], &[], &[], ("points", "7")),
            "Choose what to protect",
        ),
        (
            plan_form("Zero", &org, &["mailbox"], &["user"], &[], ("points", "0")),
            "Keep between 1 and 9999 recovery points.",
        ),
        (
            plan_form(
                "Huge",
                &org,
                &["mailbox"],
                &["user"],
                &[],
                ("days", "100000"),
            ),
            "Keep recovery points between 1 and 3650 days.",
        ),
        (
            plan_form(
                "Unknown",
                &org,
                &["mailbox"],
                &[],
                &[&unknown],
                ("points", "7"),
            ),
            "Some chosen items are not items of this organization.",
        ),
        (
            plan_form(
                "Foreign",
                &org,
                &["mailbox"],
                &[],
                &[&foreign_alice],
                ("points", "7"),
            ),
            "Some chosen items are not items of this organization.",
        ),
        (
            plan_form(
                "Garbage",
                &org,
                &["mailbox"],
                &[],
                &["not-an-id"],
                ("points", "7"),
            ),
            "Some chosen items are not items of this organization.",
        ),
        (
            plan_form("No workload", &org, &[], &["user"], &[], ("points", "7")),
            "Choose at least one workload to back up.",
        ),
        (
            plan_form(
                "Bad workload",
                &org,
                &["tape"],
                &["user"],
                &[],
                ("points", "7"),
            ),
            "Choose workloads from the list.",
        ),
        (
            plan_form(
                "Foreign org",
                &fabrikam_org,
                &["mailbox"],
                &["user"],
                &[],
                ("points", "7"),
            ),
            "Choose one of this customer&#39;s Microsoft 365 organizations.",
        ),
        (
            plan_form("", &org, &["mailbox"], &["user"], &[], ("points", "7")),
            "Give the plan a name.",
        ),
        (
            plan_form(
                "Sites only",
                &org,
                &["drive"],
                &["site"],
                &[],
                ("points", "7"),
            ),
            "None of the chosen workloads applies",
        ),
        (
            plan_form(
                "No rule",
                &org,
                &["mailbox"],
                &["user"],
                &[],
                ("weeks", "7"),
            ),
            "Choose whether to keep a number of recovery points or a number of days.",
        ),
    ];
    for (fields, message) in cases {
        let page = create(&casey, &contoso, &fields).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
        assert!(
            page.body.contains(message),
            "{fields:?} should say {message}:\n{}",
            page.body
        );
        assert!(page.body.contains("field-error"));
    }
    assert_eq!(plan_count(&app).await, 0, "nothing was saved");
    // The form keeps what was typed: the chosen item stays chosen.
    let page = create(
        &casey,
        &contoso,
        &plan_form("Zero", &org, &["mailbox"], &[], &[&alice], ("points", "0")),
    )
    .await;
    assert!(page.body.contains(&format!(
        "value=\"{alice}\" aria-label=\"Protect Alice Example\" checked"
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_item_is_in_at_most_one_plan_per_workload_and_the_console_says_which() {
    let (app, casey, contoso, org, _, _, _) = two_customers().await;
    let alice = item_id(&app, &org).await;
    created(
        &casey,
        &contoso,
        &plan_form(
            "All mailboxes",
            &org,
            &["mailbox"],
            &["user"],
            &[],
            ("points", "7"),
        ),
    )
    .await;
    let clash = create(
        &casey,
        &contoso,
        &plan_form(
            "Alice",
            &org,
            &["mailbox", "drive"],
            &[],
            &[&alice],
            ("days", "30"),
        ),
    )
    .await;
    assert_eq!(clash.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        clash
            .body
            .contains("Alice Example: Mailbox is already protected by the plan “All mailboxes”."),
        "{}",
        clash.body
    );
    // OneDrive is in no plan yet: a plan of Alice's OneDrive is accepted.
    let drive = created(
        &casey,
        &contoso,
        &plan_form(
            "Alice drive",
            &org,
            &["drive"],
            &[],
            &[&alice],
            ("days", "30"),
        ),
    )
    .await;
    // The Microsoft 365 page names both plans on Alice's row; the plan page shows its time.
    let page = casey
        .get(&format!("/c/{contoso}/m365/{org}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        page.body.contains("All mailboxes, Alice drive"),
        "{}",
        page.body
    );
    let plan_page = casey
        .get(&format!("/c/{contoso}/plans/{drive}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(plan_page.body.contains("chosen by Skyvault to spread load"));
    assert!(plan_page.body.contains("Runs daily at "));
    let listed = casey
        .get(&format!("/c/{contoso}/plans"))
        .await
        .expect_status(StatusCode::OK);
    assert!(listed.body.contains("All mailboxes") && listed.body.contains("All users"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_editing_one_plan_the_later_save_is_told_and_nothing_is_lost() {
    let (app, casey, contoso, org, _, _, _) = two_customers().await;
    let id = created(
        &casey,
        &contoso,
        &plan_form("Daily", &org, &["mailbox"], &["user"], &[], ("points", "7")),
    )
    .await;
    let other = app.visitor();
    other
        .sign_in("casey@contoso.example", crate::support::app::PASSWORD)
        .await;
    let url = format!("/c/{contoso}/plans/{id}");
    casey.get(&url).await.expect_status(StatusCode::OK);
    other.get(&url).await.expect_status(StatusCode::OK);
    let mut first = plan_form(
        "Daily",
        &org,
        &["mailbox"],
        &["user"],
        &[],
        ("points", "14"),
    );
    first.push(("version", "1"));
    casey
        .post(&url, &first)
        .await
        .expect_redirect(&format!("{url}?notice=saved"));
    let mut second = plan_form(
        "Renamed",
        &org,
        &["mailbox"],
        &["user"],
        &[],
        ("points", "3"),
    );
    second.push(("version", "1"));
    let told = other.post(&url, &second).await;
    assert_eq!(told.status, StatusCode::CONFLICT, "{}", told.body);
    assert!(told.body.contains("changed by someone else"));
    assert_eq!(told.error_code().as_deref(), Some("plan_changed"));
    let saved = plan::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (saved.name.as_str(), saved.retention_value, saved.version),
        ("Daily", 14, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_customers_plan_and_job_ids_answer_404_on_every_plan_and_job_route() {
    let (app, casey, contoso, org, fiona, fabrikam, fabrikam_org) = two_customers().await;
    created(
        &casey,
        &contoso,
        &plan_form(
            "Contoso daily",
            &org,
            &["mailbox"],
            &["user"],
            &[],
            ("points", "7"),
        ),
    )
    .await;
    let theirs = created(
        &fiona,
        &fabrikam,
        &plan_form(
            "Fabrikam daily",
            &fabrikam_org,
            &["mailbox"],
            &["user"],
            &[],
            ("points", "7"),
        ),
    )
    .await;
    fiona.get(&format!("/c/{fabrikam}/plans/{theirs}")).await;
    fiona
        .post(&format!("/c/{fabrikam}/plans/{theirs}/run"), &[])
        .await
        .expect_redirect(&format!("/c/{fabrikam}/plans/{theirs}?notice=run_queued"));
    let their_job = job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::PlanRun.as_str()))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut walked = 0;
    for route in super::routes::ROUTES
        .iter()
        .filter(|r| r.path.contains("{plan}") || r.path.contains("{job}"))
    {
        let path = route
            .path
            .replace("{customer}", &contoso)
            .replace("{plan}", &theirs)
            .replace("{job}", &their_job.id.to_string());
        casey.get(&format!("/c/{contoso}/plans")).await;
        let page = match route.method {
            "GET" => casey.get(&path).await,
            _ => {
                casey
                    .post(
                        &path,
                        &plan_form(
                            "Stolen",
                            &org,
                            &["mailbox"],
                            &["user"],
                            &[],
                            ("points", "1"),
                        ),
                    )
                    .await
            }
        };
        walked += 1;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "{} {path}",
            route.method
        );
        assert!(!page.body.contains("Fabrikam"), "{path} leaked a name");
    }
    assert!(walked >= 8, "walked {walked}");
    // Protect with another customer's plan, from one's own organization page.
    casey.get(&format!("/c/{contoso}/m365/{org}")).await;
    let alice = item_id(&app, &org).await;
    casey
        .post(
            &format!("/c/{contoso}/m365/{org}/protect"),
            &[("item", alice.as_str()), ("plan", theirs.as_str())],
        )
        .await
        .expect_status(StatusCode::NOT_FOUND);
    let theirs_now = plan::Entity::find_by_id(theirs.parse::<uuid::Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            theirs_now.name.as_str(),
            theirs_now.enabled,
            theirs_now.version
        ),
        ("Fabrikam daily", true, 1)
    );
    assert_eq!(
        job::Entity::find()
            .filter(job::Column::Kind.eq(JobKind::PlanRun.as_str()))
            .count(&app.state.db)
            .await
            .unwrap(),
        1
    );
}

/// What a run of one item's mailbox must have recorded: backed up once the mailbox runner has
/// landed, "not supported yet" until then. Nothing else in these tests depends on which.
fn expected_mailbox_outcome() -> ItemOutcome {
    if skyvault::backup::runner(Workload::Mailbox).is_some() {
        ItemOutcome::BackedUp
    } else {
        ItemOutcome::NotSupported
    }
}

async fn jobs_of(app: &TestApp, kind: JobKind) -> Vec<job::Model> {
    job::Entity::find()
        .filter(job::Column::Kind.eq(kind.as_str()))
        .all(&app.state.db)
        .await
        .unwrap()
}

/// Contoso's administrator, signed in again (moving the clock a day ends idle sessions).
async fn signed_in_again(app: &TestApp) -> Visitor {
    let admin = app.visitor();
    admin
        .sign_in("casey@contoso.example", crate::support::app::PASSWORD)
        .await;
    admin
}

async fn tick(app: &TestApp) -> u64 {
    plan_run::enqueue_due_plans(&app.state.db, app.state.clock.as_ref())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cycle_runs_each_plan_at_its_time_once_with_run_now_and_retention() {
    let (app, admin, org_page, _) = added_and_synced().await;
    let mut parts = org_page.trim_start_matches("/c/").split('/');
    let customer = parts.next().unwrap().to_string();
    let org = parts.nth(1).unwrap().to_string();
    // Protect one user with a mailbox from the Microsoft 365 page, into a new plan.
    let user = protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .filter(protected_item::Column::HasMailbox.eq(true))
        .filter(protected_item::Column::State.eq("active"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a user with a mailbox");
    let user_id = user.id.to_string();
    admin.get(&org_page).await.expect_status(StatusCode::OK);
    let protect = admin
        .post(
            &format!("{org_page}/protect"),
            &[("item", user_id.as_str()), ("plan", "new")],
        )
        .await;
    assert_eq!(protect.status, StatusCode::SEE_OTHER);
    let form = admin
        .get(&protect.location())
        .await
        .expect_status(StatusCode::OK);
    assert!(form.body.contains(&format!(
        "value=\"{user_id}\" aria-label=\"Protect {}\" checked",
        user.display_name
    )));
    let id = created(
        &admin,
        &customer,
        &plan_form(
            "Mailboxes",
            &org,
            &["mailbox"],
            &[],
            &[&user_id],
            ("points", "2"),
        ),
    )
    .await;
    let row = plan::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.start_minute % 15, 0);
    let page = admin.get(&format!("/c/{customer}/plans/{id}")).await;
    assert!(page.body.contains(&format!(
        "Runs daily at {:02}:{:02} UTC, chosen by Skyvault to spread load",
        row.start_minute / 60,
        row.start_minute % 60
    )));

    // Before its time nothing is due; at its time it is queued once, even by two nodes ticking
    // together and ticking again.
    assert_eq!(tick(&app).await, 0);
    app.clock.set(row.next_run_at);
    let (a, b) = tokio::join!(tick(&app), tick(&app));
    assert_eq!(a + b, 1, "two nodes queued the run {a} + {b} times");
    assert_eq!(tick(&app).await, 0);
    // Run now while the daily run is pending is the same run.
    let admin = signed_in_again(&app).await;
    admin.get(&format!("/c/{customer}/plans/{id}")).await;
    admin
        .post(&format!("/c/{customer}/plans/{id}/run"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/plans/{id}?notice=run_pending"));
    run_jobs(&app).await;
    let runs = jobs_of(&app, JobKind::PlanRun).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, JobStatus::Succeeded.as_str(), "{runs:?}");
    let outcomes = job_item::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(
        outcomes[0].status,
        expected_mailbox_outcome().as_str(),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[0].item_id, user.id);
    // Retention followed the run, and Activities lists both with their outcome.
    let retention = jobs_of(&app, JobKind::Retention).await;
    assert_eq!(retention.len(), 1);
    assert_eq!(retention[0].status, JobStatus::Succeeded.as_str());
    let activities = admin
        .get(&format!("/c/{customer}/activities?kind=plan_run"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        activities.body.contains("Plan “Mailboxes”"),
        "{}",
        activities.body
    );
    let detail = admin
        .get(&format!("/c/{customer}/activities/{}", runs[0].id))
        .await
        .expect_status(StatusCode::OK);
    assert!(detail.body.contains(&user.display_name));
    assert!(detail.body.contains(expected_mailbox_outcome().label()));

    // The next day at the same time it runs again, once.
    app.clock.advance(Duration::hours(23));
    assert_eq!(tick(&app).await, 0);
    app.clock.advance(Duration::hours(1));
    assert_eq!(tick(&app).await, 1);
    run_jobs(&app).await;
    // Three days of downtime: the missed runs run once, not three times.
    app.clock.advance(Duration::days(3) + Duration::minutes(1));
    assert_eq!(tick(&app).await, 1);
    assert_eq!(tick(&app).await, 0);
    run_jobs(&app).await;
    let runs = jobs_of(&app, JobKind::PlanRun).await;
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .all(|j| j.status == JobStatus::Succeeded.as_str())
    );
    if expected_mailbox_outcome() == ItemOutcome::BackedUp {
        // Retention kept the last two recovery points of the three runs.
        let points = skyvault::storage::catalog::list_archive_summaries(
            &app.state.db,
            &skyvault::storage::SystemScope::worker(customer.parse().unwrap(), "test"),
        )
        .await
        .unwrap();
        assert_eq!(points.iter().map(|a| a.recovery_points).sum::<u64>(), 2);
    }
    // A disabled plan is not run; enabled again, it runs at its time.
    let admin = signed_in_again(&app).await;
    admin.get(&format!("/c/{customer}/plans/{id}")).await;
    admin
        .post(&format!("/c/{customer}/plans/{id}/disable"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/plans/{id}?notice=disabled"));
    app.clock.advance(Duration::days(1));
    assert_eq!(tick(&app).await, 0);
    // Run now from the browser, while disabled, still backs up.
    let admin = signed_in_again(&app).await;
    admin.get(&format!("/c/{customer}/plans/{id}")).await;
    admin
        .post(&format!("/c/{customer}/plans/{id}/run"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/plans/{id}?notice=run_queued"));
    run_jobs(&app).await;
    assert_eq!(jobs_of(&app, JobKind::PlanRun).await.len(), 4);
    // Deleting the plan keeps its backups by default.
    admin.get(&format!("/c/{customer}/plans/{id}/delete")).await;
    admin
        .post(
            &format!("/c/{customer}/plans/{id}/delete"),
            &[("backups", "keep")],
        )
        .await
        .expect_redirect(&format!("/c/{customer}/plans?notice=deleted"));
    assert_eq!(plan_count(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_after_its_worker_died_skips_the_items_it_finished() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    use skyvault::clock::Clock;
    let (app, casey, contoso, org, _, _, _) = two_customers().await;
    let alice = item_id(&app, &org).await;
    let id = created(
        &casey,
        &contoso,
        &plan_form(
            "Alice",
            &org,
            &["mailbox", "drive"],
            &[],
            &[&alice],
            ("points", "7"),
        ),
    )
    .await;
    casey
        .post(&format!("/c/{contoso}/plans/{id}/run"), &[])
        .await
        .expect_redirect(&format!("/c/{contoso}/plans/{id}?notice=run_queued"));
    // A worker claimed the run, finished Alice's mailbox and died.
    let claimed = skyvault::jobs::queue::claim_next(
        &app.state.db,
        &app.clock,
        Duration::seconds(skyvault::jobs::worker::LEASE_SECONDS),
    )
    .await
    .unwrap()
    .unwrap();
    job_item::ActiveModel {
        job_id: Set(claimed.id),
        item_id: Set(alice.parse().unwrap()),
        workload: Set(Workload::Mailbox.as_str().into()),
        status: Set(ItemOutcome::BackedUp.as_str().into()),
        detail: Set("done by the first worker".into()),
        finished_at: Set(app.clock.now()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    app.clock
        .advance(Duration::seconds(skyvault::jobs::worker::LEASE_SECONDS + 1));
    run_jobs(&app).await;
    let run = job::Entity::find_by_id(claimed.id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.attempts, 2);
    assert_ne!(run.status, JobStatus::Running.as_str());
    let rows = job_item::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mailbox = rows.iter().find(|r| r.workload == "mailbox").unwrap();
    assert_eq!(
        mailbox.detail, "done by the first worker",
        "not backed up again"
    );
    assert!(rows.iter().any(|r| r.workload == "drive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_plans_sort_from_their_headers() {
    let (_app, casey, contoso, org, _, _, _) = two_customers().await;
    for (name, workload) in [("Bravo mail", "mailbox"), ("Alpha files", "drive")] {
        created(
            &casey,
            &contoso,
            &plan_form(name, &org, &[workload], &["user"], &[], ("points", "7")),
        )
        .await;
    }
    let order = |body: &str| {
        let (a, b) = (
            body.find("Alpha files").unwrap(),
            body.find("Bravo mail").unwrap(),
        );
        if a < b {
            ["Alpha", "Bravo"]
        } else {
            ["Bravo", "Alpha"]
        }
    };
    let list = casey
        .get(&format!("/c/{contoso}/plans"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(order(&list.body), ["Alpha", "Bravo"], "A to Z by default");
    assert!(list.body.contains(&format!(
        "aria-sort=\"ascending\"><a class=\"th-sort\" href=\"/c/{contoso}/plans?dir=desc\">Plan"
    )));
    let reversed = casey
        .get(&format!("/c/{contoso}/plans?dir=desc"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(order(&reversed.body), ["Bravo", "Alpha"]);
    for column in ["schedule", "last", "status"] {
        assert!(
            list.body
                .contains(&format!("href=\"/c/{contoso}/plans?sort={column}")),
            "{column} header"
        );
        casey
            .get(&format!("/c/{contoso}/plans?sort={column}&dir=desc"))
            .await
            .expect_status(StatusCode::OK);
    }
    casey
        .get(&format!("/c/{contoso}/plans?sort=%00&dir=%FF"))
        .await
        .expect_status(StatusCode::OK);
}
