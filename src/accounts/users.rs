//! Console users: creating them, signing in, changing passwords.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::access::{CustomerScope, Home};
use super::entities::console_user;
use super::password::{dummy_verify, hash_password, verify_password};
use super::{
    Access, AccountError, FieldError, Role, throttle, validate_email, validate_name,
    validate_new_password,
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

/// What the add-user forms say when the address belongs to an account the adder cannot see.
pub const EMAIL_UNAVAILABLE: &str =
    "This email address cannot be used for a new user. Use another address.";

/// A new user whose fields passed every check; only [`check_new_user`] makes one. Not `Debug`:
/// it holds the password.
pub struct CheckedUser<'a> {
    email: String,
    display_name: String,
    password: &'a str,
    role: Role,
    home: Home,
}

/// Creates a user on the operator's behalf (the command line), after validating every field; all
/// problems are reported together. Console users add users through [`create_customer_user`],
/// which decides what the form may say about an address already in use.
pub async fn create_user(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    new: NewUser<'_>,
) -> Result<console_user::Model, AccountError> {
    let checked = check_new_user(db, None, &new).await?;
    insert_user(db, clock, checked).await
}

/// Checks every field of a new user without writing anything. `added_by` is the console user
/// adding the user; `None` is the operator (first-run setup, the command line), who may see
/// every account.
///
/// Email addresses are unique across the instance, because signing in asks for the address
/// alone. When the address is taken, the form says "A user with this email already exists" only
/// if the existing account is one the adder can already see (their own customer's users; for a
/// partner administrator, every account in the partner's subtree). An account anywhere else is
/// never confirmed: the form gives [`EMAIL_UNAVAILABLE`], which names no tenant and does not say
/// that an account exists, and the server log records the attempt with both accounts, so the
/// operator, who owns every account, is told instead. The refusal itself still shows that the
/// address cannot be used here; hiding even that needs an invitation its owner accepts.
pub async fn check_new_user<'a, C: ConnectionTrait>(
    db: &C,
    added_by: Option<&Access>,
    new: &NewUser<'a>,
) -> Result<CheckedUser<'a>, AccountError> {
    let mut errors = Vec::new();
    let email = validate_email("email", new.email, &mut errors);
    let display_name = validate_name("display_name", new.display_name, &mut errors);
    validate_new_password("password", new.password, &mut errors);
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
    // Only a well-formed address is looked up: the checks above are what keep NUL and
    // megabytes of text out of the query.
    if errors.is_empty()
        && let Some(existing) = user_by_email(db, &email).await?
    {
        let visible = match added_by {
            Some(access) => access.sees_user(db, &existing).await?,
            None => true,
        };
        if !visible {
            tracing::warn!(
                adder = ?added_by.map(|a| a.user_id.to_string()),
                existing_user = %existing.id,
                "a new user was refused: the address belongs to an account outside the adder's tenants"
            );
        }
        errors.push(FieldError {
            field: "email",
            message: if visible {
                "A user with this email already exists.".into()
            } else {
                EMAIL_UNAVAILABLE.into()
            },
        });
    }
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    Ok(CheckedUser {
        email,
        display_name,
        password: new.password,
        role: new.role,
        home: new.home,
    })
}

/// Stores a checked user. `db` may be a transaction, so a caller can create the user together
/// with its home.
pub async fn insert_user<C: ConnectionTrait>(
    db: &C,
    clock: &dyn Clock,
    user: CheckedUser<'_>,
) -> Result<console_user::Model, AccountError> {
    let (partner_id, customer_id) = match user.home {
        Home::Partner(PartnerId(id)) => (Some(id), None),
        Home::Customer(CustomerId(id)) => (None, Some(id)),
    };
    let model = console_user::ActiveModel {
        id: Set(UserId::new().0),
        email: Set(user.email),
        display_name: Set(user.display_name),
        password_hash: Set(hash_password(user.password).await?),
        role: Set(user.role.as_str().to_string()),
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
    let checked = check_new_user(db, Some(access), &new).await?;
    let txn = db.begin().await?;
    let created = insert_user(&txn, clock, checked).await?;
    super::audit::record(
        &txn,
        clock,
        access.into(),
        super::audit::Event {
            owner: super::audit::Owner::Customer(scope.id()),
            action: "user_added",
            subject: &created.email,
            detail: format!("role: {}", user.role.label()),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(created)
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

async fn user_by_email<C: ConnectionTrait>(
    db: &C,
    email: &str,
) -> Result<Option<console_user::Model>, AccountError> {
    Ok(console_user::Entity::find()
        .filter(console_user::Column::Email.eq(email))
        .one(db)
        .await?)
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
    // An address no account can have is refused before it reaches a query or the throttle's
    // table: PostgreSQL rejects NUL in text, and nothing is learnt about any account.
    let mut errors = Vec::new();
    let email = validate_email("email", email, &mut errors);
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
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
