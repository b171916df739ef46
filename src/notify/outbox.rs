//! The outbox: every e-mail Skyvault means to send is a row first, so a mail server that is down
//! or refusing never loses one. A row is queued once (its `dedupe_key`), claimed by one worker at
//! a time with a lease (a conditional update, the same on SQLite and PostgreSQL), and after a
//! failed try waits with doubling backoff until its attempts run out. A worker that dies while
//! sending leaves a lease that lapses and the row is tried again: a message may then arrive
//! twice, never not at all.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::mail_outbox;

/// Tries before a message is given up.
pub const MAX_ATTEMPTS: i32 = 10;
/// How long a worker may take to hand one message to the server before another may try.
const LEASE: Duration = Duration::minutes(5);

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    AlertOpened,
    AlertResolved,
    DailySummary,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::AlertOpened => "alert_opened",
            MailKind::AlertResolved => "alert_resolved",
            MailKind::DailySummary => "daily_summary",
        }
    }

    pub fn label(code: &str) -> &'static str {
        match code {
            "alert_opened" => "Alert",
            "alert_resolved" => "Alert resolved",
            "daily_summary" => "Daily summary",
            _ => "E-mail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Sending,
    Sent,
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }
}

/// One message to queue.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub dedupe_key: String,
    pub kind: MailKind,
    pub customer: Option<Uuid>,
    pub alert: Option<Uuid>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// Queues `mail` unless a message with its key was queued before; true when this call queued it.
pub async fn enqueue(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    mail: NewMail,
) -> Result<bool, sea_orm::DbErr> {
    let inserted = mail_outbox::Entity::insert(mail_outbox::ActiveModel {
        id: Set(Uuid::new_v4()),
        dedupe_key: Set(mail.dedupe_key),
        kind: Set(mail.kind.as_str().into()),
        customer_id: Set(mail.customer),
        alert_id: Set(mail.alert),
        recipient: Set(mail.recipient),
        subject: Set(mail.subject),
        body: Set(mail.body),
        status: Set(OutboxStatus::Pending.as_str().into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        claim_token: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
    })
    .on_conflict(
        OnConflict::column(mail_outbox::Column::DedupeKey)
            .do_nothing()
            .to_owned(),
    )
    .try_insert()
    .exec_without_returning(db)
    .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(1)))
}

/// A row this worker holds: it alone records the outcome, and only while the token matches.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub mail: mail_outbox::Model,
    pub token: Uuid,
}

fn due(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(
            Condition::all()
                .add(mail_outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
                .add(mail_outbox::Column::NextAttemptAt.lte(now)),
        )
        .add(
            Condition::all()
                .add(mail_outbox::Column::Status.eq(OutboxStatus::Sending.as_str()))
                .add(mail_outbox::Column::ClaimedUntil.lt(now)),
        )
}

/// Claims up to `max` messages that are due (oldest first), lapsed claims included.
pub async fn claim_due(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    max: u64,
) -> Result<Vec<Claimed>, sea_orm::DbErr> {
    let candidates = mail_outbox::Entity::find()
        .filter(due(now))
        .order_by_asc(mail_outbox::Column::NextAttemptAt)
        .limit(max)
        .all(db)
        .await?;
    let mut claimed = Vec::new();
    for mail in candidates {
        let token = Uuid::new_v4();
        // The condition is checked again by the update itself: of two workers, one wins.
        let won = mail_outbox::Entity::update_many()
            .col_expr(
                mail_outbox::Column::Status,
                Expr::value(OutboxStatus::Sending.as_str()),
            )
            .col_expr(mail_outbox::Column::ClaimToken, Expr::value(Some(token)))
            .col_expr(
                mail_outbox::Column::ClaimedUntil,
                Expr::value(Some(now + LEASE)),
            )
            .filter(mail_outbox::Column::Id.eq(mail.id))
            .filter(due(now))
            .exec(db)
            .await?;
        if won.rows_affected == 1 {
            claimed.push(Claimed { mail, token });
        }
    }
    Ok(claimed)
}

/// How long to wait after the `attempts`-th failed try: 1, 2, 4 … minutes, at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 6)).unwrap_or(0);
    Duration::minutes(2_i64.pow(exponent)).min(Duration::hours(1))
}

/// Records that the server accepted the message.
pub async fn record_sent(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    claimed: &Claimed,
) -> Result<(), sea_orm::DbErr> {
    mail_outbox::Entity::update_many()
        .col_expr(
            mail_outbox::Column::Status,
            Expr::value(OutboxStatus::Sent.as_str()),
        )
        .col_expr(
            mail_outbox::Column::Attempts,
            Expr::value(claimed.mail.attempts + 1),
        )
        .col_expr(mail_outbox::Column::SentAt, Expr::value(Some(now)))
        .col_expr(
            mail_outbox::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            mail_outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(mail_outbox::Column::Id.eq(claimed.mail.id))
        .filter(mail_outbox::Column::ClaimToken.eq(claimed.token))
        .exec(db)
        .await?;
    Ok(())
}

/// Records a failed try: due again after the backoff, or given up after the last attempt (or at
/// once when retrying cannot help).
pub async fn record_failure(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    claimed: &Claimed,
    error: &str,
    retryable: bool,
) -> Result<OutboxStatus, sea_orm::DbErr> {
    let attempts = claimed.mail.attempts + 1;
    let status = if retryable && attempts < MAX_ATTEMPTS {
        OutboxStatus::Pending
    } else {
        OutboxStatus::Failed
    };
    mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::Status, Expr::value(status.as_str()))
        .col_expr(mail_outbox::Column::Attempts, Expr::value(attempts))
        .col_expr(
            mail_outbox::Column::NextAttemptAt,
            Expr::value(now + backoff(attempts)),
        )
        .col_expr(
            mail_outbox::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            mail_outbox::Column::LastError,
            Expr::value(Some(error.to_string())),
        )
        .filter(mail_outbox::Column::Id.eq(claimed.mail.id))
        .filter(mail_outbox::Column::ClaimToken.eq(claimed.token))
        .exec(db)
        .await?;
    Ok(status)
}

/// Hands a claimed row back untouched (e-mail was switched off meanwhile).
pub async fn release(db: &DatabaseConnection, claimed: &Claimed) -> Result<(), sea_orm::DbErr> {
    mail_outbox::Entity::update_many()
        .col_expr(
            mail_outbox::Column::Status,
            Expr::value(OutboxStatus::Pending.as_str()),
        )
        .col_expr(
            mail_outbox::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(mail_outbox::Column::Id.eq(claimed.mail.id))
        .filter(mail_outbox::Column::ClaimToken.eq(claimed.token))
        .exec(db)
        .await?;
    Ok(())
}

/// The outbox at a glance, for the operator's page.
#[derive(Debug, Clone, Default)]
pub struct OutboxSummary {
    pub waiting: u64,
    pub failed: u64,
    pub last_sent: Option<DateTime<Utc>>,
    /// Messages not delivered yet or given up, newest first, with why.
    pub problems: Vec<mail_outbox::Model>,
}

/// Counts and the latest troubles (the installation's view: the operator's page only).
pub async fn summary(db: &DatabaseConnection) -> Result<OutboxSummary, sea_orm::DbErr> {
    let count = |status: &[&str]| {
        mail_outbox::Entity::find()
            .filter(mail_outbox::Column::Status.is_in(status.iter().copied()))
            .count(db)
    };
    let waiting = count(&[
        OutboxStatus::Pending.as_str(),
        OutboxStatus::Sending.as_str(),
    ])
    .await?;
    let failed = count(&[OutboxStatus::Failed.as_str()]).await?;
    let last_sent = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Status.eq(OutboxStatus::Sent.as_str()))
        .order_by_desc(mail_outbox::Column::SentAt)
        .one(db)
        .await?
        .and_then(|m| m.sent_at);
    let problems = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::LastError.is_not_null())
        .filter(mail_outbox::Column::Status.ne(OutboxStatus::Sent.as_str()))
        .order_by_desc(mail_outbox::Column::CreatedAt)
        .limit(20)
        .all(db)
        .await?;
    Ok(OutboxSummary {
        waiting,
        failed,
        last_sent,
        problems,
    })
}

/// The messages of one alert (for its mail state).
pub async fn of_alert(
    db: &impl ConnectionTrait,
    alert: Uuid,
    kind: MailKind,
) -> Result<Vec<mail_outbox::Model>, sea_orm::DbErr> {
    mail_outbox::Entity::find()
        .filter(mail_outbox::Column::AlertId.eq(alert))
        .filter(mail_outbox::Column::Kind.eq(kind.as_str()))
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let minutes: Vec<i64> = (1..=9).map(|n| backoff(n).num_minutes()).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
