//! App-only access tokens per tenant (client-credentials grant, graph-protocol.md §1.2), fetched
//! through oauth2 5 over our reqwest 0.13 client and cached until shortly before they expire.
//! Concurrent callers for one tenant share a single fetch. It owns the token cache and the
//! oauth2 adapter; it must never log or `Debug`-print a token or the client secret, and never
//! parse tokens (they are opaque to clients, §1.5).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenResponse,
};
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse,
    RequestTokenError, Scope, StandardRevocableToken, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::m365::error::{GraphError, TokenError};
use crate::m365::settings::{M365Settings, join_base};
use crate::m365::throttle::{Sleeper, backoff_delay, chrono_duration, parse_retry_after};
use crate::m365::types::TenantId;

/// An access token and when Skyvault stops using it.
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub(crate) secret: String,
    pub(crate) refresh_at: DateTime<Utc>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// Tokens last about an hour (`expires_in` 3599). Refresh five minutes early so a token never
/// expires in the middle of a request, or halfway through a short-lived one.
fn refresh_at(now: DateTime<Utc>, expires_in: Duration) -> DateTime<Utc> {
    let margin = Duration::from_secs(300).min(expires_in / 2);
    now + chrono_duration(expires_in - margin)
}

/// The identity platform's error body, with the fields oauth2's standard type drops
/// (`error_codes`, `trace_id`, `correlation_id`), which are what support needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntraErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    error_uri: Option<String>,
}

impl fmt::Display for EntraErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.error,
            self.error_description.as_deref().unwrap_or("")
        )
    }
}

impl oauth2::ErrorResponse for EntraErrorResponse {}

type EntraClient = oauth2::Client<
    EntraErrorResponse,
    BasicTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// oauth2 5 ships support for reqwest 0.12 only; this adapter lets it send through our 0.13
/// client. Busy answers (429, 5xx) become adapter errors carrying status and `Retry-After`, so
/// they are retried instead of being misread as a refusal.
#[derive(Debug, Clone)]
pub(crate) struct OAuthHttp {
    client: reqwest::Client,
    clock: SharedClock,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OAuthHttpError {
    #[error("{0}")]
    Transport(String),
    #[error("identity platform answered {status}")]
    Busy {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
}

impl OAuthHttp {
    pub(crate) fn new(client: reqwest::Client, clock: SharedClock) -> Self {
        Self { client, clock }
    }
}

impl<'c> AsyncHttpClient<'c> for OAuthHttp {
    type Error = OAuthHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| OAuthHttpError::Transport(e.to_string()))?;
            let response = self
                .client
                .execute(request)
                .await
                .map_err(|e| OAuthHttpError::Transport(e.to_string()))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| OAuthHttpError::Transport(e.to_string()))?;
            if status.as_u16() == 429 || status.is_server_error() {
                let retry_after = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, self.clock.now()));
                return Err(OAuthHttpError::Busy {
                    status: status.as_u16(),
                    retry_after,
                    body: String::from_utf8_lossy(&body).chars().take(300).collect(),
                });
            }
            let mut builder = oauth2::http::Response::builder().status(status);
            for (name, value) in &headers {
                builder = builder.header(name, value);
            }
            builder
                .body(body.to_vec())
                .map_err(|e| OAuthHttpError::Transport(e.to_string()))
        })
    }
}

/// Per-tenant token cache. Each tenant has its own async lock, so one tenant's slow token
/// endpoint never holds up another's, and concurrent callers of one tenant wait for the single
/// fetch in progress instead of starting their own (AADSTS50196 punishes identical requests).
#[derive(Debug)]
pub(crate) struct TokenProvider {
    settings: Arc<M365Settings>,
    http: OAuthHttp,
    clock: SharedClock,
    sleeper: Arc<dyn Sleeper>,
    slots: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<Option<AccessToken>>>>>,
    fetches: AtomicU64,
}

/// Token requests are retried this many times when the identity platform is busy.
const TOKEN_RETRIES: u32 = 3;

impl TokenProvider {
    pub(crate) fn new(
        settings: Arc<M365Settings>,
        http: OAuthHttp,
        clock: SharedClock,
        sleeper: Arc<dyn Sleeper>,
    ) -> Self {
        Self {
            settings,
            http,
            clock,
            sleeper,
            slots: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    fn slot(&self, tenant: TenantId) -> Arc<tokio::sync::Mutex<Option<AccessToken>>> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant)
            .or_default()
            .clone()
    }

    /// How many token requests were sent (cache misses), for tests and diagnostics.
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A token for the tenant, from the cache when still fresh.
    pub(crate) async fn token(&self, tenant: TenantId) -> Result<AccessToken, GraphError> {
        let slot = self.slot(tenant);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && self.clock.now() < token.refresh_at
        {
            return Ok(token.clone());
        }
        let token = self.fetch_with_retries(tenant).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Forgets `failed` after Graph refused it (401). A newer token fetched meanwhile by another
    /// caller is kept.
    pub(crate) async fn invalidate(&self, tenant: TenantId, failed: &AccessToken) {
        let slot = self.slot(tenant);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|t| t.secret == failed.secret) {
            *cached = None;
        }
    }

    /// Drops every cached token of a tenant (after consent is revoked or re-granted).
    pub(crate) fn forget(&self, tenant: TenantId) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tenant);
    }

    async fn fetch_with_retries(&self, tenant: TenantId) -> Result<AccessToken, GraphError> {
        let mut retry = 0;
        loop {
            match self.fetch(tenant).await {
                Err(GraphError::Token(e)) if e.is_retryable() && retry < TOKEN_RETRIES => {
                    retry += 1;
                    let wait = e.retry_after.unwrap_or_else(|| {
                        backoff_delay(&self.settings.retry, retry, &mut rand::rng())
                    });
                    self.sleeper.sleep(wait).await;
                }
                Err(GraphError::Transport { .. }) if retry < TOKEN_RETRIES => {
                    retry += 1;
                    let wait = backoff_delay(&self.settings.retry, retry, &mut rand::rng());
                    self.sleeper.sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn fetch(&self, tenant: TenantId) -> Result<AccessToken, GraphError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let token_url = join_base(
            &self.settings.authority()?,
            &format!("{tenant}/oauth2/v2.0/token"),
        )?;
        let host = token_url.host_str().unwrap_or_default().to_string();
        let client: EntraClient =
            oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
                .set_client_secret(ClientSecret::new(self.settings.client_secret.clone()))
                // The documented request sends the secret in the form body (§1.2).
                .set_auth_type(AuthType::RequestBody)
                .set_token_uri(TokenUrl::from_url(token_url));
        let now = self.clock.now();
        let result = client
            .exchange_client_credentials()
            .add_scope(Scope::new(self.settings.scope.clone()))
            .request_async(&self.http)
            .await;
        match result {
            Ok(response) => {
                // `expires_in` is always sent; an hour is the documented lifetime if it were not.
                let expires_in = response.expires_in().unwrap_or(Duration::from_secs(3599));
                Ok(AccessToken {
                    secret: response.access_token().secret().clone(),
                    refresh_at: refresh_at(now, expires_in),
                })
            }
            Err(RequestTokenError::ServerResponse(e)) => Err(GraphError::from(TokenError {
                tenant: tenant.to_string(),
                error: e.error,
                description: e.error_description.unwrap_or_default(),
                error_codes: e.error_codes,
                trace_id: e.trace_id,
                correlation_id: e.correlation_id,
                status: None,
                retry_after: None,
            })),
            Err(RequestTokenError::Request(OAuthHttpError::Busy {
                status,
                retry_after,
                body,
            })) => Err(GraphError::from(TokenError {
                tenant: tenant.to_string(),
                error: "temporarily_unavailable".into(),
                description: body,
                error_codes: Vec::new(),
                trace_id: None,
                correlation_id: None,
                status: Some(status),
                retry_after,
            })),
            Err(RequestTokenError::Request(OAuthHttpError::Transport(message))) => {
                Err(GraphError::Transport {
                    host,
                    message,
                    retries: 0,
                })
            }
            Err(RequestTokenError::Parse(e, body)) => Err(GraphError::Decode {
                url: format!("token endpoint of {tenant}"),
                message: format!(
                    "{e}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            }),
            Err(RequestTokenError::Other(message)) => Err(GraphError::Decode {
                url: format!("token endpoint of {tenant}"),
                message,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn tokens_are_refreshed_five_minutes_early() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 20, 0, 0).unwrap();
        assert_eq!(
            refresh_at(now, Duration::from_secs(3599)),
            now + chrono::Duration::seconds(3299)
        );
        // A short-lived token is used for half its life.
        assert_eq!(
            refresh_at(now, Duration::from_secs(120)),
            now + chrono::Duration::seconds(60)
        );
    }

    #[test]
    fn entra_error_body_keeps_codes_and_ids() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t","error_codes":[7000215],"timestamp":"2023-05-06 06:03:00Z","trace_id":"t","correlation_id":"c","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#;
        let e: EntraErrorResponse = serde_json::from_str(body).unwrap();
        assert_eq!(e.error_codes, vec![7000215]);
        assert_eq!(e.trace_id.as_deref(), Some("t"));
    }
}
