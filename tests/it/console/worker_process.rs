//! Worker processes as they run in production: the `skyvault` binary started with
//! `serve --role worker` against the test's database, storage folder and simulator. One is
//! killed with SIGKILL in the middle of a plan run and another finishes the run without doing
//! again what the first finished; two drain one queue side by side without running a job twice.

use std::process::Stdio;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use skyvault::ids::CustomerId;
use skyvault::jobs::entities::{job, job_item};
use skyvault::jobs::plan_run::ItemOutcome;
use skyvault::jobs::queue::{self, JobStatus, NewJob};
use skyvault::plans::entities::plan;
use skyvault::storage::catalog;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::organizations::{added_and_synced, control};
use crate::support::app::{TEST_CLIENT_ID, TEST_CLIENT_SECRET};

/// What a worker process is pointed at.
struct WorkerSetup {
    database_url: String,
    data_dir: String,
    /// The simulator's address; a worker that will not call Microsoft gets an unused one.
    microsoft: String,
}

/// Starts `skyvault serve --role worker` and returns once it says it started.
async fn start_worker(setup: &WorkerSetup) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skyvault"));
    // The test's own SKYVAULT_* variables (SKYVAULT_REQUIRE_TOOLS, the test database's URL) are
    // not the worker's settings, and Skyvault refuses variables it does not know.
    for (name, _) in std::env::vars() {
        if name.starts_with("SKYVAULT_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["serve", "--role", "worker"])
        .env("SKYVAULT_DATABASE_URL", &setup.database_url)
        .env("SKYVAULT_DATA_DIR", &setup.data_dir)
        .env("SKYVAULT_BIND", "127.0.0.1:0")
        .env("SKYVAULT_M365_CLIENT_ID", TEST_CLIENT_ID)
        .env("SKYVAULT_M365_CLIENT_SECRET", TEST_CLIENT_SECRET)
        .env("SKYVAULT_M365_AUTHORITY_URL", &setup.microsoft)
        .env("SKYVAULT_M365_GRAPH_URL", &setup.microsoft)
        .env("SKYVAULT_WORKER_CONCURRENCY", "4")
        .env("SKYVAULT_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the skyvault binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let started = tokio::time::timeout(StdDuration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("worker started") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(started, Ok(true), "the worker process started");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

async fn reload(db: &sea_orm::DatabaseConnection, id: uuid::Uuid) -> job::Model {
    job::Entity::find_by_id(id).one(db).await.unwrap().unwrap()
}

async fn outcomes(db: &sea_orm::DatabaseConnection, id: uuid::Uuid) -> Vec<job_item::Model> {
    job_item::Entity::find()
        .filter(job_item::Column::JobId.eq(id))
        .all(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_killed_mid_run_leaves_the_run_to_the_next_which_skips_finished_items() {
    killed_mid_run_then_resumed("mailbox", "mail").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_killed_mid_onedrive_run_loses_nothing_and_the_next_finishes() {
    killed_mid_run_then_resumed("drive", "drive").await;
}

/// A plan protecting every user's `workload` is run by a worker process killed with SIGKILL once
/// it finished at least one item; a second process finishes the run without redoing what the
/// first finished, and every recovery point is whole. `faults` is the simulator's workload made
/// slow so the run is still going at the kill.
async fn killed_mid_run_then_resumed(workload: &str, faults: &str) {
    let (app, admin, org_page, _) = added_and_synced().await;
    let db = &app.state.db;
    let mut parts = org_page.trim_start_matches("/c/").split('/');
    let customer = parts.next().unwrap().to_string();
    let org = parts.nth(1).unwrap().to_string();
    admin.get(&format!("/c/{customer}/plans/new")).await;
    let created = admin
        .post(
            &format!("/c/{customer}/plans"),
            &[
                ("name", "Everyone"),
                ("org", org.as_str()),
                ("retention_kind", "points"),
                ("retention_value", "7"),
                ("workload", workload),
                ("all", "user"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let plan_id = created
        .location()
        .trim_start_matches(&format!("/c/{customer}/plans/"))
        .trim_end_matches("?notice=created")
        .to_string();
    // The worker processes tick with the real clock, which is weeks after the test's: keep their
    // ticks from queuing this plan's daily run or another sync, so the only work is Run now.
    let far = chrono::Utc::now() + Duration::days(3650);
    plan::Entity::update_many()
        .col_expr(plan::Column::NextRunAt, Expr::value(far))
        .exec(db)
        .await
        .unwrap();
    skyvault::inventory::entities::organization::Entity::update_many()
        .col_expr(
            skyvault::inventory::entities::organization::Column::NextSyncAt,
            Expr::value(far),
        )
        .exec(db)
        .await
        .unwrap();
    // Every request takes a while, so the run is still going when the worker is killed.
    control(
        &app,
        Method::PUT,
        &format!("faults/{faults}"),
        Some(json!({"latency_ms": 40})),
    )
    .await;
    admin
        .post(&format!("/c/{customer}/plans/{plan_id}/run"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/plans/{plan_id}?notice=run_queued"));
    let run = job::Entity::find()
        .filter(job::Column::Kind.eq("plan_run"))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let setup = WorkerSetup {
        database_url: app.state.settings.database_url(),
        data_dir: app.state.settings.data_dir.clone(),
        microsoft: app.simulator.base_url().trim_end_matches('/').to_string(),
    };

    let mut first = start_worker(&setup).await;
    // Wait until it has finished at least one mailbox and is working on the others.
    let deadline = Instant::now() + StdDuration::from_secs(120);
    let first_seen = loop {
        let rows = outcomes(db, run.id).await;
        let current = reload(db, run.id).await;
        assert!(
            JobStatus::is_pending(&current.status),
            "the run ended before the worker could be killed: make the requests slower ({rows:?})"
        );
        if !rows.is_empty() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "the first worker never finished an item"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    };
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let killed = reload(db, run.id).await;
    assert_eq!(
        killed.status,
        JobStatus::Running.as_str(),
        "its lease is held"
    );
    assert_eq!(killed.attempts, 1);
    // Dead, it writes nothing more: what is recorded now is what it finished.
    let finished_before = outcomes(db, run.id).await;
    assert!(finished_before.len() >= first_seen.len());
    assert!(!finished_before.is_empty());

    // Two minutes pass: the dead worker's lease lapses (moved rather than waited for).
    job::Entity::update_many()
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Some(chrono::Utc::now() - Duration::seconds(1))),
        )
        .filter(job::Column::Id.eq(run.id))
        .exec(db)
        .await
        .unwrap();
    let mut second = start_worker(&setup).await;
    let deadline = Instant::now() + StdDuration::from_secs(180);
    let done = loop {
        let current = reload(db, run.id).await;
        if !JobStatus::is_pending(&current.status) {
            break current;
        }
        assert!(
            Instant::now() < deadline,
            "the run never finished after the restart: {current:?}"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    };
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    assert_eq!(done.attempts, 2, "claimed once by each worker");
    assert_eq!(
        done.status,
        JobStatus::Succeeded.as_str(),
        "{:?} {:?}",
        done.summary,
        done.error
    );
    let after = outcomes(db, run.id).await;
    // What the first worker finished was not done again: same outcome, same time.
    for before in &finished_before {
        let now = after
            .iter()
            .find(|r| r.item_id == before.item_id && r.workload == before.workload)
            .expect("still recorded");
        assert_eq!(
            now.finished_at, before.finished_at,
            "{} done twice",
            before.item_id
        );
        assert_eq!(now.detail, before.detail);
    }
    assert!(
        after.len() > finished_before.len(),
        "the second worker backed up the rest"
    );
    // An item recorded as finished before the kill has exactly one recovery point: it was not
    // backed up again. One that was in flight (up to four run side by side) may have had its
    // point written just before the kill, before its outcome was recorded: the second worker
    // then makes another whole point, never a broken one. Points are whole either way: every
    // one is listed as complete and `restic check --read-data` below finds nothing wrong.
    let summaries = catalog::list_archive_summaries(
        db,
        &skyvault::storage::scope::SystemScope::worker(
            customer.parse::<CustomerId>().unwrap(),
            "test",
        ),
    )
    .await
    .unwrap();
    let backed_up = after
        .iter()
        .filter(|r| r.status == ItemOutcome::BackedUp.as_str())
        .count();
    assert_eq!(summaries.len(), backed_up, "{after:?}");
    let finished_items: std::collections::HashSet<uuid::Uuid> =
        finished_before.iter().map(|row| row.item_id).collect();
    for summary in &summaries {
        let most = if finished_items.contains(&summary.archive.item.0) {
            1
        } else {
            2
        };
        assert!(
            (1..=most).contains(&summary.recovery_points),
            "{} backed up {} times",
            summary.archive.display_name,
            summary.recovery_points
        );
        let newest = summary.newest.as_ref().expect("a newest point");
        assert_eq!(
            newest.status,
            catalog::RecoveryPointStatus::Complete,
            "{}",
            summary.archive.display_name
        );
    }
    // The killed process left at most unreferenced packs: the repository reads back whole.
    let check = skyvault::storage::verify::verify(
        &app.state.storage,
        customer.parse::<CustomerId>().unwrap(),
        skyvault::storage::verify::VerifyScope::AllData,
    )
    .await
    .unwrap();
    assert!(check.ok, "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_drain_one_queue_without_running_a_job_twice() {
    let db = crate::support::fresh_database().await;
    let clock = skyvault::clock::SystemClock;
    // Prunes of customers without backups: real jobs that finish quickly, each its own
    // repository so both processes can run them side by side.
    let jobs: Vec<NewJob> = (0..400).map(|_| NewJob::prune(CustomerId::new())).collect();
    assert_eq!(
        queue::enqueue_many(&db.conn, &clock, &jobs).await.unwrap(),
        400
    );
    let setup = WorkerSetup {
        database_url: db.url.clone(),
        data_dir: db.dir.path().display().to_string(),
        microsoft: "http://127.0.0.1:9".into(),
    };
    // One after the other: the first creates the master key the second then reads.
    let mut first = start_worker(&setup).await;
    let mut second = start_worker(&setup).await;
    let deadline = Instant::now() + StdDuration::from_secs(180);
    loop {
        let left = job::Entity::find()
            .filter(job::Column::Status.is_in(["queued", "running"]))
            .count(&db.conn)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} jobs never ran");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    first.start_kill().unwrap();
    second.start_kill().unwrap();
    first.wait().await.unwrap();
    second.wait().await.unwrap();
    let rows = job::Entity::find().all(&db.conn).await.unwrap();
    assert_eq!(rows.len(), 400);
    for row in &rows {
        assert_eq!(row.status, JobStatus::Succeeded.as_str(), "{row:?}");
        assert_eq!(row.attempts, 1, "claimed more than once: {row:?}");
    }
}
