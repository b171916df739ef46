//! tokio-cron-scheduler only drives ticks; what a tick does is a plain async function that logs
//! and carries on when it fails, so one bad tick never stops the next.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::accounts::{session_store, throttle};
use crate::clock::SharedClock;

const MAINTENANCE_EVERY: Duration = Duration::from_secs(300);

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

pub async fn start_ticks(
    db: DatabaseConnection,
    clock: SharedClock,
) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_repeated_async(MAINTENANCE_EVERY, move |_, _| {
            let db = db.clone();
            let clock = clock.clone();
            Box::pin(async move { tidy_accounts(&db, &clock).await })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
