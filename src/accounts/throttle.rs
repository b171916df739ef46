//! Throttling of failed sign-ins, per account and per client address, kept in the database so it
//! holds across nodes and restarts. A success clears the account's failures; the address count
//! stays, so one address cannot try many accounts.

use chrono::Duration;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};

use super::AccountError;
use super::entities::signin_failure;
use crate::clock::Clock;

/// Failures within the window that lock an account.
pub const ACCOUNT_LIMIT: u64 = 5;
/// Failures within the window that lock an address (a shared office address tries many users).
pub const ADDRESS_LIMIT: u64 = 20;
pub const WINDOW_MINUTES: i64 = 15;

/// `Throttled` when the account or the address has failed too often recently.
pub async fn check(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    account: &str,
    address: &str,
) -> Result<(), AccountError> {
    let since = clock.now() - Duration::minutes(WINDOW_MINUTES);
    for (column, value, limit) in [
        (signin_failure::Column::Account, account, ACCOUNT_LIMIT),
        (signin_failure::Column::Address, address, ADDRESS_LIMIT),
    ] {
        let recent = signin_failure::Entity::find()
            .filter(column.eq(value))
            .filter(signin_failure::Column::At.gt(since));
        if recent.clone().count(db).await? >= limit {
            // Locked until the oldest failure in the window ages out.
            let oldest = recent
                .order_by_asc(signin_failure::Column::At)
                .one(db)
                .await?;
            let unlock = oldest
                .map(|f| f.at + Duration::minutes(WINDOW_MINUTES))
                .unwrap_or(clock.now());
            let minutes = ((unlock - clock.now()).num_seconds() + 59) / 60;
            return Err(AccountError::Throttled {
                minutes: minutes.max(1),
            });
        }
    }
    Ok(())
}

pub async fn record_failure(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    account: &str,
    address: &str,
) -> Result<(), AccountError> {
    signin_failure::ActiveModel {
        account: Set(account.to_string()),
        address: Set(address.to_string()),
        at: Set(clock.now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

pub async fn clear_account(db: &DatabaseConnection, account: &str) -> Result<(), AccountError> {
    signin_failure::Entity::delete_many()
        .filter(signin_failure::Column::Account.eq(account))
        .exec(db)
        .await?;
    Ok(())
}

/// Drops failures older than the window; run periodically.
pub async fn forget_old_failures(
    db: &DatabaseConnection,
    clock: &dyn Clock,
) -> Result<u64, AccountError> {
    let since = clock.now() - Duration::minutes(WINDOW_MINUTES);
    let result = signin_failure::Entity::delete_many()
        .filter(signin_failure::Column::At.lte(since))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
