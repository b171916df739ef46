//! The job queue in the database, shared by every worker process.
//!
//! - A job has a typed kind and payload (`JobPayload`). Work that must be queued once (an
//!   organization's sync, a plan's run, a customer's check) carries a *unique key* while it is
//!   queued or running: the database's unique index makes a second enqueue, from this node or
//!   another, find the pending job instead of adding one.
//! - A worker claims a job under a lease it renews while it runs. The claim increments
//!   `attempts`, which is also the claim's fencing token: renewing, reporting progress and
//!   finishing all require the row to still carry the attempt the worker claimed, so a worker
//!   whose lease lapsed (and whose job another worker took) can no longer change it.
//! - A worker claims as many jobs as it has free slots in one go. PostgreSQL does it in one
//!   statement whose candidates are locked with `FOR UPDATE SKIP LOCKED`, so concurrent workers
//!   never queue up behind one row; on SQLite the conditional UPDATE alone decides.
//! - Jobs name the resource they occupy (an organization's directory, a plan's items, a
//!   customer's repository); two jobs of one resource never run at once (the database's
//!   running-resource index enforces it), jobs of different resources do. Among claimable jobs,
//!   the customer with the fewest running jobs goes first.
//! - A failure that may pass (throttling, an unreachable storage) is queued again with backoff
//!   and a not-before time, up to the job's attempt limit; a lease that lapsed that often fails
//!   the job instead of running it forever.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::entities::{job, job_item};
use crate::accounts::access::CustomerScope;
use crate::clock::Clock;
use crate::ids::{CustomerId, JobId, OrgId, PlanId};
use crate::inventory::entities::organization;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    DirectorySync,
    /// A check of a customer's backup storage (`storage::verify`); names no organization.
    Verify,
    /// A protection plan's run: every item's workloads backed up.
    PlanRun,
    /// A plan's retention rule applied to its archives, after each run.
    Retention,
    /// Space of deleted recovery points reclaimed in a customer's repository.
    Prune,
    /// Items of a recovery point put back into a mailbox or drive (`restore::job`).
    Restore,
}

impl JobKind {
    pub const ALL: [JobKind; 6] = [
        JobKind::DirectorySync,
        JobKind::Verify,
        JobKind::PlanRun,
        JobKind::Retention,
        JobKind::Prune,
        JobKind::Restore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::DirectorySync => "directory_sync",
            JobKind::Verify => "verify",
            JobKind::PlanRun => "plan_run",
            JobKind::Retention => "retention",
            JobKind::Prune => "prune",
            JobKind::Restore => "restore",
        }
    }

    pub fn label(kind: &str) -> &'static str {
        match Self::parse(kind) {
            Some(JobKind::DirectorySync) => "Directory sync",
            Some(JobKind::Verify) => "Backup check",
            Some(JobKind::PlanRun) => "Backup",
            Some(JobKind::Retention) => "Retention",
            Some(JobKind::Prune) => "Prune",
            Some(JobKind::Restore) => "Restore",
            None => "Job",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    pub fn is_pending(status: &str) -> bool {
        status == JobStatus::Queued.as_str() || status == JobStatus::Running.as_str()
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// Why a plan run was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    Schedule,
    RunNow,
}

/// What a job works on, stored as JSON in the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobPayload {
    DirectorySync {
        org: OrgId,
    },
    Verify,
    PlanRun {
        plan: PlanId,
        trigger: RunTrigger,
    },
    Retention {
        plan: PlanId,
    },
    Prune,
    Restore {
        request: Box<crate::restore::job::RestoreRequest>,
    },
}

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::DirectorySync { .. } => JobKind::DirectorySync,
            JobPayload::Verify => JobKind::Verify,
            JobPayload::PlanRun { .. } => JobKind::PlanRun,
            JobPayload::Retention { .. } => JobKind::Retention,
            JobPayload::Prune => JobKind::Prune,
            JobPayload::Restore { .. } => JobKind::Restore,
        }
    }

    /// The payload of a stored job; rows queued before payloads existed are read from their kind.
    pub fn of(job: &job::Model) -> Option<JobPayload> {
        if let Some(payload) = job.payload.as_deref() {
            return serde_json::from_str(payload).ok();
        }
        match JobKind::parse(&job.kind)? {
            JobKind::DirectorySync => Some(JobPayload::DirectorySync {
                org: OrgId(job.org_id?),
            }),
            JobKind::Verify => Some(JobPayload::Verify),
            JobKind::Prune => Some(JobPayload::Prune),
            JobKind::PlanRun | JobKind::Retention | JobKind::Restore => None,
        }
    }
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub customer: CustomerId,
    pub org: Option<OrgId>,
    pub plan: Option<PlanId>,
    pub payload: JobPayload,
    pub unique_key: Option<String>,
    pub resource_key: Option<String>,
    pub max_attempts: i32,
}

/// Attempts a job gets unless its kind says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

impl NewJob {
    pub fn sync(org: &organization::Model) -> NewJob {
        NewJob {
            customer: CustomerId(org.customer_id),
            org: Some(OrgId(org.id)),
            plan: None,
            payload: JobPayload::DirectorySync { org: OrgId(org.id) },
            unique_key: Some(format!("sync:{}", org.id)),
            resource_key: Some(format!("directory:{}", org.id)),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    pub fn verify(customer: CustomerId) -> NewJob {
        NewJob {
            customer,
            org: None,
            plan: None,
            payload: JobPayload::Verify,
            unique_key: Some(format!("verify:{customer}")),
            resource_key: Some(format!("repository:{customer}")),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// A plan's run, queued once however often the schedule and Run now ask while it is pending.
    /// Plans hold disjoint items, so runs of different plans run side by side.
    pub fn plan_run(customer: CustomerId, org: OrgId, plan: PlanId, trigger: RunTrigger) -> NewJob {
        NewJob {
            customer,
            org: Some(org),
            plan: Some(plan),
            payload: JobPayload::PlanRun { plan, trigger },
            unique_key: Some(format!("plan:{plan}")),
            resource_key: Some(format!("plan:{plan}")),
            max_attempts: 5,
        }
    }

    pub fn retention(customer: CustomerId, org: OrgId, plan: PlanId) -> NewJob {
        NewJob {
            customer,
            org: Some(org),
            plan: Some(plan),
            payload: JobPayload::Retention { plan },
            unique_key: Some(format!("retention:{plan}")),
            resource_key: Some(format!("repository:{customer}")),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    pub fn prune(customer: CustomerId) -> NewJob {
        NewJob {
            customer,
            org: None,
            plan: None,
            payload: JobPayload::Prune,
            unique_key: Some(format!("prune:{customer}")),
            resource_key: Some(format!("repository:{customer}")),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    fn row(&self, id: uuid::Uuid, now: DateTime<Utc>) -> job::ActiveModel {
        job::ActiveModel {
            id: Set(id),
            kind: Set(self.payload.kind().as_str().into()),
            customer_id: Set(self.customer.as_uuid()),
            org_id: Set(self.org.map(|o| o.0)),
            status: Set(JobStatus::Queued.as_str().into()),
            queued_at: Set(now),
            started_at: Set(None),
            finished_at: Set(None),
            lease_until: Set(None),
            attempts: Set(0),
            progress: Set(None),
            summary: Set(None),
            error: Set(None),
            payload: Set(serde_json::to_string(&self.payload).ok()),
            unique_key: Set(self.unique_key.clone()),
            not_before: Set(None),
            max_attempts: Set(Ord::max(self.max_attempts, 1)),
            resource_key: Set(self.resource_key.clone()),
            plan_id: Set(self.plan.map(|p| p.0)),
        }
    }
}

/// `ON CONFLICT DO NOTHING` without a target: the only constraint a new row can meet is the
/// unique key (ids are random). Naming the target would make SQLite match it against the schema
/// a pooled connection read before the migration that added the index, and fail.
fn any_conflict() -> sea_orm::sea_query::OnConflict {
    sea_orm::sea_query::OnConflict::new()
        .do_nothing()
        .to_owned()
}

/// Queues a job, or returns the pending one with the same unique key; `true` when this call
/// queued it.
pub async fn enqueue(
    db: &impl ConnectionTrait,
    clock: &dyn Clock,
    new: NewJob,
) -> Result<(job::Model, bool), sea_orm::DbErr> {
    // Twice: the pending job may finish (and free its key) between our insert and our read.
    for _ in 0..2 {
        let id = JobId::new().0;
        let inserted = job::Entity::insert(new.row(id, clock.now()))
            .on_conflict(any_conflict())
            .try_insert()
            .exec_without_returning(db)
            .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
            let job = job::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or(sea_orm::DbErr::RecordNotInserted)?;
            return Ok((job, true));
        }
        if let Some(key) = &new.unique_key
            && let Some(pending) = pending(db, key).await?
        {
            return Ok((pending, false));
        }
    }
    Err(sea_orm::DbErr::RecordNotInserted)
}

/// Queues many jobs in few statements (a tick with thousands of plans due); jobs whose unique
/// key is pending are skipped. Returns how many were queued.
pub async fn enqueue_many(
    db: &impl ConnectionTrait,
    clock: &dyn Clock,
    jobs: &[NewJob],
) -> Result<u64, sea_orm::DbErr> {
    let now = clock.now();
    let mut queued = 0;
    // Well under SQLite's limit of bound parameters per statement.
    for chunk in jobs.chunks(500) {
        let inserted = job::Entity::insert_many(chunk.iter().map(|j| j.row(JobId::new().0, now)))
            .on_conflict(any_conflict())
            .try_insert()
            .exec_without_returning(db)
            .await?;
        if let sea_orm::TryInsertResult::Inserted(n) = inserted {
            queued += n;
        }
    }
    Ok(queued)
}

/// The queued or running job holding `unique_key`.
pub async fn pending(
    db: &impl ConnectionTrait,
    unique_key: &str,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    job::Entity::find()
        .filter(job::Column::UniqueKey.eq(unique_key))
        .one(db)
        .await
}

/// Queues a directory sync of `org`, or returns the one already queued or running.
pub async fn enqueue_sync(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    org: &organization::Model,
) -> Result<job::Model, sea_orm::DbErr> {
    Ok(enqueue(db, clock, NewJob::sync(org)).await?.0)
}

pub async fn pending_sync(
    db: &DatabaseConnection,
    org_id: uuid::Uuid,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    pending(db, &format!("sync:{org_id}")).await
}

/// Queues a check of the customer's backup storage, or returns the one already queued or running;
/// `true` when this call queued it.
pub async fn enqueue_verify(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    customer: CustomerId,
) -> Result<(job::Model, bool), sea_orm::DbErr> {
    enqueue(db, clock, NewJob::verify(customer)).await
}

pub async fn pending_verify(
    db: &DatabaseConnection,
    customer: CustomerId,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    pending(db, &format!("verify:{customer}")).await
}

/// The customer's most recent job of a kind (queued, running or finished), by time queued.
pub async fn latest_job(
    db: &DatabaseConnection,
    customer: CustomerId,
    kind: JobKind,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    job::Entity::find()
        .filter(job::Column::CustomerId.eq(customer.as_uuid()))
        .filter(job::Column::Kind.eq(kind.as_str()))
        .order_by_desc(job::Column::QueuedAt)
        .one(db)
        .await
}

/// The claim a worker holds: the job and the attempt it claimed (the fencing token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub job: uuid::Uuid,
    pub attempt: i32,
}

impl Lease {
    pub fn of(job: &job::Model) -> Lease {
        Lease {
            job: job.id,
            attempt: job.attempts,
        }
    }
}

/// Queued jobs whose not-before time has come.
fn ready(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(job::Column::Status.eq(JobStatus::Queued.as_str()))
        .add(
            Condition::any()
                .add(job::Column::NotBefore.is_null())
                .add(job::Column::NotBefore.lte(now)),
        )
}

/// Running jobs whose worker died (the lease lapsed) and that have attempts left.
fn lapsed(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(job::Column::Status.eq(JobStatus::Running.as_str()))
        .add(job::Column::LeaseUntil.lt(now))
        .add(Expr::col(job::Column::Attempts).lt(Expr::col(job::Column::MaxAttempts)))
}

/// No other job of the same resource is running. A running job whose lease lapsed still holds
/// its resource: it is the first to be claimed again (or, out of attempts, failed by a tick), so
/// the database's `jobs_running_resource` index never sees two running jobs of one resource.
fn resource_free() -> Condition {
    let other = Alias::new("other_job");
    let resource_busy = Query::select()
        .expr(Expr::val(1))
        .from_as(job::Entity, other.clone())
        .and_where(
            Expr::col((other.clone(), job::Column::ResourceKey))
                .equals((job::Entity, job::Column::ResourceKey)),
        )
        .and_where(
            Expr::col((other.clone(), job::Column::Id))
                .ne(Expr::col((job::Entity, job::Column::Id))),
        )
        .and_where(Expr::col((other, job::Column::Status)).eq(JobStatus::Running.as_str()))
        .to_owned();
    Condition::all().add(Expr::exists(resource_busy).not())
}

/// Jobs a worker may claim at `now`.
fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(Condition::any().add(ready(now)).add(lapsed(now)))
        .add(resource_free())
}

/// How many candidates a claim looks at to pick the least busy customers.
const CLAIM_WINDOW: usize = 16;

/// Claims a job: among the oldest claimable ones, that of the customer with the fewest running
/// jobs. Returns it with `attempts` raised (its fencing token).
pub async fn claim_next(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    lease: Duration,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    Ok(claim_batch(db, clock, lease, 1).await?.pop())
}

/// Claims up to `max` jobs at once (a worker with that many free slots), each of a different
/// resource, the least busy customers first. Each comes back with `attempts` raised (its fencing
/// token).
pub async fn claim_batch(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    lease: Duration,
    max: usize,
) -> Result<Vec<job::Model>, sea_orm::DbErr> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let now = clock.now();
    if db.get_database_backend() == DbBackend::Postgres {
        // A claim that lost a race for a resource to another worker (the running-resource
        // index refused it) finds that resource busy on the next try.
        let mut tries = 0;
        loop {
            match claim_batch_postgres(db, now, lease, max).await {
                Err(err)
                    if tries < 3
                        && matches!(
                            err.sql_err(),
                            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                        ) =>
                {
                    tries += 1;
                }
                result => return result,
            }
        }
    }
    // SQLite has one writer at a time; the conditional UPDATE alone decides who wins.
    let mut claimed = Vec::new();
    while claimed.len() < max {
        match claim_among(db, now, lease).await? {
            Some(job) => claimed.push(job),
            None => break,
        }
    }
    Ok(claimed)
}

/// PostgreSQL claims a batch in one statement, so a claim costs one round trip and no
/// transaction stays open between statements:
/// - `lapsed` and `ready` lock their candidates with `FOR UPDATE SKIP LOCKED`, walking the
///   status index in order (dead workers' jobs first, then the oldest queued), so concurrent
///   workers take different rows instead of queuing behind one;
/// - `one_per_resource` keeps the oldest candidate of each resource;
/// - `ranked` gives each candidate its customer's turn: the customer's running jobs (from the
///   running-only index) plus its place among the customer's candidates, so one big customer's
///   backlog takes turns with the others';
/// - the update takes the `max` best turns and returns the claimed rows.
async fn claim_batch_postgres(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease: Duration,
    max: usize,
) -> Result<Vec<job::Model>, sea_orm::DbErr> {
    use sea_orm::Statement;
    let (running, queued) = (JobStatus::Running.as_str(), JobStatus::Queued.as_str());
    let sql = format!(
        "WITH lapsed AS (
            SELECT j.id, j.customer_id, j.resource_key, j.lease_until AS since
            FROM jobs j
            WHERE j.status = '{running}' AND j.lease_until < $1 AND j.attempts < j.max_attempts
            ORDER BY j.lease_until
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        ), ready AS (
            SELECT j.id, j.customer_id, j.resource_key, j.queued_at AS since
            FROM jobs j
            WHERE j.status = '{queued}' AND (j.not_before IS NULL OR j.not_before <= $1)
              AND NOT EXISTS (
                  SELECT 1 FROM jobs o
                  WHERE o.resource_key = j.resource_key AND o.status = '{running}')
            ORDER BY j.queued_at
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        ), candidates AS (
            SELECT id, customer_id, resource_key, since, 0 AS tier FROM lapsed
            UNION ALL
            SELECT id, customer_id, resource_key, since, 1 AS tier FROM ready
        ), one_per_resource AS (
            SELECT DISTINCT ON (COALESCE(resource_key, id::text)) id, customer_id, since, tier
            FROM candidates
            ORDER BY COALESCE(resource_key, id::text), tier, since
        ), ranked AS (
            SELECT c.id, c.tier, c.since,
                row_number() OVER (PARTITION BY c.customer_id ORDER BY c.tier, c.since)
                + (SELECT count(*) FROM jobs r
                   WHERE r.customer_id = c.customer_id AND r.status = '{running}') AS turn
            FROM one_per_resource c
        ), chosen AS (
            SELECT id FROM ranked ORDER BY turn, tier, since LIMIT $4
        )
        UPDATE jobs
        SET status = '{running}', started_at = $1, lease_until = $2, attempts = jobs.attempts + 1
        FROM chosen
        WHERE jobs.id = chosen.id
        RETURNING jobs.*"
    );
    let window = i64::try_from(Ord::max(CLAIM_WINDOW, 2 * max)).unwrap_or(i64::MAX);
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let mut claimed = job::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [now.into(), (now + lease).into(), window.into(), max.into()],
        ))
        .all(db)
        .await?;
    claimed.sort_by_key(|job| job.queued_at);
    Ok(claimed)
}

/// One claim on SQLite: the candidates, the least busy customer's first, then a conditional
/// update of the first that is still claimable.
async fn claim_among(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    // Jobs of dead workers first (they were claimed before anything still queued), then queued
    // jobs, oldest first: the status and queue-time index serves each without reading the
    // whole queue.
    let mut candidates = Vec::new();
    for (condition, order) in [
        (lapsed(now), job::Column::LeaseUntil),
        (ready(now), job::Column::QueuedAt),
    ] {
        candidates = job::Entity::find()
            .filter(condition.add(resource_free()))
            .order_by_asc(order)
            .limit(CLAIM_WINDOW as u64)
            .all(conn)
            .await?;
        if !candidates.is_empty() {
            break;
        }
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    let customers: Vec<uuid::Uuid> = candidates.iter().map(|c| c.customer_id).collect();
    let running: Vec<(uuid::Uuid, i64)> = job::Entity::find()
        .select_only()
        .column(job::Column::CustomerId)
        .column_as(job::Column::Id.count(), "running")
        .filter(job::Column::CustomerId.is_in(customers))
        .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
        .group_by(job::Column::CustomerId)
        .into_tuple()
        .all(conn)
        .await?;
    let busy = |customer: uuid::Uuid| {
        running
            .iter()
            .find(|(c, _)| *c == customer)
            .map_or(0, |(_, n)| *n)
    };
    let mut order: Vec<&job::Model> = candidates.iter().collect();
    // Stable: within one level of busyness, the oldest first.
    order.sort_by_key(|c| busy(c.customer_id));
    for candidate in order {
        let claimed = job::Entity::update_many()
            .col_expr(
                job::Column::Status,
                Expr::value(JobStatus::Running.as_str()),
            )
            .col_expr(job::Column::StartedAt, Expr::value(Some(now)))
            .col_expr(job::Column::LeaseUntil, Expr::value(Some(now + lease)))
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).add(1),
            )
            .filter(job::Column::Id.eq(candidate.id))
            .filter(job::Column::Attempts.eq(candidate.attempts))
            .filter(claimable(now))
            .exec(conn)
            .await?;
        if claimed.rows_affected == 1 {
            return job::Entity::find_by_id(candidate.id).one(conn).await;
        }
    }
    Ok(None)
}

/// The row as long as it is still this worker's claim.
fn fenced(lease: Lease) -> Condition {
    Condition::all()
        .add(job::Column::Id.eq(lease.job))
        .add(job::Column::Attempts.eq(lease.attempt))
        .add(job::Column::Status.eq(JobStatus::Running.as_str()))
}

/// Extends the lease; `false` when the claim was lost (the job belongs to another worker now).
pub async fn renew_lease(
    db: &DatabaseConnection,
    lease: Lease,
    until: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let renewed = job::Entity::update_many()
        .col_expr(job::Column::LeaseUntil, Expr::value(Some(until)))
        .filter(fenced(lease))
        .exec(db)
        .await?;
    Ok(renewed.rows_affected == 1)
}

pub async fn set_progress(
    db: &DatabaseConnection,
    lease: Lease,
    line: &str,
) -> Result<bool, sea_orm::DbErr> {
    let set = job::Entity::update_many()
        .col_expr(job::Column::Progress, Expr::value(Some(line.to_string())))
        .filter(fenced(lease))
        .exec(db)
        .await?;
    Ok(set.rows_affected == 1)
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Succeeded(String),
    Failed { error: String, retryable: bool },
}

impl JobOutcome {
    pub fn failed(error: impl Into<String>) -> JobOutcome {
        JobOutcome::Failed {
            error: error.into(),
            retryable: false,
        }
    }
}

impl From<Result<String, String>> for JobOutcome {
    fn from(result: Result<String, String>) -> Self {
        match result {
            Ok(summary) => JobOutcome::Succeeded(summary),
            Err(error) => JobOutcome::failed(error),
        }
    }
}

/// The wait before attempt `attempt + 1`: 30 s, 2 min, 8 min… at most an hour.
pub fn backoff(attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 6)).unwrap_or(0);
    Duration::seconds(Ord::min(30 * 4i64.pow(exponent), 3600))
}

/// Records how the claimed attempt ended: done (its unique key freed), or queued again after
/// a backoff when the failure may pass and attempts are left. `false` when the claim was lost
/// meanwhile: the outcome is then discarded, since the job's next owner records its own.
pub async fn finish(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    lease: Lease,
    outcome: JobOutcome,
) -> Result<bool, sea_orm::DbErr> {
    let now = clock.now();
    let update = job::Entity::update_many()
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(fenced(lease));
    // Only a retry needs the row (its attempt limit); the usual ending is one statement.
    if let JobOutcome::Failed {
        error,
        retryable: true,
    } = &outcome
    {
        let Some(current) = job::Entity::find().filter(fenced(lease)).one(db).await? else {
            return Ok(false);
        };
        if current.attempts < current.max_attempts {
            let retry = update
                .col_expr(job::Column::Status, Expr::value(JobStatus::Queued.as_str()))
                .col_expr(
                    job::Column::NotBefore,
                    Expr::value(Some(now + backoff(lease.attempt))),
                )
                .col_expr(
                    job::Column::Error,
                    Expr::value(Some(format!(
                        "{error} (attempt {} of {}; trying again)",
                        current.attempts, current.max_attempts
                    ))),
                );
            return Ok(retry.exec(db).await?.rows_affected == 1);
        }
    }
    let (status, summary, error) = match outcome {
        JobOutcome::Succeeded(summary) => (JobStatus::Succeeded, Some(summary), None),
        JobOutcome::Failed { error, .. } => (JobStatus::Failed, None, Some(error)),
    };
    let done = update
        .col_expr(job::Column::Status, Expr::value(status.as_str()))
        .col_expr(job::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(job::Column::Summary, Expr::value(summary))
        .col_expr(job::Column::Error, Expr::value(error))
        .col_expr(job::Column::UniqueKey, Expr::value(Option::<String>::None));
    Ok(done.exec(db).await?.rows_affected == 1)
}

/// Fails running jobs whose lease lapsed after their last allowed attempt (their worker keeps
/// dying on them), so no job stays "running" for ever. Returns how many.
pub async fn fail_abandoned(
    db: &DatabaseConnection,
    clock: &dyn Clock,
) -> Result<u64, sea_orm::DbErr> {
    let now = clock.now();
    let failed = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Failed.as_str()))
        .col_expr(job::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UniqueKey, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::Error,
            Expr::value(Some(
                "The worker running this job stopped on every attempt, so it was given up. It runs again at the next scheduled time or with Run now.".to_string(),
            )),
        )
        .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
        .filter(job::Column::LeaseUntil.lt(now))
        .filter(Expr::col(job::Column::Attempts).gte(Expr::col(job::Column::MaxAttempts)))
        .exec(db)
        .await?;
    Ok(failed.rows_affected)
}

/// One of the customer's jobs; another customer's is not found.
pub async fn find_job(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    id: JobId,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    job::Entity::find_by_id(id.0)
        .filter(job::Column::CustomerId.eq(scope.id().as_uuid()))
        .one(db)
        .await
}

/// The per-item outcomes of a plan run, by item name order of recording.
pub async fn job_items(
    db: &impl ConnectionTrait,
    job: uuid::Uuid,
) -> Result<Vec<job_item::Model>, sea_orm::DbErr> {
    job_item::Entity::find()
        .filter(job_item::Column::JobId.eq(job))
        .order_by_asc(job_item::Column::FinishedAt)
        .all(db)
        .await
}

/// A customer's jobs, newest first, for Activities.
pub async fn jobs_of_customer(
    db: &DatabaseConnection,
    customer: uuid::Uuid,
    limit: u64,
) -> Result<Vec<job::Model>, sea_orm::DbErr> {
    job::Entity::find()
        .filter(job::Column::CustomerId.eq(customer))
        .order_by_desc(job::Column::QueuedAt)
        .limit(limit)
        .all(db)
        .await
}

/// What Activities lists: a page of a customer's jobs, newest first, optionally of one kind and
/// status; with the number of jobs that match.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub kind: Option<JobKind>,
    pub status: Option<JobStatus>,
}

pub async fn jobs_page(
    db: &DatabaseConnection,
    customer: CustomerId,
    filter: &JobFilter,
    page: u64,
    page_size: u64,
) -> Result<(Vec<job::Model>, u64), sea_orm::DbErr> {
    use sea_orm::PaginatorTrait;
    let mut select = job::Entity::find().filter(job::Column::CustomerId.eq(customer.as_uuid()));
    if let Some(kind) = filter.kind {
        select = select.filter(job::Column::Kind.eq(kind.as_str()));
    }
    if let Some(status) = filter.status {
        select = select.filter(job::Column::Status.eq(status.as_str()));
    }
    let total = select.clone().count(db).await?;
    let jobs = select
        .order_by_desc(job::Column::QueuedAt)
        .order_by_desc(job::Column::Id)
        .offset(page.saturating_mul(page_size))
        .limit(page_size)
        .all(db)
        .await?;
    Ok((jobs, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_at_an_hour() {
        assert_eq!(backoff(1), Duration::seconds(30));
        assert_eq!(backoff(2), Duration::seconds(120));
        assert_eq!(backoff(3), Duration::seconds(480));
        assert_eq!(backoff(50), Duration::seconds(3600));
    }

    #[test]
    fn payloads_round_trip_and_name_their_kind() {
        let plan = PlanId::new();
        let payload = JobPayload::PlanRun {
            plan,
            trigger: RunTrigger::RunNow,
        };
        let text = serde_json::to_string(&payload).unwrap();
        assert_eq!(serde_json::from_str::<JobPayload>(&text).unwrap(), payload);
        assert_eq!(payload.kind(), JobKind::PlanRun);
    }
}
