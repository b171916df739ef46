//! Creating and changing partners and customers. Every change is made through an [`Access`], so a
//! partner administrator can only act inside their own subtree.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::access::CustomerScope;
use super::entities::{console_user, customer, partner};
use super::{Access, AccountError, FieldError, audit, validate_name};
use crate::clock::Clock;
use crate::ids::{CustomerId, PartnerId};

pub async fn create_partner(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    name: &str,
    parent: Option<PartnerId>,
) -> Result<partner::Model, AccountError> {
    let mut errors = Vec::new();
    let name = validate_name("name", name, &mut errors);
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    insert_partner(db, clock, PartnerId::new(), name, parent).await
}

/// Stores a partner whose name was validated. `db` may be a transaction, so a partner is
/// created together with its first administrator.
pub(super) async fn insert_partner<C: ConnectionTrait>(
    db: &C,
    clock: &dyn Clock,
    id: PartnerId,
    name: String,
    parent: Option<PartnerId>,
) -> Result<partner::Model, AccountError> {
    let model = partner::ActiveModel {
        id: Set(id.0),
        parent_id: Set(parent.map(|p| p.0)),
        name: Set(name),
        created_at: Set(clock.now().with_timezone(&Utc)),
        disabled: Set(false),
    };
    Ok(model.insert(db).await?)
}

/// A sub-partner of `parent`, which must be in the caller's subtree.
pub async fn create_sub_partner(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    parent: PartnerId,
    name: &str,
) -> Result<partner::Model, AccountError> {
    access.require_partner_admin()?;
    access.partner(db, parent).await?;
    create_partner(db, clock, name, Some(parent)).await
}

/// The first administrator of a new sub-partner, as typed into the form.
#[derive(Debug, Clone, Copy)]
pub struct PartnerAdmin<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
}

/// A sub-partner together with its first administrator, so it is never left unmanaged: every
/// field of both is checked first (all problems reported together), then both are stored in one
/// transaction, so a failure leaves neither.
pub async fn create_sub_partner_with_admin(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    parent: PartnerId,
    name: &str,
    admin: PartnerAdmin<'_>,
) -> Result<partner::Model, AccountError> {
    access.require_partner_admin()?;
    access.partner(db, parent).await?;
    let sub_id = PartnerId::new();
    let mut errors = Vec::new();
    let name = validate_name("name", name, &mut errors);
    let new_admin = super::users::NewUser {
        email: admin.email,
        display_name: admin.display_name,
        password: admin.password,
        role: super::Role::PartnerAdmin,
        home: super::access::Home::Partner(sub_id),
    };
    let checked = match super::users::check_new_user(db, Some(access), &new_admin).await {
        Ok(checked) => checked,
        Err(AccountError::Invalid(more)) => {
            errors.extend(more);
            return Err(AccountError::Invalid(errors));
        }
        Err(other) => return Err(other),
    };
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let txn = db.begin().await?;
    let sub = insert_partner(&txn, clock, sub_id, name, Some(parent)).await?;
    let admin = super::users::insert_user(&txn, clock, checked).await?;
    let detail = format!("administrator: {}", admin.email);
    record_partner(&txn, clock, access, &sub, "partner_created", detail).await?;
    txn.commit().await?;
    Ok(sub)
}

/// Partners directly below `parent` (which must be in the caller's subtree).
pub async fn sub_partners(
    db: &DatabaseConnection,
    access: &Access,
    parent: PartnerId,
) -> Result<Vec<partner::Model>, AccountError> {
    access.partner(db, parent).await?;
    Ok(partner::Entity::find()
        .filter(partner::Column::ParentId.eq(parent.0))
        .order_by_asc(partner::Column::Name)
        .all(db)
        .await?)
}

/// A sub-partner with what its list shows: its administrators and how many customers it has.
#[derive(Debug, Clone)]
pub struct SubPartnerSummary {
    pub partner: partner::Model,
    pub admins: Vec<console_user::Model>,
    pub customers: usize,
}

/// The partners directly below `parent`, each with its administrators and customer count.
pub async fn sub_partner_summaries(
    db: &DatabaseConnection,
    access: &Access,
    parent: PartnerId,
) -> Result<Vec<SubPartnerSummary>, AccountError> {
    let children = sub_partners(db, access, parent).await?;
    let ids: Vec<_> = children.iter().map(|p| p.id).collect();
    let admins = console_user::Entity::find()
        .filter(console_user::Column::PartnerId.is_in(ids.clone()))
        .order_by_asc(console_user::Column::Email)
        .all(db)
        .await?;
    let customers = customer::Entity::find()
        .filter(customer::Column::PartnerId.is_in(ids))
        .all(db)
        .await?;
    Ok(children
        .into_iter()
        .map(|p| SubPartnerSummary {
            admins: admins
                .iter()
                .filter(|a| a.partner_id == Some(p.id))
                .cloned()
                .collect(),
            customers: customers.iter().filter(|c| c.partner_id == p.id).count(),
            partner: p,
        })
        .collect())
}

/// One sub-partner below the caller, with its administrators and customer count.
pub async fn sub_partner_summary(
    db: &DatabaseConnection,
    access: &Access,
    id: PartnerId,
) -> Result<SubPartnerSummary, AccountError> {
    let partner = sub_partner(db, access, id).await?;
    let admins = console_user::Entity::find()
        .filter(console_user::Column::PartnerId.eq(partner.id))
        .order_by_asc(console_user::Column::Email)
        .all(db)
        .await?;
    let customers = customer::Entity::find()
        .filter(customer::Column::PartnerId.eq(partner.id))
        .all(db)
        .await?
        .len();
    Ok(SubPartnerSummary {
        partner,
        admins,
        customers,
    })
}

pub async fn create_customer(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    owner: PartnerId,
    name: &str,
) -> Result<customer::Model, AccountError> {
    access.require_partner_admin()?;
    access.partner(db, owner).await?;
    let mut errors = Vec::new();
    let name = validate_name("name", name, &mut errors);
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    ensure_customer_name_free(db, owner, &name, None).await?;
    let model = customer::ActiveModel {
        id: Set(CustomerId::new().0),
        partner_id: Set(owner.0),
        name: Set(name),
        disabled: Set(false),
        created_at: Set(clock.now()),
    };
    let txn = db.begin().await?;
    let created = model.insert(&txn).await?;
    record_customer(
        &txn,
        clock,
        access,
        &created,
        "customer_created",
        String::new(),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

async fn record_customer(
    db: &impl ConnectionTrait,
    clock: &dyn Clock,
    access: &Access,
    customer: &customer::Model,
    action: &'static str,
    detail: String,
) -> Result<(), AccountError> {
    audit::record(
        db,
        clock,
        access.into(),
        audit::Event {
            owner: audit::Owner::Customer(CustomerId(customer.id)),
            action,
            subject: &customer.name,
            detail,
        },
    )
    .await
}

pub async fn rename_customer(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    name: &str,
) -> Result<customer::Model, AccountError> {
    access.require_partner_admin()?;
    let mut errors = Vec::new();
    let name = validate_name("name", name, &mut errors);
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let current = scope.customer();
    ensure_customer_name_free(db, PartnerId(current.partner_id), &name, Some(current.id)).await?;
    if current.name == name {
        return Ok(current.clone());
    }
    let mut model: customer::ActiveModel = current.clone().into();
    model.name = Set(name);
    let txn = db.begin().await?;
    let renamed = model.update(&txn).await?;
    let detail = format!("was {}", current.name);
    record_customer(&txn, clock, access, &renamed, "customer_renamed", detail).await?;
    txn.commit().await?;
    Ok(renamed)
}

/// Disabling a customer signs its users out and stops them signing in; its data and backups stay.
pub async fn set_customer_disabled(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    disabled: bool,
) -> Result<customer::Model, AccountError> {
    access.require_partner_admin()?;
    if scope.customer().disabled == disabled {
        return Ok(scope.customer().clone());
    }
    let mut model: customer::ActiveModel = scope.customer().clone().into();
    model.disabled = Set(disabled);
    let txn = db.begin().await?;
    let updated = model.update(&txn).await?;
    let action = if disabled {
        "customer_disabled"
    } else {
        "customer_enabled"
    };
    record_customer(&txn, clock, access, &updated, action, String::new()).await?;
    txn.commit().await?;
    if disabled {
        let users = console_user::Entity::find()
            .filter(console_user::Column::CustomerId.eq(scope.id().0))
            .all(db)
            .await?;
        for user in users {
            super::session_store::revoke_user_sessions(db, user.id.into()).await?;
        }
    }
    Ok(updated)
}

/// A partner strictly below the caller's own (in their subtree, not their own), else
/// `NotFound`: nobody renames or disables the partner they sign in with.
pub async fn sub_partner(
    db: &DatabaseConnection,
    access: &Access,
    id: PartnerId,
) -> Result<partner::Model, AccountError> {
    let own = access.require_partner_admin()?;
    if id == own {
        return Err(AccountError::NotFound);
    }
    access.partner(db, id).await
}

async fn record_partner(
    db: &impl ConnectionTrait,
    clock: &dyn Clock,
    access: &Access,
    partner: &partner::Model,
    action: &'static str,
    detail: String,
) -> Result<(), AccountError> {
    // Recorded under the parent: the change is the parent's decision about its sub-partner.
    let owner = PartnerId(partner.parent_id.unwrap_or(partner.id));
    audit::record(
        db,
        clock,
        access.into(),
        audit::Event {
            owner: audit::Owner::Partner(owner),
            action,
            subject: &partner.name,
            detail,
        },
    )
    .await
}

pub async fn rename_sub_partner(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    id: PartnerId,
    name: &str,
) -> Result<partner::Model, AccountError> {
    let current = sub_partner(db, access, id).await?;
    let mut errors = Vec::new();
    let name = validate_name("name", name, &mut errors);
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    if current.name == name {
        return Ok(current);
    }
    let detail = format!("was {}", current.name);
    let mut model: partner::ActiveModel = current.into();
    model.name = Set(name);
    let txn = db.begin().await?;
    let renamed = model.update(&txn).await?;
    record_partner(&txn, clock, access, &renamed, "partner_renamed", detail).await?;
    txn.commit().await?;
    Ok(renamed)
}

/// Disabling a sub-partner signs out its administrators and those of the partners below it and
/// stops them signing in; its customers, their users, organizations and backups stay as they
/// are, and the partners above it still manage them.
pub async fn set_sub_partner_disabled(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    id: PartnerId,
    disabled: bool,
) -> Result<partner::Model, AccountError> {
    let current = sub_partner(db, access, id).await?;
    if current.disabled == disabled {
        return Ok(current);
    }
    let mut model: partner::ActiveModel = current.into();
    model.disabled = Set(disabled);
    let txn = db.begin().await?;
    let updated = model.update(&txn).await?;
    let action = if disabled {
        "partner_disabled"
    } else {
        "partner_enabled"
    };
    record_partner(&txn, clock, access, &updated, action, String::new()).await?;
    txn.commit().await?;
    if disabled {
        let below = super::access::partner_subtree(db, id).await?;
        let admins = console_user::Entity::find()
            .filter(console_user::Column::PartnerId.is_in(below))
            .all(db)
            .await?;
        for admin in admins {
            super::session_store::revoke_user_sessions(db, admin.id.into()).await?;
        }
    }
    Ok(updated)
}

async fn ensure_customer_name_free(
    db: &DatabaseConnection,
    owner: PartnerId,
    name: &str,
    except: Option<uuid::Uuid>,
) -> Result<(), AccountError> {
    let siblings = customer::Entity::find()
        .filter(customer::Column::PartnerId.eq(owner.0))
        .all(db)
        .await?;
    let taken = siblings
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(name) && Some(c.id) != except);
    if taken {
        return Err(AccountError::Invalid(vec![FieldError {
            field: "name",
            message: "A customer with this name already exists.".into(),
        }]));
    }
    Ok(())
}
