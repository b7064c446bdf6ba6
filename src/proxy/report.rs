//! What the proxy shows: every upstream URL (discovery, health, counters), read from
//! the control plane's snapshot of what it knows, and every pool serving routes, read
//! from the published route table (`/metrics` shows the same figures, see
//! `crate::metrics`).

use std::collections::BTreeMap;
use std::sync::Arc;

use framex_actors::upstream::{EndpointReport, PoolShared};
use framex_actors::{ApiKey, Engine, Route, RouteTable, Target};
use serde::Serialize;

use super::upstream::{Known, Upstream};
use crate::config::{MigrateConfig, MigrateMode};

/// Who answers `route` (of `table`): its target, or for a local route that a
/// `[plugins.proxy.migrate]` entry sends to the upstream route kept aside for it, the
/// mode and both sides (`upstream:pool-1 (migrate shadow; plugin:items compared)`).
/// `framex routes` and the start-up log say the same.
pub fn answered_by(route: &Route, table: &RouteTable, migrate: &MigrateConfig) -> String {
    let local = route.target.describe();
    let (ApiKey::Http { path, .. }, Target::Local { .. }) = (&route.spec.key, &route.target) else { return local };
    let entry = migrate.get(path).filter(|e| e.mode != MigrateMode::Local);
    match (entry, table.shadowed(&route.spec.key)) {
        (Some(entry), Some(kept)) => entry.who_answers(&local, &kept.target.describe()),
        _ => local,
    }
}

/// What `GET /api/v1/proxy/upstreams` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyReport {
    /// Every upstream URL: discovery state, health and counters.
    pub upstreams: Vec<UpstreamReport>,
    /// Every pool in use: its URLs, policy and how many routes it serves.
    pub pools: Vec<PoolReport>,
}

/// One upstream URL in a [`ProxyReport`].
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamReport {
    /// Whether its document has been read at least once.
    pub discovered: bool,
    /// Operations it published at the last discovery.
    pub operations: usize,
    /// Health and counters (of all its addresses together, for a named one).
    #[serde(flatten)]
    pub endpoint: EndpointReport,
    /// For a URL whose host is a name: each address it resolves to, with its own
    /// health and counters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<EndpointReport>,
    /// Why its name did not resolve last time (its last addresses are kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_error: Option<String>,
}

/// One pool in a [`ProxyReport`].
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    /// Its URLs, in config order.
    pub endpoints: Vec<String>,
    /// Its balancing policy.
    pub balance: String,
    /// Routes it serves.
    pub routes: usize,
}

impl ProxyReport {
    /// The report of `upstreams`, with the pools the published table routes to.
    pub(super) fn of(upstreams: &[Arc<Upstream>], known: &[Arc<Known>], engine: &Engine) -> Self {
        let upstreams = upstreams
            .iter()
            .zip(known)
            .map(|(u, known)| {
                let operations = &known.operations;
                let addresses: Vec<EndpointReport> = u
                    .endpoints(known)
                    .into_iter()
                    .filter_map(|(addr, stats)| addr.map(|a| EndpointReport::of(&format!("{} ({a})", u.config.url), &stats)))
                    .collect();
                let endpoint = if addresses.is_empty() {
                    EndpointReport::of(u.config.url.as_str(), &u.stats)
                } else {
                    EndpointReport {
                        url: u.config.url.to_string(),
                        healthy: addresses.iter().any(|a| a.healthy),
                        ejected_for_ms: addresses.iter().map(|a| a.ejected_for_ms).min().unwrap_or(0),
                        in_flight: addresses.iter().map(|a| a.in_flight).sum(),
                        requests: addresses.iter().map(|a| a.requests).sum(),
                        failures: addresses.iter().map(|a| a.failures).sum(),
                    }
                };
                UpstreamReport {
                    discovered: operations.is_some(),
                    operations: operations.as_ref().map_or(0, Vec::len),
                    endpoint,
                    addresses,
                    dns_error: known.dns_error.clone(),
                }
            })
            .collect();
        let table = engine.table();
        let mut pools: BTreeMap<_, (Arc<PoolShared>, usize)> = BTreeMap::new();
        for route in table.routes() {
            if let Target::Upstream(target) = &route.target {
                pools
                    .entry(target.pool.id())
                    .or_insert_with(|| (target.pool.clone(), 0))
                    .1 += 1;
            }
        }
        let pools = pools
            .into_values()
            .map(|(pool, routes)| PoolReport {
                endpoints: pool.config().endpoints.iter().map(ToString::to_string).collect(),
                balance: pool.config().balance.to_string(),
                routes,
            })
            .collect();
        ProxyReport { upstreams, pools }
    }
}
