//! Proof of who finishes admin consent (graph-protocol.md §1.4): an OpenID Connect sign-in with
//! the authorization code flow, PKCE and a nonce, against the consented tenant's own endpoints.
//! Admin consent alone proves only that someone once consented to the app in a tenant; the
//! callback's `tenant` can be replayed by anyone. The ID token this flow yields is checked here
//! against the tenant's published signing keys, issuer, audience (our client id), nonce and
//! expiry, and must name the consented tenant (`tid`) and an administrator role (`wids`) that can
//! grant tenant-wide consent to application permissions.
//!
//! It owns the OpenID Connect exchange only; it never decides what a proven administrator may do
//! in Skyvault, and never logs the code, the verifier or the tokens.

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::SharedClock;
use crate::m365::identity::OAuthHttp;
use crate::m365::settings::{M365Settings, join_base};
use crate::m365::types::TenantId;

/// Microsoft Entra built-in role template ids (the values `wids` carries) of the roles that can
/// grant tenant-wide admin consent to Microsoft Graph application permissions: Global
/// Administrator and Privileged Role Administrator. Application and Cloud Application
/// Administrators cannot consent to Graph application permissions, so they do not count.
pub const CONSENTING_ROLES: [(&str, &str); 2] = [
    (
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
    (
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Privileged Role Administrator",
    ),
];

/// The claims Entra adds to the standard ones: the tenant and the user's directory roles.
/// `wids` is emitted when the app registration's `groupMembershipClaims` includes directory
/// roles (`DirectoryRole` or `All`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EntraClaims {
    #[serde(default)]
    pub tid: Option<String>,
    #[serde(default)]
    pub wids: Option<Vec<String>>,
}

impl AdditionalClaims for EntraClaims {}

type EntraIdTokenFields = IdTokenFields<
    EntraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type EntraTokenResponse = StandardTokenResponse<EntraIdTokenFields, CoreTokenType>;
type EntraOidcClient = openidconnect::Client<
    EntraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    EntraTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Where to send the browser, and the two secrets to keep (server-side) until it comes back.
#[derive(Clone)]
pub struct AdminSignInStart {
    pub url: Url,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl std::fmt::Debug for AdminSignInStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSignInStart")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// An administrator of `tenant`, proven by a validated ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenAdmin {
    pub tenant: TenantId,
    /// The user's object id (`oid`), or the token's subject when Microsoft leaves `oid` out.
    pub subject: String,
    pub username: Option<String>,
    /// The display name of the consenting role found in `wids`.
    pub role: &'static str,
}

/// Why the sign-in does not prove an administrator of the consented tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminSignInError {
    /// The identity platform could not be reached, or its metadata or keys were unusable.
    #[error("the identity platform could not be used: {0}")]
    Unavailable(String),
    /// Microsoft refused to redeem the code (expired, replayed, verifier mismatch...).
    #[error("the sign-in code was refused: {0}")]
    CodeRefused(String),
    /// The token answer had no ID token, or it failed validation (signature, issuer, audience,
    /// nonce, expiry).
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
    /// A valid sign-in, but to another tenant than the one that consented.
    #[error("signed in to tenant {signed_in}, not to the consented tenant {expected}")]
    WrongTenant {
        expected: TenantId,
        signed_in: String,
    },
    /// Signed in to the right tenant, without a role that can grant consent.
    #[error("the signed-in user holds no role that can grant admin consent")]
    NotAdministrator,
    /// The ID token carries no `wids` claim: the app registration does not emit directory roles.
    #[error("the ID token carries no directory roles (set groupMembershipClaims to DirectoryRole)")]
    NoRoleClaim,
}

/// Runs the OpenID Connect sign-in of one consented tenant.
#[derive(Debug, Clone)]
pub(crate) struct AdminSignIn {
    http: OAuthHttp,
    clock: SharedClock,
}

impl AdminSignIn {
    pub(crate) fn new(http: OAuthHttp, clock: SharedClock) -> Self {
        Self { http, clock }
    }

    /// The tenant's issuer: `{authority}/{tenant}/v2.0`, whose metadata sits under
    /// `/.well-known/openid-configuration` and names the same issuer.
    fn issuer(settings: &M365Settings, tenant: TenantId) -> Result<IssuerUrl, AdminSignInError> {
        let authority = settings
            .authority()
            .map_err(|e| AdminSignInError::Unavailable(e.to_string()))?;
        let url = join_base(&authority, &format!("{tenant}/v2.0"))
            .map_err(|e| AdminSignInError::Unavailable(e.to_string()))?;
        IssuerUrl::new(url.as_str().trim_end_matches('/').to_owned())
            .map_err(|e| AdminSignInError::Unavailable(e.to_string()))
    }

    async fn client(
        &self,
        settings: &M365Settings,
        tenant: TenantId,
    ) -> Result<EntraOidcClient, AdminSignInError> {
        let metadata =
            CoreProviderMetadata::discover_async(Self::issuer(settings, tenant)?, &self.http)
                .await
                .map_err(|e| AdminSignInError::Unavailable(format!("OpenID metadata: {e}")))?;
        let redirect = RedirectUrl::from_url(settings.redirect_uri.clone());
        Ok(EntraOidcClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            Some(ClientSecret::new(settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect)
        // §1.4 shows the secret in the body, as the client-credentials requests send it.
        .set_auth_type(AuthType::RequestBody))
    }

    /// The authorization request for `tenant` (code flow, `S256` PKCE, a fresh nonce), carrying
    /// `state`. Only `openid profile` is asked: the sign-in needs no Graph permission.
    pub(crate) async fn start(
        &self,
        settings: &M365Settings,
        tenant: TenantId,
        state: &str,
    ) -> Result<AdminSignInStart, AdminSignInError> {
        let client = self.client(settings, tenant).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let (url, _, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .add_extra_param("response_mode", "query")
            .url();
        Ok(AdminSignInStart {
            url,
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Redeems `code` and proves an administrator of `tenant` from the ID token.
    pub(crate) async fn finish(
        &self,
        settings: &M365Settings,
        tenant: TenantId,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<ProvenAdmin, AdminSignInError> {
        let client = self.client(settings, tenant).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| AdminSignInError::Unavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(answer) => {
                    AdminSignInError::CodeRefused(answer.to_string())
                }
                other => AdminSignInError::Unavailable(other.to_string()),
            })?;
        let id_token = response.id_token().ok_or_else(|| {
            AdminSignInError::InvalidIdToken("the token answer has no id_token".into())
        })?;
        let clock = self.clock.clone();
        let verifier = client
            .id_token_verifier()
            // Only what Microsoft signs with; never `none` or the HMAC algorithms, which a
            // confidential client's verifier would otherwise accept with the client secret.
            .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
            .set_time_fn(move || -> DateTime<Utc> { clock.now() });
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|e| AdminSignInError::InvalidIdToken(e.to_string()))?;
        let extra = claims.additional_claims();
        let signed_in = extra.tid.clone().unwrap_or_default();
        if !signed_in.eq_ignore_ascii_case(&tenant.to_string()) {
            return Err(AdminSignInError::WrongTenant {
                expected: tenant,
                signed_in,
            });
        }
        let roles = extra.wids.as_ref().ok_or(AdminSignInError::NoRoleClaim)?;
        let role = CONSENTING_ROLES
            .iter()
            .find(|(id, _)| roles.iter().any(|r| r.eq_ignore_ascii_case(id)))
            .map(|(_, name)| *name)
            .ok_or(AdminSignInError::NotAdministrator)?;
        Ok(ProvenAdmin {
            tenant,
            subject: claims.subject().as_str().to_owned(),
            username: claims.preferred_username().map(|u| u.as_str().to_owned()),
            role,
        })
    }
}
