//! Fault injection per workload, after Dev Proxy's plugins (graph-protocol.md §6): a percentage
//! of requests answer 429, 503 or 504 with Microsoft's bodies, drop the connection mid-body, or
//! trickle the body slowly; plus fixed and jittered latency. Choices come from a seeded counter,
//! so a run is reproducible for a given request order. It never decides real throttling.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::generate::hash;
use super::state::{read, write};
use super::throttle::Workload;

/// Rates are percentages (0–100) of requests to the workload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    pub rate_429: f64,
    pub rate_503: f64,
    pub rate_504: f64,
    pub rate_connection_reset: f64,
    pub rate_slow_body: f64,
    /// Milliseconds a slow body takes in total.
    pub slow_body_ms: u64,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    /// `Retry-After` sent with injected 429/503 (fractional seconds allowed).
    pub retry_after_seconds: f64,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    None,
    Status(u16, f64),
    ConnectionReset,
    SlowBody(u64),
}

/// What one user's mailbox and OneDrive answer, whatever is asked, until cleared: a status
/// (400, 403, 503, …) with Microsoft's error body for that workload.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct UserFault {
    pub mail: Option<u16>,
    pub drive: Option<u16>,
    /// `Retry-After` sent with a 503 (none when 0).
    pub retry_after_seconds: f64,
}

#[derive(Default)]
pub struct Faults {
    plans: RwLock<HashMap<Workload, FaultPlan>>,
    /// By (tenant index, user index).
    users: RwLock<HashMap<(usize, u32), UserFault>>,
    counter: AtomicU64,
}

impl Faults {
    pub fn set_user_fault(&self, tenant: usize, user: u32, fault: Option<UserFault>) {
        let mut users = write(&self.users);
        match fault {
            Some(fault) => users.insert((tenant, user), fault),
            None => users.remove(&(tenant, user)),
        };
    }

    pub fn user_fault(&self, tenant: usize, user: u32) -> Option<UserFault> {
        read(&self.users).get(&(tenant, user)).copied()
    }

    pub fn set(&self, workload: Workload, plan: FaultPlan) {
        write(&self.plans).insert(workload, plan);
    }

    pub fn plans(&self) -> HashMap<Workload, FaultPlan> {
        read(&self.plans).clone()
    }

    pub fn clear(&self) {
        write(&self.plans).clear();
    }

    /// Decides the fault and the added latency (ms) for the next request to `workload`.
    pub fn pick(&self, workload: Workload) -> (Fault, u64) {
        let plans = read(&self.plans);
        let Some(plan) = plans.get(&workload) else {
            return (Fault::None, 0);
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let roll = (hash(&[n, 77]) % 10_000) as f64 / 100.0;
        let jitter = if plan.latency_jitter_ms > 0 {
            hash(&[n, 78]) % (plan.latency_jitter_ms + 1)
        } else {
            0
        };
        let latency = plan.latency_ms + jitter;
        let retry = if plan.retry_after_seconds > 0.0 {
            plan.retry_after_seconds
        } else {
            2.0
        };
        let mut edge = 0.0;
        for (rate, fault) in [
            (plan.rate_429, Fault::Status(429, retry)),
            (plan.rate_503, Fault::Status(503, retry)),
            (plan.rate_504, Fault::Status(504, 0.0)),
            (plan.rate_connection_reset, Fault::ConnectionReset),
            (
                plan.rate_slow_body,
                Fault::SlowBody(plan.slow_body_ms.max(1)),
            ),
        ] {
            edge += rate;
            if roll < edge {
                return (fault, latency);
            }
        }
        (Fault::None, latency)
    }
}
