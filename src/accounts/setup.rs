//! First run: while no console user exists, the server prints a one-time setup link with a random
//! token; the page at that link creates the first partner and its administrator. Only the token's
//! hash is stored, a new token replaces the old at every start, and claiming it closes setup for
//! good. Without the token nobody can claim a fresh instance.

use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait, TransactionTrait,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::access::Home;
use super::entities::{console_user, instance_state};
use super::users::{NewUser, check_new_user, count_users, insert_user};
use super::{AccountError, FieldError, Role, tenancy, validate_name};
use crate::clock::Clock;
use crate::ids::PartnerId;

const SETUP_TOKEN_KEY: &str = "setup_token_sha256";

/// Opens setup when the instance has no users: returns the new token to print, else `None`.
pub async fn open_setup_if_unclaimed(
    db: &DatabaseConnection,
) -> Result<Option<String>, AccountError> {
    if count_users(db).await? > 0 {
        instance_state::Entity::delete_by_id(SETUP_TOKEN_KEY.to_string())
            .exec(db)
            .await?;
        return Ok(None);
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    instance_state::Entity::delete_by_id(SETUP_TOKEN_KEY.to_string())
        .exec(db)
        .await?;
    instance_state::ActiveModel {
        key: Set(SETUP_TOKEN_KEY.into()),
        value: Set(token_hash(&token)),
    }
    .insert(db)
    .await?;
    Ok(Some(token))
}

/// True while `token` is the current, unclaimed setup token.
pub async fn setup_token_valid(db: &DatabaseConnection, token: &str) -> Result<bool, AccountError> {
    let stored = instance_state::Entity::find_by_id(SETUP_TOKEN_KEY.to_string())
        .one(db)
        .await?;
    Ok(stored
        .is_some_and(|row| bool::from(row.value.as_bytes().ct_eq(token_hash(token).as_bytes()))))
}

pub struct FirstAdmin<'a> {
    pub organisation: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
    pub confirm: &'a str,
}

/// Creates the first partner and its administrator, and closes setup. Every field is checked
/// before anything is written, and the token is spent in the same transaction that stores the
/// partner and its administrator: a setup that fails for any reason (a bad field, a database
/// error) leaves the link usable, and two simultaneous claims cannot both succeed.
pub async fn claim(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    token: &str,
    form: FirstAdmin<'_>,
) -> Result<console_user::Model, AccountError> {
    if !setup_token_valid(db, token).await? || count_users(db).await? > 0 {
        return Err(AccountError::SetupClosed);
    }
    let partner_id = PartnerId::new();
    let mut errors = Vec::new();
    let organisation = validate_name("organisation", form.organisation, &mut errors);
    if form.password != form.confirm {
        errors.push(FieldError {
            field: "confirm",
            message: "The two passwords differ.".into(),
        });
    }
    let admin = NewUser {
        email: form.email,
        display_name: form.display_name,
        password: form.password,
        role: Role::PartnerAdmin,
        home: Home::Partner(partner_id),
    };
    let checked = match check_new_user(db, None, &admin).await {
        Ok(checked) => Some(checked),
        Err(AccountError::Invalid(more)) => {
            errors.extend(more);
            None
        }
        Err(other) => return Err(other),
    };
    let Some(checked) = checked.filter(|_| errors.is_empty()) else {
        return Err(AccountError::Invalid(errors));
    };
    let txn = db.begin().await?;
    // Deleting the token row first makes two simultaneous claims race on one row: only one
    // transaction sees it deleted by itself. Until commit, a failure below rolls it back.
    let removed = instance_state::Entity::delete_by_id(SETUP_TOKEN_KEY.to_string())
        .exec(&txn)
        .await?;
    if removed.rows_affected != 1 {
        return Err(AccountError::SetupClosed);
    }
    tenancy::insert_partner(&txn, clock, partner_id, organisation, None).await?;
    let user = insert_user(&txn, clock, checked).await?;
    txn.commit().await?;
    Ok(user)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
