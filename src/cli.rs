//! The command line: `framex run`, `framex check`, `framex routes`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use framex_actors::{ApiKey, Engine};

use crate::config::{rule_lint, Config};
use crate::plugins;
use crate::proxy;

/// A FrameX-compatible server: local plugins and a transparent proxy behind one API.
#[derive(Debug, Parser)]
#[command(name = "framex", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the configured plugins and proxy.
    Run(RunArgs),
    /// Validate the config and print what would be loaded.
    Check(ConfigArg),
    /// Discover every upstream and print the routing table.
    Routes(ConfigArg),
    /// Tell the running instance (`server.pid_file` of the config) to reload its
    /// configuration (SIGHUP).
    Reload(ConfigArg),
}

/// `--config FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Options of `framex run`; each overrides the config file and the environment.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Address to listen on (`[server] host`).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on (`[server] port`).
    #[arg(long)]
    pub port: Option<u16>,
    /// Built-in plugins to load besides `load_builtin_plugins` (repeatable).
    #[arg(long = "load-builtin-plugins", value_name = "NAME")]
    pub load_builtin_plugins: Vec<String>,
    /// Plugins to load besides `load_plugins` (repeatable).
    #[arg(long = "load-plugins", value_name = "NAME")]
    pub load_plugins: Vec<String>,
    /// Let `call_remote_api` fall back to the proxy (`[server] enable_proxy = true`).
    #[arg(long, overrides_with = "no_enable_proxy")]
    pub enable_proxy: bool,
    /// Do not fall back to the proxy (`[server] enable_proxy = false`).
    #[arg(long, overrides_with = "enable_proxy")]
    pub no_enable_proxy: bool,
}

impl RunArgs {
    /// Applies the flags on top of a loaded config.
    pub fn apply(&self, config: &mut Config) {
        if let Some(host) = &self.host {
            config.server.host = host.clone();
        }
        if let Some(port) = self.port {
            config.server.port = port;
        }
        add_names(&mut config.load_builtin_plugins, &self.load_builtin_plugins);
        add_names(&mut config.load_plugins, &self.load_plugins);
        if self.enable_proxy {
            config.server.enable_proxy = true;
        }
        if self.no_enable_proxy {
            config.server.enable_proxy = false;
        }
    }
}

/// Adds `more` to `list`, as FrameX-kit's `--load-plugins` adds to the config's (a
/// name already listed is not added twice).
fn add_names(list: &mut Vec<String>, more: &[String]) {
    for name in more {
        if !list.contains(name) {
            list.push(name.clone());
        }
    }
}

/// What `framex routes` prints, and how many upstream URLs could not be read (each
/// logged as a warning before the table).
#[derive(Debug)]
pub struct RouteListing {
    /// Method, path, target and whether the route streams, one route per line.
    pub table: String,
    /// Upstream URLs whose document could not be read.
    pub unreadable: usize,
}

/// Discovers every upstream of `config` once and renders the routing table.
pub async fn route_listing(config: &Config) -> Result<RouteListing, framex_actors::Error> {
    let mut unreadable = 0;
    let engine = Engine::start();
    for name in &config.load_builtin_plugins {
        if let Some(plugin) = plugins::builtin(name) {
            engine.register_plugin(plugin).await?;
        }
    }
    if config.load_builtin_plugins.iter().any(|n| n == "proxy") {
        for (url, e) in proxy::Proxy::new(&engine, config).discover_all().await {
            log::warn!("proxy {}: {}", framex_actors::Escaped(&url), framex_actors::Escaped(&e));
            unreadable += 1;
        }
    }
    let table = engine.table();
    let mut out = format!("{:<8} {:<44} {:<40} {}\n", "METHOD", "PATH", "TARGET", "STREAM");
    for route in table.routes() {
        let (method, path) = match &route.spec.key {
            ApiKey::Http { method, path } => (method.to_string(), path.clone()),
            ApiKey::Function(name) => ("FUNC".to_owned(), name.clone()),
        };
        out.push_str(&format!(
            "{:<8} {:<44} {:<40} {}\n",
            method,
            path,
            proxy::answered_by(route, &table, &config.plugins.proxy.migrate),
            if route.spec.streaming { "yes" } else { "no" }
        ));
    }
    Ok(RouteListing { table: out, unreadable })
}

/// The `[limits]` rules, one line each (`limit rule: /api/* 10/s burst 10, 4 open,
/// per key, 429 (local)`); nothing when there are none.
fn limit_rules(config: &Config) -> String {
    let limits = &config.limits;
    let backend = match limits.backend {
        crate::config::LimitBackend::Local => format!("local, max_keys {}", limits.max_keys),
        crate::config::LimitBackend::Redis => format!("redis, on_backend_error {:?}", limits.on_backend_error).to_lowercase(),
    };
    let mut out = String::new();
    for (pattern, rule) in limits.rules.0.iter() {
        let mut what = Vec::new();
        if let Some(rate) = rule.rate {
            what.push(format!("{rate}/s burst {}", rule.burst()));
        }
        if let Some(open) = rule.concurrent {
            what.push(format!("{open} open"));
        }
        out.push_str(&format!(
            "limit rule: {pattern} {}, per {}, {} ({backend})\n",
            what.join(", "),
            rule.per.as_str(),
            rule.status.unwrap_or(429)
        ));
    }
    out
}

/// What `framex check` prints: plugins, address, upstreams with their filters, auth
/// rule patterns with how many keys each has (never the keys), limit rules, warnings about rules
/// that do not cover what they seem to (local routes; see [`rule_lint`]), and the
/// FrameX-kit keys accepted but unused.
pub fn check_summary(config: &Config) -> String {
    let mut out = String::new();
    let source = config
        .source
        .as_ref()
        .map_or_else(|| "built-in defaults".to_owned(), |p| p.display().to_string());
    out.push_str(&format!("config: {source}\n"));
    out.push_str(&format!("listen: {}:{}\n", config.server.host, config.server.port));
    let protocols = match (&config.server.tls_cert, config.server.h2c) {
        (Some(cert), _) => format!("https (HTTP/2 and HTTP/1.1 by ALPN), certificate {}", cert.display()),
        (None, true) => "http (HTTP/1.1, and HTTP/2 with prior knowledge)".to_owned(),
        (None, false) => "http (HTTP/1.1)".to_owned(),
    };
    out.push_str(&format!("protocols: {protocols}\n"));
    out.push_str(&format!("builtin plugins: {}\n", list(&config.load_builtin_plugins)));
    out.push_str(&format!("plugins: {}\n", list(&config.load_plugins)));
    out.push_str(&format!("enable_proxy: {}\n", config.server.enable_proxy));
    out.push_str(&format!("trusted proxies: {}\n", config.server.trusted_proxies));
    for (pattern, keys) in config.auth.rules.patterns() {
        out.push_str(&format!("auth rule: {pattern} ({keys} keys)\n"));
    }
    out.push_str(&limit_rules(config));
    let local: Vec<_> = config
        .load_builtin_plugins
        .iter()
        .filter_map(|name| plugins::builtin(name))
        .collect();
    let specs = local.iter().flat_map(|plugin| plugin.apis.iter().map(|api| &*api.spec));
    for warning in rule_lint::warnings(&rule_lint::config_groups(config), specs) {
        out.push_str(&format!("warning: {warning}
"));
    }
    if let Some(warning) = unused_warning(config) {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if let Some(reason) = config.sentry.inactive_reason() {
        out.push_str(&format!("warning: {reason}\n"));
    }
    if config.sentry.active() {
        let share = config.sentry.traces_sample_rate * 100.0;
        out.push_str(&format!("sentry: environment {}_noray, transactions for {share}% of requests\n", config.sentry.env.escape_default()));
    }
    if config.load_builtin_plugins.iter().any(|p| p == "proxy") {
        let proxy = &config.plugins.proxy;
        for u in proxy.upstreams() {
            out.push_str(&format!(
                "upstream: {} docs={} enable={} disable={} balance={}\n",
                u.url,
                u.docs_path,
                list(&u.enable),
                list(&u.disable),
                u.balance
            ));
            if !u.websocket.is_empty() {
                out.push_str(&format!("  websocket: {}\n", list(&u.websocket)));
            }
            for (pattern, keys) in u.auth.patterns() {
                out.push_str(&format!("  auth rule: {pattern} ({keys} keys)\n"));
            }
        }
        for (route, entry) in &proxy.migrate {
            out.push_str(&format!("migrate {route}: {}\n", entry.describe()));
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
        for warning in proxy.docs_key_warnings() {
            out.push_str(&format!("warning: {warning}\n"));
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

/// The one warning `framex run` logs at start when FrameX-kit keys that framex-rs
/// does not use are present: the Ray keys (framex-rs runs no Ray), and
/// `sentry.lifecycle = "trace"` (the profiler's; framex-rs does no profiling).
pub fn unused_warning(config: &Config) -> Option<String> {
    let mut unused = unused_keys(config);
    let ray = !unused.is_empty();
    let profiler = config.sentry.lifecycle == crate::config::SentryLifecycle::Trace;
    if profiler {
        unused.push("sentry.lifecycle");
    }
    (!unused.is_empty()).then(|| {
        let why = match (ray, profiler) {
            (true, true) => "Ray keys: framex-rs runs no Ray; sentry.lifecycle: it steers FrameX-kit's profiler, and framex-rs does no profiling (transactions are sent either way)",
            (true, false) => "Ray keys: framex-rs runs no Ray",
            _ => "sentry.lifecycle: it steers FrameX-kit's profiler, and framex-rs does no profiling (transactions are sent either way)",
        };
        format!(
            "FrameX-kit keys accepted but unused: {} ({why}; see \"Coming from FrameX-kit\" in the README)",
            unused.join(", ")
        )
    })
}

/// The FrameX-kit keys present that framex-rs accepts but does not use: `use_ray`
/// and the Ray keys (its dashboard, CPUs, Ray Serve ingress settings).
fn unused_keys(config: &Config) -> Vec<&'static str> {
    let s = &config.server;
    [
        ("base_ingress_config", &config.base_ingress_config),
        ("server.dashboard_host", &s.dashboard_host),
        ("server.dashboard_port", &s.dashboard_port),
        ("server.use_ray", &s.use_ray),
        ("server.num_cpus", &s.num_cpus),
        ("server.ingress_config", &s.ingress_config),
        ("plugins.proxy.ingress_config", &config.plugins.proxy.ingress_config),
    ]
    .into_iter()
    .filter(|(_, v)| v.is_some())
    .map(|(k, _)| k)
    .collect()
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}
