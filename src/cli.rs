//! The command line: `framex run`, `framex check`, `framex routes`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use framex_actors::{ApiKey, Engine};

use crate::config::Config;
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
    /// Built-in plugins to load, replacing `load_builtin_plugins` (repeatable).
    #[arg(long = "load-builtin-plugins", value_name = "NAME")]
    pub load_builtin_plugins: Vec<String>,
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
        if !self.load_builtin_plugins.is_empty() {
            config.load_builtin_plugins = self.load_builtin_plugins.clone();
        }
        if self.enable_proxy {
            config.server.enable_proxy = true;
        }
        if self.no_enable_proxy {
            config.server.enable_proxy = false;
        }
    }
}

/// Discovers every upstream of `config` once and renders the routing table: method,
/// path, target and whether the route streams, one route per line.
pub async fn route_listing(config: &Config) -> Result<String, framex_actors::Error> {
    let engine = Engine::start();
    for name in &config.load_builtin_plugins {
        if let Some(plugin) = plugins::builtin(name) {
            engine.register_plugin(plugin).await?;
        }
    }
    if config.load_builtin_plugins.iter().any(|n| n == "proxy") {
        for (url, e) in proxy::Proxy::new(&engine, config).discover_all().await {
            log::warn!("proxy {}: {}", framex_actors::Escaped(&url), framex_actors::Escaped(&e));
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
            route.target.describe(),
            if route.spec.streaming { "yes" } else { "no" }
        ));
    }
    Ok(out)
}
