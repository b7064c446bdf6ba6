//! Values that cannot work, refused when the config is loaded (by `framex check` and
//! `framex run` alike), each error naming its key: empty keys, absurd durations,
//! URLs that are not upstream URLs (parsed as they are read: `UpstreamUrl`), unknown plugins, and
//! FrameX-kit settings whose silent omission would weaken protection.

use framex_actors::upstream::UpstreamUrl;

use super::proxy::parse_upstream_url;
use super::{AuthConfig, AuthRules, Config, ConfigError, ProxyUrls};

/// The shortest duration a key accepts, in seconds (1 ms).
pub const MIN_SECONDS: f64 = 0.001;
/// The longest duration a key accepts, in seconds (365 days).
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;
/// The shortest interval between two active health checks, in seconds.
pub const MIN_HEALTH_CHECK_SECONDS: f64 = 0.1;

/// Every check of this module, in the order a reader meets the keys.
pub(super) fn check(config: &Config) -> Result<(), String> {
    builtin_plugins(&config.load_builtin_plugins)?;
    oauth(&config.auth)?;
    auth_keys("auth.rules", &config.auth.rules)?;
    if config.server.pid_file.as_deref().is_some_and(|f| f.trim().is_empty() || f.chars().any(char::is_control)) {
        return Err("server.pid_file must be a file path (no control characters), or absent".to_owned());
    }
    let urls = config.plugins.proxy.upstreams();
    if let Some(url) = config.server.ready_without.iter().find(|w| !urls.iter().any(|u| u.url == **w)) {
        return Err(format!("server.ready_without: '{url}' is not one of plugins.proxy.proxy_urls"));
    }
    if config.server.shutdown_timeout as f64 > MAX_SECONDS {
        return Err(format!("server.shutdown_timeout must be at most {MAX_SECONDS} seconds (1 year)"));
    }
    let proxy = &config.plugins.proxy;
    super::cache::check(&config.cache, &proxy.cache)?;
    auth_keys("plugins.proxy.auth.rules", &proxy.auth.rules)?;
    if let ProxyUrls::Table(table) = &proxy.proxy_urls {
        for (url, entry) in table {
            auth_keys(&format!("plugins.proxy.proxy_urls.\"{url}\".auth"), &entry.auth)?;
        }
    }
    seconds("plugins.proxy.timeout", proxy.timeout)?;
    seconds("plugins.proxy.connect_timeout", proxy.connect_timeout)?;
    seconds("plugins.proxy.websocket_idle_timeout", proxy.websocket_idle_timeout)?;
    if proxy.discovery_interval != 0.0 {
        seconds("plugins.proxy.discovery_interval", proxy.discovery_interval)
            .map_err(|e| format!("{e} (or 0 = never)"))?;
    }
    seconds("plugins.proxy.health_check_interval", proxy.health_check_interval)?;
    if proxy.health_check_interval < MIN_HEALTH_CHECK_SECONDS {
        return Err(format!(
            "plugins.proxy.health_check_interval must be at least {MIN_HEALTH_CHECK_SECONDS} seconds, not {}",
            proxy.health_check_interval
        ));
    }
    seconds("plugins.proxy.dns_refresh", proxy.dns_refresh)?;
    if proxy.dns_refresh < MIN_HEALTH_CHECK_SECONDS {
        return Err(format!(
            "plugins.proxy.dns_refresh must be at least {MIN_HEALTH_CHECK_SECONDS} seconds, not {}",
            proxy.dns_refresh
        ));
    }
    if let Some(bad) = proxy.dns_servers.iter().find(|s| s.parse::<std::net::SocketAddr>().is_err()) {
        return Err(format!(
            "plugins.proxy.dns_servers: '{}' is not an IP:PORT address",
            bad.escape_default()
        ));
    }
    if proxy.max_hops < 1 {
        return Err("plugins.proxy.max_hops must be at least 1 (0 would refuse every request as a loop)".to_owned());
    }
    let upstreams = proxy.upstreams();
    if let Some(upstream) = upstreams.iter().find(|u| !u.docs_path.starts_with('/')) {
        return Err(format!(
            "plugins.proxy.proxy_urls.\"{}\".docs_path must start with '/'",
            upstream.url
        ));
    }
    for url in proxy.proxy_functions.keys() {
        if !upstreams.iter().any(|u| u.url == *url) {
            return Err(format!("plugins.proxy.proxy_functions: '{url}' is not one of proxy_urls"));
        }
    }
    if !proxy.health_check_path.is_empty() && !proxy.health_check_path.starts_with('/') {
        return Err("plugins.proxy.health_check_path must be empty or start with '/'".to_owned());
    }
    if proxy.max_document_size == 0 {
        return Err("plugins.proxy.max_document_size must be at least 1 byte".to_owned());
    }
    super::proxy::check_filters(proxy)?;
    for (template, route) in &proxy.migrate {
        super::migrate::check(template, route)?;
    }
    config.server.validate_slow_client_limits()?;
    if config.server.legal_proxy_code.is_empty() {
        return Err("server.legal_proxy_code must list at least one status".to_owned());
    }
    Ok(())
}

/// A duration key: a finite number of seconds in [1 ms, 1 year] (beyond, a duration
/// cannot be represented or means a mistake; NaN and infinity never work).
pub(super) fn seconds(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{key} must be a number of seconds between {MIN_SECONDS} (1 ms) and {MAX_SECONDS} (1 year), not {value}"
        ))
    }
}

/// `server.port`: 0 (any free port) to 65535, refused naming the key (serde alone
/// would say only "expected u16").
pub(super) fn server_port<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    use serde::Deserialize as _;
    let value = toml::Value::deserialize(deserializer)?;
    value
        .as_integer()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("server.port must be a port number from 0 to 65535, not {value}")))
}

/// `server.ready_without`: upstream URLs, each parsed, refused naming the key.
pub(super) fn ready_without<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<UpstreamUrl>, D::Error> {
    use serde::Deserialize as _;
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|url| parse_upstream_url("server.ready_without", url).map_err(serde::de::Error::custom))
        .collect()
}

/// Rules whose key list is empty, or holds an empty key, would make their paths
/// public (an empty `Authorization` header, or none, would pass).
fn auth_keys(section: &str, rules: &AuthRules) -> Result<(), String> {
    for (pattern, keys) in rules.entries() {
        let pattern = pattern.escape_default();
        if keys.is_empty() {
            return Err(format!("{section}.\"{pattern}\" has no keys; give at least one, or remove the rule"));
        }
        if keys.iter().any(|k| k.trim().is_empty()) {
            return Err(format!("{section}.\"{pattern}\" holds an empty key, which would make the path public"));
        }
    }
    Ok(())
}

/// `[auth.oauth]`, when present: everything its login needs (see
/// [`super::oauth::OauthConfig::check`]).
fn oauth(auth: &AuthConfig) -> Result<(), String> {
    auth.oauth.as_ref().map_or(Ok(()), super::oauth::OauthConfig::check)
}

/// Built-in plugin names must exist.
fn builtin_plugins(names: &[String]) -> Result<(), String> {
    match names.iter().find(|n| !crate::builtin_plugins::NAMES.contains(&n.as_str())) {
        Some(name) => Err(format!(
            "load_builtin_plugins: unknown plugin '{}' (available: {})",
            name.escape_default(),
            crate::builtin_plugins::NAMES.join(", ")
        )),
        None => Ok(()),
    }
}

impl Config {
    /// Checks that every name in `load_plugins` is a plugin this program has: the
    /// built-ins plus `extra` (what an embedder adds with `Framex::plugin`). The
    /// `framex` binary has only the built-ins, so `framex check` and `framex run`
    /// call this with none.
    ///
    /// # Errors
    /// The first unknown name, with the file it comes from.
    pub fn check_plugins_available(&self, extra: &[&str]) -> Result<(), ConfigError> {
        let known = |name: &str| crate::builtin_plugins::NAMES.contains(&name) || extra.contains(&name);
        match self.load_plugins.iter().find(|n| !known(n)) {
            Some(name) => Err(ConfigError::Invalid {
                origin: self
                    .source
                    .as_ref()
                    .map_or_else(|| "default config".to_owned(), |p| p.display().to_string()),
                message: format!(
                    "load_plugins: unknown plugin '{}' (available: {})",
                    name.escape_default(),
                    crate::builtin_plugins::NAMES.iter().chain(extra).copied().collect::<Vec<_>>().join(", ")
                ),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        Config::from_toml_str(text, "config.toml").map(|_| ()).unwrap_err().to_string()
    }

    /// Attack 8: an empty key or key list made a path public.
    #[test]
    fn empty_keys_and_key_lists_are_refused() {
        let err = refused("[auth]\nrules = { \"/api/v1/echo\" = [\"\"] }");
        assert!(err.contains("auth.rules") && err.contains("/api/v1/echo") && err.contains("empty key"), "{err}");
        let err = refused("[auth]\nrules = { \"/api/v1/echo\" = [] }");
        assert!(err.contains("no keys"), "{err}");
        let err = refused("[plugins.proxy.auth]\nrules = { \"/x\" = [\"k\", \" \"] }");
        assert!(err.contains("plugins.proxy.auth.rules"), "{err}");
        let err = refused(
            "[plugins.proxy.proxy_urls.\"http://a\"]\nauth = { \"/x\" = [\"secret-key\", \"\"] }",
        );
        assert!(err.contains("plugins.proxy.proxy_urls.\"http://a\".auth.\"/x\"") && err.contains("empty key"), "{err}");
        assert!(!err.contains("secret-key"), "never the key's value: {err}");
    }

    /// The protocol keys: a certificate without its key (or the reverse), h2c beside
    /// TLS, an invalid WebSocket pattern and an absurd idle timeout are refused, each
    /// naming its key.
    #[test]
    fn protocol_keys_are_checked() {
        let err = refused("[server]\ntls_cert = \"c.pem\"");
        assert!(err.contains("server.tls_cert is set without server.tls_key"), "{err}");
        let err = refused("[server]\ntls_key = \"k.pem\"");
        assert!(err.contains("server.tls_key is set without server.tls_cert"), "{err}");
        let err = refused("[server]\nh2c = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"");
        assert!(err.contains("server.h2c"), "{err}");
        let err = refused("[plugins.proxy.proxy_urls.\"http://a\"]\nwebsocket = [\"ws/*\"]");
        assert!(err.contains("proxy_urls.\"http://a\".websocket") && err.contains("ws/*"), "{err}");
        let err = refused("[plugins.proxy]\nwebsocket_idle_timeout = 0");
        assert!(err.contains("plugins.proxy.websocket_idle_timeout"), "{err}");
    }

    /// Attack 10: durations that cannot be represented (and panicked at `run`), and
    /// intervals that would flood upstreams.
    #[test]
    fn durations_outside_a_millisecond_to_a_year_are_refused() {
        for (key, value) in [
            ("timeout", "1e300"),
            ("timeout", "nan"),
            ("timeout", "inf"),
            ("timeout", "-1"),
            ("timeout", "0.0001"),
            ("connect_timeout", "4e7"),
            ("discovery_interval", "1e-9"),
            ("health_check_interval", "1e-9"),
            ("health_check_interval", "0.05"),
        ] {
            let err = refused(&format!("[plugins.proxy]\n{key} = {value}"));
            assert!(err.contains(&format!("plugins.proxy.{key}")), "{key} = {value}: {err}");
        }
        assert!(Config::from_toml_str("[plugins.proxy]\ndiscovery_interval = 0\nhealth_check_interval = 0.1", "c").is_ok());
        let err = refused("[server]\nshutdown_timeout = 100000000");
        assert!(err.contains("server.shutdown_timeout"), "{err}");
        let env = vec![("PLUGINS__PROXY__TIMEOUT".to_owned(), "1e300".to_owned())];
        let err = Config::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("plugins.proxy.timeout"), "{err}");
    }

    /// Attack 10: hop limits, ports, CR/LF and other oddities in upstream URLs, and
    /// unknown plugins.
    #[test]
    fn impossible_hops_urls_and_plugins_are_refused() {
        assert!(refused("[plugins.proxy]\nmax_hops = 0").contains("plugins.proxy.max_hops"));
        for (url, why) in [
            ("http://a:70000", "port"),
            ("http://a:0", "port"),
            ("http://a:", "port"),
            ("http://a\\r\\nX-Injected: 1", "control"),
            (" http://a", "whitespace"),
            ("http://a b", "whitespace"),
            ("http://u:p@a", "credentials"),
            ("http://a/?x=1", "query"),
            ("http://a/#f", "fragment"),
            ("http://", "host"),
            ("ftp://a", "http://"),
            ("http://a!b", "host name"),
            ("http://[::1", "IPv6"),
            ("https://-a-", "TLS certificate name"),
        ] {
            let err = refused(&format!("[plugins.proxy]\nproxy_urls = [\"{url}\"]"));
            assert!(err.contains("plugins.proxy.proxy_urls") && err.contains(why), "{url}: {err}");
            let err = refused(&format!("[plugins.proxy.proxy_urls.\"{url}\"]"));
            assert!(err.contains(why), "{url}: {err}");
        }
        for ok in ["http://a:1", "https://a.example/base", "http://[::1]:8080", "http://127.0.0.1", "HTTPS://a.example"] {
            Config::from_toml_str(&format!("[plugins.proxy]\nproxy_urls = [\"{ok}\"]"), "c").unwrap();
        }
        let err = refused("[plugins.proxy]\nproxy_urls = [\"http://u:secret@a\"]");
        assert!(err.contains("[plugins.proxy.auth] rules"), "says where keys go: {err}");
        assert!(err.contains("'http://***@a'") && !err.contains("secret"), "never the password: {err}");
        let err = refused("[server]\nready_without = [\"http://a?x\"]");
        assert!(err.contains("server.ready_without") && err.contains("query"), "{err}");
        let err = refused("[plugins.proxy.proxy_functions]\n\"ftp://a\" = [\"f\"]");
        assert!(err.contains("plugins.proxy.proxy_functions") && err.contains("http://"), "{err}");
        let err = refused("[plugins.proxy]\nproxy_urls = [\"http://a\"]\n[server]\nready_without = [\"http://b\"]");
        assert!(err.contains("server.ready_without: 'http://b' is not one of"), "{err}");
        let c = Config::from_toml_str(
            "[plugins.proxy]\nproxy_urls = [\"http://a/\"]\nproxy_functions = { \"http://a\" = [\"f\"] }\n[server]\nready_without = [\"http://a//\"]",
            "c",
        )
        .unwrap();
        assert_eq!(c.server.ready_without, c.plugins.proxy.upstreams().into_iter().map(|u| u.url).collect::<Vec<_>>());
        let err = refused("load_builtin_plugins = [\"echo\", \"nope\"]");
        assert!(err.contains("load_builtin_plugins") && err.contains("nope"), "{err}");
        let c = Config::from_toml_str("load_plugins = [\"echo\", \"mine\"]", "c").unwrap();
        let err = c.check_plugins_available(&[]).unwrap_err().to_string();
        assert!(err.contains("load_plugins") && err.contains("mine"), "{err}");
        c.check_plugins_available(&["mine"]).unwrap();
    }

    /// A listening port over 65535 is refused naming `server.port`.
    #[test]
    fn server_port_out_of_range_names_the_key() {
        let err = refused("[server]\nport = 70000");
        assert!(err.contains("server.port"), "{err}");
        let err = Config::load_with_env(None, vec![("SERVER__PORT".to_owned(), "-1".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.port"), "{err}");
    }

    /// `server.access_log` takes a boolean or a format name; anything else is refused
    /// naming the key.
    #[test]
    fn access_log_formats() {
        use crate::config::AccessLog;
        let load = |text: &str| Config::load_with_env(None, vec![("SERVER__ACCESS_LOG".to_owned(), text.to_owned())]);
        assert_eq!(load("true").unwrap().server.access_log, AccessLog::Text);
        assert_eq!(load("json").unwrap().server.access_log, AccessLog::Json);
        assert_eq!(load("false").unwrap().server.access_log, AccessLog::Off);
        let err = refused("[server]\naccess_log = \"yaml\"");
        assert!(err.contains("server.access_log"), "{err}");
    }

    /// `[auth.oauth]` that cannot log anyone in is refused at load, naming the key.
    #[test]
    fn oauth_is_checked_at_load() {
        let err = refused("[auth.oauth]\nclient_id = \"x\"\njwt_secret = \"too short\"");
        assert!(err.contains("auth.oauth.jwt_secret"), "{err}");
    }
}
