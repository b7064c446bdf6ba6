//! The router replica: one per arbiter, routing calls to that arbiter's plugin and
//! pool actors.
//!
//! Every replica reads the same published [`RouteTable`] snapshot (lock-free), and
//! starts, on its own arbiter, the [`PluginActor`]s and [`UpstreamPool`]s its routes
//! need, so a request's messages and bytes stay on the thread that accepted it.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::api::Args;
use crate::call::{CallContext, CallRemote, Reply};
use crate::error::Error;
use crate::plugin::{Invoke, PluginActor, PluginSpec};
use crate::route_table::{Route, RouteTable, Target};
use crate::upstream::{Call, PoolShared, UpstreamPool};

/// Calls a route already looked up (the HTTP edge matches the path itself, since it
/// needs the signature to read the arguments out of the request).
#[derive(Debug)]
pub struct Dispatch {
    /// The matched route.
    pub route: Arc<Route>,
    /// Arguments bound by name.
    pub args: Args,
    /// Deadline, request id, hops.
    pub ctx: CallContext,
}

impl Message for Dispatch {
    type Result = Result<Reply, Error>;
}

/// A router replica.
pub struct Router {
    table: Arc<ArcSwap<RouteTable>>,
    // Keyed by the Arc's address; the Arc is kept beside the actor so the address
    // cannot be reused by another plugin or pool while the entry lives.
    plugins: HashMap<*const PluginSpec, (Arc<PluginSpec>, Addr<PluginActor>)>,
    pools: HashMap<*const PoolShared, (Arc<PoolShared>, Addr<UpstreamPool>)>,
}

impl Router {
    /// A replica reading `table`; start it on the arbiter it serves.
    pub fn new(table: Arc<ArcSwap<RouteTable>>) -> Self {
        Router {
            table,
            plugins: HashMap::new(),
            pools: HashMap::new(),
        }
    }

    fn plugin_actor(&mut self, plugin: &Arc<PluginSpec>, me: Addr<Router>) -> Addr<PluginActor> {
        self.plugins
            .entry(Arc::as_ptr(plugin))
            .or_insert_with(|| (plugin.clone(), PluginActor::new(plugin.clone(), me).start()))
            .1
            .clone()
    }

    fn pool_actor(&mut self, pool: &Arc<PoolShared>) -> Addr<UpstreamPool> {
        self.pools
            .entry(Arc::as_ptr(pool))
            .or_insert_with(|| (pool.clone(), UpstreamPool::new(pool.clone()).start()))
            .1
            .clone()
    }

    fn dispatch(
        &mut self,
        route: Arc<Route>,
        args: Args,
        ctx: CallContext,
        me: Addr<Router>,
    ) -> ResponseFuture<Result<Reply, Error>> {
        match &route.target {
            Target::Local { plugin, api } => {
                let actor = self.plugin_actor(plugin, me);
                let invoke = Invoke {
                    api: api.clone(),
                    args,
                    ctx,
                };
                Box::pin(async move { actor.send(invoke).await? })
            }
            Target::Upstream(target) => {
                let actor = self.pool_actor(&target.pool);
                let call = Call {
                    target: target.clone(),
                    spec: route.spec.clone(),
                    args,
                    ctx,
                };
                Box::pin(async move { actor.send(call).await? })
            }
        }
    }

    /// Forgets the actors of plugins and pools no longer in the table.
    fn prune(&mut self) {
        let table = self.table.load();
        let mut plugins = std::collections::HashSet::new();
        let mut pools = std::collections::HashSet::new();
        for route in table.routes() {
            match &route.target {
                Target::Local { plugin, .. } => plugins.insert(Arc::as_ptr(plugin)),
                Target::Upstream(t) => pools.insert(Arc::as_ptr(&t.pool)),
            };
        }
        self.plugins.retain(|k, _| plugins.contains(k));
        self.pools.retain(|k, _| pools.contains(k));
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(std::time::Duration::from_secs(30), |this, _| this.prune());
    }
}

impl Handler<CallRemote> for Router {
    type Result = ResponseFuture<Result<Reply, Error>>;

    fn handle(&mut self, msg: CallRemote, ctx: &mut Context<Self>) -> Self::Result {
        let Some(route) = self.table.load().by_name(&msg.api, &msg.args) else {
            return Box::pin(async move { Err(Error::NoRoute { api: msg.api }) });
        };
        self.dispatch(route, msg.args, msg.ctx, ctx.address())
    }
}

impl Handler<Dispatch> for Router {
    type Result = ResponseFuture<Result<Reply, Error>>;

    fn handle(&mut self, msg: Dispatch, ctx: &mut Context<Self>) -> Self::Result {
        self.dispatch(msg.route, msg.args, msg.ctx, ctx.address())
    }
}
