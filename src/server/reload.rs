//! Live reload: a new configuration takes effect for new requests without a restart.
//!
//! What changes: upstreams (added, removed, their filters and pool policies), `[auth]`
//! and upstream key rules, `[limits]` rules (a rule whose pattern and settings did not
//! change keeps its counters), limits and timeouts, `force_stream_apis`, the access log,
//! trusted proxies, readiness exceptions. A new proxy takes over from the old one
//! (an upstream URL both configs list keeps its counters, health and last document
//! until rediscovered), publishes its routes to the registry, and the old one stops.
//! Requests and streams in flight keep the state and pools they started with.
//!
//! A renewed certificate (`server.tls_cert` / `server.tls_key`, the same paths or
//! others) is read and checked with the config and serves the next handshakes.
//!
//! What needs a restart, and is reported as such rather than ignored: the listener
//! (`server.host`, `server.port`, HTTPS on or off, `server.h2c`), `server.workers`, `server.max_connections`, `server.send_timeout`,
//! `server.shutdown_timeout`, `server.pid_file` and the plugins loaded
//! (`load_builtin_plugins`, `load_plugins`), and `[sentry]`. A configuration that does not load
//! (bad TOML, an invalid value) is refused before anything changes — that check is
//! the loader's, so a reload only ever sees valid configurations.

use std::sync::Arc;

use crate::config::Config;
use crate::proxy::{self, Proxy};

use super::{install_call_hooks, shared_state, Carried, Running};

/// The configuration and proxy in force.
pub(super) struct Live {
    pub(super) config: Config,
    pub(super) proxy: Option<Proxy>,
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Keys whose new values wait for a restart (the old ones stay in force).
    pub restart_needed: Vec<&'static str>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration could not be loaded (the message names the key).
    #[error("reload refused, the running configuration stays: {0}")]
    Config(String),
}

impl Running {
    /// Makes `new` the configuration of new requests (see the module doc for what
    /// changes and what waits for a restart). Serialized: one reload at a time.
    pub async fn reload(&self, mut new: Config) -> ReloadReport {
        // Before any line that could name them goes to Sentry.
        crate::sentry_logs::add_secrets(new.secret_values());
        let mut live = self.live.lock().await;
        let restart_needed = restart_only_changes(&live.config, &new);
        for change in migration_changes(&live.config.plugins.proxy.migrate, &new.plugins.proxy.migrate) {
            log::info!("reload: {change}");
        }
        // Restart-only keys keep their running values, so that what is reported
        // as waiting does not half-apply.
        keep_restart_only(&live.config, &mut new);
        let proxy = match &live.proxy {
            Some(old) => {
                // The old control plane stops first: a re-discovery of its own could
                // otherwise publish the old routes after the new proxy's (the new one
                // takes over what the old one knew, so no route blinks out).
                old.stop().await;
                Some(proxy::start(&self.engine, &new, Some(old)).await)
            }
            None => None,
        };
        let old = self.state.load_full();
        let carried = Carried { sentry: old.sentry.clone(), docs: Arc::new(old.docs.reconfigured(&new)) };
        let state = shared_state(&self.engine, &new, proxy.clone(), &self.readiness, &self.closing.subscribe(), Some(&old), carried);
        install_call_hooks(&self.engine, &state);
        self.state.store(Arc::new(state));
        *live = Live { config: new, proxy };
        for key in &restart_needed {
            log::warn!("reload: {key} changed; it takes effect at the next restart");
        }
        log::info!("reload: the new configuration serves new requests");
        ReloadReport { restart_needed }
    }
}

/// What a reload changes in `[plugins.proxy.migrate]`, one line per route whose mode
/// changes (`migrate /api/v1/a: shadow → canary`); a route without an entry is `local`.
fn migration_changes(old: &crate::config::MigrateConfig, new: &crate::config::MigrateConfig) -> Vec<String> {
    let mode = |config: &crate::config::MigrateConfig, route: &str| {
        config.get(route).map_or("local", |entry| entry.mode.as_str())
    };
    let routes: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    routes
        .into_iter()
        .filter(|route| mode(old, route) != mode(new, route))
        .map(|route| {
            format!(
                "migrate {}: {} → {}",
                framex_actors::Escaped(route),
                mode(old, route),
                mode(new, route)
            )
        })
        .collect()
}

/// The keys that differ between `old` and `new` and only a restart can apply.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.server, &new.server);
    [
        ("server.host", o.host != n.host),
        ("server.port", o.port != n.port),
        ("server.workers", o.workers != n.workers),
        ("server.max_connections", o.max_connections != n.max_connections),
        ("server.send_timeout", o.send_timeout != n.send_timeout),
        ("server.shutdown_timeout", o.shutdown_timeout != n.shutdown_timeout),
        ("server.pid_file", o.pid_file != n.pid_file),
        ("server.tls_cert", o.tls.is_some() != n.tls.is_some()),
        ("server.h2c", o.h2c != n.h2c),
        ("load_builtin_plugins", old.load_builtin_plugins != new.load_builtin_plugins),
        ("load_plugins", old.load_plugins != new.load_plugins),
        ("sentry", old.sentry != new.sentry),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// Puts the running values of the restart-only keys back into `new`.
fn keep_restart_only(old: &Config, new: &mut Config) {
    let (o, n) = (&old.server, &mut new.server);
    n.host.clone_from(&o.host);
    n.port = o.port;
    n.workers = o.workers;
    n.max_connections = o.max_connections;
    n.send_timeout = o.send_timeout;
    n.shutdown_timeout = o.shutdown_timeout;
    n.pid_file.clone_from(&o.pid_file);
    n.h2c = o.h2c;
    // The listener keeps its TLS setup; a renewed certificate goes into its store.
    if let (Some(running), Some(renewed)) = (&o.tls, &n.tls) {
        running.certs.take_from(&renewed.certs);
    }
    n.tls.clone_from(&o.tls);
    new.load_builtin_plugins.clone_from(&old.load_builtin_plugins);
    new.load_plugins.clone_from(&old.load_plugins);
    new.sentry.clone_from(&old.sentry);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload names every route whose migration mode it changes, added routes too.
    #[test]
    fn a_mode_change_is_named() {
        let config = |toml: &str| Config::from_toml_str(toml, "test").unwrap();
        let old = config("[plugins.proxy.migrate]\n\"/a\" = { mode = \"shadow\" }\n\"/b\" = { mode = \"upstream\" }\n");
        let new = config("[plugins.proxy.migrate]\n\"/a\" = { mode = \"canary\", percent = 10 }\n\"/b\" = { mode = \"upstream\" }\n\"/c\" = { mode = \"shadow\" }\n");
        let changes = migration_changes(&old.plugins.proxy.migrate, &new.plugins.proxy.migrate);
        assert_eq!(changes, ["migrate /a: shadow → canary", "migrate /c: local → shadow"]);
    }

    #[test]
    fn listener_workers_and_plugins_wait_for_a_restart() {
        let old = Config::from_toml_str("load_builtin_plugins = [\"echo\"]\n[server]\nport = 8080", "t").unwrap();
        let mut new = Config::from_toml_str(
            "load_builtin_plugins = [\"echo\", \"proxy\"]\n[server]\nport = 9090\nworkers = 3\naccess_log = true\nsend_timeout = 2",
            "t",
        )
        .unwrap();
        assert_eq!(
            restart_only_changes(&old, &new),
            vec!["server.port", "server.workers", "server.send_timeout", "load_builtin_plugins"]
        );
        keep_restart_only(&old, &mut new);
        assert_eq!((new.server.port, new.server.workers, new.server.send_timeout), (8080, None, 10.0));
        assert_eq!(new.load_builtin_plugins, vec!["echo"]);
        assert_ne!(new.server.access_log, crate::config::AccessLog::Off, "what a reload can apply stays new");
        assert!(restart_only_changes(&old, &new).is_empty());
    }
}
