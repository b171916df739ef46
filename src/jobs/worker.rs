//! Workers: claim a job, run it, record how it ended. A process runs `worker_concurrency` jobs
//! at once. A job that fails is recorded with its reason (queued again with backoff when retrying
//! can help); a job that panics is recorded as failed, not lost; a worker that dies mid-job
//! leaves a lease that lapses, and another worker runs the job again (every kind is idempotent,
//! and a plan run skips the items it finished). A worker that loses its lease stops the job and
//! records nothing: the job's new owner does.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use futures::FutureExt;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::backup_check;
use super::entities::job;
use super::plan_run;
use super::queue::{self, JobOutcome, JobPayload, Lease};
use crate::clock::SharedClock;
use crate::ids::CustomerId;
use crate::inventory::entities::organization;
use crate::inventory::sync::Progress;
use crate::inventory::{organizations, sync};
use crate::m365::GraphClient;
use crate::storage::{BackupStorage, VerifyScope};

/// What a worker needs.
#[derive(Clone)]
pub struct WorkerContext {
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub graph: GraphClient,
    pub storage: BackupStorage,
    /// How much a backup check reads.
    pub check_scope: VerifyScope,
    /// Jobs this process runs at once.
    pub concurrency: usize,
    /// The full-text search indexes, updated after backups.
    pub search: crate::restore::search::SearchIndexes,
}

/// Seconds a claim lasts without a heartbeat.
pub const LEASE_SECONDS: i64 = 120;

/// Renews the lease every third of its length; returns when the claim is lost.
async fn heartbeat(db: DatabaseConnection, clock: SharedClock, lease: Lease) {
    loop {
        tokio::time::sleep(StdDuration::from_secs(LEASE_SECONDS as u64 / 3)).await;
        match queue::renew_lease(&db, lease, clock.now() + Duration::seconds(LEASE_SECONDS)).await {
            Ok(true) => {}
            Ok(false) => return,
            // The database may come back before the lease lapses: keep trying.
            Err(err) => tracing::warn!(job = %lease.job, "could not renew the job's lease: {err}"),
        }
    }
}

/// Claims and runs one job; `false` when none was waiting.
pub async fn run_one(ctx: &WorkerContext) -> Result<bool, sea_orm::DbErr> {
    let Some(claimed) = queue::claim_next(
        &ctx.db,
        ctx.clock.as_ref(),
        Duration::seconds(LEASE_SECONDS),
    )
    .await?
    else {
        return Ok(false);
    };
    let work = run_job(ctx, &claimed);
    run_claimed(ctx, &claimed, work).await?;
    Ok(true)
}

/// Runs `work` for a claimed job under its heartbeat and records its outcome, a panic included
/// (as a failure that is not retried). A lost lease stops the work and records nothing.
pub async fn run_claimed(
    ctx: &WorkerContext,
    claimed: &job::Model,
    work: impl std::future::Future<Output = JobOutcome>,
) -> Result<(), sea_orm::DbErr> {
    record_claimed(&ctx.db, &ctx.clock, claimed, work).await
}

async fn record_claimed(
    db: &DatabaseConnection,
    clock: &SharedClock,
    claimed: &job::Model,
    work: impl std::future::Future<Output = JobOutcome>,
) -> Result<(), sea_orm::DbErr> {
    let lease = Lease::of(claimed);
    let work = std::panic::AssertUnwindSafe(work).catch_unwind();
    let outcome = tokio::select! {
        outcome = work => match outcome {
            Ok(outcome) => outcome,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(job = %claimed.id, kind = %claimed.kind, "job panicked: {message}");
                JobOutcome::failed(format!(
                    "The job stopped on an internal error in Skyvault ({message}). It was not retried; report this with the server's log."
                ))
            }
        },
        () = heartbeat(db.clone(), clock.clone(), lease) => {
            tracing::warn!(job = %claimed.id, "lease lost; the job was stopped and left to its new owner");
            return Ok(());
        }
    };
    if let JobOutcome::Failed { error, .. } = &outcome {
        tracing::warn!(job = %claimed.id, kind = %claimed.kind, "job failed: {error}");
    }
    if !queue::finish(db, clock.as_ref(), lease, outcome).await? {
        tracing::warn!(job = %claimed.id, "lease lost before the job finished; its outcome was discarded");
    }
    Ok(())
}

/// Runs jobs until none is waiting; for tests and start-up catch-up.
pub async fn run_until_idle(ctx: &WorkerContext) -> Result<u32, sea_orm::DbErr> {
    let mut ran = 0;
    while run_one(ctx).await? {
        ran += 1;
    }
    Ok(ran)
}

async fn run_job(ctx: &WorkerContext, job: &job::Model) -> JobOutcome {
    let Some(payload) = JobPayload::of(job) else {
        return JobOutcome::failed(format!("unknown job kind {}", job.kind));
    };
    let customer = CustomerId(job.customer_id);
    match payload {
        JobPayload::DirectorySync { .. } => run_sync(ctx, job).await.into(),
        JobPayload::Verify => backup_check::check_backups(&ctx.storage, customer, ctx.check_scope)
            .await
            .into(),
        JobPayload::PlanRun { plan, trigger } => plan_run::run_plan(ctx, job, plan, trigger).await,
        JobPayload::Retention { plan } => plan_run::apply_plan_retention(ctx, plan).await,
        JobPayload::Prune => plan_run::prune_customer(ctx, customer).await,
        JobPayload::Restore { request } => {
            crate::restore::job::run_restore(ctx, job, &request).await
        }
    }
}

async fn run_sync(ctx: &WorkerContext, job: &job::Model) -> Result<String, String> {
    let Some(org_id) = job.org_id else {
        return Err("the sync names no organization".into());
    };
    let Some(org) = organization::Entity::find_by_id(org_id)
        .one(&ctx.db)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok("The organization was removed before the sync started.".into());
    };
    let (db, lease) = (ctx.db.clone(), Lease::of(job));
    let progress = move |line: &str| {
        let (db, line) = (db.clone(), line.to_string());
        tokio::spawn(async move {
            let _ = queue::set_progress(&db, lease, &line).await;
        });
    };
    progress.report(if org.is_verifying() {
        "Verifying consent with Microsoft"
    } else {
        "Reading the organization"
    });
    let org = match organizations::refresh_organization(&ctx.db, &ctx.graph, &org).await {
        Ok(org) => org,
        Err(err) => {
            let now = ctx.clock.now();
            let message = crate::inventory::failure::SyncFailure::of(&err).encode();
            let _ = organizations::record_sync_outcome(&ctx.db, org.id.into(), now, Err(&message))
                .await;
            return Err(message);
        }
    };
    let result =
        sync::sync_directory(&ctx.db, ctx.clock.as_ref(), &ctx.graph, &org, &progress).await;
    let now = ctx.clock.now();
    // Even a sync that failed part-way changed some rows: the counts follow what is stored.
    if let Err(err) = crate::inventory::items::refresh_counts(&ctx.db, org.id).await {
        tracing::warn!(org = %org.id, "cannot record item counts: {err}");
    }
    match result {
        Ok(summary) => {
            let sentence = summary.sentence();
            organizations::record_sync_outcome(&ctx.db, org.id.into(), now, Ok(&sentence))
                .await
                .map_err(|e| e.to_string())?;
            Ok(sentence)
        }
        Err(err) => {
            // Recorded with its cause, so pages explain it in plain words (`inventory::failure`).
            let message = crate::inventory::failure::SyncFailure::of(&err).encode();
            let _ = organizations::record_sync_outcome(&ctx.db, org.id.into(), now, Err(&message))
                .await;
            Err(message)
        }
    }
}

/// Whether `dispatch` runs for ever or returns once the queue is empty and its jobs are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Stopped,
    Idle,
}

/// Runs jobs `slots` at a time: whenever slots are free, claims that many jobs in one claim
/// (`queue::claim_batch`) and runs each with `run` under its heartbeat. When the queue has
/// less than asked, it waits for a running job to end (which may free a resource) or a second.
pub async fn dispatch<Run, Work>(
    db: DatabaseConnection,
    clock: SharedClock,
    slots: usize,
    until: Until,
    run: Run,
) where
    Run: Fn(job::Model) -> Work,
    Work: std::future::Future<Output = JobOutcome> + Send + 'static,
{
    let free = Arc::new(Semaphore::new(slots.max(1)));
    let ended = Arc::new(Notify::new());
    let mut running = JoinSet::new();
    loop {
        let Ok(first) = free.clone().acquire_owned().await else {
            break;
        };
        let mut permits = vec![first];
        while let Ok(permit) = free.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let asked = permits.len();
        let lease = Duration::seconds(LEASE_SECONDS);
        let claimed = match queue::claim_batch(&db, clock.as_ref(), lease, asked).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!("worker could not reach the database: {err}");
                Vec::new()
            }
        };
        let got = claimed.len();
        for (job, permit) in claimed.into_iter().zip(permits.drain(..)) {
            let work = run(job.clone());
            let (db, clock, ended) = (db.clone(), clock.clone(), ended.clone());
            running.spawn(async move {
                if let Err(err) = record_claimed(&db, &clock, &job, work).await {
                    tracing::warn!(job = %job.id, "could not record the job's outcome: {err}");
                }
                drop(permit);
                ended.notify_one();
            });
        }
        drop(permits);
        while running.try_join_next().is_some() {}
        if got < asked {
            if until == Until::Idle && got == 0 && running.is_empty() {
                break;
            }
            tokio::select! {
                () = ended.notified() => {}
                () = tokio::time::sleep(StdDuration::from_secs(1)) => {}
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// The process's workers: `concurrency` jobs at a time, for as long as the process runs.
pub async fn run_worker(ctx: Arc<WorkerContext>) {
    let (db, clock, slots) = (ctx.db.clone(), ctx.clock.clone(), ctx.concurrency);
    dispatch(db, clock, slots, Until::Stopped, move |job| {
        let ctx = ctx.clone();
        async move { run_job(&ctx, &job).await }
    })
    .await;
}
