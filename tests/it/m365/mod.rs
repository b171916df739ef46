//! Integration tests for `skyvault::m365`, against the Microsoft 365 simulator. The client and
//! the simulator are independent readings of Microsoft's documentation; these tests are where
//! the two readings meet.

// Test helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_signin;
mod directory;
mod drive;
mod identity;
mod mail;
mod mailbox;
mod recording_server;
mod scripted_graph;
mod sites;
mod teams;
mod throttling;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skyvault::clock::{self, SharedClock};
use skyvault::m365::{GraphClient, M365Settings, RetryPolicy, TenantClient, TenantId};
use skyvault::simulator::{RunningSimulator, SimulatorOptions, TenantSpec, ThrottleLimits, start};
use url::Url;

pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const SECRET: &str = "sv~test~secret~value";
pub const REDIRECT: &str = "https://console.skyvault.test/m365/consent";

pub struct Harness {
    pub sim: RunningSimulator,
    pub client: GraphClient,
    pub tenant: TenantId,
    pub http: reqwest::Client,
}

/// Retries fast enough for tests; the schedule's shape is unit-tested in `throttle`.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 10,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_total_wait: Duration::from_secs(60),
    }
}

pub fn settings_for(sim: &RunningSimulator) -> M365Settings {
    let base = Url::parse(sim.base_url()).unwrap();
    let mut settings =
        M365Settings::new(CLIENT_ID, SECRET, Url::parse(REDIRECT).unwrap()).with_base_url(&base);
    settings.retry = fast_retry();
    settings
}

pub struct Setup {
    pub spec: TenantSpec,
    pub limits: ThrottleLimits,
    pub sim_clock: SharedClock,
    pub client_clock: SharedClock,
    pub consent: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            spec: TenantSpec::small("Contoso", 7),
            limits: ThrottleLimits::default(),
            sim_clock: clock::system(),
            client_clock: clock::system(),
            consent: true,
        }
    }
}

pub async fn harness() -> Harness {
    harness_with(Setup::default()).await
}

pub async fn harness_with(setup: Setup) -> Harness {
    skyvault::install_crypto_provider();
    let sim = start(SimulatorOptions {
        tenants: vec![setup.spec],
        limits: setup.limits,
        clock: setup.sim_clock,
        workers: 2,
        ..SimulatorOptions::default()
    })
    .await
    .unwrap();
    sim.register_app(CLIENT_ID, SECRET, &[REDIRECT]);
    let client = GraphClient::new(settings_for(&sim), setup.client_clock).unwrap();
    let tenant = TenantId(sim.tenant().tenant_id);
    let h = Harness {
        sim,
        client,
        tenant,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    if setup.consent {
        h.control(
            "POST",
            &format!("tenants/default/consents/{CLIENT_ID}"),
            None,
        )
        .await;
    }
    h
}

impl Harness {
    pub fn graph(&self) -> TenantClient {
        self.client.tenant(self.tenant)
    }

    /// Calls the simulator's control API and returns its JSON; panics on a non-2xx answer.
    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_sim/{path}", self.sim.base_url());
        let mut request = self
            .http
            .request(method.parse().unwrap(), url)
            .bearer_auth(self.sim.admin_token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "control {method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

pub fn shared<T: skyvault::clock::Clock + 'static>(clock: T) -> SharedClock {
    Arc::new(clock)
}
