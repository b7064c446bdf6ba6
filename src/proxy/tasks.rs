//! The proxy's background work, as the control plane (`super::control`) runs it on
//! its timers: how long to wait between discoveries of an upstream that is down
//! (backoff) and between resolutions of the names, and one active health probe.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use framex_actors::upstream::wire::header::HeaderMap;
use framex_actors::upstream::{fetch, EndpointStats};

use super::upstream::Upstream;

/// First wait before discovering again an upstream that is down.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Longest wait between two discovery attempts of an upstream that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Shortest wait between two resolutions of the names, whatever the TTLs say.
const MIN_DNS_WAIT: Duration = Duration::from_millis(100);

/// The wait after a failed discovery that came after waiting `backoff`: doubled, up
/// to [`MAX_BACKOFF`].
pub(super) fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// The wait before resolving the names again: `every`, sooner when an answer's
/// shortest `ttl` is shorter, but never under [`MIN_DNS_WAIT`].
pub(super) fn dns_wait(ttl: Option<Duration>, every: Duration) -> Duration {
    ttl.map_or(every, |ttl| ttl.min(every)).max(MIN_DNS_WAIT)
}

/// Probes one endpoint of `upstream` (`addr`: one address of its name) with
/// `GET {url}{path}`, waiting at most `patience`: an answer below 500 restores an
/// ejected endpoint, no answer (or a 5xx) ejects it; a change is logged.
pub(super) async fn probe(
    upstream: Arc<Upstream>,
    addr: Option<SocketAddr>,
    stats: Arc<EndpointStats>,
    path: Arc<str>,
    patience: Duration,
) {
    let answer = fetch(&upstream.config.url, addr, &path, HeaderMap::new(), &upstream.tls, patience, 64 * 1024).await;
    let passed = matches!(answer, Ok((status, _)) if !status.is_server_error());
    let name = addr.map_or_else(|| upstream.config.url.to_string(), |a| format!("{} ({a})", upstream.config.url));
    let health = &stats.health;
    let was_available = health.is_available();
    if passed {
        health.record_success();
        if !was_available {
            log::info!("proxy {name}: health check passed, back in its pools");
        }
    } else {
        health.record_failure();
        if was_available {
            log::warn!("proxy {name}: health check failed, ejected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let mut waits = vec![FIRST_BACKOFF];
        for _ in 0..6 {
            waits.push(next_backoff(*waits.last().unwrap()));
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn a_short_ttl_shortens_the_dns_wait_down_to_a_floor() {
        let every = Duration::from_secs(5);
        assert_eq!(dns_wait(None, every), every);
        assert_eq!(dns_wait(Some(Duration::from_secs(60)), every), every);
        assert_eq!(dns_wait(Some(Duration::from_secs(2)), every), Duration::from_secs(2));
        assert_eq!(dns_wait(Some(Duration::ZERO), every), MIN_DNS_WAIT);
    }
}
