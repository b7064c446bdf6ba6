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
use crate::call_gate::{Admission, Held, Refused, SharedGate};
use crate::call_policy::{Pick, SharedPolicy};
use crate::error::Error;
use crate::plugin::{Invoke, PluginActor};
use crate::plugin_spec::PluginSpec;
use crate::route_table::{Route, RouteTable, Target};
use crate::pool_replicas::PoolReplicas;
use crate::upstream::CallUpstream;

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
    /// What admits `CallRemote`s a limit covers (none: every call goes).
    gate: Option<SharedGate>,
}

/// A `CallRemote` its gate admitted after a wait (the store was asked), sent back to
/// the replica to be routed.
struct Admitted {
    route: Arc<Route>,
    args: Args,
    ctx: CallContext,
    held: Option<Held>,
}

impl Message for Admitted {
    type Result = Result<Reply, Error>;
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
            gate: None,
        }
    }

    /// The same replica, asking `gate` whether `CallRemote`s may go.
    pub fn with_gate(mut self, gate: SharedGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The installed gate's admission of a call of `caller` to `route`, or `None`
    /// when no gate is installed or none of its rules covers the call.
    ///
    /// The gate sees the path the upstream would receive (`request::fill_path`); a
    /// path argument that could not go there (`.`, `..`) is refused here, before it
    /// is counted, as it would be over HTTP.
    fn admission(&self, route: &Route, args: &Args, caller: Option<&str>) -> Result<Option<Admission>, Error> {
        let Some(gate) = self.gate.as_ref().map(|gate| gate.load()) else { return Ok(None) };
        let Some(gate) = Option::as_ref(&gate) else { return Ok(None) };
        let path = match &route.spec.key {
            crate::api::ApiKey::Http { path, .. } => Some(crate::upstream::request::fill_path(&route.spec, args, path)?),
            crate::api::ApiKey::Function(_) => None,
        };
        Ok(gate.admit(route, path.as_deref(), caller))
    }

    /// Routes an admitted call (through the migration policy, see `migrate`), holding
    /// `held` until its reply ends.
    fn route_call(
        &mut self,
        route: Arc<Route>,
        args: Args,
        ctx: CallContext,
        me: &Context<Router>,
        held: Option<Held>,
    ) -> ResponseFuture<Result<Reply, Error>> {
        let call = match self.migrate(&route, &args, &ctx, me) {
            Some(migrated) => migrated,
            None => self.dispatch(route, args, ctx, me),
        };
        match held {
            None => call,
            Some(held) => Box::pin(async move {
                match call.await? {
                    Reply::Stream(stream) => Ok(Reply::Stream(stream.holding(held))),
                    value => Ok(value),
                }
            }),
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
        me: &Context<Router>,
    ) -> Option<ResponseFuture<Result<Reply, Error>>> {
        if !route.target.is_local() {
            return None;
        }
        let policy = self.policy.as_ref()?.load();
        let policy = Option::as_ref(&policy)?.clone();
        let shadowed = self.table.load().shadowed(&route.spec.key)?.clone();
        match policy.pick(route)? {
            Pick::Upstream => Some(self.dispatch(shadowed, args.clone(), ctx.clone(), me)),
            Pick::Local => {
                let call = self.dispatch(route.clone(), args.clone(), ctx.clone(), me);
                let route = route.clone();
                Some(Box::pin(async move {
                    let answer = call.await;
                    policy.local_answered(&route, &answer);
                    answer
                }))
            }
            Pick::Shadow(permit) => {
                let upstream = self.dispatch(shadowed, args.clone(), ctx.clone(), me);
                let local = self.dispatch(route.clone(), args.clone(), ctx.clone(), me);
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
    /// plugin was replaced by another of the same name) with this Router's address
    /// (made from `me` only then: making one allocates).
    fn plugin_actor(&mut self, plugin: &Arc<PluginSpec>, me: &Context<Router>) -> &Addr<PluginActor> {
        let current = self
            .plugins
            .get(&plugin.meta.name)
            .is_some_and(|(spec, _)| Arc::ptr_eq(spec, plugin));
        if !current {
            let actor = PluginActor::new(plugin.clone(), me.address()).start();
            self.plugins.insert(plugin.meta.name.clone(), (plugin.clone(), actor));
        }
        &self.plugins[&plugin.meta.name].1
    }

    fn dispatch(
        &mut self,
        route: Arc<Route>,
        args: Args,
        ctx: CallContext,
        me: &Context<Router>,
    ) -> ResponseFuture<Result<Reply, Error>> {
        match &route.target {
            Target::Local { plugin, api } => {
                let invoke = Invoke {
                    api: api.clone(),
                    args,
                    ctx,
                };
                // Sent now; the request holds no address of its own.
                let sent = self.plugin_actor(plugin, me).send(invoke);
                Box::pin(async move { sent.await? })
            }
            Target::Upstream(target) => {
                let actor = self.pools.actor(&target.pool);
                let call = CallUpstream {
                    target: target.clone(),
                    spec: route.spec.clone(),
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
        let admission = self.admission(&route, &msg.args, msg.caller.as_deref());
        let mut call_ctx = msg.ctx;
        call_ctx.trace = call_ctx.trace.child();
        let span = crate::trace::recording(&call_ctx.trace)
            .then(|| (call_ctx.trace.clone(), std::time::SystemTime::now(), msg.api, msg.caller));
        // A limit may hold the call back (see `call_gate`); a migration mode may send
        // it elsewhere (see `call_policy`).
        let call = match admission {
            Err(refused) => Box::pin(async move { Err(refused) }),
            Ok(None) => self.route_call(route, msg.args, call_ctx, ctx, None),
            Ok(Some(Admission::Now(Ok(held)))) => self.route_call(route, msg.args, call_ctx, ctx, held),
            Ok(Some(Admission::Now(Err(refused)))) => {
                let error = limited(&route, refused);
                Box::pin(async move { Err(error) })
            }
            Ok(Some(Admission::Later(admit))) => {
                let me = ctx.address();
                Box::pin(async move {
                    let held = admit.await.map_err(|refused| limited(&route, refused))?;
                    me.send(Admitted { route, args: msg.args, ctx: call_ctx, held }).await?
                })
            }
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

/// The error of a call to `route` its gate refused.
fn limited(route: &Route, refused: Refused) -> Error {
    Error::Limited {
        api: route.spec.key.to_string(),
        retry_after: refused.retry_after,
        unavailable: refused.unavailable,
    }
}

impl Handler<Admitted> for Router {
    type Result = ResponseFuture<Result<Reply, Error>>;

    fn handle(&mut self, msg: Admitted, ctx: &mut Context<Self>) -> Self::Result {
        self.route_call(msg.route, msg.args, msg.ctx, ctx, msg.held)
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
        self.dispatch(msg.route, msg.args, msg.ctx, ctx)
    }
}

#[cfg(test)]
mod tests {
    //! The Router alone, in a real actix system: real plugin actors, and real pool
    //! actors talking to a real HTTP/1.1 server on 127.0.0.1.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use serde_json::{json, Value};

    use super::*;
    use crate::api::{ApiKey, ApiSpec};
    use crate::call_policy::{CallPolicy, ShadowGate};
    use crate::plugin_spec::{ApiHandler, LocalApi, PluginMeta};
    use crate::Ctx;
    use crate::registry::UpstreamRoute;
    use crate::upstream::{PoolConfig, PoolShared, UpstreamTarget};
    use crate::Engine;

    /// A real upstream answering `"upstream"`, counting its requests in `hits`.
    async fn upstream_server(hits: Arc<AtomicUsize>) -> crate::upstream::UpstreamUrl {
        crate::test_util::envelope_server(json!("upstream"), hits).await.unwrap().parse().unwrap()
    }

    fn key(path: &str) -> ApiKey {
        ApiKey::http(http::Method::GET, path)
    }

    /// A plugin serving `GET /items` with `"local"`, counting its calls.
    fn local_plugin(calls: Arc<AtomicUsize>) -> Arc<PluginSpec> {
        let handler = move |_, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(json!("local")) }) as futures::future::LocalBoxFuture<'static, _>
        };
        let api = LocalApi::new(Arc::new(ApiSpec::new(key("/items"))), ApiHandler::Call(Box::new(handler)));
        Arc::new(PluginSpec {
            meta: PluginMeta { name: "items".to_owned(), ..PluginMeta::default() },
            apis: vec![Arc::new(api)],
            on_start: None,
        })
    }

    fn upstream_route(path: &str, pool: &Arc<PoolShared>) -> UpstreamRoute {
        let target = UpstreamTarget { pool: pool.clone(), auth: Default::default(), filter: None };
        UpstreamRoute { spec: Arc::new(ApiSpec::new(key(path))), target: Arc::new(target) }
    }

    /// A started engine, one worker's share of it, and a caller outside any plugin.
    fn worker() -> (Engine, crate::WorkerEngine, Ctx) {
        let engine = Engine::start();
        let worker = engine.start_worker();
        let caller = Ctx::detached(worker.router.clone());
        (engine, worker, caller)
    }

    #[actix::test]
    async fn a_call_to_no_route_is_no_route() {
        let (_engine, _worker, caller) = worker();
        let answer = caller.call_remote_api("nobody.Nobody.nothing", ()).await;
        assert!(matches!(answer, Err(Error::NoRoute { ref api }) if api == "nobody.Nobody.nothing"), "{answer:?}");
    }

    #[actix::test]
    async fn a_local_route_is_answered_by_its_plugin_actor() {
        let (engine, worker, caller) = worker();
        let calls = Arc::new(AtomicUsize::new(0));
        engine.register_plugin(local_plugin(calls.clone())).await.unwrap();
        assert_eq!(caller.call_remote_api("/items", ()).await.unwrap(), json!("local"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(worker.pools.is_empty(), "no pool actor for a local call");
    }

    #[actix::test]
    async fn an_upstream_route_is_answered_through_its_pool_actor() {
        let (engine, worker, caller) = worker();
        let hits = Arc::new(AtomicUsize::new(0));
        let pool = PoolShared::new(PoolConfig::single(upstream_server(hits.clone()).await));
        engine.set_upstream_routes("legacy", vec![upstream_route("/items", &pool)]).await.unwrap();
        for _ in 0..3 {
            assert_eq!(caller.call_remote_api("/items", ()).await.unwrap(), json!("upstream"));
        }
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(worker.pools.len(), 1, "one pool actor on this arbiter, made once");
        assert!(worker.pools.actor(&pool).connected());
    }

    #[actix::test]
    async fn the_pool_actor_of_a_retired_pool_stops() {
        let (engine, worker, caller) = worker();
        let hits = Arc::new(AtomicUsize::new(0));
        let url = upstream_server(hits.clone()).await;
        let (old, new) = (PoolShared::new(PoolConfig::single(url.clone())), PoolShared::new(PoolConfig::single(url)));
        engine.set_upstream_routes("legacy", vec![upstream_route("/a", &old)]).await.unwrap();
        caller.call_remote_api("/a", ()).await.unwrap();
        let retired = worker.pools.actor(&old).downgrade();

        engine.set_upstream_routes("legacy", vec![upstream_route("/b", &new)]).await.unwrap();
        caller.call_remote_api("/b", ()).await.unwrap();
        assert_eq!(worker.pools.len(), 1, "the old pool is no longer held");
        for _ in 0..100 {
            if retired.upgrade().is_none_or(|addr| !addr.connected()) {
                return;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the retired pool's actor never stopped");
    }

    /// A gate admitting `allow` calls at once (`later`: after a wait, as a store would),
    /// refusing the rest, and counting the slots its admitted calls still hold.
    struct Counting {
        allow: usize,
        later: bool,
        seen: Mutex<Vec<(Option<String>, Option<String>)>>,
        held: Arc<AtomicUsize>,
    }

    struct Slot(Arc<AtomicUsize>);

    impl Drop for Slot {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl crate::CallGate for Counting {
        fn admit(&self, _: &Route, path: Option<&str>, caller: Option<&str>) -> Option<Admission> {
            let mut seen = self.seen.lock().unwrap();
            seen.push((path.map(str::to_owned), caller.map(str::to_owned)));
            let answer = if seen.len() <= self.allow {
                self.held.fetch_add(1, Ordering::SeqCst);
                Ok(Some(Held(Box::new(Slot(self.held.clone())))))
            } else {
                Err(Refused { retry_after: 7, unavailable: false })
            };
            Some(match self.later {
                false => Admission::Now(answer),
                true => Admission::Later(Box::pin(async move {
                    actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
                    answer
                })),
            })
        }
    }

    /// A gate decides before any dispatch: admitted calls reach the plugin and give
    /// their slot back with the reply; a refused call never reaches it and fails with
    /// `Limited`; decided at once or after a wait alike.
    #[actix::test]
    async fn the_gate_admits_or_refuses_before_the_plugin_is_called() {
        for later in [false, true] {
            let (engine, _worker, caller) = worker();
            let calls = Arc::new(AtomicUsize::new(0));
            engine.register_plugin(local_plugin(calls.clone())).await.unwrap();
            let gate = Arc::new(Counting { allow: 2, later, seen: Mutex::default(), held: Arc::default() });
            engine.set_call_gate(Some(gate.clone()));
            for _ in 0..2 {
                assert_eq!(caller.call_remote_api("/items", ()).await.unwrap(), json!("local"));
            }
            let refused = caller.call_remote_api("/items", ()).await;
            assert!(
                matches!(refused, Err(Error::Limited { retry_after: 7, unavailable: false, ref api }) if api == "GET /items"),
                "{refused:?}"
            );
            assert_eq!(calls.load(Ordering::SeqCst), 2, "the refused call never reached the plugin");
            assert_eq!(gate.held.load(Ordering::SeqCst), 0, "slots come back with the replies");
            assert_eq!(gate.seen.lock().unwrap()[0], (Some("/items".to_owned()), None));
            engine.set_call_gate(None);
            assert!(caller.call_remote_api("/items", ()).await.is_ok(), "no gate: calls go");
        }
    }

    /// A policy answering one fixed pick, and noting what it hears.
    struct Fixed {
        pick: &'static str,
        gate: ShadowGate,
        local_answers: AtomicUsize,
        compared: Mutex<Vec<(Option<Value>, Option<Value>)>>,
    }

    impl CallPolicy for Fixed {
        fn pick(&self, _: &Route) -> Option<Pick> {
            match self.pick {
                "local" => Some(Pick::Local),
                "upstream" => Some(Pick::Upstream),
                "shadow" => self.gate.permit().map(Pick::Shadow),
                _ => None,
            }
        }

        fn local_answered(&self, _: &Route, _: &Result<Reply, Error>) {
            self.local_answers.fetch_add(1, Ordering::SeqCst);
        }

        fn compare(&self, _: &Route, _: &CallContext, upstream: Option<&Value>, local: Result<Reply, Error>) {
            let local = match local {
                Ok(Reply::Value(value)) => Some(value),
                _ => None,
            };
            self.compared.lock().unwrap().push((upstream.cloned(), local));
        }
    }

    /// The answer to one call of `/items` (a local plugin over an upstream route) under
    /// a policy picking `pick`, with the calls each side saw and the policy.
    async fn migrated_call(pick: &'static str) -> (Value, usize, usize, Arc<Fixed>) {
        let (engine, _worker, caller) = worker();
        let (calls, hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pool = PoolShared::new(PoolConfig::single(upstream_server(hits.clone()).await));
        engine.set_upstream_routes("legacy", vec![upstream_route("/items", &pool)]).await.unwrap();
        engine.register_plugin(local_plugin(calls.clone())).await.unwrap();
        let policy = Arc::new(Fixed { pick, gate: ShadowGate::default(), local_answers: AtomicUsize::new(0), compared: Mutex::default() });
        engine.set_call_policy(Some(policy.clone()));
        let answer = caller.call_remote_api("/items", ()).await.unwrap();
        for _ in 0..100 {
            if pick != "shadow" || !policy.compared.lock().unwrap().is_empty() {
                break;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        (answer, calls.load(Ordering::SeqCst), hits.load(Ordering::SeqCst), policy)
    }

    #[actix::test]
    async fn no_pick_leaves_the_call_to_the_local_plugin() {
        let (answer, local, upstream, policy) = migrated_call("none").await;
        assert_eq!((answer, local, upstream), (json!("local"), 1, 0));
        assert_eq!(policy.local_answers.load(Ordering::SeqCst), 0);
    }

    #[actix::test]
    async fn pick_upstream_sends_the_call_to_the_shadowed_upstream_route() {
        let (answer, local, upstream, _) = migrated_call("upstream").await;
        assert_eq!((answer, local, upstream), (json!("upstream"), 0, 1));
    }

    #[actix::test]
    async fn pick_local_reports_the_local_answer() {
        let (answer, local, upstream, policy) = migrated_call("local").await;
        assert_eq!((answer, local, upstream), (json!("local"), 1, 0));
        assert_eq!(policy.local_answers.load(Ordering::SeqCst), 1);
    }

    #[actix::test]
    async fn pick_shadow_answers_from_upstream_and_compares_the_local_answer() {
        let (answer, local, upstream, policy) = migrated_call("shadow").await;
        assert_eq!((answer, local, upstream), (json!("upstream"), 1, 1));
        let compared = policy.compared.lock().unwrap().clone();
        assert_eq!(compared, vec![(Some(json!("upstream")), Some(json!("local")))]);
        assert_eq!(policy.gate.in_flight(), 0, "the permit is given back when the local call ends");
    }
}
