//! The worker side of alert e-mail, one pass every 30 seconds on every worker process:
//!
//! 1. alerts that opened and were not mailed yet get their e-mails queued in the outbox (one per
//!    recipient), or are marked `off` when e-mail is off or nobody is chosen; alerts that resolved
//!    after being mailed get a short "resolved" e-mail;
//! 2. after 06:00 UTC, each recipient set that asked for it gets the day's summary queued;
//! 3. due outbox rows are claimed and handed to the mail server; failures wait with backoff.
//!
//! Every step is driven by what the database holds and each message has a unique key, so a
//! crash between steps, or several workers passing at once, never loses or doubles an e-mail.
//! A pass that fails logs and the next one carries on.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::compose::{self, CustomerDay, FailedItem};
use super::entities::mail_outbox;
use super::outbox::{self, MailKind, NewMail, OutboxStatus};
use super::recipients::{self, Owner};
use super::smtp::{self, SmtpError};
use crate::accounts::access::partner_subtree;
use crate::accounts::entities::{customer, partner};
use crate::clock::SharedClock;
use crate::crypto::MasterKey;
use crate::ids::{CustomerId, PartnerId};
use crate::inventory::entities::protected_item;
use crate::inventory::failure::{SyncFailure, backup_item_words};
use crate::jobs::alerts::{self, AlertCause, INSTALLATION, MailState, entities::alert};
use crate::jobs::entities::{job, job_item};
use crate::jobs::plan_run::ItemOutcome;
use crate::jobs::queue::JobStatus;

const EVERY: StdDuration = StdDuration::from_secs(30);
/// Messages one pass hands to the server.
const BATCH: u64 = 50;
/// The hour (UTC) from which the day's summary is sent.
pub const SUMMARY_HOUR: u32 = 6;

/// What the mailer needs from the process.
#[derive(Clone)]
pub struct Mailer {
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub master_key: MasterKey,
    /// Links in e-mails point here.
    pub public_url: String,
    /// The Microsoft app's client secret expiry, when the operator told it.
    pub secret_expires: Option<NaiveDate>,
}

impl Mailer {
    pub fn of(state: &crate::web::AppState) -> Self {
        Mailer {
            db: state.db.clone(),
            clock: state.clock.clone(),
            master_key: state.master_key.clone(),
            public_url: state.settings.public_url(),
            secret_expires: state.settings.client_secret_expires().ok().flatten(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error("the mail server settings: {0}")]
    Settings(#[from] SmtpError),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
}

/// One pass: queue what alerts and summaries call for, then send what is due.
pub async fn run_once(mailer: &Mailer) -> Result<Pass, MailerError> {
    let now = mailer.clock.now();
    let enabled = smtp::enabled(&mailer.db).await?;
    let mut pass = Pass {
        queued: queue_alert_mails(mailer, now, enabled).await?,
        ..Pass::default()
    };
    if !enabled {
        return Ok(pass);
    }
    pass.queued += queue_summaries(mailer, now).await?;
    let (sent, failed) = deliver_due(mailer, now).await?;
    pass.sent = sent;
    pass.failed = failed;
    Ok(pass)
}

/// Runs for as long as the process does: the installation's alerts, then a mailer pass, every
/// 30 seconds.
pub async fn run_notifier(mailer: Mailer) {
    loop {
        if let Err(err) =
            alerts::evaluate_installation(&mailer.db, mailer.clock.as_ref(), mailer.secret_expires)
                .await
        {
            tracing::warn!("installation alerts could not be evaluated: {err}");
        }
        match run_once(&mailer).await {
            Ok(Pass {
                queued: 0,
                sent: 0,
                failed: 0,
            }) => {}
            Ok(pass) => tracing::info!(
                queued = pass.queued,
                sent = pass.sent,
                failed = pass.failed,
                "alert e-mail"
            ),
            Err(err) => tracing::warn!("alert e-mail pass failed: {err}"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

async fn customer_name(
    db: &DatabaseConnection,
    names: &mut HashMap<Uuid, Option<String>>,
    id: Uuid,
) -> Result<Option<String>, sea_orm::DbErr> {
    if id == INSTALLATION {
        return Ok(None);
    }
    if let Some(name) = names.get(&id) {
        return Ok(name.clone());
    }
    let name = customer::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(|c| c.name);
    names.insert(id, name.clone());
    Ok(name)
}

fn recipients_of(row: &alert::Model) -> Option<CustomerId> {
    (row.customer_id != INSTALLATION).then_some(CustomerId(row.customer_id))
}

/// Moves a `pending` alert on; an alert another worker already moved (and perhaps already
/// mailed) keeps its state.
async fn set_mail_state(
    db: &DatabaseConnection,
    id: Uuid,
    state: MailState,
) -> Result<(), sea_orm::DbErr> {
    alert::Entity::update_many()
        .col_expr(alert::Column::MailState, Expr::value(state.as_str()))
        .filter(alert::Column::Id.eq(id))
        .filter(alert::Column::MailState.eq(MailState::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Step 1: the e-mails of alerts that opened or resolved since the last pass.
async fn queue_alert_mails(
    mailer: &Mailer,
    now: DateTime<Utc>,
    enabled: bool,
) -> Result<u64, sea_orm::DbErr> {
    let db = &mailer.db;
    let mut queued = 0;
    let mut names = HashMap::new();
    let pending = alert::Entity::find()
        .filter(alert::Column::MailState.eq(MailState::Pending.as_str()))
        .order_by_asc(alert::Column::FirstSeen)
        .all(db)
        .await?;
    for row in pending {
        let addresses = if enabled {
            recipients::alert_addresses(db, recipients_of(&row)).await?
        } else {
            Vec::new()
        };
        if addresses.is_empty() {
            set_mail_state(db, row.id, MailState::Off).await?;
            continue;
        }
        let name = customer_name(db, &mut names, row.customer_id).await?;
        let failed = failed_items(db, &row).await?;
        let mail = compose::alert_opened(&mailer.public_url, &row, name.as_deref(), &failed);
        for address in addresses {
            queued += u64::from(
                outbox::enqueue(
                    db,
                    now,
                    NewMail {
                        dedupe_key: format!("alert:{}:opened:{address}", row.id),
                        kind: MailKind::AlertOpened,
                        customer: Some(row.customer_id),
                        alert: Some(row.id),
                        recipient: address,
                        subject: mail.subject.clone(),
                        body: mail.body.clone(),
                    },
                )
                .await?,
            );
        }
        set_mail_state(db, row.id, MailState::Queued).await?;
    }
    let resolved = alert::Entity::find()
        .filter(alert::Column::ResolvedAt.is_not_null())
        .filter(alert::Column::ResolutionMailed.eq(false))
        .filter(alert::Column::MailState.is_in([
            MailState::Queued.as_str(),
            MailState::Sent.as_str(),
            MailState::Failed.as_str(),
        ]))
        .all(db)
        .await?;
    for row in resolved {
        // Those told it opened are told it resolved; e-mail switched off since tells nobody.
        let addresses: Vec<String> = if enabled {
            outbox::of_alert(db, row.id, MailKind::AlertOpened)
                .await?
                .into_iter()
                .map(|m| m.recipient)
                .collect()
        } else {
            Vec::new()
        };
        let name = customer_name(db, &mut names, row.customer_id).await?;
        let mail = compose::alert_resolved(&mailer.public_url, &row, name.as_deref());
        for address in addresses {
            queued += u64::from(
                outbox::enqueue(
                    db,
                    now,
                    NewMail {
                        dedupe_key: format!("alert:{}:resolved:{address}", row.id),
                        kind: MailKind::AlertResolved,
                        customer: Some(row.customer_id),
                        alert: Some(row.id),
                        recipient: address,
                        subject: mail.subject.clone(),
                        body: mail.body.clone(),
                    },
                )
                .await?,
            );
        }
        alert::Entity::update_many()
            .col_expr(alert::Column::ResolutionMailed, Expr::value(true))
            .filter(alert::Column::Id.eq(row.id))
            .exec(db)
            .await?;
    }
    Ok(queued)
}

/// Items shown in an alert e-mail at most.
const FAILED_ITEMS_SHOWN: u64 = 5;

/// The failed items of the run a backup alert points at (its link names the run), in words.
async fn failed_items(
    db: &DatabaseConnection,
    row: &alert::Model,
) -> Result<Vec<FailedItem>, sea_orm::DbErr> {
    let cause = AlertCause::parse(&row.cause);
    if !matches!(
        cause,
        Some(AlertCause::BackupFailed | AlertCause::BackupPartial)
    ) {
        return Ok(Vec::new());
    }
    let Some(run) = row
        .link
        .as_deref()
        .and_then(|link| link.rsplit('/').next())
        .and_then(|id| id.parse::<Uuid>().ok())
    else {
        return Ok(Vec::new());
    };
    let items = job_item::Entity::find()
        .filter(job_item::Column::JobId.eq(run))
        .filter(job_item::Column::Status.eq(ItemOutcome::Failed.as_str()))
        .limit(FAILED_ITEMS_SHOWN)
        .all(db)
        .await?;
    let mut failed = Vec::new();
    for item in items {
        let name = protected_item::Entity::find_by_id(item.item_id)
            .one(db)
            .await?
            .map_or_else(|| "An item".to_string(), |i| i.display_name);
        let (what, _, _) = backup_item_words(SyncFailure::decode(&item.detail).cause);
        failed.push(FailedItem { name, what });
    }
    Ok(failed)
}

/// Step 2: today's summaries, once the summary hour has passed.
async fn queue_summaries(mailer: &Mailer, now: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    if now.hour() < SUMMARY_HOUR {
        return Ok(0);
    }
    let db = &mailer.db;
    let day = now.date_naive();
    let mut queued = 0;
    for (owner, addresses) in recipients::summary_sets(db).await? {
        let owner_id = match owner {
            Owner::Customer(id) => id.0,
            Owner::Partner(id) => id.0,
        };
        let keys: Vec<String> = addresses
            .iter()
            .map(|address| format!("summary:{owner_id}:{day}:{address}"))
            .collect();
        let already = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::DedupeKey.is_in(keys.clone()))
            .all(db)
            .await?
            .len();
        if already == keys.len() {
            continue;
        }
        let (name, days) = owner_days(db, owner, now).await?;
        let mail = compose::daily_summary(&mailer.public_url, &name, now, &days);
        for (address, key) in addresses.into_iter().zip(keys) {
            queued += u64::from(
                outbox::enqueue(
                    db,
                    now,
                    NewMail {
                        dedupe_key: key,
                        kind: MailKind::DailySummary,
                        customer: match owner {
                            Owner::Customer(id) => Some(id.0),
                            Owner::Partner(_) => None,
                        },
                        alert: None,
                        recipient: address,
                        subject: mail.subject.clone(),
                        body: mail.body.clone(),
                    },
                )
                .await?,
            );
        }
    }
    Ok(queued)
}

/// The owner's name and its customers' last 24 hours (a partner's: every customer below it).
async fn owner_days(
    db: &DatabaseConnection,
    owner: Owner,
    now: DateTime<Utc>,
) -> Result<(String, Vec<CustomerDay>), sea_orm::DbErr> {
    let (name, customers) = match owner {
        Owner::Customer(id) => {
            let rows = customer::Entity::find_by_id(id.0).all(db).await?;
            let name = rows.first().map(|c| c.name.clone()).unwrap_or_default();
            (name, rows)
        }
        Owner::Partner(id) => {
            let name = partner::Entity::find_by_id(id.0)
                .one(db)
                .await?
                .map(|p| p.name)
                .unwrap_or_default();
            let subtree = partner_subtree(db, PartnerId(id.0))
                .await
                .map_err(|err| sea_orm::DbErr::Custom(err.to_string()))?;
            let rows = customer::Entity::find()
                .filter(customer::Column::PartnerId.is_in(subtree))
                .filter(customer::Column::Disabled.eq(false))
                .order_by_asc(customer::Column::Name)
                .all(db)
                .await?;
            (name, rows)
        }
    };
    let since = now - Duration::hours(24);
    let mut days = Vec::new();
    for chunk in customers.chunks(500) {
        let ids: Vec<Uuid> = chunk.iter().map(|c| c.id).collect();
        let jobs = job::Entity::find()
            .filter(job::Column::CustomerId.is_in(ids.clone()))
            .filter(job::Column::FinishedAt.gt(since))
            .filter(job::Column::FinishedAt.lte(now))
            .order_by_asc(job::Column::FinishedAt)
            .all(db)
            .await?;
        let open = alert::Entity::find()
            .filter(alert::Column::CustomerId.is_in(ids))
            .filter(alert::Column::ResolvedAt.is_null())
            .order_by_asc(alert::Column::FirstSeen)
            .all(db)
            .await?;
        for customer in chunk {
            let mut runs: Vec<(&'static str, u64, u64)> = Vec::new();
            let mut failures = Vec::new();
            for job in jobs.iter().filter(|j| j.customer_id == customer.id) {
                let label = compose::job_label(&job.kind);
                let failed = job.status == JobStatus::Failed.as_str();
                match runs.iter_mut().find(|(l, _, _)| *l == label) {
                    Some(entry) if failed => entry.2 += 1,
                    Some(entry) => entry.1 += 1,
                    None => runs.push((label, u64::from(!failed), u64::from(failed))),
                }
                if failed {
                    failures.push((
                        label,
                        job.finished_at.unwrap_or(now),
                        compose::failure_line(job.error.as_deref().unwrap_or_default()),
                    ));
                }
            }
            let open_alerts = open
                .iter()
                .filter(|a| a.customer_id == customer.id)
                .map(|a| {
                    (
                        AlertCause::parse(&a.cause).map_or("Alert", AlertCause::title),
                        a.subject.clone(),
                        a.first_seen,
                    )
                })
                .collect();
            days.push(CustomerDay {
                id: customer.id,
                name: customer.name.clone(),
                runs,
                failures,
                open_alerts,
            });
        }
    }
    Ok((name, days))
}

/// Step 3: hands due messages to the mail server, one claim at a time (so a slow server never
/// outlasts a claim's lease); returns (sent, failed tries).
async fn deliver_due(mailer: &Mailer, now: DateTime<Utc>) -> Result<(u64, u64), MailerError> {
    let db = &mailer.db;
    let config = smtp::load(db, &mailer.master_key).await;
    let (mut sent, mut failed) = (0, 0);
    for _ in 0..BATCH {
        let Some(row) = outbox::claim_due(db, now, 1).await?.into_iter().next() else {
            break;
        };
        let outcome = match &config {
            Ok(Some(config)) if config.enabled => {
                smtp::deliver(
                    config,
                    &row.mail.recipient,
                    &row.mail.subject,
                    &row.mail.body,
                )
                .await
            }
            Ok(_) => {
                // Switched off between the check and the claim: leave it for later.
                outbox::release(db, &row).await?;
                break;
            }
            Err(err) => Err(smtp::DeliveryError {
                message: format!("The mail server settings cannot be read: {err}."),
                retryable: true,
            }),
        };
        match outcome {
            Ok(()) => {
                outbox::record_sent(db, mailer.clock.now(), &row).await?;
                sent += 1;
            }
            Err(err) => {
                tracing::warn!(to = %row.mail.recipient, "e-mail not sent: {}", err.message);
                outbox::record_failure(db, mailer.clock.now(), &row, &err.message, err.retryable)
                    .await?;
                failed += 1;
            }
        }
        if let (Some(alert), "alert_opened") = (row.mail.alert_id, row.mail.kind.as_str()) {
            refresh_alert_mail(db, alert).await?;
        }
    }
    Ok((sent, failed))
}

/// Mirrors the outbox onto the alert, so its page says whether it was e-mailed and why not.
async fn refresh_alert_mail(db: &DatabaseConnection, id: Uuid) -> Result<(), sea_orm::DbErr> {
    let mails = outbox::of_alert(db, id, MailKind::AlertOpened).await?;
    let status = |s: OutboxStatus| mails.iter().filter(move |m| m.status == s.as_str());
    let state = if status(OutboxStatus::Failed).next().is_some() {
        MailState::Failed
    } else if mails
        .iter()
        .all(|m| m.status == OutboxStatus::Sent.as_str())
    {
        MailState::Sent
    } else {
        MailState::Queued
    };
    let worst = mails
        .iter()
        .filter(|m| m.status != OutboxStatus::Sent.as_str())
        .max_by_key(|m| m.attempts);
    let next = status(OutboxStatus::Pending)
        .map(|m| m.next_attempt_at)
        .min();
    alert::Entity::update_many()
        .col_expr(alert::Column::MailState, Expr::value(state.as_str()))
        .col_expr(
            alert::Column::MailAttempts,
            Expr::value(worst.map_or(0, |m| m.attempts)),
        )
        .col_expr(alert::Column::MailNextAt, Expr::value(next))
        .col_expr(
            alert::Column::MailError,
            Expr::value(worst.and_then(|m| m.last_error.clone())),
        )
        .filter(alert::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The installation's open alerts (the operator's page).
pub async fn installation_alerts(
    db: &DatabaseConnection,
) -> Result<Vec<alert::Model>, sea_orm::DbErr> {
    alert::Entity::find()
        .filter(alert::Column::CustomerId.eq(INSTALLATION))
        .filter(alert::Column::ResolvedAt.is_null())
        .order_by_desc(alert::Column::LastSeen)
        .all(db)
        .await
}
