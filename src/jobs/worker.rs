//! Workers: claim a job, run it, record how it ended. A job that fails is recorded as failed
//! with its reason and never leaves half-written state behind; a worker that dies mid-job leaves
//! a lease that lapses, and another worker runs the job again (syncs and backup checks are
//! idempotent).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use sea_orm::{DatabaseConnection, EntityTrait};

use super::backup_check;
use super::entities::job;
use super::queue::{self, JobKind};
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
}

const LEASE: i64 = 120;

/// Claims and runs one job; `false` when none was waiting.
pub async fn run_one(ctx: &WorkerContext) -> Result<bool, sea_orm::DbErr> {
    let Some(claimed) =
        queue::claim_next(&ctx.db, ctx.clock.as_ref(), Duration::seconds(LEASE)).await?
    else {
        return Ok(false);
    };
    let heartbeat = {
        let (db, clock, id) = (ctx.db.clone(), ctx.clock.clone(), claimed.id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(StdDuration::from_secs(LEASE as u64 / 3)).await;
                if queue::renew_lease(&db, id, clock.now() + Duration::seconds(LEASE))
                    .await
                    .is_err()
                {
                    tracing::warn!(job = %id, "could not renew the job's lease");
                }
            }
        })
    };
    let outcome = run_job(ctx, &claimed).await;
    heartbeat.abort();
    if let Err(error) = &outcome {
        tracing::warn!(job = %claimed.id, kind = %claimed.kind, "job failed: {error}");
    }
    queue::finish(&ctx.db, ctx.clock.as_ref(), claimed.id, outcome).await?;
    Ok(true)
}

/// Runs jobs until none is waiting; for tests and start-up catch-up.
pub async fn run_until_idle(ctx: &WorkerContext) -> Result<u32, sea_orm::DbErr> {
    let mut ran = 0;
    while run_one(ctx).await? {
        ran += 1;
    }
    Ok(ran)
}

async fn run_job(ctx: &WorkerContext, job: &job::Model) -> Result<String, String> {
    match job.kind.as_str() {
        kind if kind == JobKind::DirectorySync.as_str() => run_sync(ctx, job).await,
        kind if kind == JobKind::Verify.as_str() => {
            backup_check::check_backups(&ctx.storage, CustomerId(job.customer_id), ctx.check_scope)
                .await
        }
        other => Err(format!("unknown job kind {other}")),
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
    let (db, id) = (ctx.db.clone(), job.id);
    let progress = move |line: &str| {
        let (db, line) = (db.clone(), line.to_string());
        tokio::spawn(async move {
            let _ = queue::set_progress(&db, id, &line).await;
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

/// The worker loop: runs jobs as they come, polling once a second when idle.
pub async fn run_worker(ctx: Arc<WorkerContext>) {
    loop {
        match run_one(&ctx).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(err) => tracing::warn!("worker could not reach the database: {err}"),
        }
        tokio::time::sleep(StdDuration::from_secs(1)).await;
    }
}
