//! Request execution: every Graph call goes through `Executor::send`, which asks the governor
//! for a permit, attaches the tenant's bearer token, and handles the answers that need another
//! try — 401 `InvalidAuthenticationToken` (fresh token, once), 429/503/504 (Retry-After or
//! backoff, pausing the resource), network errors. It owns retries and the rule that a bearer
//! token is only ever sent to the configured Graph origin; it must never follow redirects on its
//! own (a 302 to a pre-authenticated download URL must not carry the token, §4.3). The one
//! redirect it follows is a 308 that a request opts into (an archive mailbox's folder living in
//! an auxiliary archive), and only when its `Location` stays on the Graph origin. Requests to a
//! pre-authenticated URL (a mailbox import URL) carry no token, and their URL — which holds the
//! credential in its query — is never written to a log or an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::m365::error::GraphError;
use crate::m365::identity::TokenProvider;
use crate::m365::settings::RetryPolicy;
use crate::m365::throttle::{Governor, Permit, Resource, backoff_delay, parse_retry_after};
use crate::m365::types::TenantId;

/// How a request proves who sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// The tenant's bearer token; only ever sent to the Graph origin.
    Bearer,
    /// The URL itself holds the credential (a mailbox import URL): no token, and the URL is
    /// never logged.
    PreAuthenticated,
}

/// One Graph request, described so it can be sent again.
#[derive(Clone)]
pub(crate) struct GraphRequest {
    pub(crate) url: Url,
    pub(crate) method: Method,
    /// The body, kept whole so a retry sends it again.
    pub(crate) body: Option<Bytes>,
    pub(crate) resource: Resource,
    /// Resource units the request costs against its resource's bucket (§5.3 table).
    pub(crate) cost: u32,
    /// Extra headers (`Prefer`, `ConsistencyLevel`), resent on every page (§2.1).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) auth: Auth,
    /// Follow a 308 Permanent Redirect whose `Location` is on the Graph origin, same method and
    /// body (archive mailboxes with auxiliary archives answer so).
    pub(crate) follow_permanent_redirects: bool,
    /// Whether sending it twice does no harm. A request that creates something is retried only
    /// when the service surely did not act on it (429, 503, no connection).
    pub(crate) idempotent: bool,
}

/// Prints the URL without its query: a pre-authenticated URL carries its credential there.
impl std::fmt::Debug for GraphRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphRequest")
            .field("method", &self.method)
            .field("url", &self.loggable_url())
            .field("resource", &self.resource)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl GraphRequest {
    pub(crate) fn get(url: Url, resource: Resource) -> Self {
        Self {
            url,
            method: Method::GET,
            body: None,
            resource,
            cost: 1,
            headers: Vec::new(),
            auth: Auth::Bearer,
            follow_permanent_redirects: false,
            idempotent: true,
        }
    }

    /// Makes it a POST of `body` as JSON (`Content-Type: application/json`). Idempotent unless
    /// marked otherwise with [`GraphRequest::creates`].
    pub(crate) fn post_json(mut self, body: Bytes) -> Self {
        self.method = Method::POST;
        self.body = Some(body);
        self.header("content-type", "application/json")
    }

    /// Marks a request that creates something: sending it twice would create it twice.
    pub(crate) fn creates(mut self) -> Self {
        self.idempotent = false;
        self
    }

    /// Sends no token; the URL carries the credential.
    pub(crate) fn pre_authenticated(mut self) -> Self {
        self.auth = Auth::PreAuthenticated;
        self
    }

    pub(crate) fn follow_permanent_redirects(mut self) -> Self {
        self.follow_permanent_redirects = true;
        self
    }

    /// The URL as it may appear in logs and errors: whole for Graph, without its query (the
    /// credential) for a pre-authenticated URL.
    pub(crate) fn loggable_url(&self) -> String {
        match self.auth {
            Auth::Bearer => self.url.to_string(),
            Auth::PreAuthenticated => without_query(&self.url),
        }
    }

    /// The bytes it sends (Outlook counts PATCH, POST and PUT bodies against a mailbox's
    /// upload limit, §5.2).
    pub(crate) fn upload_bytes(&self) -> u64 {
        match self.method {
            Method::PATCH | Method::POST | Method::PUT => {
                self.body.as_ref().map_or(0, |b| b.len() as u64)
            }
            _ => 0,
        }
    }

    pub(crate) fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), value));
        }
        self
    }

    pub(crate) fn with_url(&self, url: Url) -> Self {
        Self {
            url,
            ..self.clone()
        }
    }
}

/// A successful answer. The governor permit travels with it so a streamed body still counts as
/// a request in flight against the mailbox's four.
#[derive(Debug)]
pub(crate) struct GraphResponse {
    pub(crate) response: reqwest::Response,
    pub(crate) permit: Permit,
}

impl GraphResponse {
    pub(crate) fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The whole body. Errors name the URL without its query, which may hold a credential.
    pub(crate) async fn bytes(self) -> Result<Bytes, GraphError> {
        let url = self.response.url().clone();
        let body = self
            .response
            .bytes()
            .await
            .map_err(|e| GraphError::Transport {
                host: url.host_str().unwrap_or_default().to_string(),
                message: e.without_url().to_string(),
                retries: 0,
            })?;
        drop(self.permit);
        Ok(body)
    }
}

/// `scheme://host/path`, for logs and errors about URLs that may hold a credential.
pub(crate) fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// A response body as a stream of chunks; holding it keeps the request's permit.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, GraphError>> + Send>>;

pub(crate) fn body_stream(response: reqwest::Response, permit: Permit) -> ByteStream {
    let host = response.url().host_str().unwrap_or_default().to_string();
    let stream = response
        .bytes_stream()
        .map_err(move |e| GraphError::Transport {
            host: host.clone(),
            message: e.to_string(),
            retries: 0,
        });
    // The permit is moved into the stream and dropped with it.
    Box::pin(stream.map(move |chunk| {
        let _held = &permit;
        chunk
    }))
}

/// Sends Graph requests with tokens, the governor and retries.
#[derive(Debug)]
pub(crate) struct Executor {
    pub(crate) http: reqwest::Client,
    /// For pre-authenticated URLs: never carries a token.
    pub(crate) anonymous: reqwest::Client,
    pub(crate) graph_base: Url,
    pub(crate) governor: Arc<Governor>,
    pub(crate) tokens: Arc<TokenProvider>,
    pub(crate) policy: RetryPolicy,
}

/// How many times `max_retries` a request may be retried while it is only being throttled.
const THROTTLED_RETRY_FACTOR: u32 = 5;
/// Permanent redirects followed for one request (archive → auxiliary archive is one).
const MAX_PERMANENT_REDIRECTS: usize = 4;

/// Why a retry happens, for the wait it needs.
enum RetryReason {
    Throttled {
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    Unavailable {
        retry_after: Option<Duration>,
    },
    Network,
}

impl Executor {
    /// Whether `url` is on the configured Graph origin (scheme, host and port).
    pub(crate) fn is_graph_url(&self, url: &Url) -> bool {
        url.origin() == self.graph_base.origin()
    }

    /// Parses a server-given link (`@odata.nextLink`, `@odata.deltaLink`, `Location`) and refuses
    /// one that leaves the Graph origin: the bearer token must not go anywhere else.
    pub(crate) fn graph_link(&self, link: &str) -> Result<Url, GraphError> {
        let url = Url::parse(link).map_err(|_| GraphError::UntrustedLink(link.to_string()))?;
        if self.is_graph_url(&url) {
            Ok(url)
        } else {
            Err(GraphError::UntrustedLink(link.to_string()))
        }
    }

    /// Sends `request` for `tenant`, retrying what can be retried. 2xx and 3xx come back as
    /// `Ok`; everything else as a typed error. A 308 is followed when the request opts in and
    /// its `Location` stays on the Graph origin; one that leaves it is refused.
    pub(crate) async fn send(
        &self,
        tenant: TenantId,
        request: &GraphRequest,
    ) -> Result<GraphResponse, GraphError> {
        let mut hop: Option<GraphRequest> = None;
        for _ in 0..MAX_PERMANENT_REDIRECTS {
            let current = hop.as_ref().unwrap_or(request);
            let response = self.send_once(tenant, current).await?;
            if !(current.follow_permanent_redirects
                && response.status() == StatusCode::PERMANENT_REDIRECT)
            {
                return Ok(response);
            }
            let location = response
                .response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| current.url.join(l).ok())
                .ok_or_else(|| GraphError::Decode {
                    url: current.loggable_url(),
                    message: "308 without a usable Location".into(),
                })?;
            drop(response);
            if !self.is_graph_url(&location) {
                return Err(GraphError::UntrustedLink(location.to_string()));
            }
            tracing::debug!(from = %current.loggable_url(), to = %location, "following a permanent redirect");
            hop = Some(current.with_url(location));
        }
        Err(GraphError::Decode {
            url: request.loggable_url(),
            message: format!("more than {MAX_PERMANENT_REDIRECTS} permanent redirects"),
        })
    }

    /// One request with its retries; no redirect is followed.
    async fn send_once(
        &self,
        tenant: TenantId,
        request: &GraphRequest,
    ) -> Result<GraphResponse, GraphError> {
        let bearer = request.auth == Auth::Bearer;
        if bearer && !self.is_graph_url(&request.url) {
            return Err(GraphError::UntrustedLink(request.url.to_string()));
        }
        let mut retries: u32 = 0;
        let mut waited = Duration::ZERO;
        let mut token_refreshed = false;
        loop {
            let permit = self
                .governor
                .acquire_upload(&request.resource, request.cost, request.upload_bytes())
                .await;
            let token = if bearer {
                Some(self.tokens.token(tenant).await?)
            } else {
                None
            };
            let mut builder = self
                .http
                .request(request.method.clone(), request.url.clone())
                .header("client-request-id", uuid::Uuid::new_v4().to_string());
            if let Some(token) = &token {
                builder = builder.bearer_auth(&token.secret);
            }
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            if retries > 0 {
                // Graph SDK convention (§5.6): tell the service this is a retry.
                builder = builder.header("retry-attempt", retries.to_string());
            }
            for (name, value) in &request.headers {
                builder = builder.header(name.clone(), value.clone());
            }
            let (reason, error) = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() || status.is_redirection() {
                        self.observe_rate_limit(&request.resource, response.headers());
                        return Ok(GraphResponse { response, permit });
                    }
                    let headers = response.headers().clone();
                    let body = response.bytes().await.unwrap_or_default();
                    drop(permit);
                    let error = self.error_from(status, &headers, &body);
                    if let Some(token) = &token
                        && status == StatusCode::UNAUTHORIZED
                        && error.code() == Some("InvalidAuthenticationToken")
                        && !token_refreshed
                    {
                        // §1.6: expired or rejected token; one fresh token, then give up.
                        token_refreshed = true;
                        self.tokens.invalidate(tenant, token).await;
                        continue;
                    }
                    let throttled = |status| RetryReason::Throttled {
                        status,
                        code: error.code().map(str::to_string),
                        retry_after: error.retry_after(),
                    };
                    let reason = match status.as_u16() {
                        429 => throttled(429),
                        // 503 with Retry-After is SharePoint's "Server Too Busy" throttle (§5.3).
                        503 if error.retry_after().is_some() => throttled(503),
                        503 => RetryReason::Unavailable {
                            retry_after: error.retry_after(),
                        },
                        // A gateway timeout may come after the service acted on the request.
                        504 if request.idempotent => RetryReason::Unavailable {
                            retry_after: error.retry_after(),
                        },
                        _ => return Err(error.with_retries(retries)),
                    };
                    (reason, error)
                }
                Err(e) => {
                    drop(permit);
                    // Only a failed connection surely never reached the service.
                    let unsent = e.is_connect();
                    let error = GraphError::Transport {
                        host: request.url.host_str().unwrap_or_default().to_string(),
                        message: e.without_url().to_string(),
                        retries,
                    };
                    if !(request.idempotent || unsent) {
                        return Err(error);
                    }
                    (RetryReason::Network, error)
                }
            };
            self.retry_or_give_up(reason, &mut retries, &mut waited, request, error)
                .await?;
        }
    }

    /// Waits as the reason requires, or returns the error when retries or total wait ran out.
    async fn retry_or_give_up(
        &self,
        reason: RetryReason,
        retries: &mut u32,
        waited: &mut Duration,
        request: &GraphRequest,
        error: GraphError,
    ) -> Result<(), GraphError> {
        let next = *retries + 1;
        let backoff = || backoff_delay(&self.policy, next, &mut rand::rng());
        let wait = match &reason {
            RetryReason::Throttled { retry_after, .. } => retry_after.unwrap_or_else(backoff),
            RetryReason::Unavailable { retry_after } => retry_after.unwrap_or_else(backoff),
            RetryReason::Network => backoff(),
        };
        // Microsoft: "If the request fails again with a 429 error code, you are still being
        // throttled. Continue to use the recommended Retry-After delay and retry the request until
        // it succeeds" (§5.6). A throttled mailbox is shared by up to four requests that all wake
        // when its pause ends, so one request can lose that race several times; throttling is
        // therefore bounded by the total wait (and a generous count), other failures by
        // `max_retries`.
        let limit = match reason {
            RetryReason::Throttled { .. } => self
                .policy
                .max_retries
                .saturating_mul(THROTTLED_RETRY_FACTOR),
            _ => self.policy.max_retries,
        };
        let give_up = *retries >= limit || *waited + wait > self.policy.max_total_wait;
        match reason {
            RetryReason::Throttled {
                status,
                code,
                retry_after,
            } => {
                // Pause the whole resource, not just this request: other workers on the same
                // mailbox or tenant bucket would otherwise keep hammering it (§4.5, §5.6). The
                // next `acquire` waits the pause out.
                self.governor
                    .record_throttle(&request.resource, status, code, retry_after, wait);
            }
            RetryReason::Unavailable { .. } | RetryReason::Network if !give_up => {
                // Not throttling: only this request waits.
                self.governor.sleeper().sleep(wait).await;
            }
            RetryReason::Unavailable { .. } | RetryReason::Network => {}
        }
        if give_up {
            return Err(error.with_retries(*retries));
        }
        *retries = next;
        *waited += wait;
        tracing::debug!(url = %request.loggable_url(), retry = next, wait_ms = wait.as_millis() as u64, "retrying Graph request");
        Ok(())
    }

    fn observe_rate_limit(&self, resource: &Resource, headers: &HeaderMap) {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
        if let (Some(remaining), Some(reset)) =
            (number("ratelimit-remaining"), number("ratelimit-reset"))
            && let Ok(reset) = Duration::try_from_secs_f64(reset)
        {
            // Whole units are enough here; a fraction left is as good as none.
            self.governor
                .observe_rate_limit(resource, remaining.max(0.0) as u32, reset);
        }
    }

    fn error_from(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GraphError {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.governor.clock().now()));
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        GraphError::from_response(
            status.as_u16(),
            header("request-id"),
            retry_after,
            header("location"),
            body,
        )
    }

    /// Sends and decodes JSON. A body cut off mid-way (connection reset after the headers) is
    /// fetched again, with the same backoff as a failed request, when sending twice is harmless.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        tenant: TenantId,
        request: &GraphRequest,
    ) -> Result<T, GraphError> {
        let body = self.get_bytes(tenant, request).await?;
        serde_json::from_slice(&body).map_err(|e| GraphError::Decode {
            url: request.loggable_url(),
            message: e.to_string(),
        })
    }

    /// Sends and reads the whole body of a success answer; see `get_json`.
    pub(crate) async fn get_bytes(
        &self,
        tenant: TenantId,
        request: &GraphRequest,
    ) -> Result<Bytes, GraphError> {
        let mut broken_bodies: u32 = 0;
        loop {
            let response = self.send(tenant, request).await?;
            if response.status().is_redirection() {
                return Err(GraphError::Decode {
                    url: request.loggable_url(),
                    message: format!("unexpected redirect {}", response.status()),
                });
            }
            match response.bytes().await {
                Err(GraphError::Transport { host, message, .. })
                    if request.idempotent && broken_bodies < self.policy.max_retries =>
                {
                    broken_bodies += 1;
                    tracing::debug!(%host, %message, "response body broke off; fetching again");
                    let wait = backoff_delay(&self.policy, broken_bodies, &mut rand::rng());
                    self.governor.sleeper().sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}
