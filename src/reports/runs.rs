//! How the backups went: last night's runs per customer (succeeded, partly failed, failed), the
//! items whose latest backup failed, and the plans' next start times.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{CHUNK, ReportResult};
use crate::accounts::access::CustomerScope;
use crate::inventory::failure::{FailureCause, SyncFailure};
use crate::jobs::backup_check::workload_label;
use crate::jobs::entities::{job, job_item};
use crate::jobs::plan_run::ItemOutcome;
use crate::jobs::queue::{JobKind, JobStatus};
use crate::plans::{self, Plan};
use crate::storage::catalog::Workload;

/// "Last night": runs that finished in the last 24 hours.
pub fn last_night(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::hours(24)
}

/// Backup runs finished since a time, by how they ended. A failed run that still backed up some
/// items is *partial*.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunResults {
    pub succeeded: u64,
    pub partial: u64,
    pub failed: u64,
}

impl RunResults {
    pub fn total(&self) -> u64 {
        self.succeeded + self.partial + self.failed
    }

    /// The worst outcome in words, for a list.
    pub fn label(&self) -> &'static str {
        if self.failed > 0 {
            "Failed"
        } else if self.partial > 0 {
            "Partly failed"
        } else if self.succeeded > 0 {
            "Succeeded"
        } else {
            "No backup in 24 h"
        }
    }

    /// The badge class of `label`.
    pub fn badge(&self) -> &'static str {
        if self.failed > 0 {
            "badge-error"
        } else if self.partial > 0 {
            "badge-warn"
        } else if self.succeeded > 0 {
            "badge-ok"
        } else {
            "badge-muted"
        }
    }

    /// Orders results worst first (for sorting a list by last result).
    pub fn rank(&self) -> u8 {
        if self.failed > 0 {
            0
        } else if self.partial > 0 {
            1
        } else if self.succeeded > 0 {
            3
        } else {
            2
        }
    }
}

/// The backup runs of each of `customers` finished since `since`.
pub async fn run_results(
    db: &DatabaseConnection,
    customers: &[Uuid],
    since: DateTime<Utc>,
) -> ReportResult<HashMap<Uuid, RunResults>> {
    let mut results: HashMap<Uuid, RunResults> = HashMap::new();
    let mut failed: Vec<(Uuid, Uuid)> = Vec::new();
    for chunk in customers.chunks(CHUNK) {
        let rows: Vec<(Uuid, Uuid, String)> = job::Entity::find()
            .select_only()
            .column(job::Column::CustomerId)
            .column(job::Column::Id)
            .column(job::Column::Status)
            .filter(job::Column::CustomerId.is_in(chunk.iter().copied()))
            .filter(job::Column::Kind.eq(JobKind::PlanRun.as_str()))
            .filter(job::Column::FinishedAt.gte(since))
            .filter(
                job::Column::Status
                    .is_in([JobStatus::Succeeded.as_str(), JobStatus::Failed.as_str()]),
            )
            .into_tuple()
            .all(db)
            .await?;
        for (customer, id, status) in rows {
            if status == JobStatus::Succeeded.as_str() {
                results.entry(customer).or_default().succeeded += 1;
            } else {
                failed.push((customer, id));
            }
        }
    }
    let mut saved_something = std::collections::HashSet::new();
    for chunk in failed.chunks(CHUNK) {
        let ids: Vec<Uuid> = job_item::Entity::find()
            .select_only()
            .column(job_item::Column::JobId)
            .filter(job_item::Column::JobId.is_in(chunk.iter().map(|(_, id)| *id)))
            .filter(job_item::Column::Status.eq(ItemOutcome::BackedUp.as_str()))
            .distinct()
            .into_tuple()
            .all(db)
            .await?;
        saved_something.extend(ids);
    }
    for (customer, id) in failed {
        let entry = results.entry(customer).or_default();
        if saved_something.contains(&id) {
            entry.partial += 1;
        } else {
            entry.failed += 1;
        }
    }
    Ok(results)
}

/// An item whose latest backup of one workload failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemItem {
    pub item: Uuid,
    pub name: String,
    pub workload: &'static str,
    /// What went wrong, in words.
    pub reason: String,
    pub job: Uuid,
    pub failed_at: DateTime<Utc>,
}

/// The items that failed in each enabled plan's latest finished run: up to `limit` of them, the
/// most recent first, and how many there are in all.
pub async fn problem_items(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    plans: &[Plan],
    limit: usize,
) -> ReportResult<(Vec<ProblemItem>, u64)> {
    let mut latest = Vec::new();
    for plan in plans.iter().filter(|p| p.enabled) {
        let run: Option<Uuid> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::CustomerId.eq(scope.id().as_uuid()))
            .filter(job::Column::PlanId.eq(plan.id.as_uuid()))
            .filter(job::Column::Kind.eq(JobKind::PlanRun.as_str()))
            .filter(
                job::Column::Status
                    .is_in([JobStatus::Succeeded.as_str(), JobStatus::Failed.as_str()]),
            )
            .order_by_desc(job::Column::FinishedAt)
            .into_tuple()
            .one(db)
            .await?;
        latest.extend(run);
    }
    if latest.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let rows = job_item::Entity::find()
        .filter(job_item::Column::JobId.is_in(latest))
        .filter(job_item::Column::Status.eq(ItemOutcome::Failed.as_str()))
        .order_by_desc(job_item::Column::FinishedAt)
        .all(db)
        .await?;
    let total = rows.len() as u64;
    let shown: Vec<job_item::Model> = rows.into_iter().take(limit).collect();
    let ids: Vec<Uuid> = shown.iter().map(|r| r.item_id).collect();
    let names = plans::item_names(db, scope, &ids).await?;
    Ok((
        shown
            .into_iter()
            .map(|row| ProblemItem {
                name: names
                    .get(&row.item_id)
                    .cloned()
                    .unwrap_or_else(|| "An item no longer in Microsoft 365".into()),
                workload: row
                    .workload
                    .parse::<Workload>()
                    .map(workload_label)
                    .unwrap_or("Backup"),
                reason: reason(&row.detail),
                item: row.item_id,
                job: row.job_id,
                failed_at: row.finished_at,
            })
            .collect(),
        total,
    ))
}

/// A failure in words: Graph failures are stored encoded with their cause; other text (a storage
/// or runner error) is shown as it is, first line only.
fn reason(detail: &str) -> String {
    let failure = SyncFailure::decode(detail);
    if failure.cause == FailureCause::Other {
        detail.lines().next().unwrap_or_default().to_string()
    } else {
        failure.cause.what().to_string()
    }
}

/// An enabled plan's next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextRun {
    pub plan: Uuid,
    pub name: String,
    pub at: DateTime<Utc>,
}

/// The enabled plans by next start, soonest first.
pub fn next_runs(plans: &[Plan]) -> Vec<NextRun> {
    let mut runs: Vec<NextRun> = plans
        .iter()
        .filter(|p| p.enabled)
        .map(|p| NextRun {
            plan: p.id.as_uuid(),
            name: p.name.clone(),
            at: p.next_run_at,
        })
        .collect();
    runs.sort_by(|a, b| a.at.cmp(&b.at).then(a.name.cmp(&b.name)));
    runs
}
