//! What Activities lists: a page of a customer's jobs, filtered by kind, status and item,
//! sorted by a column the database can order by, each with who or what started it and how
//! many of its items ended which way. Reads only; the queue owns the rows. Every read takes
//! the customer's id from a `CustomerScope`, never from the caller's text.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entities::{job, job_item};
use super::plan_run::ItemOutcome;
use super::queue::{JobKind, JobPayload, JobStatus, RunTrigger};
use crate::accounts::access::CustomerScope;
use crate::accounts::entities::audit_event;

/// The audit action recorded when a person starts a plan's run with Run now; its detail holds
/// the job's id, which is how Activities names who started it.
pub const RUN_NOW_ACTION: &str = "plan_run_now";

/// The columns Activities can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityOrder {
    Queued,
    Kind,
    Status,
    Finished,
}

impl ActivityOrder {
    fn column(self) -> job::Column {
        match self {
            ActivityOrder::Queued => job::Column::QueuedAt,
            ActivityOrder::Kind => job::Column::Kind,
            ActivityOrder::Status => job::Column::Status,
            ActivityOrder::Finished => job::Column::FinishedAt,
        }
    }
}

/// What the reader asked for.
#[derive(Debug, Clone)]
pub struct ActivityQuery {
    pub kind: Option<JobKind>,
    pub status: Option<JobStatus>,
    /// Only jobs that recorded an outcome for this protected item.
    pub item: Option<Uuid>,
    pub order: ActivityOrder,
    pub descending: bool,
    pub page: u64,
    pub page_size: u64,
}

/// Who or what started a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The plan's daily time.
    Schedule,
    /// Run now, by the person named (when the audit log still holds it).
    RunNow(Option<String>),
    /// A person's request that is not a plan's run: a restore.
    RequestedBy(Option<String>),
    /// Skyvault itself: a sync after adding an organization, retention after a run, prune and
    /// checks on their ticks.
    Skyvault,
}

impl Trigger {
    pub fn sentence(&self) -> String {
        match self {
            Trigger::Schedule => "Schedule".into(),
            Trigger::RunNow(Some(by)) => format!("Run now by {by}"),
            Trigger::RunNow(None) => "Run now".into(),
            Trigger::RequestedBy(Some(by)) => by.clone(),
            Trigger::RequestedBy(None) => "An administrator".into(),
            Trigger::Skyvault => "Skyvault".into(),
        }
    }
}

/// How a job's items ended so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemCounts {
    pub backed_up: u64,
    pub failed: u64,
    /// Every item with a recorded outcome (not supported and unavailable ones included).
    pub recorded: u64,
}

/// One row of Activities.
#[derive(Debug, Clone)]
pub struct Activity {
    pub job: job::Model,
    pub trigger: Trigger,
    pub items: ItemCounts,
}

impl Activity {
    /// How long it ran (or has been running, at `now`); none before it started.
    pub fn duration(&self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::Duration> {
        let started = self.job.started_at?;
        let end = if JobStatus::is_pending(&self.job.status) {
            now
        } else {
            self.job.finished_at?
        };
        Some(end - started).filter(|d| *d >= chrono::Duration::zero())
    }
}

/// A page of the customer's activities and the number that match the filters. A page past the
/// end reads the last page (`page` in the result says which one was read).
pub struct ActivityPage {
    pub activities: Vec<Activity>,
    pub total: u64,
    pub page: u64,
}

pub async fn activities_page(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    query: &ActivityQuery,
) -> Result<ActivityPage, sea_orm::DbErr> {
    let mut select = job::Entity::find().filter(job::Column::CustomerId.eq(scope.id().as_uuid()));
    if let Some(kind) = query.kind {
        select = select.filter(job::Column::Kind.eq(kind.as_str()));
    }
    if let Some(status) = query.status {
        select = select.filter(job::Column::Status.eq(status.as_str()));
    }
    if let Some(item) = query.item {
        let with_item = sea_orm::sea_query::Query::select()
            .column(job_item::Column::JobId)
            .from(job_item::Entity)
            .and_where(Expr::col(job_item::Column::ItemId).eq(Expr::value(item)))
            .to_owned();
        select = select.filter(job::Column::Id.in_subquery(with_item));
    }
    let total = select.clone().count(db).await?;
    let page_size = Ord::max(query.page_size, 1);
    let pages = Ord::max(total.div_ceil(page_size), 1);
    let page = Ord::min(query.page, pages - 1);
    let order = if query.descending {
        sea_orm::Order::Desc
    } else {
        sea_orm::Order::Asc
    };
    let mut select = select.order_by(query.order.column(), order.clone());
    if query.order != ActivityOrder::Queued {
        select = select.order_by_desc(job::Column::QueuedAt);
    }
    let jobs = select
        .order_by(job::Column::Id, order)
        .offset(page.saturating_mul(page_size))
        .limit(page_size)
        .all(db)
        .await?;
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let counts = item_counts(db, &ids).await?;
    let starters = run_now_starters(db, scope, &jobs).await?;
    let activities = jobs
        .into_iter()
        .map(|job| Activity {
            trigger: trigger_of(&job, &starters),
            items: counts.get(&job.id).copied().unwrap_or_default(),
            job,
        })
        .collect();
    Ok(ActivityPage {
        activities,
        total,
        page,
    })
}

/// One job of the customer's, with its trigger and counts; another customer's is not found.
pub async fn activity(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    id: Uuid,
) -> Result<Option<Activity>, sea_orm::DbErr> {
    let Some(job) = job::Entity::find_by_id(id)
        .filter(job::Column::CustomerId.eq(scope.id().as_uuid()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let counts = item_counts(db, &[job.id]).await?;
    let starters = run_now_starters(db, scope, std::slice::from_ref(&job)).await?;
    Ok(Some(Activity {
        trigger: trigger_of(&job, &starters),
        items: counts.get(&job.id).copied().unwrap_or_default(),
        job,
    }))
}

fn trigger_of(job: &job::Model, starters: &HashMap<String, String>) -> Trigger {
    match JobPayload::of(job) {
        Some(JobPayload::PlanRun {
            trigger: RunTrigger::Schedule,
            ..
        }) => Trigger::Schedule,
        Some(JobPayload::PlanRun {
            trigger: RunTrigger::RunNow,
            ..
        }) => Trigger::RunNow(starters.get(&job.id.to_string()).cloned()),
        Some(JobPayload::Restore { request }) => Trigger::RequestedBy(request.requested_by),
        _ => Trigger::Skyvault,
    }
}

/// Per job, how its items ended: one grouped query for the page.
async fn item_counts(
    db: &DatabaseConnection,
    jobs: &[Uuid],
) -> Result<HashMap<Uuid, ItemCounts>, sea_orm::DbErr> {
    let mut counts: HashMap<Uuid, ItemCounts> = HashMap::new();
    if jobs.is_empty() {
        return Ok(counts);
    }
    let rows: Vec<(Uuid, String, i64)> = job_item::Entity::find()
        .select_only()
        .column(job_item::Column::JobId)
        .column(job_item::Column::Status)
        .column_as(job_item::Column::ItemId.count(), "n")
        .filter(job_item::Column::JobId.is_in(jobs.iter().copied()))
        .group_by(job_item::Column::JobId)
        .group_by(job_item::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    for (job, status, n) in rows {
        let n = u64::try_from(n).unwrap_or_default();
        let entry = counts.entry(job).or_default();
        entry.recorded += n;
        match ItemOutcome::parse(&status) {
            Some(ItemOutcome::BackedUp) => entry.backed_up += n,
            Some(ItemOutcome::Failed) => entry.failed += n,
            _ => {}
        }
    }
    Ok(counts)
}

/// Who pressed Run now for the page's runs, from the customer's audit log (job id → e-mail).
async fn run_now_starters(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    jobs: &[job::Model],
) -> Result<HashMap<String, String>, sea_orm::DbErr> {
    let ids: Vec<String> = jobs
        .iter()
        .filter(|j| j.kind == JobKind::PlanRun.as_str())
        .map(|j| j.id.to_string())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String)> = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::Detail)
        .column(audit_event::Column::ActorEmail)
        .filter(audit_event::Column::CustomerId.eq(scope.id().as_uuid()))
        .filter(audit_event::Column::Action.eq(RUN_NOW_ACTION))
        .filter(audit_event::Column::Detail.is_in(ids))
        .order_by_desc(audit_event::Column::At)
        .into_tuple()
        .all(db)
        .await?;
    // Oldest last, so the person who queued the run wins over later presses while it was pending.
    Ok(rows.into_iter().collect())
}
