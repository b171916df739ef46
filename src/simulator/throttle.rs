//! Microsoft's published throttling limits (graph-protocol.md §5), enforced per caller:
//! Outlook per app and mailbox (4 concurrent, 10,000 requests per 10 minutes, 150 MB uploaded per
//! 5 minutes; §5.2), SharePoint/OneDrive resource units per app per tenant per minute by license
//! tier (§5.3), and the directory's resource-unit token bucket per app and tenant sized by tenant
//! size (§5.4). A caller that retries before `Retry-After` has passed is refused again (§6).
//! Time comes from the simulator's clock. This module decides and records; it never renders HTTP.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::state::{lock, read, write};

/// The service a request lands on; each has its own limits, fault plan and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Directory,
    Mail,
    Drive,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Directory, Workload::Mail, Workload::Drive];
}

/// Limits; defaults are Microsoft's published numbers. `None` sizes by tenant as documented.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleLimits {
    pub enabled: bool,
    pub mailbox_concurrency: u32,
    pub mailbox_requests: u32,
    pub mailbox_window_seconds: f64,
    pub mailbox_upload_bytes: u64,
    pub mailbox_upload_window_seconds: f64,
    /// RU per app per tenant per minute; `None` = 1,200…6,000 by license count (§5.3).
    pub spo_resource_units_per_minute: Option<f64>,
    /// RU per app per tenant per 10 s; `None` = 3,500 / 5,000 / 8,000 by tenant size (§5.4).
    pub directory_resource_units_per_10s: Option<f64>,
    /// Answer a retry that comes before `Retry-After` with another refusal.
    pub enforce_retry_after: bool,
    /// Per app across all tenants: 130,000 requests per 10 seconds (§5.1).
    pub app_requests_per_10s: u32,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            mailbox_concurrency: 4,
            mailbox_requests: 10_000,
            mailbox_window_seconds: 600.0,
            mailbox_upload_bytes: 150 * 1024 * 1024,
            mailbox_upload_window_seconds: 300.0,
            spo_resource_units_per_minute: None,
            directory_resource_units_per_10s: None,
            enforce_retry_after: true,
            app_requests_per_10s: 130_000,
        }
    }
}

impl ThrottleLimits {
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

/// What a request is throttled against.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Mailbox { user: u32 },
    Spo,
    Directory,
}

/// A refusal: status, Graph error code and message, `Retry-After` and extra headers.
#[derive(Debug, Clone)]
pub struct Throttled {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<f64>,
    pub headers: Vec<(&'static str, String)>,
}

/// Holds one of a mailbox's concurrent slots until dropped.
pub struct MailboxPermit(Arc<AtomicU32>);

impl Drop for MailboxPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Default)]
pub struct Admission {
    pub permit: Option<MailboxPermit>,
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Default)]
struct MailboxBucket {
    in_flight: Arc<AtomicU32>,
    requests: VecDeque<i64>,
    uploads: VecDeque<(i64, u64)>,
    blocked_until: Option<i64>,
}

#[derive(Default)]
struct SpoBucket {
    window_start: i64,
    used: f64,
    blocked_until: Option<i64>,
}

#[derive(Default)]
struct DirectoryBucket {
    tokens: f64,
    last: i64,
    initialised: bool,
    blocked_until: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThrottleEvent {
    pub time: DateTime<Utc>,
    pub app_id: String,
    pub tenant_id: String,
    pub workload: Workload,
    pub resource: String,
    pub status: u16,
    pub reason: String,
    pub retry_after: Option<f64>,
}

#[derive(Default)]
struct Buckets {
    apps: HashMap<String, (i64, u32)>,
    mailboxes: HashMap<(String, usize, u32), MailboxBucket>,
    spo: HashMap<(String, usize), SpoBucket>,
    directory: HashMap<(String, usize), DirectoryBucket>,
}

pub struct Throttle {
    limits: RwLock<ThrottleLimits>,
    buckets: Mutex<Buckets>,
    events: Mutex<VecDeque<ThrottleEvent>>,
}

const MAX_EVENTS: usize = 1_000;

fn spo_tier(licenses: usize) -> f64 {
    match licenses {
        0..=1_000 => 1_200.0,
        1_001..=5_000 => 2_400.0,
        5_001..=15_000 => 3_600.0,
        15_001..=50_000 => 4_800.0,
        _ => 6_000.0,
    }
}

fn directory_tier(users: usize) -> f64 {
    match users {
        0..=49 => 3_500.0,
        50..=500 => 5_000.0,
        _ => 8_000.0,
    }
}

/// Request details the limits need.
pub struct Caller<'a> {
    pub now: DateTime<Utc>,
    pub app_id: &'a str,
    pub tenant: usize,
    pub tenant_id: &'a str,
    pub users_in_tenant: usize,
    /// Licences the tenant bought: SharePoint's tier is sized by them (§5.3).
    pub licences_in_tenant: usize,
    pub resource: &'a str,
}

impl Throttle {
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits: RwLock::new(limits),
            buckets: Mutex::new(Buckets::default()),
            events: Mutex::new(VecDeque::new()),
        }
    }

    pub fn limits(&self) -> ThrottleLimits {
        read(&self.limits).clone()
    }

    pub fn set_limits(&self, limits: ThrottleLimits) {
        *write(&self.limits) = limits;
        *lock(&self.buckets) = Buckets::default();
    }

    pub fn events(&self) -> Vec<ThrottleEvent> {
        lock(&self.events).iter().cloned().collect()
    }

    fn record(&self, caller: &Caller<'_>, workload: Workload, refusal: &Throttled) {
        let mut events = lock(&self.events);
        if events.len() == MAX_EVENTS {
            events.pop_front();
        }
        events.push_back(ThrottleEvent {
            time: caller.now,
            app_id: caller.app_id.to_owned(),
            tenant_id: caller.tenant_id.to_owned(),
            workload,
            resource: caller.resource.to_owned(),
            status: refusal.status,
            reason: refusal.message.clone(),
            retry_after: refusal.retry_after,
        });
    }

    /// Admits a request or says why not. `cost` is in resource units (SharePoint, directory);
    /// `upload_bytes` counts toward Outlook's IncomingBytes limit.
    pub fn admit(
        &self,
        caller: &Caller<'_>,
        scope: Scope,
        cost: f64,
        upload_bytes: u64,
    ) -> Result<Admission, Throttled> {
        let limits = read(&self.limits).clone();
        if !limits.enabled {
            return Ok(Admission::default());
        }
        let result = self.admit_app(&limits, caller).and_then(|()| match scope {
            Scope::Mailbox { user } => self.admit_mailbox(&limits, caller, user, upload_bytes),
            Scope::Spo => self.admit_spo(&limits, caller, cost),
            Scope::Directory => self.admit_directory(&limits, caller, cost),
        });
        if let Err(refusal) = &result {
            let workload = match scope {
                Scope::Mailbox { .. } => Workload::Mail,
                Scope::Spo => Workload::Drive,
                Scope::Directory => Workload::Directory,
            };
            self.record(caller, workload, refusal);
        }
        result
    }

    /// The global per-app ceiling, a fixed 10-second window.
    fn admit_app(&self, limits: &ThrottleLimits, caller: &Caller<'_>) -> Result<(), Throttled> {
        let now = caller.now.timestamp_millis();
        let mut buckets = lock(&self.buckets);
        let (start, count) = buckets
            .apps
            .entry(caller.app_id.to_owned())
            .or_insert((now, 0));
        if now - *start >= 10_000 {
            *start = now;
            *count = 0;
        }
        *count += 1;
        if *count > limits.app_requests_per_10s {
            let retry = ((*start + 10_000 - now).max(1) as f64) / 1000.0;
            return Err(Throttled {
                status: 429,
                code: "TooManyRequests",
                message: "Too many requests. Please retry again later.".to_owned(),
                retry_after: Some(retry),
                headers: Vec::new(),
            });
        }
        Ok(())
    }

    fn admit_mailbox(
        &self,
        limits: &ThrottleLimits,
        caller: &Caller<'_>,
        user: u32,
        upload_bytes: u64,
    ) -> Result<Admission, Throttled> {
        let now = caller.now.timestamp_millis();
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .mailboxes
            .entry((caller.app_id.to_owned(), caller.tenant, user))
            .or_default();
        let window = (limits.mailbox_window_seconds * 1000.0) as i64;
        while bucket.requests.front().is_some_and(|&t| t <= now - window) {
            bucket.requests.pop_front();
        }
        let upload_window = (limits.mailbox_upload_window_seconds * 1000.0) as i64;
        while bucket
            .uploads
            .front()
            .is_some_and(|&(t, _)| t <= now - upload_window)
        {
            bucket.uploads.pop_front();
        }
        let concurrency = |retry: Option<f64>| Throttled {
            status: 429,
            code: "ApplicationThrottled",
            message: "Application is over its MailboxConcurrency limit.".to_owned(),
            retry_after: retry,
            headers: Vec::new(),
        };
        if limits.enforce_retry_after && bucket.blocked_until.is_some_and(|until| now < until) {
            let remaining = bucket.blocked_until.map_or(0, |until| until - now) as f64 / 1000.0;
            bucket.requests.push_back(now);
            return Err(concurrency(Some(remaining)));
        }
        if bucket.in_flight.load(Ordering::Acquire) >= limits.mailbox_concurrency {
            return Err(concurrency(Some(1.0)));
        }
        if bucket.requests.len() as u64 >= limits.mailbox_requests as u64 {
            let oldest = bucket.requests.front().copied().unwrap_or(now);
            let retry = ((oldest + window - now).max(1) as f64 / 1000.0).max(0.001);
            bucket.blocked_until = Some(now + (retry * 1000.0) as i64);
            return Err(concurrency(Some(retry)));
        }
        let uploaded: u64 = bucket.uploads.iter().map(|(_, b)| b).sum();
        if upload_bytes > 0 && uploaded + upload_bytes > limits.mailbox_upload_bytes {
            let oldest = bucket.uploads.front().map_or(now, |(t, _)| *t);
            let retry = ((oldest + upload_window - now).max(1) as f64) / 1000.0;
            bucket.blocked_until = Some(now + (retry * 1000.0) as i64);
            return Err(Throttled {
                status: 429,
                code: "ApplicationThrottled",
                message: "Application is over its IncomingBytes limit.".to_owned(),
                retry_after: Some(retry),
                headers: Vec::new(),
            });
        }
        bucket.requests.push_back(now);
        if upload_bytes > 0 {
            bucket.uploads.push_back((now, upload_bytes));
        }
        bucket.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(Admission {
            permit: Some(MailboxPermit(bucket.in_flight.clone())),
            headers: Vec::new(),
        })
    }

    fn admit_spo(
        &self,
        limits: &ThrottleLimits,
        caller: &Caller<'_>,
        cost: f64,
    ) -> Result<Admission, Throttled> {
        let now = caller.now.timestamp_millis();
        let limit = limits
            .spo_resource_units_per_minute
            .unwrap_or_else(|| spo_tier(caller.licences_in_tenant));
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .spo
            .entry((caller.app_id.to_owned(), caller.tenant))
            .or_default();
        if now - bucket.window_start >= 60_000 {
            bucket.window_start = now;
            bucket.used = 0.0;
        }
        let reset = (bucket.window_start + 60_000 - now) as f64 / 1000.0;
        // Throttled requests count toward usage (§5.3).
        bucket.used += cost;
        if limits.enforce_retry_after && bucket.blocked_until.is_some_and(|until| now < until) {
            let remaining = bucket.blocked_until.map_or(0, |until| until - now) as f64 / 1000.0;
            // Calling again before Retry-After: the service answers "Server Too Busy".
            return Err(Throttled { status: 503, code: "serviceNotAvailable", message: "The service is temporarily unavailable. Calling before the Retry-After period has passed.".to_owned(), retry_after: Some(remaining), headers: Vec::new() });
        }
        if bucket.used > limit {
            bucket.blocked_until = Some(now + (reset * 1000.0) as i64);
            let headers = vec![
                ("RateLimit-Limit", format!("{limit}")),
                ("RateLimit-Remaining", "0".to_owned()),
                ("RateLimit-Reset", format!("{}", reset.ceil() as i64)),
            ];
            return Err(Throttled {
                status: 429,
                code: "activityLimitReached",
                message: "The request has been throttled".to_owned(),
                retry_after: Some(reset),
                headers,
            });
        }
        let mut headers = Vec::new();
        if bucket.used >= limit * 0.8 {
            headers.push(("RateLimit-Limit", format!("{limit}")));
            headers.push((
                "RateLimit-Remaining",
                format!("{}", (limit - bucket.used).max(0.0) as i64),
            ));
            headers.push(("RateLimit-Reset", format!("{}", reset.ceil() as i64)));
        }
        Ok(Admission {
            permit: None,
            headers,
        })
    }

    fn admit_directory(
        &self,
        limits: &ThrottleLimits,
        caller: &Caller<'_>,
        cost: f64,
    ) -> Result<Admission, Throttled> {
        let now = caller.now.timestamp_millis();
        let capacity = limits
            .directory_resource_units_per_10s
            .unwrap_or_else(|| directory_tier(caller.users_in_tenant));
        let rate_per_ms = capacity / 10_000.0;
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .directory
            .entry((caller.app_id.to_owned(), caller.tenant))
            .or_default();
        if !bucket.initialised {
            bucket.tokens = capacity;
            bucket.last = now;
            bucket.initialised = true;
        }
        bucket.tokens =
            (bucket.tokens + (now - bucket.last).max(0) as f64 * rate_per_ms).min(capacity);
        bucket.last = now;
        let scope_header = format!(
            "Tenant_Application/ReadWrite/{}/{}",
            caller.app_id, caller.tenant_id
        );
        let blocked =
            limits.enforce_retry_after && bucket.blocked_until.is_some_and(|until| now < until);
        if blocked || bucket.tokens < cost {
            let retry = if blocked {
                bucket.blocked_until.map_or(0, |until| until - now) as f64 / 1000.0
            } else {
                ((cost - bucket.tokens) / rate_per_ms / 1000.0).max(0.001)
            };
            bucket.blocked_until = Some(now + (retry * 1000.0).ceil() as i64);
            let headers = vec![
                ("x-ms-resource-unit", format!("{cost}")),
                ("x-ms-throttle-scope", scope_header),
                (
                    "x-ms-throttle-information",
                    "ResourceUnitLimitExceeded".to_owned(),
                ),
            ];
            return Err(Throttled {
                status: 429,
                code: "TooManyRequests",
                message: "Too many requests. Please retry again later.".to_owned(),
                retry_after: Some(retry),
                headers,
            });
        }
        bucket.tokens -= cost;
        let mut headers = vec![("x-ms-resource-unit", format!("{cost}"))];
        let used = 1.0 - bucket.tokens / capacity;
        if used > 0.8 {
            headers.push(("x-ms-throttle-limit-percentage", format!("{used:.2}")));
        }
        Ok(Admission {
            permit: None,
            headers,
        })
    }
}
