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
use crate::upstream::request::path_segment;

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

/// The path of a call to the HTTP operation `template` with `args`: each `{name}`
/// segment holds its argument's text percent-encoded as the upstream receives it (a
/// `/` in it stays in its segment, as `%2F`); the gate canonicalises it as the HTTP
/// edge does a request's path before it looks a rule up.
pub fn filled_path(template: &str, args: &crate::api::Args) -> String {
    let mut path = String::with_capacity(template.len() + 16);
    for (i, segment) in template.split('/').enumerate() {
        if i > 0 {
            path.push('/');
        }
        let name = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        match name.and_then(|name| args.get(name)) {
            Some(serde_json::Value::String(text)) => path.push_str(&path_segment(text)),
            Some(value) if !value.is_null() => path.push_str(&path_segment(&value.to_string())),
            _ => path.push_str(segment),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::filled_path;

    #[test]
    fn path_parameters_are_filled_in_their_segments() {
        let args = json!({"id": 42, "name": "a/b", "tag": "café", "unused": 1}).as_object().unwrap().clone();
        assert_eq!(filled_path("/api/v1/items/{id}", &args), "/api/v1/items/42");
        assert_eq!(filled_path("/api/v1/{name}/x", &args), "/api/v1/a%2Fb/x");
        assert_eq!(filled_path("/api/v1/tags/{tag}", &args), "/api/v1/tags/caf%C3%A9", "as the upstream receives it");
        assert_eq!(filled_path("/api/v1/{missing}", &args), "/api/v1/{missing}");
    }
}
