//! The job queue in the database. A job is claimed by flipping its status with a conditional
//! UPDATE (only one worker's update matches), under a lease the worker renews while it runs; a
//! worker that dies leaves a lapsed lease, and the job is claimed again. One organization never
//! has two syncs queued or running at once, nor a customer two backup checks: enqueueing returns
//! the pending one instead.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::job;
use crate::clock::Clock;
use crate::ids::{CustomerId, JobId};
use crate::inventory::entities::organization;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    DirectorySync,
    /// A check of a customer's backup storage (`storage::verify`); names no organization.
    Verify,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::DirectorySync => "directory_sync",
            JobKind::Verify => "verify",
        }
    }

    pub fn label(kind: &str) -> &'static str {
        match kind {
            "directory_sync" => "Directory sync",
            "verify" => "Backup check",
            _ => "Job",
        }
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
}

/// Queues a directory sync of `org`, or returns the one already queued or running.
pub async fn enqueue_sync(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    org: &organization::Model,
) -> Result<job::Model, sea_orm::DbErr> {
    if let Some(pending) = pending_sync(db, org.id).await? {
        return Ok(pending);
    }
    queued(JobKind::DirectorySync, org.customer_id, Some(org.id), clock)
        .insert(db)
        .await
}

/// A new queued job row.
fn queued(
    kind: JobKind,
    customer_id: uuid::Uuid,
    org_id: Option<uuid::Uuid>,
    clock: &dyn Clock,
) -> job::ActiveModel {
    job::ActiveModel {
        id: Set(JobId::new().0),
        kind: Set(kind.as_str().into()),
        customer_id: Set(customer_id),
        org_id: Set(org_id),
        status: Set(JobStatus::Queued.as_str().into()),
        queued_at: Set(clock.now()),
        started_at: Set(None),
        finished_at: Set(None),
        lease_until: Set(None),
        attempts: Set(0),
        progress: Set(None),
        summary: Set(None),
        error: Set(None),
    }
}

pub async fn pending_sync(
    db: &DatabaseConnection,
    org_id: uuid::Uuid,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    job::Entity::find()
        .filter(job::Column::OrgId.eq(org_id))
        .filter(job::Column::Kind.eq(JobKind::DirectorySync.as_str()))
        .filter(
            job::Column::Status.is_in([JobStatus::Queued.as_str(), JobStatus::Running.as_str()]),
        )
        .one(db)
        .await
}

/// Queues a check of the customer's backup storage, or returns the one already queued or running;
/// `true` when this call queued it.
pub async fn enqueue_verify(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    customer: CustomerId,
) -> Result<(job::Model, bool), sea_orm::DbErr> {
    if let Some(pending) = pending_verify(db, customer).await? {
        return Ok((pending, false));
    }
    let job = queued(JobKind::Verify, customer.as_uuid(), None, clock)
        .insert(db)
        .await?;
    Ok((job, true))
}

pub async fn pending_verify(
    db: &DatabaseConnection,
    customer: CustomerId,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    job::Entity::find()
        .filter(job::Column::CustomerId.eq(customer.as_uuid()))
        .filter(job::Column::Kind.eq(JobKind::Verify.as_str()))
        .filter(
            job::Column::Status.is_in([JobStatus::Queued.as_str(), JobStatus::Running.as_str()]),
        )
        .one(db)
        .await
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

/// Claims the oldest job that is queued, or running under a lapsed lease.
pub async fn claim_next(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    lease: Duration,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    let now = clock.now();
    let claimable = || {
        let lease_free = Condition::any()
            .add(job::Column::Status.eq(JobStatus::Queued.as_str()))
            .add(
                Condition::all()
                    .add(job::Column::Status.eq(JobStatus::Running.as_str()))
                    .add(job::Column::LeaseUntil.lt(now)),
            );
        // Two syncs of one organization never run at once, even if two were queued in a race
        // between a Refresh and the schedule: a job waits while another of its organization
        // holds a live lease.
        let other = Alias::new("other_job");
        let live_sync_of_same_org = Query::select()
            .expr(Expr::val(1))
            .from_as(job::Entity, other.clone())
            .and_where(
                Expr::col((other.clone(), job::Column::OrgId))
                    .equals((job::Entity, job::Column::OrgId)),
            )
            .and_where(
                Expr::col((other.clone(), job::Column::Id))
                    .ne(Expr::col((job::Entity, job::Column::Id))),
            )
            .and_where(
                Expr::col((other.clone(), job::Column::Status)).eq(JobStatus::Running.as_str()),
            )
            .and_where(Expr::col((other, job::Column::LeaseUntil)).gte(now))
            .to_owned();
        let organization_idle = Expr::exists(live_sync_of_same_org).not();
        Condition::all().add(lease_free).add(organization_idle)
    };
    // A few candidates, in case another worker takes the first between our read and update.
    let candidates = job::Entity::find()
        .filter(claimable())
        .order_by_asc(job::Column::QueuedAt)
        .limit(4)
        .all(db)
        .await?;
    for candidate in candidates {
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
            .filter(claimable())
            .exec(db)
            .await?;
        if claimed.rows_affected == 1 {
            return job::Entity::find_by_id(candidate.id).one(db).await;
        }
    }
    Ok(None)
}

pub async fn renew_lease(
    db: &DatabaseConnection,
    id: uuid::Uuid,
    until: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    job::Entity::update_many()
        .col_expr(job::Column::LeaseUntil, Expr::value(Some(until)))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn set_progress(
    db: &DatabaseConnection,
    id: uuid::Uuid,
    line: &str,
) -> Result<(), sea_orm::DbErr> {
    job::Entity::update_many()
        .col_expr(job::Column::Progress, Expr::value(Some(line.to_string())))
        .filter(job::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Records the end of a job: a summary when it succeeded, the error when it failed.
pub async fn finish(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    id: uuid::Uuid,
    outcome: Result<String, String>,
) -> Result<(), sea_orm::DbErr> {
    let (status, summary, error) = match outcome {
        Ok(summary) => (JobStatus::Succeeded, Some(summary), None),
        Err(error) => (JobStatus::Failed, None, Some(error)),
    };
    job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(status.as_str()))
        .col_expr(job::Column::FinishedAt, Expr::value(Some(clock.now())))
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::Summary, Expr::value(summary))
        .col_expr(job::Column::Error, Expr::value(error))
        .filter(job::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
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

impl JobKind {
    pub fn parse(text: &str) -> Option<Self> {
        [JobKind::DirectorySync, JobKind::Verify]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl JobStatus {
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
