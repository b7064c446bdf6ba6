//! The proxy's WebSocket routes: the `websocket = [...]` patterns of the table form
//! of `proxy_urls`. The URLs that list the same pattern form one pool for it
//! (balanced like the others, over the same per-URL counters, so one health judges
//! a URL for its HTTP routes and its WebSockets alike).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use framex_actors::upstream::wire::header::HeaderValue;
use framex_actors::upstream::{EndpointKeys, PoolConfig, PoolShared};

use super::Upstream;
use crate::config::{AuthRules, RuleSet};

/// Where upgrade requests go: pattern → pool; and how long a tunnel may stay idle.
#[derive(Debug, Default)]
pub struct WebSocketRoutes {
    routes: RuleSet<WebSocketPool>,
    /// `plugins.proxy.websocket_idle_timeout`.
    pub idle_timeout: Duration,
    /// `[plugins.proxy.auth] rules`: the key sent with an upgrade to the URLs that
    /// serve its path and have no rule of their own for it.
    auth: AuthRules,
}

/// The pool of one pattern, with each member URL's own `auth` rules (in the order
/// of the pool's endpoints).
#[derive(Debug)]
struct WebSocketPool {
    pool: Arc<PoolShared>,
    own: Vec<AuthRules>,
}

/// Where one upgrade request goes.
#[derive(Debug)]
pub struct WebSocketTarget<'a> {
    /// The pool of the URLs that serve it.
    pub pool: &'a Arc<PoolShared>,
    /// The key each URL of the pool is sent (`Authorization`), set once one is picked.
    pub keys: EndpointKeys,
}

impl WebSocketRoutes {
    /// The routes of `upstreams` (patterns were checked at load; an invalid one is
    /// logged and left out).
    pub(super) fn new(
        upstreams: &[Arc<Upstream>],
        template: &PoolConfig,
        idle_timeout: Duration,
        auth: AuthRules,
    ) -> Self {
        let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, upstream) in upstreams.iter().enumerate() {
            for pattern in &upstream.config.websocket {
                members.entry(pattern.as_str()).or_default().push(i);
            }
        }
        let pools = members.into_iter().map(|(pattern, members)| {
            let mut config = template.clone();
            config.endpoints = members
                .iter()
                .map(|&i| upstreams[i].config.url.clone())
                .collect();
            config.balance = upstreams[members[0]].config.balance.into();
            let stats = members
                .iter()
                .map(|&i| upstreams[i].stats.clone())
                .collect();
            let own = members.iter().map(|&i| upstreams[i].config.auth.clone()).collect();
            (pattern.to_owned(), WebSocketPool { pool: PoolShared::with_stats(config, stats), own })
        });
        let routes = RuleSet::new(pools).unwrap_or_else(|e| {
            log::error!("plugins.proxy.proxy_urls websocket: {e}; no WebSocket is proxied");
            RuleSet::default()
        });
        WebSocketRoutes {
            routes,
            idle_timeout,
            auth,
        }
    }

    /// Where an upgrade to the canonical `path` goes, if a pattern covers it.
    pub fn target(&self, path: &str) -> Option<WebSocketTarget<'_>> {
        self.routes.lookup(path).map(|route| WebSocketTarget {
            pool: &route.pool,
            keys: if route.own.iter().all(AuthRules::is_empty) && self.auth.is_empty() {
                EndpointKeys::default()
            } else {
                EndpointKeys::new(
                    route
                        .own
                        .iter()
                        .map(|own| own.key_or(&self.auth, path).and_then(|k| HeaderValue::from_str(k).ok()))
                        .collect(),
                )
            },
        })
    }
}
