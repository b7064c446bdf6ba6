//! Who answers a `CallRemote` to a route that a local plugin serves and an upstream
//! served before it ([`RouteTable::shadowed`]): a policy the embedder installs
//! ([`Engine::set_call_policy`]; framex-rs's `[plugins.proxy.migrate]`). Without one,
//! or for routes it leaves alone, the local plugin answers as always.
//!
//! [`RouteTable::shadowed`]: crate::RouteTable::shadowed
//! [`Engine::set_call_policy`]: crate::Engine::set_call_policy

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::call::{CallContext, Reply};
use crate::error::Error;
use crate::route_table::Route;

/// Where one call goes.
#[derive(Debug)]
pub enum Pick {
    /// The local plugin; its answer is reported ([`CallPolicy::local_answered`]).
    Local,
    /// The shadowed upstream route.
    Upstream,
    /// The upstream answers; the local plugin gets the same call off the caller's
    /// path, and both answers are reported ([`CallPolicy::compare`]). The permit is
    /// held until the local call ends (see [`ShadowGate`]).
    Shadow(ShadowPermit),
}

/// Shadow calls of one route under way at once, at most: the caller never waits for
/// them, so without a bound a slow local plugin would let them (and what they hold)
/// pile up. A call over the bound goes to the upstream alone.
pub const MAX_SHADOWS_IN_FLIGHT: usize = 64;

/// Counts one route's shadow calls under way and hands out at most
/// [`MAX_SHADOWS_IN_FLIGHT`] permits at once (both the HTTP edge and `CallRemote` take
/// theirs here, through the embedder's one migration decision).
#[derive(Debug, Default)]
pub struct ShadowGate(Arc<AtomicUsize>);

impl ShadowGate {
    /// Leave for one more shadow call, unless [`MAX_SHADOWS_IN_FLIGHT`] are under way.
    pub fn permit(&self) -> Option<ShadowPermit> {
        let taken = self.0.fetch_add(1, Ordering::Relaxed);
        let permit = ShadowPermit(self.0.clone());
        (taken < MAX_SHADOWS_IN_FLIGHT).then_some(permit)
    }

    /// Shadow calls under way.
    pub fn in_flight(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Leave for one shadow call, held until the local call ends.
#[derive(Debug)]
pub struct ShadowPermit(Arc<AtomicUsize>);

impl Drop for ShadowPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decides where calls to a migrating route go, and hears how they went.
pub trait CallPolicy: Send + Sync + 'static {
    /// Where a call to the local `route` goes (it has a shadowed upstream route);
    /// `None`: the local plugin, as usual. A [`Pick::Shadow`] carries a permit of the
    /// route's [`ShadowGate`]; over the bound the policy picks the upstream.
    fn pick(&self, route: &Route) -> Option<Pick>;
    /// The local plugin's answer to a call sent to it by [`Pick::Local`].
    fn local_answered(&self, route: &Route, answer: &Result<Reply, Error>);
    /// Both answers to a [`Pick::Shadow`] call: the upstream's value (`None` when it
    /// failed or streamed) and the local plugin's answer.
    fn compare(&self, route: &Route, ctx: &CallContext, upstream: Option<&serde_json::Value>, local: Result<Reply, Error>);
}

/// The installed policy, read by every router replica.
pub type SharedPolicy = Arc<ArcSwap<Option<Arc<dyn CallPolicy>>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_calls_in_flight_are_bounded() {
        let gate = ShadowGate::default();
        let held: Vec<_> = (0..MAX_SHADOWS_IN_FLIGHT + 5).filter_map(|_| gate.permit()).collect();
        assert_eq!(held.len(), MAX_SHADOWS_IN_FLIGHT);
        assert!(gate.permit().is_none(), "over the bound");
        assert_eq!(gate.in_flight(), MAX_SHADOWS_IN_FLIGHT, "refused permits give their place back");
        drop(held);
        assert!(gate.permit().is_some(), "permits come back when calls end");
        assert_eq!(gate.in_flight(), 0);
    }
}
