//! Backups of Microsoft 365 workloads: one runner per workload behind one small interface, which
//! plans and jobs call as "back up this protected item into its archive, report progress, return
//! the outcome". A runner reads Microsoft 365 through `m365` and writes through
//! `storage::ingest`; it owns the mapping between the two (paths, metadata, incremental state)
//! and must never write the catalog itself.

pub mod drive;
pub mod mailbox;
pub mod target;
pub mod team;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;

use crate::clock::SharedClock;
use crate::ids::{CustomerId, ItemId, OrgId};
use crate::m365::{GraphClient, GraphError, TenantId};
use crate::storage::catalog::Workload;
use crate::storage::ingest::BackupOutcome;
use crate::storage::{BackupRequest, BackupStorage, StorageError};

/// What every runner is given: one per process, shared by all jobs.
#[derive(Clone)]
pub struct BackupServices {
    pub graph: GraphClient,
    pub storage: BackupStorage,
    pub clock: SharedClock,
}

/// The protected item and workload to back up.
#[derive(Debug, Clone)]
pub struct BackupTarget {
    pub customer: CustomerId,
    pub org: OrgId,
    /// The organization's Entra tenant.
    pub tenant: TenantId,
    pub item: ItemId,
    /// The item's Graph id: a user's or group's object id, a site's id.
    pub graph_id: String,
    pub workload: Workload,
    /// Shown in the console and kept with the archive after the item is gone.
    pub display_name: String,
    /// The encrypted plan's repository this item's backups go into; `None`: the customer's own.
    pub encrypted_repository: Option<crate::storage::EncryptedRepositoryId>,
}

/// Where a running backup is; sent often, so a sink must be cheap.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// Items enumerated so far and, once enumeration has finished, their total.
    pub items_seen: u64,
    pub items_total: Option<u64>,
    /// Items written (fetched or carried over) so far.
    pub items_done: u64,
    pub bytes_fetched: u64,
    /// A human-readable name of what is being read now (a folder, a file).
    pub current: Option<String>,
    /// Set while Microsoft throttles the resource this backup reads.
    pub throttled_until: Option<DateTime<Utc>>,
}

/// Receives progress; the job system stores it, tests collect it.
pub trait ProgressSink: Send + Sync {
    fn report(&self, progress: &Progress);
}

/// Ignores progress.
impl ProgressSink for () {
    fn report(&self, _progress: &Progress) {}
}

/// What a finished backup wrote and what it cost Microsoft.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The recovery point, its counts and the items that failed (the point is Partial then).
    pub outcome: BackupOutcome,
    /// Graph requests this run sent (what incremental runs save).
    pub requests: u64,
    /// Plain-language remarks for the job's page, e.g. what a workload's API cannot reach.
    pub notes: Vec<String>,
}

/// Why a backup wrote no recovery point at all.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Microsoft 365 has nothing to back up for this workload, or the API cannot reach it (no
    /// mailbox, an archive the API does not serve). Not retried; shown on the item's row.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No runner has landed for this workload yet.
    #[error("backing up {0} is not supported yet")]
    Unsupported(&'static str),
}

impl BackupError {
    /// Whether running the same backup again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Graph(err) => err.is_retryable(),
            Self::Storage(err) => err.is_retryable(),
            Self::Unavailable(_) | Self::Unsupported(_) => false,
        }
    }
}

/// Counts the Graph requests a backup sends (shared by its concurrent fetches).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<AtomicU64>);

impl RequestCounter {
    pub fn add(&self, requests: u64) {
        self.0.fetch_add(requests, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The storage side of a target: which archive its recovery points go to.
pub(crate) fn storage_request(target: &BackupTarget) -> BackupRequest {
    BackupRequest {
        customer: target.customer,
        org: target.org,
        item: target.item,
        workload: target.workload,
        display_name: target.display_name.clone(),
        encrypted_repository: target.encrypted_repository,
    }
}

/// The last step every runner shares: writes the recovery point from the enumerated `events`
/// with the runner's source state, reports every item done and says what it cost.
pub(crate) async fn write_point(
    services: &BackupServices,
    target: &BackupTarget,
    events: Vec<crate::storage::SourceEvent>,
    state: crate::storage::SourceState,
    mut report: Progress,
    progress: &dyn ProgressSink,
    requests: &RequestCounter,
) -> Result<BackupReport, BackupError> {
    let outcome = crate::storage::ingest::back_up_source(
        &services.storage,
        &storage_request(target),
        futures::stream::iter(events),
        Some(state),
    )
    .await?;
    report.items_done = report.items_seen;
    progress.report(&report);
    Ok(BackupReport {
        outcome,
        requests: requests.get(),
        notes: Vec::new(),
    })
}

/// One workload's backup.
pub trait Runner: Send + Sync {
    fn workload(&self) -> Workload;

    /// Backs up `target` into its archive: one new recovery point (Complete or Partial) or an
    /// error that wrote none. Dropping the future cancels the backup without writing a point.
    fn run<'a>(
        &'a self,
        services: &'a BackupServices,
        target: &'a BackupTarget,
        progress: &'a dyn ProgressSink,
    ) -> BoxFuture<'a, Result<BackupReport, BackupError>>;
}

/// The runner for a workload, or `None` where none has landed yet.
pub fn runner(workload: Workload) -> Option<Arc<dyn Runner>> {
    match workload {
        Workload::Mailbox => Some(Arc::new(mailbox::MailboxRunner::primary())),
        Workload::ArchiveMailbox => Some(Arc::new(mailbox::MailboxRunner::archive())),
        Workload::GroupMailbox => Some(Arc::new(mailbox::group::GroupMailboxRunner)),
        Workload::OneDrive => Some(Arc::new(drive::OneDriveRunner)),
        Workload::Site => Some(Arc::new(drive::SiteRunner)),
        Workload::Team => Some(Arc::new(team::TeamRunner)),
    }
}

/// Backs up one protected item's workload with its runner.
pub async fn back_up(
    services: &BackupServices,
    target: &BackupTarget,
    progress: &dyn ProgressSink,
) -> Result<BackupReport, BackupError> {
    let runner =
        runner(target.workload).ok_or(BackupError::Unsupported(target.workload.as_str()))?;
    runner.run(services, target, progress).await
}
