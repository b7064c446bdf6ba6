//! The system proxy plugin: upstream pools from `[plugins.proxy]`, discovery of their
//! OpenAPI documents, and keeping their routes in the engine up to date.
//!
//! Each upstream is discovered once at start-up. One that is down or answers a broken
//! document is retried with exponential backoff (1 s doubling to 30 s) while the
//! server runs; once discovered, it is re-discovered every `discovery_interval` so
//! that added, removed and changed operations reach the route table without a
//! restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use awc::http::header;
use framex_actors::upstream::{PoolConfig, PoolShared, UpstreamTarget};
use framex_actors::{describe_skipped, ApiKey, Engine, RouteReport, UpstreamRoute};
use serde_json::Value;

use crate::config::{Config, UpstreamConfig};
use crate::discovery::{self, DiscoveryOptions};

/// Longest wait between two discovery attempts of an upstream that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Time allowed to fetch one OpenAPI document.
const DOCS_TIMEOUT: Duration = Duration::from_secs(10);

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

/// One configured upstream: its settings and its pool.
pub struct Upstream {
    /// Its `proxy_urls` entry.
    pub config: UpstreamConfig,
    /// The pool serving its routes.
    pub pool: Arc<PoolShared>,
    force_stream_apis: Vec<String>,
    auth: crate::config::AuthRules,
    component_prefix: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("url", &self.config.url).finish()
    }
}

impl Upstream {
    /// The `Authorization` value sent to this upstream for `path`, if any.
    fn key_for(&self, path: &str) -> Option<String> {
        self.auth.first_key_for(path).map(str::to_owned)
    }

    /// Fetches and parses the upstream's document, and replaces its routes in the
    /// engine.
    ///
    /// # Errors
    /// When the document cannot be fetched or is not OpenAPI; routes stay as they were.
    pub async fn discover(&self, engine: &Engine) -> Result<RouteReport, DiscoverError> {
        let document = self.fetch_document().await?;
        let allows = |path: &str| self.config.allows(path);
        let options = DiscoveryOptions {
            upstream: self.config.url.clone(),
            allows: &allows,
            force_stream_apis: self.force_stream_apis.clone(),
            component_prefix: self.component_prefix.clone(),
        };
        let discovered = discovery::parse_document(&document, &options)?;
        for skip in &discovered.skipped {
            log::info!(
                "proxy {}: skipped {} {}: {}",
                self.config.url,
                skip.method,
                skip.path,
                skip.reason
            );
        }
        let components = Arc::new(discovered.components);
        let routes: Vec<UpstreamRoute> = discovered
            .operations
            .into_iter()
            .map(|mut spec| {
                spec.components = Some(components.clone());
                let path = match &spec.key {
                    ApiKey::Http { path, .. } => path.clone(),
                    ApiKey::Function(name) => name.clone(),
                };
                UpstreamRoute {
                    spec: Arc::new(spec),
                    target: Arc::new(UpstreamTarget {
                        pool: self.pool.clone(),
                        auth: self.key_for(&path),
                    }),
                }
            })
            .collect();
        let report = engine.set_upstream_routes(&self.config.url, routes).await.map_err(|e| {
            DiscoverError::Fetch {
                url: self.config.url.clone(),
                reason: e.to_string(),
            }
        })?;
        for key in &report.added {
            log::info!("proxy {}: registered {key}", self.config.url);
        }
        for (key, why) in &report.skipped {
            log::info!("proxy {}: skipped {key}: {}", self.config.url, describe_skipped(why));
        }
        Ok(report)
    }

    async fn fetch_document(&self) -> Result<Value, DiscoverError> {
        let url = format!("{}{}", self.config.url, self.config.docs_path);
        let fail = |reason: String| DiscoverError::Fetch {
            url: url.clone(),
            reason,
        };
        let client = awc::Client::builder().timeout(DOCS_TIMEOUT).finish();
        let mut request = client.get(&url);
        if let Some(key) = self.key_for(&self.config.docs_path) {
            request = request.insert_header((header::AUTHORIZATION, key));
        }
        let mut response = request.send().await.map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("status {}", response.status())));
        }
        let body = response
            .body()
            .limit(32 * 1024 * 1024)
            .await
            .map_err(|e| fail(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))
    }
}

/// The running proxy: its upstreams and their discovery tasks.
#[derive(Debug)]
pub struct Proxy {
    upstreams: Vec<Arc<Upstream>>,
    stopped: Arc<AtomicBool>,
}

impl Proxy {
    /// The configured upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// Stops re-discovery.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// Builds the upstreams of `config`, discovers each once, and keeps discovering them
/// in the background.
pub async fn start(engine: &Engine, config: &Config) -> Proxy {
    let upstreams = upstreams(config);
    let stopped = Arc::new(AtomicBool::new(false));
    for upstream in &upstreams {
        let first = upstream.discover(engine).await;
        if let Err(e) = &first {
            log::warn!("proxy {}: discovery failed, will retry: {e}", upstream.config.url);
        }
        actix_rt::spawn(keep_discovering(
            engine.clone(),
            upstream.clone(),
            first.is_ok(),
            config.plugins.proxy.discovery_interval(),
            stopped.clone(),
        ));
    }
    Proxy { upstreams, stopped }
}

/// The upstreams `config` names, each with its pool.
pub fn upstreams(config: &Config) -> Vec<Arc<Upstream>> {
    let proxy = &config.plugins.proxy;
    proxy
        .upstreams()
        .iter()
        .enumerate()
        .map(|(i, upstream)| {
            let pool = PoolShared::new(PoolConfig {
                endpoints: vec![upstream.url.clone()],
                timeout: proxy.timeout(),
                connect_timeout: proxy.connect_timeout(),
                legal_codes: config.server.legal_proxy_code.clone(),
            });
            Arc::new(Upstream {
                config: upstream.clone(),
                pool,
                force_stream_apis: proxy.force_stream_apis.clone(),
                auth: proxy.auth.rules.clone(),
                component_prefix: format!("U{}_", i + 1),
            })
        })
        .collect()
}

async fn keep_discovering(
    engine: Engine,
    upstream: Arc<Upstream>,
    mut healthy: bool,
    interval: Option<Duration>,
    stopped: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = if healthy {
            match interval {
                Some(i) => i,
                None => return,
            }
        } else {
            backoff
        };
        actix_rt::time::sleep(wait).await;
        if stopped.load(Ordering::Relaxed) {
            return;
        }
        match upstream.discover(&engine).await {
            Ok(_) => {
                if !healthy {
                    log::info!("proxy {}: discovered after retrying", upstream.config.url);
                }
                healthy = true;
                backoff = Duration::from_secs(1);
            }
            Err(e) => {
                if healthy {
                    log::warn!("proxy {}: re-discovery failed, keeping routes: {e}", upstream.config.url);
                } else {
                    log::debug!("proxy {}: still unreachable: {e}", upstream.config.url);
                }
                healthy = false;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
