//! Live progress of running jobs, for the console's server-sent events. A process-wide hub
//! holds one broadcast channel per job that someone is watching; the plan run's progress sink
//! publishes into it, and a job nobody watches costs one map lookup per report. A watcher that
//! goes away drops its subscription, and the last one out removes the job's channel. Jobs run
//! by another worker process never reach this hub: watchers read the job's row instead
//! (`job_row`), which every worker keeps current.
//!
//! This module never writes the job row and never decides a job's outcome.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::entities::job;
use crate::ids::CustomerId;

/// Where a running job is, as a watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveProgress {
    /// What is being backed up now ("Alice (Mailbox), 2 of 5").
    pub label: String,
    /// The target being worked on (0-based) among the run's targets.
    pub target_index: u64,
    pub target_total: u64,
    pub items_done: u64,
    pub items_total: Option<u64>,
    pub bytes: u64,
    pub current: Option<String>,
    pub throttled_until: Option<DateTime<Utc>>,
}

impl LiveProgress {
    /// The whole run's share done, 0 to 99 while it runs (100 is said only by the job's end).
    pub fn percent(&self) -> u8 {
        if self.target_total == 0 {
            return 0;
        }
        let within = match self.items_total {
            Some(total) if total > 0 => (self.items_done as f64 / total as f64).min(1.0),
            _ => 0.0,
        };
        let share = (self.target_index as f64 + within) / self.target_total as f64;
        (share * 100.0).floor().clamp(0.0, 99.0) as u8
    }
}

/// Messages a watcher may fall behind by before it skips to the newest.
const CHANNEL_CAPACITY: usize = 16;

#[derive(Default)]
pub struct ProgressHub {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<LiveProgress>>>,
}

/// The process's hub.
pub fn hub() -> &'static ProgressHub {
    static HUB: OnceLock<ProgressHub> = OnceLock::new();
    HUB.get_or_init(ProgressHub::default)
}

impl ProgressHub {
    /// Tells the job's watchers, if it has any.
    pub fn publish(&self, job: Uuid, progress: LiveProgress) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(&job) {
            // No receiver left is not an error: the last one is removing the channel.
            let _ = sender.send(progress);
        }
    }

    pub fn subscribe(&'static self, job: Uuid) -> Subscription {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = channels
            .entry(job)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        Subscription {
            hub: self,
            job,
            receiver,
        }
    }

    /// Jobs with at least one watcher (for tests and the memory benchmark).
    pub fn watched_jobs(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// One watcher of one job; dropping it is all a disconnect costs.
pub struct Subscription {
    hub: &'static ProgressHub,
    job: Uuid,
    receiver: broadcast::Receiver<LiveProgress>,
}

impl Subscription {
    /// The newest progress, waiting for one; skips what the watcher fell behind on. `None`
    /// when the channel closed.
    pub async fn next(&mut self) -> Option<LiveProgress> {
        let mut latest = loop {
            match self.receiver.recv().await {
                Ok(progress) => break progress,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        };
        // Reports come faster than anyone reads: only the newest is worth sending.
        while let Ok(newer) = self.receiver.try_recv() {
            latest = newer;
        }
        Some(latest)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.hub.channels.lock().unwrap_or_else(|p| p.into_inner());
        // Our receiver still counts until this drop returns.
        if channels
            .get(&self.job)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            channels.remove(&self.job);
        }
    }
}

/// The job's row as its watchers poll it, only within the customer that owns it.
pub async fn job_row(
    db: &DatabaseConnection,
    customer: CustomerId,
    id: Uuid,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    job::Entity::find_by_id(id)
        .filter(job::Column::CustomerId.eq(customer.as_uuid()))
        .one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: u64, done: u64, total: Option<u64>) -> LiveProgress {
        LiveProgress {
            label: String::new(),
            target_index: index,
            target_total: 4,
            items_done: done,
            items_total: total,
            bytes: 0,
            current: None,
            throttled_until: None,
        }
    }

    #[test]
    fn percent_counts_finished_targets_and_the_current_one_and_never_says_100_early() {
        assert_eq!(at(0, 0, None).percent(), 0);
        assert_eq!(at(1, 5, Some(10)).percent(), 37);
        assert_eq!(at(3, 10, Some(10)).percent(), 99);
        assert_eq!(at(2, 3, Some(0)).percent(), 50);
    }

    #[tokio::test]
    async fn watchers_get_the_newest_report_and_the_last_one_out_removes_the_channel() {
        let hub: &'static ProgressHub = Box::leak(Box::default());
        let job = Uuid::new_v4();
        hub.publish(job, at(0, 1, Some(2)));
        assert_eq!(hub.watched_jobs(), 0, "nobody watching holds no channel");
        let mut first = hub.subscribe(job);
        let second = hub.subscribe(job);
        hub.publish(job, at(0, 1, Some(2)));
        hub.publish(job, at(1, 0, Some(2)));
        assert_eq!(first.next().await.map(|p| p.target_index), Some(1));
        drop(second);
        assert_eq!(hub.watched_jobs(), 1);
        drop(first);
        assert_eq!(hub.watched_jobs(), 0);
    }
}
