//! Pool replicas: one per pool per arbiter, owned by that arbiter's [`PoolReplicas`].
//!
//! A pool's shared state ([`PoolShared`]: configuration, endpoint counters, health)
//! is one object for the whole process; its connections are not: each worker arbiter
//! keeps its own, so that a request's bytes stay on the thread that accepted it. A
//! [`PoolReplica`] is that pair for one arbiter. The arbiter's [`PoolReplicas`] creates
//! it on first use, finds it by [`PoolId`], and retires it (closing its idle
//! connections) once the published route table no longer names the pool. Both roads
//! into a pool go through it: faithful forwarding from the HTTP edge
//! ([`PoolReplica::forward`]) and `CallRemote` from the router ([`PoolReplica::call`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::client::Client;
use super::exchange::{Attempts, Exchange};
use super::{reply, request, ForwardRequest, ForwardResponse, PoolId, PoolShared, UpstreamTarget};
use crate::api::{ApiSpec, Args, BodySpec};
use crate::call::{CallContext, Reply};
use crate::error::Error;
use crate::route_table::RouteTable;

/// One arbiter's replica of a pool: the pool's shared state and this arbiter's
/// connections to its endpoints.
pub struct PoolReplica {
    shared: Arc<PoolShared>,
    client: Rc<Client>,
}

impl PoolReplica {
    fn new(shared: &Arc<PoolShared>) -> Self {
        let config = shared.config();
        PoolReplica {
            client: Client::new(config, config.connect_timeout, config.tls.clone()),
            shared: shared.clone(),
        }
    }

    /// Forwards `request` as it is (faithful forwarding of a matched HTTP route).
    ///
    /// # Errors
    /// Unreachable endpoints, broken replies, deadlines, saturation (503) and our own
    /// request body failing (413, 400, 408) as [`Error`]s.
    pub async fn forward(
        &self,
        target: Arc<UpstreamTarget>,
        request: ForwardRequest,
    ) -> Result<ForwardResponse, Error> {
        self.forward_noted(target, request).await.0
    }

    /// As [`PoolReplica::forward`], and says where the request went, failed or not
    /// (for the access log).
    pub async fn forward_noted(
        &self,
        target: Arc<UpstreamTarget>,
        request: ForwardRequest,
    ) -> (Result<ForwardResponse, Error>, Attempts) {
        let mut exchange = Exchange::new(&self.shared, &self.client);
        let result = exchange.forward(target, request).await;
        (result, exchange.into_attempts())
    }

    /// Calls an upstream API with `args` mapped onto its signature (`call_remote_api`),
    /// and reads the reply as FrameX does (envelope unwrapped, streams as streams).
    ///
    /// # Errors
    /// Arguments that do not fit the signature (before any I/O), then as
    /// [`PoolReplica::forward`], then envelope statuses outside `legal_proxy_code`.
    pub async fn call(
        &self,
        target: Arc<UpstreamTarget>,
        spec: &ApiSpec,
        args: &Args,
        ctx: CallContext,
    ) -> Result<Reply, Error> {
        spec.check_args(args)?;
        let request = request::build(spec, args, ctx)?;
        let response = self.forward(target, request).await?;
        let kwargs = matches!(spec.body, BodySpec::Kwargs);
        let config = self.shared.config();
        reply::interpret(self.shared.name(), response, spec.streaming, kwargs, &config.legal_codes).await
    }
}

/// The pool replicas of one arbiter, by pool id. Cloning gives another handle to the
/// same replicas (the HTTP worker and the router of an arbiter share them); it is not
/// `Send`: every arbiter has its own.
#[derive(Clone)]
pub struct PoolReplicas {
    table: Arc<ArcSwap<RouteTable>>,
    inner: Rc<RefCell<Replicas>>,
}

struct Replicas {
    by_id: HashMap<PoolId, Rc<PoolReplica>>,
    /// The generation of the table the map was last pruned against.
    generation: u64,
}

impl PoolReplicas {
    /// An empty set of replicas following the published `table`.
    pub fn new(table: Arc<ArcSwap<RouteTable>>) -> Self {
        PoolReplicas {
            table,
            inner: Rc::new(RefCell::new(Replicas {
                by_id: HashMap::new(),
                generation: 0,
            })),
        }
    }

    /// This arbiter's replica of `pool`, made on first use. When the table has changed
    /// since the last look, replicas of pools it no longer names are retired first
    /// (exchanges still running on one keep it until they end).
    pub fn replica(&self, pool: &Arc<PoolShared>) -> Rc<PoolReplica> {
        let mut inner = self.inner.borrow_mut();
        let table = self.table.load();
        if table.generation() != inner.generation {
            inner.by_id.retain(|id, _| table.serves_pool(*id));
            inner.generation = table.generation();
        }
        if !table.serves_pool(pool.id()) {
            // A request matched on an earlier table, its pool retired since: served on
            // a replica of its own, not kept (the map is pruned only when the table
            // changes again, which may be never).
            return Rc::new(PoolReplica::new(pool));
        }
        inner
            .by_id
            .entry(pool.id())
            .or_insert_with(|| Rc::new(PoolReplica::new(pool)))
            .clone()
    }

    /// How many replicas this arbiter holds.
    pub fn len(&self) -> usize {
        self.inner.borrow().by_id.len()
    }

    /// Whether this arbiter holds no replica.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiKey, ApiSpec};
    use crate::route_table::tests::upstream;
    use crate::route_table::{RouteTableBuilder, Target};
    use http::Method;

    fn table_of(paths: &[&str]) -> (RouteTable, Vec<Arc<PoolShared>>) {
        let mut builder = RouteTableBuilder::default();
        let mut pools = Vec::new();
        for path in paths {
            let route = upstream(ApiSpec::new(ApiKey::http(Method::GET, *path)));
            if let Target::Upstream(target) = &route.target {
                pools.push(target.pool.clone());
            }
            builder.add(route).unwrap();
        }
        (builder.build(), pools)
    }

    #[test]
    fn replicas_are_made_once_and_retired_when_the_table_drops_their_pool() {
        let (first, pools) = table_of(&["/a", "/b"]);
        let published = Arc::new(ArcSwap::from_pointee(first));
        let replicas = PoolReplicas::new(published.clone());
        let a = replicas.replica(&pools[0]);
        assert!(Rc::ptr_eq(&a, &replicas.replica(&pools[0])), "one replica per pool");
        replicas.replica(&pools[1]);
        assert_eq!(replicas.len(), 2);

        let (second, others) = table_of(&["/c"]);
        published.store(Arc::new(second));
        replicas.replica(&others[0]);
        assert_eq!(replicas.len(), 1, "replicas of pools the table no longer names are gone");
        assert!(!Rc::ptr_eq(&a, &replicas.replica(&pools[0])), "a pool that comes back gets a new one");
        assert_eq!(Rc::strong_count(&a), 1, "an exchange still holding the old one keeps it alone");
    }

    #[test]
    fn a_retired_pool_met_after_pruning_is_not_kept() {
        let (first, pools) = table_of(&["/a"]);
        let published = Arc::new(ArcSwap::from_pointee(first));
        let replicas = PoolReplicas::new(published.clone());
        let (second, others) = table_of(&["/c"]);
        published.store(Arc::new(second));
        replicas.replica(&others[0]);
        // A request that matched `/a` on the first table arrives now.
        let late = replicas.replica(&pools[0]);
        assert_eq!(replicas.len(), 1, "the retired pool's replica is not kept until the next table");
        assert_eq!(Rc::strong_count(&late), 1);
    }
}
