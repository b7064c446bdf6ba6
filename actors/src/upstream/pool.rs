//! The [`UpstreamPool`] actor: one pool on one worker arbiter, owning that arbiter's
//! [`PoolReplica`] (the pool's keep-alive connections from this thread).
//!
//! Life: the arbiter's [`PoolReplicas`](crate::PoolReplicas) starts it the first time
//! that arbiter reaches a pool the published table names, and sends it [`Retire`] when
//! a table no longer names the pool. A retired pool takes no new streams into its
//! context; it stops once its address is gone and its last streamed body has ended,
//! and its `stopped()` lets go of the replica (idle connections close with it). While
//! it runs it sweeps the replica's idle connections every couple of seconds.
//!
//! Messages: [`CallUpstream`] (the Router's `CallRemote` to an upstream route) and
//! [`Retire`]. Streamed bodies are pumped in this actor's context (see `pumps`).
//! Faithful HTTP forwarding borrows the replica through [`PoolReplicas::replica`]
//! without a mailbox hop; the actor stays its one owner (the map keeps only a weak
//! handle).
//!
//! [`PoolReplicas::replica`]: crate::PoolReplicas::replica

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

use super::pumps::Pump;
use super::{PoolReplica, UpstreamTarget};
use crate::api::{ApiSpec, Args};
use crate::call::{CallContext, Reply};
use crate::error::{Error, Fault};

/// Calls an upstream API with arguments mapped onto its signature.
///
/// Sent by the [`Router`](crate::Router) of the same arbiter for a `CallRemote` (or a
/// `Dispatch`) whose route is an upstream one; handled by that pool's
/// [`UpstreamPool`]. The reply is the call's value or stream, FrameX's envelope
/// unwrapped, or why it failed.
#[derive(Debug)]
pub struct CallUpstream {
    /// The signature of the route called (it says how the arguments travel).
    pub spec: Arc<ApiSpec>,
    /// The route's upstream side (pool, key, path filter).
    pub target: Arc<UpstreamTarget>,
    /// Arguments bound by name.
    pub args: Args,
    /// Deadline, request id, hops.
    pub ctx: CallContext,
}

impl Message for CallUpstream {
    type Result = Result<Reply, Error>;
}

/// The published table no longer names this pool: take no new streams, and stop once
/// the running ones have ended.
///
/// Sent by the arbiter's [`PoolReplicas`](crate::PoolReplicas) when it prunes against
/// a new table; handled by [`UpstreamPool`]. No reply.
#[derive(Debug, Clone, Copy)]
pub struct Retire;

impl Message for Retire {
    type Result = ();
}

/// One pool on one worker arbiter: the actor owning that arbiter's replica.
pub struct UpstreamPool {
    replica: Option<Rc<PoolReplica>>,
    retired: bool,
    /// The idle connections' sweep, while the pool is not retired.
    sweeping: Option<SpawnHandle>,
}

impl UpstreamPool {
    /// The actor owning `replica`, serving calls and pumping streams.
    pub(crate) fn new(replica: Rc<PoolReplica>) -> Self {
        UpstreamPool { replica: Some(replica), retired: false, sweeping: None }
    }

    /// The actor owning `replica` for one call on a pool the table no longer names:
    /// it serves what it is sent and stops when its address goes.
    pub(crate) fn retired(replica: Rc<PoolReplica>) -> Self {
        UpstreamPool { replica: Some(replica), retired: true, sweeping: None }
    }
}

impl Actor for UpstreamPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let (Some(replica), false) = (&self.replica, self.retired) {
            ctx.add_stream(replica.pumps().attach());
            // Its idle connections: nothing else runs for them (see
            // `client::Client::sweep`). Cancelled on `Retire`, so that the actor can stop.
            self.sweeping = Some(ctx.run_interval(super::client::SWEEP_EVERY, |pool, _| {
                if let Some(replica) = &pool.replica {
                    replica.sweep();
                }
            }));
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(replica) = self.replica.take() {
            // Streams handed over after this run as tasks of their own.
            replica.pumps().close();
        }
    }
}

impl Handler<CallUpstream> for UpstreamPool {
    // The exchange touches no actor state once it runs (the replica is shared by
    // `Rc`), so it runs beside the others rather than in this context, where every
    // wake-up would poll every running exchange.
    type Result = ResponseFuture<Result<Reply, Error>>;

    fn handle(&mut self, msg: CallUpstream, _: &mut Context<Self>) -> Self::Result {
        let Some(replica) = self.replica.clone() else {
            return Box::pin(async { Err(Error::Internal(Fault::PoolStopped)) });
        };
        Box::pin(async move { replica.call(&msg.target, &msg.spec, &msg.args, msg.ctx).await })
    }
}

impl Handler<Retire> for UpstreamPool {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.retired = true;
        if let Some(sweeping) = self.sweeping.take() {
            ctx.cancel_future(sweeping);
        }
        if let Some(replica) = &self.replica {
            // The stream of pumps ends; the actor stops when its address is gone and
            // the pumps it runs have ended.
            replica.pumps().close();
        }
    }
}

impl StreamHandler<Pump> for UpstreamPool {
    /// A streamed body met by one of this replica's exchanges: pumped from here.
    fn handle(&mut self, pump: Pump, ctx: &mut Context<Self>) {
        ctx.spawn(pump.into_actor(self));
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // Retired: no more streams; the default would stop the actor at once, which
        // would cut the running ones.
    }
}
