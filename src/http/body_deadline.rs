//! Time limits on request bodies, so a client that trickles its body (a byte a
//! second) cannot hold a connection and a worker's attention for ever.
//!
//! A body read whole (local routes, proxy functions, small forwarded bodies) must
//! arrive in full within `server.client_body_timeout`. A body streamed upstream may
//! take as long as it needs, but must keep arriving at `server.min_body_rate` on
//! average once a grace period is over, as Kestrel's `MinRequestBodyDataRate` does.
//! Either limit broken is [`Error::BodyTimeout`]: 408 and the connection closed.

use std::time::{Duration, Instant};

use actix_web::error::PayloadError;
use actix_web::web;
use bytes::Bytes;
use framex_actors::Error;
use futures::StreamExt;

use crate::config::ServerConfig;

/// How long a streamed body may arrive at any rate before `min_body_rate` is
/// enforced (Kestrel's default grace): a client's first bytes may be slow to come.
pub const MIN_RATE_GRACE: Duration = Duration::from_secs(5);

/// The time limits on request bodies, from `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadlines {
    /// Longest time a body read whole may take (`server.client_body_timeout`).
    pub total: Duration,
    /// Lowest average rate of a streamed body in bytes per second, 0 = none
    /// (`server.min_body_rate`).
    pub min_rate: u64,
    /// Time before `min_rate` is enforced ([`MIN_RATE_GRACE`]).
    pub grace: Duration,
}

impl BodyDeadlines {
    /// The limits `[server]` sets.
    pub fn from_config(server: &ServerConfig) -> Self {
        BodyDeadlines {
            total: server.client_body_timeout(),
            min_rate: server.min_body_rate,
            grace: MIN_RATE_GRACE,
        }
    }

    /// The error for a body read whole that did not arrive in time.
    pub fn total_exceeded(&self) -> Error {
        Error::BodyTimeout {
            reason: format!(
                "not complete within {:.3}s (server.client_body_timeout)",
                self.total.as_secs_f64()
            ),
        }
    }

    /// A rate guard for one streamed body.
    pub fn rate_guard(&self) -> RateGuard {
        RateGuard {
            min_rate: self.min_rate,
            grace: self.grace,
            waited: Duration::ZERO,
            seen: 0,
        }
    }
}

/// Holds one streamed body to its minimum rate.
///
/// Only the time spent waiting for the client counts: while the upstream is slow to
/// take what we have (backpressure), the client is not to blame.
#[derive(Debug, Clone)]
pub struct RateGuard {
    /// Bytes per second, 0 = no minimum.
    min_rate: u64,
    /// Waiting time allowed before the rate counts.
    grace: Duration,
    /// Time spent waiting for the client so far.
    waited: Duration,
    /// Bytes received so far.
    seen: u64,
}

impl RateGuard {
    /// How much longer the client may take to send its next bytes before its average
    /// falls below the minimum: `None` when there is no minimum.
    ///
    /// A body of `seen` bytes is on time until `max(grace, seen / min_rate)` seconds
    /// of waiting; the answer is what is left of that.
    pub fn allowance(&self) -> Option<Duration> {
        if self.min_rate == 0 {
            return None;
        }
        // `seen / min_rate` seconds, computed in whole milliseconds without overflow.
        let earned_ms = u128::from(self.seen) * 1000 / u128::from(self.min_rate);
        let earned = Duration::from_millis(u64::try_from(earned_ms).unwrap_or(u64::MAX));
        Some(earned.max(self.grace).saturating_sub(self.waited))
    }

    /// Records that `bytes` arrived after `waited` of waiting.
    pub fn record(&mut self, waited: Duration, bytes: usize) {
        self.waited = self.waited.saturating_add(waited);
        self.seen = self.seen.saturating_add(bytes as u64);
    }

    /// The error for a body that fell below the minimum rate.
    pub fn too_slow(&self) -> Error {
        Error::BodyTimeout {
            reason: format!(
                "{} bytes in {:.3}s, below {} bytes/s (server.min_body_rate)",
                self.seen,
                self.waited.as_secs_f64(),
                self.min_rate
            ),
        }
    }

    /// The next chunk of `payload`, or `None` at its end.
    ///
    /// # Errors
    /// [`Error::BodyTimeout`] when it does not come in time, [`Error::ClientAbort`]
    /// when the client broke off.
    pub async fn next_chunk(&mut self, payload: &mut web::Payload) -> Result<Option<Bytes>, Error> {
        let started = Instant::now();
        let next = match self.allowance() {
            None => payload.next().await,
            Some(left) => match tokio::time::timeout(left, payload.next()).await {
                Ok(next) => next,
                Err(_) => {
                    self.record(started.elapsed(), 0);
                    return Err(self.too_slow());
                }
            },
        };
        match next {
            None => Ok(None),
            Some(Ok(bytes)) => {
                self.record(started.elapsed(), bytes.len());
                Ok(Some(bytes))
            }
            Some(Err(e)) => Err(payload_error(e)),
        }
    }
}

/// Maps a request body that failed: the client's doing (it closed the connection,
/// sent a broken chunk or a length it did not keep), never a 500.
pub fn payload_error(e: PayloadError) -> Error {
    Error::ClientAbort { reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn guard(min_rate: u64) -> RateGuard {
        BodyDeadlines {
            total: Duration::from_secs(60),
            min_rate,
            grace: MIN_RATE_GRACE,
        }
        .rate_guard()
    }

    /// Nothing yet: the whole grace is left; no minimum: no limit at all.
    #[test]
    fn grace_first_then_earned_time() {
        assert_eq!(guard(240).allowance(), Some(MIN_RATE_GRACE));
        assert_eq!(guard(0).allowance(), None);
        let mut g = guard(240);
        g.record(Duration::from_secs(4), 2400);
        // 2400 bytes at 240 B/s earn 10 s of waiting, 4 s of which are spent.
        assert_eq!(g.allowance(), Some(Duration::from_secs(6)));
        g.record(Duration::from_secs(7), 0);
        assert_eq!(g.allowance(), Some(Duration::ZERO));
        assert!(g.too_slow().to_string().contains("server.min_body_rate"));
    }

    /// A byte a second is cut after the grace, never later; a client at twice the
    /// minimum rate is never cut.
    #[test]
    fn a_byte_a_second_is_cut_after_the_grace() {
        let mut g = guard(240);
        let mut seconds = 0;
        while g.allowance() > Some(Duration::ZERO) {
            g.record(Duration::from_secs(1), 1);
            seconds += 1;
            assert!(seconds <= 5, "still allowed after {seconds}s");
        }
        let mut g = guard(240);
        for _ in 0..10_000 {
            g.record(Duration::from_millis(100), 48);
            assert!(g.allowance() > Some(Duration::ZERO));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a client sends, its waiting never exceeds what the grace and the
        /// minimum rate allow it by more than the last wait, and no input panics.
        #[test]
        fn allowance_is_bounded(
            min_rate in 0u64..u64::MAX,
            steps in proptest::collection::vec((0u64..10_000, 0usize..1 << 20), 0..64),
        ) {
            let mut g = guard(min_rate);
            for (ms, bytes) in steps {
                let Some(left) = g.allowance() else { break };
                let waited = Duration::from_millis(ms).min(left);
                g.record(waited, bytes);
                let budget = MIN_RATE_GRACE
                    .max(Duration::from_secs_f64(g.seen as f64 / min_rate as f64 + 0.001));
                prop_assert!(g.waited <= budget, "{:?} > {:?}", g.waited, budget);
            }
        }
    }
}
