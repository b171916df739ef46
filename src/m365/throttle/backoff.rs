//! How long to wait: `Retry-After` parsing, the backoff schedule when the server gives none, and
//! the `Sleeper` that does the waiting. Pure functions of their inputs (time and randomness are
//! passed in); it must never decide which resource to pause.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rand::Rng;

use crate::m365::settings::RetryPolicy;

/// How the governor waits. Production sleeps on tokio's timer; tests pass one that advances a
/// `ManualClock`, so a 30-second `Retry-After` costs nothing.
pub trait Sleeper: Send + Sync + fmt::Debug {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Parses `Retry-After`: delay-seconds, which Graph may send with a fraction (`2.128`, §5.5), or
/// an HTTP-date. A date in the past means "now". Garbage gives `None` (then backoff applies).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The wait before retry number `retry` (1-based) when the server gave no `Retry-After`:
/// `initial × retry²` (Graph SDK retry handler, §5.6), capped at `max_delay`, with ±20 % jitter so
/// many workers throttled together do not come back together.
pub fn backoff_delay(policy: &RetryPolicy, retry: u32, rng: &mut impl Rng) -> Duration {
    let base = policy.initial_delay.as_secs_f64() * f64::from(retry.max(1)).powi(2);
    let capped = base.min(policy.max_delay.as_secs_f64());
    let jittered = capped * rng.random_range(0.8..=1.2);
    Duration::from_secs_f64(jittered.min(policy.max_delay.as_secs_f64()).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 20, 0, 0).unwrap()
    }

    #[test]
    fn retry_after_accepts_fractions_dates_and_rejects_garbage() {
        assert_eq!(parse_retry_after("10", t0()), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_retry_after(" 2.128 ", t0()),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 20:00:30 GMT", t0()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 19:00:00 GMT", t0()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", t0()), None);
        assert_eq!(parse_retry_after("soon", t0()), None);
        assert_eq!(parse_retry_after("NaN", t0()), None);
    }

    #[test]
    fn backoff_grows_with_square_of_retry_and_is_capped() {
        let policy = RetryPolicy::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let d1 = backoff_delay(&policy, 1, &mut rng).as_secs_f64();
        let d2 = backoff_delay(&policy, 2, &mut rng).as_secs_f64();
        let d3 = backoff_delay(&policy, 3, &mut rng).as_secs_f64();
        assert!((2.4..=3.6).contains(&d1), "{d1}");
        assert!((9.6..=14.4).contains(&d2), "{d2}");
        assert!((21.6..=32.4).contains(&d3), "{d3}");
        for retry in 8..20 {
            assert!(backoff_delay(&policy, retry, &mut rng) <= policy.max_delay);
        }
    }
}
