//! Pending admin-consent requests. The `state` sent to Microsoft is random, single use, expires
//! after 15 minutes and is bound to the console user who started it, so a consent callback can
//! neither be replayed nor be delivered into someone else's session.

use chrono::Duration;
use rand::distr::{Alphanumeric, SampleString};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};

use super::InventoryError;
use super::entities::consent_request;
use crate::accounts::access::CustomerScope;
use crate::clock::Clock;
use crate::ids::{CustomerId, UserId};

const CONSENT_VALID_MINUTES: i64 = 15;

/// Records a consent request for `scope` by `user` and returns the `state` to send.
pub async fn begin_consent(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    scope: &CustomerScope,
    user: UserId,
) -> Result<String, InventoryError> {
    scope.require_change()?;
    // Old, unused requests are removed here rather than by a separate tick.
    consent_request::Entity::delete_many()
        .filter(consent_request::Column::ExpiresAt.lte(clock.now()))
        .exec(db)
        .await?;
    let state = Alphanumeric.sample_string(&mut rand::rng(), 40);
    consent_request::ActiveModel {
        state: Set(state.clone()),
        customer_id: Set(scope.id().0),
        user_id: Set(user.0),
        expires_at: Set(clock.now() + Duration::minutes(CONSENT_VALID_MINUTES)),
    }
    .insert(db)
    .await?;
    Ok(state)
}

/// Why a callback's `state` is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateProblem {
    /// Unknown, already used, or started by another user.
    Unknown,
    Expired,
}

/// Consumes the request named by `state`: it can be taken once, by the user who started it.
pub async fn take_consent_request(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    state: &str,
    user: UserId,
) -> Result<Result<CustomerId, StateProblem>, InventoryError> {
    let Some(request) = consent_request::Entity::find_by_id(state.to_string())
        .one(db)
        .await?
    else {
        return Ok(Err(StateProblem::Unknown));
    };
    if request.user_id != user.0 {
        return Ok(Err(StateProblem::Unknown));
    }
    let removed = consent_request::Entity::delete_by_id(state.to_string())
        .exec(db)
        .await?;
    if removed.rows_affected != 1 {
        // Another request with the same state won the race: this one is a replay.
        return Ok(Err(StateProblem::Unknown));
    }
    if request.expires_at <= clock.now() {
        return Ok(Err(StateProblem::Expired));
    }
    Ok(Ok(CustomerId(request.customer_id)))
}
