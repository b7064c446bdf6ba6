//! The proxy's WebSocket routes: the `websocket = [...]` patterns of the table form
//! of `proxy_urls`. The URLs that list the same pattern form one pool for it
//! (balanced like the others, over the same per-URL counters, so one health judges
//! a URL for its HTTP routes and its WebSockets alike).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use framex_actors::upstream::{PoolConfig, PoolShared};

use super::Upstream;
use crate::config::{AuthRules, RuleSet};

/// Where upgrade requests go: pattern → pool; and how long a tunnel may stay idle.
#[derive(Debug, Default)]
pub struct WebSocketRoutes {
    routes: RuleSet<Arc<PoolShared>>,
    /// `plugins.proxy.websocket_idle_timeout`.
    pub idle_timeout: Duration,
    /// `[plugins.proxy.auth] rules`: the key sent upstream with an upgrade.
    auth: AuthRules,
}

/// Where one upgrade request goes.
#[derive(Debug)]
pub struct WebSocketTarget<'a> {
    /// The pool of the URLs that serve it.
    pub pool: &'a Arc<PoolShared>,
    /// The key sent upstream (`Authorization`), when a proxy auth rule names one.
    pub key: Option<&'a str>,
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
            (pattern.to_owned(), PoolShared::with_stats(config, stats))
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
        self.routes.lookup(path).map(|pool| WebSocketTarget {
            pool,
            key: self.auth.first_key_for(path),
        })
    }
}
