//! Errors of the Microsoft 365 client. Each says whether retrying later can help, and carries
//! what Microsoft said: Graph's error `code` and `message`, the `request-id` support asks for,
//! and the HTTP status. It owns the parsing of Graph's and the identity platform's error bodies;
//! it must never branch on message text, only on codes (graph-protocol.md §1.2, §5.5).

use std::time::Duration;

use serde::Deserialize;

/// Everything a Graph or identity call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error status.
    #[error(transparent)]
    Service(Box<ServiceError>),
    /// The identity platform refused to issue an app-only token.
    #[error(transparent)]
    Token(Box<TokenError>),
    /// The request never got an HTTP answer (DNS, connect, TLS, reset, timeout).
    #[error("network error talking to {host}: {message}")]
    Transport {
        host: String,
        message: String,
        retries: u32,
    },
    /// A 2xx answer whose body is not what the documented shape says.
    #[error("unexpected response from {url}: {message}")]
    Decode { url: String, message: String },
    /// A paging or delta link pointed outside the configured Graph origin. Following it would
    /// send the tenant's bearer token to a foreign host, so it is refused.
    #[error("refusing to follow link outside Graph: {0}")]
    UntrustedLink(String),
    /// A delta link that kept asking for a resync; the caller should start a full sync later.
    #[error("delta query kept asking for a full resync: {0}")]
    ResyncLoop(String),
    /// Settings are unusable (bad URL, empty client id).
    #[error("invalid Microsoft 365 settings: {0}")]
    Settings(String),
    /// Microsoft refused a protected Teams API (channel messages, replies, hosted content):
    /// the app is not approved for it, or the tenant lacks the licence or payment it needs.
    /// Retrying cannot help until an administrator acts; the rest of the item still backs up.
    #[error(transparent)]
    ProtectedApi(Box<ProtectedApiRefusal>),
    /// Downloaded bytes do not hash to the `quickXorHash` Graph gave: the file changed while it
    /// was read, or the transfer was corrupted. Fetching it again can help.
    #[error(
        "downloaded content does not match its quickXorHash (expected {expected}, got {actual} over {bytes} bytes)"
    )]
    ContentMismatch {
        expected: String,
        actual: String,
        bytes: u64,
    },
}

/// Why Microsoft refused a protected API (graph-protocol.md §4.6; Microsoft's
/// `teams-protected-apis` and `teams-licenses` pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectedApiReason {
    /// 403: the application has not been granted access to the protected API by Microsoft.
    NotApproved,
    /// 402: the call needs a licence or a billing (payment model) setup the tenant lacks.
    LicenceRequired,
}

/// A refusal of a protected API, with what to tell the customer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.explanation())]
pub struct ProtectedApiRefusal {
    pub reason: ProtectedApiReason,
    /// What was asked for, in words (`channel messages`).
    pub api: String,
    pub status: u16,
    pub code: String,
    /// Microsoft's own message, verbatim.
    pub message: String,
    pub request_id: Option<String>,
}

impl ProtectedApiRefusal {
    /// One sentence a customer can act on.
    pub fn explanation(&self) -> String {
        let what = match self.reason {
            ProtectedApiReason::NotApproved => format!(
                "Microsoft has not approved this app for the protected Teams API needed to read {}; \
                 request access (aka.ms/teamsgraph/requestaccess)",
                self.api
            ),
            ProtectedApiReason::LicenceRequired => format!(
                "Microsoft requires a licence or billing setup to read {}",
                self.api
            ),
        };
        format!("{what}. Microsoft said: {}", self.message)
    }
}

/// What Graph said when it answered with an error status (§5.5).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Graph {status} {code}: {message} (request-id {})", request_id.as_deref().unwrap_or("none"))]
pub struct ServiceError {
    pub status: u16,
    /// Graph's top-level `error.code`, e.g. `Request_ResourceNotFound`, `TooManyRequests`.
    pub code: String,
    /// The most specific `innerError.code` when Graph nests one (e.g. `resyncApplyDifferences`).
    pub inner_code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// How many times the request was retried before giving up.
    pub retries: u32,
    /// The `Location` header: on a delta 410 it is where a full resync starts (§2.2, §4.2).
    pub location: Option<String>,
}

impl From<TokenError> for GraphError {
    fn from(e: TokenError) -> Self {
        GraphError::Token(Box::new(e))
    }
}

/// Coarse classes of failure, for callers that decide what to show or whether to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object is not there (deleted, never existed, no mailbox or OneDrive provisioned).
    NotFound,
    /// Throttled (429, or 503 with Retry-After) and retries ran out.
    Throttled,
    /// The service is temporarily unavailable (5xx, network).
    Unavailable,
    /// The app lacks a permission or the tenant blocks it (403).
    Forbidden,
    /// The token was refused (401) even after a fresh one.
    Unauthenticated,
    /// The app is not (or no longer) consented in the tenant, or its secret is wrong/expired.
    AppNotAuthorized,
    /// A delta token expired or is unknown (410, `syncStateNotFound`, `resyncRequired`).
    SyncStateLost,
    /// The request itself is wrong; retrying cannot help.
    BadRequest,
    /// Anything else.
    Other,
}

impl GraphError {
    /// Whether retrying the same call later can succeed. Scheduler code uses this to decide
    /// between "try again next run" and "raise an alert".
    pub fn is_retryable(&self) -> bool {
        match self {
            GraphError::Service(e) => matches!(
                e.status,
                408 | 409 | 423 | 429 | 500 | 502 | 503 | 504 | 509
            ),
            GraphError::Token(e) => e.is_retryable(),
            GraphError::Transport { .. } => true,
            GraphError::ResyncLoop(_) => true,
            GraphError::ContentMismatch { .. } => true,
            GraphError::Decode { .. }
            | GraphError::UntrustedLink(_)
            | GraphError::Settings(_)
            | GraphError::ProtectedApi(_) => false,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            GraphError::Service(e) => {
                let ServiceError {
                    status,
                    code,
                    inner_code,
                    ..
                } = e.as_ref();
                if is_sync_state_code(code) || inner_code.as_deref().is_some_and(is_sync_state_code)
                {
                    return ErrorKind::SyncStateLost;
                }
                match *status {
                    404 => ErrorKind::NotFound,
                    410 => ErrorKind::SyncStateLost,
                    429 => ErrorKind::Throttled,
                    503 | 509 if code.eq_ignore_ascii_case("TooManyRequests") => {
                        ErrorKind::Throttled
                    }
                    500 | 502 | 503 | 504 => ErrorKind::Unavailable,
                    401 => ErrorKind::Unauthenticated,
                    403 => ErrorKind::Forbidden,
                    400 | 405 | 406 | 411 | 412 | 413 | 415 | 416 | 422 | 501 => {
                        ErrorKind::BadRequest
                    }
                    _ => ErrorKind::Other,
                }
            }
            GraphError::Token(e) => match e.kind() {
                TokenErrorKind::Unavailable => ErrorKind::Unavailable,
                TokenErrorKind::AppNotConsented
                | TokenErrorKind::InvalidClient
                | TokenErrorKind::TenantNotFound => ErrorKind::AppNotAuthorized,
                _ => ErrorKind::Other,
            },
            GraphError::Transport { .. } => ErrorKind::Unavailable,
            GraphError::ResyncLoop(_) => ErrorKind::SyncStateLost,
            // A refusal by policy: `protected_api_refusal()` says which and why.
            GraphError::ProtectedApi(_) => ErrorKind::Forbidden,
            GraphError::Decode { .. }
            | GraphError::UntrustedLink(_)
            | GraphError::Settings(_)
            | GraphError::ContentMismatch { .. } => ErrorKind::Other,
        }
    }

    /// The protected-API refusal this error is, if it is one.
    pub fn protected_api_refusal(&self) -> Option<&ProtectedApiRefusal> {
        match self {
            GraphError::ProtectedApi(refusal) => Some(refusal),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Service(e) => Some(e.status),
            GraphError::Token(e) => e.status,
            GraphError::ProtectedApi(e) => Some(e.status),
            _ => None,
        }
    }

    /// Graph's `error.code` (or the identity platform's `error`).
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Service(e) => Some(&e.code),
            GraphError::Token(e) => Some(&e.error),
            GraphError::ProtectedApi(e) => Some(&e.code),
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            GraphError::Service(e) => e.request_id.as_deref(),
            GraphError::Token(e) => e.trace_id.as_deref(),
            GraphError::ProtectedApi(e) => e.request_id.as_deref(),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Service(e) => e.retry_after,
            GraphError::Token(e) => e.retry_after,
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// Builds the error for a non-success answer from its status, headers and body. Bodies that
    /// are not Graph's error JSON (a proxy's HTML page) still give a useful error.
    pub(crate) fn from_response(
        status: u16,
        request_id: Option<String>,
        retry_after: Option<Duration>,
        location: Option<String>,
        body: &[u8],
    ) -> GraphError {
        let parsed = serde_json::from_slice::<ErrorEnvelope>(body)
            .ok()
            .map(|e| e.error);
        let (code, inner_code, message, body_request_id) = match parsed {
            Some(err) => {
                let inner_request_id = err.inner_error.as_ref().and_then(|i| i.request_id.clone());
                let inner_code = err.inner_error.as_ref().and_then(InnerError::deepest_code);
                (
                    err.code.unwrap_or_default(),
                    inner_code,
                    err.message.unwrap_or_default(),
                    inner_request_id,
                )
            }
            None => (
                String::new(),
                None,
                String::from_utf8_lossy(body).chars().take(300).collect(),
                None,
            ),
        };
        GraphError::Service(Box::new(ServiceError {
            status,
            code: if code.is_empty() {
                format!("http{status}")
            } else {
                code
            },
            inner_code,
            message,
            request_id: request_id.or(body_request_id),
            retry_after,
            retries: 0,
            location,
        }))
    }

    pub(crate) fn with_retries(mut self, n: u32) -> Self {
        match &mut self {
            GraphError::Service(e) => e.retries = n,
            GraphError::Transport { retries, .. } => *retries = n,
            _ => {}
        }
        self
    }
}

/// Codes that mean "your delta token is no good; start over" (§2.2, §3.2, §4.2). Matched without
/// case because Outlook spells them `SyncStateNotFound`, the directory `syncStateNotFound`.
pub(crate) fn is_sync_state_code(code: &str) -> bool {
    const CODES: [&str; 8] = [
        "syncStateNotFound",
        "syncStateInvalid",
        "resyncRequired",
        "resyncApplyDifferences",
        "resyncUploadDifferences",
        "resyncChangesApplyDifferences",
        "resyncChangesUploadDifferences",
        "cannotSnapshotTree",
    ];
    CODES.iter().any(|c| c.eq_ignore_ascii_case(code))
}

/// Graph's OData error envelope: `{"error":{"code","message","innerError":{...}}}` (§5.5).
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "innerError", alias = "innererror")]
    inner_error: Option<InnerError>,
}

#[derive(Debug, Deserialize)]
struct InnerError {
    code: Option<String>,
    #[serde(rename = "request-id")]
    request_id: Option<String>,
    #[serde(rename = "innerError", alias = "innererror")]
    inner_error: Option<Box<InnerError>>,
}

impl InnerError {
    /// The most specific nested code. The throttling example nests `"code":"429"`, a status
    /// echo rather than a code, so purely numeric values are skipped.
    fn deepest_code(&self) -> Option<String> {
        let nested = self.inner_error.as_ref().and_then(|i| i.deepest_code());
        nested.or_else(|| {
            self.code
                .clone()
                .filter(|c| !c.is_empty() && !c.chars().all(|ch| ch.is_ascii_digit()))
        })
    }
}

/// What the identity platform said when it refused a token (§1.2).
#[derive(Debug, Clone, thiserror::Error)]
#[error("token request for tenant {tenant} refused: {error} {} (AADSTS {:?})", description.lines().next().unwrap_or(""), error_codes)]
pub struct TokenError {
    pub tenant: String,
    /// The OAuth `error`: `invalid_client`, `unauthorized_client`, `invalid_request`, ...
    pub error: String,
    pub description: String,
    /// AADSTS numbers, e.g. 7000215 (bad secret), 700016 (app not in the tenant).
    pub error_codes: Vec<u64>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
}

/// Why a token was refused, by the documented codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenErrorKind {
    /// Wrong or expired client secret (AADSTS7000215, 7000222, `invalid_client`).
    InvalidClient,
    /// The app is not in the tenant: consent never given or revoked (700016, 65001,
    /// `unauthorized_client`, `consent_required`).
    AppNotConsented,
    /// The tenant does not exist (90002).
    TenantNotFound,
    /// The scope is not `{resource}/.default` (1002012, 70011, `invalid_scope`).
    InvalidScope,
    /// The identity platform is busy or down (5xx, 429, `temporarily_unavailable`, 90055).
    Unavailable,
    Other,
}

impl TokenError {
    pub fn kind(&self) -> TokenErrorKind {
        let has = |c: u64| self.error_codes.contains(&c);
        if self.error == "temporarily_unavailable"
            || has(90055)
            || self.status.is_some_and(|s| s == 429 || s >= 500)
        {
            TokenErrorKind::Unavailable
        } else if has(7000215) || has(7000222) || self.error == "invalid_client" {
            TokenErrorKind::InvalidClient
        } else if has(90002) {
            TokenErrorKind::TenantNotFound
        } else if has(700016)
            || has(65001)
            || self.error == "unauthorized_client"
            || self.error == "consent_required"
        {
            TokenErrorKind::AppNotConsented
        } else if has(1002012) || has(70011) || self.error == "invalid_scope" {
            TokenErrorKind::InvalidScope
        } else {
            TokenErrorKind::Other
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind() == TokenErrorKind::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_body_keeps_code_message_and_request_id() {
        let body = br#"{ "error": { "code": "TooManyRequests",
             "innerError": { "code": "429", "date": "2020-08-18T12:51:51", "message": "Please retry after",
                             "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2", "status": "429" },
             "message": "Please retry again later." } }"#;
        let e = GraphError::from_response(429, None, Some(Duration::from_secs(10)), None, body);
        assert_eq!(e.code(), Some("TooManyRequests"));
        assert_eq!(e.request_id(), Some("94fb3b52-452a-4535-a601-69e0a90e3aa2"));
        assert_eq!(e.status(), Some(429));
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert!(e.is_retryable());
        match e {
            GraphError::Service(e) => {
                assert_eq!(e.inner_code, None, "numeric inner code is a status echo");
                assert_eq!(e.message, "Please retry again later.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn header_request_id_wins_and_not_found_is_not_retryable() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist","innerError":{"request-id":"body-id"}}}"#;
        let e = GraphError::from_response(404, Some("header-id".into()), None, None, body);
        assert_eq!(e.request_id(), Some("header-id"));
        assert!(e.is_not_found());
        assert!(!e.is_retryable());
    }

    #[test]
    fn nested_resync_code_means_sync_state_lost() {
        let body = br#"{"error":{"code":"resyncRequired","message":"m","innerError":{"code":"resyncChangesApplyDifferences"}}}"#;
        let e = GraphError::from_response(410, None, None, None, body);
        assert_eq!(e.kind(), ErrorKind::SyncStateLost);
        let e = GraphError::from_response(
            400,
            None,
            None,
            None,
            br#"{"error":{"code":"SyncStateNotFound","message":"m"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::SyncStateLost);
    }

    #[test]
    fn non_json_error_body_still_reports() {
        let e = GraphError::from_response(502, None, None, None, b"<html>Bad gateway</html>");
        assert_eq!(e.code(), Some("http502"));
        assert!(e.is_retryable());
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    fn token_error(error: &str, codes: &[u64], status: u16) -> TokenError {
        TokenError {
            tenant: "t".into(),
            error: error.into(),
            description: "AADSTS...".into(),
            error_codes: codes.to_vec(),
            trace_id: None,
            correlation_id: None,
            status: Some(status),
            retry_after: None,
        }
    }

    #[test]
    fn token_errors_map_by_code() {
        assert_eq!(
            token_error("invalid_client", &[7000215], 401).kind(),
            TokenErrorKind::InvalidClient
        );
        assert_eq!(
            token_error("unauthorized_client", &[700016], 400).kind(),
            TokenErrorKind::AppNotConsented
        );
        assert_eq!(
            token_error("invalid_request", &[90002], 400).kind(),
            TokenErrorKind::TenantNotFound
        );
        assert_eq!(
            token_error("invalid_scope", &[1002012], 400).kind(),
            TokenErrorKind::InvalidScope
        );
        assert!(token_error("temporarily_unavailable", &[], 400).is_retryable());
        assert!(!token_error("invalid_client", &[7000215], 401).is_retryable());
        let e = GraphError::from(token_error("unauthorized_client", &[700016], 400));
        assert_eq!(e.kind(), ErrorKind::AppNotAuthorized);
    }
}
