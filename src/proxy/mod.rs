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
//! document), `merge` (what every URL published → routes and their pools; pure),
//! this module (pools by members, publishing to the registry, which reports what
//! changed), `report` (the status page and Prometheus text, read from the published
//! table) and `tasks` (re-discovery and health checks in the background).

mod dns;
mod merge;
mod report;
mod tasks;
mod upstream;
mod websocket;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use framex_actors::upstream::wire::header::HeaderValue;
use framex_actors::upstream::{proxy_function, tls, Balance, EndpointKeys, PoolConfig, PoolShared, RequestPathFilter, UpstreamTarget, UpstreamUrl};
use framex_actors::{describe_skipped, ApiKey, ApiSpec, BodySpec, Engine, Escaped, UpstreamRoute};

use crate::config::{rule_lint, AuthRules, Config, PathFilter};

pub use report::{answered_by, PoolReport, ProxyReport, UpstreamReport};
pub use upstream::{DiscoverError, Upstream};
pub use websocket::{WebSocketRoutes, WebSocketTarget};

/// One endpoint of a pool: an upstream (index into the upstreams) and, when its host
/// is a name, one of its addresses.
type Member = (usize, Option<std::net::SocketAddr>);

/// The registry source under which the proxy publishes its routes.
const SOURCE: &str = "proxy";

/// The filters of every upstream of a pool, all of which must allow a path.
struct MembersFilter(Vec<Arc<PathFilter>>);

impl RequestPathFilter for MembersFilter {
    fn allows(&self, path: &str) -> bool {
        self.0.iter().all(|f| f.allows_path(path))
    }
}

struct Inner {
    engine: Engine,
    upstreams: Vec<Arc<Upstream>>,
    /// Limits shared by every pool (its endpoints and policy are filled per pool).
    template: PoolConfig,
    auth: AuthRules,
    /// `proxy_functions`: each function API with the upstream (index) serving it.
    functions: Vec<(usize, Arc<ApiSpec>)>,
    /// How names in `proxy_urls` are resolved.
    resolver: dns::Resolver,
    /// Pools by their members (index into `upstreams`, and the address of its name,
    /// if resolved), kept so that a pool keeps its identity, and its replicas on every
    /// worker, across re-discoveries.
    pools: Mutex<HashMap<Vec<Member>, Arc<PoolShared>>>,
    /// Signature conflicts already warned about (upstream index, key), so that each
    /// is logged once; publications are serialized by this lock.
    conflicts: tokio::sync::Mutex<BTreeSet<(usize, ApiKey)>>,
    stopped: AtomicBool,
    /// The `websocket` patterns and their pools.
    websockets: WebSocketRoutes,
    /// `[auth]` and `[plugins.proxy.auth]` rules, for the discovery-time warnings
    /// about rules that do not cover what they seem to (see `rule_lint`).
    rule_groups: Vec<rule_lint::RuleGroup>,
    /// Those warnings already logged, so that each is logged once per rule and
    /// upstream.
    rules_warned: Mutex<std::collections::HashSet<String>>,
    /// `[plugins.proxy.migrate]`, for the log to say who answers a route kept aside.
    migrate: crate::config::MigrateConfig,
}

/// The running proxy: its upstreams, their pools and background tasks.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.inner.upstreams).finish()
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
        let upstreams: Vec<Arc<Upstream>> = proxy
            .upstreams()
            .into_iter()
            .enumerate()
            .map(|(i, upstream)| {
                let docs_key = proxy.docs_key(&upstream).and_then(|key| HeaderValue::from_str(key).ok()).map(|mut key| {
                    key.set_sensitive(true);
                    key
                });
                // Checked at load; should it fail anyway, nothing is proxied.
                let filter = upstream.filter().unwrap_or_else(|e| {
                    log::error!("proxy {}: {e}; nothing is proxied from it", upstream.url);
                    PathFilter::closed()
                });
                let before = previous.and_then(|p| p.upstreams().iter().find(|u| u.config.url == upstream.url));
                let named = dns::named_host(&upstream.url);
                Arc::new(Upstream {
                    filter: Arc::new(filter),
                    config: upstream,
                    docs_key,
                    stats: before.map(|u| u.stats.clone()).unwrap_or_default(),
                    force_stream_apis: proxy.force_stream_apis.clone(),
                    component_prefix: format!("U{}_", i + 1),
                    tls: tls.clone(),
                    max_document_size: proxy.max_document_size,
                    operations: Mutex::new(before.and_then(|u| u.operations())),
                    named,
                    resolved: Mutex::new(upstream::Resolved {
                        addresses: before
                            .map(|u| {
                                u.endpoints()
                                    .into_iter()
                                    .filter_map(|(addr, stats)| addr.map(|a| (a, stats)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        error: None,
                    }),
                })
            })
            .collect();
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
        Proxy {
            inner: Arc::new(Inner {
                engine: engine.clone(),
                upstreams,
                functions,
                template,
                websockets,
                auth: proxy.auth.rules.clone(),
                resolver: dns::Resolver::new(&proxy.dns_servers()),
                pools: Mutex::new(HashMap::new()),
                conflicts: tokio::sync::Mutex::new(BTreeSet::new()),
                rule_groups: rule_lint::global_groups(config),
                rules_warned: Mutex::new(std::collections::HashSet::new()),
                migrate: proxy.migrate.clone(),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// The WebSocket routes (`websocket` patterns of `proxy_urls`).
    pub fn websockets(&self) -> &WebSocketRoutes {
        &self.inner.websockets
    }

    /// The configured upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.inner.upstreams
    }

    /// Discovers every upstream once (side by side) and publishes the routes;
    /// returns the upstreams that failed, with why.
    pub async fn discover_all(&self) -> Vec<(UpstreamUrl, DiscoverError)> {
        let attempts = self.inner.upstreams.iter().map(|u| async move {
            u.discover().await.err().map(|e| (u.config.url.clone(), e))
        });
        let failed: Vec<_> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .flatten()
            .collect();
        self.publish().await;
        failed
    }

    /// Rebuilds the proxied routes from what every upstream last published (see
    /// `merge`) and hands them to the registry, which changes nothing when they are
    /// the same and otherwise reports what changed; logs that.
    pub async fn publish(&self) {
        let inner = &self.inner;
        let mut warned = inner.conflicts.lock().await;
        let published: Vec<_> = inner.upstreams.iter().map(|u| u.operations()).collect();
        self.warn_about_rules(&published);
        let merged = merge::merge(&published, &inner.functions);
        for (i, key) in merged.conflicts.difference(&warned) {
            let first = merged
                .routes
                .iter()
                .find(|(spec, _)| spec.key == *key)
                .map_or("another URL", |(_, members)| inner.upstreams[members[0]].config.url.as_str());
            log::warn!(
                "proxy {}: {} differs in signature from {first}'s; not pooled with it",
                inner.upstreams[*i].config.url,
                Escaped(key)
            );
        }
        *warned = merged.conflicts;
        let endpoints: Vec<Vec<Option<std::net::SocketAddr>>> = inner
            .upstreams
            .iter()
            .map(|u| u.endpoints().into_iter().map(|(addr, _)| addr).collect())
            .collect();
        let routes: Vec<UpstreamRoute> = merged
            .routes
            .iter()
            .map(|(spec, upstreams)| {
                // Every address of every upstream publishing the operation.
                let members: Vec<Member> = upstreams
                    .iter()
                    .flat_map(|&i| endpoints[i].iter().map(move |addr| (i, *addr)))
                    .collect();
                // A proxy function travels on FrameX's proxy-function path.
                let path = match &spec.key {
                    ApiKey::Http { path, .. } => path.as_str(),
                    ApiKey::Function(_) => proxy_function::PATH,
                };
                UpstreamRoute {
                    spec: spec.clone(),
                    target: Arc::new(UpstreamTarget {
                        pool: self.pool(&members),
                        auth: self.keys(&members, path),
                        filter: match &spec.key {
                            ApiKey::Http { .. } => self.request_filter(upstreams),
                            ApiKey::Function(_) => None,
                        },
                    }),
                }
            })
            .collect();
        // Pools no route leads to any more (members gone with a re-resolution or a
        // re-discovery) are forgotten; requests in flight keep theirs.
        let used: std::collections::HashSet<_> = routes.iter().map(|r| r.target.pool.id()).collect();
        inner
            .pools
            .lock()
            .expect("not poisoned")
            .retain(|_, pool| used.contains(&pool.id()));
        let report = match inner.engine.set_upstream_routes(SOURCE, routes).await {
            Ok(report) => report,
            Err(e) => {
                log::error!("proxy: routes could not be published: {}", Escaped(&e));
                return;
            }
        };
        for (key, pool) in &report.added {
            log::info!("proxy: registered {} -> {pool}", Escaped(key));
        }
        for (key, pool) in &report.moved {
            log::info!("proxy: {} now served by {pool}", Escaped(key));
        }
        for key in &report.removed {
            log::info!("proxy: removed {}", Escaped(key));
        }
        let table = (!inner.migrate.is_empty() && !report.skipped.is_empty()).then(|| inner.engine.table());
        for (key, why) in &report.skipped {
            // A route a local plugin serves but a migration entry sends upstream is not
            // "skipped": say who answers it.
            let local = table.as_ref().and_then(|t| t.routes().find(|r| r.spec.key == *key).map(|r| (t, r)));
            let migrating = local.map(|(t, r)| (answered_by(r, t, &inner.migrate), r.target.describe()));
            match migrating.filter(|(who, plain)| who != plain) {
                Some((who, _)) => {
                    log::info!("proxy: {} kept for migration: {}", Escaped(key), Escaped(&who));
                }
                _ => log::info!("proxy: skipped {}: {}", Escaped(key), Escaped(&describe_skipped(why))),
            }
        }
    }

    /// The key each member of a pool is sent for route `path`: its URL's own rule,
    /// else the global one (which so reaches only the URLs serving the route).
    fn keys(&self, members: &[Member], path: &str) -> EndpointKeys {
        let inner = &self.inner;
        EndpointKeys::new(
            members
                .iter()
                .map(|&(i, _)| {
                    inner.upstreams[i]
                        .config
                        .auth
                        .key_or(&inner.auth, path)
                        .and_then(|key| HeaderValue::from_str(key).ok())
                })
                .collect(),
        )
    }

    /// Logs, once per rule and upstream, the rules that do not cover what they seem
    /// to under the routes an upstream publishes (an exact path under a typed
    /// template, `"/x/*"` beside a route `/x`).
    fn warn_about_rules(&self, published: &[Option<Vec<Arc<ApiSpec>>>]) {
        let inner = &self.inner;
        let mut warned = inner.rules_warned.lock().expect("not poisoned");
        for (upstream, operations) in inner.upstreams.iter().zip(published) {
            let Some(operations) = operations else { continue };
            let config = &upstream.config;
            let mut groups = inner.rule_groups.clone();
            groups.extend(rule_lint::upstream_groups(config.url.as_str(), &config.enable, &config.disable));
            for warning in rule_lint::warnings(&groups, operations.iter().map(|spec| &**spec)) {
                let warning = format!("proxy {}: {warning}", config.url);
                if warned.insert(warning.clone()) {
                    log::warn!("{warning}");
                }
            }
        }
    }

    /// The per-request path filter of a route served by `members`: a concrete path is
    /// forwarded only when every member's filters allow it (`None`: all allow all).
    fn request_filter(&self, members: &[usize]) -> Option<Arc<dyn RequestPathFilter>> {
        let filters: Vec<Arc<PathFilter>> = members
            .iter()
            .map(|&i| self.inner.upstreams[i].filter.clone())
            .filter(|f| !f.is_open())
            .collect();
        (!filters.is_empty()).then(|| Arc::new(MembersFilter(filters)) as Arc<dyn RequestPathFilter>)
    }

    /// The pool of `members`, made on first use.
    fn pool(&self, members: &[Member]) -> Arc<PoolShared> {
        let inner = &self.inner;
        let mut pools = inner.pools.lock().expect("not poisoned");
        pools
            .entry(members.to_vec())
            .or_insert_with(|| {
                let lead = &inner.upstreams[members[0].0].config;
                let mut config = inner.template.clone();
                config.endpoints = members
                    .iter()
                    .map(|&(i, _)| inner.upstreams[i].config.url.clone())
                    .collect();
                config.addresses = members.iter().map(|&(_, addr)| addr).collect();
                config.balance = lead.balance.into();
                let stats = members
                    .iter()
                    .map(|&(i, addr)| {
                        inner.upstreams[i]
                            .endpoints()
                            .into_iter()
                            .find(|(a, _)| *a == addr)
                            .map_or_else(|| inner.upstreams[i].stats.clone(), |(_, s)| s)
                    })
                    .collect();
                PoolShared::with_stats(config, stats)
            })
            .clone()
    }

    /// Resolves every named upstream again; returns whether any address set changed,
    /// and the shortest TTL the answers gave.
    pub(super) async fn resolve_all(&self) -> (bool, Option<std::time::Duration>) {
        let inner = &self.inner;
        let answers = futures::future::join_all(inner.upstreams.iter().map(|u| u.resolve(&inner.resolver))).await;
        let changed = answers.iter().any(|(changed, _)| *changed);
        let ttl = answers.iter().filter_map(|(_, ttl)| *ttl).min();
        (changed, ttl)
    }

    /// Whether any upstream's host is a name to resolve.
    fn has_names(&self) -> bool {
        self.inner.upstreams.iter().any(|u| u.named.is_some())
    }

    /// Every upstream URL and every pool in use, with health and counters.
    pub async fn report(&self) -> ProxyReport {
        ProxyReport::of(&self.inner.upstreams, &self.inner.engine)
    }

    /// The upstream URLs never discovered yet (what `/ready` waits for).
    pub fn undiscovered(&self) -> Vec<UpstreamUrl> {
        self.inner
            .upstreams
            .iter()
            .filter(|u| u.operations().is_none())
            .map(|u| u.config.url.clone())
            .collect()
    }

    /// Stops re-discovery and health checks.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Relaxed)
    }
}

/// Builds the proxy of `config` (taking over from `previous` on a reload), discovers
/// every upstream once, and keeps discovering and health-checking them in the
/// background.
pub async fn start(engine: &Engine, config: &Config, previous: Option<&Proxy>) -> Proxy {
    let proxy = Proxy::succeeding(engine, config, previous);
    for warning in config.plugins.proxy.docs_key_warnings() {
        log::warn!("{warning}");
    }
    if proxy.has_names() {
        proxy.resolve_all().await;
        let every = config.plugins.proxy.dns_refresh();
        actix_rt::spawn(tasks::keep_resolving(proxy.clone(), every));
    }
    let failed = proxy.discover_all().await;
    for (url, e) in &failed {
        log::warn!("proxy {url}: discovery failed, will retry: {}", Escaped(e));
    }
    let interval = config.plugins.proxy.discovery_interval();
    for upstream in proxy.upstreams() {
        let healthy = !failed.iter().any(|(url, _)| *url == upstream.config.url);
        actix_rt::spawn(tasks::keep_discovering(proxy.clone(), upstream.clone(), healthy, interval));
    }
    if let Some((path, every)) = config.plugins.proxy.health_check() {
        actix_rt::spawn(tasks::keep_checking(proxy.clone(), path.to_owned(), every));
    }
    proxy
}

