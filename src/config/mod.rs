//! FrameX's `config.toml`, strictly validated, with `SECTION__KEY` env overrides.
//!
//! The schema is FrameX-kit's (0.4.x); keys marked *extension* are framex-rs's own.
//! Unknown keys are an error naming the file, the key and the allowed keys, so a typo
//! never silently falls back to a default.
//!
//! Split by question: the schema by section (`server`, `auth`, `proxy`: every key with
//! its default), `rules` (path patterns as FrameX writes them), `upstream_keys` (which
//! key goes to which upstream URL), `env` (environment
//! overrides), `validate` (values that cannot work, refused naming the key), and this
//! module (loading). What `framex check` prints is the CLI's (`cli::check`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod auth;
mod cache;
mod button_target;
mod docs;
mod env;
mod limits;
mod log;
mod migrate;
mod oauth;
mod proxy;
mod repository;
pub mod rule_lint;
pub mod rules;
pub mod secrets;
mod sentry;
mod server;
mod test_table;
mod trusted_proxies;
mod upstream_keys;
mod validate;

pub use limits::{redis_url, LimitBackend, LimitPer, LimitRule, LimitRules, LimitsConfig, OnBackendError, RedisConfig, DEFAULT_MAX_KEYS};
pub use migrate::{MigrateConfig, MigrateMode, MigrateRoute};
pub use cache::{CacheConfig, CacheMode, ProxyCacheRule, ProxyCacheRules};
pub use auth::{rule_matches, AuthConfig, AuthRules, Unused};
pub use proxy::{parse_upstream_url, BalancePolicy, PluginsConfig, ProxyConfig, ProxyUrls, UpstreamConfig, UpstreamEntry, DEFAULT_DOCS_PATH};
pub use rules::{PathFilter, PathPattern, PatternError, RuleSet};
pub use button_target::{ButtonError, ButtonTarget};
pub use docs::{ActionButton, ButtonAuth, ButtonInput, ButtonVariant, DocsConfig};
pub use log::LogConfig;
pub use repository::{GitLabAuth, GitLabEndpoint, ProviderToken, RepositoryAuth, RepositoryConfig};
pub use test_table::TestConfig;
pub use sentry::{SentryConfig, SentryLifecycle};
pub use oauth::{OauthConfig, ProviderUrls, JWT_ALGORITHMS, MIN_JWT_SECRET_BYTES};
pub use server::{AccessLog, ServerConfig};
pub use trusted_proxies::TrustedProxies;
pub use validate::{MAX_SECONDS, MIN_HEALTH_CHECK_SECONDS, MIN_SECONDS};

/// Top-level keys, in the order the docs list them (env overrides look only at these).
const TOP_LEVEL: &[&str] = &["load_builtin_plugins", "load_plugins", "server", "log", "auth", "limits", "redis", "plugins"];

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
    /// `[limits]` (extension): rate and concurrency limits per key, address or route.
    pub limits: LimitsConfig,
    /// `[redis]` (extension): the Redis server shared by the fleet.
    pub redis: RedisConfig,
    /// `[plugins.<name>]`.
    pub plugins: PluginsConfig,
    /// FrameX-kit's Ray ingress defaults: accepted, not used.
    pub base_ingress_config: Unused,
    /// `[log]`: which log lines are left out (levels stay `RUST_LOG`'s).
    pub log: LogConfig,
    /// FrameX-kit's `[test]`: switches for a project's test runs.
    pub test: TestConfig,
    /// FrameX-kit's `[docs]`: the docs page's action buttons.
    pub docs: DocsConfig,
    /// FrameX-kit's `[sentry]`: errors reported to Sentry.
    pub sentry: SentryConfig,
    /// FrameX-kit's `[repository]`: tokens for the docs' questions to GitHub and
    /// GitLab.
    pub repository: RepositoryConfig,
    /// FrameX-kit's `[cache]`: the request cache.
    pub cache: CacheConfig,
    /// The file this config was read from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Config {
    /// Loads `path`, or `./config.toml` when `path` is `None` and it exists, or the
    /// defaults; then applies env overrides and validates. The overrides are those of
    /// `.env`, then `.env.prod` (beside the file), then the environment: each wins
    /// over the ones before it, as in FrameX-kit.
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
        let dir = path.and_then(Path::parent).unwrap_or(Path::new(""));
        let env = env::with_dotenv(dir, env)?;
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
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| invalid(syntax_error(text, &e)))?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        env::apply_env(&mut table, env.iter().cloned()).map_err(invalid)?;
        let mut config = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| invalid(explain(e.message())))?;
        // The standard variable of GitHub Actions and GitHub Enterprise (not a FrameX key).
        if let Some((_, value)) = env.iter().rev().find(|(name, value)| name == "GITHUB_API_URL" && !value.trim().is_empty()) {
            config.repository.github_api = Some(repository::github_api(value).map_err(invalid)?);
        }
        config.validate().map_err(invalid)
    }

    /// Checks what the types cannot (see `validate`), and reads the CA file once.
    fn validate(mut self) -> Result<Self, String> {
        // One Redis setting for the fleet: `[redis] url` serves the cache too, unless
        // `cache.redis_url` names another server (limits read it the same way).
        if self.cache.mode == cache::CacheMode::Redis && self.cache.redis_url.is_none() {
            self.cache.redis_url.clone_from(&self.redis.url);
        }
        validate::check(&self)?;
        sentry::check(&self.sentry)?;
        docs::check(&self.docs)?;
        limits::validate(&self.limits, &self.redis)?;
        self.plugins.proxy.trust = Some(self.plugins.proxy.tls()?);
        if let (Some(cert), Some(key)) = (&self.server.tls_cert, &self.server.tls_key) {
            self.server.tls = Some(crate::tls::server_config(cert, key).map_err(|e| e.to_string())?);
        }
        Ok(self)
    }
}

/// A TOML syntax error as its message and place (line, column), without the line
/// itself that toml quotes: a secret on it must not reach a log (nor Sentry's logs,
/// on a reload).
fn syntax_error(text: &str, error: &toml::de::Error) -> String {
    let Some(before) = error.span().and_then(|span| text.get(..span.start)) else {
        return format!("TOML parse error: {}", error.message());
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("TOML parse error at line {line}, column {column}: {}", error.message())
}

/// serde says "unknown field `x`, expected one of `a`, `b`"; say "unknown key".
pub(super) fn explain(message: &str) -> String {
    message
        .replace("unknown field", "unknown key")
        .replace("expected one of", "allowed keys are")
}

/// A config from `text` as the loader reads a file (no environment), or the error's
/// text: what the section modules' tests parse with.
#[cfg(test)]
pub(crate) fn test_parse(text: &str) -> Result<Config, String> {
    Config::from_toml_str(text, "config.toml").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::test_parse as parse;
    use std::time::Duration;

    /// A syntax error says where, never what the line holds (a secret, say).
    #[test]
    fn syntax_errors_name_the_place_not_the_line() {
        let error = parse("[auth.oauth]\njwt_secret = \"very-secret-value-of-32-bytes-long\" x\n").unwrap_err();
        assert!(error.contains("line 2, column"), "{error}");
        assert!(!error.contains("very-secret"), "{error}");
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
        ])
        .unwrap();
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
        let c = parse(include_str!("../../config.example.toml")).unwrap();
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
lifecycle = "trace"
[auth]
rules = { "/api/v1/echo" = ["k"] }
[plugins.proxy]
ingress_config = { max_ongoing_requests = 60 }
"#,
        )
        .unwrap();
        let summary = crate::cli::check_summary(&c);
        assert!(
            summary.contains(
                "FrameX-kit keys accepted but unused: server.dashboard_port, server.use_ray, \
                 server.num_cpus, plugins.proxy.ingress_config, sentry.lifecycle (Ray keys: framex-rs runs no Ray; \
                 sentry.lifecycle: it steers FrameX-kit's profiler, and framex-rs does no profiling"
            ),
            "{summary}"
        );
    }

    /// `framex check` prints every `[plugins.proxy.migrate]` entry with its mode.
    #[test]
    fn check_prints_migration_entries() {
        let c = parse(
            r#"
load_builtin_plugins = ["echo", "proxy"]
[plugins.proxy.migrate]
"/api/v1/a" = { mode = "canary", percent = 25 }
"/api/v1/b" = { mode = "shadow" }
"#,
        )
        .unwrap();
        let summary = crate::cli::check_summary(&c);
        assert!(summary.contains("migrate /api/v1/a: canary: 25 % to the local plugin, the rest to the upstream; rollback above 5 % errors"), "{summary}");
        assert!(summary.contains("migrate /api/v1/b: shadow: the upstream answers; GET, HEAD, OPTIONS also go to the local plugin, compared"), "{summary}");
    }

    /// `[redis] url` is the cache's Redis too, unless `cache.redis_url` says otherwise.
    #[test]
    fn one_redis_setting_serves_the_cache() {
        let c = parse("[redis]\nurl = \"redis://127.0.0.1:7000\"\n[cache]\nenabled = true\nmode = \"redis\"\n").unwrap();
        assert_eq!(c.cache.redis_url.as_deref(), Some("redis://127.0.0.1:7000"));
        let c = parse("[redis]\nurl = \"redis://127.0.0.1:7000\"\n[cache]\nredis_url = \"redis://127.0.0.1:7001\"\n").unwrap();
        assert_eq!(c.cache.redis_url.as_deref(), Some("redis://127.0.0.1:7001"));
        assert!(parse("[cache]\nenabled = true\nmode = \"redis\"\n").is_err(), "no Redis named at all");
    }

    #[test]
    fn other_plugins_keep_their_own_tables() {
        let c = parse("[plugins.echo]\n[plugins.mine]\nanswer = 42").unwrap();
        assert_eq!(c.plugins.other["mine"]["answer"].as_integer(), Some(42));
    }
    /// The slow-client limits default to 60 s, 240 B/s, a 10 s send timeout and 25,000
    /// connections;
    /// absurd values are refused naming the key, from the file or the environment.
    #[test]
    fn slow_client_limits_default_and_say_no() {
        let c = parse("").unwrap();
        assert_eq!(c.server.client_body_timeout(), Duration::from_secs(60));
        assert_eq!(c.server.send_timeout(), Duration::from_secs(10));
        assert_eq!((c.server.min_body_rate, c.server.max_connections), (240, None));
        for bad in [
            "client_body_timeout = 1e300",
            "client_body_timeout = 0",
            "client_body_timeout = -1",
            "send_timeout = 0",
            "send_timeout = 1e300",
            "max_connections = 0",
        ] {
            let err = parse(&format!("[server]\n{bad}")).unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(&format!("server.{key}")), "{bad}: {err}");
        }
        let env = vec![("SERVER__CLIENT_BODY_TIMEOUT".to_owned(), "1e300".to_owned())];
        let err = Config::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("server.client_body_timeout"), "{err}");
        let c = parse("[server]\nclient_body_timeout = 1.5\nmin_body_rate = 0\nmax_connections = 3\nsend_timeout = 2.5").unwrap();
        assert_eq!(c.server.client_body_timeout(), Duration::from_millis(1500));
        assert_eq!(c.server.send_timeout(), Duration::from_millis(2500));
    }

    /// A directory holding `config.toml` and `files`; the config's path.
    fn project(config: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, config).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        (dir, file)
    }

    /// `.env` then `.env.prod` beside the file, then the environment: each wins over
    /// the ones before (FrameX-kit's order); names compare case-insensitively.
    #[test]
    fn dotenv_files_beside_the_config_and_the_environment_override_in_order() {
        let (_dir, file) = project(
            "[server]\nreversion = \"file\"\nport = 1\n",
            &[
                (".env", "SERVER__REVERSION=dotenv\nSERVER__PORT=2\nSERVER__HOST=0.0.0.0\n"),
                (".env.prod", "server__reversion=prod\nSERVER__PORT=3\n"),
            ],
        );
        let env = vec![("SERVER__PORT".to_owned(), "4".to_owned())];
        let c = Config::load_with_env(Some(&file), env).unwrap();
        assert_eq!((c.server.reversion.as_str(), c.server.port, c.server.host.as_str()), ("prod", 4, "0.0.0.0"));
        assert_eq!(c.server.version_json(), "\"prod\"");
    }

    /// A dotenv line that does not parse is refused naming the file, never echoing
    /// the line (it may hold a secret).
    #[test]
    fn a_bad_dotenv_line_is_refused_without_its_text() {
        let (_dir, file) = project("", &[(".env", "AUTH__KEY='s3cr3t-token\n")]);
        let err = Config::load_with_env(Some(&file), Vec::new()).unwrap_err().to_string();
        assert!(err.contains(".env") && !err.contains("s3cr3t"), "{err}");
    }

    /// `/version` is a JSON string whatever `reversion` holds: quotes, newlines and
    /// controls are escaped, so it cannot break the body.
    #[test]
    fn reversion_is_answered_as_an_escaped_json_string() {
        let c = parse("[server]\nreversion = \"v1\\\"\\n\\u0000<x>\"").unwrap();
        let answer: serde_json::Value = serde_json::from_str(&c.server.version_json()).unwrap();
        assert_eq!(answer, "v1\"\n\u{0}<x>");
        assert_eq!(parse("").unwrap().server.version_json(), format!("\"{}\"", crate::VERSION));
    }

    /// `[log]` has FrameX-kit's defaults and refuses unknown keys.
    #[test]
    fn log_table_defaults_and_strictness() {
        let c = parse("").unwrap();
        assert!(c.log.simple_log);
        assert_eq!(c.log.ignored_contains, ["GET /ping", "GET /health"]);
        assert!(parse("[log]\nsimple_logs = true").unwrap_err().contains("simple_logs"));
    }
}
