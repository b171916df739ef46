//! A sliding window: at most `limit` units in any `window`, the shape of Outlook's per-mailbox
//! limits (10,000 requests per 10 minutes, 150 MB uploaded per 5 minutes). Unlike a paced
//! bucket it lets a mailbox spend its whole limit at once, as Microsoft does, and then holds
//! each new request until enough of the old ones have left the window. Units are kept per
//! second they were spent in, so memory is bounded by the window's seconds whatever the rate,
//! and a unit is taken to leave the window at the end of its second (never early).

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Admission;

#[derive(Debug, Clone)]
pub(super) struct SlidingWindow {
    limit: f64,
    window_ms: i64,
    /// (start of the second in ms, units spent in it), oldest first.
    spent: VecDeque<(i64, f64)>,
    total: f64,
}

const SECOND_MS: i64 = 1_000;

impl SlidingWindow {
    pub(super) fn new(limit: f64, window: Duration) -> Self {
        Self {
            limit: limit.max(1.0),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 4),
            spent: VecDeque::new(),
            total: 0.0,
        }
    }

    /// When the units spent in the second starting at `second` have surely left the window.
    fn leaves_at(&self, second: i64) -> i64 {
        second + SECOND_MS + self.window_ms
    }

    fn expire(&mut self, now: i64) {
        while let Some(&(second, units)) = self.spent.front() {
            if now < self.leaves_at(second) {
                break;
            }
            self.total -= units;
            self.spent.pop_front();
        }
        if self.spent.is_empty() {
            // No drift from adding and removing floats.
            self.total = 0.0;
        }
    }

    /// Whether `cost` units fit now, or when they will. A cost above the whole limit goes once
    /// the window is empty.
    pub(super) fn check(&mut self, cost: f64, now: DateTime<Utc>) -> Admission {
        let now_ms = now.timestamp_millis();
        self.expire(now_ms);
        if self.total + cost <= self.limit || self.spent.is_empty() {
            return Admission::Go;
        }
        let needed = self.total + cost - self.limit;
        let mut freed = 0.0;
        let mut until = now_ms;
        for &(second, units) in &self.spent {
            freed += units;
            until = self.leaves_at(second);
            if freed >= needed {
                break;
            }
        }
        Admission::WaitUntil(DateTime::from_timestamp_millis(until).unwrap_or(now))
    }

    /// Spends `cost` units now (after [`SlidingWindow::check`] said they fit).
    pub(super) fn take(&mut self, cost: f64, now: DateTime<Utc>) {
        let now_ms = now.timestamp_millis();
        let second = now_ms - now_ms.rem_euclid(SECOND_MS);
        match self.spent.back_mut() {
            Some((last, units)) if *last == second => *units += cost,
            _ => self.spent.push_back((second, cost)),
        }
        self.total += cost;
    }

    /// Nothing spent is still in the window.
    pub(super) fn is_empty(&mut self, now: DateTime<Utc>) -> bool {
        self.expire(now.timestamp_millis());
        self.spent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 20, 0, 0).unwrap()
    }

    #[test]
    fn the_whole_limit_goes_at_once_then_waits_for_the_oldest_to_leave() {
        let mut w = SlidingWindow::new(3.0, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(w.check(1.0, t0()), Admission::Go);
            w.take(1.0, t0());
        }
        let later = t0() + chrono::Duration::seconds(30);
        assert_eq!(
            w.check(1.0, later),
            Admission::WaitUntil(t0() + chrono::Duration::seconds(61))
        );
        assert_eq!(
            w.check(1.0, t0() + chrono::Duration::seconds(61)),
            Admission::Go
        );
        assert!(w.is_empty(t0() + chrono::Duration::seconds(61)));
    }

    #[test]
    fn a_cost_above_the_limit_waits_for_an_empty_window() {
        let mut w = SlidingWindow::new(10.0, Duration::from_secs(10));
        w.take(4.0, t0());
        let until = match w.check(50.0, t0()) {
            Admission::WaitUntil(until) => until,
            Admission::Go => panic!("went with 4 of 10 spent"),
        };
        assert_eq!(until, t0() + chrono::Duration::seconds(11));
        assert_eq!(w.check(50.0, until), Admission::Go);
    }
}
