//! Backup storage in the console: where the customer's repository lives, its Cloud application
//! backups (archives listed from the catalog, kept after their item is gone from Microsoft 365),
//! the latest backup check and the Check backups now button that queues one.

use actix_web::{HttpResponse, web};
use askama::Template;
use bytesize::ByteSize;

use super::sorting::{self, Column, TableSort};
use super::{AppState, Chrome, SignedIn, WebError, ok, see_other};
use crate::accounts::access::CustomerScope;
use crate::jobs::backup_check::workload_label;
use crate::jobs::entities::job;
use crate::jobs::queue::{self, JobKind, JobStatus};
use crate::storage::catalog::{self, ArchiveSummary};
use crate::storage::{RecoveryPointStatus, StorageError};

impl From<StorageError> for WebError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound { .. } => WebError::NotFound,
            other => WebError::internal(other),
        }
    }
}

/// A Backup storage message after Check backups now, by stable code (never reflected text).
fn storage_message(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "check_queued" => (
            "success",
            "A backup check was queued. Its outcome appears below and in Activities.",
        ),
        "check_pending" => (
            "info",
            "A backup check is already queued or running; its outcome appears below and in Activities.",
        ),
        _ => return None,
    })
}

pub struct ArchiveRow {
    /// The archive's page: its recovery points, where browsing and restoring start.
    pub url: String,
    pub name: String,
    pub workload: &'static str,
    pub points: u64,
    pub newest: String,
    pub partial: bool,
    pub size: String,
    pub stored: String,
    /// In an encrypted plan's repository: opening it asks for the plan's password.
    pub encrypted: bool,
}

impl ArchiveRow {
    fn of(summary: ArchiveSummary) -> Self {
        let newest = summary.newest.as_ref();
        Self {
            url: super::backups::archive_url(summary.archive.customer, summary.archive.id),
            workload: workload_label(summary.archive.workload),
            points: summary.recovery_points,
            newest: super::m365::when(newest.map(|p| p.taken_at)),
            partial: newest.is_some_and(|p| p.status == RecoveryPointStatus::Partial),
            size: newest
                .map(|p| ByteSize::b(p.bytes_total).to_string())
                .unwrap_or_default(),
            stored: ByteSize::b(summary.bytes_added).to_string(),
            encrypted: summary.archive.encrypted_repository.is_some(),
            name: summary.archive.display_name,
        }
    }
}

/// The latest backup check as the page shows it.
pub struct CheckStatus {
    /// `never`, or a job status.
    pub state: &'static str,
    pub when: String,
    pub headline: String,
    pub more: Vec<String>,
}

impl CheckStatus {
    fn of(latest: Option<job::Model>) -> Self {
        let Some(job) = latest else {
            return Self {
                state: "never",
                when: String::new(),
                headline: String::new(),
                more: Vec::new(),
            };
        };
        let state = [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == job.status)
        .unwrap_or(JobStatus::Queued)
        .as_str();
        let (headline, more) = outcome_lines(job.error.or(job.summary).or(job.progress));
        Self {
            state,
            when: super::m365::when(job.finished_at.or(job.started_at).or(Some(job.queued_at))),
            headline,
            more,
        }
    }

    pub fn pending(&self) -> bool {
        JobStatus::is_pending(self.state)
    }
}

/// A job's outcome text: its first line, and the lines after it (a failed backup check lists
/// damaged packs and errors one per line).
pub fn outcome_lines(text: Option<String>) -> (String, Vec<String>) {
    let text = text.unwrap_or_default();
    let mut lines = text.lines().map(str::to_string);
    let headline = lines.next().unwrap_or_default();
    (headline, lines.collect())
}

#[derive(Template)]
#[template(path = "storage.html")]
struct StoragePage {
    chrome: Chrome,
    check_action: String,
    activities_url: String,
    /// The repository's path or URL: shown to partners only, since it names the server's
    /// folders and the customer's internal id.
    location: Option<String>,
    /// Space the customer's backups take in the repository, after deduplication and compression.
    used: String,
    search_url: String,
    archives: Vec<ArchiveRow>,
    check: CheckStatus,
    sort: TableSort,
    can_change: bool,
    notice: Option<(&'static str, &'static str)>,
}

impl StoragePage {
    fn has_encrypted(&self) -> bool {
        self.archives.iter().any(|a| a.encrypted)
    }
}

const ARCHIVE_COLUMNS: &[Column] = &[
    sorting::column("name"),
    sorting::column("workload"),
    sorting::column_desc("points"),
    sorting::column_desc("latest"),
    sorting::column_desc("size"),
    sorting::column_desc("stored"),
];

/// The Backup storage section; `query` is the page's query string (the archives' sort).
pub async fn storage_page(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    notice: &str,
    query: &str,
) -> Result<HttpResponse, WebError> {
    let mut archives = catalog::list_archive_summaries(&state.db, scope).await?;
    let sort = TableSort::from_query(format!("/c/{}/storage", scope.id()), ARCHIVE_COLUMNS, query);
    sort.apply(&mut archives, |column, a, b| {
        let newest = |s: &ArchiveSummary| s.newest.as_ref().map(|p| (p.taken_at, p.bytes_total));
        match column {
            "workload" => {
                workload_label(a.archive.workload).cmp(workload_label(b.archive.workload))
            }
            "points" => a.recovery_points.cmp(&b.recovery_points),
            "latest" => newest(a).map(|n| n.0).cmp(&newest(b).map(|n| n.0)),
            "size" => newest(a).map(|n| n.1).cmp(&newest(b).map(|n| n.1)),
            "stored" => a.bytes_added.cmp(&b.bytes_added),
            _ => sorting::text(&a.archive.display_name, &b.archive.display_name),
        }
    });
    let used = ByteSize::b(archives.iter().map(|a| a.bytes_added).sum()).to_string();
    let latest = queue::latest_job(&state.db, scope.id(), JobKind::Verify).await?;
    ok(&StoragePage {
        chrome: Chrome::new(signed_in, Some(scope), "storage"),
        check_action: format!("/c/{}/storage/check", scope.id()),
        activities_url: format!("/c/{}/activities", scope.id()),
        search_url: format!("/c/{}/storage/search", scope.id()),
        location: signed_in
            .access
            .is_partner()
            .then(|| state.storage.repository_location(scope.id())),
        used,
        archives: archives.into_iter().map(ArchiveRow::of).collect(),
        check: CheckStatus::of(latest),
        sort,
        can_change: scope.can_change(),
        notice: storage_message(notice),
    })
}

/// Check backups now: queue a backup check of the customer (or point at the one pending).
pub async fn check_now(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    customer: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &customer).await?;
    scope.require_change()?;
    let (_, queued_now) =
        queue::enqueue_verify(&state.db, state.clock.as_ref(), scope.id()).await?;
    let notice = if queued_now {
        "check_queued"
    } else {
        "check_pending"
    };
    Ok(see_other(&format!(
        "/c/{}/storage?notice={notice}",
        scope.id()
    )))
}

/// What Activities shows as the subject of a backup check.
pub const CHECK_SUBJECT: &str = "Backup storage";

/// Whether a job kind is a backup check (for Activities).
pub fn is_check(kind: &str) -> bool {
    kind == JobKind::Verify.as_str()
}
