//! Upstream pools: the state, actors and replicas that talk to upstream services.
//!
//! Split by question:
//! - `request`: how a call's arguments become an HTTP request (path, query, headers,
//!   JSON / form / multipart body);
//! - `reply`: how an upstream answer becomes a value (FrameX envelope unwrapping);
//! - `selection`: which endpoint serves the next request (round robin, least in flight);
//! - `health`: passive ejection with backoff, restored by successes and active checks;
//! - `client`: keep-alive HTTP/1.1 connections per endpoint (hyper), and one-off
//!   [`fetch`]es for discovery and health checks;
//! - `tls`: trust for `https://` endpoints (rustls);
//! - `headers`: which headers belong to a connection rather than a message (both edges);
//! - `keys`: the `Authorization` value each endpoint of a pool is sent;
//! - `proxy_function`: FrameX's encoding of proxy-function calls;
//! - `exchange`: one request's attempts: endpoint choice, failures classified once,
//!   retries and deadlines; `relay`: the reply's body, whole or streamed;
//! - `tunnel`: upgraded (WebSocket) connections to a pool's endpoint;
//! - an endpoint's base URL, parsed once ([`UpstreamUrl`]) when the config is loaded,
//!   with why one is refused ([`UrlError`]), is re-exported from `upstream_url`,
//!   beside this module (errors name endpoints by it: see [`Peer`]);
//! - `pool`: the [`UpstreamPool`] actor, one per pool per worker arbiter, owning that
//!   arbiter's replica; messages [`CallUpstream`] and [`Retire`];
//! - `pumps`: how a streamed body is pumped in its pool actor's context;
//! - `replica`: a pool's replica on one arbiter ([`PoolReplica`]: its connections);
//!   `forwarding`: how a replica forwards a request or a call;
//!   the arbiter's map of pool actors is [`PoolReplicas`](crate::PoolReplicas), beside
//!   this module (it follows the route table, which names pools);
//! - this module: the pool's shared state ([`PoolShared`], [`PoolId`]) and the request
//!   and response types of an exchange.

mod attempt;
mod client;
mod deadline;
mod endpoint;
mod exchange;
mod fetch;
mod forwarding;
mod h1;
mod hyper_door;
mod out_body;
pub mod headers;
pub mod keys;
pub mod health;
mod pool;
pub mod proxy_function;
mod pumps;
mod relay;
mod replica;
mod reply;
pub(crate) mod request;
pub mod selection;
mod thread_count;
pub mod tls;
pub mod tunnel;
mod tunnel_io;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, StatusCode};

use crate::call::CallContext;
use crate::peer::Peer;
use crate::stream::ChunkStream;

pub use fetch::{fetch, fetch_request, OneRequest};
pub use headers::is_hop_by_hop;
pub use keys::EndpointKeys;
pub use relay::FULL_BODY_LIMIT;
pub use h1::AnswerFields;
pub use exchange::Attempts;
pub use pool::{CallUpstream, Retire, UpstreamPool};
pub use replica::PoolReplica;
pub use selection::Balance;
pub use crate::upstream_url::{Host, Scheme, UpstreamUrl, UrlError};
/// The HTTP types of upstream requests and responses: actix-web's (`http` 0.2), so
/// fields cross between the server and the pool's client as they are.
pub use http as wire;

/// Header carrying how many proxies a request has passed through.
pub const HOPS_HEADER: &str = "x-framex-hops";
/// Header carrying the request id across hops.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Default limit of proxy hops before a request is refused as a loop.
pub const DEFAULT_MAX_HOPS: u32 = 8;
/// Default per-call deadline (FrameX's `timeout`, 600 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a pool behaves.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Base URLs of the endpoints, parsed (scheme, host, port, optional path
    /// prefix). Never containing credentials.
    pub endpoints: Vec<UpstreamUrl>,
    /// Where to connect for each endpoint, when its URL's host name was resolved
    /// ahead (one address of a name per endpoint; `Host` and TLS still use the
    /// name). Empty, or `None` for an endpoint: connect to the URL's host as it is.
    pub addresses: Vec<Option<std::net::SocketAddr>>,
    /// Deadline of a call until the reply head, and the longest idle time between two
    /// chunks of a streamed body.
    pub timeout: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Envelope statuses that count as success when unwrapping (`legal_proxy_code`).
    pub legal_codes: Vec<u16>,
    /// How requests are spread over the endpoints.
    pub balance: Balance,
    /// Requests one endpoint may serve at once (0 = no limit); when every endpoint
    /// is at its limit, calls fail with [`Error::Overloaded`](crate::Error::Overloaded) (503, `Retry-After`).
    pub max_in_flight: usize,
    /// Further attempts on other endpoints after a failure that is safe to retry.
    pub retries: u32,
    /// Trust for `https://` endpoints.
    pub tls: Arc<rustls::ClientConfig>,
}

impl PoolConfig {
    /// Where to connect for endpoint `index`, when resolved ahead.
    pub fn address(&self, index: usize) -> Option<std::net::SocketAddr> {
        self.addresses.get(index).copied().flatten()
    }

    /// A pool of one endpoint with default limits.
    pub fn single(base_url: UpstreamUrl) -> Self {
        PoolConfig {
            endpoints: vec![base_url],
            addresses: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            legal_codes: vec![200],
            balance: Balance::RoundRobin,
            max_in_flight: 0,
            retries: 1,
            tls: tls::default_config(),
        }
    }
}

/// Live counters of one endpoint, shared by every replica of the pool.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Requests being served right now (changed by every worker: a share each).
    pub in_flight: thread_count::ThreadCount,
    /// Requests sent in total (a share per worker).
    pub requests: thread_count::ThreadCount,
    /// Requests that failed to reach the endpoint or got no reply.
    pub failures: AtomicU64,
    /// Passive and active health.
    pub health: health::Health,
}

/// One endpoint as a status page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointReport {
    /// Base URL.
    pub url: String,
    /// Whether it gets traffic.
    pub healthy: bool,
    /// How long it stays ejected.
    pub ejected_for_ms: u64,
    /// Requests being served.
    pub in_flight: usize,
    /// Requests sent in total.
    pub requests: u64,
    /// Requests that failed.
    pub failures: u64,
}

impl EndpointReport {
    /// A snapshot of the endpoint at `url` with counters `stats`.
    pub fn of(url: &str, stats: &EndpointStats) -> Self {
        EndpointReport {
            url: url.to_owned(),
            healthy: stats.health.is_available(),
            ejected_for_ms: stats.health.ejected_for().as_millis() as u64,
            in_flight: stats.in_flight.get() as usize,
            requests: stats.requests.get(),
            failures: stats.failures.load(Ordering::Relaxed),
        }
    }
}

/// A pool's identity, unique for the life of the process: what replicas and route
/// tables know a pool by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(u64);

impl PoolId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        PoolId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// The state of a pool shared by its replicas on every arbiter.
#[derive(Debug)]
pub struct PoolShared {
    id: PoolId,
    /// The pool as errors name it: its endpoints' names joined by commas.
    peer: Peer,
    /// Each endpoint as errors and reports name it: its URL, and the address it was
    /// resolved to, if any (`http://api:8000 (10.0.0.7:8000)`).
    endpoint_peers: Vec<Peer>,
    config: PoolConfig,
    stats: Vec<Arc<EndpointStats>>,
    /// Metric handles per endpoint (same order as `stats`) and of the pool.
    pub(crate) metrics: Vec<crate::metrics::EndpointMetrics>,
    pub(crate) pool_metrics: crate::metrics::PoolMetrics,
    next: AtomicUsize,
    /// Retries under way (see [`PoolShared::retry_permit`]).
    retrying: AtomicUsize,
}

/// The URLs of a pool's endpoints, joined by commas (its metrics' label).
fn urls_joined(urls: &[UpstreamUrl]) -> String {
    urls.iter().map(UpstreamUrl::as_str).collect::<Vec<_>>().join(",")
}

/// Retries may be at most this share (percent) of the requests in flight …
pub const RETRY_BUDGET_PERCENT: usize = 20;
/// … but a few are always allowed, so that a quiet pool still retries.
pub const MIN_RETRY_CONCURRENCY: usize = 10;

/// Leave to retry, held until the retried exchange ends.
#[derive(Debug)]
pub struct RetryPermit {
    pool: Arc<PoolShared>,
}

impl Drop for RetryPermit {
    fn drop(&mut self) {
        self.pool.retrying.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PoolShared {
    /// Creates the shared state with fresh counters; the pool's name is its endpoint
    /// URLs joined by commas.
    pub fn new(config: PoolConfig) -> Arc<Self> {
        let stats = config.endpoints.iter().map(|_| Arc::default()).collect();
        Self::with_stats(config, stats)
    }

    /// Creates the shared state over existing counters, one per endpoint in order, so
    /// that an endpoint serving several pools has one health and one in-flight count.
    ///
    /// # Panics
    /// When `stats` and `config.endpoints` differ in length.
    pub fn with_stats(config: PoolConfig, stats: Vec<Arc<EndpointStats>>) -> Arc<Self> {
        assert_eq!(stats.len(), config.endpoints.len(), "one counter set per endpoint");
        let endpoint_peers: Vec<Peer> = config
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, url)| Peer::endpoint(url.clone(), config.address(i)))
            .collect();
        let name = endpoint_peers.iter().map(Peer::as_str).collect::<Vec<_>>().join(",");
        Arc::new(PoolShared {
            id: PoolId::next(),
            // Series by URL (not by address), so that replicas coming and going keep
            // the label set bounded.
            metrics: config.endpoints.iter().map(|url| crate::metrics::EndpointMetrics::of(url.as_str())).collect(),
            pool_metrics: crate::metrics::PoolMetrics::of(&urls_joined(&config.endpoints)),
            peer: Peer::pool(name),
            endpoint_peers,
            stats,
            config,
            next: AtomicUsize::new(0),
            retrying: AtomicUsize::new(0),
        })
    }

    /// Leave for one more retry, if the pool's retry budget allows it: retries under
    /// way stay within [`RETRY_BUDGET_PERCENT`] of the requests in flight (at least
    /// [`MIN_RETRY_CONCURRENCY`]), so that a failing pool is not hammered by retries
    /// on top of its load.
    pub fn retry_permit(self: &Arc<Self>) -> Option<RetryPermit> {
        let in_flight: usize = self
            .stats
            .iter()
            .map(|s| s.in_flight.get() as usize)
            .sum();
        let budget = (in_flight * RETRY_BUDGET_PERCENT / 100).max(MIN_RETRY_CONCURRENCY);
        let taken = self.retrying.fetch_add(1, Ordering::Relaxed);
        let permit = RetryPermit { pool: self.clone() };
        (taken < budget).then_some(permit)
    }

    /// The pool's identity.
    pub fn id(&self) -> PoolId {
        self.id
    }

    /// Endpoint `index` as errors name it (its URL, and its address when resolved).
    pub fn endpoint_peer(&self, index: usize) -> &Peer {
        &self.endpoint_peers[index]
    }

    /// The pool as errors name it (by its name).
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The pool's display name (its endpoints' names, joined by commas).
    pub fn name(&self) -> &str {
        self.peer.as_str()
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Counters per endpoint, in the order of `config().endpoints`.
    pub fn stats(&self) -> &[Arc<EndpointStats>] {
        &self.stats
    }

    /// Whether an endpoint not in `tried` is healthy (not ejected).
    fn healthy_untried(&self, tried: &[usize]) -> bool {
        let now = health::Now::default();
        self.stats
            .iter()
            .enumerate()
            .any(|(i, s)| !tried.contains(&i) && s.health.is_available_at(&now))
    }

    /// Picks the next endpoint per the pool's policy, skipping `tried`.
    fn pick(&self, tried: &[usize], turn: usize) -> Option<usize> {
        selection::pick(
            self.config.balance,
            turn,
            &self.stats,
            self.config.max_in_flight,
            tried,
        )
    }
}

/// A route's upstream side: the pool, the path on the upstream, and the key sent.
pub struct UpstreamTarget {
    /// The pool serving it.
    pub pool: Arc<PoolShared>,
    /// `Authorization` value sent to each endpoint of the pool for this route (its
    /// URL's own `auth` rules, else the global ones), chosen once the endpoint is
    /// picked.
    pub auth: EndpointKeys,
    /// Which concrete paths of the route's template may be forwarded (the proxy's
    /// `enable` / `disable` filters); `None` when every path may.
    pub filter: Option<Arc<dyn RequestPathFilter>>,
}

/// Decides, per request, whether a concrete path of an upstream route may be
/// forwarded (a filter may disable one concrete path of a published template).
pub trait RequestPathFilter: Send + Sync {
    /// Whether the canonical request `path` may be forwarded.
    fn allows(&self, path: &str) -> bool;
}

impl fmt::Debug for UpstreamTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("UpstreamTarget")
            .field("pool", &self.pool.name())
            .field("auth", &self.auth)
            .field("filtered", &self.filter.is_some())
            .finish()
    }
}

/// A request body on its way upstream.
#[derive(Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// A body read whole (small, and replayable).
    Full(Bytes),
    /// A body streamed through the bridge.
    Stream(ChunkStream),
}

/// An HTTP request to forward as it is.
#[derive(Debug)]
pub struct ForwardRequest {
    /// Method.
    pub method: Method,
    /// Path and query as received (`/api/v1/items/7?q=x`), appended to the endpoint.
    pub path_and_query: String,
    /// Headers to send, already stripped of hop-by-hop ones.
    pub headers: HeaderMap,
    /// Fields the edge adds to those (see [`AddedFields`]).
    pub added: AddedFields,
    /// Body.
    pub body: Body,
    /// Deadline, request id, hops.
    pub ctx: CallContext,
}

/// Fields the HTTP edge adds to a forwarded request's own (the forwarding ones,
/// `X-Forwarded-*` and the like), none of whose names `headers` holds: written after
/// them as they are and never looked up, so a list, not a map (four inserts into a
/// map cost a proxied GET 800 instructions).
pub type AddedFields = Vec<(http::header::HeaderName, http::header::HeaderValue)>;

/// The upstream's answer to a forwarded request, to pass back unchanged.
#[derive(Debug)]
pub struct ForwardResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers, stripped of hop-by-hop ones and of `Content-Length` (see
    /// `content_length`), written out as the HTTP/1 edge sends them (an answer passed
    /// on unread is written as these bytes; a consumer that reads or changes fields
    /// takes them as a map).
    pub headers: AnswerFields,
    /// The upstream's `Content-Length`, when one counts: not under `Transfer-Encoding`;
    /// for a `HEAD` or a `304`, the length the `GET` would have had.
    pub content_length: Option<u64>,
    /// Whether the answer is a `text/event-stream` (its first `Content-Type`).
    pub event_stream: bool,
    /// Body.
    pub body: Body,
    /// Which endpoint of the pool answered (index into its `endpoints`).
    pub endpoint: usize,
    /// Attempts the exchange made, this answer's included.
    pub attempts: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_budget() {
        let pool = PoolShared::new(PoolConfig::single("http://127.0.0.1:1".parse().unwrap()));
        let quiet: Vec<_> = (0..20).filter_map(|_| pool.retry_permit()).collect();
        assert_eq!(quiet.len(), MIN_RETRY_CONCURRENCY, "a quiet pool still retries a little");
        drop(quiet);
        pool.stats()[0].in_flight.set(100);
        let busy: Vec<_> = (0..50).filter_map(|_| pool.retry_permit()).collect();
        assert_eq!(busy.len(), 100 * RETRY_BUDGET_PERCENT / 100);
        drop(busy);
        assert!(pool.retry_permit().is_some(), "permits come back when retries end");
    }
}
