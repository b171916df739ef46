//! The record of throttling events: a bounded buffer of the most recent ones for the console's
//! tables and a broadcast channel for live views. It owns only the record; it must never decide
//! a pause (the governor does) and never grow without bound.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use super::Resource;
use crate::m365::types::TenantId;

/// One time Microsoft said "slow down". The console lists these per tenant.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ThrottleEvent {
    pub tenant: TenantId,
    pub resource: Resource,
    /// 429 or 503.
    pub status: u16,
    /// Graph's error code (`TooManyRequests`, `ApplicationThrottled`, ...), when it sent one.
    pub code: Option<String>,
    /// The server's `Retry-After`; `None` when it sent none and backoff chose the pause.
    #[serde(serialize_with = "seconds_option")]
    pub retry_after: Option<Duration>,
    /// Until when the resource is paused.
    pub paused_until: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

fn seconds_option<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Throttling events: a bounded buffer of the most recent ones plus a broadcast channel for live
/// views. Old events fall off the end; nothing here grows without bound.
#[derive(Debug)]
pub struct ThrottleLog {
    recent: Mutex<VecDeque<ThrottleEvent>>,
    capacity: usize,
    live: broadcast::Sender<ThrottleEvent>,
}

impl ThrottleLog {
    pub fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(capacity.max(1));
        Self {
            recent: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
            live,
        }
    }

    pub(crate) fn record(&self, event: ThrottleEvent) {
        tracing::warn!(tenant = %event.tenant, resource = %event.resource, status = event.status,
            retry_after = ?event.retry_after, "Microsoft throttled a request");
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == self.capacity {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        // No subscriber is fine: the buffer above still has it.
        let _ = self.live.send(event);
    }

    /// The most recent events, oldest first.
    pub fn recent(&self) -> Vec<ThrottleEvent> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The most recent events of one tenant, oldest first.
    pub fn recent_for_tenant(&self, tenant: TenantId) -> Vec<ThrottleEvent> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.tenant == tenant)
            .cloned()
            .collect()
    }

    /// Events as they happen (a lagging receiver loses the oldest, see `recent`).
    pub fn subscribe(&self) -> broadcast::Receiver<ThrottleEvent> {
        self.live.subscribe()
    }
}
