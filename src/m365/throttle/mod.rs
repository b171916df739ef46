//! The throttling governor: it paces requests under Microsoft's published ceilings and, when
//! Microsoft throttles anyway, pauses only the resource that was throttled (one mailbox, one
//! tenant's SharePoint/OneDrive bucket, one tenant's directory) while the others keep going.
//! It owns per-resource pauses, budgets and concurrency slots; `backoff` says how long to wait
//! and `events` keeps the record the console shows. It decides *when* a request may go; it must
//! never send one itself, and it reads time only from the `Clock` (and waits only through its
//! `Sleeper`) so tests are instant.

mod backoff;
mod events;
mod window;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::SharedClock;
use crate::m365::settings::GovernorLimits;
use crate::m365::types::TenantId;

pub use backoff::{Sleeper, TokioSleeper, backoff_delay, parse_retry_after};
pub use events::{ThrottleEvent, ThrottleLog};
use window::SlidingWindow;

/// What a request counts against. Microsoft throttles each of these separately (§5.2–§5.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// Directory (users, groups, organization, deleted items) of a tenant.
    Directory { tenant: TenantId },
    /// One Exchange Online mailbox (Outlook limits are per app and mailbox), by user id.
    Mailbox { tenant: TenantId, user: String },
    /// The tenant's OneDrive/SharePoint resource-unit bucket (per app per tenant).
    Files { tenant: TenantId },
}

impl Resource {
    pub fn tenant(&self) -> TenantId {
        match self {
            Resource::Directory { tenant }
            | Resource::Mailbox { tenant, .. }
            | Resource::Files { tenant } => *tenant,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Directory { .. } => write!(f, "directory"),
            Resource::Mailbox { user, .. } => write!(f, "mailbox {user}"),
            Resource::Files { .. } => write!(f, "OneDrive/SharePoint"),
        }
    }
}

/// What the governor says about a request right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    WaitUntil(DateTime<Utc>),
}

/// A continuously refilled bucket: `capacity` units per `window`.
#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    available: f64,
    updated: DateTime<Utc>,
}

impl Bucket {
    /// At most `limit` units in *any* `window`, however the service aligns its windows: a small
    /// burst (a twentieth of the limit, at least one permission call's 5 units) and a refill of
    /// the rest over the window. A bucket of the full limit refilling at the full rate would let
    /// a burst plus a window's refill — twice the limit — into one of Microsoft's minutes.
    fn paced(limit: u32, window: Duration, now: DateTime<Utc>) -> Self {
        let limit = f64::from(limit.max(1));
        let capacity = (limit / 20.0).max(5.0).min(limit);
        let per_second = ((limit - capacity).max(1.0)) / window.as_secs_f64().max(0.001);
        Self {
            capacity,
            per_second,
            available: capacity,
            updated: now,
        }
    }

    fn refill(&mut self, now: DateTime<Utc>) {
        let elapsed = (now - self.updated)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        self.available = (self.available + elapsed * self.per_second).min(self.capacity);
        if now > self.updated {
            self.updated = now;
        }
    }

    /// Takes `cost` units, or says when enough will be there.
    fn take(&mut self, cost: f64, now: DateTime<Utc>) -> Admission {
        let admission = self.check(cost, now);
        if admission == Admission::Go {
            // A cost above the capacity leaves the bucket in debt, which later requests wait
            // out: the window still sees every unit.
            self.available -= cost;
        }
        admission
    }

    /// Whether `cost` units are there now, without taking them. A cost above the capacity needs
    /// a full bucket (one request bigger than the burst still goes, alone).
    fn check(&mut self, cost: f64, now: DateTime<Utc>) -> Admission {
        self.refill(now);
        let cost = cost.min(self.capacity);
        if self.available >= cost {
            Admission::Go
        } else {
            let wait = (cost - self.available) / self.per_second;
            Admission::WaitUntil(now + chrono_duration(Duration::from_secs_f64(wait)))
        }
    }

    fn is_full(&mut self, now: DateTime<Utc>) -> bool {
        self.refill(now);
        self.available >= self.capacity
    }
}

#[derive(Debug)]
struct ResourceState {
    paused_until: Option<DateTime<Utc>>,
    /// Resource units, paced (SharePoint/OneDrive).
    bucket: Option<Bucket>,
    /// Requests in a sliding window (Outlook, per mailbox).
    requests: Option<SlidingWindow>,
    /// Bytes sent in request bodies in a sliding window (Outlook's upload limit per mailbox).
    upload: Option<SlidingWindow>,
    concurrency: Option<Arc<Semaphore>>,
    concurrency_limit: usize,
}

/// Holding this means the governor let a request go; dropping it frees its concurrency slot.
/// Keep it alive until the response body is fully read (a MIME download is still "in flight").
#[derive(Debug)]
pub struct Permit {
    _slot: Option<OwnedSemaphorePermit>,
}

/// Beyond this many tracked resources, idle ones are forgotten (a paused or busy one never is).
const PRUNE_ABOVE: usize = 4096;

/// Paces requests per resource and pauses throttled resources.
#[derive(Debug)]
pub struct Governor {
    clock: SharedClock,
    sleeper: Arc<dyn Sleeper>,
    limits: GovernorLimits,
    states: Mutex<HashMap<Resource, ResourceState>>,
    /// Per-tenant OneDrive/SharePoint RU ceilings that differ from the default (bigger tenants
    /// get more, §5.3).
    files_limits: Mutex<HashMap<TenantId, u32>>,
    log: Arc<ThrottleLog>,
}

/// The per-minute OneDrive/SharePoint resource units an app gets in a tenant with this many
/// licences (2024 table, §5.3: 0–1k, 1k–5k, 5k–15k, 15k–50k, 50k+ licences give 1,200, 2,400,
/// 3,600, 4,800 and 6,000). The table's ranges share their ends; a count on a boundary gets the
/// lower tier, so Skyvault never asks for more than Microsoft grants.
pub fn files_resource_units_for_licences(licences: u32) -> u32 {
    match licences {
        0..=1_000 => 1_200,
        1_001..=5_000 => 2_400,
        5_001..=15_000 => 3_600,
        15_001..=50_000 => 4_800,
        _ => 6_000,
    }
}

impl Governor {
    pub fn new(
        clock: SharedClock,
        sleeper: Arc<dyn Sleeper>,
        limits: GovernorLimits,
        log: Arc<ThrottleLog>,
    ) -> Self {
        Self {
            clock,
            sleeper,
            limits,
            states: Mutex::new(HashMap::new()),
            files_limits: Mutex::new(HashMap::new()),
            log,
        }
    }

    pub fn log(&self) -> &Arc<ThrottleLog> {
        &self.log
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) fn sleeper(&self) -> &Arc<dyn Sleeper> {
        &self.sleeper
    }

    fn new_state(&self, resource: &Resource, now: DateTime<Utc>) -> ResourceState {
        match resource {
            // Sliding windows, as Outlook counts: the whole limit may go at once (a mailbox's
            // backup is never slowed below what Microsoft allows), but never more than the
            // limit in any window, so a long restore or backup runs at the allowed rate
            // instead of into 429s.
            Resource::Mailbox { .. } => ResourceState {
                paused_until: None,
                bucket: None,
                requests: Some(SlidingWindow::new(
                    f64::from(self.limits.mailbox_requests_per_window),
                    self.limits.mailbox_window,
                )),
                upload: Some(SlidingWindow::new(
                    self.limits.mailbox_upload_bytes_per_window as f64,
                    self.limits.mailbox_upload_window,
                )),
                concurrency: Some(Arc::new(Semaphore::new(self.limits.mailbox_concurrency))),
                concurrency_limit: self.limits.mailbox_concurrency,
            },
            Resource::Files { tenant } => ResourceState {
                paused_until: None,
                bucket: Some(Bucket::paced(
                    self.files_limit(*tenant),
                    Duration::from_secs(60),
                    now,
                )),
                requests: None,
                upload: None,
                concurrency: None,
                concurrency_limit: 0,
            },
            Resource::Directory { .. } => {
                // The directory allows thousands of RU per 10 s per tenant (§5.4); listing is never
                // the bottleneck, so only pauses apply.
                ResourceState {
                    paused_until: None,
                    bucket: None,
                    requests: None,
                    upload: None,
                    concurrency: None,
                    concurrency_limit: 0,
                }
            }
        }
    }

    fn with_state<R>(
        &self,
        resource: &Resource,
        f: impl FnOnce(&mut ResourceState, DateTime<Utc>) -> R,
    ) -> R {
        let now = self.clock.now();
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if states.len() > PRUNE_ABOVE {
            states.retain(|_, s| !is_idle(s, now));
        }
        let state = states
            .entry(resource.clone())
            .or_insert_with(|| self.new_state(resource, now));
        f(state, now)
    }

    fn files_limit(&self, tenant: TenantId) -> u32 {
        let limits = self.files_limits.lock().unwrap_or_else(|p| p.into_inner());
        limits
            .get(&tenant)
            .copied()
            .unwrap_or(self.limits.files_resource_units_per_minute)
    }

    /// Sets a tenant's OneDrive/SharePoint RU ceiling per minute (see
    /// `files_resource_units_for_licences`). Takes effect at once; units already spent stay spent.
    pub fn set_files_limit(&self, tenant: TenantId, resource_units_per_minute: u32) {
        self.files_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant, resource_units_per_minute.max(1));
        let now = self.clock.now();
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(state) = states.get_mut(&Resource::Files { tenant })
            && let Some(old) = state.bucket.as_mut()
        {
            old.refill(now);
            let spent = old.capacity - old.available;
            let mut bucket = Bucket::paced(resource_units_per_minute, Duration::from_secs(60), now);
            bucket.available = (bucket.capacity - spent).max(0.0);
            *old = bucket;
        }
    }

    /// The decision for one request of `cost` units, now. Pure bookkeeping: no waiting.
    pub fn admit(&self, resource: &Resource, cost: u32) -> Admission {
        self.admit_upload(resource, cost, 0)
    }

    /// [`Governor::admit`] for a request that also sends `upload_bytes` in its body: a mailbox
    /// takes them from its upload budget (150 MB per 5 minutes, §5.2). Units are taken only when
    /// every budget has them, so a request that waits has spent nothing.
    pub fn admit_upload(&self, resource: &Resource, cost: u32, upload_bytes: u64) -> Admission {
        self.with_state(resource, |state, now| {
            if let Some(until) = state.paused_until {
                if until > now {
                    return Admission::WaitUntil(until);
                }
                state.paused_until = None;
            }
            let cost = f64::from(cost);
            let bytes = upload_bytes as f64;
            let units_wait = state.bucket.as_mut().map(|b| b.check(cost, now));
            let requests_wait = state.requests.as_mut().map(|w| w.check(cost, now));
            let upload = state.upload.as_mut().filter(|_| upload_bytes > 0);
            let upload_wait = upload.map(|w| w.check(bytes, now));
            let latest = [units_wait, requests_wait, upload_wait]
                .into_iter()
                .flatten()
                .filter_map(|a| match a {
                    Admission::WaitUntil(until) => Some(until),
                    Admission::Go => None,
                })
                .max();
            if let Some(until) = latest {
                return Admission::WaitUntil(until);
            }
            if let Some(bucket) = state.bucket.as_mut() {
                bucket.take(cost, now);
            }
            if let Some(window) = state.requests.as_mut() {
                window.take(cost, now);
            }
            if upload_bytes > 0
                && let Some(window) = state.upload.as_mut()
            {
                window.take(bytes, now);
            }
            Admission::Go
        })
    }

    /// The resources of a tenant that are paused now, and until when — what the console shows as
    /// "throttled right now".
    pub fn paused_resources(&self, tenant: TenantId) -> Vec<(Resource, DateTime<Utc>)> {
        let now = self.clock.now();
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut paused: Vec<_> = states
            .iter()
            .filter(|(r, _)| r.tenant() == tenant)
            .filter_map(|(r, s)| s.paused_until.filter(|u| *u > now).map(|u| (r.clone(), u)))
            .collect();
        paused.sort_by_key(|(_, until)| *until);
        paused
    }

    /// Until when a resource is paused, if it is.
    pub fn paused_until(&self, resource: &Resource) -> Option<DateTime<Utc>> {
        self.with_state(resource, |state, now| {
            state.paused_until.filter(|u| *u > now)
        })
    }

    /// Waits for a concurrency slot, then until the resource is neither paused nor out of budget.
    pub async fn acquire(&self, resource: &Resource, cost: u32) -> Permit {
        self.acquire_upload(resource, cost, 0).await
    }

    /// [`Governor::acquire`] for a request that sends `upload_bytes` in its body.
    pub async fn acquire_upload(
        &self,
        resource: &Resource,
        cost: u32,
        upload_bytes: u64,
    ) -> Permit {
        let semaphore = self.with_state(resource, |state, _| state.concurrency.clone());
        // The semaphore is never closed, so acquiring only fails if it were; go without a slot then.
        let slot = match semaphore {
            Some(s) => s.acquire_owned().await.ok(),
            None => None,
        };
        // The deadline already waited for. If the clock does not move while we sleep (a manual
        // clock in a test, a suspended VM), asking again would give the same deadline forever;
        // having slept the full wait once is then taken as enough.
        let mut waited_for: Option<DateTime<Utc>> = None;
        loop {
            match self.admit_upload(resource, cost, upload_bytes) {
                Admission::Go => break,
                Admission::WaitUntil(until) if waited_for.is_some_and(|w| w >= until) => break,
                Admission::WaitUntil(until) => {
                    let wait = (until - self.clock.now())
                        .to_std()
                        .unwrap_or(Duration::ZERO);
                    // Requests waiting out one pause would all come back at the same instant
                    // and race for the same freed capacity; a little spread (at most a tenth of
                    // the wait, never above a second) lets them come back in turn.
                    let spread = wait
                        .mul_f64(rand::random_range(0.0..0.1))
                        .min(Duration::from_secs(1));
                    self.sleeper.sleep(wait + spread).await;
                    waited_for = Some(until);
                }
            }
        }
        Permit { _slot: slot }
    }

    /// SharePoint's `RateLimit-Remaining` / `RateLimit-Reset` (sent from 80 % of the minute's
    /// units, §5.3): take the server's count when it is lower than ours, and when nothing is left
    /// pause the resource until the reset instead of spending a request on a 429.
    pub fn observe_rate_limit(&self, resource: &Resource, remaining: u32, reset: Duration) {
        self.with_state(resource, |state, now| {
            if let Some(bucket) = state.bucket.as_mut() {
                bucket.refill(now);
                bucket.available = bucket.available.min(f64::from(remaining));
            }
            if remaining == 0 {
                let until = now + chrono_duration(reset);
                state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
            }
        });
    }

    /// Microsoft throttled a request on `resource`: pause it for `pause` and record the event.
    /// A longer pause already in force is kept.
    pub fn record_throttle(
        &self,
        resource: &Resource,
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
        pause: Duration,
    ) -> DateTime<Utc> {
        let (until, now) = self.with_state(resource, |state, now| {
            let until = now + chrono_duration(pause);
            let until = state
                .paused_until
                .map_or(until, |existing| existing.max(until));
            state.paused_until = Some(until);
            (until, now)
        });
        self.log.record(ThrottleEvent {
            tenant: resource.tenant(),
            resource: resource.clone(),
            status,
            code,
            retry_after,
            paused_until: until,
            at: now,
        });
        until
    }
}

fn is_idle(state: &mut ResourceState, now: DateTime<Utc>) -> bool {
    let paused = state.paused_until.is_some_and(|u| u > now);
    let busy = state
        .concurrency
        .as_ref()
        .is_some_and(|s| s.available_permits() < state.concurrency_limit);
    let spent = state.bucket.as_mut().is_some_and(|b| !b.is_full(now))
        || state.requests.as_mut().is_some_and(|w| !w.is_empty(now))
        || state.upload.as_mut().is_some_and(|w| !w.is_empty(now));
    !paused && !busy && !spent
}

pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use chrono::TimeZone;
    use futures::future::BoxFuture;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 20, 0, 0).unwrap()
    }

    /// Sleeping moves the manual clock, so waits are exact and instant.
    #[derive(Debug)]
    struct AdvanceClock(ManualClock);
    impl Sleeper for AdvanceClock {
        fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
            self.0.advance(chrono_duration(d));
            Box::pin(async {})
        }
    }

    fn governor(limits: GovernorLimits) -> (Governor, ManualClock) {
        let clock = ManualClock::new(t0());
        let g = Governor::new(
            Arc::new(clock.clone()),
            Arc::new(AdvanceClock(clock.clone())),
            limits,
            Arc::new(ThrottleLog::new(3)),
        );
        (g, clock)
    }

    fn tenant() -> TenantId {
        TenantId(uuid::Uuid::from_u128(7))
    }

    #[test]
    fn a_throttled_mailbox_pauses_while_others_go() {
        let (g, clock) = governor(GovernorLimits::default());
        let a = Resource::Mailbox {
            tenant: tenant(),
            user: "a".into(),
        };
        let b = Resource::Mailbox {
            tenant: tenant(),
            user: "b".into(),
        };
        assert_eq!(g.admit(&a, 1), Admission::Go);
        let until = g.record_throttle(
            &a,
            429,
            Some("ApplicationThrottled".into()),
            Some(Duration::from_secs(30)),
            Duration::from_secs(30),
        );
        assert_eq!(until, t0() + chrono::Duration::seconds(30));
        assert_eq!(g.admit(&a, 1), Admission::WaitUntil(until));
        assert_eq!(g.admit(&b, 1), Admission::Go);
        assert_eq!(
            g.admit(&Resource::Files { tenant: tenant() }, 2),
            Admission::Go
        );
        assert_eq!(g.paused_resources(tenant()), vec![(a.clone(), until)]);
        let json = serde_json::to_value(&g.log().recent()[0]).unwrap();
        assert_eq!(json["retry_after"], 30.0);
        assert_eq!(json["resource"]["kind"], "mailbox");
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(g.admit(&a, 1), Admission::Go);
        assert!(g.paused_resources(tenant()).is_empty());
        let events = g.log().recent_for_tenant(tenant());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].retry_after, Some(Duration::from_secs(30)));
        assert_eq!(events[0].at, t0());
    }

    #[test]
    fn a_shorter_pause_never_cuts_a_longer_one() {
        let (g, _) = governor(GovernorLimits::default());
        let r = Resource::Files { tenant: tenant() };
        let long = g.record_throttle(&r, 503, None, None, Duration::from_secs(60));
        let again = g.record_throttle(
            &r,
            429,
            None,
            Some(Duration::from_secs(5)),
            Duration::from_secs(5),
        );
        assert_eq!(long, again);
    }

    #[test]
    fn files_bucket_spends_resource_units_and_refills() {
        let limits = GovernorLimits {
            files_resource_units_per_minute: 1_200,
            ..GovernorLimits::default()
        };
        let (g, clock) = governor(limits);
        let r = Resource::Files { tenant: tenant() };
        // A burst of a twentieth of the minute's units (60 RU)…
        for _ in 0..30 {
            assert_eq!(g.admit(&r, 2), Admission::Go);
        }
        // …then the other 1,140 spread over the minute: 2 more after 2/19 s.
        assert_eq!(
            g.admit(&r, 2),
            Admission::WaitUntil(t0() + chrono::Duration::nanoseconds(105_263_158))
        );
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(g.admit(&r, 2), Admission::Go);
    }

    #[test]
    fn no_minute_gets_more_than_the_files_limit() {
        let limits = GovernorLimits {
            files_resource_units_per_minute: 1_200,
            ..GovernorLimits::default()
        };
        let (g, clock) = governor(limits);
        let r = Resource::Files { tenant: tenant() };
        // Take every unit as soon as it is there, for three minutes, a tenth of a second apart.
        let mut taken = Vec::new();
        for tick in 0..1_800 {
            while g.admit(&r, 1) == Admission::Go {
                taken.push(tick);
            }
            clock.advance(chrono::Duration::milliseconds(100));
        }
        // Whatever minute Microsoft counts, it never sees more than 1,200.
        for start in 0..1_200 {
            let in_window = taken
                .iter()
                .filter(|t| (start..start + 600).contains(*t))
                .count();
            assert!(
                in_window <= 1_200,
                "{in_window} units in the minute from tick {start}"
            );
        }
    }

    #[test]
    fn a_bigger_tenant_gets_a_bigger_files_bucket() {
        assert_eq!(files_resource_units_for_licences(10), 1_200);
        assert_eq!(files_resource_units_for_licences(1_000), 1_200);
        assert_eq!(files_resource_units_for_licences(1_001), 2_400);
        assert_eq!(files_resource_units_for_licences(50_000), 4_800);
        assert_eq!(files_resource_units_for_licences(50_001), 6_000);
        let limits = GovernorLimits {
            files_resource_units_per_minute: 1_200,
            ..GovernorLimits::default()
        };
        let (g, _) = governor(limits);
        let r = Resource::Files { tenant: tenant() };
        // A burst of 60 RU at 1,200 RU/min…
        for _ in 0..30 {
            assert_eq!(g.admit(&r, 2), Admission::Go);
        }
        assert_ne!(g.admit(&r, 2), Admission::Go);
        // …and of 120 RU at 2,400: 60 more under the raised ceiling.
        g.set_files_limit(tenant(), 2_400);
        for _ in 0..30 {
            assert_eq!(
                g.admit(&r, 2),
                Admission::Go,
                "60 more units under the raised ceiling"
            );
        }
        assert_ne!(g.admit(&r, 2), Admission::Go);
        let other = Resource::Files {
            tenant: TenantId(uuid::Uuid::from_u128(8)),
        };
        for _ in 0..30 {
            assert_eq!(g.admit(&other, 2), Admission::Go);
        }
        assert_ne!(
            g.admit(&other, 2),
            Admission::Go,
            "other tenants keep the default"
        );
    }

    #[test]
    fn rate_limit_headers_pre_empt_a_429() {
        let (g, clock) = governor(GovernorLimits::default());
        let r = Resource::Files { tenant: tenant() };
        assert_eq!(g.admit(&r, 2), Admission::Go);
        // The server says only 3 units are left: the fourth and fifth wait for refill.
        g.observe_rate_limit(&r, 3, Duration::from_secs(20));
        assert_eq!(g.admit(&r, 2), Admission::Go);
        assert!(matches!(g.admit(&r, 2), Admission::WaitUntil(_)));
        // Nothing left: paused until the reset, without a throttling event.
        g.observe_rate_limit(&r, 0, Duration::from_secs(20));
        assert_eq!(
            g.paused_until(&r),
            Some(t0() + chrono::Duration::seconds(20))
        );
        assert!(g.log().recent().is_empty());
        clock.advance(chrono::Duration::seconds(20));
        assert_eq!(g.admit(&r, 2), Admission::Go);
    }

    #[test]
    fn log_keeps_only_the_most_recent() {
        let (g, _) = governor(GovernorLimits::default());
        let r = Resource::Directory { tenant: tenant() };
        for s in [1, 2, 3, 4] {
            g.record_throttle(
                &r,
                429,
                None,
                Some(Duration::from_secs(s)),
                Duration::from_secs(s),
            );
        }
        let secs: Vec<_> = g
            .log()
            .recent()
            .iter()
            .map(|e| e.retry_after.unwrap().as_secs())
            .collect();
        assert_eq!(secs, vec![2, 3, 4]);
    }

    /// Requests admitted in every `window` starting at each admission, the most of them.
    fn most_in_any_window(admitted: &[DateTime<Utc>], window: chrono::Duration) -> usize {
        admitted
            .iter()
            .map(|start| {
                admitted
                    .iter()
                    .filter(|t| **t >= *start && **t < *start + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_mailbox_never_gets_more_than_its_limit_in_any_window() {
        let limits = GovernorLimits {
            mailbox_requests_per_window: 1_000,
            mailbox_window: Duration::from_secs(60),
            ..GovernorLimits::default()
        };
        let (g, clock) = governor(limits);
        let r = Resource::Mailbox {
            tenant: tenant(),
            user: "u".into(),
        };
        let mut admitted = Vec::new();
        for _ in 0..3_000 {
            let _p = g.acquire(&r, 1).await;
            admitted.push(clock.now());
        }
        let most = most_in_any_window(&admitted, chrono::Duration::seconds(60));
        assert!(most <= 1_000, "{most} requests in one minute");
        // …and it still goes close to the limit: 3,000 requests in about three minutes.
        let took = admitted[2_999] - admitted[0];
        assert!(took <= chrono::Duration::seconds(190), "{took}");
    }

    #[tokio::test]
    async fn a_mailbox_upload_budget_paces_request_bodies() {
        let limits = GovernorLimits {
            mailbox_upload_bytes_per_window: 10_000_000,
            mailbox_upload_window: Duration::from_secs(300),
            ..GovernorLimits::default()
        };
        let (g, clock) = governor(limits);
        let r = Resource::Mailbox {
            tenant: tenant(),
            user: "u".into(),
        };
        let mut admitted = Vec::new();
        for _ in 0..100 {
            let _p = g.acquire_upload(&r, 1, 1_000_000).await;
            admitted.push(clock.now());
        }
        assert!(
            most_in_any_window(&admitted, chrono::Duration::seconds(300)) <= 10,
            "at most 10 MB in any five minutes"
        );
        // Reads send nothing and are not held up by uploads.
        let before = clock.now();
        let _read = g.acquire(&r, 1).await;
        assert_eq!(clock.now(), before);
        // A body bigger than the whole burst still goes once the budget is full again.
        let _big = g.acquire_upload(&r, 1, 50_000_000).await;
    }

    #[tokio::test]
    async fn acquire_waits_out_a_pause_on_the_clock() {
        let (g, clock) = governor(GovernorLimits::default());
        let r = Resource::Mailbox {
            tenant: tenant(),
            user: "u".into(),
        };
        g.record_throttle(
            &r,
            429,
            None,
            Some(Duration::from_millis(2500)),
            Duration::from_millis(2500),
        );
        let _p = g.acquire(&r, 1).await;
        assert!(clock.now() >= t0() + chrono::Duration::milliseconds(2500));
    }

    #[tokio::test]
    async fn at_most_four_requests_per_mailbox_at_once() {
        let (g, _) = governor(GovernorLimits::default());
        let g = Arc::new(g);
        let r = Resource::Mailbox {
            tenant: tenant(),
            user: "u".into(),
        };
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(g.acquire(&r, 1).await);
        }
        let fifth = tokio::spawn({
            let g = g.clone();
            let r = r.clone();
            async move { g.acquire(&r, 1).await }
        });
        tokio::task::yield_now().await;
        assert!(!fifth.is_finished());
        // Another mailbox is not held up.
        let _other = g
            .acquire(
                &Resource::Mailbox {
                    tenant: tenant(),
                    user: "v".into(),
                },
                1,
            )
            .await;
        held.pop();
        fifth.await.unwrap();
    }

    #[derive(Debug)]
    struct FrozenSleep;
    impl Sleeper for FrozenSleep {
        fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn a_frozen_clock_never_hangs_acquire() {
        let clock = ManualClock::new(t0());
        let g = Governor::new(
            Arc::new(clock),
            Arc::new(FrozenSleep),
            GovernorLimits::default(),
            Arc::new(ThrottleLog::new(3)),
        );
        let r = Resource::Directory { tenant: tenant() };
        g.record_throttle(
            &r,
            429,
            None,
            Some(Duration::from_secs(30)),
            Duration::from_secs(30),
        );
        let _p = g.acquire(&r, 1).await;
    }
}
