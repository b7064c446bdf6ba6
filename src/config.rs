//! FrameX's `config.toml`, strictly validated, with `SECTION__KEY` env overrides.
//!
//! The schema is FrameX-kit's (0.4.x); keys marked *extension* are framex-rs's own.
//! Unknown keys are an error naming the file, the key and the allowed keys, so a typo
//! never silently falls back to a default.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use framex_actors::upstream::tls;
use serde::{Deserialize, Deserializer};

/// Top-level keys, in the order the docs list them (env overrides look only at these).
const TOP_LEVEL: &[&str] = &["load_builtin_plugins", "load_plugins", "server", "auth", "plugins"];

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file (or other origin) of the config.
        origin: String,
        /// What is wrong: the key and what is allowed.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Built-in plugins to load (`echo`, `proxy`). Default: none.
    pub load_builtin_plugins: Vec<String>,
    /// Other plugins to load by name (Rust plugins compiled in or given by an
    /// embedder). Default: none.
    pub load_plugins: Vec<String>,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[auth]`: keys protecting this instance's paths.
    pub auth: AuthConfig,
    /// `[plugins.<name>]`.
    pub plugins: PluginsConfig,
    /// FrameX-kit's Ray ingress defaults: accepted, not used.
    pub base_ingress_config: Unused,
    /// FrameX-kit's `[log]`: accepted, not used (framex-rs logs through `RUST_LOG`).
    pub log: Unused,
    /// FrameX-kit's `[test]`: accepted, not used.
    pub test: Unused,
    /// FrameX-kit's `[docs]`: accepted, not used.
    pub docs: Unused,
    /// FrameX-kit's `[sentry]`: accepted, not used.
    pub sentry: Unused,
    /// FrameX-kit's `[repository]`: accepted, not used.
    pub repository: Unused,
    /// FrameX-kit's `[cache]`: accepted, not used.
    pub cache: Unused,
    /// The file this config was read from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `"127.0.0.1"`.
    pub host: String,
    /// Port to listen on (0 = any free port). Default `8080`.
    pub port: u16,
    /// Let `call_remote_api` reach APIs that no local plugin serves through the
    /// proxy. Default `false`.
    pub enable_proxy: bool,
    /// Statuses of an upstream FrameX envelope that count as success. Default `[200]`.
    pub legal_proxy_code: Vec<u16>,
    /// *Extension.* Worker threads. Default: one per CPU.
    pub workers: Option<usize>,
    /// *Extension.* Largest request body accepted, in bytes (larger → 413).
    /// Default 64 MiB.
    pub max_body_size: usize,
    /// *Extension.* Seconds that SIGTERM/SIGINT waits for in-flight requests and
    /// streams to finish before closing them. Default 30.
    pub shutdown_timeout: u64,
    /// *Extension.* One log line per request (target `framex::access`, info level):
    /// peer, method, path without the query, status, time to the response head,
    /// request id. Default off.
    pub access_log: bool,
    /// FrameX-kit's Ray dashboard address: accepted, not used.
    pub dashboard_host: Unused,
    /// FrameX-kit's Ray dashboard port: accepted, not used.
    pub dashboard_port: Unused,
    /// FrameX-kit's Ray switch: accepted, not used.
    pub use_ray: Unused,
    /// FrameX-kit's Ray CPU count: accepted, not used (see `workers`).
    pub num_cpus: Unused,
    /// FrameX-kit's log filter: accepted, not used.
    pub excluded_log_paths: Unused,
    /// FrameX-kit's Ray ingress settings: accepted, not used.
    pub ingress_config: Unused,
    /// FrameX-kit's revision label: accepted, not used.
    pub reversion: Unused,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            enable_proxy: false,
            legal_proxy_code: vec![200],
            workers: None,
            max_body_size: 64 * 1024 * 1024,
            shutdown_timeout: 30,
            access_log: false,
            dashboard_host: None,
            dashboard_port: None,
            use_ray: None,
            num_cpus: None,
            excluded_log_paths: None,
            ingress_config: None,
            reversion: None,
        }
    }
}

/// `[auth]` and `[plugins.proxy.auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Path pattern → keys. Patterns: an exact path, `*` or `/*` for every path, or
    /// `prefix/*` for every path under `prefix/`. Default: no rules.
    pub rules: AuthRules,
    /// FrameX-kit's OAuth settings: accepted, not used by framex-rs.
    pub oauth: Unused,
}

/// A FrameX-kit key that framex-rs accepts (so FrameX configs load unchanged) but
/// does not use; `framex check` lists the ones present.
pub type Unused = Option<toml::Value>;

/// Auth rules: which keys go with which paths. Never printed with their keys.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct AuthRules(BTreeMap<String, Vec<String>>);

impl fmt::Debug for AuthRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, format!("<{} keys>", v.len()))))
            .finish()
    }
}

/// Whether a rule's pattern covers `path`, as FrameX matches them: `*` or `/*` cover
/// every path, `prefix/*` every path starting with `prefix/`, anything else only
/// itself.
pub fn rule_matches(pattern: &str, path: &str) -> bool {
    match pattern {
        "*" | "/*" => true,
        _ => match pattern.strip_suffix("/*") {
            Some(prefix) => path.starts_with(prefix) && path[prefix.len()..].starts_with('/'),
            None => pattern == path,
        },
    }
}

impl AuthRules {
    /// Rules from `(pattern, keys)` pairs.
    pub fn new<I, K>(rules: I) -> Self
    where
        I: IntoIterator<Item = (K, Vec<String>)>,
        K: Into<String>,
    {
        AuthRules(rules.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The keys of the most specific rule covering `path`: an exact rule beats a
    /// prefix, a longer prefix beats a shorter one.
    pub fn keys_for(&self, path: &str) -> Option<&[String]> {
        self.0
            .iter()
            .filter(|(pattern, _)| rule_matches(pattern, path))
            .max_by_key(|(pattern, _)| {
                let exact = !pattern.ends_with('*');
                (exact, pattern.len())
            })
            .map(|(_, keys)| keys.as_slice())
    }

    /// The key sent upstream for `path`: the first key of its rule.
    pub fn first_key_for(&self, path: &str) -> Option<&str> {
        self.keys_for(path)?.first().map(String::as_str)
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns, with how many keys each has (for summaries; never the keys).
    pub fn patterns(&self) -> impl Iterator<Item = (&str, usize)> {
        self.0.iter().map(|(p, k)| (p.as_str(), k.len()))
    }
}

/// `[plugins]`: the proxy's table, and every other plugin's own.
#[derive(Debug, Clone, Default)]
pub struct PluginsConfig {
    /// `[plugins.proxy]`.
    pub proxy: ProxyConfig,
    /// `[plugins.<other>]`: each plugin reads its own keys.
    pub other: BTreeMap<String, toml::Table>,
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
    /// Keys this instance sends upstream (`Authorization: <key>`), by upstream path.
    pub auth: AuthConfig,
    /// Functions called through FrameX's `/api/v1/proxy/remote`: url → names.
    pub proxy_functions: BTreeMap<String, Vec<String>>,
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
    /// pool is at its limit, calls get 503 with `Retry-After`. 0 = no limit (default).
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
    /// FrameX-kit's Ray ingress settings: accepted, not used.
    pub ingress_config: Unused,
    /// The trust `ca_file` gives, read once when the config is validated.
    #[serde(skip)]
    trust: Option<Arc<tls::ClientConfig>>,
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
            max_in_flight: 0,
            retries: 1,
            health_check_path: String::new(),
            health_check_interval: 5.0,
            ca_file: String::new(),
            max_document_size: crate::discovery::DEFAULT_MAX_PUBLISHED,
            ingress_config: None,
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
                    url: normalize_url(url),
                    enable: self.white_list.clone().unwrap_or_else(|| vec!["*".to_owned()]),
                    disable: Vec::new(),
                    docs_path: DEFAULT_DOCS_PATH.to_owned(),
                    balance: self.balance,
                })
                .collect(),
            ProxyUrls::Table(table) => table
                .iter()
                .map(|(url, entry)| UpstreamConfig {
                    url: normalize_url(url),
                    enable: entry.enable.clone(),
                    disable: entry.disable.clone(),
                    docs_path: entry.docs_path.clone(),
                    balance: entry.balance.unwrap_or(self.balance),
                })
                .collect(),
        }
    }

    /// `timeout` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
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

/// A positive, finite number of seconds (NaN and infinity are not).
fn positive(seconds: f64) -> bool {
    seconds.is_finite() && seconds > 0.0
}

fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// `proxy_urls` in either of FrameX's forms.
#[derive(Debug, Clone)]
pub enum ProxyUrls {
    /// `proxy_urls = ["http://a", "http://b"]`
    List(Vec<String>),
    /// `[plugins.proxy.proxy_urls."http://a"] enable = [...] ...`
    Table(BTreeMap<String, UpstreamEntry>),
}

impl<'de> Deserialize<'de> for ProxyUrls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match toml::Value::deserialize(deserializer)? {
            toml::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(url) => Ok(url),
                    other => Err(D::Error::custom(format!(
                        "proxy_urls: expected a URL string, found {other}"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(ProxyUrls::List),
            toml::Value::Table(table) => table
                .into_iter()
                .map(|(url, entry)| {
                    UpstreamEntry::deserialize(entry)
                        .map(|e| (url.clone(), e))
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
}

impl Default for UpstreamEntry {
    fn default() -> Self {
        UpstreamEntry {
            enable: vec!["*".to_owned()],
            disable: Vec::new(),
            docs_path: DEFAULT_DOCS_PATH.to_owned(),
            balance: None,
        }
    }
}

/// One upstream, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Base URL, without a trailing slash.
    pub url: String,
    /// Path patterns to proxy.
    pub enable: Vec<String>,
    /// Path patterns never to proxy.
    pub disable: Vec<String>,
    /// Where its OpenAPI document is.
    pub docs_path: String,
    /// Balancing policy of the pools this URL comes first in.
    pub balance: BalancePolicy,
}

impl UpstreamConfig {
    /// Whether `path` is proxied; the error says why not.
    ///
    /// # Errors
    /// The reason, naming the rule that excludes it.
    pub fn allows(&self, path: &str) -> Result<(), String> {
        if let Some(rule) = self.disable.iter().find(|r| rule_matches(r, path)) {
            return Err(format!("disabled by rule '{rule}'"));
        }
        if self.enable.iter().any(|r| rule_matches(r, path)) {
            Ok(())
        } else {
            Err("not enabled by any rule".to_owned())
        }
    }
}

impl Config {
    /// Loads `path`, or `./config.toml` when `path` is `None` and it exists, or the
    /// defaults; then applies env overrides and validates.
    ///
    /// # Errors
    /// An unreadable file, bad TOML, an unknown key, an invalid value.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`Config::load`], with the environment given.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let default = Path::new("config.toml");
        let path = match path {
            Some(p) => Some(p),
            None if default.exists() => Some(default),
            None => None,
        };
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (String::new(), "default config".to_owned()),
        };
        let mut config = Self::parse(&text, &origin, env)?;
        config.source = path.map(Path::to_owned);
        Ok(config)
    }

    /// Parses a config from text (no env overrides).
    ///
    /// # Errors
    /// Bad TOML, an unknown key, an invalid value; messages start with `origin`.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::parse(text, origin, std::iter::empty())
    }

    fn parse(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        apply_env(&mut table, env).map_err(invalid)?;
        let config = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| invalid(explain(e.message())))?;
        config.validate().map_err(invalid)
    }

    /// Checks what the types cannot.
    fn validate(mut self) -> Result<Self, String> {
        let proxy = &self.plugins.proxy;
        let upstreams = proxy.upstreams();
        for upstream in &upstreams {
            let rest = upstream
                .url
                .strip_prefix("http://")
                .or_else(|| upstream.url.strip_prefix("https://"))
                .ok_or_else(|| {
                    format!(
                        "plugins.proxy.proxy_urls: '{}' must start with http:// or https://",
                        upstream.url
                    )
                })?;
            let authority = rest.split('/').next().unwrap_or("");
            if authority.contains('@') {
                return Err(
                    "plugins.proxy.proxy_urls: a URL must not hold credentials; put keys in [plugins.proxy.auth] rules"
                        .to_owned(),
                );
            }
            if authority.is_empty() {
                return Err(format!("plugins.proxy.proxy_urls: '{}' has no host", upstream.url));
            }
            if !upstream.docs_path.starts_with('/') {
                return Err(format!(
                    "plugins.proxy.proxy_urls.\"{}\".docs_path must start with '/'",
                    upstream.url
                ));
            }
        }
        for url in proxy.proxy_functions.keys() {
            if !upstreams.iter().any(|u| u.url == normalize_url(url)) {
                return Err(format!(
                    "plugins.proxy.proxy_functions: '{url}' is not one of proxy_urls"
                ));
            }
        }
        if !positive(proxy.timeout) {
            return Err("plugins.proxy.timeout must be a positive number of seconds".to_owned());
        }
        if !positive(proxy.connect_timeout) {
            return Err("plugins.proxy.connect_timeout must be a positive number of seconds".to_owned());
        }
        if proxy.discovery_interval < 0.0 {
            return Err("plugins.proxy.discovery_interval must be 0 (never) or positive".to_owned());
        }
        if !proxy.health_check_path.is_empty() && !proxy.health_check_path.starts_with('/') {
            return Err("plugins.proxy.health_check_path must be empty or start with '/'".to_owned());
        }
        if !positive(proxy.health_check_interval) {
            return Err("plugins.proxy.health_check_interval must be a positive number of seconds".to_owned());
        }
        if proxy.max_document_size == 0 {
            return Err("plugins.proxy.max_document_size must be at least 1 byte".to_owned());
        }
        let trust = proxy.tls()?;
        if self.server.legal_proxy_code.is_empty() {
            return Err("server.legal_proxy_code must list at least one status".to_owned());
        }
        self.plugins.proxy.trust = Some(trust);
        Ok(self)
    }

    /// What `framex check` prints: plugins, address, upstreams with their filters,
    /// auth rule patterns with how many keys each has (never the keys).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let source = self
            .source
            .as_ref()
            .map_or_else(|| "built-in defaults".to_owned(), |p| p.display().to_string());
        out.push_str(&format!("config: {source}\n"));
        out.push_str(&format!("listen: {}:{}\n", self.server.host, self.server.port));
        out.push_str(&format!("builtin plugins: {}\n", list(&self.load_builtin_plugins)));
        out.push_str(&format!("plugins: {}\n", list(&self.load_plugins)));
        out.push_str(&format!("enable_proxy: {}\n", self.server.enable_proxy));
        for (pattern, keys) in self.auth.rules.patterns() {
            out.push_str(&format!("auth rule: {pattern} ({keys} keys)\n"));
        }
        let unused = self.unused_keys();
        if !unused.is_empty() {
            out.push_str(&format!("FrameX-kit keys accepted but unused: {}\n", unused.join(", ")));
        }
        if self.load_builtin_plugins.iter().any(|p| p == "proxy") {
            let proxy = &self.plugins.proxy;
            for u in proxy.upstreams() {
                out.push_str(&format!(
                    "upstream: {} docs={} enable={} disable={} balance={}\n",
                    u.url,
                    u.docs_path,
                    list(&u.enable),
                    list(&u.disable),
                    u.balance
                ));
            }
            out.push_str(&format!(
                "pools: retries {}, max in flight {}, health check {}\n",
                proxy.retries,
                if proxy.max_in_flight == 0 {
                    "unlimited".to_owned()
                } else {
                    proxy.max_in_flight.to_string()
                },
                proxy.health_check().map_or_else(
                    || "passive only".to_owned(),
                    |(path, every)| format!("GET {path} every {}s", every.as_secs_f64())
                )
            ));
            out.push_str(&format!(
                "proxy timeout: {}s, connect timeout: {}s, re-discovery: {}\n",
                proxy.timeout,
                proxy.connect_timeout,
                proxy
                    .discovery_interval()
                    .map_or_else(|| "never".to_owned(), |d| format!("every {}s", d.as_secs_f64()))
            ));
            for (pattern, keys) in proxy.auth.rules.patterns() {
                out.push_str(&format!("upstream auth rule: {pattern} ({keys} keys)\n"));
            }
            if !proxy.ca_file.is_empty() {
                out.push_str(&format!("https trust: built-in roots + {}\n", proxy.ca_file));
            }
            for (url, names) in &proxy.proxy_functions {
                for name in names {
                    out.push_str(&format!("proxy function: {name} -> {url}\n"));
                }
            }
        }
        out
    }
}

impl Config {
    /// The FrameX-kit keys present that framex-rs accepts but does not use.
    pub fn unused_keys(&self) -> Vec<&'static str> {
        let s = &self.server;
        [
            ("base_ingress_config", &self.base_ingress_config),
            ("log", &self.log),
            ("test", &self.test),
            ("docs", &self.docs),
            ("sentry", &self.sentry),
            ("repository", &self.repository),
            ("cache", &self.cache),
            ("auth.oauth", &self.auth.oauth),
            ("server.dashboard_host", &s.dashboard_host),
            ("server.dashboard_port", &s.dashboard_port),
            ("server.use_ray", &s.use_ray),
            ("server.num_cpus", &s.num_cpus),
            ("server.excluded_log_paths", &s.excluded_log_paths),
            ("server.ingress_config", &s.ingress_config),
            ("server.reversion", &s.reversion),
            ("plugins.proxy.ingress_config", &self.plugins.proxy.ingress_config),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k)
        .collect()
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// serde says "unknown field `x`, expected one of `a`, `b`"; say "unknown key".
fn explain(message: &str) -> String {
    message
        .replace("unknown field", "unknown key")
        .replace("expected one of", "allowed keys are")
}

/// Applies `SECTION__KEY=value` overrides (case-insensitive, nested by `__`) for the
/// known top-level keys; values parse as TOML when they can, else are strings.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), String> {
    let mut overrides: Vec<(Vec<String>, String)> = env
        .into_iter()
        .filter_map(|(name, value)| {
            let path: Vec<String> = name.split("__").map(str::to_lowercase).collect();
            TOP_LEVEL.contains(&path[0].as_str()).then_some((path, value))
        })
        .filter(|(path, _)| path.len() > 1 || path[0].starts_with("load_"))
        .collect();
    overrides.sort();
    for (path, raw) in overrides {
        let value = parse_env_value(&raw);
        let (last, parents) = path.split_last().expect("at least one segment");
        let mut current = &mut *table;
        for segment in parents {
            let entry = current
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            current = entry.as_table_mut().ok_or_else(|| {
                format!("env {}: '{segment}' is not a table", path.join("__").to_uppercase())
            })?;
        }
        current.insert(last.clone(), value);
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|j| toml::Value::try_from(j).ok())
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml_str(text, "config.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!((c.server.host.as_str(), c.server.port), ("127.0.0.1", 8080));
        assert_eq!(c.server.legal_proxy_code, vec![200]);
        assert!(!c.server.enable_proxy);
        assert_eq!(c.plugins.proxy.timeout(), Duration::from_secs(600));
    }

    #[test]
    fn unknown_keys_name_the_key_and_what_is_allowed() {
        let err = parse("[server]\nprot = 1").unwrap_err();
        assert!(err.starts_with("config.toml"), "{err}");
        assert!(err.contains("prot") && err.contains("port") && err.contains("host"), "{err}");
        let err = parse("lod_plugins = []").unwrap_err();
        assert!(err.contains("lod_plugins") && err.contains("load_plugins"), "{err}");
        let err = parse("[plugins.proxy]\ntimout = 3").unwrap_err();
        assert!(err.contains("timout") && err.contains("timeout"), "{err}");
    }

    #[test]
    fn both_forms_of_proxy_urls_normalize() {
        let c = parse(
            r#"
[plugins.proxy]
proxy_urls = ["http://a:1/", "http://b:2"]
white_list = ["/api/v1/x/*"]
"#,
        )
        .unwrap();
        let u = c.plugins.proxy.upstreams();
        assert_eq!(u[0].url, "http://a:1");
        assert_eq!(u[0].enable, vec!["/api/v1/x/*"]);
        assert!(u[1].allows("/api/v1/x/y").is_ok());
        assert!(u[1].allows("/api/v1/z").is_err());

        let c = parse(
            r#"
[plugins.proxy.proxy_urls."http://a:1"]
disable = ["/api/v1/hidden"]
docs_path = "/openapi.json"
"#,
        )
        .unwrap();
        let u = &c.plugins.proxy.upstreams()[0];
        assert_eq!(u.docs_path, "/openapi.json");
        assert!(u.allows("/api/v1/open").is_ok());
        assert_eq!(u.allows("/api/v1/hidden").unwrap_err(), "disabled by rule '/api/v1/hidden'");
        let err = parse("[plugins.proxy.proxy_urls.\"http://a:1\"]\nenabled = []").unwrap_err();
        assert!(err.contains("enable"), "{err}");
    }

    #[test]
    fn pool_settings_parse_and_table_entries_override_the_policy() {
        let c = parse(
            r#"
[plugins.proxy]
balance = "least_inflight"
max_in_flight = 4
health_check_path = "/health"
[plugins.proxy.proxy_urls."http://a:1"]
[plugins.proxy.proxy_urls."http://b:1"]
balance = "round_robin"
"#,
        )
        .unwrap();
        let u = c.plugins.proxy.upstreams();
        assert_eq!(u[0].balance, BalancePolicy::LeastInflight);
        assert_eq!(u[1].balance, BalancePolicy::RoundRobin);
        assert_eq!(c.plugins.proxy.health_check().unwrap().0, "/health");
        let err = parse("[plugins.proxy]\nbalance = \"random\"").unwrap_err();
        assert!(err.contains("round_robin") && err.contains("least_inflight"), "{err}");
        let err = parse("[plugins.proxy]\nhealth_check_path = \"health\"").unwrap_err();
        assert!(err.contains("health_check_path"), "{err}");
        let err = parse("[plugins.proxy]\nca_file = \"/no/such/ca.pem\"").unwrap_err();
        assert!(err.contains("ca_file") && err.contains("/no/such/ca.pem"), "{err}");
    }

    #[test]
    fn env_overrides_nest_by_double_underscore() {
        let env = vec![
            ("SERVER__PORT".to_owned(), "9000".to_owned()),
            ("server__enable_proxy".to_owned(), "true".to_owned()),
            ("PLUGINS__PROXY__TIMEOUT".to_owned(), "5".to_owned()),
            ("LOAD_BUILTIN_PLUGINS".to_owned(), r#"["echo","proxy"]"#.to_owned()),
            ("PATH".to_owned(), "/usr/bin".to_owned()),
        ];
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.server.port, 9000);
        assert!(c.server.enable_proxy);
        assert_eq!(c.plugins.proxy.timeout, 5.0);
        assert_eq!(c.load_builtin_plugins, vec!["echo", "proxy"]);
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let rules = AuthRules::new([
            ("/api/v1/*", vec!["wide".to_owned()]),
            ("/api/v1/echo/*", vec!["narrow".to_owned(), "second".to_owned()]),
            ("/api/v1/echo/exact", vec!["exact".to_owned()]),
        ]);
        assert_eq!(rules.first_key_for("/api/v1/other"), Some("wide"));
        assert_eq!(rules.first_key_for("/api/v1/echo/x"), Some("narrow"));
        assert_eq!(rules.first_key_for("/api/v1/echo/exact"), Some("exact"));
        assert_eq!(rules.first_key_for("/health"), None);
        assert!(rule_matches("*", "/anything") && rule_matches("/*", "/x"));
        assert!(!rule_matches("/api/v1/echo/*", "/api/v1/echo_model"), "prefixes end at a slash");
        assert!(!rule_matches("/api/v1/echo*", "/api/v1/echo_model"), "only '/*' is a wildcard");
        assert!(!format!("{rules:?}").contains("wide"), "keys are never printed");
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let err = parse("[plugins.proxy]\nproxy_urls = [\"http://u:p@host\"]").unwrap_err();
        assert!(err.contains("credentials"), "{err}");
        let err = parse("[plugins.proxy]\nproxy_urls = [\"ftp://host\"]").unwrap_err();
        assert!(err.contains("http://"), "{err}");
        let err = parse(
            "[plugins.proxy]\nproxy_urls = [\"http://a\"]\nproxy_functions = { \"http://b\" = [\"m.f\"] }",
        )
        .unwrap_err();
        assert!(err.contains("http://b") && err.contains("proxy_urls"), "{err}");
        let err = parse("[plugins.proxy]\ntimeout = 0").unwrap_err();
        assert!(err.contains("timeout"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let c = parse(include_str!("../config.example.toml")).unwrap();
        assert!(c.load_builtin_plugins.contains(&"echo".to_owned()));
    }

    #[test]
    fn framex_kit_configs_load_unchanged() {
        let c = parse(
            r#"
load_builtin_plugins = ["echo"]
[server]
use_ray = false
dashboard_port = 8260
num_cpus = -1
[log]
simple_log = true
[sentry]
enable = false
[auth]
rules = { "/api/v1/echo" = ["k"] }
[plugins.proxy]
ingress_config = { max_ongoing_requests = 60 }
"#,
        )
        .unwrap();
        assert_eq!(
            c.unused_keys(),
            vec!["log", "sentry", "server.dashboard_port", "server.use_ray", "server.num_cpus", "plugins.proxy.ingress_config"]
        );
        assert!(c.summary().contains("accepted but unused"));
    }

    #[test]
    fn other_plugins_keep_their_own_tables() {
        let c = parse("[plugins.echo]\n[plugins.mine]\nanswer = 42").unwrap();
        assert_eq!(c.plugins.other["mine"]["answer"].as_integer(), Some(42));
    }
}
