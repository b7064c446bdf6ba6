//! Whether an endpoint is alive: passive ejection with exponential backoff, and the
//! active check that brings it back.
//!
//! A connect failure, a reset, or a 5xx answer ejects an endpoint for
//! [`BASE_EJECTION`], doubling with every further failure in a row up to
//! [`MAX_EJECTION`]. A success (or a passing active check) restores it.
//!
//! An ejection also wakes the requests still opening a connection to the endpoint
//! ([`Health::ejected`]): they go to a healthy endpoint at once rather than wait for
//! their own connect to fail.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// First ejection period.
pub const BASE_EJECTION: Duration = Duration::from_secs(1);
/// Longest ejection period.
pub const MAX_EJECTION: Duration = Duration::from_secs(30);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds on the clock ejections are measured with.
pub(crate) fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// [`now_ms`] read once, when first needed: a pick among endpoints never ejected reads
/// no clock.
#[derive(Default)]
pub(crate) struct Now(std::cell::OnceCell<u64>);

impl Now {
    /// The time, read on the first call.
    fn ms(&self) -> u64 {
        *self.0.get_or_init(now_ms)
    }
}

/// The health of one endpoint, shared by every replica of its pool.
#[derive(Debug, Default)]
pub struct Health {
    consecutive_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    /// Wakes connects under way when the endpoint is ejected.
    ejection: tokio::sync::Notify,
}

impl Health {
    /// Whether the endpoint may get traffic now.
    pub fn is_available(&self) -> bool {
        self.is_available_at(&Now::default())
    }

    /// Whether the endpoint may get traffic at `now` (read only if it was ever ejected).
    pub(crate) fn is_available_at(&self, now: &Now) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until == 0 || until <= now.ms()
    }

    /// How long the endpoint stays ejected (zero when available).
    pub fn ejected_for(&self) -> Duration {
        Duration::from_millis(
            self.ejected_until_ms
                .load(Ordering::Relaxed)
                .saturating_sub(now_ms()),
        )
    }

    /// Counts a failure; ejects the endpoint with exponential backoff.
    pub fn record_failure(&self) {
        let earlier = self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        let period = (BASE_EJECTION * 2u32.pow(earlier.min(16))).min(MAX_EJECTION);
        self.ejected_until_ms
            .store(now_ms() + period.as_millis() as u64, Ordering::Relaxed);
        // Only connects under way wait here; with none, this takes an uncontended lock.
        self.ejection.notify_waiters();
    }

    /// Completes when the endpoint is next ejected (a failure recorded by any
    /// request, on any thread). Only waits that have been polled are woken.
    pub(crate) fn ejected(&self) -> tokio::sync::futures::Notified<'_> {
        self.ejection.notified()
    }

    /// Counts a success: the endpoint is healthy again.
    pub fn record_success(&self) {
        // Read first: every replica's requests record their successes here, and a
        // write on every one would move the line between cores for nothing.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0
            && self.consecutive_failures.swap(0, Ordering::Relaxed) != 0
        {
            self.ejected_until_ms.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_eject_and_success_restores() {
        let h = Health::default();
        assert!(h.is_available());
        h.record_failure();
        assert!(!h.is_available());
        let first = h.ejected_for();
        h.record_failure();
        assert!(h.ejected_for() > first, "backoff grows");
        h.record_success();
        assert!(h.is_available());
    }

    #[actix_rt::test]
    async fn an_ejection_wakes_connects_under_way() {
        let h = Health::default();
        let waiting = h.ejected();
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        h.record_failure();
        assert!(futures::poll!(waiting.as_mut()).is_ready(), "a failure wakes the waiter");
    }
}
