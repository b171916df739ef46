//! The simulator's control API as the benchmarks call it.

use serde_json::Value;

/// A running simulator's control API (`/_sim/…`), called with its admin token.
pub struct Sim {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Sim {
    pub fn of(sim: &skyvault::simulator::RunningSimulator) -> Self {
        Self {
            base: sim.base_url().trim_end_matches('/').to_string(),
            token: sim.admin_token().to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Calls `/_sim/{path}` and returns its JSON; panics on a non-2xx answer.
    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}/_sim/{path}", self.base),
            )
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(status.is_success(), "{path}: {status}");
        response.json().await.unwrap_or(Value::Null)
    }

    /// Writes `bytes` as the content at Graph path `path`, as the tenant itself (no token,
    /// throttling or counting): a change made in Microsoft 365 between two backups.
    pub async fn put_bytes(&self, path: &str, bytes: Vec<u8>) {
        let response = self
            .http
            .put(format!("{}/_sim/tenants/default/graph/{path}", self.base))
            .bearer_auth(&self.token)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
    }
}
