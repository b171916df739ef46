//! Request counters the control API reports: per app, tenant, mailbox and endpoint (a path
//! template such as `GET /users/{id}/messages/{id}/$value`), and per response status.
//! It only counts; it never refuses anything.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use super::state::lock;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub total: u64,
    pub by_app: BTreeMap<String, u64>,
    pub by_tenant: BTreeMap<String, u64>,
    pub by_mailbox: BTreeMap<String, u64>,
    pub by_endpoint: BTreeMap<String, u64>,
    pub by_status: BTreeMap<u16, u64>,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    pub fn count(&self, app: &str, tenant: &str, mailbox: Option<&str>, endpoint: &str) {
        let mut c = lock(&self.counters);
        c.total += 1;
        *c.by_app.entry(app.to_owned()).or_default() += 1;
        *c.by_tenant.entry(tenant.to_owned()).or_default() += 1;
        if let Some(mailbox) = mailbox {
            *c.by_mailbox.entry(mailbox.to_owned()).or_default() += 1;
        }
        if let Some(n) = c.by_endpoint.get_mut(endpoint) {
            *n += 1;
        } else {
            c.by_endpoint.insert(endpoint.to_owned(), 1);
        }
    }

    pub fn status(&self, status: u16) {
        *lock(&self.counters).by_status.entry(status).or_default() += 1;
    }

    pub fn snapshot(&self) -> Counters {
        lock(&self.counters).clone()
    }

    pub fn reset(&self) {
        *lock(&self.counters) = Counters::default();
    }
}
