//! What a request's answer is recorded as: the route it matched (its template, for
//! metric labels), where it went, and its access-log line.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse};
use framex_actors::{ApiKey, Escaped, Route};

use crate::metrics::{self, Target};

/// What serving a request found out, filled in as it goes.
#[derive(Default)]
pub(super) struct Seen {
    /// The route it matched.
    pub route: Option<Arc<Route>>,
    /// The built-in it was, if one.
    pub builtin: Option<&'static str>,
    /// Where it went.
    pub target: Option<Target>,
}

impl Seen {
    /// The `route` label: the route's template (or function name), the built-in's
    /// path, or [`metrics::UNMATCHED`] — never a concrete path.
    pub fn route_label(&self) -> &str {
        match (&self.route, self.builtin) {
            (Some(route), _) => match &route.spec.key {
                ApiKey::Http { path, .. } => path,
                ApiKey::Function(name) => name,
            },
            (None, Some(path)) => path,
            (None, None) => metrics::UNMATCHED,
        }
    }
}

/// Records the answer to `req` in the metrics and, when `access_log` is on, the
/// access log.
pub(super) fn record(req: &HttpRequest, response: &HttpResponse, seen: &Seen, started: Instant, ids: (&str, u128), access_log: bool) {
    let (request_id, trace_id) = ids;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = seen.route_label();
    metrics::observe(req.method(), route, status, seen.target.unwrap_or(Target::None), elapsed.as_secs_f64());
    if !access_log {
        return;
    }
    let peer = req.peer_addr().map_or_else(|| "-".to_owned(), |a| a.ip().to_string());
    // The path without its query: query strings often carry tokens. What the client
    // chose is escaped: a path or id cannot forge a line or close the quotes.
    log::info!(
        target: "framex::access",
        "{peer} \"{} {}\" {} {:.3}ms {} {trace_id:032x}",
        Escaped(req.method()),
        Escaped(req.path()),
        status,
        elapsed.as_secs_f64() * 1000.0,
        Escaped(request_id)
    );
}
