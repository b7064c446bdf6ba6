//! Starting, reloading and stopping a framex-rs server.
//!
//! [`Framex::start`] takes a bound listener (so tests can use port 0), loads the
//! configured plugins, starts the proxy's discovery, and serves until stopped;
//! [`Running::reload`] (`reload`) swaps in a new configuration without a restart;
//! `signals` turns SIGHUP, SIGTERM and SIGINT into reloads and a drain.

mod reload;
mod signals;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::{App, HttpServer};
use arc_swap::ArcSwap;
use framex_actors::{ApiKey, Engine, PluginSpec};

use crate::config::Config;
use crate::http::{self, Readiness, Shared, WorkerState};

pub use reload::{ReloadError, ReloadReport};
use crate::conn_timeouts::{CLIENT_DISCONNECT_TIMEOUT, CLIENT_REQUEST_TIMEOUT, KEEP_ALIVE, TLS_HANDSHAKE_TIMEOUT};
use crate::open_files;
use crate::openapi::DocumentCache;
use crate::plugins;
use crate::proxy::{self, Proxy};

/// The connection limit in force: the configured one, else what the open-file limit
/// allows. Warns when a configured limit cannot be reached because the process may not
/// open that many files (each connection is one, each upstream connection another).
fn max_connections(configured: Option<usize>) -> usize {
    let limits = open_files::limits();
    let Some(max_connections) = configured else {
        return open_files::default_max_connections(limits);
    };
    if let Some(limits) = limits {
        if max_connections as u64 > limits.soft {
            log::warn!(
                "server.max_connections is {max_connections} but the process may open only {} files \
                 (hard limit {}): raise `ulimit -n` or lower max_connections",
                limits.soft,
                limits.hard
            );
        }
    }
    max_connections
}

/// "3 routes, 1 function": what a table serves, for the start-up line.
fn route_count(table: &framex_actors::RouteTable) -> String {
    let (routes, functions) = table.counts();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match functions {
        0 => plural(routes, "route"),
        _ => format!("{}, {}", plural(routes, "route"), plural(functions, "function")),
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A plugin named in the config does not exist.
    #[error("unknown plugin '{name}' in {list} (available: {available})")]
    UnknownPlugin {
        /// The name given.
        name: String,
        /// `load_builtin_plugins` or `load_plugins`.
        list: &'static str,
        /// Names that exist.
        available: String,
    },
    /// A plugin requires an API that nothing can serve.
    #[error("plugin '{plugin}' requires '{api}', which no local plugin serves{hint}")]
    MissingApi {
        /// The plugin.
        plugin: String,
        /// The API.
        api: String,
        /// What would make it resolvable.
        hint: &'static str,
    },
    /// A plugin's start hook (`on_start`) failed.
    #[error("plugin '{plugin}' did not start: its on_start failed: {source}")]
    PluginStart {
        /// The plugin.
        plugin: String,
        /// What the hook answered.
        #[source]
        source: framex_actors::Error,
    },
    /// `[auth.oauth]` cannot log anyone in (a config built without the loader's check).
    #[error("{0}")]
    DocsLogin(String),
    /// The engine refused a plugin (duplicate name or route).
    #[error(transparent)]
    Engine(#[from] framex_actors::Error),
    /// The listener could not be used.
    #[error("cannot serve on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A server to start: its config and the plugins to load beside the configured ones.
pub struct Framex {
    config: Config,
    plugins: Vec<Arc<PluginSpec>>,
}

impl std::fmt::Debug for Framex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framex").field("plugins", &self.plugins.len()).finish()
    }
}

impl Framex {
    /// A server for `config`.
    pub fn new(config: Config) -> Self {
        Framex {
            config,
            plugins: Vec::new(),
        }
    }

    /// Adds a Rust plugin (for embedders and examples).
    pub fn plugin(mut self, plugin: Arc<PluginSpec>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Binds the configured host and port, then starts (see [`Framex::start`]).
    ///
    /// # Errors
    /// As [`Framex::start`], or when the address cannot be bound.
    pub async fn bind_and_start(self) -> Result<Running, StartError> {
        let addr = format!("{}:{}", self.config.server.host, self.config.server.port);
        let listener = TcpListener::bind(&addr).map_err(|source| StartError::Bind { addr, source })?;
        self.start(listener).await
    }

    /// Loads plugins, runs the first discovery of every upstream (an upstream that is
    /// down does not stop the start: its routes appear when it comes up), and serves
    /// on `listener`. Call inside an actix system.
    ///
    /// In steps: load (`choose_plugins`, then registration and the `[auth.oauth]`
    /// check), start (required APIs, the proxy, the shared state and the call hooks,
    /// the plugins' `on_start`), serve (`http_server`).
    ///
    /// # Errors
    /// Unknown plugins, unresolvable `required_remote_apis`, duplicate routes.
    pub async fn start(self, listener: TcpListener) -> Result<Running, StartError> {
        crate::metrics::init();
        let Framex { config, plugins: given } = self;
        let engine = Engine::start();
        // Load: the plugins named in the config and those given, each with its table.
        let loaded = choose_plugins(&config, given)?;
        for plugin in &loaded {
            engine.register_plugin(plugin.clone()).await?;
        }
        if let Some(oauth) = &config.auth.oauth {
            oauth.check().map_err(StartError::DocsLogin)?;
        }
        // Start: every required API served, the proxy's first discovery, the state
        // every request reads (with it, `[limits]` and the migration modes in front of
        // plugins' `CallRemote`s), the plugins' start hooks: their calls go through
        // the same gate as every later call of theirs.
        let proxy_on = config.load_builtin_plugins.iter().any(|n| n == "proxy");
        check_required(&engine, &loaded, proxy_on && config.server.enable_proxy)?;
        let proxy = if proxy_on {
            Some(proxy::start(&engine, &config, None).await)
        } else {
            None
        };
        let (closing, closing_rx) = tokio::sync::watch::channel(false);
        let readiness = Readiness::default();
        let state = Arc::new(ArcSwap::from_pointee(shared_state(
            &engine,
            &config,
            proxy.clone(),
            &readiness,
            &closing_rx,
            None,
            Carried {
                sentry: crate::sentry_events::Reporter::start(&config.sentry, config.server.release(), config.secret_values()),
                docs: Arc::new(http::DocsPage::new(&config, loaded.iter().map(|plugin| &plugin.meta))),
            },
        )));
        install_call_hooks(&engine, &state.load());
        let served = async {
            run_start_hooks(&engine, &loaded).await?;
            // Serve: the HTTP server on the listener.
            let addr = listener.local_addr().map_err(|source| StartError::Bind {
                addr: "listener".to_owned(),
                source,
            })?;
            Ok((addr, http_server(&config, &engine, &state, listener, addr)?))
        };
        let (addr, server) = match served.await {
            Ok(served) => served,
            Err(e) => {
                abandon(proxy.as_ref(), &state.load()).await;
                return Err(e);
            }
        };
        let scheme = if config.server.tls.is_some() { "https" } else { "http" };
        let handle = server.handle();
        let task = actix_rt::spawn(server);
        log::info!("serving on {scheme}://{addr} ({})", route_count(&engine.table()));
        Ok(Running {
            engine,
            addr,
            scheme,
            closing,
            shutdown_timeout: std::time::Duration::from_secs(config.server.shutdown_timeout),
            handle,
            task,
            state,
            readiness,
            live: tokio::sync::Mutex::new(reload::Live { config, proxy }),
        })
    }
}

/// The plugins to load, in load order: `load_builtin_plugins`, then the built-ins
/// `load_plugins` names (once each), then the `given` ones; each with its config table.
fn choose_plugins(config: &Config, given: Vec<Arc<PluginSpec>>) -> Result<Vec<Arc<PluginSpec>>, StartError> {
    let mut loaded = Vec::new();
    for name in &config.load_builtin_plugins {
        if !plugins::BUILTIN.contains(&name.as_str()) {
            return Err(StartError::UnknownPlugin {
                name: name.clone(),
                list: "load_builtin_plugins",
                available: plugins::BUILTIN.join(", "),
            });
        }
        if let Some(plugin) = plugins::builtin(name) {
            loaded.push(plugin);
        }
    }
    for name in &config.load_plugins {
        let found = given.iter().any(|p| &p.meta.name == name) || plugins::builtin(name).is_some();
        if !found {
            return Err(StartError::UnknownPlugin {
                name: name.clone(),
                list: "load_plugins",
                available: given
                    .iter()
                    .map(|p| p.meta.name.clone())
                    .chain(plugins::BUILTIN.iter().map(|s| (*s).to_owned()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if let Some(plugin) = plugins::builtin(name) {
            if !loaded.iter().any(|p| p.meta.name == plugin.meta.name) {
                loaded.push(plugin);
            }
        }
    }
    loaded.extend(given);
    Ok(loaded
        .iter()
        .map(|plugin| plugin.with_config(config.plugins.table_json(&plugin.meta.name)))
        .collect())
}

/// The HTTP server on `listener` (bound to `addr`), running: its workers (each with
/// its share of the engine and of the connection limit), the connection timeouts, TLS
/// or h2c as configured.
fn http_server(
    config: &Config,
    engine: &Engine,
    state: &Arc<ArcSwap<Shared>>,
    listener: TcpListener,
    addr: SocketAddr,
) -> Result<actix_web::dev::Server, StartError> {
    let workers = config
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
        .max(1);
    let per_worker = open_files::per_worker(max_connections(config.server.max_connections), workers);
    let send_timeout = config.server.send_timeout();
    let factory_state = state.clone();
    let factory_engine = engine.clone();
    let mut server = HttpServer::new(move || {
        // HTTP/2 streams in progress count against the same bound as connections
        // (the factory runs on each worker thread).
        actix_http::h2::set_thread_stream_limit(per_worker);
        // How long a client may take none of an answer written to it, or an HTTP/2
        // stream wait for window (the patched actix-http's write stall), set per
        // worker thread as the limits above.
        actix_http::h1::set_thread_write_stall(send_timeout);
        let engine = factory_engine.start_worker();
        App::new().default_service(http::service(WorkerState::new(factory_state.clone(), engine.router, engine.pools)))
    })
    .shutdown_timeout(config.server.shutdown_timeout)
    // Small writes (an SSE event, a short reply) leave at once, as with nginx's
    // default `tcp_nodelay on`; Nagle would hold them for the peer's ACK.
    .tcp_nodelay(true)
    // Set here rather than inherited, so they are a decision (see the README):
    // the request head must arrive within 5 s (slower → 408), an idle keep-alive
    // connection closes after 5 s, and a closing connection gets 1 s to drain.
    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
    .keep_alive(KEEP_ALIVE)
    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
    // (The head timeout covers a kept-alive connection's next request too: see
    // patches/README.md.)
    // `Expect: 100-continue` is granted only to requests [auth] lets through.
    .on_connect({
        let expect = http::expect_check(state.clone());
        move |_connection, extensions| {
            extensions.insert(expect.clone());
        }
    })
    .disable_signals();
    // The per-worker limits divide the process's among actix-server's workers.
    server = server
        .workers(workers)
        .max_connections(per_worker)
        // actix-tls pauses accepting on every listener while 256 handshakes are in
        // progress on a worker (its default): silent clients then starve everyone.
        // Handshakes in progress are connections like any other, under the same limit.
        .max_connection_rate(per_worker)
        .tls_handshake_timeout(TLS_HANDSHAKE_TIMEOUT);
    let server = match (&config.server.tls, config.server.h2c) {
        // ALPN offers h2, then http/1.1 (actix-web adds both).
        (Some(tls), _) => server.listen_rustls_0_23(listener, (*tls.config).clone()),
        // A client that opens with the HTTP/2 preface gets HTTP/2, others HTTP/1.1.
        (None, true) => server.listen_auto_h2c(listener),
        (None, false) => server.listen(listener),
    }
    .map_err(|source| StartError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    Ok(server.run())
}

/// Every plugin's `required_remote_apis` must be served locally, or the proxy must be
/// enabled to serve it.
fn check_required(
    engine: &Engine,
    plugins: &[Arc<PluginSpec>],
    proxy_enabled: bool,
) -> Result<(), StartError> {
    let table = engine.table();
    for plugin in plugins {
        for api in &plugin.meta.required_remote_apis {
            let local = table
                .by_name(api, &Default::default())
                .is_some_and(|r| r.target.is_local())
                || table.contains(&ApiKey::Function(api.clone()));
            if !local && !proxy_enabled {
                return Err(StartError::MissingApi {
                    plugin: plugin.meta.name.clone(),
                    api: api.clone(),
                    hint: " and the proxy is not enabled (load_builtin_plugins = [\"proxy\"], [server] enable_proxy = true)",
                });
            }
        }
    }
    Ok(())
}

/// Undoes a start that failed once the proxy and the reporter were started: the
/// proxy's control plane stopped (its re-discovery, health checks and DNS rounds would
/// go on), Sentry's queue sent.
async fn abandon(proxy: Option<&Proxy>, state: &Shared) {
    if let Some(proxy) = proxy {
        proxy.stop().await;
    }
    if let Some(sentry) = state.sentry.clone() {
        let _ = actix_rt::task::spawn_blocking(move || sentry.close()).await;
    }
}

/// Runs every plugin's `on_start` once, in load order; the first failure stops the
/// start-up. Their `CallRemote`s go through the call hooks already installed
/// (`[limits]`, counted per calling plugin as its later calls are; migration modes).
async fn run_start_hooks(engine: &Engine, plugins: &[Arc<PluginSpec>]) -> Result<(), StartError> {
    for plugin in plugins {
        if let Some(hook) = &plugin.on_start {
            let cx = framex_actors::Ctx::starting(plugin, engine.start_router());
            hook(cx).await.map_err(|source| StartError::PluginStart {
                plugin: plugin.meta.name.clone(),
                source,
            })?;
            log::info!("plugin {}: on_start done", framex_actors::Escaped(&plugin.meta.name));
        }
    }
    Ok(())
}

/// What a reload keeps from the state it replaces (made once, at start).
struct Carried {
    /// `[sentry]`'s client (restart-only).
    sentry: Option<Arc<crate::sentry_events::Reporter>>,
    /// The docs header's start time and plugins (buttons follow the config).
    docs: Arc<http::DocsPage>,
}

/// Puts `state`'s migration modes and `[limits]` in front of `CallRemote`s from
/// plugins too (no modes, no rules: no policy, no gate, no cost). Called where a state
/// is stored, so that the engine always follows the state requests read.
fn install_call_hooks(engine: &Engine, state: &Shared) {
    let migration = &state.migration;
    let policy: Option<Arc<dyn framex_actors::CallPolicy>> = (!migration.is_empty()).then(|| migration.clone() as _);
    engine.set_call_policy(policy);
    engine.set_call_gate(state.limits.clone().map(|l| l as Arc<dyn framex_actors::CallGate>));
}

/// The state every request reads, made from one configuration.
fn shared_state(
    engine: &Engine,
    config: &Config,
    proxy: Option<Proxy>,
    readiness: &Readiness,
    closing: &tokio::sync::watch::Receiver<bool>,
    previous: Option<&Shared>,
    carried: Carried,
) -> Shared {
    let migration = Arc::new(http::migrate::Migration::from_config(&config.plugins.proxy.migrate));
    let cache = match crate::cache::Cache::from_config(&config.cache, &config.plugins.proxy.cache) {
        Ok(cache) => cache.map(Arc::new),
        Err(e) => {
            log::error!("request cache off: {e}");
            None
        }
    };
    let limits = crate::limits::Limiter::build(config, previous.and_then(|p| p.limits.as_deref()));
    Shared {
        cache,
        sentry: carried.sentry,
        docs: carried.docs,
        closing: closing.clone(),
        engine: engine.clone(),
        auth: config.auth.rules.clone(),
        our_keys: http::OurKeys::of(&config.auth.rules),
        limits,
        docs_login: config.auth.oauth.as_ref().and_then(|oauth| {
            let previous = previous.and_then(|p| p.docs_login.as_deref());
            http::docs_login::DocsLogin::new(oauth, previous)
                .map_err(|e| log::error!("docs login off: {}", framex_actors::Escaped(&e)))
                .ok()
                .map(Arc::new)
        }),
        max_hops: config.plugins.proxy.max_hops,
        max_body_size: config.server.max_body_size,
        body_deadlines: http::BodyDeadlines::from_config(&config.server),
        access_log: config.server.access_log,
        version: actix_web::web::Bytes::from(config.server.version_json()),
        raw_paths: config.server.excluded_log_paths.clone(),
        log_ignored: config.log.ignored_contains.clone(),
        trusted_proxies: config.server.trusted_proxies.clone(),
        timeout: config.plugins.proxy.timeout(),
        openapi: DocumentCache::default(),
        migration,
        proxy,
        readiness: Readiness {
            draining: readiness.draining.clone(),
            without: config.server.ready_without.clone(),
            logged: readiness.logged.clone(),
        },
    }
}

/// A running server.
pub struct Running {
    engine: Engine,
    addr: SocketAddr,
    scheme: &'static str,
    /// Tells open WebSocket tunnels to close (1001).
    closing: tokio::sync::watch::Sender<bool>,
    shutdown_timeout: std::time::Duration,
    handle: actix_web::dev::ServerHandle,
    task: actix_rt::task::JoinHandle<std::io::Result<()>>,
    /// What every request reads; a reload stores a new one.
    state: Arc<ArcSwap<Shared>>,
    /// Whether the server is draining (shared with every state).
    readiness: Readiness,
    /// The configuration and proxy in force; a reload replaces them (one at a time).
    live: tokio::sync::Mutex<reload::Live>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish()
    }
}

impl Running {
    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`, or `https://` on a TLS listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// The engine, to register plugins or routes at run time.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The proxy in force, when loaded (to trigger discovery, read pool stats).
    pub fn proxy(&self) -> Option<Proxy> {
        self.state.load().proxy.clone()
    }

    /// From now on `/ready` answers 503 "draining" (SIGTERM does this before it
    /// stops accepting connections).
    pub fn start_draining(&self) {
        self.readiness.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops serving; `graceful` lets in-flight requests finish first.
    pub async fn stop(self, graceful: bool) {
        if let Some(proxy) = self.proxy() {
            proxy.stop().await;
        }
        let sentry = self.state.load().sentry.clone();
        let _ = self.closing.send(true);
        self.handle.stop(graceful).await;
        let _ = self.task.await;
        if let Some(sentry) = sentry {
            // Blocks while the queue drains (two seconds at most), off the runtime.
            let _ = actix_rt::task::spawn_blocking(move || sentry.close()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use framex_actors::upstream::{PoolConfig, PoolShared, UpstreamTarget};
    use framex_actors::{ApiSpec, UpstreamRoute};

    use super::*;

    /// A state made of the default configuration.
    fn state_of(engine: &Engine, config: &Config) -> Arc<Shared> {
        let (_, closing) = tokio::sync::watch::channel(false);
        let carried = Carried { sentry: None, docs: Arc::new(http::DocsPage::new(config, std::iter::empty())) };
        Arc::new(shared_state(engine, config, None, &Readiness::default(), &closing, None, carried))
    }

    /// A worker's request reads the state and the route table as they were when it
    /// came in, the next request the ones stored since; a worker that serves nothing
    /// lets a replaced state and table go within about a second (its view is looked
    /// at again).
    #[actix_rt::test]
    async fn a_worker_follows_reloads_and_routes_and_lets_the_old_state_go() {
        let (engine, config) = (Engine::start(), Config::default());
        let state = Arc::new(ArcSwap::new(state_of(&engine, &config)));
        let parts = engine.start_worker();
        let pools = parts.pools.clone();
        let worker = WorkerState::new(state.clone(), parts.router, parts.pools);
        let publish = |path: &'static str| {
            let pool = PoolShared::new(PoolConfig::single("http://127.0.0.1:9".parse().unwrap()));
            let target = Arc::new(UpstreamTarget { pool, auth: Default::default(), filter: None });
            let spec = Arc::new(ApiSpec::new(ApiKey::http(framex_actors::Method::GET, path)));
            engine.set_upstream_routes("u", vec![UpstreamRoute { spec, target }])
        };

        let first = worker.view();
        state.store(state_of(&engine, &config));
        publish("/a").await.unwrap();
        let second = worker.view();
        // A request's pool lookup: the worker's pool replicas see the table too.
        pools.prune();
        assert!(!Arc::ptr_eq(&first.shared, &second.shared), "the next request reads the reloaded state");
        assert!(Arc::ptr_eq(&second.shared, &state.load()), "the one stored");
        assert_eq!(second.table.routes().count(), 1, "and the table published since");

        let (old_state, old_table) = (Arc::downgrade(&second.shared), Arc::downgrade(&second.table));
        drop((first, second));
        state.store(state_of(&engine, &config));
        // (Before any await: the worker's refresh may run at any await from here on.)
        assert!(old_state.upgrade().is_some(), "kept by the worker's view until it looks again");
        publish("/b").await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while (old_state.upgrade().is_some() || old_table.upgrade().is_some()) && std::time::Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(old_state.upgrade().is_none(), "an idle worker let the replaced state go");
        assert!(old_table.upgrade().is_none(), "and the replaced table");
    }

    /// Serves HTTP/1 on this thread (a worker's, for the thread's spare buffers) with
    /// `handler`, on a port of 127.0.0.1.
    async fn serve_here<F, Fut>(handler: F) -> std::net::SocketAddr
    where
        F: Fn(actix_http::Request) -> Fut + Clone + 'static,
        Fut: std::future::Future<Output = Result<actix_http::Response<actix_http::body::BoxBody>, std::convert::Infallible>> + 'static,
    {
        use actix_web::dev::{Service, ServiceFactory};
        let factory = actix_http::HttpService::build().h1(actix_web::dev::fn_service(handler)).tcp();
        let service = std::rc::Rc::new(factory.new_service(()).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        actix_rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = service.clone();
                actix_rt::spawn(async move { service.call(stream).await });
            }
        });
        address
    }

    /// The thread's spare pairs, once `kept` holds of their count or `within` passed.
    async fn spares_once(kept: impl Fn(usize) -> bool, within: Duration) -> usize {
        let deadline = std::time::Instant::now() + within;
        while !kept(actix_http::h1::spare_buffers::kept()) && std::time::Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        actix_http::h1::spare_buffers::kept()
    }

    /// HTTP/1 connections waiting between two requests give their buffers to the
    /// thread's spares, for the next reads; while bursts keep taking them, the worker's
    /// one-second refresh keeps them all; once the bursts stop, it lets them go, down
    /// to 16 pairs, within a few seconds.
    #[actix_rt::test]
    async fn a_worker_lets_the_buffers_of_a_burst_go() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (engine, config) = (Engine::start(), Config::default());
        let parts = engine.start_worker();
        let _worker = WorkerState::new(Arc::new(ArcSwap::new(state_of(&engine, &config))), parts.router, parts.pools);
        // Each request is answered once all 100 connections hold one: 100 connections
        // with buffers at once, every round.
        let all_in = std::rc::Rc::new(tokio::sync::Barrier::new(100));
        let address = serve_here(move |_| {
            let all_in = all_in.clone();
            async move {
                all_in.wait().await;
                Ok(actix_http::Response::ok())
            }
        })
        .await;
        let mut clients = Vec::new();
        for _ in 0..100 {
            clients.push(tokio::net::TcpStream::connect(address).await.unwrap());
        }
        // Bursts 300 ms apart for 3 s: the refresh runs between some of them.
        for round in 0..10 {
            let burst = async {
                for client in &mut clients {
                    client.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
                }
                for client in &mut clients {
                    let mut answer = [0u8; 256];
                    let n = client.read(&mut answer).await.unwrap();
                    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
                }
            };
            tokio::time::timeout(Duration::from_secs(20), burst).await.expect("a burst answered");
            let kept = spares_once(|kept| kept >= 100, Duration::from_secs(2)).await;
            assert_eq!(kept, 100, "round {round}: each idle connection gave its pair to the thread");
            actix_rt::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(actix_http::h1::spare_buffers::kept(), 100, "round {round}: pairs in use are kept");
        }
        let after = spares_once(|kept| kept <= 16, Duration::from_secs(5)).await;
        assert_eq!(after, 16, "the worker let the unused pairs go, keeping 16");
        drop(clients);
    }

    /// A connection whose read buffer grew (requests pipelined faster than they are
    /// served) frees its buffers when it goes idle rather than keeping them on the
    /// thread: a kept pair is of the usual size.
    #[actix_rt::test]
    async fn a_grown_buffer_is_not_kept() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let address = serve_here(|_| async { Ok(actix_http::Response::ok()) }).await;
        // Sends `requests` pipelined GETs in one write and reads every answer.
        let pipelined = |requests: usize| async move {
            let (mut reader, mut writer) = tokio::net::TcpStream::connect(address).await.unwrap().into_split();
            let bytes = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(requests);
            let writing = actix_rt::spawn(async move {
                writer.write_all(&bytes).await.unwrap();
                writer
            });
            let (mut read, mut answers) = (Vec::new(), 0);
            while answers < requests {
                let mut chunk = [0u8; 16 * 1024];
                let n = reader.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed after {answers} answers");
                read.extend_from_slice(&chunk[..n]);
                answers = read.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
            }
            (reader, writing.await.unwrap())
        };
        let within = Duration::from_secs(20);
        let small = tokio::time::timeout(within, pipelined(10)).await.expect("10 answered");
        assert_eq!(spares_once(|kept| kept >= 1, Duration::from_secs(2)).await, 1, "a usual pair is kept");
        // 4,000 requests (108 KB) in one write: the read buffer grows to hold them.
        let (mut reader, mut writer) = tokio::time::timeout(within, pipelined(4000)).await.expect("4,000 answered");
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(actix_http::h1::spare_buffers::kept(), 0, "the grown pair was freed, not kept");
        // The connection did give its grown pair up: its next request is read into a
        // new pair of the usual size, which it keeps on the thread once answered (had
        // it still held the grown one, that would be freed now and none kept).
        writer.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let mut answer = [0u8; 256];
        let n = tokio::time::timeout(within, reader.read(&mut answer)).await.expect("answered").unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
        assert_eq!(spares_once(|kept| kept >= 1, Duration::from_secs(2)).await, 1, "a new usual pair is kept");
        drop(small);
    }
}
