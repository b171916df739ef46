//! The job queue: unique keys, one job per resource at a time, fenced leases, retries with
//! backoff and an attempt limit, per-customer fairness, and concurrent workers that never run a
//! job twice (on PostgreSQL through `FOR UPDATE SKIP LOCKED`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use skyvault::clock::{Clock, ManualClock};
use skyvault::ids::CustomerId;
use skyvault::inventory::entities::organization;
use skyvault::jobs::entities::job;
use skyvault::jobs::queue::{self, JobOutcome, JobStatus, Lease, NewJob};

use crate::support::fresh_database;

const LEASE: i64 = 120;

fn clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap())
}

async fn organization(
    db: &sea_orm::DatabaseConnection,
    clock: &ManualClock,
) -> organization::Model {
    organization::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        customer_id: Set(uuid::Uuid::new_v4()),
        tenant_id: Set(uuid::Uuid::new_v4().to_string()),
        display_name: Set("Contoso".into()),
        default_domain: Set("contoso.example".into()),
        initial_domain: Set("contoso.onmicrosoft.com".into()),
        added_at: Set(clock.now()),
        last_sync_at: Set(None),
        last_sync_outcome: Set(None),
        next_sync_at: Set(clock.now()),
        item_counts: Set("{}".into()),
    }
    .insert(db)
    .await
    .unwrap()
}

async fn claim(db: &sea_orm::DatabaseConnection, clock: &ManualClock) -> Option<job::Model> {
    queue::claim_next(db, clock, Duration::seconds(LEASE))
        .await
        .unwrap()
}

async fn reload(db: &sea_orm::DatabaseConnection, id: uuid::Uuid) -> job::Model {
    job::Entity::find_by_id(id).one(db).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_is_queued_once_and_one_resource_runs_one_job_at_a_time() {
    let db = fresh_database().await;
    let clock = clock();
    let org = organization(&db.conn, &clock).await;
    let other = organization(&db.conn, &clock).await;

    let first = queue::enqueue_sync(&db.conn, &clock, &org).await.unwrap();
    assert_eq!(
        queue::enqueue_sync(&db.conn, &clock, &org)
            .await
            .unwrap()
            .id,
        first.id,
        "deduplicated"
    );
    // A duplicate written around `enqueue` is refused by the database's unique key.
    let raced = job::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        ..first.clone().into()
    }
    .insert(&db.conn)
    .await;
    assert!(raced.is_err(), "the unique key lets one pending sync exist");
    // Work of the same resource without a unique key (a second job on the organization's
    // directory) waits while the first runs; another organization's does not.
    clock.advance(Duration::seconds(1));
    let mut same_resource = NewJob::sync(&org);
    same_resource.unique_key = None;
    let (waiting, _) = queue::enqueue(&db.conn, &clock, same_resource)
        .await
        .unwrap();
    let other_job = queue::enqueue_sync(&db.conn, &clock, &other).await.unwrap();

    let claimed = claim(&db.conn, &clock).await.unwrap();
    assert_eq!(claimed.id, first.id);
    let other_claimed = claim(&db.conn, &clock).await.unwrap();
    assert_eq!(other_claimed.id, other_job.id);
    assert!(claim(&db.conn, &clock).await.is_none());
    queue::finish(
        &db.conn,
        &clock,
        Lease::of(&other_claimed),
        JobOutcome::Succeeded("done".into()),
    )
    .await
    .unwrap();

    // The worker holding the first sync dies: once its lease lapses, the job is claimed again.
    clock.advance(Duration::seconds(LEASE + 1));
    let again = claim(&db.conn, &clock).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.attempts, 2);
    assert!(
        queue::finish(
            &db.conn,
            &clock,
            Lease::of(&again),
            JobOutcome::Succeeded("done".into())
        )
        .await
        .unwrap()
    );
    // Finished, its key is free: a new sync can be queued, and the waiting job runs.
    assert_eq!(reload(&db.conn, first.id).await.unique_key, None);
    assert_eq!(claim(&db.conn, &clock).await.unwrap().id, waiting.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_lapsed_cannot_overwrite_the_next_owners_result() {
    let db = fresh_database().await;
    let clock = clock();
    let org = organization(&db.conn, &clock).await;
    let queued = queue::enqueue_sync(&db.conn, &clock, &org).await.unwrap();
    let stale = Lease::of(&claim(&db.conn, &clock).await.unwrap());
    clock.advance(Duration::seconds(LEASE + 1));
    let owner = Lease::of(&claim(&db.conn, &clock).await.unwrap());
    assert_ne!(stale, owner);

    // The first worker wakes up: it can neither renew, report nor finish.
    let until = clock.now() + Duration::seconds(LEASE);
    assert!(!queue::renew_lease(&db.conn, stale, until).await.unwrap());
    assert!(!queue::set_progress(&db.conn, stale, "stale").await.unwrap());
    assert!(
        !queue::finish(&db.conn, &clock, stale, JobOutcome::failed("stale failure"))
            .await
            .unwrap()
    );
    assert_eq!(
        reload(&db.conn, queued.id).await.status,
        JobStatus::Running.as_str()
    );
    assert!(queue::renew_lease(&db.conn, owner, until).await.unwrap());
    assert!(
        queue::finish(
            &db.conn,
            &clock,
            owner,
            JobOutcome::Succeeded("owner's result".into())
        )
        .await
        .unwrap()
    );
    let done = reload(&db.conn, queued.id).await;
    assert_eq!(done.status, JobStatus::Succeeded.as_str());
    assert_eq!(done.summary.as_deref(), Some("owner's result"));
    assert_eq!(done.error, None);
    // Once finished, even the owner cannot change it again.
    assert!(
        !queue::finish(&db.conn, &clock, owner, JobOutcome::failed("late"))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_that_may_pass_are_retried_after_a_backoff_up_to_the_attempt_limit() {
    let db = fresh_database().await;
    let clock = clock();
    let org = organization(&db.conn, &clock).await;
    let queued = queue::enqueue_sync(&db.conn, &clock, &org).await.unwrap();
    assert_eq!(queued.max_attempts, 3);
    let throttled = || JobOutcome::Failed {
        error: "Microsoft is throttling".into(),
        retryable: true,
    };
    for attempt in 1..=2 {
        let claimed = claim(&db.conn, &clock).await.unwrap();
        assert_eq!(claimed.attempts, attempt);
        assert!(
            queue::finish(&db.conn, &clock, Lease::of(&claimed), throttled())
                .await
                .unwrap()
        );
        let waiting = reload(&db.conn, queued.id).await;
        assert_eq!(waiting.status, JobStatus::Queued.as_str());
        assert!(waiting.error.unwrap().contains("trying again"));
        // Not before its backoff has passed.
        assert!(claim(&db.conn, &clock).await.is_none());
        clock.advance(queue::backoff(attempt));
    }
    let last = claim(&db.conn, &clock).await.unwrap();
    assert_eq!(last.attempts, 3);
    queue::finish(&db.conn, &clock, Lease::of(&last), throttled())
        .await
        .unwrap();
    let failed = reload(&db.conn, queued.id).await;
    assert_eq!(failed.status, JobStatus::Failed.as_str());
    assert_eq!(failed.unique_key, None);

    // A failure retrying cannot help fails at once.
    let again = queue::enqueue_sync(&db.conn, &clock, &org).await.unwrap();
    let claimed = claim(&db.conn, &clock).await.unwrap();
    queue::finish(
        &db.conn,
        &clock,
        Lease::of(&claimed),
        JobOutcome::failed("consent revoked"),
    )
    .await
    .unwrap();
    assert_eq!(
        reload(&db.conn, again.id).await.status,
        JobStatus::Failed.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_dies_on_every_attempt_fails_instead_of_running_for_ever() {
    let db = fresh_database().await;
    let clock = clock();
    let org = organization(&db.conn, &clock).await;
    let queued = queue::enqueue_sync(&db.conn, &clock, &org).await.unwrap();
    for _ in 0..3 {
        claim(&db.conn, &clock).await.unwrap();
        clock.advance(Duration::seconds(LEASE + 1));
    }
    // Its attempts are used up: it is not claimed again, and the tick fails it.
    assert!(claim(&db.conn, &clock).await.is_none());
    assert_eq!(queue::fail_abandoned(&db.conn, &clock).await.unwrap(), 1);
    let failed = reload(&db.conn, queued.id).await;
    assert_eq!(failed.status, JobStatus::Failed.as_str());
    assert!(failed.error.unwrap().contains("stopped on every attempt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_with_many_jobs_does_not_starve_the_others() {
    let db = fresh_database().await;
    let clock = clock();
    let big = CustomerId::new();
    let small = CustomerId::new();
    for _ in 0..10 {
        queue::enqueue(&db.conn, &clock, NewJob::prune(big))
            .await
            .unwrap();
        // Distinct resources, so they could all run at once.
        let mut more = NewJob::verify(big);
        more.unique_key = None;
        more.resource_key = Some(uuid::Uuid::new_v4().to_string());
        queue::enqueue(&db.conn, &clock, more).await.unwrap();
        clock.advance(Duration::seconds(1));
    }
    queue::enqueue(&db.conn, &clock, NewJob::verify(small))
        .await
        .unwrap();
    // The big customer's first job runs; the next claim goes to the small customer, although
    // nine of the big one's jobs were queued before it.
    let first = claim(&db.conn, &clock).await.unwrap();
    assert_eq!(first.customer_id, big.as_uuid());
    let second = claim(&db.conn, &clock).await.unwrap();
    assert_eq!(second.customer_id, small.as_uuid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_draining_one_queue_run_every_job_exactly_once() {
    let db = fresh_database().await;
    let clock = clock();
    let jobs: Vec<NewJob> = (0..200)
        .map(|_| {
            let mut job = NewJob::verify(CustomerId::new());
            job.unique_key = None;
            job.resource_key = None;
            job
        })
        .collect();
    assert_eq!(
        queue::enqueue_many(&db.conn, &clock, &jobs).await.unwrap(),
        200
    );
    let runs: Arc<Mutex<HashMap<uuid::Uuid, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..2 {
        // Each worker with its own connections, as two processes have.
        let conn = sea_orm::Database::connect(&db.url).await.unwrap();
        let (clock, runs) = (clock.clone(), runs.clone());
        workers.push(tokio::spawn(async move {
            while let Some(job) = queue::claim_next(&conn, &clock, Duration::seconds(LEASE))
                .await
                .unwrap()
            {
                *runs.lock().unwrap().entry(job.id).or_default() += 1;
                assert!(
                    queue::finish(
                        &conn,
                        &clock,
                        Lease::of(&job),
                        JobOutcome::Succeeded("ok".into())
                    )
                    .await
                    .unwrap()
                );
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 200);
    assert!(runs.values().all(|n| *n == 1), "a job ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_panics_is_recorded_as_failed_not_lost_or_left_running() {
    let app = crate::support::app::TestApp::start().await;
    let ctx = skyvault::app::worker_context(&app.state);
    let customer = CustomerId::new();
    let (queued, _) = queue::enqueue(&app.state.db, &app.clock, NewJob::prune(customer))
        .await
        .unwrap();
    let claimed = claim(&app.state.db, &app.clock).await.unwrap();
    skyvault::jobs::worker::run_claimed(&ctx, &claimed, async {
        panic!("a bug in a runner");
    })
    .await
    .unwrap();
    let failed = reload(&app.state.db, queued.id).await;
    assert_eq!(failed.status, JobStatus::Failed.as_str());
    assert!(failed.error.unwrap().contains("a bug in a runner"));
    assert_eq!(failed.unique_key, None, "the next prune can be queued");
    // The process goes on: the next job runs.
    queue::enqueue(&app.state.db, &app.clock, NewJob::prune(customer))
        .await
        .unwrap();
    assert_eq!(
        skyvault::jobs::worker::run_until_idle(&ctx).await.unwrap(),
        1
    );
}
