//! `[server]`: where and how this instance serves, and the limits it puts on clients.

use std::time::Duration;

use serde::Deserialize;

use super::{validate, TrustedProxies, Unused};

/// `server.access_log`: whether and how each request is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLog {
    /// No access log (`false`).
    #[default]
    Off,
    /// One text line per request (`true` or `"text"`).
    Text,
    /// One JSON object per line (`"json"`).
    Json,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `"127.0.0.1"`.
    pub host: String,
    /// Port to listen on (0 = any free port). Default `8080`.
    #[serde(deserialize_with = "validate::server_port")]
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
    /// `true` (or `"text"`) writes peer, method, path without the query, status, time
    /// to the response head, request id and trace id as text; `"json"` writes one JSON
    /// object with route, bytes, upstream URL and attempts as well. Default off.
    #[serde(deserialize_with = "access_log")]
    pub access_log: AccessLog,
    /// *Extension.* Addresses or CIDR networks of proxies in front of this server,
    /// whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are kept and extended;
    /// from anyone else they are replaced by ours. Default: none.
    pub trusted_proxies: TrustedProxies,
    /// *Extension.* Seconds a request body that is read whole (local routes, proxy
    /// functions, small forwarded bodies) may take to arrive in full; longer → 408 and
    /// the connection closed. Between 0.001 and one year. Default 60.
    pub client_body_timeout: f64,
    /// *Extension.* Bytes per second a body streamed upstream must keep arriving at,
    /// on average, after a 5 s grace (Kestrel's `MinRequestBodyDataRate`); slower →
    /// 408 and the connection closed. 0 = no minimum. Default 240.
    pub min_body_rate: u64,
    /// *Extension.* Seconds an HTTP/1 client may take none of the bytes of an answer
    /// written to it (nginx's `send_timeout`: the time between two writes, not the
    /// whole answer); longer → the connection is dropped, so a client that stops
    /// reading cannot hold it and its slot. Over HTTP/2, seconds a stream may wait for
    /// send window before it is reset. Between 0.001 and one year. Default 10.
    pub send_timeout: f64,
    /// *Extension.* Connections the process serves at once; beyond it new
    /// connections wait in the listen backlog until one closes. Enforced per worker
    /// (the limit divided among `workers`, rounded up). Default: what the open-file
    /// limit allows (see [`crate::open_files::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// *Extension.* A file `framex run` writes its process id to (removed at exit), for
    /// `framex reload` to find it. Default: none.
    pub pid_file: Option<String>,
    /// *Extension.* Upstream URLs `/ready` does not wait for (by default it answers
    /// 503 until every `proxy_urls` entry has been discovered once), parsed when
    /// the config is loaded. Default: none.
    #[serde(deserialize_with = "validate::ready_without")]
    pub ready_without: Vec<framex_actors::upstream::UpstreamUrl>,
    /// *Extension.* PEM certificate chain (leaf first) that turns the listener into
    /// HTTPS, with `tls_key`; HTTP/2 is offered by ALPN. Default: none (plain HTTP).
    pub tls_cert: Option<std::path::PathBuf>,
    /// *Extension.* PEM private key of `tls_cert`. Default: none.
    pub tls_key: Option<std::path::PathBuf>,
    /// *Extension.* Serve HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on a
    /// plain listener. Default `false`.
    pub h2c: bool,
    /// The TLS configuration `tls_cert` and `tls_key` give, read once when the config
    /// is validated.
    #[serde(skip)]
    pub tls: Option<crate::tls::TlsSetup>,
    /// FrameX-kit's Ray dashboard address: accepted, not used.
    pub dashboard_host: Unused,
    /// FrameX-kit's Ray dashboard port: accepted, not used.
    pub dashboard_port: Unused,
    /// FrameX-kit's Ray switch: accepted, not used.
    pub use_ray: Unused,
    /// FrameX-kit's Ray CPU count: accepted, not used (see `workers`).
    pub num_cpus: Unused,
    /// Local routes (exact paths) answered without FrameX's envelope, as FrameX-kit's
    /// response middleware skips them. Default: none.
    pub excluded_log_paths: Vec<String>,
    /// FrameX-kit's Ray ingress settings: accepted, not used.
    pub ingress_config: Unused,
    /// What `/version` answers; empty: framex-rs's own version. Default: empty.
    pub reversion: String,
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
            access_log: AccessLog::Off,
            trusted_proxies: TrustedProxies::default(),
            client_body_timeout: 60.0,
            min_body_rate: 240,
            send_timeout: 10.0,
            max_connections: None,
            pid_file: None,
            ready_without: Vec::new(),
            tls_cert: None,
            tls_key: None,
            h2c: false,
            tls: None,
            dashboard_host: None,
            dashboard_port: None,
            use_ray: None,
            num_cpus: None,
            excluded_log_paths: Vec::new(),
            ingress_config: None,
            reversion: String::new(),
        }
    }
}

impl ServerConfig {
    /// The version this server reports (`reversion`, else framex-rs's).
    pub fn release(&self) -> &str {
        if self.reversion.is_empty() { crate::VERSION } else { &self.reversion }
    }

    /// What `/version` answers, as a JSON string: `reversion`, else framex-rs's
    /// version (FrameX-kit answers its own version when `reversion` is empty).
    pub fn version_json(&self) -> String {
        let version = if self.reversion.is_empty() { crate::VERSION } else { &self.reversion };
        serde_json::Value::String(version.to_owned()).to_string()
    }

    /// `client_body_timeout` as a duration (validated to lie in [1 ms, 1 year]).
    pub fn client_body_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.client_body_timeout).unwrap_or(Duration::from_secs(60))
    }

    /// `send_timeout` as a duration (validated to lie in [1 ms, 1 year]).
    pub fn send_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.send_timeout).unwrap_or(Duration::from_secs(10))
    }

    /// Checks `client_body_timeout`, `send_timeout`, `max_connections` and the TLS keys.
    pub(super) fn validate_slow_client_limits(&self) -> Result<(), String> {
        const YEAR: f64 = 365.0 * 24.0 * 3600.0;
        for (key, seconds) in [("client_body_timeout", self.client_body_timeout), ("send_timeout", self.send_timeout)] {
            if !(0.001..=YEAR).contains(&seconds) {
                return Err(format!("server.{key} must be between 0.001 and {YEAR} seconds (got {seconds})"));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err("server.tls_cert is set without server.tls_key".to_owned()),
            (None, Some(_)) => return Err("server.tls_key is set without server.tls_cert".to_owned()),
            (Some(_), Some(_)) if self.h2c => {
                return Err("server.h2c is for plain listeners; with server.tls_cert HTTP/2 is negotiated by ALPN".to_owned())
            }
            _ => {}
        }
        if self.max_connections == Some(0) {
            return Err("server.max_connections must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// `server.access_log`: `true`/`false`, `"text"`, `"json"` or `"off"`, refused naming
/// the key.
fn access_log<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<AccessLog, D::Error> {
    use serde::Deserialize as _;
    let value = toml::Value::deserialize(deserializer)?;
    match &value {
        toml::Value::Boolean(false) => Ok(AccessLog::Off),
        toml::Value::Boolean(true) => Ok(AccessLog::Text),
        toml::Value::String(s) if s == "off" => Ok(AccessLog::Off),
        toml::Value::String(s) if s == "text" => Ok(AccessLog::Text),
        toml::Value::String(s) if s == "json" => Ok(AccessLog::Json),
        _ => Err(serde::de::Error::custom(format!(
            "server.access_log must be true, false, \"text\" or \"json\", not {value}"
        ))),
    }
}
