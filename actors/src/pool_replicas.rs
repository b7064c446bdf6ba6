//! The pool actors of one arbiter: which [`UpstreamPool`] actor (and the replica it
//! owns) serves each pool on this arbiter.
//!
//! The arbiter's [`PoolReplicas`] starts a pool's actor (which makes and owns the
//! replica) on first use, finds both by [`PoolId`], and retires the actor once the
//! published route table no longer names the pool. It sits beside `upstream` and
//! `route_table` rather than in either: it follows the table, and the table names
//! pools.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::route_table::RouteTable;
use crate::upstream::{PoolId, PoolReplica, PoolShared, Retire, UpstreamPool};

/// The pool actors of one arbiter, by pool id. Cloning gives another handle to the
/// same map (the HTTP worker and the router of an arbiter share it); it is not
/// `Send`: every arbiter has its own.
#[derive(Clone)]
pub struct PoolReplicas {
    table: Arc<ArcSwap<RouteTable>>,
    inner: Rc<RefCell<Replicas>>,
}

/// The published table as this arbiter last saw it: looked at again with one plain
/// load of its pointer (`ArcSwap::load` writes the thread's debt slot, an atomic
/// operation, and the guard gives it back: two per lookup).
type SeenTable = arc_swap::Cache<Arc<ArcSwap<RouteTable>>, Arc<RouteTable>>;

/// One pool on this arbiter: its actor, and a weak handle to the replica the actor
/// owns (held by the fast path's exchange, and by its streamed body, until they end).
struct Entry {
    actor: Addr<UpstreamPool>,
    replica: Weak<PoolReplica>,
}

struct Replicas {
    by_id: HashMap<PoolId, Entry, foldhash::fast::RandomState>,
    /// The generation of the table the map was last pruned against.
    generation: u64,
    /// The newest table, as last seen.
    table: SeenTable,
}

impl Replicas {
    /// The newest published table, with the map pruned against it.
    fn pruned(&mut self) -> (&mut HashMap<PoolId, Entry, foldhash::fast::RandomState>, &RouteTable) {
        let Replicas { by_id, generation, table } = self;
        let table = table.load();
        prune(by_id, generation, table);
        (by_id, table)
    }
}

/// Retires, once per table generation, the actors of pools `table` no longer names
/// (`generation`: that of the table `by_id` was last pruned against).
fn prune(by_id: &mut HashMap<PoolId, Entry, foldhash::fast::RandomState>, generation: &mut u64, table: &RouteTable) {
    if table.generation() == *generation {
        return;
    }
    by_id.retain(|id, entry| {
        let live = table.serves_pool(*id);
        if !live {
            // A command with no reply; the mailbox is never full of these.
            entry.actor.do_send(Retire);
        }
        live
    });
    *generation = table.generation();
}

impl PoolReplicas {
    /// An empty set of pool actors following the published `table`.
    pub fn new(table: Arc<ArcSwap<RouteTable>>) -> Self {
        PoolReplicas {
            inner: Rc::new(RefCell::new(Replicas {
                by_id: HashMap::default(),
                generation: 0,
                table: arc_swap::Cache::new(table.clone()),
            })),
            table,
        }
    }

    /// The published table these replicas follow (for a view of it of one's own).
    pub fn published(&self) -> &Arc<ArcSwap<RouteTable>> {
        &self.table
    }

    /// This arbiter's replica of `pool` (its actor started on first use), for
    /// forwarding without a mailbox hop; the `Rc` keeps it for one exchange (and its
    /// streamed body). When the
    /// table has changed since the last look, the actors of pools it no longer names
    /// are retired first (exchanges still running on a replica keep it until they
    /// end). Call on an arbiter inside a running actix system.
    pub fn replica(&self, pool: &Arc<PoolShared>) -> Rc<PoolReplica> {
        self.lookup(pool, |_, replica| replica)
    }

    /// This arbiter's [`UpstreamPool`] actor of `pool`, started on first use (pruning
    /// as [`PoolReplicas::replica`] does).
    pub fn actor(&self, pool: &Arc<PoolShared>) -> Addr<UpstreamPool> {
        self.lookup(pool, |actor, _| actor.clone())
    }

    /// `pick`s from this arbiter's actor and replica of `pool` (the address lent, not
    /// cloned: the HTTP path wants only the replica).
    fn lookup<T>(&self, pool: &Arc<PoolShared>, pick: impl FnOnce(&Addr<UpstreamPool>, Rc<PoolReplica>) -> T) -> T {
        let mut inner = self.inner.borrow_mut();
        let (by_id, table) = inner.pruned();
        if !table.serves_pool(pool.id()) {
            // A request matched on an earlier table, its pool retired since: served by
            // an actor of its own, not kept (the map is pruned only when the table
            // changes again, which may be never).
            let replica = Rc::new(PoolReplica::new(pool));
            return pick(&UpstreamPool::retired(replica.clone()).start(), replica);
        }
        if let Some(entry) = by_id.get(&pool.id()) {
            if let Some(replica) = entry.replica.upgrade() {
                return pick(&entry.actor, replica);
            }
        }
        // First use on this arbiter (or its actor stopped with the system).
        let replica = Rc::new(PoolReplica::new(pool));
        let actor = UpstreamPool::new(replica.clone()).start();
        let entry = Entry { actor: actor.clone(), replica: Rc::downgrade(&replica) };
        by_id.insert(pool.id(), entry);
        pick(&actor, replica)
    }

    /// Retires the actors of pools the published table no longer names (also done by
    /// every lookup; the router calls this now and then, so that a pool nobody calls
    /// any more still lets go of its connections).
    pub fn prune(&self) {
        self.inner.borrow_mut().pruned();
    }

    /// How many pool actors this arbiter holds.
    pub fn len(&self) -> usize {
        self.inner.borrow().by_id.len()
    }

    /// Whether this arbiter holds no pool actor.
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

    /// Lets the arbiter run queued messages and stopping actors.
    async fn settle() {
        for _ in 0..20 {
            actix_rt::task::yield_now().await;
        }
    }

    #[actix_rt::test]
    async fn pool_actors_are_made_once_and_retired_when_the_table_drops_their_pool() {
        let (first, pools) = table_of(&["/a", "/b"]);
        let published = Arc::new(ArcSwap::from_pointee(first));
        let replicas = PoolReplicas::new(published.clone());
        let a = replicas.replica(&pools[0]);
        assert!(Rc::ptr_eq(&a, &replicas.replica(&pools[0])), "one replica per pool");
        let actor_a = replicas.actor(&pools[0]);
        assert_eq!(replicas.len(), 1, "the fast path and the router share one actor");
        replicas.replica(&pools[1]);
        assert_eq!(replicas.len(), 2);
        assert_eq!(Rc::strong_count(&a), 2, "the actor owns the replica; the map holds it weakly");

        let (second, others) = table_of(&["/c"]);
        published.store(Arc::new(second));
        replicas.replica(&others[0]);
        assert_eq!(replicas.len(), 1, "actors of pools the table no longer names are gone");
        drop(actor_a);
        settle().await;
        assert_eq!(Rc::strong_count(&a), 1, "the retired actor stopped; an exchange holding the replica keeps it alone");
        assert!(!Rc::ptr_eq(&a, &replicas.replica(&pools[0])), "a pool that comes back gets a new one");
    }

    #[actix_rt::test]
    async fn a_retired_pool_met_after_pruning_is_not_kept() {
        let (first, pools) = table_of(&["/a"]);
        let published = Arc::new(ArcSwap::from_pointee(first));
        let replicas = PoolReplicas::new(published.clone());
        let (second, others) = table_of(&["/c"]);
        published.store(Arc::new(second));
        replicas.replica(&others[0]);
        // A request that matched `/a` on the first table arrives now.
        let late = replicas.replica(&pools[0]);
        assert_eq!(replicas.len(), 1, "the retired pool's replica is not kept until the next table");
        settle().await;
        assert_eq!(Rc::strong_count(&late), 1, "its one-off actor stopped with its address");
    }
}
