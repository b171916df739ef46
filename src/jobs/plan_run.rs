//! A plan's run and what follows it. A run backs up each of the plan's items' workloads with
//! the workload's runner, several Microsoft 365 resources at once but one backup per resource
//! at a time, and records each one's outcome as it ends, so a run resumed after a crash, or
//! retried after a failure that may pass, skips what is finished. After the run the
//! plan's retention is queued; prune reclaims the space of removed points on a tick.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};

use super::entities::{job, job_item};
use super::queue::{self, JobOutcome, Lease, NewJob, RunTrigger};
use super::throttling::{ThrottleRecorder, ThrottleWatch};
use super::worker::WorkerContext;
use crate::backup::{self, BackupError, BackupReport, BackupServices, BackupTarget, ProgressSink};
use crate::clock::Clock;
use crate::ids::{CustomerId, ItemId, OrgId, PlanId};
use crate::inventory::entities::organization;
use crate::inventory::failure::SyncFailure;
use crate::jobs::backup_check::workload_label;
use crate::m365::TenantId;
use crate::plans::{self, Plan, PlanTarget};
use crate::storage::catalog::{self, Workload};
use crate::storage::{PruneSettings, SystemScope, retention};

/// How one item's workload ended in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    BackedUp,
    /// No runner for this workload has landed yet; not a failure, not retried.
    NotSupported,
    /// Microsoft 365 has nothing to back up here (no mailbox, an archive the API cannot reach).
    Unavailable,
    Failed,
}

impl ItemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::BackedUp => "backed_up",
            ItemOutcome::NotSupported => "not_supported",
            ItemOutcome::Unavailable => "unavailable",
            ItemOutcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ItemOutcome::BackedUp,
            ItemOutcome::NotSupported,
            ItemOutcome::Unavailable,
            ItemOutcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            ItemOutcome::BackedUp => "Backed up",
            ItemOutcome::NotSupported => "Not supported yet",
            ItemOutcome::Unavailable => "Nothing to back up",
            ItemOutcome::Failed => "Failed",
        }
    }

    /// Finished for good: a resumed run does not do it again.
    fn is_final(self) -> bool {
        self != ItemOutcome::Failed
    }
}

/// Run now: queues the plan's run, or returns the one already queued or running (a plan is
/// never run twice at once); `true` when this call queued it.
pub async fn run_now(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    plan: &Plan,
) -> Result<(job::Model, bool), sea_orm::DbErr> {
    queue::enqueue(
        db,
        clock,
        NewJob::plan_run(plan.customer, plan.org, plan.id, RunTrigger::RunNow),
    )
    .await
}

/// Microsoft 365 resources one plan run backs up side by side. Each resource (a mailbox, a
/// drive, a site, a team) has its own request limits at Microsoft, which one backup already
/// fills (four concurrent requests per mailbox), so its workloads go one after the other; work
/// on different resources overlaps.
pub const ITEMS_AT_ONCE: usize = 4;

/// The Microsoft 365 resource a target's backup draws on: a user's mailbox and archive share
/// the mailbox's request limits, a group's mailbox is its own, drives, sites and teams theirs.
pub fn resource_of(target: &PlanTarget) -> String {
    let family = match target.workload {
        Workload::Mailbox | Workload::ArchiveMailbox | Workload::GroupMailbox => "mailbox",
        Workload::OneDrive => "drive",
        Workload::Site => "site",
        Workload::Team => "team",
    };
    format!("{family}:{}", target.item.graph_id)
}

/// The indices of `to_do` in `targets` grouped by resource, each group in the order given,
/// groups in the order of their first target.
fn by_resource(targets: &[PlanTarget], to_do: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: std::collections::HashMap<String, usize> = Default::default();
    for &index in to_do {
        let at = *group_of
            .entry(resource_of(&targets[index]))
            .or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
        groups[at].push(index);
    }
    groups
}

/// The one place a plan run calls a workload's runner.
async fn back_up_target(
    services: &BackupServices,
    target: &BackupTarget,
    progress: &dyn ProgressSink,
) -> Result<BackupReport, BackupError> {
    backup::back_up(services, target, progress).await
}

/// Stores a runner's progress as the job's progress line, at most once a second.
/// Every report also goes to the job's live watchers (`progress::hub`), unthrottled.
struct JobProgress {
    db: DatabaseConnection,
    lease: Lease,
    label: String,
    last: Mutex<Option<Instant>>,
    target_index: u64,
    target_total: u64,
}

impl JobProgress {
    fn live(&self, progress: &backup::Progress) -> super::progress::LiveProgress {
        super::progress::LiveProgress {
            label: self.label.clone(),
            target_index: self.target_index,
            target_total: self.target_total,
            items_done: progress.items_done,
            items_total: progress.items_total,
            bytes: progress.bytes_fetched,
            current: progress.current.clone(),
            throttled_until: progress.throttled_until,
        }
    }
}

impl JobProgress {
    /// A target begins: its watchers see it before its runner reports anything.
    fn report_start(&self) {
        super::progress::hub().publish(self.lease.job, self.live(&backup::Progress::default()));
    }
}

impl ProgressSink for JobProgress {
    fn report(&self, progress: &backup::Progress) {
        super::progress::hub().publish(self.lease.job, self.live(progress));
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed().as_secs() < 1) {
            return;
        }
        *last = Some(Instant::now());
        let line = format!(
            "{}: {} items written, {} read",
            self.label,
            progress.items_done,
            bytesize::ByteSize::b(progress.bytes_fetched)
        );
        let (db, lease) = (self.db.clone(), self.lease);
        tokio::spawn(async move {
            let _ = queue::set_progress(&db, lease, &line).await;
        });
    }
}

async fn record_item(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    job: uuid::Uuid,
    target: &PlanTarget,
    outcome: ItemOutcome,
    detail: String,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::OnConflict;
    job_item::Entity::insert(job_item::ActiveModel {
        job_id: Set(job),
        item_id: Set(target.item.id),
        workload: Set(target.workload.as_str().into()),
        status: Set(outcome.as_str().into()),
        detail: Set(detail),
        finished_at: Set(clock.now()),
    })
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
    .exec_without_returning(db)
    .await?;
    Ok(())
}

fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Runs a plan: every target not finished by an earlier attempt of this job.
pub async fn run_plan(
    ctx: &WorkerContext,
    job: &job::Model,
    plan_id: PlanId,
    trigger: RunTrigger,
) -> JobOutcome {
    match run_plan_inner(ctx, job, plan_id, trigger).await {
        Ok(outcome) => outcome,
        Err(err) => JobOutcome::Failed {
            error: format!("The backup could not read or record its work: {err}"),
            retryable: true,
        },
    }
}

async fn run_plan_inner(
    ctx: &WorkerContext,
    job: &job::Model,
    plan_id: PlanId,
    trigger: RunTrigger,
) -> Result<JobOutcome, sea_orm::DbErr> {
    let db = &ctx.db;
    let Some(plan) = plans::plan_for_run(db, plan_id).await? else {
        return Ok(JobOutcome::Succeeded(
            "The plan was deleted before it ran; nothing was backed up.".into(),
        ));
    };
    if !plan.enabled && trigger == RunTrigger::Schedule {
        return Ok(JobOutcome::Succeeded(
            "The plan is disabled; nothing was backed up.".into(),
        ));
    }
    let Some(org) = organization::Entity::find_by_id(plan.org.0).one(db).await? else {
        return Ok(JobOutcome::Succeeded(
            "The organization was removed; nothing was backed up.".into(),
        ));
    };
    let Ok(tenant) = org.tenant_id.parse::<TenantId>() else {
        return Ok(JobOutcome::failed(
            "The organization's tenant id is not valid.",
        ));
    };
    let targets = plans::plan_targets(db, &plan, false).await?;
    let finished: HashSet<(uuid::Uuid, String)> = queue::job_items(db, job.id)
        .await?
        .into_iter()
        .filter(|row| ItemOutcome::parse(&row.status).is_some_and(ItemOutcome::is_final))
        .map(|row| (row.item_id, row.workload))
        .collect();
    // Microsoft's throttling of what this run reads is kept with the job as it happens.
    let throttling = ThrottleRecorder::start(
        db.clone(),
        &ctx.graph,
        ThrottleWatch {
            job: job.id,
            customer: plan.customer,
            org: plan.org,
            tenant,
            mailboxes: targets
                .iter()
                .filter(|t| {
                    matches!(
                        t.workload,
                        Workload::Mailbox | Workload::ArchiveMailbox | Workload::GroupMailbox
                    )
                })
                .map(|t| (t.item.graph_id.clone(), t.item.display_name.clone()))
                .collect(),
            files: targets.iter().any(|t| {
                matches!(
                    t.workload,
                    Workload::OneDrive | Workload::Site | Workload::Team
                )
            }),
        },
    );
    let services = BackupServices {
        graph: ctx.graph.clone(),
        storage: ctx.storage.clone(),
        clock: ctx.clock.clone(),
    };
    let lease = Lease::of(job);
    let started = Instant::now();
    let total = targets.len();
    let retry_may_help = AtomicBool::new(false);
    let lease_lost = AtomicBool::new(false);
    let to_do: Vec<usize> = (0..targets.len())
        .filter(|&i| {
            let t = &targets[i];
            !finished.contains(&(t.item.id, t.workload.as_str().to_string()))
        })
        .collect();
    // One Microsoft 365 resource at a time (its own request limits are the ceiling), up to
    // `ITEMS_AT_ONCE` resources side by side.
    let (plan, services, targets_ref, retry_flag) = (&plan, &services, &targets, &retry_may_help);
    let back_up_one = move |index: usize| {
        let target = &targets_ref[index];
        async move {
            let label = format!(
                "{} ({}), {} of {total}",
                target.item.display_name,
                workload_label(target.workload),
                index + 1
            );
            if !queue::set_progress(db, lease, &format!("Backing up {label}")).await? {
                return Ok(false);
            }
            let backup_target = BackupTarget {
                customer: plan.customer,
                org: plan.org,
                tenant,
                item: ItemId(target.item.id),
                graph_id: target.item.graph_id.clone(),
                workload: target.workload,
                display_name: target.item.display_name.clone(),
                encrypted_repository: plan.encrypted_repository,
            };
            let sink = JobProgress {
                db: db.clone(),
                lease,
                label,
                last: Mutex::new(None),
                target_index: index as u64,
                target_total: total as u64,
            };
            sink.report_start();
            let (outcome, detail) = match back_up_target(services, &backup_target, &sink).await {
                Ok(report) => {
                    let point = &report.outcome.recovery_point;
                    let failed = report.outcome.failed.len();
                    let mut detail = format!(
                        "Recovery point {}: {} items, {} read, {} unchanged",
                        point.seq, point.item_count, report.outcome.fetched, report.outcome.reused
                    );
                    if failed > 0 {
                        detail
                            .push_str(&format!(", {} could not be read", counted(failed, "item")));
                    }
                    (ItemOutcome::BackedUp, detail)
                }
                Err(BackupError::Unsupported(_)) => (
                    ItemOutcome::NotSupported,
                    format!(
                        "Backing up {} is not supported yet",
                        workload_label(target.workload)
                    ),
                ),
                Err(BackupError::Unavailable(reason)) => (ItemOutcome::Unavailable, reason),
                Err(BackupError::Graph(err)) => {
                    if err.is_retryable() {
                        retry_flag.store(true, Ordering::Relaxed);
                    }
                    // Recorded with its cause and Microsoft's code and request id, so the job's
                    // page can say in plain words what happened and keep the facts for support.
                    let failure = SyncFailure::of(&crate::inventory::InventoryError::Graph(err));
                    (ItemOutcome::Failed, failure.encode())
                }
                Err(err) => {
                    if err.is_retryable() {
                        retry_flag.store(true, Ordering::Relaxed);
                    }
                    (ItemOutcome::Failed, err.to_string())
                }
            };
            record_item(db, ctx.clock.as_ref(), job.id, target, outcome, detail).await?;
            Ok::<bool, sea_orm::DbErr>(true)
        }
    };
    futures::stream::iter(by_resource(&targets, &to_do))
        .map(|group: Vec<usize>| {
            let (back_up_one, lease_lost) = (&back_up_one, &lease_lost);
            async move {
                for index in group {
                    if lease_lost.load(Ordering::Relaxed) {
                        break;
                    }
                    if !back_up_one(index).await? {
                        // Another worker owns the job now: leave the rest to it.
                        lease_lost.store(true, Ordering::Relaxed);
                    }
                }
                Ok::<(), sea_orm::DbErr>(())
            }
        })
        .buffer_unordered(ITEMS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    throttling.finish().await;
    if lease_lost.load(Ordering::Relaxed) {
        return Ok(JobOutcome::failed("The job's lease was lost."));
    }
    let retry_may_help = retry_may_help.load(Ordering::Relaxed);
    let rows = queue::job_items(db, job.id).await?;
    let count = |o: ItemOutcome| rows.iter().filter(|r| r.status == o.as_str()).count();
    let (done, unsupported, unavailable, failed) = (
        count(ItemOutcome::BackedUp),
        count(ItemOutcome::NotSupported),
        count(ItemOutcome::Unavailable),
        count(ItemOutcome::Failed),
    );
    // Search follows the new backups; the index is rebuildable, so a failure is only logged.
    if done > 0
        && let Err(err) =
            crate::restore::search::update_index(&ctx.storage, &ctx.search, plan.customer).await
    {
        tracing::warn!(customer = %plan.customer, "search index not updated: {err}");
    }
    plans::record_run(
        db,
        plan.id,
        ctx.clock.now(),
        done as u64,
        started.elapsed().as_secs() as i64,
    )
    .await?;
    queue::enqueue(
        db,
        ctx.clock.as_ref(),
        NewJob::retention(plan.customer, plan.org, plan.id),
    )
    .await?;
    let mut parts = vec![format!("{} backed up", counted(done, "item"))];
    if unsupported > 0 {
        let workloads: Vec<&str> = rows
            .iter()
            .filter(|r| r.status == ItemOutcome::NotSupported.as_str())
            .filter_map(|r| r.workload.parse::<Workload>().ok())
            .map(workload_label)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        parts.push(format!(
            "{unsupported} not supported yet ({})",
            workloads.join(", ")
        ));
    }
    if unavailable > 0 {
        parts.push(format!("{unavailable} with nothing to back up"));
    }
    if total == 0 {
        parts = vec!["The plan has no active items to back up".into()];
    }
    if failed > 0 {
        parts.push(format!("{failed} failed"));
        return Ok(JobOutcome::Failed {
            error: format!("{}.", parts.join(", ")),
            retryable: retry_may_help,
        });
    }
    Ok(JobOutcome::Succeeded(format!("{}.", parts.join(", "))))
}

/// Applies a plan's retention rule to the archives of its items' workloads.
pub async fn apply_plan_retention(ctx: &WorkerContext, plan_id: PlanId) -> JobOutcome {
    let plan = match plans::plan_for_run(&ctx.db, plan_id).await {
        Ok(Some(plan)) => plan,
        Ok(None) => return JobOutcome::Succeeded("The plan was deleted; nothing to do.".into()),
        Err(err) => return database_failure(err),
    };
    let targets = match plans::plan_targets(&ctx.db, &plan, true).await {
        Ok(targets) => targets,
        Err(err) => return database_failure(err),
    };
    let wanted: HashSet<(uuid::Uuid, Workload)> =
        targets.iter().map(|t| (t.item.id, t.workload)).collect();
    let scope = SystemScope::worker(plan.customer, "retention");
    let archives = match catalog::list_archives(&ctx.db, &scope).await {
        Ok(archives) => archives,
        Err(err) => return storage_failure(err),
    };
    let (mut checked, mut removed, mut kept) = (0, 0, 0);
    // A plan's retention applies to the archives in its repository: an item that moved between
    // an encrypted and a plain plan left its older archive in the other repository, as it was.
    for archive in archives.into_iter().filter(|a| {
        a.org == plan.org
            && a.encrypted_repository == plan.encrypted_repository
            && wanted.contains(&(a.item.0, a.workload))
    }) {
        match retention::apply_retention(&ctx.storage, &scope, archive.id, plan.retention).await {
            Ok(report) => {
                checked += 1;
                removed += report.removed.len();
                kept += report.kept.len();
            }
            Err(err) => return storage_failure(err),
        }
    }
    JobOutcome::Succeeded(if checked == 0 {
        format!(
            "No backups yet to apply retention to ({}).",
            retention_words(&plan)
        )
    } else {
        format!(
            "{} removed, {} kept in {} ({}).",
            counted(removed, "recovery point"),
            kept,
            counted(checked, "archive"),
            retention_words(&plan)
        )
    })
}

fn retention_words(plan: &Plan) -> String {
    plan.retention_sentence().to_lowercase()
}

/// Reclaims the space of removed recovery points in the customer's repositories (its own and
/// its encrypted plans').
pub async fn prune_customer(ctx: &WorkerContext, customer: CustomerId) -> JobOutcome {
    let scope = SystemScope::worker(customer, "prune");
    match catalog::list_archives(&ctx.db, &scope).await {
        Ok(archives) if archives.is_empty() => {
            return JobOutcome::Succeeded("No backups, nothing to prune.".into());
        }
        Ok(_) => {}
        Err(err) => return storage_failure(err),
    }
    match retention::prune(&ctx.storage, customer, PruneSettings::default()).await {
        Ok(report) => JobOutcome::Succeeded(format!(
            "{} reclaimed: {} unused and {} repacked, {} packs left.",
            bytesize::ByteSize::b(report.bytes_reclaimed),
            counted(report.unused_packs as usize, "pack"),
            report.repacked_packs,
            report.packs_after
        )),
        Err(err) => storage_failure(err),
    }
}

fn database_failure(err: sea_orm::DbErr) -> JobOutcome {
    JobOutcome::Failed {
        error: format!("The database could not be read: {err}"),
        retryable: true,
    }
}

fn storage_failure(err: crate::storage::StorageError) -> JobOutcome {
    JobOutcome::Failed {
        retryable: err.is_retryable(),
        error: err.to_string(),
    }
}

/// Queues the daily run of every enabled plan whose time has come, and moves each plan's next
/// run to its start time tomorrow (after downtime, a plan that missed several runs runs once).
/// Moving the times and queuing the runs commit together, and only the node whose update moved
/// a plan queues its run, so nodes ticking at once queue each run once. Returns how many runs
/// were queued.
pub async fn enqueue_due_plans(
    db: &DatabaseConnection,
    clock: &dyn Clock,
) -> Result<u64, sea_orm::DbErr> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, QueryFilter, QuerySelect, TransactionTrait};

    use crate::plans::entities::plan;
    use crate::plans::schedule;

    let now = clock.now();
    let due: Vec<(uuid::Uuid, i32)> = plan::Entity::find()
        .select_only()
        .column(plan::Column::Id)
        .column(plan::Column::StartMinute)
        .filter(plan::Column::Enabled.eq(true))
        .filter(plan::Column::NextRunAt.lte(now))
        .into_tuple()
        .all(db)
        .await?;
    // One transaction for the whole tick: one commit however many plans are due. A node
    // ticking at the same moment waits on the rows this one moved, then finds them no longer due.
    // Each chunk is one UPDATE whose CASE gives every plan its next start from its own minute of
    // the day, and one INSERT of the runs: a few dozen statements for 10,000 plans rather than
    // one per distinct start minute.
    let txn = db.begin().await?;
    let mut queued = 0;
    for chunk in due.chunks(500) {
        let minutes: std::collections::BTreeSet<i32> =
            chunk.iter().map(|(_, minute)| *minute).collect();
        let mut next = sea_orm::sea_query::CaseStatement::new();
        for minute in minutes {
            next = next.case(
                plan::Column::StartMinute.eq(minute),
                Expr::value(schedule::next_run_after(minute, now)),
            );
        }
        let next = next.finally(Expr::col(plan::Column::NextRunAt));
        let moved = plan::Entity::update_many()
            .col_expr(plan::Column::NextRunAt, next.into())
            .filter(plan::Column::Id.is_in(chunk.iter().map(|(id, _)| *id)))
            .filter(plan::Column::Enabled.eq(true))
            .filter(plan::Column::NextRunAt.lte(now))
            .exec_with_returning(&txn)
            .await?;
        let runs: Vec<NewJob> = moved
            .iter()
            .map(|p| {
                NewJob::plan_run(
                    CustomerId(p.customer_id),
                    OrgId(p.org_id),
                    PlanId(p.id),
                    RunTrigger::Schedule,
                )
            })
            .collect();
        queued += queue::enqueue_many(&txn, clock, &runs).await?;
    }
    txn.commit().await?;
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::entities::protected_item;

    fn target(graph_id: &str, workload: Workload) -> PlanTarget {
        let at = chrono::Utc::now();
        PlanTarget {
            item: protected_item::Model {
                id: uuid::Uuid::new_v4(),
                org_id: uuid::Uuid::nil(),
                kind: "user".into(),
                graph_id: graph_id.into(),
                display_name: graph_id.into(),
                address: String::new(),
                detail: String::new(),
                state: "active".into(),
                has_mailbox: Some(true),
                has_drive: Some(true),
                first_seen_at: at,
                changed_at: at,
                inactive_since: None,
                checked_at: None,
                check_error: None,
                directory_hints: None,
            },
            workload,
        }
    }

    #[test]
    fn a_users_mailbox_and_archive_share_one_resource_and_run_in_order() {
        let targets = [
            target("ann", Workload::Mailbox),
            target("ann", Workload::ArchiveMailbox),
            target("ann", Workload::OneDrive),
            target("bob", Workload::Mailbox),
            target("bob", Workload::ArchiveMailbox),
        ];
        let shape = by_resource(&targets, &[0, 1, 2, 3, 4]);
        // Ann's mailbox then archive, one after the other; her drive and Bob's mailbox beside.
        assert_eq!(shape, vec![vec![0, 1], vec![2], vec![3, 4]]);
        assert_eq!(resource_of(&targets[1]), "mailbox:ann");
        assert_eq!(resource_of(&targets[2]), "drive:ann");
    }
}
