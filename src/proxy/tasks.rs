//! The proxy's background work: re-discovery of every upstream URL (with backoff
//! while one is down) and active health checks. Both stop when the proxy stops.

use std::sync::Arc;
use std::time::Duration;

use framex_actors::upstream::fetch;
use framex_actors::upstream::wire::header::HeaderMap;
use framex_actors::Escaped;

use super::upstream::Upstream;
use super::Proxy;

/// Longest wait between two discovery attempts of an upstream that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Re-discovers `upstream` every `interval` (never when `None`) while it answers, and
/// with backoff from 1 s to [`MAX_BACKOFF`] while it does not (`healthy`: whether its
/// first discovery worked); publishes after each success.
pub(super) async fn keep_discovering(
    proxy: Proxy,
    upstream: Arc<Upstream>,
    mut healthy: bool,
    interval: Option<Duration>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = match (healthy, interval) {
            (true, Some(every)) => every,
            (true, None) => return,
            (false, _) => backoff,
        };
        actix_rt::time::sleep(wait).await;
        if proxy.stopped() {
            return;
        }
        let url = &upstream.config.url;
        match upstream.discover().await {
            Ok(_) => {
                if !healthy {
                    log::info!("proxy {url}: discovered after retrying");
                }
                healthy = true;
                backoff = Duration::from_secs(1);
                proxy.publish().await;
            }
            Err(e) => {
                if healthy {
                    log::warn!("proxy {url}: re-discovery failed, keeping its routes: {}", Escaped(&e));
                } else {
                    log::debug!("proxy {url}: still unreachable: {}", Escaped(&e));
                }
                healthy = false;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Probes every endpoint (every upstream URL, every address of a named one) with
/// `GET {url}{path}` each `every`: an answer below 500 restores an ejected endpoint,
/// no answer (or a 5xx) ejects it.
pub(super) async fn keep_checking(proxy: Proxy, path: String, every: Duration) {
    let patience = every.max(Duration::from_secs(1));
    loop {
        actix_rt::time::sleep(every).await;
        if proxy.stopped() {
            return;
        }
        let probes = proxy.upstreams().iter().flat_map(|u| {
            let path = &path;
            u.endpoints().into_iter().map(move |(addr, stats)| async move {
                let answer = fetch(&u.config.url, addr, path, HeaderMap::new(), &u.tls, patience, 64 * 1024).await;
                let passed = matches!(answer, Ok((status, _)) if !status.is_server_error());
                let name = addr.map_or_else(|| u.config.url.to_string(), |a| format!("{} ({a})", u.config.url));
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
            })
        });
        futures::future::join_all(probes).await;
    }
}

/// Re-resolves the names in `proxy_urls` every `every` (sooner when an answer's TTL is
/// shorter, but not more often than every 100 ms); when an address set changed, the
/// routes are published again: new addresses join their pools, removed ones get no
/// new requests and finish those in flight.
pub(super) async fn keep_resolving(proxy: Proxy, every: Duration) {
    let mut wait = every;
    loop {
        actix_rt::time::sleep(wait).await;
        if proxy.stopped() {
            return;
        }
        let (changed, ttl) = proxy.resolve_all().await;
        if changed {
            proxy.publish().await;
        }
        wait = ttl.map_or(every, |ttl| ttl.min(every)).max(Duration::from_millis(100));
    }
}
