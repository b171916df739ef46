//! The client handles: `GraphClient` (one per process, shared by every tenant) and
//! `TenantClient` (a cheap handle scoped to one tenant, so a call can never mix tenants). It owns
//! construction — the reqwest clients, the User-Agent, the governor, the token cache — and URL
//! building; it must never hold per-request state.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, USER_AGENT};
use url::Url;

use crate::clock::SharedClock;
use crate::m365::error::GraphError;
use crate::m365::http::{Executor, GraphRequest};
use crate::m365::identity::{
    self, AdminSignIn, AdminSignInError, AdminSignInStart, ConsentTenant, OAuthHttp, ProvenAdmin,
    TokenProvider,
};
use crate::m365::settings::M365Settings;
use crate::m365::throttle::{Governor, Resource, Sleeper, ThrottleLog, TokioSleeper};
use crate::m365::types::{Organization, TenantId};

/// Microsoft asks ISVs to decorate traffic as `ISV|Company|App/Version` (§5.3); decorated
/// traffic is throttled less eagerly.
pub(crate) fn user_agent() -> String {
    format!("ISV|Skyvault|Skyvault/{}", env!("CARGO_PKG_VERSION"))
}

/// The Microsoft 365 client for every tenant. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Arc<M365Settings>,
    executor: Arc<Executor>,
    admin_sign_in: AdminSignIn,
    graph_v1: Url,
}

/// Options beyond the settings: how to wait, how many throttling events to keep.
#[derive(Debug)]
pub struct GraphClientBuilder {
    settings: M365Settings,
    clock: SharedClock,
    sleeper: Arc<dyn Sleeper>,
    throttle_log_capacity: usize,
    timeout: Duration,
}

impl GraphClientBuilder {
    /// Replaces tokio's timer; tests pass one that advances a `ManualClock`.
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// How many recent throttling events `throttle_log().recent()` keeps (default 500).
    pub fn throttle_log_capacity(mut self, capacity: usize) -> Self {
        self.throttle_log_capacity = capacity;
        self
    }

    /// Connect and read timeout for each request (default 60 s). A streamed download only fails
    /// when no byte arrives for this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn build(self) -> Result<GraphClient, GraphError> {
        self.settings.validate()?;
        let mut headers = HeaderMap::new();
        let agent = HeaderValue::from_str(&user_agent())
            .map_err(|e| GraphError::Settings(e.to_string()))?;
        headers.insert(USER_AGENT, agent);
        let build = |redirects: bool| {
            reqwest::Client::builder()
                .default_headers(headers.clone())
                .connect_timeout(self.timeout)
                .read_timeout(self.timeout)
                // Redirects are followed by hand: a 302 to a pre-authenticated URL must not carry
                // the bearer token (§4.3), and reqwest keeps it when the host does not change.
                .redirect(if redirects {
                    reqwest::redirect::Policy::limited(5)
                } else {
                    reqwest::redirect::Policy::none()
                })
                .build()
                .map_err(|e| GraphError::Settings(format!("cannot build HTTP client: {e}")))
        };
        let http = build(false)?;
        let anonymous = build(true)?;
        let settings = Arc::new(self.settings);
        let log = Arc::new(ThrottleLog::new(self.throttle_log_capacity));
        let governor = Arc::new(Governor::new(
            self.clock.clone(),
            self.sleeper.clone(),
            settings.limits.clone(),
            log,
        ));
        let tokens = Arc::new(TokenProvider::new(
            settings.clone(),
            OAuthHttp::new(build(false)?, self.clock.clone()),
            self.clock.clone(),
            self.sleeper.clone(),
        ));
        let graph_v1 = settings.graph_v1()?;
        let executor = Arc::new(Executor {
            http,
            anonymous,
            graph_base: graph_v1.clone(),
            governor,
            tokens,
            policy: settings.retry.clone(),
        });
        let admin_sign_in = AdminSignIn::new(
            OAuthHttp::new(build(false)?, self.clock.clone()),
            self.clock.clone(),
        );
        Ok(GraphClient {
            inner: Arc::new(Inner {
                settings,
                executor,
                admin_sign_in,
                graph_v1,
            }),
        })
    }
}

/// What proving a tenant found: the token worked and this is the organization.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantProof {
    pub tenant: TenantId,
    pub organization: Organization,
}

impl GraphClient {
    /// A client with tokio's timer and default options.
    pub fn new(settings: M365Settings, clock: SharedClock) -> Result<Self, GraphError> {
        Self::builder(settings, clock).build()
    }

    pub fn builder(settings: M365Settings, clock: SharedClock) -> GraphClientBuilder {
        GraphClientBuilder {
            settings,
            clock,
            sleeper: Arc::new(TokioSleeper),
            throttle_log_capacity: 500,
            timeout: Duration::from_secs(60),
        }
    }

    pub fn settings(&self) -> &M365Settings {
        &self.inner.settings
    }

    /// The URL to send an admin's browser to for consent (§1.1).
    pub fn admin_consent_url(
        &self,
        tenant: &ConsentTenant,
        state: &str,
    ) -> Result<Url, GraphError> {
        identity::admin_consent_url(&self.inner.settings, tenant, state)
    }

    /// Starts the OpenID Connect sign-in that proves an administrator of `tenant` is the one
    /// finishing its admin consent (§1.4). The nonce and PKCE verifier must be kept server-side.
    pub async fn start_admin_sign_in(
        &self,
        tenant: TenantId,
        state: &str,
    ) -> Result<AdminSignInStart, AdminSignInError> {
        self.inner
            .admin_sign_in
            .start(&self.inner.settings, tenant, state)
            .await
    }

    /// Redeems the sign-in's code and validates its ID token: an administrator of `tenant`.
    pub async fn finish_admin_sign_in(
        &self,
        tenant: TenantId,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<ProvenAdmin, AdminSignInError> {
        self.inner
            .admin_sign_in
            .finish(&self.inner.settings, tenant, code, pkce_verifier, nonce)
            .await
    }

    /// Proves a tenant named by a consent callback: a client-credentials token for it must be
    /// issued (§1.1 warns the callback's `tenant` can be forged), then `organization` is read and
    /// must be that tenant.
    pub async fn prove_tenant(&self, tenant: TenantId) -> Result<TenantProof, GraphError> {
        // A stale token from before a revoked-and-regranted consent must not stand in for proof.
        self.inner.executor.tokens.forget(tenant);
        let organization = self.tenant(tenant).organization().await?;
        if !organization.id.eq_ignore_ascii_case(&tenant.to_string()) {
            return Err(GraphError::Decode {
                url: "organization".into(),
                message: format!("organization id {} is not tenant {tenant}", organization.id),
            });
        }
        Ok(TenantProof {
            tenant,
            organization,
        })
    }

    /// A handle for the Graph calls of one tenant.
    pub fn tenant(&self, tenant: TenantId) -> TenantClient {
        TenantClient {
            client: self.clone(),
            tenant,
        }
    }

    /// Throttling events across all tenants: recent ones and a live feed.
    pub fn throttle_log(&self) -> Arc<ThrottleLog> {
        self.inner.executor.governor.log().clone()
    }

    /// Until when a resource is paused after throttling, if it is.
    pub fn paused_until(&self, resource: &Resource) -> Option<chrono::DateTime<chrono::Utc>> {
        self.inner.executor.governor.paused_until(resource)
    }

    /// A tenant's resources paused by throttling right now, soonest to resume first.
    pub fn paused_resources(
        &self,
        tenant: TenantId,
    ) -> Vec<(Resource, chrono::DateTime<chrono::Utc>)> {
        self.inner.executor.governor.paused_resources(tenant)
    }

    /// Sets a tenant's OneDrive/SharePoint resource-unit ceiling per minute, e.g. from
    /// `throttle::files_resource_units_for_licences(licence_count)`. The default is the smallest
    /// tier (`GovernorLimits::files_resource_units_per_minute`).
    pub fn set_tenant_files_limit(&self, tenant: TenantId, resource_units_per_minute: u32) {
        self.inner
            .executor
            .governor
            .set_files_limit(tenant, resource_units_per_minute);
    }

    /// How many token requests went to the identity platform (cache misses).
    pub fn token_requests(&self) -> u64 {
        self.inner.executor.tokens.fetch_count()
    }

    /// Forgets a tenant's cached token (after its consent was revoked or re-granted).
    pub fn forget_tenant_tokens(&self, tenant: TenantId) {
        self.inner.executor.tokens.forget(tenant);
    }
}

/// The Graph calls for one tenant. Cheap to clone; create one per tenant per job.
#[derive(Debug, Clone)]
pub struct TenantClient {
    client: GraphClient,
    tenant: TenantId,
}

impl TenantClient {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    pub(crate) fn executor(&self) -> &Arc<Executor> {
        &self.client.inner.executor
    }

    /// `{graph}/v1.0/{segments...}?{query}`, each segment percent-encoded (mail and drive ids
    /// may hold characters that are not safe in a path).
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, GraphError> {
        self.url_at(self.client.inner.graph_v1.clone(), segments, query)
    }

    /// Like `url`, under `{graph}/beta/` — for what Microsoft offers only in beta (archive
    /// mailboxes).
    pub(crate) fn beta_url(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, GraphError> {
        let beta = self
            .client
            .inner
            .graph_v1
            .join("../beta/")
            .map_err(|e| GraphError::Settings(format!("cannot build the beta base: {e}")))?;
        self.url_at(beta, segments, query)
    }

    fn url_at(
        &self,
        base: Url,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, GraphError> {
        let mut url = base;
        url.path_segments_mut()
            .map_err(|()| GraphError::Settings("graph_url cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    pub(crate) fn request(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        resource: Resource,
    ) -> Result<GraphRequest, GraphError> {
        Ok(GraphRequest::get(self.url(segments, query)?, resource))
    }

    /// GETs one object; a 404 (deleted, never provisioned) is `None`.
    pub(crate) async fn get_optional<T: serde::de::DeserializeOwned>(
        &self,
        request: GraphRequest,
    ) -> Result<Option<T>, GraphError> {
        match self.executor().get_json::<T>(self.tenant, &request).await {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A OneDrive/SharePoint collection, paged; a listing costs 2 resource units (§5.3).
    pub(crate) fn files_listing<T>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> crate::m365::paging::ItemStream<T>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        match self.request(segments, query, self.files()) {
            Ok(request) => {
                crate::m365::paging::paged(self.executor().clone(), self.tenant, request.cost(2))
            }
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    pub(crate) fn directory(&self) -> Resource {
        Resource::Directory {
            tenant: self.tenant,
        }
    }

    pub(crate) fn mailbox(&self, user_id: &str) -> Resource {
        Resource::Mailbox {
            tenant: self.tenant,
            user: user_id.to_string(),
        }
    }

    pub(crate) fn files(&self) -> Resource {
        Resource::Files {
            tenant: self.tenant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_is_decorated() {
        assert!(user_agent().starts_with("ISV|Skyvault|Skyvault/"));
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        let settings = M365Settings::new("c", "s", Url::parse("https://console/cb").unwrap());
        let client = GraphClient::new(settings, crate::clock::system()).unwrap();
        let t = client.tenant(TenantId(uuid::Uuid::nil()));
        let url = t
            .url(
                &["users", "u1", "messages", "AAMk/a+b=", "$value"],
                &[("$select", "id,subject")],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/users/u1/messages/AAMk%2Fa+b=/$value?%24select=id%2Csubject"
        );
    }

    fn assert_send<T: Send + 'static>(_: &T) {}

    /// Jobs run these on tokio's multi-threaded runtime, so every future must be `Send`.
    #[test]
    fn futures_can_be_spawned() {
        let settings = M365Settings::new("c", "s", Url::parse("https://console/cb").unwrap());
        let client = GraphClient::new(settings, crate::clock::system()).unwrap();
        let t = client.tenant(TenantId(uuid::Uuid::nil()));
        let owned = |t: &TenantClient| t.clone();
        let c = client.clone();
        assert_send(&async move { c.prove_tenant(TenantId(uuid::Uuid::nil())).await });
        let t1 = owned(&t);
        assert_send(&async move { t1.organization().await });
        let t2 = owned(&t);
        assert_send(&async move { t2.user_workloads("u").await });
        let t3 = owned(&t);
        assert_send(&async move { t3.mail_folders("u").await });
        let t4 = owned(&t);
        assert_send(&async move { t4.message_mime("u", "m").await });
        let t5 = owned(&t);
        assert_send(&async move { t5.download("d", "i").await });
        let t6 = owned(&t);
        assert_send(&async move { t6.sites().await });
        assert_send(&t.users());
        assert_send(&t.users_delta(crate::m365::DeltaStart::Initial));
    }
}
