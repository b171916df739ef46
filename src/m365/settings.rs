//! Settings of the Microsoft 365 client: where the identity platform and Graph live, which app
//! registration Skyvault signs in as, and the throttling limits it keeps to. It owns validation
//! of those values and their documented defaults; it must never read the environment or files
//! itself (the console's `config` module does that and hands a value here).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::m365::error::GraphError;

/// Microsoft's public-cloud identity host (graph-protocol.md §0).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Microsoft Graph's public-cloud host (graph-protocol.md §0).
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
/// The app-only scope: the Graph resource identifier plus `/.default` (§1.2). It names the
/// resource, not the host, so it stays the same when `graph_url` points at the simulator.
pub const DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The app registration and endpoints. `client_secret` is redacted from `Debug`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M365Settings {
    /// Identity platform base, default `https://login.microsoftonline.com`.
    #[serde(default = "default_authority")]
    pub authority_url: String,
    /// Graph base (without `/v1.0`), default `https://graph.microsoft.com`.
    #[serde(default = "default_graph")]
    pub graph_url: String,
    /// Scope asked for in client-credentials and admin-consent requests.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Application (client) id of Skyvault's multi-tenant app registration.
    pub client_id: String,
    /// Client secret value (not the secret's id).
    pub client_secret: String,
    /// Where admin consent returns; must exactly match a registered redirect URI (§1.1).
    pub redirect_uri: Url,
    /// Retry and backoff rules.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Limits the governor keeps to before Microsoft has to throttle.
    #[serde(default)]
    pub limits: GovernorLimits,
}

impl fmt::Debug for M365Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M365Settings")
            .field("authority_url", &self.authority_url)
            .field("graph_url", &self.graph_url)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("retry", &self.retry)
            .field("limits", &self.limits)
            .finish()
    }
}

impl M365Settings {
    /// Settings for the public cloud with default limits.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: Url,
    ) -> Self {
        Self {
            authority_url: default_authority(),
            graph_url: default_graph(),
            scope: default_scope(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri,
            retry: RetryPolicy::default(),
            limits: GovernorLimits::default(),
        }
    }

    /// Points both the identity platform and Graph at one origin, as the simulator serves them.
    pub fn with_base_url(mut self, base: &Url) -> Self {
        self.authority_url = base.to_string();
        self.graph_url = base.to_string();
        self
    }

    /// Rejects values that would only fail later, on the first request.
    pub fn validate(&self) -> Result<(), GraphError> {
        for (name, url) in [
            ("authority_url", self.authority()?),
            ("graph_url", self.graph()?),
        ] {
            if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                return Err(GraphError::Settings(format!(
                    "{name} must be an http(s) URL, got {url}"
                )));
            }
        }
        if self.client_id.trim().is_empty() {
            return Err(GraphError::Settings("client_id is empty".into()));
        }
        if self.client_secret.is_empty() {
            return Err(GraphError::Settings("client_secret is empty".into()));
        }
        if !self.scope.ends_with("/.default") {
            // §1.2: client credentials only accept `{resource}/.default` (AADSTS1002012 otherwise).
            return Err(GraphError::Settings(format!(
                "scope must end with /.default, got {}",
                self.scope
            )));
        }
        if self.limits.mailbox_concurrency == 0 {
            return Err(GraphError::Settings(
                "limits.mailbox_concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The identity platform base as a URL.
    pub fn authority(&self) -> Result<Url, GraphError> {
        parse_setting("authority_url", &self.authority_url)
    }

    /// The Graph base as a URL.
    pub fn graph(&self) -> Result<Url, GraphError> {
        parse_setting("graph_url", &self.graph_url)
    }

    /// `{graph_url}/v1.0/` as a base that relative Graph paths join onto.
    pub(crate) fn graph_v1(&self) -> Result<Url, GraphError> {
        join_base(&self.graph()?, "v1.0/")
    }
}

pub(crate) fn join_base(base: &Url, path: &str) -> Result<Url, GraphError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join(path)
        .map_err(|e| GraphError::Settings(format!("cannot join {path} onto {base}: {e}")))
}

/// How failed requests are retried. Defaults follow the Graph SDK retry handler (§5.6):
/// 429/503/504 retried, `Retry-After` honoured, otherwise exponential backoff from 3 s with the
/// square of the retry number, each wait at most 180 s, 1800 s in total, at most 10 retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub max_retries: u32,
    #[serde(with = "seconds")]
    pub initial_delay: Duration,
    #[serde(with = "seconds")]
    pub max_delay: Duration,
    #[serde(with = "seconds")]
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 10,
            initial_delay: Duration::from_secs(3),
            max_delay: Duration::from_secs(180),
            max_total_wait: Duration::from_secs(1800),
        }
    }
}

/// The published ceilings the governor paces itself under (§5.2, §5.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernorLimits {
    /// Outlook: four concurrent requests per app and mailbox.
    pub mailbox_concurrency: usize,
    /// Outlook: 10,000 requests per 10 minutes per app and mailbox.
    pub mailbox_requests_per_window: u32,
    #[serde(with = "seconds")]
    pub mailbox_window: Duration,
    /// Outlook: 150 MB uploaded (PATCH, POST, PUT bodies) per 5 minutes per app and mailbox.
    pub mailbox_upload_bytes_per_window: u64,
    #[serde(with = "seconds")]
    pub mailbox_upload_window: Duration,
    /// OneDrive/SharePoint resource units per minute per app per tenant. The default is the
    /// smallest tier of the 2024 table (1,200 RU/min, tenants under 1,000 licences); raise it for
    /// larger tenants.
    pub files_resource_units_per_minute: u32,
}

impl Default for GovernorLimits {
    fn default() -> Self {
        Self {
            mailbox_concurrency: 4,
            mailbox_requests_per_window: 10_000,
            mailbox_window: Duration::from_secs(600),
            mailbox_upload_bytes_per_window: 150 * 1024 * 1024,
            mailbox_upload_window: Duration::from_secs(300),
            files_resource_units_per_minute: 1_200,
        }
    }
}

fn default_authority() -> String {
    DEFAULT_AUTHORITY.to_string()
}

fn default_graph() -> String {
    DEFAULT_GRAPH.to_string()
}

fn default_scope() -> String {
    DEFAULT_SCOPE.to_string()
}

fn parse_setting(name: &str, value: &str) -> Result<Url, GraphError> {
    Url::parse(value)
        .map_err(|e| GraphError::Settings(format!("{name} is not a URL ({value}): {e}")))
}

/// Durations in settings files are written as (possibly fractional) seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_microsofts_public_cloud() {
        let s = M365Settings::new(
            "id",
            "secret",
            Url::parse("https://console.example/cb").unwrap(),
        );
        assert_eq!(
            s.authority().unwrap().as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(
            s.graph_v1().unwrap().as_str(),
            "https://graph.microsoft.com/v1.0/"
        );
        assert_eq!(s.scope, "https://graph.microsoft.com/.default");
        s.validate().unwrap();
        assert!(!format!("{s:?}").contains("secret\""));
    }

    #[test]
    fn settings_reject_unknown_keys_and_read_fractional_seconds() {
        let s: M365Settings = serde_json::from_str(
            r#"{"client_id":"a","client_secret":"b","redirect_uri":"https://x/cb",
                "retry":{"initial_delay":0.5}}"#,
        )
        .unwrap();
        assert_eq!(s.retry.initial_delay, Duration::from_millis(500));
        assert_eq!(s.retry.max_retries, 10);
        let bad = serde_json::from_str::<M365Settings>(
            r#"{"client_id":"a","client_secret":"b","redirect_uri":"https://x/cb","nope":1}"#,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn graph_base_with_a_path_keeps_it() {
        let base = Url::parse("http://127.0.0.1:9000/prefix").unwrap();
        assert_eq!(
            join_base(&base, "v1.0/").unwrap().as_str(),
            "http://127.0.0.1:9000/prefix/v1.0/"
        );
    }
}
