//! The router replica: one per arbiter, routing calls to that arbiter's plugin actors
//! and upstream pool actors.
//!
//! Every replica reads the same published [`RouteTable`] snapshot (lock-free), and
//! starts, on its own arbiter, the [`PluginActor`]s and [`UpstreamPool`]s its routes
//! need, so a request's messages and bytes stay on the thread that accepted it. A call
//! reaches its target as a message: [`Invoke`] to a plugin actor, [`CallUpstream`] to a
//! pool actor. The arbiter's pool actors ([`PoolReplicas`]) are shared with its HTTP
//! worker, which forwards matched requests on the replicas they own without a mailbox
//! hop.
//!
//! [`UpstreamPool`]: crate::upstream::UpstreamPool

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::api::Args;
use crate::call::{CallContext, CallRemote, Reply};
use crate::call_policy::{Pick, SharedPolicy};
use crate::error::Error;
use crate::plugin::{Invoke, PluginActor, PluginSpec};
use crate::route_table::{Route, RouteTable, Target};
use crate::upstream::{CallUpstream, PoolReplicas};

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

/// How often a replica forgets the plugin actors of plugins that were unregistered,
/// and retires the pool actors of pools no longer routed to.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// A router replica.
pub struct Router {
    table: Arc<ArcSwap<RouteTable>>,
    /// This arbiter's plugin actors, by plugin name (names are unique in the registry).
    plugins: HashMap<String, (Arc<PluginSpec>, Addr<PluginActor>)>,
    /// This arbiter's pool replicas (shared with its HTTP worker).
    pools: PoolReplicas,
    /// Where `CallRemote`s to migrating routes go (none: local as usual).
    policy: Option<SharedPolicy>,
}

impl Router {
    /// A replica reading `table` and calling upstreams through `pools`; start it on
    /// the arbiter it serves.
    pub fn new(table: Arc<ArcSwap<RouteTable>>, pools: PoolReplicas) -> Self {
        Router {
            table,
            plugins: HashMap::new(),
            pools,
            policy: None,
        }
    }

    /// The same replica, asking `policy` where `CallRemote`s to migrating routes go.
    pub fn with_policy(mut self, policy: SharedPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// A `CallRemote` to `route` as the installed policy routes it, or `None` when the
    /// local plugin answers as usual.
    fn migrate(
        &mut self,
        route: &Arc<Route>,
        args: &Args,
        ctx: &CallContext,
        me: &Addr<Router>,
    ) -> Option<ResponseFuture<Result<Reply, Error>>> {
        if !route.target.is_local() {
            return None;
        }
        let policy = self.policy.as_ref()?.load();
        let policy = Option::as_ref(&policy)?.clone();
        let shadowed = self.table.load().shadowed(&route.spec.key)?.clone();
        match policy.pick(route)? {
            Pick::Upstream => Some(self.dispatch(shadowed, args.clone(), ctx.clone(), me.clone())),
            Pick::Local => {
                let call = self.dispatch(route.clone(), args.clone(), ctx.clone(), me.clone());
                let route = route.clone();
                Some(Box::pin(async move {
                    let answer = call.await;
                    policy.local_answered(&route, &answer);
                    answer
                }))
            }
            Pick::Shadow(permit) => {
                let upstream = self.dispatch(shadowed, args.clone(), ctx.clone(), me.clone());
                let local = self.dispatch(route.clone(), args.clone(), ctx.clone(), me.clone());
                let (route, ctx) = (route.clone(), ctx.clone());
                let (answered, upstream_value) = futures::channel::oneshot::channel();
                // Off the caller's path: it never waits for the local plugin. The permit
                // is held until the local call ends, even when the caller goes first.
                actix::spawn(async move {
                    let local = local.await;
                    let value = upstream_value.await.ok().flatten();
                    policy.compare(&route, &ctx, value.as_ref(), local);
                    drop(permit);
                });
                Some(Box::pin(async move {
                    let answer = upstream.await;
                    let value = match &answer {
                        Ok(Reply::Value(value)) => Some(value.clone()),
                        _ => None,
                    };
                    let _ = answered.send(value);
                    answer
                }))
            }
        }
    }

    /// The actor of `plugin` on this arbiter, started on first use (again when the
    /// plugin was replaced by another of the same name).
    fn plugin_actor(&mut self, plugin: &Arc<PluginSpec>, me: Addr<Router>) -> Addr<PluginActor> {
        if let Some((_, actor)) = self
            .plugins
            .get(&plugin.meta.name)
            .filter(|(spec, _)| Arc::ptr_eq(spec, plugin))
        {
            return actor.clone();
        }
        let actor = PluginActor::new(plugin.clone(), me).start();
        self.plugins
            .insert(plugin.meta.name.clone(), (plugin.clone(), actor.clone()));
        actor
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
                let actor = self.pools.actor(&target.pool);
                let call = CallUpstream {
                    target: target.clone(),
                    route,
                    args,
                    ctx,
                };
                Box::pin(async move { actor.send(call).await? })
            }
        }
    }

    /// Forgets the actors of plugins no longer in the table, and retires the pool
    /// actors of pools it no longer names (lookups do that too, when calls come).
    fn prune(&mut self) {
        self.pools.prune();
        let table = self.table.load();
        let live: std::collections::HashSet<&str> = table
            .routes()
            .filter_map(|route| match &route.target {
                Target::Local { plugin, .. } => Some(plugin.meta.name.as_str()),
                Target::Upstream(_) => None,
            })
            .collect();
        self.plugins.retain(|name, _| live.contains(name.as_str()));
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(PRUNE_INTERVAL, |this, _| this.prune());
    }
}

impl Handler<CallRemote> for Router {
    type Result = ResponseFuture<Result<Reply, Error>>;

    fn handle(&mut self, msg: CallRemote, ctx: &mut Context<Self>) -> Self::Result {
        let metrics = &*crate::metrics::CALL_REMOTE;
        let Some(route) = self.table.load().by_name(&msg.api, &msg.args) else {
            metrics.calls[2].inc();
            return Box::pin(async move { Err(Error::NoRoute { api: msg.api }) });
        };
        // Counted and timed by kind of target (label handles resolved once).
        let kind = usize::from(matches!(route.target, Target::Upstream(_)));
        metrics.calls[kind].inc();
        let started = std::time::Instant::now();
        // A span of its own: what it calls sees it as the parent.
        let mut call_ctx = msg.ctx;
        call_ctx.trace = call_ctx.trace.child();
        let span = crate::trace::recording(&call_ctx.trace)
            .then(|| (call_ctx.trace.clone(), std::time::SystemTime::now(), msg.api, msg.caller));
        let me = ctx.address();
        // A migration mode may send the call elsewhere (see `call_policy`).
        let call = match self.migrate(&route, &msg.args, &call_ctx, &me) {
            Some(migrated) => migrated,
            None => self.dispatch(route, msg.args, call_ctx, me),
        };
        Box::pin(async move {
            let reply = call.await;
            metrics.duration[kind].observe(started.elapsed().as_secs_f64());
            if let Some((trace, start, api, caller)) = span {
                record_call_span(&trace, start, &api, caller.as_deref(), kind, reply.as_ref().err());
            }
            reply
        })
    }
}

/// The span of one `CallRemote` (internal kind), for the installed span sink.
fn record_call_span(
    trace: &crate::trace::TraceContext,
    start: std::time::SystemTime,
    api: &str,
    caller: Option<&str>,
    kind: usize,
    error: Option<&Error>,
) {
    use crate::trace::{AttrValue, FinishedSpan, SpanKind};
    let name = format!("CallRemote {api}");
    let error = error.map(ToString::to_string);
    let mut attributes = vec![
        ("framex.api", AttrValue::Str(api)),
        ("framex.target", AttrValue::Str(if kind == 1 { "upstream" } else { "local" })),
    ];
    if let Some(caller) = caller {
        attributes.push(("framex.caller", AttrValue::Str(caller)));
    }
    crate::trace::record(&FinishedSpan {
        name: &name,
        kind: SpanKind::Internal,
        context: trace,
        start,
        end: std::time::SystemTime::now(),
        attributes: &attributes,
        error: error.as_deref(),
    });
}

impl Handler<Dispatch> for Router {
    type Result = ResponseFuture<Result<Reply, Error>>;

    fn handle(&mut self, msg: Dispatch, ctx: &mut Context<Self>) -> Self::Result {
        self.dispatch(msg.route, msg.args, msg.ctx, ctx.address())
    }
}
