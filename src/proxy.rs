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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framex_actors::upstream::tls::ClientConfig;
use framex_actors::upstream::wire::header::{self, HeaderMap, HeaderValue};
use framex_actors::upstream::{
    fetch, proxy_function, tls, Balance, EndpointReport, EndpointStats, PoolConfig, PoolShared, UpstreamTarget,
};
use framex_actors::{describe_skipped, ApiKey, ApiSpec, BodySpec, Engine, UpstreamRoute};
use serde::Serialize;
use serde_json::Value;

use crate::config::{AuthRules, Config, UpstreamConfig};
use crate::discovery::{self, DiscoveryLimits, DiscoveryOptions};

/// Longest wait between two discovery attempts of an upstream that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Time allowed to fetch one OpenAPI document.
const DOCS_TIMEOUT: Duration = Duration::from_secs(10);
/// The registry source under which the proxy publishes its routes.
const SOURCE: &str = "proxy";

/// Why discovering one upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The document could not be fetched.
    #[error("cannot fetch {url}: {reason}")]
    Fetch {
        /// The document's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The document is not a usable OpenAPI document.
    #[error(transparent)]
    Document(#[from] discovery::DiscoveryError),
}

/// One configured upstream URL and what it last published.
pub struct Upstream {
    /// Its `proxy_urls` entry.
    pub config: UpstreamConfig,
    /// Its counters and health, shared by every pool it is part of.
    pub stats: Arc<EndpointStats>,
    force_stream_apis: Vec<String>,
    component_prefix: String,
    /// The `Authorization` value sent with the document request, if a rule names one.
    docs_key: Option<HeaderValue>,
    tls: Arc<ClientConfig>,
    /// `plugins.proxy.max_document_size`: the largest document read, and the most
    /// it may add to the merged document.
    max_document_size: usize,
    /// The operations of its last successful discovery (`None`: never discovered).
    operations: Mutex<Option<Vec<Arc<ApiSpec>>>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("url", &self.config.url).finish()
    }
}

impl Upstream {
    /// Fetches and parses the upstream's document and keeps its operations; returns
    /// how many there are. Publishing them is the [`Proxy`]'s job.
    ///
    /// # Errors
    /// When the document cannot be fetched or is not OpenAPI; the operations of the
    /// last discovery stay.
    async fn discover(&self) -> Result<usize, DiscoverError> {
        let document = self.fetch_document().await?;
        let allows = |path: &str| self.config.allows(path);
        let options = DiscoveryOptions {
            upstream: self.config.url.clone(),
            allows: &allows,
            force_stream_apis: self.force_stream_apis.clone(),
            component_prefix: self.component_prefix.clone(),
            limits: DiscoveryLimits {
                max_published: self.max_document_size,
                ..DiscoveryLimits::default()
            },
        };
        let discovered = discovery::parse_document(&document, &options)?;
        let first_time = self.operations.lock().expect("not poisoned").is_none();
        if first_time {
            for skip in &discovered.skipped {
                log::info!(
                    "proxy {}: skipped {} {}: {}",
                    self.config.url,
                    skip.method,
                    skip.path,
                    skip.reason
                );
            }
        }
        let components = Arc::new(discovered.components);
        let operations: Vec<Arc<ApiSpec>> = discovered
            .operations
            .into_iter()
            .map(|mut spec| {
                spec.components = Some(components.clone());
                Arc::new(spec)
            })
            .collect();
        let count = operations.len();
        *self.operations.lock().expect("not poisoned") = Some(operations);
        Ok(count)
    }

    async fn fetch_document(&self) -> Result<Value, DiscoverError> {
        let fail = |reason: String| DiscoverError::Fetch {
            url: format!("{}{}", self.config.url, self.config.docs_path),
            reason,
        };
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.docs_key {
            headers.insert(header::AUTHORIZATION, key.clone());
        }
        let (status, body) = fetch(
            &self.config.url,
            &self.config.docs_path,
            headers,
            &self.tls,
            DOCS_TIMEOUT,
            self.max_document_size,
        )
        .await
        .map_err(|reason| {
            if reason.starts_with("body larger than") {
                fail(format!("document refused: {reason} (plugins.proxy.max_document_size)"))
            } else {
                fail(reason)
            }
        })?;
        if !status.is_success() {
            return Err(fail(format!("status {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))
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

impl ProxyReport {
    /// The same figures in Prometheus's text exposition format, one series per
    /// upstream URL (label `url`).
    pub fn to_prometheus(&self) -> String {
        type Field = fn(&UpstreamReport) -> u64;
        let series: [(&str, &str, &str, Field); 5] = [
            ("framex_upstream_requests_total", "counter", "Requests sent to the upstream URL.", |u| u.endpoint.requests),
            ("framex_upstream_failures_total", "counter", "Requests that failed at the upstream URL (no connection, reset, 5xx, broken reply).", |u| u.endpoint.failures),
            ("framex_upstream_in_flight", "gauge", "Requests the upstream URL is serving now.", |u| u.endpoint.in_flight as u64),
            ("framex_upstream_healthy", "gauge", "1 while the upstream URL gets traffic, 0 while it is ejected.", |u| u64::from(u.endpoint.healthy)),
            ("framex_upstream_operations", "gauge", "Operations the upstream URL published at its last discovery.", |u| u.operations as u64),
        ];
        let labels: Vec<String> = self
            .upstreams
            .iter()
            .map(|u| {
                let url = u.endpoint.url.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                format!("{{url=\"{url}\"}}")
            })
            .collect();
        let mut out = String::new();
        for (name, kind, help, value) in series {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (upstream, label) in self.upstreams.iter().zip(&labels) {
                out.push_str(&format!("{name}{label} {}\n", value(upstream)));
            }
        }
        out
    }
}

/// One upstream URL in a [`ProxyReport`].
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamReport {
    /// Whether its document has been read at least once.
    pub discovered: bool,
    /// Operations it published at the last discovery.
    pub operations: usize,
    /// Health and counters.
    #[serde(flatten)]
    pub endpoint: EndpointReport,
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

struct Inner {
    engine: Engine,
    upstreams: Vec<Arc<Upstream>>,
    /// Limits shared by every pool (its endpoints and policy are filled per pool).
    template: PoolConfig,
    auth: AuthRules,
    /// `proxy_functions`: each function API with the upstream (index) serving it.
    functions: Vec<(usize, Arc<ApiSpec>)>,
    /// Pools by their members (indexes into `upstreams`), kept so that a pool keeps
    /// its identity, and its replicas on every worker, across re-discoveries.
    pools: Mutex<HashMap<Vec<usize>, Arc<PoolShared>>>,
    /// What was published last.
    published: tokio::sync::Mutex<Published>,
    stopped: AtomicBool,
}

/// One proxied route as the proxy hands it to the engine: its signature and the
/// upstreams (indexes) whose pool serves it.
type Merged = Vec<(Arc<ApiSpec>, Vec<usize>)>;

#[derive(Default)]
struct Published {
    /// The routes handed to the engine.
    sent: Merged,
    /// Those the engine did not take, and why.
    skipped: BTreeMap<ApiKey, String>,
    /// Operations an upstream publishes with another signature than the first one.
    conflicts: BTreeSet<(usize, ApiKey)>,
}

impl Published {
    /// The routes served: key → pool members.
    fn live(&self) -> BTreeMap<&ApiKey, &Vec<usize>> {
        self.sent
            .iter()
            .filter(|(spec, _)| !self.skipped.contains_key(&spec.key))
            .map(|(spec, members)| (&spec.key, members))
            .collect()
    }
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
                let docs_key = proxy
                    .auth
                    .rules
                    .first_key_for(&upstream.docs_path)
                    .and_then(|key| HeaderValue::from_str(key).ok());
                Arc::new(Upstream {
                    config: upstream,
                    docs_key,
                    stats: Arc::default(),
                    force_stream_apis: proxy.force_stream_apis.clone(),
                    component_prefix: format!("U{}_", i + 1),
                    tls: tls.clone(),
                    max_document_size: proxy.max_document_size,
                    operations: Mutex::new(None),
                })
            })
            .collect();
        let functions = proxy
            .proxy_functions
            .iter()
            .flat_map(|(url, names)| {
                let url = url.trim().trim_end_matches('/');
                let at = upstreams.iter().position(|u| u.config.url == url);
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
        Proxy {
            inner: Arc::new(Inner {
                engine: engine.clone(),
                upstreams,
                functions,
                template: PoolConfig {
                    endpoints: Vec::new(),
                    timeout: proxy.timeout(),
                    connect_timeout: proxy.connect_timeout(),
                    legal_codes: config.server.legal_proxy_code.clone(),
                    balance: Balance::RoundRobin,
                    max_in_flight: proxy.max_in_flight,
                    retries: proxy.retries,
                    tls,
                },
                auth: proxy.auth.rules.clone(),
                pools: Mutex::new(HashMap::new()),
                published: tokio::sync::Mutex::new(Published::default()),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// The configured upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.inner.upstreams
    }

    /// Discovers every upstream once (side by side) and publishes the routes;
    /// returns the upstreams that failed, with why.
    pub async fn discover_all(&self) -> Vec<(String, DiscoverError)> {
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

    /// Rebuilds the proxied routes from what every upstream last published: one route
    /// per operation, served by the pool of the URLs publishing it with the same
    /// signature, and hands them to the engine when they changed. Logs what changed.
    pub async fn publish(&self) {
        let inner = &self.inner;
        let mut published = inner.published.lock().await;
        let mut merged: Merged = Vec::new();
        let mut conflicts = BTreeSet::new();
        let mut index: HashMap<ApiKey, usize> = HashMap::new();
        for (i, upstream) in inner.upstreams.iter().enumerate() {
            let operations = upstream.operations.lock().expect("not poisoned").clone();
            for spec in operations.into_iter().flatten() {
                match index.get(&spec.key) {
                    None => {
                        index.insert(spec.key.clone(), merged.len());
                        merged.push((spec, vec![i]));
                    }
                    Some(&at) if merged[at].0.same_signature(&spec) => merged[at].1.push(i),
                    Some(&at) => {
                        let first = &inner.upstreams[merged[at].1[0]].config.url;
                        if !published.conflicts.contains(&(i, spec.key.clone())) {
                            log::warn!(
                                "proxy {}: {} differs in signature from {first}'s; not pooled with it",
                                upstream.config.url,
                                spec.key
                            );
                        }
                        conflicts.insert((i, spec.key.clone()));
                    }
                }
            }
        }
        // Proxy functions are configured, not discovered: always there.
        for (at, spec) in &inner.functions {
            if !index.contains_key(&spec.key) {
                index.insert(spec.key.clone(), merged.len());
                merged.push((spec.clone(), vec![*at]));
            }
        }
        let unchanged = merged.len() == published.sent.len()
            && merged
                .iter()
                .zip(&published.sent)
                .all(|((a, am), (b, bm))| am == bm && a == b);
        published.conflicts = conflicts;
        if unchanged {
            // A re-discovery that found what was there: no table to rebuild.
            return;
        }
        let routes: Vec<UpstreamRoute> = merged
            .iter()
            .map(|(spec, members)| {
                // A proxy function travels on FrameX's proxy-function path.
                let path = match &spec.key {
                    ApiKey::Http { path, .. } => path.as_str(),
                    ApiKey::Function(_) => proxy_function::PATH,
                };
                UpstreamRoute {
                    spec: spec.clone(),
                    target: Arc::new(UpstreamTarget {
                        pool: self.pool(members),
                        auth: inner.auth.first_key_for(path).map(str::to_owned),
                    }),
                }
            })
            .collect();
        let report = match inner.engine.set_upstream_routes(SOURCE, routes).await {
            Ok(report) => report,
            Err(e) => {
                log::error!("proxy: routes could not be published: {e}");
                return;
            }
        };

        let now = Published {
            sent: merged,
            skipped: report
                .skipped
                .iter()
                .map(|(key, why)| (key.clone(), describe_skipped(why)))
                .collect(),
            conflicts: std::mem::take(&mut published.conflicts),
        };
        let (before, after) = (published.live(), now.live());
        for (key, members) in &after {
            match before.get(key) {
                None => log::info!("proxy: registered {key} -> {}", self.pool(members).name()),
                Some(old) if old != members => {
                    log::info!("proxy: {key} now served by {}", self.pool(members).name())
                }
                Some(_) => {}
            }
        }
        for key in before.keys().filter(|k| !after.contains_key(*k) && !now.skipped.contains_key(**k)) {
            log::info!("proxy: removed {key}");
        }
        for (key, why) in &now.skipped {
            if published.skipped.get(key) != Some(why) {
                log::info!("proxy: skipped {key}: {why}");
            }
        }
        *published = now;
    }

    /// The pool of `members` (indexes into the upstreams), made on first use.
    fn pool(&self, members: &[usize]) -> Arc<PoolShared> {
        let inner = &self.inner;
        let mut pools = inner.pools.lock().expect("not poisoned");
        pools
            .entry(members.to_vec())
            .or_insert_with(|| {
                let lead = &inner.upstreams[members[0]].config;
                let mut config = inner.template.clone();
                config.endpoints = members
                    .iter()
                    .map(|&i| inner.upstreams[i].config.url.clone())
                    .collect();
                config.balance = lead.balance.into();
                let stats = members.iter().map(|&i| inner.upstreams[i].stats.clone()).collect();
                PoolShared::with_stats(config, stats)
            })
            .clone()
    }

    /// Every upstream URL and every pool in use, with health and counters.
    pub async fn report(&self) -> ProxyReport {
        let inner = &self.inner;
        let upstreams = inner
            .upstreams
            .iter()
            .map(|u| {
                let operations = u.operations.lock().expect("not poisoned");
                UpstreamReport {
                    discovered: operations.is_some(),
                    operations: operations.as_ref().map_or(0, Vec::len),
                    endpoint: EndpointReport::of(&u.config.url, &u.stats),
                }
            })
            .collect();
        let published = inner.published.lock().await;
        let mut routes_per_pool: BTreeMap<&Vec<usize>, usize> = BTreeMap::new();
        for members in published.live().into_values() {
            *routes_per_pool.entry(members).or_default() += 1;
        }
        let pools = routes_per_pool
            .into_iter()
            .map(|(members, routes)| {
                let pool = self.pool(members);
                PoolReport {
                    endpoints: pool.config().endpoints.clone(),
                    balance: format!("{}", inner.upstreams[members[0]].config.balance),
                    routes,
                }
            })
            .collect();
        ProxyReport { upstreams, pools }
    }

    /// Stops re-discovery and health checks.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Relaxed)
    }
}

/// Builds the proxy of `config`, discovers every upstream once, and keeps
/// discovering and health-checking them in the background.
pub async fn start(engine: &Engine, config: &Config) -> Proxy {
    let proxy = Proxy::new(engine, config);
    let failed = proxy.discover_all().await;
    for (url, e) in &failed {
        log::warn!("proxy {url}: discovery failed, will retry: {e}");
    }
    let interval = config.plugins.proxy.discovery_interval();
    for upstream in proxy.upstreams() {
        let healthy = !failed.iter().any(|(url, _)| *url == upstream.config.url);
        actix_rt::spawn(keep_discovering(proxy.clone(), upstream.clone(), healthy, interval));
    }
    if let Some((path, every)) = config.plugins.proxy.health_check() {
        actix_rt::spawn(keep_checking(proxy.clone(), path.to_owned(), every));
    }
    proxy
}

async fn keep_discovering(
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
                    log::warn!("proxy {url}: re-discovery failed, keeping its routes: {e}");
                } else {
                    log::debug!("proxy {url}: still unreachable: {e}");
                }
                healthy = false;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Probes every upstream URL with `GET {url}{path}` each `every`: an answer below 500
/// restores an ejected URL, no answer (or a 5xx) ejects it.
async fn keep_checking(proxy: Proxy, path: String, every: Duration) {
    let patience = every.max(Duration::from_secs(1));
    loop {
        actix_rt::time::sleep(every).await;
        if proxy.stopped() {
            return;
        }
        let probes = proxy.upstreams().iter().map(|u| {
            let path = &path;
            async move {
                let answer = fetch(&u.config.url, path, HeaderMap::new(), &u.tls, patience, 64 * 1024).await;
                let passed = matches!(answer, Ok((status, _)) if !status.is_server_error());
                let health = &u.stats.health;
                let was_available = health.is_available();
                if passed {
                    health.record_success();
                    if !was_available {
                        log::info!("proxy {}: health check passed, back in its pools", u.config.url);
                    }
                } else {
                    health.record_failure();
                    if was_available {
                        log::warn!("proxy {}: health check failed, ejected", u.config.url);
                    }
                }
            }
        });
        futures::future::join_all(probes).await;
    }
}
