//! The system proxy plugin: upstreams from `[plugins.proxy]`, discovery of their
//! OpenAPI documents, pools, active health checks, and keeping the proxied routes in
//! the engine up to date.
//!
//! Every `proxy_urls` entry is discovered on its own. The URLs that publish the same
//! operation (same method, path and signature) form one pool for it, balanced,
//! health-checked and retried as one: listing three replicas of a service is how an
//! operator load-balances it. An endpoint (URL) has one set of counters shared by
//! every pool it is part of, so its health is judged once.
//!
//! An upstream that is down or answers a broken document is retried with exponential
//! backoff (1 s doubling to 30 s) while the server runs; once discovered, it is
//! re-discovered every `discovery_interval`, and every change (operations added,
//! removed, changed; pools growing or shrinking) reaches the route table through the
//! registry without a restart. Requests in flight keep the target they started with.
//!
//! Split by question: `upstream` (one URL: settings, counters, fetching and reading its
//! document, taking in a resolution of its name), `merge` (what every URL published →
//! routes and their pools; pure), `publish` (routes with their pools, keys and
//! filters; warnings said once; the log of a publication), `control` (the control
//! plane: one actor owning what changes, running discovery, health checks and DNS on
//! its timers, and publishing one publication at a time), `tasks` (waits and the
//! health probe it runs), `report` (the status page and Prometheus text, read from
//! the published table) and this module ([`Proxy`]: the handle the server holds).

mod control;
mod dns;
mod merge;
mod publish;
mod report;
mod tasks;
mod upstream;
mod websocket;

use std::sync::Arc;

use actix::{Actor, Addr};
use arc_swap::ArcSwap;
use framex_actors::upstream::wire::header::HeaderValue;
use framex_actors::upstream::{tls, Balance, PoolConfig, UpstreamUrl};
use framex_actors::{ApiKey, ApiSpec, BodySpec, Engine, Escaped};

use crate::config::{rule_lint, Config, PathFilter, ProxyConfig, UpstreamConfig};

use control::{DiscoverAll, Keep, ProxyControl, ResolveAll, Stop};
use upstream::Known;

pub use report::{answered_by, PoolReport, ProxyReport, UpstreamReport};
pub use upstream::{DiscoverError, Upstream};
pub use websocket::{WebSocketRoutes, WebSocketTarget};

/// What the handle and the control plane both read: fixed for the proxy's life,
/// except `known`, the snapshot the control plane stores after every change.
struct Shared {
    engine: Engine,
    upstreams: Vec<Arc<Upstream>>,
    /// The `websocket` patterns and their pools.
    websockets: WebSocketRoutes,
    /// What is known of each upstream (in config order), as last stored by the
    /// control plane.
    known: ArcSwap<Vec<Arc<Known>>>,
}

/// The running proxy: its upstreams, read-only views of what its control plane
/// knows, and the address of that control plane (see `control`), which owns the
/// pools and background work. Cloning it gives another handle to the same proxy.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    control: Addr<ProxyControl>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.shared.upstreams).finish()
    }
}

impl Proxy {
    /// The proxy of `config`, publishing into `engine`; nothing is fetched yet.
    pub fn new(engine: &Engine, config: &Config) -> Proxy {
        Self::succeeding(engine, config, None)
    }

    /// As [`Proxy::new`], taking over from `previous` (a reload): an upstream URL
    /// both configs list keeps its counters and health and, until its next discovery,
    /// what it last published, so that its routes do not blink out.
    pub fn succeeding(engine: &Engine, config: &Config, previous: Option<&Proxy>) -> Proxy {
        let proxy = &config.plugins.proxy;
        // Checked when the config was loaded; should the file have gone since, https
        // upstreams of that authority fail with TLS errors that say so.
        let tls = proxy.tls().unwrap_or_else(|e| {
            log::error!("{e}; trusting the built-in roots only");
            tls::default_config()
        });
        let before_known = previous.map(|p| p.shared.known.load_full());
        let (upstreams, known): (Vec<Arc<Upstream>>, Vec<Arc<Known>>) = proxy
            .upstreams()
            .into_iter()
            .enumerate()
            .map(|(i, upstream)| {
                let before = previous.and_then(|p| {
                    let at = p.upstreams().iter().position(|u| u.config.url == upstream.url)?;
                    Some((&p.upstreams()[at], before_known.as_ref()?[at].clone()))
                });
                upstream_of(proxy, i, upstream, &tls, before)
            })
            .unzip();
        let functions = proxy
            .proxy_functions
            .iter()
            .flat_map(|(url, names)| {
                let at = upstreams.iter().position(|u| u.config.url == *url);
                names.iter().filter_map(move |name| {
                    let mut spec = ApiSpec::new(ApiKey::Function(name.clone()));
                    spec.body = BodySpec::Kwargs;
                    // Callable in turn by instances that proxy through us.
                    spec.proxy_function = true;
                    spec.summary = Some("FrameX proxy function".to_owned());
                    at.map(|at| (at, Arc::new(spec)))
                })
            })
            .collect();
        let template = PoolConfig {
                    endpoints: Vec::new(),
                    addresses: Vec::new(),
                    timeout: proxy.timeout(),
                    connect_timeout: proxy.connect_timeout(),
                    legal_codes: config.server.legal_proxy_code.clone(),
                    balance: Balance::RoundRobin,
                    max_in_flight: proxy.max_in_flight,
                    retries: proxy.retries,
                    tls,
                };
        let websockets = WebSocketRoutes::new(&upstreams, &template, proxy.websocket_idle_timeout(), proxy.auth.rules.clone());
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            upstreams,
            websockets,
            known: ArcSwap::from_pointee(known),
        });
        let publisher = publish::Publisher::new(
            template,
            proxy.auth.rules.clone(),
            functions,
            rule_lint::global_groups(config),
            proxy.migrate.clone(),
        );
        let resolver = dns::Resolver::new(&proxy.dns_servers());
        let control = ProxyControl::new(shared.clone(), resolver, publisher).start();
        Proxy { shared, control }
    }

    /// The WebSocket routes (`websocket` patterns of `proxy_urls`).
    pub fn websockets(&self) -> &WebSocketRoutes {
        &self.shared.websockets
    }

    /// The configured upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.shared.upstreams
    }

    /// Discovers every upstream once (side by side) and publishes the routes;
    /// returns the upstreams that failed, with why (every one, as
    /// [`DiscoverError::Stopped`], once the proxy is stopped).
    pub async fn discover_all(&self) -> Vec<(UpstreamUrl, DiscoverError)> {
        match self.control.send(DiscoverAll).await {
            Ok(failed) => failed,
            Err(_) => self.upstreams().iter().map(|u| (u.config.url.clone(), DiscoverError::Stopped)).collect(),
        }
    }

    /// Whether any upstream's host is a name to resolve.
    fn has_names(&self) -> bool {
        self.shared.upstreams.iter().any(|u| u.named.is_some())
    }

    /// Every upstream URL and every pool in use, with health and counters.
    pub async fn report(&self) -> ProxyReport {
        ProxyReport::of(&self.shared.upstreams, &self.shared.known.load(), &self.shared.engine)
    }

    /// The upstream URLs never discovered yet (what `/ready` waits for).
    pub fn undiscovered(&self) -> Vec<UpstreamUrl> {
        let known = self.shared.known.load();
        self.shared
            .upstreams
            .iter()
            .zip(known.iter())
            .filter(|(_, k)| k.operations.is_none())
            .map(|(u, _)| u.config.url.clone())
            .collect()
    }

    /// Stops re-discovery, health checks and DNS re-resolution: the control plane
    /// stops, dropping its timers and the requests it has in flight. Returns once it
    /// has: a publication it made before is already queued at the registry, ahead of
    /// anything sent after (a reload's new proxy).
    pub async fn stop(&self) {
        let _ = self.control.send(Stop).await;
    }
}

/// Upstream `i` of `proxy` (`upstream`, its entry) and what is known of it at first:
/// from `before` (the same URL in the proxy it takes over from, with what that one
/// knew) its counters and health, what it last published and the addresses of its
/// name, until its next discovery and resolution, so that its routes do not blink out.
fn upstream_of(
    proxy: &ProxyConfig,
    i: usize,
    upstream: UpstreamConfig,
    tls: &Arc<tls::ClientConfig>,
    before: Option<(&Arc<Upstream>, Arc<Known>)>,
) -> (Arc<Upstream>, Arc<Known>) {
    let docs_key = proxy.docs_key(&upstream).and_then(|key| HeaderValue::from_str(key).ok()).map(|mut key| {
        key.set_sensitive(true);
        key
    });
    // Checked at load; should it fail anyway, nothing is proxied.
    let filter = upstream.filter().unwrap_or_else(|e| {
        log::error!("proxy {}: {e}; nothing is proxied from it", upstream.url);
        PathFilter::closed()
    });
    let known = Known {
        operations: before.as_ref().and_then(|(_, k)| k.operations.clone()),
        addresses: before.as_ref().map(|(_, k)| k.addresses.clone()).unwrap_or_default(),
        dns_error: None,
    };
    let named = dns::named_host(&upstream.url);
    let upstream = Upstream {
        filter: Arc::new(filter),
        config: upstream,
        docs_key,
        stats: before.map(|(u, _)| u.stats.clone()).unwrap_or_default(),
        force_stream_apis: proxy.force_stream_apis.clone(),
        component_prefix: format!("U{}_", i + 1),
        tls: tls.clone(),
        max_document_size: proxy.max_document_size,
        named,
    };
    (Arc::new(upstream), Arc::new(known))
}

/// Builds the proxy of `config` (taking over from `previous` on a reload), discovers
/// every upstream once, and keeps discovering and health-checking them (and
/// resolving their names) in the background until it is stopped.
pub async fn start(engine: &Engine, config: &Config, previous: Option<&Proxy>) -> Proxy {
    let proxy = Proxy::succeeding(engine, config, previous);
    for warning in config.plugins.proxy.docs_key_warnings() {
        log::warn!("{warning}");
    }
    if proxy.has_names() {
        let _ = proxy.control.send(ResolveAll).await;
        proxy.control.do_send(Keep::Resolving(config.plugins.proxy.dns_refresh()));
    }
    let failed = proxy.discover_all().await;
    for (url, e) in &failed {
        log::warn!("proxy {url}: discovery failed, will retry: {}", Escaped(e));
    }
    proxy.control.do_send(Keep::Discovering(config.plugins.proxy.discovery_interval()));
    if let Some((path, every)) = config.plugins.proxy.health_check() {
        proxy.control.do_send(Keep::Checking(path.to_owned(), every));
    }
    proxy
}
