//! Integration tests for `skyvault::simulator`: plain HTTP (reqwest) against a running simulator,
//! asserting Microsoft's documented behaviour. Time is a `ManualClock`; nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod directory;
mod drive;
mod export;
mod groups;
mod identity;
mod mail;
mod mailbox_api;
mod schema;
mod sites;
mod teams;
mod throttling;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use skyvault::clock::ManualClock;
use skyvault::simulator::{RunningSimulator, SimulatorOptions, TenantSpec, start};

pub const CLIENT_ID: &str = "5f6a3e2b-1111-4c4c-8d8d-0123456789ab";
pub const CLIENT_SECRET: &str = "s3cr3t~value";
pub const REDIRECT_URI: &str = "http://127.0.0.1:8080/m365/consent/callback";
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

pub struct Sim {
    pub running: RunningSimulator,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub token: String,
}

impl Sim {
    pub fn base(&self) -> &str {
        self.running.base_url()
    }

    pub fn tenant_id(&self) -> String {
        self.running.tenant().tenant_id.to_string()
    }

    /// GET a Graph path (or absolute URL) with the app token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_with(path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/v1.0/{path}", self.base())
        };
        let mut request = self.http.get(url).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// The bytes of a pre-authenticated download URL (no token), optionally a `Range`.
    pub async fn download(&self, url: &str, range: Option<&str>) -> bytes::Bytes {
        let mut request = self.http.get(url);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.unwrap()
    }

    /// POST JSON to a Graph path (or absolute URL) with the app token: status and JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/v1.0/{path}", self.base())
        };
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The child folders of `folder` in `collection` (`users/{u}/mailFolders` or
    /// `admin/exchange/mailboxes/{m}/folders`), checked against its `childFolderCount`.
    pub async fn child_folders(&self, collection: &str, folder: &Value) -> Vec<Value> {
        let id = folder["id"].as_str().unwrap();
        let (children, _) = self
            .collect(&format!("{collection}/{id}/childFolders"), &[])
            .await;
        assert_eq!(
            children.len() as u64,
            folder["childFolderCount"].as_u64().unwrap()
        );
        children
    }

    pub async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "GET {path} answered {status}: {body}");
        body
    }

    /// Follows `@odata.nextLink` to the end; returns all items and the final body.
    pub async fn collect(&self, path: &str, headers: &[(&str, &str)]) -> (Vec<Value>, Value) {
        let mut items = Vec::new();
        let mut url = format!("{}/v1.0/{path}", self.base());
        for _ in 0..10_000 {
            let response = self.get_with(&url, headers).await;
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert!(status.is_success(), "GET {url} answered {status}: {body}");
            items.extend(body["value"].as_array().unwrap().iter().cloned());
            match body["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return (items, body),
            }
        }
        panic!("paging did not end");
    }

    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/_sim/{path}", self.base()))
            .bearer_auth(self.running.admin_token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.base()))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn app_token(&self) -> String {
        let tenant = self.tenant_id();
        let response = self
            .token_request(
                &tenant,
                &[
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                    ("scope", GRAPH_SCOPE),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A small tenant, the test app registered and consented, and an app token.
pub async fn start_sim(customise: impl FnOnce(&mut SimulatorOptions)) -> Sim {
    skyvault::install_crypto_provider();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap());
    let mut options = SimulatorOptions {
        tenants: vec![TenantSpec::small("Contoso", 7)],
        clock: Arc::new(clock.clone()),
        deleted_retention: chrono::Duration::seconds(120),
        workers: 1,
        ..SimulatorOptions::default()
    };
    customise(&mut options);
    let running = start(options).await.unwrap();
    running.register_app(CLIENT_ID, CLIENT_SECRET, &[REDIRECT_URI]);
    let mut sim = Sim {
        running,
        http: http_client(),
        clock,
        token: String::new(),
    };
    let (status, _) = sim
        .control(
            reqwest::Method::POST,
            &format!("tenants/{}/consents/{CLIENT_ID}", sim.tenant_id()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    sim.token = sim.app_token().await;
    sim
}

pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}
