//! The audit log: every change a console user makes to console users, customers and
//! sub-partners, with who made it, when and from which address. An event belongs either to a
//! customer (a change inside it) or to a partner (a change to one of its sub-partners, recorded
//! under the parent so the sub-partner does not read its parent's decisions). Reading always goes
//! through a [`CustomerScope`] or an [`Access`], so another tenant's events are never returned.
//! This module stores and reads; it never renders.

use sea_orm::sea_query::Condition;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use super::access::CustomerScope;
use super::entities::{audit_event, customer};
use super::{Access, AccountError};
use crate::clock::Clock;
use crate::ids::{CustomerId, PartnerId};

/// Every action code the log holds, with the words the audit page shows for it.
pub const ACTIONS: &[(&str, &str)] = &[
    ("user_added", "Console user added"),
    ("user_disabled", "Console user disabled"),
    ("user_enabled", "Console user enabled"),
    ("user_removed", "Console user removed"),
    ("user_role_changed", "Console user's role changed"),
    ("user_password_reset_issued", "Password-reset link made"),
    ("user_password_reset_used", "Password reset through a link"),
    ("customer_created", "Customer created"),
    ("customer_renamed", "Customer renamed"),
    ("customer_disabled", "Customer disabled"),
    ("customer_enabled", "Customer enabled"),
    ("partner_created", "Sub-partner created"),
    ("partner_renamed", "Sub-partner renamed"),
    ("partner_disabled", "Sub-partner disabled"),
    ("partner_enabled", "Sub-partner enabled"),
    ("restore_started", "Restore started"),
    ("backup_previewed", "Backup content previewed"),
    ("backup_downloaded", "Backup downloaded"),
    (
        "repository_password_revealed",
        "Repository password revealed",
    ),
    ("plan_run_now", "Backup started with Run now"),
    ("smtp_settings_changed", "Mail server settings changed"),
    ("smtp_test_sent", "Test e-mail sent"),
    ("mail_recipients_changed", "Alert e-mail recipients changed"),
    (
        "encrypted_backups_unlocked",
        "Encrypted plan's backups unlocked",
    ),
    (
        "encrypted_backups_unlock_refused",
        "Wrong password for an encrypted plan's backups",
    ),
];

/// The words for an action code (the code itself for one this version does not know).
pub fn action_label(code: &str) -> &str {
    ACTIONS
        .iter()
        .find(|(known, _)| *known == code)
        .map_or(code, |(_, label)| label)
}

/// Whose log an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Customer(CustomerId),
    Partner(PartnerId),
}

/// One change to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub owner: Owner,
    /// A code from [`ACTIONS`].
    pub action: &'static str,
    /// Whom or what it was done to, as people read it (an e-mail address, a name).
    pub subject: &'a str,
    pub detail: String,
}

/// Who made a change.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub address: Option<&'a str>,
}

impl<'a> From<&'a Access> for Actor<'a> {
    fn from(access: &'a Access) -> Self {
        Actor {
            id: access.user_id.0,
            email: &access.email,
            address: access.address.as_deref(),
        }
    }
}

/// Writes one event; `db` may be the transaction of the change itself, so the change and its
/// record stand or fall together.
pub async fn record(
    db: &impl ConnectionTrait,
    clock: &dyn Clock,
    actor: Actor<'_>,
    event: Event<'_>,
) -> Result<(), AccountError> {
    let (customer_id, partner_id) = match event.owner {
        Owner::Customer(id) => (Some(id.0), None),
        Owner::Partner(id) => (None, Some(id.0)),
    };
    audit_event::ActiveModel {
        id: Set(Uuid::new_v4()),
        at: Set(clock.now()),
        actor_id: Set(Some(actor.id)),
        actor_email: Set(actor.email.to_owned()),
        customer_id: Set(customer_id),
        partner_id: Set(partner_id),
        action: Set(event.action.into()),
        subject: Set(event.subject.to_owned()),
        detail: Set(event.detail),
        address: Set(actor.address.map(str::to_owned)),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Events shown on one page of the audit log.
pub const AUDIT_PAGE_SIZE: u64 = 50;

/// The column the log is ordered by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuditOrder {
    #[default]
    When,
    Who,
    What,
}

/// What the reader asked for: filters by actor and action (exact values; empty for all), an
/// order and a page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: String,
    pub action: String,
    pub order: AuditOrder,
    pub descending: bool,
    pub page: u64,
}

/// One page of a log, and what the filters can offer.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<audit_event::Model>,
    /// Events matching the filters.
    pub total: u64,
    /// The page shown (clamped to the last page).
    pub page: u64,
    pub pages: u64,
    /// Everyone who appears in this log, for the actor filter.
    pub actors: Vec<String>,
}

/// The log of one customer.
pub async fn customer_log(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    query: &AuditQuery,
) -> Result<AuditPage, AccountError> {
    read_log(
        db,
        Condition::all().add(audit_event::Column::CustomerId.eq(scope.id().0)),
        query,
    )
    .await
}

/// The log a partner administrator reads: their partner's and every sub-partner's events, and
/// the events of every customer below them.
pub async fn partner_log(
    db: &DatabaseConnection,
    access: &Access,
    query: &AuditQuery,
) -> Result<AuditPage, AccountError> {
    access.require_partner_admin()?;
    let partners = access.partner_subtree(db).await?;
    let customers: Vec<Uuid> = customer::Entity::find()
        .filter(customer::Column::PartnerId.is_in(partners.clone()))
        .select_only()
        .column(customer::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let reach = Condition::any()
        .add(audit_event::Column::PartnerId.is_in(partners))
        .add(audit_event::Column::CustomerId.is_in(customers));
    read_log(db, reach, query).await
}

async fn read_log(
    db: &DatabaseConnection,
    reach: Condition,
    query: &AuditQuery,
) -> Result<AuditPage, AccountError> {
    let scoped = || audit_event::Entity::find().filter(reach.clone());
    let actors: Vec<String> = scoped()
        .select_only()
        .column(audit_event::Column::ActorEmail)
        .distinct()
        .order_by_asc(audit_event::Column::ActorEmail)
        .into_tuple()
        .all(db)
        .await?;
    let mut filtered = scoped();
    if !query.actor.is_empty() {
        filtered = filtered.filter(audit_event::Column::ActorEmail.eq(query.actor.as_str()));
    }
    if !query.action.is_empty() {
        filtered = filtered.filter(audit_event::Column::Action.eq(query.action.as_str()));
    }
    let total = filtered.clone().count(db).await?;
    let pages = total.div_ceil(AUDIT_PAGE_SIZE).max(1);
    let page = query.page.min(pages - 1);
    let events = ordered(filtered, query.order, query.descending)
        .offset(page * AUDIT_PAGE_SIZE)
        .limit(AUDIT_PAGE_SIZE)
        .all(db)
        .await?;
    Ok(AuditPage {
        events,
        total,
        page,
        pages,
        actors,
    })
}

/// Orders by the chosen column, then by time and id, so equal values keep one stable order
/// from page to page.
fn ordered(
    select: Select<audit_event::Entity>,
    order: AuditOrder,
    descending: bool,
) -> Select<audit_event::Entity> {
    let direction = if descending {
        sea_orm::Order::Desc
    } else {
        sea_orm::Order::Asc
    };
    let select = match order {
        AuditOrder::When => select,
        AuditOrder::Who => select.order_by(audit_event::Column::ActorEmail, direction.clone()),
        AuditOrder::What => select.order_by(audit_event::Column::Action, direction.clone()),
    };
    let time = if order == AuditOrder::When {
        direction
    } else {
        sea_orm::Order::Desc
    };
    select
        .order_by(audit_event::Column::At, time.clone())
        .order_by(audit_event::Column::Id, time)
}
