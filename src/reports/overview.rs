//! The customer overview: one page that says whether everything is protected and whether last
//! night went well. Assembled from the other reports for one `CustomerScope`.

use chrono::{DateTime, Duration, Utc};
use sea_orm::DatabaseConnection;

use super::ReportResult;
use super::coverage::{CoverageFacts, WorkloadCoverage};
use super::runs::{self, NextRun, ProblemItem, RunResults};
use crate::accounts::access::CustomerScope;
use crate::inventory::organizations;
use crate::jobs::alerts::entities::alert;
use crate::plans;
use crate::storage::catalog::usage;

/// How many problem items, alerts and next runs the overview lists.
pub const LISTED: usize = 5;

/// Storage used now and some days ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageGrowth {
    pub now: u64,
    pub week_ago: u64,
    pub month_ago: u64,
}

impl StorageGrowth {
    pub fn last_week(&self) -> i64 {
        self.now as i64 - self.week_ago as i64
    }

    pub fn last_month(&self) -> i64 {
        self.now as i64 - self.month_ago as i64
    }
}

#[derive(Debug, Clone)]
pub struct CustomerOverview {
    pub organizations: usize,
    pub workloads: Vec<WorkloadCoverage>,
    pub seats: u64,
    pub last_night: RunResults,
    pub problems: Vec<ProblemItem>,
    pub problems_total: u64,
    pub storage: StorageGrowth,
    pub alerts: Vec<alert::Model>,
    pub alerts_total: u64,
    pub next_runs: Vec<NextRun>,
    pub plans: usize,
}

impl CustomerOverview {
    pub fn protected(&self) -> u64 {
        self.workloads.iter().map(|w| w.protected).sum()
    }

    pub fn unprotected(&self) -> u64 {
        self.workloads.iter().map(|w| w.unprotected).sum()
    }
}

pub async fn customer_overview(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    now: DateTime<Utc>,
) -> ReportResult<CustomerOverview> {
    let customer = scope.id().as_uuid();
    let organizations = organizations::organizations(db, scope).await?.len();
    let facts = CoverageFacts::load(db, &[customer]).await?;
    let plans = plans::list_plans(db, scope).await?;
    let last_night = runs::run_results(db, &[customer], runs::last_night(now))
        .await?
        .remove(&customer)
        .unwrap_or_default();
    let (problems, problems_total) = runs::problem_items(db, scope, &plans, LISTED).await?;
    let storage = StorageGrowth {
        now: usage::stored_bytes_of(db, scope, None).await?,
        week_ago: usage::stored_bytes_of(db, scope, Some(now - Duration::days(7))).await?,
        month_ago: usage::stored_bytes_of(db, scope, Some(now - Duration::days(30))).await?,
    };
    let (alerts, alerts_total) = super::alerts::open_alerts(db, &[customer], LISTED as u64).await?;
    let mut next_runs = runs::next_runs(&plans);
    next_runs.truncate(LISTED);
    Ok(CustomerOverview {
        organizations,
        workloads: facts.workloads(customer),
        seats: facts.seats().get(&customer).copied().unwrap_or(0),
        last_night,
        problems,
        problems_total,
        storage,
        alerts,
        alerts_total,
        next_runs,
        plans: plans.len(),
    })
}
