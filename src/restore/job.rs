//! A restore as a job: what was asked (`RestoreRequest`, stored as the job's payload), checks
//! that every id in it belongs to the customer, and the run: the recovery point's selected items
//! resolved from the catalog, the target resolved in Microsoft 365, the mailbox or drive engine
//! run, each item's result recorded as the job's item rows (so Activities shows them live and a
//! resumed job skips what is finished), progress as the job's progress line.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::drive::{self, Collision};
use super::mailbox::{self, FolderMode, MailboxTarget};
use super::place;
use crate::accounts::access::CustomerScope;
use crate::clock::Clock;
use crate::ids::{CustomerId, ItemId, OrgId};
use crate::inventory::entities::{organization, protected_item};
use crate::jobs::entities::{job, job_item};
use crate::jobs::queue::{self, JobOutcome, JobPayload, Lease, NewJob};
use crate::jobs::worker::WorkerContext;
use crate::m365::{TenantClient, TenantId};
use crate::storage::catalog::{
    self, Archive, ArchiveId, CatalogEntry, RecoveryPoint, RecoveryPointId, Workload,
};
use crate::storage::scope::{SystemScope, TenantScope};

/// What an administrator asked to restore, and where to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    pub archive: ArchiveId,
    pub point: RecoveryPointId,
    /// Items or folders of the point, as the catalog names them; `""` is everything.
    pub paths: Vec<String>,
    /// The protected item (a user, group or site of one of the customer's organizations) whose
    /// mailbox or drive receives the items.
    pub target: ItemId,
    pub folders: FolderMode,
    pub collision: Collision,
    /// The console user who asked, for Activities' "Started by" (absent in older payloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// How one item of a restore ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemResult {
    Restored,
    /// There, not a draft, but without some properties (the item's detail says which).
    RestoredWithLoss,
    Skipped,
    Failed,
}

impl ItemResult {
    pub const ALL: [ItemResult; 4] = [
        ItemResult::Restored,
        ItemResult::RestoredWithLoss,
        ItemResult::Skipped,
        ItemResult::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restored => "restored",
            Self::RestoredWithLoss => "restored_with_loss",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Restored => "Restored",
            Self::RestoredWithLoss => "Restored, some properties lost",
            Self::Skipped => "Skipped",
            Self::Failed => "Failed",
        }
    }
}

/// Where the engines report each item and how far they are.
#[async_trait::async_trait]
pub trait RestoreSink: Send + Sync {
    async fn record(&self, path: &str, result: ItemResult, detail: &str);
    fn progress(&self, done: u64, total: u64);
}

/// Why a restore cannot be asked for (shown on the form).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("you do not have permission to restore")]
    Forbidden,
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// The archive and point, when both belong to the scope's customer (and to each other).
pub async fn scoped_point(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    archive: ArchiveId,
    point: RecoveryPointId,
) -> Result<(Archive, RecoveryPoint), RestoreError> {
    let found = catalog::find_archive(db, scope, archive).await;
    let Ok(archive) = found else {
        return Err(RestoreError::NotFound);
    };
    if archive.customer != scope.id() {
        return Err(RestoreError::NotFound);
    }
    let Ok(point) = catalog::find_recovery_point(db, scope, point).await else {
        return Err(RestoreError::NotFound);
    };
    if point.archive != archive.id || point.customer != scope.id() {
        return Err(RestoreError::NotFound);
    }
    Ok((archive, point))
}

/// A protected item of one of the customer's organizations, with its organization.
pub async fn scoped_target(
    db: &DatabaseConnection,
    customer: CustomerId,
    item: ItemId,
) -> Result<(protected_item::Model, organization::Model), RestoreError> {
    let Some(row) = protected_item::Entity::find_by_id(item.0).one(db).await? else {
        return Err(RestoreError::NotFound);
    };
    let Some(org) = organization::Entity::find_by_id(row.org_id)
        .filter(organization::Column::CustomerId.eq(customer.as_uuid()))
        .one(db)
        .await?
    else {
        return Err(RestoreError::NotFound);
    };
    Ok((row, org))
}

/// What kind of item can receive a workload's items.
pub fn accepts(workload: Workload, target_kind: &str) -> bool {
    match workload {
        Workload::Mailbox | Workload::ArchiveMailbox => target_kind == "user",
        Workload::OneDrive => target_kind == "user",
        Workload::Site | Workload::Team => matches!(target_kind, "site" | "group" | "team"),
        Workload::GroupMailbox => false,
    }
}

/// Checks a request against the scope and queues it; answers the job.
pub async fn start_restore(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    scope: &CustomerScope,
    request: RestoreRequest,
) -> Result<job::Model, RestoreError> {
    scope
        .require_change()
        .map_err(|_| RestoreError::Forbidden)?;
    let (archive, point) = scoped_point(db, scope, request.archive, request.point).await?;
    let (target, org) = scoped_target(db, scope.id(), request.target).await?;
    if !accepts(archive.workload, &target.kind) {
        return Err(RestoreError::Invalid(format!(
            "{} cannot receive these items; choose {}.",
            target.display_name,
            match archive.workload {
                Workload::Mailbox | Workload::ArchiveMailbox => "a user with a mailbox",
                Workload::OneDrive => "a user with a OneDrive",
                _ => "a site or group with a document library",
            }
        )));
    }
    if archive.workload == Workload::GroupMailbox {
        return Err(RestoreError::Invalid(
            "Group conversations cannot be restored into Microsoft 365; download them instead."
                .into(),
        ));
    }
    if let FolderMode::NewFolder(name) = &request.folders
        && (name.trim().is_empty() || name.len() > 200 || name.contains('/'))
    {
        return Err(RestoreError::Invalid(
            "The new folder's name must be 1 to 200 characters, without “/”.".into(),
        ));
    }
    if request.paths.is_empty() {
        return Err(RestoreError::Invalid(
            "Choose at least one item to restore.".into(),
        ));
    }
    let entries = selected_entries(db, scope, &point, &request.paths).await?;
    if entries.is_empty() {
        return Err(RestoreError::NotFound);
    }
    let drive_workload = matches!(
        archive.workload,
        Workload::OneDrive | Workload::Site | Workload::Team
    );
    if drive_workload
        && !entries
            .iter()
            .any(|e| place::restorable(archive.workload, e))
    {
        return Err(RestoreError::Invalid(
            if place::channel_threads(&entries) > 0 {
                format!("{CHANNEL_MESSAGES_NOT_RESTORABLE} Download them instead (.zip).")
            } else if archive.workload == Workload::Site {
                "Only files of document libraries go back into SharePoint; list items and item \
                 manifests can be downloaded (.zip)."
                    .into()
            } else {
                "Nothing selected is a file; choose files or folders.".into()
            },
        ));
    }
    let new = NewJob {
        customer: scope.id(),
        org: Some(OrgId(org.id)),
        plan: None,
        payload: JobPayload::Restore {
            request: Box::new(request.clone()),
        },
        unique_key: None,
        // Two restores into one mailbox or drive share its limits: one at a time.
        resource_key: Some(format!("restore:{}", target.id)),
        max_attempts: 3,
    };
    Ok(queue::enqueue(db, clock, new).await?.0)
}

/// Why a team's channel conversations are downloaded, not restored (said on the form, the
/// refusal and the job's summary).
pub const CHANNEL_MESSAGES_NOT_RESTORABLE: &str = "Channel conversations cannot be put back into Teams: Microsoft offers no import of channel messages for backups (its import API only fills new channels during a migration). Each thread is kept as a readable page (HTML) and as Microsoft's JSON.";

/// The catalog entries of `point` the selected paths name: an item itself (and, for a mailbox
/// item, its other copies), or everything under a folder.
pub async fn selected_entries(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    point: &RecoveryPoint,
    paths: &[String],
) -> Result<Vec<CatalogEntry>, RestoreError> {
    let all = catalog::list_items(db, scope, point.id).await?;
    let wanted: Vec<String> = paths
        .iter()
        .map(|p| p.trim_matches('/').to_string())
        .collect();
    let stems: HashSet<&str> = wanted
        .iter()
        .filter_map(|p| p.rsplit_once('.').map(|(stem, _)| stem))
        .collect();
    Ok(all
        .into_iter()
        .filter(|entry| {
            wanted.iter().any(|p| {
                p.is_empty()
                    || entry.path == *p
                    || entry
                        .path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }) || entry
                .path
                .rsplit_once('.')
                .is_some_and(|(stem, _)| stems.contains(stem))
        })
        .collect())
}

/// Records results as the job's item rows and progress as its line (at most once a second).
struct JobSink {
    db: DatabaseConnection,
    clock: crate::clock::SharedClock,
    lease: Lease,
    verb: &'static str,
    last: Mutex<Option<Instant>>,
}

#[async_trait::async_trait]
impl RestoreSink for JobSink {
    async fn record(&self, path: &str, result: ItemResult, detail: &str) {
        use sea_orm::sea_query::OnConflict;
        let row = job_item::ActiveModel {
            job_id: Set(self.lease.job),
            item_id: Set(Uuid::new_v5(&self.lease.job, path.as_bytes())),
            workload: Set(path.to_string()),
            status: Set(result.as_str().into()),
            detail: Set(detail.to_string()),
            finished_at: Set(self.clock.now()),
        };
        let saved = job_item::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    job_item::Column::JobId,
                    job_item::Column::ItemId,
                    job_item::Column::Workload,
                ])
                .update_columns([
                    job_item::Column::Status,
                    job_item::Column::Detail,
                    job_item::Column::FinishedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await;
        if let Err(err) = saved {
            tracing::warn!(job = %self.lease.job, "cannot record a restored item: {err}");
        }
    }

    fn progress(&self, done: u64, total: u64) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if done < total && last.is_some_and(|at| at.elapsed().as_secs() < 1) {
            return;
        }
        *last = Some(Instant::now());
        let line = format!("{} {done} of {total} items", self.verb);
        let (db, lease) = (self.db.clone(), self.lease);
        tokio::spawn(async move {
            let _ = queue::set_progress(&db, lease, &line).await;
        });
    }
}

fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Runs a queued restore.
pub async fn run_restore(
    ctx: &WorkerContext,
    job: &job::Model,
    request: &RestoreRequest,
) -> JobOutcome {
    match run_inner(ctx, job, request).await {
        Ok(outcome) => outcome,
        Err(RestoreError::NotFound) => JobOutcome::failed(
            "The backup or the target is gone (deleted since the restore was asked for).",
        ),
        Err(err) => JobOutcome::Failed {
            error: format!("The restore could not read or record its work: {err}"),
            retryable: true,
        },
    }
}

async fn run_inner(
    ctx: &WorkerContext,
    job: &job::Model,
    request: &RestoreRequest,
) -> Result<JobOutcome, RestoreError> {
    let db = &ctx.db;
    let customer = CustomerId(job.customer_id);
    // The job's own customer: the payload was checked against the signed-in user when queued.
    let scope = SystemScope::worker(customer, "restore");
    let archive = catalog::find_archive(db, &scope, request.archive)
        .await
        .map_err(|_| RestoreError::NotFound)?;
    let point = catalog::find_recovery_point(db, &scope, request.point)
        .await
        .map_err(|_| RestoreError::NotFound)?;
    // The payload was checked when queued; checked again so a row edited in the database
    // cannot reach another customer's backups.
    if archive.customer != customer || point.archive != archive.id {
        return Err(RestoreError::NotFound);
    }
    let (target, org) = scoped_target(db, customer, request.target).await?;
    let Ok(tenant) = org.tenant_id.parse::<TenantId>() else {
        return Ok(JobOutcome::failed(
            "The organization's tenant id is not valid.",
        ));
    };
    let client = ctx.graph.tenant(tenant);
    let finished: HashSet<String> = queue::job_items(db, job.id)
        .await?
        .into_iter()
        .filter(|row| ItemResult::parse(&row.status).is_some_and(|r| r != ItemResult::Failed))
        .map(|row| row.workload)
        .collect();
    let entries: Vec<CatalogEntry> = selected_entries(db, &scope, &point, &request.paths)
        .await?
        .into_iter()
        .collect();
    let sink = JobSink {
        db: db.clone(),
        clock: ctx.clock.clone(),
        lease: Lease::of(job),
        verb: "Restored",
        last: Mutex::new(None),
    };
    match archive.workload {
        Workload::Mailbox | Workload::ArchiveMailbox => {
            let items: Vec<_> = mailbox::plan_items(&entries)
                .into_iter()
                .filter(|item| !finished.contains(item.path()))
                .collect();
            let mailbox_target =
                match resolve_mailbox(&client, &target.graph_id, &request.folders).await {
                    Ok(t) => t,
                    Err(reason) => return Ok(JobOutcome::failed(reason)),
                };
            let summary = mailbox::restore_items(
                &client,
                &ctx.storage,
                &scope,
                point.id,
                items,
                &mailbox_target,
                &sink,
            )
            .await;
            let mut parts = vec![format!(
                "{} restored into {}",
                counted(summary.restored + summary.restored_with_loss, "item"),
                target.display_name
            )];
            if summary.without_import_permission {
                parts.push(format!(
                    "the organization has not granted the mailbox import permission, so {} went through a JSON create (not drafts) and lost {}",
                    counted(summary.restored_with_loss, "message"),
                    "read state, flags, categories and Exchange-only properties"
                ));
            }
            if summary.failed > 0 {
                parts.push(format!("{} failed", counted(summary.failed, "item")));
            }
            if let Some(reason) = summary.stopped {
                parts.push(reason);
            }
            let sentence = format!("{}.", parts.join("; "));
            Ok(if summary.failed > 0 {
                JobOutcome::failed(sentence)
            } else {
                JobOutcome::Succeeded(sentence)
            })
        }
        Workload::OneDrive | Workload::Site | Workload::Team => {
            let files: Vec<_> = drive::plan_files(&entries)
                .into_iter()
                .filter(|f| place::restorable(archive.workload, f))
                .filter(|f| !finished.contains(&f.path))
                .collect();
            let channels = if archive.workload == Workload::Team {
                place::backed_up_channels(&catalog::list_items(db, &scope, point.id).await?)
            } else {
                Vec::new()
            };
            let placed = match place::place_files(
                &client,
                archive.workload,
                &(&target).into(),
                files,
                &channels,
            )
            .await
            {
                Ok(placed) => placed,
                Err(reason) => return Ok(JobOutcome::failed(reason)),
            };
            let under = match &request.folders {
                FolderMode::Original => None,
                FolderMode::NewFolder(name) => Some(name.as_str()),
            };
            let summary = drive::restore_placed(
                &client,
                &ctx.storage,
                &scope,
                point.id,
                placed,
                under,
                request.collision,
                &sink,
            )
            .await;
            let mut parts = vec![format!(
                "{} ({}) restored into {}",
                counted(summary.restored, "file"),
                bytesize::ByteSize::b(summary.bytes),
                target.display_name
            )];
            if summary.skipped > 0 {
                parts.push(format!("{} skipped (already there)", summary.skipped));
            }
            if summary.failed > 0 {
                parts.push(format!("{} failed", counted(summary.failed, "file")));
            }
            let threads = place::channel_threads(&entries);
            if threads > 0 {
                parts.push(format!(
                    "{} not put back (Microsoft offers no import of channel messages for backups; download them from the recovery point as readable HTML and JSON)",
                    counted(threads as u64, "channel thread"),
                ));
            }
            let sentence = format!("{}.", parts.join("; "));
            Ok(if summary.failed > 0 {
                JobOutcome::failed(sentence)
            } else {
                JobOutcome::Succeeded(sentence)
            })
        }
        Workload::GroupMailbox => Ok(JobOutcome::failed(
            "Group conversations cannot be restored into Microsoft 365; download them instead.",
        )),
    }
}

async fn resolve_mailbox(
    client: &TenantClient,
    user_id: &str,
    folders: &FolderMode,
) -> Result<MailboxTarget, String> {
    let mailboxes = client
        .exchange_mailboxes(user_id)
        .await
        .map_err(|e| format!("The target mailbox could not be reached: {e}"))?;
    let mailbox = mailboxes
        .primary_ref(user_id)
        .ok_or_else(|| "The target user has no mailbox Microsoft 365 can reach.".to_string())?;
    Ok(MailboxTarget {
        user_id: user_id.to_string(),
        mailbox,
        folders: folders.clone(),
    })
}

/// A mailbox or drive a restore may go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChoice {
    pub id: ItemId,
    pub name: String,
    pub address: String,
    pub organization: String,
    /// The archive's own item: the original place.
    pub original: bool,
}

/// The active items of the customer's organizations that can receive `archive`'s items, the
/// original first.
pub async fn target_choices(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    archive: &Archive,
) -> Result<Vec<TargetChoice>, RestoreError> {
    use sea_orm::QueryOrder;
    let orgs = organization::Entity::find()
        .filter(organization::Column::CustomerId.eq(scope.id().as_uuid()))
        .all(db)
        .await?;
    let org_names: std::collections::HashMap<Uuid, String> = orgs
        .iter()
        .map(|o| (o.id, o.display_name.clone()))
        .collect();
    let rows = protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.is_in(orgs.iter().map(|o| o.id)))
        .filter(protected_item::Column::State.eq("active"))
        .order_by_asc(protected_item::Column::DisplayName)
        .all(db)
        .await?;
    let mut choices: Vec<TargetChoice> = rows
        .into_iter()
        .filter(|row| accepts(archive.workload, &row.kind))
        .map(|row| TargetChoice {
            id: ItemId(row.id),
            original: row.id == archive.item.0,
            organization: org_names.get(&row.org_id).cloned().unwrap_or_default(),
            name: row.display_name,
            address: row.address,
        })
        .collect();
    choices.sort_by_key(|c| !c.original);
    Ok(choices)
}
