//! Whether a `CallRemote` may go now: a gate the embedder installs
//! ([`Engine::set_call_gate`]; framex-rs's `[limits]`), asked by the Router with the
//! calling plugin's name before the call is dispatched. Without one, or for routes it
//! does not cover, calls go as always and pay one atomic load.
//!
//! [`Engine::set_call_gate`]: crate::Engine::set_call_gate

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::future::LocalBoxFuture;

use crate::route_table::Route;

pub use crate::stream::Held;

/// Why a call was refused: answered as [`crate::Error::Limited`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Seconds to wait before calling again.
    pub retry_after: u64,
    /// Whether the limit could not be checked and the rule refuses then (a 503
    /// rather than a 429), or the rule answers with 503.
    pub unavailable: bool,
}

/// The admission of one call: a value when it is known at once (the in-process
/// limiter), a future when a store must be asked (Redis).
pub enum Admission {
    /// Decided.
    Now(Result<Option<Held>, Refused>),
    /// To be awaited.
    Later(LocalBoxFuture<'static, Result<Option<Held>, Refused>>),
}

/// Decides whether calls may go.
pub trait CallGate: Send + Sync + 'static {
    /// The admission of a call of `caller` (the calling plugin's name, `None` for an
    /// embedder's own call) to `route` with its path parameters filled in
    /// (`path`, for HTTP operations); `None` when no rule covers the call.
    fn admit(&self, route: &Route, path: Option<&str>, caller: Option<&str>) -> Option<Admission>;
}

/// The installed gate, read by every router replica.
pub type SharedGate = Arc<ArcSwap<Option<Arc<dyn CallGate>>>>;
