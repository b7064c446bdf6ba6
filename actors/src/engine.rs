//! The engine handle: the published table, the registry, and router replicas.

use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::call_gate::{CallGate, SharedGate};
use crate::call_policy::{CallPolicy, SharedPolicy};
use crate::error::Error;
use crate::plugin_spec::PluginSpec;
use crate::registry::{RegisterPlugin, Registry, SetUpstreamRoutes, RouteReport, UnregisterPlugin, UpstreamRoute};
use crate::route_table::RouteTable;
use crate::router::Router;
use crate::pool_replicas::PoolReplicas;

/// One arbiter's share of the engine (see [`Engine::start_worker`]); not `Send`.
#[derive(Clone)]
pub struct WorkerEngine {
    /// The arbiter's router replica.
    pub router: Addr<Router>,
    /// The arbiter's pool replicas, owned with the router.
    pub pools: PoolReplicas,
}

/// A running engine. Cheap to clone and `Send`: hand it to every worker.
#[derive(Clone)]
pub struct Engine {
    table: Arc<ArcSwap<RouteTable>>,
    registry: Addr<Registry>,
    policy: SharedPolicy,
    gate: SharedGate,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("routes", &self.table.load().len()).finish()
    }
}

impl Engine {
    /// Starts the registry on the current arbiter (call inside a running actix system).
    pub fn start() -> Self {
        let table = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
        let registry = Registry::new(table.clone()).start();
        let policy = Arc::new(ArcSwap::from_pointee(None));
        let gate = Arc::new(ArcSwap::from_pointee(None));
        Engine { table, registry, policy, gate }
    }

    /// Starts a router replica on the current arbiter. Each worker starts its own.
    pub fn start_router(&self) -> Addr<Router> {
        self.start_worker().router
    }

    /// Starts the current arbiter's share of the engine: its pool replicas and the
    /// router replica that owns them. The HTTP worker of the arbiter keeps both: it
    /// forwards matched requests on the replicas directly and sends calls to the router.
    pub fn start_worker(&self) -> WorkerEngine {
        let pools = PoolReplicas::new(self.table.clone());
        let router = Router::new(self.table.clone(), pools.clone())
            .with_policy(self.policy.clone())
            .with_gate(self.gate.clone())
            .start();
        WorkerEngine { router, pools }
    }

    /// Installs (or, with `None`, removes) the policy that routes `CallRemote`s to
    /// routes a local plugin serves and an upstream served before it.
    pub fn set_call_policy(&self, policy: Option<Arc<dyn CallPolicy>>) {
        self.policy.store(Arc::new(policy));
    }

    /// Installs (or, with `None`, removes) the gate that admits `CallRemote`s
    /// (framex-rs's `[limits]`, counted per calling plugin).
    pub fn set_call_gate(&self, gate: Option<Arc<dyn CallGate>>) {
        self.gate.store(Arc::new(gate));
    }

    /// The current routing table.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// The published table, for lock-free reads on a hot path (`.load()`).
    pub fn published(&self) -> &ArcSwap<RouteTable> {
        &self.table
    }

    /// The registry, for messages this handle has no helper for.
    pub fn registry(&self) -> &Addr<Registry> {
        &self.registry
    }

    /// Registers a local plugin; its routes serve the next call.
    ///
    /// # Errors
    /// When its name or one of its routes is already taken by a local plugin.
    pub async fn register_plugin(&self, plugin: Arc<PluginSpec>) -> Result<(), Error> {
        self.registry.send(RegisterPlugin(plugin)).await?
    }

    /// Removes a local plugin; returns whether it was loaded.
    ///
    /// # Errors
    /// When the registry is gone.
    pub async fn unregister_plugin(&self, name: &str) -> Result<bool, Error> {
        Ok(self.registry.send(UnregisterPlugin(name.to_owned())).await?)
    }

    /// Replaces the routes of one upstream source.
    ///
    /// # Errors
    /// When the registry is gone.
    pub async fn set_upstream_routes(
        &self,
        source: &str,
        routes: Vec<UpstreamRoute>,
    ) -> Result<RouteReport, Error> {
        Ok(self
            .registry
            .send(SetUpstreamRoutes {
                source: source.to_owned(),
                routes,
            })
            .await?)
    }
}
