//! Pool replicas: one per pool per arbiter, each owned by that arbiter's
//! [`UpstreamPool`](super::UpstreamPool) actor and found through the arbiter's
//! [`PoolReplicas`](crate::PoolReplicas).
//!
//! A pool's shared state ([`PoolShared`]: configuration, endpoint counters, health)
//! is one object for the whole process; its connections are not: each worker arbiter
//! keeps its own, so that a request's bytes stay on the thread that accepted it. A
//! [`PoolReplica`] is that pair for one arbiter. Both roads into a pool reach the
//! replica the actor owns: `CallRemote` as a [`CallUpstream`](super::CallUpstream)
//! message from the router ([`PoolReplica::call`] on the actor), faithful forwarding
//! from the HTTP edge directly ([`PoolReplicas::replica`](crate::PoolReplicas::replica),
//! then [`PoolReplica::forward`]: no mailbox hop).

use std::rc::Rc;
use std::sync::Arc;

use super::client::Client;
use super::pumps::Pumps;
use super::PoolShared;

/// One arbiter's replica of a pool: the pool's shared state and this arbiter's
/// connections to its endpoints.
pub struct PoolReplica {
    pub(super) shared: Arc<PoolShared>,
    pub(super) client: Rc<Client>,
    /// This arbiter's share of the endpoints' request and latency series.
    pub(super) metrics: Rc<crate::metrics::EndpointBuffers>,
}

impl PoolReplica {
    /// A replica of `shared` with no connection yet (made by the arbiter's
    /// [`PoolReplicas`](crate::PoolReplicas), owned by the pool's actor).
    pub(crate) fn new(shared: &Arc<PoolShared>) -> Self {
        let config = shared.config();
        let client = Client::new(config, config.connect_timeout, config.tls.clone());
        client.start_turn_at(shared.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        PoolReplica {
            client,
            metrics: crate::metrics::EndpointBuffers::new(&shared.metrics),
            shared: shared.clone(),
        }
    }

    /// The way from this replica's exchanges to its actor (for streamed bodies).
    pub(super) fn pumps(&self) -> &Pumps {
        self.client.pumps()
    }

    /// Closes the idle connections their upstreams closed, or unused too long.
    pub(super) fn sweep(&self) {
        self.client.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::PoolConfig;

    /// Each arbiter turns its own round robin; the replicas of one pool start at
    /// different turns, so workers that take connections in turn do not send their
    /// first requests to the same endpoint.
    #[test]
    fn replicas_of_a_pool_start_their_round_robin_at_different_turns() {
        let pool = PoolShared::new(PoolConfig::single("http://127.0.0.1:9".parse().unwrap()));
        let (a, b) = (PoolReplica::new(&pool), PoolReplica::new(&pool));
        let (first_a, first_b) = (a.client.next_turn(), b.client.next_turn());
        assert_ne!(first_a, first_b);
        assert_eq!(a.client.next_turn(), first_a + 1, "then each turns on its own");
    }
}
