//! Each customer's state for the partner's Customers list: organizations, seats, storage used,
//! last night's result, open alerts, and one worst state to sort and filter by. A handful of
//! aggregate queries for any number of customers (the list of 1,000 is measured in
//! `benches/overview.rs`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::ReportResult;
use super::coverage::CoverageFacts;
use super::runs::{self, RunResults};
use crate::ids::CustomerId;
use crate::inventory::organizations::{self, CustomerSyncHealth};
use crate::jobs::alerts;
use crate::storage::catalog::usage;

/// A customer's worst state, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthState {
    /// A backup run failed last night.
    Failed,
    /// Alerts are open.
    Alerts,
    /// A run partly failed last night, or an organization's sync failed.
    Warning,
    Ok,
    /// Nothing is protected yet.
    NotProtected,
}

impl HealthState {
    pub const ALL: [HealthState; 5] = [
        HealthState::Failed,
        HealthState::Alerts,
        HealthState::Warning,
        HealthState::Ok,
        HealthState::NotProtected,
    ];

    pub fn code(self) -> &'static str {
        match self {
            HealthState::Failed => "failed",
            HealthState::Alerts => "alerts",
            HealthState::Warning => "warning",
            HealthState::Ok => "ok",
            HealthState::NotProtected => "unprotected",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn label(self) -> &'static str {
        match self {
            HealthState::Failed => "Failed",
            HealthState::Alerts => "Alerts",
            HealthState::Warning => "Warning",
            HealthState::Ok => "OK",
            HealthState::NotProtected => "Not protected",
        }
    }

    pub fn badge(self) -> &'static str {
        match self {
            HealthState::Failed => "badge-error",
            HealthState::Alerts => "badge-error",
            HealthState::Warning => "badge-warn",
            HealthState::Ok => "badge-ok",
            HealthState::NotProtected => "badge-muted",
        }
    }
}

/// One customer's figures that decide its state. Storage used is read apart
/// (`stored_bytes`), for the rows a page shows: it sums every recovery point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CustomerHealth {
    pub sync: CustomerSyncHealth,
    pub seats: u64,
    pub last_night: RunResults,
    pub open_alerts: u64,
}

impl CustomerHealth {
    pub fn state(&self) -> HealthState {
        if self.last_night.failed > 0 {
            HealthState::Failed
        } else if self.open_alerts > 0 {
            HealthState::Alerts
        } else if self.last_night.partial > 0 || self.sync.failed > 0 {
            HealthState::Warning
        } else if self.seats > 0 {
            HealthState::Ok
        } else {
            HealthState::NotProtected
        }
    }
}

/// The figures of each of `customers` (ids from the caller's access) at `now`.
pub async fn customer_health(
    db: &DatabaseConnection,
    customers: &[Uuid],
    now: DateTime<Utc>,
) -> ReportResult<HashMap<Uuid, CustomerHealth>> {
    let sync = organizations::sync_health(db, customers).await?;
    let seats = CoverageFacts::load(db, customers).await?.seats();
    let nights = runs::run_results(db, customers, runs::last_night(now)).await?;
    let open = alerts::open_counts(db, customers).await?;
    Ok(customers
        .iter()
        .map(|id| {
            (
                *id,
                CustomerHealth {
                    sync: sync.get(id).copied().unwrap_or_default(),
                    seats: seats.get(id).copied().unwrap_or(0),
                    last_night: nights.get(id).copied().unwrap_or_default(),
                    open_alerts: open.get(id).copied().unwrap_or(0),
                },
            )
        })
        .collect())
}

/// Storage used now by each of `customers` (ids from the caller's access).
pub async fn stored_bytes(
    db: &DatabaseConnection,
    customers: &[Uuid],
) -> ReportResult<HashMap<Uuid, u64>> {
    let ids: Vec<CustomerId> = customers.iter().copied().map(CustomerId).collect();
    Ok(usage::stored_bytes(db, &ids, None)
        .await?
        .into_iter()
        .map(|(customer, bytes)| (customer.as_uuid(), bytes))
        .collect())
}
