//! Pending admin-consent requests. The `state` sent to Microsoft is random, single use, expires
//! after 15 minutes and is bound to the console user who started it, so a consent callback can
//! neither be replayed nor be delivered into someone else's session.

use chrono::Duration;
use rand::distr::{Alphanumeric, SampleString};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};

use super::InventoryError;
use super::entities::{consent_request, organization};
use super::organizations::{self, Added};
use crate::accounts::access::CustomerScope;
use crate::clock::Clock;
use crate::ids::{CustomerId, UserId};
use crate::m365::{ConsentError, ConsentRefusal, GraphClient, parse_consent_callback};

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

/// How a consent answer from Microsoft ended, once its `state` was accepted.
#[derive(Debug)]
pub enum ConsentOutcome {
    /// The tenant was proven and added; its first sync is to be queued.
    Added(Box<organization::Model>),
    /// Consent was given again for an organization this customer already has.
    AlreadyAdded,
    Declined,
    /// A user who is not a global administrator signed in.
    NotAdmin,
    /// Sign-in or consent was cancelled at Microsoft.
    Cancelled,
    /// Microsoft reported another error, or the answer was unusable.
    Failed,
    /// The answer's `state` is not the one issued.
    StateMismatch,
    /// No app-only token could be had for the tenant named in the answer.
    Unproven,
    /// The organization is protected by another customer.
    TakenByAnotherCustomer,
}

/// Completes admin consent for `scope`: reads Microsoft's answer (`query`), proves the tenant it
/// names with an app-only token before trusting it (the answer itself can be forged), and adds
/// the organization.
pub async fn complete_consent(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    graph: &GraphClient,
    scope: &CustomerScope,
    query: &str,
    state: &str,
    sync_interval: chrono::Duration,
) -> Result<ConsentOutcome, InventoryError> {
    let grant = match parse_consent_callback(query, state) {
        Ok(grant) => grant,
        Err(ConsentError::Refused {
            refusal,
            error,
            description,
        }) => {
            tracing::info!(%error, "admin consent refused: {description}");
            return Ok(match refusal {
                // AADSTS90094 ("Admin consent is required"): a user who is not an administrator
                // signed in; Microsoft reports it as access_denied, like a cancelled sign-in.
                _ if description.contains("AADSTS90094") => ConsentOutcome::NotAdmin,
                ConsentRefusal::Declined => ConsentOutcome::Declined,
                ConsentRefusal::ConsentRequired => ConsentOutcome::NotAdmin,
                ConsentRefusal::AccessDenied | ConsentRefusal::PermissionDenied => {
                    ConsentOutcome::Cancelled
                }
                ConsentRefusal::Unknown => ConsentOutcome::Failed,
            });
        }
        Err(ConsentError::StateMismatch) => return Ok(ConsentOutcome::StateMismatch),
        Err(other) => {
            tracing::warn!("unusable consent callback: {other}");
            return Ok(ConsentOutcome::Failed);
        }
    };
    let proof = match graph.prove_tenant(grant.tenant).await {
        Ok(proof) => proof,
        Err(err) => {
            tracing::warn!(tenant = %grant.tenant, "consent could not be proven: {err}");
            return Ok(ConsentOutcome::Unproven);
        }
    };
    match organizations::add_organization(db, clock, scope, &proof, sync_interval).await {
        Ok(Added::New(org)) => Ok(ConsentOutcome::Added(Box::new(org))),
        Ok(Added::AlreadyAdded(_)) => Ok(ConsentOutcome::AlreadyAdded),
        Err(InventoryError::TenantTakenByAnotherCustomer) => {
            Ok(ConsentOutcome::TakenByAnotherCustomer)
        }
        Err(other) => Err(other),
    }
}
