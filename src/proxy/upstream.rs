//! One configured upstream URL: its settings and counters (fixed for the proxy's
//! life), what the control plane last learnt of it ([`Known`]: its operations and the
//! addresses of its name), and the work of learning it: fetching and reading its
//! OpenAPI document (on a connection of its own, bounded in time and size) and taking
//! in a resolution of its name. Nothing here is locked: the control plane
//! (`super::control`) is the one writer of every [`Known`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use framex_actors::upstream::tls::ClientConfig;
use framex_actors::upstream::wire::header::{self, HeaderMap, HeaderValue};
use framex_actors::upstream::{fetch, EndpointStats};
use framex_actors::{ApiSpec, Escaped};
use serde_json::Value;

use crate::config::{PathFilter, UpstreamConfig};

use super::dns::Resolution;
use crate::discovery::{self, DiscoveryLimits, DiscoveryOptions};

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
    /// The proxy was stopped before the discovery could run.
    #[error("the proxy is stopped")]
    Stopped,
}

/// One configured upstream URL: its settings and counters.
pub struct Upstream {
    /// Its `proxy_urls` entry.
    pub config: UpstreamConfig,
    /// Its counters and health, shared by every pool it is part of.
    pub stats: Arc<EndpointStats>,
    pub(super) force_stream_apis: Vec<String>,
    pub(super) component_prefix: String,
    /// The `Authorization` value sent with the document request, if a rule names one.
    pub(super) docs_key: Option<HeaderValue>,
    /// Its `enable` / `disable` filters, parsed: templates at discovery, concrete
    /// paths per request.
    pub(super) filter: Arc<PathFilter>,
    pub(super) tls: Arc<ClientConfig>,
    /// `plugins.proxy.max_document_size`: the largest document read, and the most
    /// it may add to the merged document.
    pub(super) max_document_size: usize,
    /// When its host is a name: the name and port, resolved to every address.
    pub(super) named: Option<(String, u16)>,
}

/// What the control plane knows of one upstream URL: written by it alone, read by
/// the status page and `/ready` as an immutable snapshot.
#[derive(Default, Clone)]
pub struct Known {
    /// The operations of its last successful discovery (`None`: never discovered).
    pub(super) operations: Option<Vec<Arc<ApiSpec>>>,
    /// The addresses of its name at the last resolution that worked, each with its
    /// own counters and health, sorted; empty until resolved (or for an IP literal).
    pub(super) addresses: Vec<(SocketAddr, Arc<EndpointStats>)>,
    /// Why the last resolution failed (its addresses are kept meanwhile).
    pub(super) dns_error: Option<String>,
}

/// What a resolution of an upstream's name changes of its [`Known`] (see
/// [`Upstream::resolved`]).
pub(super) enum DnsChange {
    /// The name resolves again, to the addresses known: its error is cleared.
    Recovered,
    /// The name resolves to other addresses (any error cleared); an address kept
    /// keeps its counters and health.
    Moved(Vec<(SocketAddr, Arc<EndpointStats>)>),
    /// The name does not resolve, for a reason not yet shown; its addresses stay.
    Failed(String),
}

impl DnsChange {
    /// Makes the change in `known`; gives whether the addresses moved.
    pub(super) fn apply(self, known: &mut Known) -> bool {
        match self {
            DnsChange::Recovered => {
                known.dns_error = None;
                false
            }
            DnsChange::Moved(addresses) => {
                known.dns_error = None;
                known.addresses = addresses;
                true
            }
            DnsChange::Failed(reason) => {
                known.dns_error = Some(reason);
                false
            }
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("url", &self.config.url).finish()
    }
}

impl Upstream {
    /// Its endpoints as `known`: every address of its name, each with its own
    /// counters, or (an IP literal, or a name not resolved yet) the URL itself.
    pub fn endpoints(&self, known: &Known) -> Vec<(Option<SocketAddr>, Arc<EndpointStats>)> {
        if known.addresses.is_empty() {
            return vec![(None, self.stats.clone())];
        }
        known
            .addresses
            .iter()
            .map(|(addr, stats)| (Some(*addr), stats.clone()))
            .collect()
    }

    /// What `answer`, a new resolution of its name, changes of `known` (`None`:
    /// nothing, the usual case), and the answer's TTL. A name that stops resolving
    /// keeps its last addresses, and says so once in the log and on the status page.
    pub(super) fn resolved(&self, known: &Known, answer: Result<Resolution, String>) -> (Option<DnsChange>, Option<Duration>) {
        let Some((host, _)) = &self.named else {
            return (None, None);
        };
        match answer {
            Ok(found) => {
                let recovered = known.dns_error.is_some();
                if recovered {
                    log::info!("proxy {}: {} resolves again", self.config.url, Escaped(host));
                }
                let same = known.addresses.len() == found.addresses.len()
                    && known.addresses.iter().zip(&found.addresses).all(|((a, _), b)| a == b);
                if same {
                    return (recovered.then_some(DnsChange::Recovered), found.ttl);
                }
                let addresses = found
                    .addresses
                    .iter()
                    .map(|addr| {
                        let stats = known.addresses.iter().find(|(a, _)| a == addr).map(|(_, s)| s.clone());
                        (*addr, stats.unwrap_or_default())
                    })
                    .collect();
                let list: Vec<String> = found.addresses.iter().map(ToString::to_string).collect();
                log::info!("proxy {}: {} is now {}", self.config.url, Escaped(host), list.join(", "));
                (Some(DnsChange::Moved(addresses)), found.ttl)
            }
            Err(reason) => {
                if known.dns_error.is_none() {
                    log::warn!(
                        "proxy {}: {} does not resolve ({}); keeping its last addresses",
                        self.config.url,
                        Escaped(host),
                        Escaped(&reason)
                    );
                }
                let new = known.dns_error.as_deref() != Some(reason.as_str());
                (new.then_some(DnsChange::Failed(reason)), None)
            }
        }
    }

    /// Fetches its document (from `address`, the first of its name when resolved)
    /// and reads its operations; `first_time` (never discovered yet) logs what is left
    /// out. Keeping and publishing them is the control plane's job.
    ///
    /// # Errors
    /// When the document cannot be fetched or is not OpenAPI.
    pub(super) async fn discover(&self, address: Option<SocketAddr>, first_time: bool) -> Result<Vec<Arc<ApiSpec>>, DiscoverError> {
        let document = self.fetch_document(address).await?;
        let allows = |path: &str| self.filter.allows_template(path);
        let options = DiscoveryOptions {
            upstream: self.config.url.to_string(),
            allows: &allows,
            force_stream_apis: self.force_stream_apis.clone(),
            component_prefix: self.component_prefix.clone(),
            limits: DiscoveryLimits {
                max_published: self.max_document_size,
                ..DiscoveryLimits::default()
            },
        };
        let mut discovered = discovery::parse_document(&document, &options)?;
        let builtins = take_builtins(&mut discovered.operations);
        if first_time && !builtins.is_empty() {
            log::warn!(
                "proxy {}: {} served by framex-rs itself; the upstream's are not proxied",
                self.config.url,
                Escaped(&builtins.join(", "))
            );
        }
        if first_time {
            for skip in &discovered.skipped {
                log::info!(
                    "proxy {}: skipped {} {}: {}",
                    self.config.url,
                    Escaped(&skip.method),
                    Escaped(&skip.path),
                    Escaped(&skip.reason)
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
        Ok(operations)
    }

    async fn fetch_document(&self, address: Option<SocketAddr>) -> Result<Value, DiscoverError> {
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
            address,
            &self.config.docs_path,
            headers,
            &self.tls,
            DOCS_TIMEOUT,
            self.max_document_size,
        )
        .await
        .map_err(|reason| {
            // `fetch` words its size refusal so; say which key sets the limit.
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

/// Takes the operations on paths framex-rs answers itself (`GET /health`, `/version`…)
/// out of `operations`, as FrameX-kit skips them: they would be listed, documented and
/// logged as proxied, and never reached. Returns them as `GET /health`, ….
fn take_builtins(operations: &mut Vec<framex_actors::ApiSpec>) -> Vec<String> {
    let mut taken = Vec::new();
    operations.retain(|spec| match &spec.key {
        framex_actors::ApiKey::Http { method, path } if crate::builtin_paths::is_builtin(method.as_str(), path) => {
            taken.push(format!("{method} {path}"));
            false
        }
        _ => true,
    });
    taken
}
