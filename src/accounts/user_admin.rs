//! Administrators managing a customer's console users: disable and re-enable, remove, change
//! role, and issue a one-time password-reset link. Every change goes through the customer's
//! scope (a user of another customer is *not found*), is refused on one's own account (nobody
//! locks themselves out by a slip), ends the user's sessions at once when it takes access away,
//! and is written to the audit log.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, TransactionTrait,
};
use sha2::{Digest, Sha256};

use super::access::CustomerScope;
use super::audit;
use super::entities::{console_user, password_reset};
use super::password::hash_password;
use super::session_store::revoke_user_sessions;
use super::{Access, AccountError, FieldError, Role, validate_new_password};
use crate::clock::Clock;
use crate::ids::{CustomerId, UserId};

/// How long a password-reset link works.
pub const RESET_LINK_HOURS: i64 = 24;

/// What an administrator does to a console user, as recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserChange {
    Disabled,
    Enabled,
    Removed,
    RoleChanged(Role),
    PasswordResetIssued,
}

impl UserChange {
    pub fn action(self) -> &'static str {
        match self {
            UserChange::Disabled => "user_disabled",
            UserChange::Enabled => "user_enabled",
            UserChange::Removed => "user_removed",
            UserChange::RoleChanged(_) => "user_role_changed",
            UserChange::PasswordResetIssued => "user_password_reset_issued",
        }
    }

    fn detail(self) -> String {
        match self {
            UserChange::RoleChanged(role) => format!("new role: {}", role.label()),
            UserChange::PasswordResetIssued => {
                format!("one-time link valid for {RESET_LINK_HOURS} hours")
            }
            _ => String::new(),
        }
    }
}

/// Partner administrators, and the customer's own administrators, manage its console users.
fn require_manager(access: &Access, scope: &CustomerScope) -> Result<(), AccountError> {
    let allowed = access.role == Role::PartnerAdmin
        || (access.role == Role::CustomerAdmin && scope.can_change());
    if allowed {
        Ok(())
    } else {
        Err(AccountError::Forbidden)
    }
}

/// The console user `id` of this customer, else `NotFound` (users of other customers and
/// partner administrators included), and never the acting user themselves.
async fn managed_user(
    db: &DatabaseConnection,
    access: &Access,
    scope: &CustomerScope,
    id: UserId,
) -> Result<console_user::Model, AccountError> {
    require_manager(access, scope)?;
    let user = console_user::Entity::find_by_id(id.0)
        .filter(console_user::Column::CustomerId.eq(scope.id().0))
        .one(db)
        .await?
        .ok_or(AccountError::NotFound)?;
    if user.id == access.user_id.0 {
        return Err(AccountError::invalid(
            "user",
            "You cannot change your own account here; ask another administrator.",
        ));
    }
    Ok(user)
}

async fn record(
    db: &impl ConnectionTrait,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    subject: &console_user::Model,
    change: UserChange,
) -> Result<(), AccountError> {
    audit::record(
        db,
        clock,
        access.into(),
        audit::Event {
            owner: audit::Owner::Customer(scope.id()),
            action: change.action(),
            subject: &subject.email,
            detail: change.detail(),
        },
    )
    .await
}

/// Disables (signing the user out at once) or re-enables a console user.
pub async fn set_user_disabled(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    id: UserId,
    disabled: bool,
) -> Result<console_user::Model, AccountError> {
    let user = managed_user(db, access, scope, id).await?;
    let txn = db.begin().await?;
    let mut model: console_user::ActiveModel = user.clone().into();
    model.disabled = Set(disabled);
    let updated = model.update(&txn).await?;
    let change = if disabled {
        UserChange::Disabled
    } else {
        UserChange::Enabled
    };
    record(&txn, clock, access, scope, &user, change).await?;
    txn.commit().await?;
    if disabled {
        revoke_user_sessions(db, id).await?;
    }
    Ok(updated)
}

/// Removes a console user: their sessions end at once and they can no longer sign in.
pub async fn remove_user(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    id: UserId,
) -> Result<(), AccountError> {
    let user = managed_user(db, access, scope, id).await?;
    revoke_user_sessions(db, id).await?;
    let txn = db.begin().await?;
    password_reset::Entity::delete_many()
        .filter(password_reset::Column::UserId.eq(user.id))
        .exec(&txn)
        .await?;
    console_user::Entity::delete_by_id(user.id)
        .exec(&txn)
        .await?;
    record(&txn, clock, access, scope, &user, UserChange::Removed).await?;
    txn.commit().await?;
    Ok(())
}

/// Changes a customer user's role (customer administrator or read-only); it applies from the
/// user's next request, since access is read afresh on every request.
pub async fn change_role(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    id: UserId,
    role: Role,
) -> Result<console_user::Model, AccountError> {
    if role == Role::PartnerAdmin {
        return Err(AccountError::invalid(
            "role",
            "Choose Customer administrator or Read-only user.",
        ));
    }
    let user = managed_user(db, access, scope, id).await?;
    if user.role == role.as_str() {
        return Ok(user);
    }
    let txn = db.begin().await?;
    let mut model: console_user::ActiveModel = user.clone().into();
    model.role = Set(role.as_str().into());
    let updated = model.update(&txn).await?;
    record(
        &txn,
        clock,
        access,
        scope,
        &user,
        UserChange::RoleChanged(role),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}

/// Issues a one-time password-reset link token for a console user (replacing any earlier one).
/// The token is returned once to be shown or mailed; only its hash is stored.
pub async fn issue_password_reset(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    id: UserId,
) -> Result<(String, DateTime<Utc>), AccountError> {
    let user = managed_user(db, access, scope, id).await?;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let expires_at = clock.now() + Duration::hours(RESET_LINK_HOURS);
    let txn = db.begin().await?;
    password_reset::Entity::delete_many()
        .filter(password_reset::Column::UserId.eq(user.id))
        .exec(&txn)
        .await?;
    password_reset::ActiveModel {
        token_hash: Set(token_hash(&token)),
        user_id: Set(user.id),
        issued_by: Set(access.user_id.0),
        expires_at: Set(expires_at),
    }
    .insert(&txn)
    .await?;
    record(
        &txn,
        clock,
        access,
        scope,
        &user,
        UserChange::PasswordResetIssued,
    )
    .await?;
    txn.commit().await?;
    Ok((token, expires_at))
}

/// Whether a reset link is still usable: the e-mail of the account it resets, else `None`.
pub async fn reset_link_user(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    token: &str,
) -> Result<Option<String>, AccountError> {
    let Some(reset) = password_reset::Entity::find_by_id(token_hash(token))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if reset.expires_at <= clock.now() {
        return Ok(None);
    }
    Ok(console_user::Entity::find_by_id(reset.user_id)
        .one(db)
        .await?
        .filter(|user| !user.disabled)
        .map(|user| user.email))
}

/// Sets a new password through a reset link, spends the link and ends the user's sessions;
/// `address` is where the request came from, for the audit log.
pub async fn reset_password(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    token: &str,
    new: &str,
    confirm: &str,
    address: Option<&str>,
) -> Result<(), AccountError> {
    let mut errors = Vec::new();
    validate_new_password("new_password", new, &mut errors);
    if new != confirm {
        errors.push(FieldError {
            field: "confirm_password",
            message: "The two new passwords differ.".into(),
        });
    }
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let hash = hash_password(new).await?;
    let txn = db.begin().await?;
    // Deleting the link first makes two uses race on one row: only one sees it deleted by itself.
    let Some(reset) = password_reset::Entity::find_by_id(token_hash(token))
        .one(&txn)
        .await?
    else {
        return Err(AccountError::NotFound);
    };
    let spent = password_reset::Entity::delete_by_id(reset.token_hash.clone())
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 || reset.expires_at <= clock.now() {
        return Err(AccountError::NotFound);
    }
    let user = console_user::Entity::find_by_id(reset.user_id)
        .one(&txn)
        .await?
        .filter(|user| !user.disabled)
        .ok_or(AccountError::NotFound)?;
    let mut model: console_user::ActiveModel = user.clone().into();
    model.password_hash = Set(hash);
    model.update(&txn).await?;
    if let Some(customer) = user.customer_id {
        audit::record(
            &txn,
            clock,
            audit::Actor {
                id: user.id,
                email: &user.email,
                address,
            },
            audit::Event {
                owner: audit::Owner::Customer(CustomerId(customer)),
                action: "user_password_reset_used",
                subject: &user.email,
                detail: String::new(),
            },
        )
        .await?;
    }
    txn.commit().await?;
    revoke_user_sessions(db, UserId(user.id)).await?;
    Ok(())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
