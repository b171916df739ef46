//! tokio-cron-scheduler only drives ticks; what a tick does is a plain async function that logs
//! and carries on when it fails, so one bad tick never stops the next.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use chrono::Duration as ChronoDuration;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::accounts::{session_store, throttle};
use crate::clock::SharedClock;
use crate::ids::CustomerId;
use crate::inventory::entities::organization;
use crate::inventory::organizations::next_sync_after;
use crate::jobs::plan_run;
use crate::jobs::queue::{self, JobKind, NewJob};
use crate::storage::catalog;

const MAINTENANCE_EVERY: Duration = Duration::from_secs(300);
const DISPATCH_EVERY: Duration = Duration::from_secs(30);

/// Queues the syncs that are due and moves each organization's next sync to its next slot
/// (`added_at + k × interval`). A sync missed while the server was down runs once, at start-up.
pub async fn enqueue_due_syncs(
    db: &DatabaseConnection,
    clock: &SharedClock,
    interval: ChronoDuration,
) -> u32 {
    let now = clock.now();
    let due = match organization::Entity::find()
        .filter(organization::Column::NextSyncAt.lte(now))
        .all(db)
        .await
    {
        Ok(due) => due,
        Err(err) => {
            tracing::warn!("cannot read due syncs: {err}");
            return 0;
        }
    };
    let mut queued = 0;
    for org in due {
        if let Err(err) = queue::enqueue_sync(db, clock.as_ref(), &org).await {
            tracing::warn!(org = %org.id, "cannot queue the scheduled sync: {err}");
            continue;
        }
        queued += 1;
        let next = next_sync_after(org.added_at, interval, now);
        let mut model: organization::ActiveModel = org.into();
        model.next_sync_at = Set(next);
        if let Err(err) = model.update(db).await {
            tracing::warn!("cannot move the next sync: {err}");
        }
    }
    queued
}

/// How often each customer's backups are checked.
pub fn check_interval() -> ChronoDuration {
    ChronoDuration::days(7)
}

/// Queues a backup check for every customer that has backups and whose last check finished more
/// than a week ago (or that was never checked). A check already queued or running is left alone,
/// so running this often is harmless.
pub async fn enqueue_due_checks(db: &DatabaseConnection, clock: &SharedClock) -> u32 {
    enqueue_for_customers_with_backups(db, clock, JobKind::Verify, check_interval(), NewJob::verify)
        .await
}

/// Queues `job` for every customer with backups whose last job of `kind` finished more than
/// `interval` ago, or that never had one; one already pending is left alone (its unique key).
async fn enqueue_for_customers_with_backups(
    db: &DatabaseConnection,
    clock: &SharedClock,
    kind: JobKind,
    interval: ChronoDuration,
    job: fn(CustomerId) -> NewJob,
) -> u32 {
    let what = JobKind::label(kind.as_str());
    let customers = match catalog::customers_with_archives(db).await {
        Ok(customers) => customers,
        Err(err) => {
            tracing::warn!("cannot read which customers have backups: {err}");
            return 0;
        }
    };
    let due_before = clock.now() - interval;
    let mut queued = 0;
    for customer in customers {
        let due = match queue::latest_job(db, customer, kind).await {
            Ok(None) => true,
            Ok(Some(last)) => last.finished_at.is_some_and(|at| at <= due_before),
            Err(err) => {
                tracing::warn!(%customer, "cannot read the last {what}: {err}");
                continue;
            }
        };
        if !due {
            continue;
        }
        match queue::enqueue(db, clock.as_ref(), job(customer)).await {
            Ok((_, true)) => queued += 1,
            Ok((_, false)) => {}
            Err(err) => tracing::warn!(%customer, "cannot queue the scheduled {what}: {err}"),
        }
    }
    queued
}

/// Queues the plan runs that are due (see `plan_run::enqueue_due_plans`).
pub async fn enqueue_due_plans(db: &DatabaseConnection, clock: &SharedClock) -> u64 {
    match plan_run::enqueue_due_plans(db, clock.as_ref()).await {
        Ok(queued) => queued,
        Err(err) => {
            tracing::warn!("cannot queue the plans that are due: {err}");
            0
        }
    }
}

/// How often each customer's repository is pruned.
pub fn prune_interval() -> ChronoDuration {
    ChronoDuration::days(1)
}

/// Queues a prune of every customer with backups whose last prune finished more than a day ago
/// (or that was never pruned), and fails jobs whose worker kept dying on them.
pub async fn enqueue_due_prunes(db: &DatabaseConnection, clock: &SharedClock) -> u32 {
    match queue::fail_abandoned(db, clock.as_ref()).await {
        Ok(0) => {}
        Ok(failed) => tracing::warn!(failed, "jobs given up after their last attempt lapsed"),
        Err(err) => tracing::warn!("cannot fail abandoned jobs: {err}"),
    }
    enqueue_for_customers_with_backups(db, clock, JobKind::Prune, prune_interval(), NewJob::prune)
        .await
}

/// Deletes expired sessions and sign-in failures older than the throttling window.
pub async fn tidy_accounts(db: &DatabaseConnection, clock: &SharedClock) {
    match session_store::delete_expired_sessions(db, clock.now()).await {
        Ok(removed) if removed > 0 => tracing::debug!(removed, "expired sessions removed"),
        Ok(_) => {}
        Err(err) => tracing::warn!("cleaning expired sessions failed: {err}"),
    }
    if let Err(err) = throttle::forget_old_failures(db, clock.as_ref()).await {
        tracing::warn!("cleaning old sign-in failures failed: {err}");
    }
}

/// Starts the ticks: due syncs and plan runs are queued at once (catching up after downtime),
/// then every 30 seconds; due backup checks and prunes are queued at once, then with the tidying
/// of account tables every 5 minutes.
pub async fn start_ticks(
    db: DatabaseConnection,
    clock: SharedClock,
    sync_interval: ChronoDuration,
) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    enqueue_due_syncs(&db, &clock, sync_interval).await;
    enqueue_due_plans(&db, &clock).await;
    enqueue_due_checks(&db, &clock).await;
    enqueue_due_prunes(&db, &clock).await;
    {
        let (db, clock) = (db.clone(), clock.clone());
        scheduler
            .add(Job::new_repeated_async(DISPATCH_EVERY, move |_, _| {
                let (db, clock) = (db.clone(), clock.clone());
                Box::pin(async move {
                    enqueue_due_syncs(&db, &clock, sync_interval).await;
                    enqueue_due_plans(&db, &clock).await;
                })
            })?)
            .await?;
    }
    scheduler
        .add(Job::new_repeated_async(MAINTENANCE_EVERY, move |_, _| {
            let db = db.clone();
            let clock = clock.clone();
            Box::pin(async move {
                enqueue_due_checks(&db, &clock).await;
                enqueue_due_prunes(&db, &clock).await;
                tidy_accounts(&db, &clock).await;
                crate::jobs::alerts::evaluate_and_log(&db, clock.as_ref()).await;
            })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
