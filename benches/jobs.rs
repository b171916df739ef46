//! Job queue benchmark.
//!
//! 1. Drain: short jobs are drained by one worker, then by two, each worker with its own
//!    connection pool running `worker::dispatch` (the loop `skyvault serve --role worker` runs)
//!    with `SKYVAULT_BENCH_LOOPS` (default 4) slots, as two worker processes with
//!    `worker_concurrency = 4` would be. A *short job* is: claimed (in a batch as slots free up),
//!    its lease heartbeat started, then `SKYVAULT_BENCH_JOB_MS` (default 20) milliseconds of
//!    waiting, standing in for a Graph round trip (the waiting a real job does), then finished.
//!    Each job names its own resource (a mailbox), so the per-resource exclusion is paid as in
//!    production; jobs belong to a hundred customers. The wait keeps the figure about the queue
//!    rather than about the CPU: on a small shared machine, CPU-bound workers cannot scale
//!    whatever the queue does (`SKYVAULT_BENCH_JOB_MS=0` measures that too). It reports jobs
//!    per second for each, the ratio, and checks that no job ran twice (every job claimed
//!    exactly once, by the workers' own counts and by each row's attempts).
//! 2. Tick: 10,000 plans due at once are dispatched by one `enqueue_due_plans`.
//!
//! PostgreSQL when `SKYVAULT_BENCH_DATABASE_URL` is set (a fresh database is created on that
//! server and dropped after), else SQLite in a temporary folder. Sizes: `SKYVAULT_BENCH_JOBS`
//! (default 20,000: half for one worker, all for two), `SKYVAULT_BENCH_PLANS` (default 10,000).
//! Run with `cargo bench --bench jobs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use skyvault::clock::{Clock, ManualClock, SharedClock};
use skyvault::ids::CustomerId;
use skyvault::jobs::entities::job;
use skyvault::jobs::queue::{self, JobOutcome, NewJob};
use skyvault::jobs::worker::{self, Until};
use skyvault::plans::entities::plan;

fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn enqueue_short_jobs(db: &DatabaseConnection, clock: &ManualClock, count: usize) {
    let jobs: Vec<NewJob> = (0..count)
        .map(|i| {
            // A hundred customers, each job its own mailbox: nothing but the queue limits them.
            let mut job = NewJob::verify(CustomerId(uuid::Uuid::from_u128(i as u128 % 100 + 1)));
            job.unique_key = None;
            job.resource_key = Some(format!("mailbox:{}", uuid::Uuid::new_v4()));
            job
        })
        .collect();
    queue::enqueue_many(db, clock, &jobs).await.unwrap();
}

/// Drains the queue with `workers` pools of `slots` slots each; returns jobs per second and
/// how often each job ran.
async fn drain(
    url: &str,
    clock: &ManualClock,
    workers: usize,
    slots: usize,
    job_ms: u64,
) -> (f64, HashMap<uuid::Uuid, u32>) {
    let runs: Arc<Mutex<HashMap<uuid::Uuid, u32>>> = Arc::default();
    let mut pools = Vec::new();
    for _ in 0..workers {
        pools.push(skyvault::db::connect(url).await.unwrap());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for pool in pools {
        let shared: SharedClock = Arc::new(clock.clone());
        let runs = runs.clone();
        tasks.push(tokio::spawn(worker::dispatch(
            pool,
            shared,
            slots,
            Until::Idle,
            move |job| {
                *runs.lock().unwrap().entry(job.id).or_default() += 1;
                async move {
                    if job_ms > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(job_ms)).await;
                    }
                    JobOutcome::Succeeded("ok".into())
                }
            },
        )));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let runs = runs.lock().unwrap().clone();
    (runs.len() as f64 / elapsed, runs)
}

async fn insert_due_plans(db: &DatabaseConnection, now: chrono::DateTime<Utc>, count: usize) {
    let rows: Vec<plan::ActiveModel> = (0..count)
        .map(|i| {
            use sea_orm::ActiveValue::Set;
            plan::ActiveModel {
                id: Set(uuid::Uuid::new_v4()),
                customer_id: Set(uuid::Uuid::from_u128(i as u128 % 500 + 1)),
                org_id: Set(uuid::Uuid::from_u128(i as u128 % 700 + 1)),
                name: Set(format!("Plan {i}")),
                enabled: Set(true),
                workloads: Set("mailbox".into()),
                all_kinds: Set("user".into()),
                retention_kind: Set("points".into()),
                retention_value: Set(30),
                start_minute: Set((i % 96) as i32 * 15),
                estimated_load: Set(600),
                seconds_per_item: Set(60),
                next_run_at: Set(now - Duration::minutes(1)),
                last_run_at: Set(None),
                version: Set(1),
                created_at: Set(now - Duration::days(1)),
                encrypted_repository_id: Set(None),
            }
        })
        .collect();
    for chunk in rows.chunks(500) {
        plan::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await
            .unwrap();
    }
}

#[tokio::main]
async fn main() {
    skyvault::install_crypto_provider();
    let jobs = size("SKYVAULT_BENCH_JOBS", 20_000);
    let plans = size("SKYVAULT_BENCH_PLANS", 10_000);
    let loops = size("SKYVAULT_BENCH_LOOPS", 4);
    let job_ms = size("SKYVAULT_BENCH_JOB_MS", 20) as u64;
    let dir = tempfile::tempdir().unwrap();
    let bench = support::BenchDatabase::create(dir.path()).await;
    let db = skyvault::db::connect_and_migrate(&bench.url).await.unwrap();
    let backend = format!("{:?}", db.get_database_backend());
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap());
    println!("database: {backend}; {loops} slots per worker; a job waits {job_ms} ms");

    enqueue_short_jobs(&db, &clock, jobs / 2).await;
    let (one, runs_one) = drain(&bench.url, &clock, 1, loops, job_ms).await;
    enqueue_short_jobs(&db, &clock, jobs).await;
    let (two, runs_two) = drain(&bench.url, &clock, 2, loops, job_ms).await;
    let twice = runs_one
        .values()
        .chain(runs_two.values())
        .filter(|n| **n > 1)
        .count();
    let attempts_over_one = job::Entity::find()
        .filter(job::Column::Attempts.ne(1))
        .count(&db)
        .await
        .unwrap();
    let left = job::Entity::find()
        .filter(job::Column::Status.ne("succeeded"))
        .count(&db)
        .await
        .unwrap();
    println!(
        "drain: one worker {:.0} jobs/s ({} jobs), two workers {:.0} jobs/s ({} jobs): ratio {:.2}",
        one,
        runs_one.len(),
        two,
        runs_two.len(),
        two / one
    );
    println!(
        "double runs: {twice} by the workers' counts, {attempts_over_one} rows claimed more than once, {left} not finished"
    );

    clock.advance(Duration::days(1));
    insert_due_plans(&db, clock.now(), plans).await;
    let started = Instant::now();
    let queued = skyvault::jobs::plan_run::enqueue_due_plans(&db, &clock)
        .await
        .unwrap();
    let tick = started.elapsed();
    let again = skyvault::jobs::plan_run::enqueue_due_plans(&db, &clock)
        .await
        .unwrap();
    println!(
        "tick: {queued} of {plans} due plans dispatched in {:.2} s (a second tick queued {again})",
        tick.as_secs_f64()
    );
    drop(db);
}
