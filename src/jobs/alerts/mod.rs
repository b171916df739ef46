//! Alerts: what needs a person, raised from the state the database holds, not from events, so a
//! crash, a restart or two nodes evaluating at once never lose or double an alert.
//!
//! `evaluate` looks at every customer's plans, checks and organizations and computes the causes
//! present now: a plan whose last run failed (or partly failed), an item not backed up for more
//! than two days, a check that found damage, a check that could not reach the storage, consent
//! revoked in Microsoft 365. Each present cause opens one alert per subject, or updates the open
//! one (a new failed run counts as a repeat); an open alert whose cause is gone resolves.
//! Acknowledging is for people who may change the customer; reading takes a `CustomerScope`.
//!
//! Installation alerts (the Microsoft app's client secret about to expire) belong to no customer:
//! they are kept under the nil customer id, evaluated by `evaluate_installation` apart from the
//! customers' alerts, and shown to the operator (and mailed to the top-level partner's recipients).

pub mod entities;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use self::entities::alert;
use super::backup_check::workload_label;
use super::entities::{job, job_item};
use super::plan_run::ItemOutcome;
use super::queue::{JobKind, JobStatus};
use crate::accounts::AccountError;
use crate::accounts::access::CustomerScope;
use crate::clock::Clock;
use crate::ids::{CustomerId, PlanId};
use crate::inventory::entities::organization;
use crate::inventory::failure::FailureCause;
use crate::plans::{self, entities::plan};

/// How long an item may go without a backup before someone is told.
pub fn stale_after() -> Duration {
    Duration::days(2)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertCause {
    BackupFailed,
    BackupPartial,
    NotBackedUp,
    CheckDamage,
    StorageUnreachable,
    ConsentRevoked,
    AppSecretExpiring,
}

impl AlertCause {
    pub const ALL: [AlertCause; 7] = [
        AlertCause::BackupFailed,
        AlertCause::BackupPartial,
        AlertCause::NotBackedUp,
        AlertCause::CheckDamage,
        AlertCause::StorageUnreachable,
        AlertCause::ConsentRevoked,
        AlertCause::AppSecretExpiring,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AlertCause::BackupFailed => "backup_failed",
            AlertCause::BackupPartial => "backup_partial",
            AlertCause::NotBackedUp => "not_backed_up",
            AlertCause::CheckDamage => "check_damage",
            AlertCause::StorageUnreachable => "storage_unreachable",
            AlertCause::ConsentRevoked => "consent_revoked",
            AlertCause::AppSecretExpiring => "app_secret_expiring",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    pub fn title(self) -> &'static str {
        match self {
            AlertCause::BackupFailed => "Backup failed",
            AlertCause::BackupPartial => "Backup partly failed",
            AlertCause::NotBackedUp => "Not backed up for more than 2 days",
            AlertCause::CheckDamage => "Backup check found damage",
            AlertCause::StorageUnreachable => "Backup storage unreachable",
            AlertCause::ConsentRevoked => "Consent revoked in Microsoft 365",
            AlertCause::AppSecretExpiring => "Microsoft app secret about to expire",
        }
    }

    /// What the person can do about it.
    pub fn action(self) -> &'static str {
        match self {
            AlertCause::BackupFailed | AlertCause::BackupPartial => {
                "Open the run for each failed item and why; Skyvault retries at the next daily run, and Run now tries at once."
            }
            AlertCause::NotBackedUp => {
                "Open the item's activities to see why its backups fail; the alert resolves with its next good backup."
            }
            AlertCause::CheckDamage => {
                "Recovery points in the damaged packs may not restore. Run the next backup (it writes the data again) and ask whoever runs the storage to check its disks."
            }
            AlertCause::StorageUnreachable => {
                "Check on Backup storage that the storage is reachable and its credentials are valid."
            }
            AlertCause::ConsentRevoked => {
                "Add the organization again: on Devices choose Add › Microsoft 365 Business and sign in as a global administrator."
            }
            AlertCause::AppSecretExpiring => {
                "In the Microsoft Entra admin center, add a new client secret to Skyvault's app (App registrations › Certificates & secrets), set it as m365_client_secret and its expiry date as m365_client_secret_expires, and restart Skyvault."
            }
        }
    }
}

/// Whether an alert was mailed: `Pending` until the mailer queues its e-mails, `Queued` while
/// they wait in the outbox (retried with backoff), `Sent` once every one was delivered, `Failed`
/// when one was given up, `Off` when e-mail was off (or nobody chosen) when it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailState {
    Pending,
    Queued,
    Sent,
    Failed,
    Off,
}

impl MailState {
    pub fn as_str(self) -> &'static str {
        match self {
            MailState::Pending => "pending",
            MailState::Queued => "queued",
            MailState::Sent => "sent",
            MailState::Failed => "failed",
            MailState::Off => "off",
        }
    }
}

/// The customer id installation alerts are kept under.
pub const INSTALLATION: Uuid = Uuid::nil();

/// How long before the Microsoft app's client secret expires the operator is told.
pub fn secret_warning() -> Duration {
    Duration::days(30)
}

/// A cause present now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub customer: CustomerId,
    pub cause: AlertCause,
    pub subject_key: String,
    pub subject: String,
    pub message: String,
    pub link: Option<String>,
}

impl Finding {
    fn open_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.customer,
            self.cause.code(),
            self.subject_key
        )
    }
}

/// What an evaluation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub opened: u64,
    pub repeated: u64,
    pub resolved: u64,
}

/// Computes every customer's present causes and brings the alerts in line: opens, updates
/// repeats, resolves. Safe to run often and on several nodes at once.
pub async fn evaluate(
    db: &DatabaseConnection,
    clock: &dyn Clock,
) -> Result<Evaluation, sea_orm::DbErr> {
    let now = clock.now();
    let mut findings = plan_findings(db, now).await?;
    findings.extend(check_findings(db).await?);
    findings.extend(consent_findings(db).await?);
    apply(db, now, findings, Domain::Customers).await
}

/// Brings the installation's alerts in line: the Microsoft app's client secret expiring within
/// `secret_warning` (or expired) when its expiry date is known.
pub async fn evaluate_installation(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    secret_expires: Option<chrono::NaiveDate>,
) -> Result<Evaluation, sea_orm::DbErr> {
    let now = clock.now();
    let findings = secret_expires
        .filter(|day| day.and_time(chrono::NaiveTime::MIN).and_utc() - now <= secret_warning())
        .map(|day| {
            let expires = day.and_time(chrono::NaiveTime::MIN).and_utc();
            let days = (day - now.date_naive()).num_days();
            Finding {
                customer: CustomerId(INSTALLATION),
                cause: AlertCause::AppSecretExpiring,
                // A new expiry date is a new secret: its warning is a new alert.
                subject_key: format!("app-secret:{day}"),
                subject: "Skyvault's Microsoft app".into(),
                message: if expires <= now {
                    format!("The client secret expired on {day}: Microsoft refuses Skyvault's sign-ins, so backups and syncs fail.")
                } else {
                    format!("The client secret expires on {day}, in {days} day(s). After that Microsoft refuses Skyvault's sign-ins and every backup and sync fails.")
                },
                link: Some("/email".into()),
            }
        });
    apply(
        db,
        now,
        findings.into_iter().collect(),
        Domain::Installation,
    )
    .await
}

/// Which alerts an evaluation answers for: those it does not see are resolved only within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Customers,
    Installation,
}

async fn apply(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    findings: Vec<Finding>,
    domain: Domain,
) -> Result<Evaluation, sea_orm::DbErr> {
    let mut result = Evaluation::default();
    let mut present = HashSet::new();
    for finding in findings {
        let key = finding.open_key();
        if !present.insert(key.clone()) {
            continue;
        }
        let open = alert::Entity::find()
            .filter(alert::Column::OpenKey.eq(key.clone()))
            .one(db)
            .await?;
        match open {
            Some(open) if open.link == finding.link && open.message == finding.message => {}
            Some(open) => {
                // The same cause seen again (a new failed run): one alert, updated.
                alert::Entity::update_many()
                    .col_expr(alert::Column::Message, Expr::value(finding.message))
                    .col_expr(alert::Column::Link, Expr::value(finding.link))
                    .col_expr(alert::Column::LastSeen, Expr::value(now))
                    .col_expr(
                        alert::Column::Occurrences,
                        Expr::col(alert::Column::Occurrences).add(1),
                    )
                    .filter(alert::Column::Id.eq(open.id))
                    .exec(db)
                    .await?;
                result.repeated += 1;
            }
            None => {
                let inserted = alert::Entity::insert(alert::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    customer_id: Set(finding.customer.as_uuid()),
                    cause: Set(finding.cause.code().into()),
                    subject_key: Set(finding.subject_key),
                    subject: Set(finding.subject),
                    message: Set(finding.message),
                    link: Set(finding.link),
                    open_key: Set(Some(key)),
                    first_seen: Set(now),
                    last_seen: Set(now),
                    occurrences: Set(1),
                    acknowledged_by: Set(None),
                    acknowledged_at: Set(None),
                    resolved_at: Set(None),
                    mail_state: Set(MailState::Pending.as_str().into()),
                    mail_attempts: Set(0),
                    mail_next_at: Set(None),
                    mail_error: Set(None),
                    resolution_mailed: Set(false),
                })
                // Another node opened it meanwhile: theirs stands.
                .on_conflict(OnConflict::new().do_nothing().to_owned())
                .try_insert()
                .exec_without_returning(db)
                .await?;
                if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
                    result.opened += 1;
                }
            }
        }
    }
    let open: Vec<(Uuid, Option<String>)> = alert::Entity::find()
        .select_only()
        .column(alert::Column::Id)
        .column(alert::Column::OpenKey)
        .filter(alert::Column::OpenKey.is_not_null())
        .filter(match domain {
            Domain::Customers => alert::Column::CustomerId.ne(INSTALLATION),
            Domain::Installation => alert::Column::CustomerId.eq(INSTALLATION),
        })
        .into_tuple()
        .all(db)
        .await?;
    let gone: Vec<Uuid> = open
        .into_iter()
        .filter(|(_, key)| key.as_ref().is_some_and(|k| !present.contains(k)))
        .map(|(id, _)| id)
        .collect();
    for chunk in gone.chunks(500) {
        let resolved = alert::Entity::update_many()
            .col_expr(alert::Column::ResolvedAt, Expr::value(Some(now)))
            .col_expr(alert::Column::OpenKey, Expr::value(Option::<String>::None))
            .filter(alert::Column::Id.is_in(chunk.iter().copied()))
            .filter(alert::Column::OpenKey.is_not_null())
            .exec(db)
            .await?;
        result.resolved += resolved.rows_affected;
    }
    Ok(result)
}

fn job_link(job: &job::Model) -> String {
    format!("/c/{}/activities/{}", job.customer_id, job.id)
}

/// Failed and partly failed last runs, and items without a good backup for too long.
async fn plan_findings(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, sea_orm::DbErr> {
    let mut findings = Vec::new();
    let rows = plan::Entity::find()
        .filter(plan::Column::Enabled.eq(true))
        .all(db)
        .await?;
    for row in rows {
        let customer = CustomerId(row.customer_id);
        let last = job::Entity::find()
            .filter(job::Column::PlanId.eq(row.id))
            .filter(job::Column::Kind.eq(JobKind::PlanRun.as_str()))
            .filter(
                job::Column::Status
                    .is_in([JobStatus::Succeeded.as_str(), JobStatus::Failed.as_str()]),
            )
            .order_by_desc(job::Column::FinishedAt)
            .order_by_desc(job::Column::QueuedAt)
            .one(db)
            .await?;
        if let Some(last) = last.filter(|j| j.status == JobStatus::Failed.as_str()) {
            let backed_up = job_item::Entity::find()
                .filter(job_item::Column::JobId.eq(last.id))
                .filter(job_item::Column::Status.eq(ItemOutcome::BackedUp.as_str()))
                .count(db)
                .await?;
            findings.push(Finding {
                customer,
                cause: if backed_up > 0 {
                    AlertCause::BackupPartial
                } else {
                    AlertCause::BackupFailed
                },
                subject_key: format!("plan:{}", row.id),
                subject: format!("Plan “{}”", row.name),
                message: last
                    .error
                    .clone()
                    .unwrap_or_else(|| "The run failed.".into()),
                link: Some(job_link(&last)),
            });
        }
        if row.created_at > now - stale_after() {
            continue;
        }
        findings.extend(stale_items(db, now, &row).await?);
    }
    Ok(findings)
}

/// The plan's items whose last outcome is a failure and whose last good backup is older than
/// `stale_after` (or that never had one). Items of workloads not supported yet, or with nothing
/// to back up, are not stale.
async fn stale_items(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    row: &plan::Model,
) -> Result<Vec<Finding>, sea_orm::DbErr> {
    let Some(plan) = plans::plan_for_run(db, PlanId(row.id)).await? else {
        return Ok(Vec::new());
    };
    let targets = plans::plan_targets(db, &plan, false).await?;
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = targets.iter().map(|t| t.item.id).collect();
    let mut latest: HashMap<(Uuid, String), (DateTime<Utc>, String)> = HashMap::new();
    let mut good: HashMap<(Uuid, String), DateTime<Utc>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let outcomes = job_item::Entity::find()
            .filter(job_item::Column::ItemId.is_in(chunk.iter().copied()))
            .all(db)
            .await?;
        for outcome in outcomes {
            let key = (outcome.item_id, outcome.workload.clone());
            if outcome.status == ItemOutcome::BackedUp.as_str() {
                let at = good.entry(key.clone()).or_insert(outcome.finished_at);
                *at = Ord::max(*at, outcome.finished_at);
            }
            let entry = latest
                .entry(key)
                .or_insert((outcome.finished_at, outcome.status.clone()));
            if outcome.finished_at > entry.0 {
                *entry = (outcome.finished_at, outcome.status);
            }
        }
    }
    let mut findings = Vec::new();
    for target in targets {
        let key = (target.item.id, target.workload.as_str().to_string());
        let failing = match latest.get(&key) {
            Some((_, status)) => status == ItemOutcome::Failed.as_str(),
            None => true,
        };
        let fresh = good.get(&key).is_some_and(|at| *at > now - stale_after());
        if !failing || fresh {
            continue;
        }
        findings.push(Finding {
            customer: plan.customer,
            cause: AlertCause::NotBackedUp,
            subject_key: format!("item:{}:{}", target.item.id, target.workload.as_str()),
            subject: format!(
                "{} ({})",
                target.item.display_name,
                workload_label(target.workload)
            ),
            message: match good.get(&key) {
                Some(at) => format!("Last backed up {}.", at.format("%Y-%m-%d %H:%M UTC")),
                None => "Never backed up.".into(),
            },
            link: Some(format!(
                "/c/{}/activities?item={}",
                plan.customer, target.item.id
            )),
        });
    }
    Ok(findings)
}

/// The last backup check of each customer: damage found, or the storage not reachable.
async fn check_findings(db: &DatabaseConnection) -> Result<Vec<Finding>, sea_orm::DbErr> {
    let checks = job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::Verify.as_str()))
        .filter(
            job::Column::Status.is_in([JobStatus::Succeeded.as_str(), JobStatus::Failed.as_str()]),
        )
        .order_by_desc(job::Column::FinishedAt)
        .all(db)
        .await?;
    let mut seen = HashSet::new();
    let mut findings = Vec::new();
    for check in checks {
        if !seen.insert(check.customer_id) || check.status != JobStatus::Failed.as_str() {
            continue;
        }
        let error = check.error.clone().unwrap_or_default();
        // `backup_check::check_backups` opens its report of damage with these words.
        let cause = if error.starts_with("Damage found") {
            AlertCause::CheckDamage
        } else {
            AlertCause::StorageUnreachable
        };
        findings.push(Finding {
            customer: CustomerId(check.customer_id),
            cause,
            subject_key: "repository".into(),
            subject: "Backup storage".into(),
            message: error.lines().next().unwrap_or_default().to_string(),
            link: Some(job_link(&check)),
        });
    }
    Ok(findings)
}

/// Organizations whose last sync was refused because consent was withdrawn.
async fn consent_findings(db: &DatabaseConnection) -> Result<Vec<Finding>, sea_orm::DbErr> {
    let orgs = organization::Entity::find()
        .filter(organization::Column::LastSyncOutcome.is_not_null())
        .all(db)
        .await?;
    Ok(orgs
        .into_iter()
        .filter(|org| {
            org.last_sync_failure()
                .is_some_and(|f| f.cause == FailureCause::NotAuthorized)
        })
        .map(|org| Finding {
            customer: CustomerId(org.customer_id),
            cause: AlertCause::ConsentRevoked,
            subject_key: format!("org:{}", org.id),
            message: "Microsoft 365 no longer lets Skyvault into this organization; its backups stop until consent is given again.".into(),
            link: Some(format!("/c/{}/m365/{}", org.customer_id, org.id)),
            subject: org.display_name,
        })
        .collect())
}

/// The customer's alerts: open ones first (newest first), then the last resolved ones.
pub async fn alerts_of(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    resolved_shown: u64,
) -> Result<(Vec<alert::Model>, Vec<alert::Model>), sea_orm::DbErr> {
    let open = alert::Entity::find()
        .filter(alert::Column::CustomerId.eq(scope.id().as_uuid()))
        .filter(alert::Column::ResolvedAt.is_null())
        .order_by_desc(alert::Column::LastSeen)
        .all(db)
        .await?;
    let resolved = alert::Entity::find()
        .filter(alert::Column::CustomerId.eq(scope.id().as_uuid()))
        .filter(alert::Column::ResolvedAt.is_not_null())
        .order_by_desc(alert::Column::ResolvedAt)
        .limit(resolved_shown)
        .all(db)
        .await?;
    Ok((open, resolved))
}

/// Open alerts per customer (for the navigation badge and the partner's list).
pub async fn open_counts(
    db: &DatabaseConnection,
    customers: &[Uuid],
) -> Result<HashMap<Uuid, u64>, sea_orm::DbErr> {
    let mut counts = HashMap::new();
    for chunk in customers.chunks(500) {
        let rows: Vec<(Uuid, i64)> = alert::Entity::find()
            .select_only()
            .column(alert::Column::CustomerId)
            .column_as(alert::Column::Id.count(), "n")
            .filter(alert::Column::CustomerId.is_in(chunk.iter().copied()))
            .filter(alert::Column::ResolvedAt.is_null())
            .group_by(alert::Column::CustomerId)
            .into_tuple()
            .all(db)
            .await?;
        counts.extend(
            rows.into_iter()
                .map(|(c, n)| (c, u64::try_from(n).unwrap_or_default())),
        );
    }
    Ok(counts)
}

/// Open, not yet acknowledged alerts of the customer.
pub async fn unacknowledged_count(
    db: &DatabaseConnection,
    scope: &CustomerScope,
) -> Result<u64, sea_orm::DbErr> {
    alert::Entity::find()
        .filter(alert::Column::CustomerId.eq(scope.id().as_uuid()))
        .filter(alert::Column::ResolvedAt.is_null())
        .filter(alert::Column::AcknowledgedAt.is_null())
        .count(db)
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert not found")]
    NotFound,
    #[error(transparent)]
    Access(#[from] AccountError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

/// Acknowledges one of the customer's open alerts, as `by`; only people who may change the
/// customer may. Acknowledging twice keeps the first.
pub async fn acknowledge(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    scope: &CustomerScope,
    id: Uuid,
    by: &str,
) -> Result<(), AlertError> {
    let found = alert::Entity::find_by_id(id)
        .filter(alert::Column::CustomerId.eq(scope.id().as_uuid()))
        .one(db)
        .await?
        .ok_or(AlertError::NotFound)?;
    scope.require_change()?;
    alert::Entity::update_many()
        .col_expr(
            alert::Column::AcknowledgedBy,
            Expr::value(Some(by.to_string())),
        )
        .col_expr(
            alert::Column::AcknowledgedAt,
            Expr::value(Some(clock.now())),
        )
        .filter(alert::Column::Id.eq(found.id))
        .filter(alert::Column::AcknowledgedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// `evaluate` for a tick: logs and carries on when it fails.
pub async fn evaluate_and_log(db: &DatabaseConnection, clock: &dyn Clock) {
    match evaluate(db, clock).await {
        Ok(Evaluation {
            opened: 0,
            resolved: 0,
            ..
        }) => {}
        Ok(done) => tracing::info!(opened = done.opened, resolved = done.resolved, "alerts"),
        Err(err) => tracing::warn!("alerts could not be evaluated: {err}"),
    }
}
