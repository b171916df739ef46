//! Throttling kept per job: while a plan run works, every time Microsoft throttles one of the
//! resources it reads (a mailbox it backs up, the organization's OneDrive/SharePoint bucket, its
//! directory) is added to the job's row for that resource, so the organization's page and the
//! job's page can say, after the process is long gone, how long Microsoft held Skyvault back last
//! night and where.
//!
//! The Graph client's `ThrottleLog` is the source (it sees every 429/503 the governor honoured);
//! this module only listens to it and writes `job_throttles`. It never pauses or retries anything.
//! Reads take a `CustomerScope`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use tokio::sync::{broadcast, oneshot};
use uuid::Uuid;

use crate::accounts::access::CustomerScope;
use crate::ids::{CustomerId, OrgId};
use crate::m365::{GraphClient, Resource, TenantId, ThrottleEvent};

pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One resource Microsoft throttled during one job.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_throttles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub job_id: Uuid,
        /// The resource, stably (`mailbox:<user id>`, `files`, `directory`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub resource: String,
        /// The resource as people read it ("Mailbox of Alice Archer").
        pub label: String,
        pub customer_id: Uuid,
        pub org_id: Option<Uuid>,
        /// Times Microsoft answered 429 or 503 for it.
        pub events: i32,
        /// How long it was paused in all; overlapping pauses count once.
        pub throttled_ms: i64,
        pub first_at: ChronoDateTimeUtc,
        pub last_at: ChronoDateTimeUtc,
        /// The end of its latest pause.
        pub paused_until: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use entity as job_throttle;

/// The stable key and the label of a resource a job reads.
fn resource_key(resource: &Resource) -> String {
    match resource {
        Resource::Mailbox { user, .. } => format!("mailbox:{user}"),
        Resource::Files { .. } => "files".into(),
        Resource::Directory { .. } => "directory".into(),
    }
}

/// What one job is: whose, which organization, and which of the tenant's mailboxes it reads
/// (by Graph id, with the owner's name). Throttling of another job's mailbox is not this job's.
#[derive(Debug, Clone)]
pub struct ThrottleWatch {
    pub job: Uuid,
    pub customer: CustomerId,
    pub org: OrgId,
    pub tenant: TenantId,
    pub mailboxes: HashMap<String, String>,
    /// The job reads OneDrive, SharePoint or Teams: the tenant's files bucket is its too.
    pub files: bool,
}

impl ThrottleWatch {
    /// The row key and label of an event that concerns this job, or none.
    fn concerns(&self, resource: &Resource) -> Option<(String, String)> {
        if resource.tenant() != self.tenant {
            return None;
        }
        let label = match resource {
            Resource::Mailbox { user, .. } => {
                format!("Mailbox of {}", self.mailboxes.get(user)?)
            }
            Resource::Files { .. } if self.files => {
                "OneDrive and SharePoint (whole organization)".into()
            }
            Resource::Files { .. } => return None,
            Resource::Directory { .. } => "Directory (whole organization)".into(),
        };
        Some((resource_key(resource), label))
    }
}

/// Listens to the Graph client's throttling while a job runs and writes what concerns the job.
/// `finish` writes what is still in flight and stops.
pub struct ThrottleRecorder {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ThrottleRecorder {
    pub fn start(db: DatabaseConnection, graph: &GraphClient, watch: ThrottleWatch) -> Self {
        let events = graph.throttle_log().subscribe();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(record_events(db, watch, events, stopped));
        Self {
            stop: Some(stop),
            task,
        }
    }

    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for ThrottleRecorder {
    fn drop(&mut self) {
        // A run that ended without `finish` (an early return) must not leave a listener behind.
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

async fn record_events(
    db: DatabaseConnection,
    watch: ThrottleWatch,
    mut events: broadcast::Receiver<ThrottleEvent>,
    mut stopped: oneshot::Receiver<()>,
) {
    // The end of the latest pause counted per resource, so overlapping pauses count once.
    let mut counted_until: HashMap<String, DateTime<Utc>> = HashMap::new();
    loop {
        let event = tokio::select! {
            biased;
            event = events.recv() => event,
            _ = &mut stopped => break,
        };
        match event {
            Ok(event) => record(&db, &watch, &mut counted_until, &event).await,
            // Events that went by while this listener was behind are lost to the record, not to
            // the backup (the governor honoured them all).
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(job = %watch.job, missed, "throttling events missed");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
    // Stopped: what was throttled before the run ended is still in the channel.
    while let Ok(event) = events.try_recv() {
        record(&db, &watch, &mut counted_until, &event).await;
    }
}

async fn record(
    db: &DatabaseConnection,
    watch: &ThrottleWatch,
    counted_until: &mut HashMap<String, DateTime<Utc>>,
    event: &ThrottleEvent,
) {
    let Some((key, label)) = watch.concerns(&event.resource) else {
        return;
    };
    let from = counted_until
        .get(&key)
        .map_or(event.at, |until| Ord::max(*until, event.at));
    let added = Ord::max((event.paused_until - from).num_milliseconds(), 0);
    let until = counted_until
        .entry(key.clone())
        .or_insert(event.paused_until);
    *until = Ord::max(*until, event.paused_until);
    let row = job_throttle::ActiveModel {
        job_id: Set(watch.job),
        resource: Set(key),
        label: Set(label),
        customer_id: Set(watch.customer.as_uuid()),
        org_id: Set(Some(watch.org.as_uuid())),
        events: Set(1),
        throttled_ms: Set(added),
        first_at: Set(event.at),
        last_at: Set(event.at),
        paused_until: Set(event.paused_until),
    };
    let result = job_throttle::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([job_throttle::Column::JobId, job_throttle::Column::Resource])
                .value(
                    job_throttle::Column::Events,
                    // Qualified: PostgreSQL would not know the row's from EXCLUDED's.
                    Expr::col((job_throttle::Entity, job_throttle::Column::Events)).add(1),
                )
                .value(
                    job_throttle::Column::ThrottledMs,
                    Expr::col((job_throttle::Entity, job_throttle::Column::ThrottledMs)).add(added),
                )
                .update_columns([
                    job_throttle::Column::LastAt,
                    job_throttle::Column::PausedUntil,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    if let Err(err) = result {
        tracing::warn!(job = %watch.job, "throttling not recorded: {err}");
    }
}

/// One throttled resource as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottledResource {
    pub label: String,
    pub events: u64,
    pub throttled: chrono::Duration,
    pub last_at: DateTime<Utc>,
}

/// How much Microsoft throttled a job, or an organization's jobs over a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttling {
    /// Most throttled first.
    pub resources: Vec<ThrottledResource>,
    /// Jobs that met throttling.
    pub jobs: u64,
}

impl Throttling {
    /// Pauses of all resources added up (resources paused at the same time each count).
    pub fn total(&self) -> chrono::Duration {
        self.resources
            .iter()
            .fold(chrono::Duration::zero(), |sum, r| sum + r.throttled)
    }

    pub fn events(&self) -> u64 {
        self.resources.iter().map(|r| r.events).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    fn of_rows(rows: Vec<job_throttle::Model>) -> Self {
        let mut jobs = std::collections::HashSet::new();
        let mut by_resource: HashMap<(String, String), ThrottledResource> = HashMap::new();
        for row in rows {
            jobs.insert(row.job_id);
            let entry = by_resource
                .entry((row.resource.clone(), row.label.clone()))
                .or_insert_with(|| ThrottledResource {
                    label: row.label.clone(),
                    events: 0,
                    throttled: chrono::Duration::zero(),
                    last_at: row.last_at,
                });
            entry.events += u64::try_from(row.events).unwrap_or(0);
            entry.throttled += chrono::Duration::milliseconds(Ord::max(row.throttled_ms, 0));
            entry.last_at = Ord::max(entry.last_at, row.last_at);
        }
        let mut resources: Vec<_> = by_resource.into_values().collect();
        resources.sort_by(|a, b| {
            b.throttled
                .cmp(&a.throttled)
                .then(b.events.cmp(&a.events))
                .then(a.label.cmp(&b.label))
        });
        Self {
            resources,
            jobs: jobs.len() as u64,
        }
    }
}

/// The throttling one of the customer's jobs met.
pub async fn job_throttling(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    job: Uuid,
) -> Result<Throttling, sea_orm::DbErr> {
    let rows = job_throttle::Entity::find()
        .filter(job_throttle::Column::JobId.eq(job))
        .filter(job_throttle::Column::CustomerId.eq(scope.id().as_uuid()))
        .all(db)
        .await?;
    Ok(Throttling::of_rows(rows))
}

/// The throttling the jobs of one of the customer's organizations met since `since`.
pub async fn org_throttling(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    org: OrgId,
    since: DateTime<Utc>,
) -> Result<Throttling, sea_orm::DbErr> {
    let rows = job_throttle::Entity::find()
        .filter(job_throttle::Column::OrgId.eq(org.as_uuid()))
        .filter(job_throttle::Column::CustomerId.eq(scope.id().as_uuid()))
        .filter(job_throttle::Column::LastAt.gte(since))
        .order_by_desc(job_throttle::Column::LastAt)
        .all(db)
        .await?;
    Ok(Throttling::of_rows(rows))
}
