//! Console users: creating them, signing in, changing passwords.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};

use super::access::{CustomerScope, Home};
use super::entities::console_user;
use super::password::{dummy_verify, hash_password, verify_password};
use super::{
    Access, AccountError, FieldError, Role, normalise_email, throttle, validate_email,
    validate_name, validate_new_password,
};
use crate::clock::Clock;
use crate::ids::{CustomerId, PartnerId, UserId};

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
    pub role: Role,
    pub home: Home,
}

/// Creates a user after validating every field; all problems are reported together.
pub async fn create_user(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    new: NewUser<'_>,
) -> Result<console_user::Model, AccountError> {
    let mut errors = Vec::new();
    let email = validate_email("email", new.email, &mut errors);
    let display_name = validate_name("display_name", new.display_name, &mut errors);
    validate_new_password("password", new.password, &mut errors);
    if errors.is_empty() && email_taken(db, &email).await? {
        errors.push(FieldError {
            field: "email",
            message: "A user with this email already exists.".into(),
        });
    }
    let role_fits_home = matches!(
        (new.role, new.home),
        (Role::PartnerAdmin, Home::Partner(_))
            | (Role::CustomerAdmin | Role::ReadOnly, Home::Customer(_))
    );
    if !role_fits_home {
        errors.push(FieldError {
            field: "role",
            message: "This role does not fit this account.".into(),
        });
    }
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let (partner_id, customer_id) = match new.home {
        Home::Partner(PartnerId(id)) => (Some(id), None),
        Home::Customer(CustomerId(id)) => (None, Some(id)),
    };
    let model = console_user::ActiveModel {
        id: Set(UserId::new().0),
        email: Set(email),
        display_name: Set(display_name),
        password_hash: Set(hash_password(new.password).await?),
        role: Set(new.role.as_str().to_string()),
        partner_id: Set(partner_id),
        customer_id: Set(customer_id),
        disabled: Set(false),
        created_at: Set(clock.now()),
    };
    Ok(model.insert(db).await?)
}

/// A console user of a customer, as typed into the add-user form.
#[derive(Debug, Clone)]
pub struct CustomerUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
    pub role: Role,
}

/// A partner administrator, or an administrator of the customer, adds a user to the customer.
pub async fn create_customer_user(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    user: CustomerUser<'_>,
) -> Result<console_user::Model, AccountError> {
    let allowed = access.role == Role::PartnerAdmin
        || (access.role == Role::CustomerAdmin && scope.can_change());
    if !allowed || user.role == Role::PartnerAdmin {
        return Err(AccountError::Forbidden);
    }
    let new = NewUser {
        email: user.email,
        display_name: user.display_name,
        password: user.password,
        role: user.role,
        home: Home::Customer(scope.id()),
    };
    create_user(db, clock, new).await
}

pub async fn customer_users(
    db: &DatabaseConnection,
    scope: &CustomerScope,
) -> Result<Vec<console_user::Model>, AccountError> {
    Ok(console_user::Entity::find()
        .filter(console_user::Column::CustomerId.eq(scope.id().0))
        .order_by_asc(console_user::Column::Email)
        .all(db)
        .await?)
}

/// How many console users each of `customers` has (ids a caller got from `Access::customers`).
pub async fn console_user_counts(
    db: &DatabaseConnection,
    customers: &[uuid::Uuid],
) -> Result<std::collections::HashMap<uuid::Uuid, usize>, AccountError> {
    let mut counts = std::collections::HashMap::new();
    for user in console_user::Entity::find()
        .filter(console_user::Column::CustomerId.is_in(customers.iter().copied()))
        .all(db)
        .await?
    {
        if let Some(id) = user.customer_id {
            *counts.entry(id).or_default() += 1;
        }
    }
    Ok(counts)
}

pub async fn count_users(db: &DatabaseConnection) -> Result<u64, AccountError> {
    Ok(console_user::Entity::find().count(db).await?)
}

async fn email_taken(db: &DatabaseConnection, email: &str) -> Result<bool, AccountError> {
    Ok(console_user::Entity::find()
        .filter(console_user::Column::Email.eq(email))
        .count(db)
        .await?
        > 0)
}

/// Signs a user in. Throttled per account and per address; a wrong email and a wrong password
/// look the same and take the same time.
pub async fn authenticate(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    email: &str,
    password: &str,
    address: &str,
) -> Result<Access, AccountError> {
    let email = normalise_email(email);
    throttle::check(db, clock, &email, address).await?;
    let user = console_user::Entity::find()
        .filter(console_user::Column::Email.eq(&email))
        .one(db)
        .await?;
    let verified = match &user {
        Some(user) => verify_password(password, &user.password_hash).await,
        None => {
            dummy_verify(password).await;
            false
        }
    };
    let access = match (verified, user) {
        (true, Some(user)) => Access::from_user(db, user).await?,
        _ => None,
    };
    match access {
        Some(access) => {
            throttle::clear_account(db, &email).await?;
            Ok(access)
        }
        None => {
            throttle::record_failure(db, clock, &email, address).await?;
            Err(AccountError::BadCredentials)
        }
    }
}

/// Changes the password after checking the current one, and ends the user's other sessions.
pub async fn change_password(
    db: &DatabaseConnection,
    access: &Access,
    current: &str,
    new: &str,
    confirm: &str,
) -> Result<(), AccountError> {
    let user = console_user::Entity::find_by_id(access.user_id.0)
        .one(db)
        .await?
        .ok_or(AccountError::NotFound)?;
    let mut errors = Vec::new();
    if !verify_password(current, &user.password_hash).await {
        errors.push(FieldError {
            field: "current_password",
            message: "This is not your current password.".into(),
        });
    }
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
    let mut model: console_user::ActiveModel = user.into();
    model.password_hash = Set(hash_password(new).await?);
    model.update(db).await?;
    super::session_store::revoke_user_sessions(db, access.user_id).await?;
    Ok(())
}
