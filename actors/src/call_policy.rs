//! Who answers a `CallRemote` to a route that a local plugin serves and an upstream
//! served before it ([`RouteTable::shadowed`]): a policy the embedder installs
//! ([`Engine::set_call_policy`]; framex-rs's `[plugins.proxy.migrate]`). Without one,
//! or for routes it leaves alone, the local plugin answers as always.
//!
//! [`RouteTable::shadowed`]: crate::RouteTable::shadowed
//! [`Engine::set_call_policy`]: crate::Engine::set_call_policy

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::call::{CallContext, Reply};
use crate::error::Error;
use crate::route_table::Route;

/// Where one call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The local plugin; its answer is reported ([`CallPolicy::local_answered`]).
    Local,
    /// The shadowed upstream route.
    Upstream,
    /// The upstream answers; the local plugin gets the same call off the caller's
    /// path, and both answers are reported ([`CallPolicy::compare`]).
    Shadow,
}

/// Decides where calls to a migrating route go, and hears how they went.
pub trait CallPolicy: Send + Sync + 'static {
    /// Where a call to the local `route` goes (it has a shadowed upstream route);
    /// `None`: the local plugin, as usual.
    fn pick(&self, route: &Route) -> Option<Pick>;
    /// The local plugin's answer to a call sent to it by [`Pick::Local`].
    fn local_answered(&self, route: &Route, answer: &Result<Reply, Error>);
    /// Both answers to a [`Pick::Shadow`] call: the upstream's value (`None` when it
    /// failed or streamed) and the local plugin's answer.
    fn compare(&self, route: &Route, ctx: &CallContext, upstream: Option<&serde_json::Value>, local: Result<Reply, Error>);
}

/// The installed policy, read by every router replica.
pub type SharedPolicy = Arc<ArcSwap<Option<Arc<dyn CallPolicy>>>>;
