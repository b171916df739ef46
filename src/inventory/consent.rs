//! Adding an organization: admin consent, then proof of who consented. Each leg's `state` is
//! random, single use, expires after 15 minutes and is bound to the console user who started it,
//! so a callback can neither be replayed nor be delivered into someone else's session.
//!
//! The consent leg's answer names a tenant, but anyone can craft that answer for any tenant that
//! ever consented to the app. So the organization is added only after the second leg: an OpenID
//! Connect sign-in to *that* tenant whose ID token proves an administrator able to grant consent
//! (`m365::ProvenAdmin`). The app-only token and the tenant's `organization` are read by the
//! first sync, so the browser is answered at once even while Microsoft throttles.

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
use crate::m365::{
    AdminSignInError, ConsentError, ConsentRefusal, GraphClient, TenantId, parse_consent_callback,
    parse_sign_in_callback,
};

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
    insert_request(db, clock, scope.id(), user, None, state).await
}

/// What the sign-in leg must remember: the consented tenant, the nonce and the PKCE verifier.
struct SignInLeg {
    tenant: TenantId,
    nonce: String,
    pkce_verifier: String,
}

async fn insert_request(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    customer: CustomerId,
    user: UserId,
    sign_in: Option<SignInLeg>,
    state: String,
) -> Result<String, InventoryError> {
    let (tenant, nonce, verifier) = match sign_in {
        Some(leg) => (
            Some(leg.tenant.to_string()),
            Some(leg.nonce),
            Some(leg.pkce_verifier),
        ),
        None => (None, None, None),
    };
    consent_request::ActiveModel {
        state: Set(state.clone()),
        customer_id: Set(customer.0),
        user_id: Set(user.0),
        expires_at: Set(clock.now() + Duration::minutes(CONSENT_VALID_MINUTES)),
        tenant_id: Set(tenant),
        nonce: Set(nonce),
        pkce_verifier: Set(verifier),
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

/// A pending request, taken: whose it is, and which leg it is waiting for.
#[derive(Debug)]
pub struct ConsentRequest {
    pub customer: CustomerId,
    user: UserId,
    state: String,
    model: consent_request::Model,
}

/// Consumes the request named by `state`: it can be taken once, by the user who started it.
pub async fn take_consent_request(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    state: &str,
    user: UserId,
) -> Result<Result<ConsentRequest, StateProblem>, InventoryError> {
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
    Ok(Ok(ConsentRequest {
        customer: CustomerId(request.customer_id),
        user,
        state: state.to_owned(),
        model: request,
    }))
}

/// How a consent answer from Microsoft ended, once its `state` was accepted.
#[derive(Debug)]
pub enum ConsentOutcome {
    /// Consent was given; the administrator must now sign in to the tenant to prove who they are.
    /// The browser goes to `url`; `state` names the new pending request.
    SignIn {
        url: url::Url,
        state: String,
    },
    /// The tenant and its administrator were proven and the organization added; its first sync
    /// is to be queued.
    Added(Box<organization::Model>),
    /// Consent was given again, and proven, for an organization this customer already has.
    AlreadyAdded(Box<organization::Model>),
    Declined,
    /// A user who is not an administrator able to grant consent signed in.
    NotAdmin,
    /// Sign-in or consent was cancelled at Microsoft.
    Cancelled,
    /// Microsoft reported another error, or the answer was unusable.
    Failed,
    /// The answer's `state` is not the one issued.
    StateMismatch,
    /// The administrator signed in to another tenant than the one that consented.
    WrongTenant,
    /// The sign-in did not yield a valid ID token, or it could not be redeemed.
    SignInUnproven,
    /// The ID token carries no directory roles: the app registration must emit them.
    NoRoleClaim,
    /// The organization is protected by another customer.
    TakenByAnotherCustomer,
}

fn refusal_outcome(err: ConsentError) -> ConsentOutcome {
    match err {
        ConsentError::Refused {
            refusal,
            error,
            description,
        } => {
            tracing::info!(%error, "admin consent refused: {description}");
            match refusal {
                // AADSTS90094 ("Admin consent is required"): a user who is not an administrator
                // signed in; Microsoft reports it as access_denied, like a cancelled sign-in.
                _ if description.contains("AADSTS90094") => ConsentOutcome::NotAdmin,
                ConsentRefusal::Declined => ConsentOutcome::Declined,
                ConsentRefusal::ConsentRequired => ConsentOutcome::NotAdmin,
                ConsentRefusal::AccessDenied | ConsentRefusal::PermissionDenied => {
                    ConsentOutcome::Cancelled
                }
                ConsentRefusal::Unknown => ConsentOutcome::Failed,
            }
        }
        ConsentError::StateMismatch => ConsentOutcome::StateMismatch,
        ConsentError::Malformed(message) => {
            tracing::warn!("unusable consent callback: {message}");
            ConsentOutcome::Failed
        }
    }
}

/// Takes the next step of adding an organization for `scope` with Microsoft's answer `query` to
/// the pending `request`: after the consent leg, starts the administrator's sign-in; after the
/// sign-in leg, proves the administrator, then the tenant, and adds the organization.
pub async fn complete_consent(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    graph: &GraphClient,
    scope: &CustomerScope,
    request: ConsentRequest,
    query: &str,
    sync_interval: chrono::Duration,
) -> Result<ConsentOutcome, InventoryError> {
    scope.require_change()?;
    let ConsentRequest {
        customer,
        user,
        state,
        model,
    } = request;
    if customer != scope.id() {
        return Err(InventoryError::Forbidden);
    }
    let (Some(tenant), Some(nonce), Some(verifier)) =
        (model.tenant_id, model.nonce, model.pkce_verifier)
    else {
        return start_sign_in(db, clock, graph, customer, user, query, &state).await;
    };
    let Ok(tenant) = tenant.parse::<TenantId>() else {
        return Ok(ConsentOutcome::Failed);
    };
    let code = match parse_sign_in_callback(query, &state) {
        Ok(code) => code,
        Err(err) => return Ok(refusal_outcome(err)),
    };
    match graph
        .finish_admin_sign_in(tenant, &code, &verifier, &nonce)
        .await
    {
        Ok(admin) => tracing::info!(
            %tenant,
            subject = %admin.subject,
            username = admin.username.as_deref().unwrap_or(""),
            role = admin.role,
            "administrator proven for admin consent"
        ),
        Err(err) => {
            tracing::warn!(%tenant, "administrator sign-in does not prove consent: {err}");
            return Ok(match err {
                AdminSignInError::WrongTenant { .. } => ConsentOutcome::WrongTenant,
                AdminSignInError::NotAdministrator => ConsentOutcome::NotAdmin,
                AdminSignInError::NoRoleClaim => ConsentOutcome::NoRoleClaim,
                AdminSignInError::Unavailable(_)
                | AdminSignInError::CodeRefused(_)
                | AdminSignInError::InvalidIdToken(_) => ConsentOutcome::SignInUnproven,
            });
        }
    }
    match organizations::add_organization(db, clock, scope, tenant, sync_interval).await {
        Ok(Added::New(org)) => Ok(ConsentOutcome::Added(Box::new(org))),
        Ok(Added::AlreadyAdded(org)) => Ok(ConsentOutcome::AlreadyAdded(Box::new(org))),
        Err(InventoryError::TenantTakenByAnotherCustomer) => {
            Ok(ConsentOutcome::TakenByAnotherCustomer)
        }
        Err(other) => Err(other),
    }
}

/// The consent leg: reads Microsoft's answer and, when consent was given, records the sign-in
/// leg (a new state, nonce and PKCE verifier) and returns where to send the browser. The
/// answer's `tenant` is only a claim here; nothing is added on its word.
async fn start_sign_in(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    graph: &GraphClient,
    customer: CustomerId,
    user: UserId,
    query: &str,
    state: &str,
) -> Result<ConsentOutcome, InventoryError> {
    let grant = match parse_consent_callback(query, state) {
        Ok(grant) => grant,
        Err(err) => return Ok(refusal_outcome(err)),
    };
    let next_state = Alphanumeric.sample_string(&mut rand::rng(), 40);
    let start = match graph.start_admin_sign_in(grant.tenant, &next_state).await {
        Ok(start) => start,
        Err(err) => {
            tracing::warn!(tenant = %grant.tenant, "administrator sign-in could not start: {err}");
            return Ok(ConsentOutcome::SignInUnproven);
        }
    };
    let leg = SignInLeg {
        tenant: grant.tenant,
        nonce: start.nonce,
        pkce_verifier: start.pkce_verifier,
    };
    let stored = insert_request(db, clock, customer, user, Some(leg), next_state).await?;
    Ok(ConsentOutcome::SignIn {
        url: start.url,
        state: stored,
    })
}
