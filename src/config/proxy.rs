//! `[plugins]`: the system proxy's table (upstream URLs and their filters, pools,
//! limits, trust) and every other plugin's own.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use framex_actors::upstream::{tls, UpstreamUrl, UrlError};
use serde::{Deserialize, Deserializer};

use super::rules::{PathFilter, PathPattern, PatternError};
use super::{explain, AuthConfig, AuthRules, Unused};

/// `[plugins]`: the proxy's table, and every other plugin's own.
#[derive(Debug, Clone, Default)]
pub struct PluginsConfig {
    /// `[plugins.proxy]`.
    pub proxy: ProxyConfig,
    /// `[plugins.<other>]`: each plugin reads its own keys.
    pub other: BTreeMap<String, toml::Table>,
}

impl PluginsConfig {
    /// Plugin `name`'s own `[plugins.<name>]` table as JSON (`null` when absent), for
    /// [`framex_actors::Ctx::config`].
    pub fn table_json(&self, name: &str) -> serde_json::Value {
        self.other
            .get(name)
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

impl<'de> Deserialize<'de> for PluginsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut tables = BTreeMap::<String, toml::Value>::deserialize(deserializer)?;
        let proxy = match tables.remove("proxy") {
            Some(value) => ProxyConfig::deserialize(value).map_err(|e| {
                serde::de::Error::custom(format!("in [plugins.proxy]: {}", e.message()))
            })?,
            None => ProxyConfig::default(),
        };
        let mut other = BTreeMap::new();
        for (name, value) in tables {
            match value {
                toml::Value::Table(t) => {
                    other.insert(name, t);
                }
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "plugins.{name} must be a table ([plugins.{name}])"
                    )))
                }
            }
        }
        Ok(PluginsConfig { proxy, other })
    }
}

/// `[plugins.proxy]`: the system proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Upstream base URLs: a list, or a table `url = { enable, disable, docs_path }`.
    /// Default: none.
    pub proxy_urls: ProxyUrls,
    /// With the list form: path patterns to proxy (absent = all).
    pub white_list: Option<Vec<String>>,
    /// Paths whose replies are always streamed. Default: none.
    pub force_stream_apis: Vec<String>,
    /// Seconds to wait for an upstream's reply head, and the longest idle time between
    /// two chunks of a stream (never the total length of a stream). Default 600.
    pub timeout: f64,
    /// Keys this instance sends upstream (`Authorization: <key>`), by upstream path,
    /// to the upstream URLs serving the path; a URL's own `auth` (table form of
    /// `proxy_urls`) beats them, and document requests get them only when a single
    /// URL is configured (see [`ProxyConfig::docs_key`]).
    pub auth: AuthConfig,
    /// Functions called through FrameX's `/api/v1/proxy/remote`: url → names (each
    /// URL parsed when the config is loaded, and one of `proxy_urls`).
    #[serde(deserialize_with = "proxy_function_urls")]
    pub proxy_functions: BTreeMap<UpstreamUrl, Vec<String>>,
    /// *Extension.* Seconds allowed to open a connection. Default 5.
    pub connect_timeout: f64,
    /// *Extension.* Seconds between re-discoveries of each upstream; 0 = never.
    /// Default 30.
    pub discovery_interval: f64,
    /// *Extension.* Proxy hops after which a request is refused as a loop (508).
    /// Default 8.
    pub max_hops: u32,
    /// *Extension.* How a pool spreads requests over the URLs that serve the same
    /// operation: `"round_robin"` or `"least_inflight"`. Default `"round_robin"`;
    /// a table entry may set its own.
    pub balance: BalancePolicy,
    /// *Extension.* Requests one upstream URL may serve at once; when every URL of a
    /// pool is at its limit, calls get 503 with `Retry-After`. 0 = no limit. Default
    /// [`DEFAULT_MAX_IN_FLIGHT`]: a finite bound, so that clients (HTTP/2 streams
    /// included) cannot hold an unbounded number of upstream requests.
    pub max_in_flight: usize,
    /// *Extension.* Further attempts on other URLs of a pool after a failure that is
    /// safe to retry. Default 1.
    pub retries: u32,
    /// *Extension.* Path probed on every upstream URL (`GET`, any non-5xx answer
    /// passes) to bring ejected URLs back and eject dead ones. Empty = passive health
    /// only (default).
    pub health_check_path: String,
    /// *Extension.* Seconds between two active health checks. Default 5.
    pub health_check_interval: f64,
    /// *Extension.* A PEM file of CA certificates trusted for `https://` upstreams
    /// besides Mozilla's roots (an internal or self-signed authority). Default: none.
    pub ca_file: String,
    /// *Extension.* Largest OpenAPI document read from an upstream, in bytes, and the
    /// most its operations (once per path that publishes them) and components may
    /// add to our merged document; a document over it is refused. Default 16 MiB.
    pub max_document_size: usize,
    /// *Extension.* Seconds between two resolutions of the host names in
    /// `proxy_urls` (each name stands for every address it resolves to). Default 5.
    pub dns_refresh: f64,
    /// *Extension.* DNS servers (`IP:PORT`) asked for those names instead of the
    /// system's resolver. Default: none (the system's).
    pub dns_servers: Vec<String>,
    /// *Extension.* Seconds a WebSocket tunnel may carry no byte in either direction
    /// before both sides are closed. Default 600.
    pub websocket_idle_timeout: f64,
    /// FrameX-kit's Ray ingress settings: accepted, not used.
    pub ingress_config: Unused,
    /// *Extension.* `[plugins.proxy.migrate]`: per route template, who answers a
    /// route both a local plugin and an upstream serve. Default: none (`local`).
    pub migrate: super::MigrateConfig,
    /// *Extension.* `[plugins.proxy.cache]`: proxied paths whose answers the request
    /// cache keeps (path pattern → `{ ttl }`). Default: none.
    pub cache: super::ProxyCacheRules,
    /// The trust `ca_file` gives, read once when the config is validated.
    #[serde(skip)]
    pub(super) trust: Option<Arc<tls::ClientConfig>>,
}

/// How a pool picks the URL for the next request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum BalancePolicy {
    /// Each URL in turn.
    #[default]
    #[serde(rename = "round_robin")]
    RoundRobin,
    /// The less busy of two URLs (power of two choices).
    #[serde(rename = "least_inflight", alias = "least_in_flight")]
    LeastInflight,
}

impl From<BalancePolicy> for framex_actors::upstream::Balance {
    fn from(policy: BalancePolicy) -> Self {
        match policy {
            BalancePolicy::RoundRobin => Self::RoundRobin,
            BalancePolicy::LeastInflight => Self::LeastInFlight,
        }
    }
}

impl fmt::Display for BalancePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BalancePolicy::RoundRobin => "round_robin",
            BalancePolicy::LeastInflight => "least_inflight",
        })
    }
}

/// Requests one upstream URL serves at once unless `max_in_flight` says otherwise
/// (Envoy's default circuit-breaker bound on a cluster's requests).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            proxy_urls: ProxyUrls::default(),
            white_list: None,
            force_stream_apis: Vec::new(),
            timeout: 600.0,
            auth: AuthConfig::default(),
            proxy_functions: BTreeMap::new(),
            connect_timeout: 5.0,
            discovery_interval: 30.0,
            max_hops: 8,
            balance: BalancePolicy::RoundRobin,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retries: 1,
            health_check_path: String::new(),
            health_check_interval: 5.0,
            ca_file: String::new(),
            max_document_size: crate::discovery::DEFAULT_MAX_PUBLISHED,
            dns_refresh: 5.0,
            dns_servers: Vec::new(),
            websocket_idle_timeout: 600.0,
            ingress_config: None,
            migrate: BTreeMap::new(),
            cache: BTreeMap::new(),
            trust: None,
        }
    }
}

impl ProxyConfig {
    /// The upstreams, normalized from either form of `proxy_urls`.
    pub fn upstreams(&self) -> Vec<UpstreamConfig> {
        match &self.proxy_urls {
            ProxyUrls::List(urls) => urls
                .iter()
                .map(|url| UpstreamConfig {
                    url: url.clone(),
                    enable: self.white_list.clone().unwrap_or_else(|| vec!["*".to_owned()]),
                    disable: Vec::new(),
                    docs_path: DEFAULT_DOCS_PATH.to_owned(),
                    balance: self.balance,
                    websocket: Vec::new(),
                    auth: AuthRules::default(),
                })
                .collect(),
            ProxyUrls::Table(table) => table
                .iter()
                .map(|(url, entry)| UpstreamConfig {
                    url: url.clone(),
                    enable: entry.enable.clone(),
                    disable: entry.disable.clone(),
                    docs_path: entry.docs_path.clone(),
                    balance: entry.balance.unwrap_or(self.balance),
                    websocket: entry.websocket.clone(),
                    auth: entry.auth.clone(),
                })
                .collect(),
        }
    }

    /// How often names in `proxy_urls` are resolved again.
    pub fn dns_refresh(&self) -> Duration {
        Duration::from_secs_f64(self.dns_refresh)
    }

    /// The DNS servers to ask (checked at load; an unparsable one is left out).
    pub fn dns_servers(&self) -> Vec<std::net::SocketAddr> {
        self.dns_servers.iter().filter_map(|s| s.parse().ok()).collect()
    }

    /// `timeout` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// `websocket_idle_timeout` as a duration.
    pub fn websocket_idle_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.websocket_idle_timeout).unwrap_or(Duration::from_secs(600))
    }

    /// `connect_timeout` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout)
    }

    /// `discovery_interval` as a duration (`None` = never re-discover).
    pub fn discovery_interval(&self) -> Option<Duration> {
        (self.discovery_interval > 0.0).then(|| Duration::from_secs_f64(self.discovery_interval))
    }

    /// The TLS trust for `https://` upstreams: Mozilla's roots plus `ca_file`.
    ///
    /// # Errors
    /// `ca_file` unreadable or holding no usable certificate.
    pub fn tls(&self) -> Result<Arc<tls::ClientConfig>, String> {
        if let Some(trust) = &self.trust {
            return Ok(trust.clone());
        }
        if self.ca_file.is_empty() {
            return Ok(tls::default_config());
        }
        let pem = std::fs::read(&self.ca_file)
            .map_err(|e| format!("plugins.proxy.ca_file '{}': {e}", self.ca_file))?;
        tls::client_config(Some(&pem))
            .map_err(|e| format!("plugins.proxy.ca_file '{}': {e}", self.ca_file))
    }

    /// The active health check: path and interval (`None` = passive health only).
    pub fn health_check(&self) -> Option<(&str, Duration)> {
        (!self.health_check_path.is_empty()).then(|| {
            (
                self.health_check_path.as_str(),
                Duration::from_secs_f64(self.health_check_interval),
            )
        })
    }
}

/// Where upstreams publish their OpenAPI document unless told otherwise.
pub const DEFAULT_DOCS_PATH: &str = "/api/v1/openapi.json";

/// An upstream URL of key `key`, parsed (see [`UpstreamUrl`]); refused with
/// `"<key>: '<url>' <why>"`, the URL escaped (and its credentials, when that is
/// the refusal, hidden).
///
/// # Errors
/// Why the URL cannot be used, naming the key.
pub fn parse_upstream_url(key: &str, raw: &str) -> Result<UpstreamUrl, String> {
    UpstreamUrl::parse(raw).map_err(|error| {
        let (shown, hint) = match &error {
            UrlError::Credentials => (without_credentials(raw), "; put keys in [plugins.proxy.auth] rules".to_owned()),
            other => (
                raw.escape_default().to_string(),
                std::error::Error::source(other).map_or_else(String::new, |cause| format!(" ({cause})")),
            ),
        };
        format!("{key}: '{shown}' {error}{hint}")
    })
}

/// `raw` with what comes before the last `@` of its authority shown as `***`, so
/// that a refused URL's password is not echoed.
fn without_credentials(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |at| at + 3);
    let end = raw[start..].find(['/', '?', '#']).map_or(raw.len(), |at| start + at);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]).escape_default().to_string(),
        None => raw.escape_default().to_string(),
    }
}

/// `proxy_functions`: its URL keys parsed.
fn proxy_function_urls<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<UpstreamUrl, Vec<String>>, D::Error> {
    BTreeMap::<String, Vec<String>>::deserialize(deserializer)?
        .into_iter()
        .map(|(url, names)| Ok((parse_upstream_url("plugins.proxy.proxy_functions", &url)?, names)))
        .collect::<Result<_, String>>()
        .map_err(serde::de::Error::custom)
}

/// `proxy_urls` in either of FrameX's forms, each URL parsed when the config is
/// loaded (trailing slashes dropped).
#[derive(Debug, Clone)]
pub enum ProxyUrls {
    /// `proxy_urls = ["http://a", "http://b"]`
    List(Vec<UpstreamUrl>),
    /// `[plugins.proxy.proxy_urls."http://a"] enable = [...] ...`, in the order of
    /// the keys as written.
    Table(Vec<(UpstreamUrl, UpstreamEntry)>),
}

impl<'de> Deserialize<'de> for ProxyUrls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let parse = |url: &str| parse_upstream_url("plugins.proxy.proxy_urls", url).map_err(D::Error::custom);
        match toml::Value::deserialize(deserializer)? {
            toml::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(url) => parse(&url),
                    other => Err(D::Error::custom(format!(
                        "proxy_urls: expected a URL string, found {other}"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(ProxyUrls::List),
            toml::Value::Table(table) => table
                .into_iter()
                .map(|(url, entry)| {
                    let parsed = parse(&url)?;
                    UpstreamEntry::deserialize(entry)
                        .map(|e| (parsed, e))
                        .map_err(|e| {
                            D::Error::custom(format!(
                                "proxy_urls.\"{url}\": {}",
                                explain(e.message())
                            ))
                        })
                })
                .collect::<Result<_, _>>()
                .map(ProxyUrls::Table),
            other => Err(D::Error::custom(format!(
                "proxy_urls must be a list of URLs or a table of url = {{ enable, disable, docs_path }}, found {other}"
            ))),
        }
    }
}

impl Default for ProxyUrls {
    fn default() -> Self {
        ProxyUrls::List(Vec::new())
    }
}

/// One entry of the table form of `proxy_urls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamEntry {
    /// Path patterns to proxy. Default `["*"]`.
    pub enable: Vec<String>,
    /// Path patterns never to proxy (beats `enable`). Default: none.
    pub disable: Vec<String>,
    /// Where the upstream's OpenAPI document is. Default `/api/v1/openapi.json`.
    pub docs_path: String,
    /// *Extension.* The balancing policy of the pools this URL leads (overrides
    /// `[plugins.proxy] balance`).
    pub balance: Option<BalancePolicy>,
    /// *Extension.* Path patterns this URL serves as WebSockets: an upgrade request
    /// to one is tunnelled here (WebSocket routes are not in OpenAPI documents).
    /// Default: none.
    pub websocket: Vec<String>,
    /// *Extension.* Keys sent to this URL only (`Authorization: <key>`), by path
    /// pattern (the first key of the most specific rule), its document request
    /// included; they beat `[plugins.proxy.auth]` for this URL. Default: none.
    pub auth: AuthRules,
}

impl Default for UpstreamEntry {
    fn default() -> Self {
        UpstreamEntry {
            enable: vec!["*".to_owned()],
            disable: Vec::new(),
            docs_path: DEFAULT_DOCS_PATH.to_owned(),
            balance: None,
            websocket: Vec::new(),
            auth: AuthRules::default(),
        }
    }
}

/// One upstream, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Base URL, parsed.
    pub url: UpstreamUrl,
    /// Path patterns to proxy.
    pub enable: Vec<String>,
    /// Path patterns never to proxy.
    pub disable: Vec<String>,
    /// Where its OpenAPI document is.
    pub docs_path: String,
    /// Balancing policy of the pools this URL comes first in.
    pub balance: BalancePolicy,
    /// Path patterns it serves as WebSockets.
    pub websocket: Vec<String>,
    /// Keys sent to it only (its entry's `auth`); none for the list form.
    pub auth: AuthRules,
}

impl UpstreamConfig {
    /// Whether the route template `path` is proxied; the error says why not.
    ///
    /// # Errors
    /// The reason, naming the rule that excludes it.
    pub fn allows(&self, path: &str) -> Result<(), String> {
        self.filter().map_err(|e| e.to_string())?.allows_template(path)
    }

    /// The parsed `enable` / `disable` filters (checked at load).
    ///
    /// # Errors
    /// An invalid pattern.
    pub fn filter(&self) -> Result<PathFilter, PatternError> {
        PathFilter::new(&self.enable, &self.disable)
    }
}

/// Checks every path pattern of `[plugins.proxy]`'s filters, naming the key of the
/// first invalid one.
///
/// # Errors
/// `"<key>: invalid path pattern ..."`.
pub fn check_filters(proxy: &ProxyConfig) -> Result<(), String> {
    if let Some(list) = &proxy.white_list {
        PathFilter::new(list, &[]).map_err(|e| format!("plugins.proxy.white_list: {e}"))?;
    }
    if let ProxyUrls::Table(table) = &proxy.proxy_urls {
        for (url, entry) in table {
            PathFilter::new(&entry.enable, &entry.disable)
                .map_err(|e| format!("plugins.proxy.proxy_urls.\"{url}\": {e}"))?;
            for pattern in &entry.websocket {
                PathPattern::parse(pattern)
                    .map_err(|e| format!("plugins.proxy.proxy_urls.\"{url}\".websocket: {e}"))?;
            }
        }
    }
    Ok(())
}
