//! What a request's answer is recorded as: the route it matched (its template, for
//! metric labels), where it went, and its access-log line.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::{HttpRequest, HttpResponse};
use framex_actors::upstream::{Attempts, PoolShared, UpstreamUrl};
use framex_actors::{Escaped, Route};
use serde_json::json;

use crate::config::AccessLog;
use framex_actors::trace::{self, AttrValue, FinishedSpan, SpanKind, TraceContext};
use std::time::SystemTime;

use crate::metrics::{self, Target};

/// What serving a request found out, filled in as it goes.
#[derive(Default)]
pub(super) struct Seen<'w> {
    /// The route it matched, lent by the request's view of the table.
    pub route: Option<&'w Arc<Route>>,
    /// The built-in it was, if one.
    pub builtin: Option<&'static str>,
    /// Where it went.
    pub target: Option<Target>,
    /// Where a forwarded request went (answered or not), when the JSON access log or
    /// the trace wants it.
    pub served: Option<Served>,
}

impl Seen<'_> {
    /// The `route` label: the route's template (or function name), the built-in's
    /// path, or [`metrics::UNMATCHED`] — never a concrete path.
    pub fn route_label(&self) -> &str {
        match (&self.route, self.builtin) {
            (Some(route), _) => route.spec.key.template(),
            (None, Some(path)) => path,
            (None, None) => metrics::UNMATCHED,
        }
    }

    /// The `route` label kept by reference count (a streamed answer's Sentry tap
    /// reads it only if the stream breaks).
    pub fn route_name(&self) -> crate::sentry_events::RouteName {
        use crate::sentry_events::RouteName;
        match (&self.route, self.builtin) {
            (Some(route), _) => RouteName::Route(Arc::clone(route)),
            (None, Some(path)) => RouteName::Fixed(path),
            (None, None) => RouteName::Fixed(metrics::UNMATCHED),
        }
    }
}

/// Where a forwarded request went, answered or not (kept only for the JSON access log
/// and the trace).
pub(super) struct Served {
    /// Its pool.
    pub pool: Arc<PoolShared>,
    /// The pool's endpoints it tried, in order, and the attempts made.
    pub attempts: Attempts,
}

impl Served {
    /// The URLs tried, in order; the last one answered or failed last.
    fn urls(&self) -> impl Iterator<Item = &str> + '_ {
        let endpoints = &self.pool.config().endpoints;
        self.attempts.endpoints.iter().filter_map(|&i| endpoints.get(i).map(UpstreamUrl::as_str))
    }
}

/// A request's trace: its context, and when it started when its span is recorded.
pub(super) struct Trace {
    context: TraceContext,
    wall_start: Option<SystemTime>,
}

impl Trace {
    /// The trace of a request in `context`, starting now.
    pub fn of(context: &TraceContext) -> Self {
        Trace {
            context: context.clone(),
            wall_start: trace::recording(context).then(SystemTime::now),
        }
    }
}

/// Records the answer to `req` in the metrics, as `access_log` says in the access log,
/// and its server span when spans are exported; `ids` are the request id and trace.
/// Whether the request line (`GET /health`, the part of uvicorn's access line that
/// FrameX-kit's `[log] ignored_contains` defaults match) contains one of `ignored`:
/// its access-log line is then not written.
pub(super) fn ignored(ignored: &[String], req: &HttpRequest) -> bool {
    if ignored.is_empty() {
        return false;
    }
    let line = format!("{} {}", req.method(), req.path());
    ignored.iter().any(|s| line.contains(s.as_str()))
}

pub(super) fn record(
    req: &HttpRequest,
    response: &HttpResponse,
    seen: &Seen<'_>,
    started: Instant,
    ids: (&str, &Trace),
    access_log: AccessLog,
) {
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = seen.route_label();
    metrics::observe(req.method(), route, status, seen.target.unwrap_or(Target::None), elapsed.as_secs_f64());
    let (request_id, trace) = ids;
    if let Some(start) = trace.wall_start {
        server_span(req, status, (route, seen.served.as_ref()), &trace.context, start);
    }
    let trace_id = trace.context.trace_id;
    let peer = || req.peer_addr().map_or_else(|| "-".to_owned(), |a| a.ip().to_string());
    match access_log {
        AccessLog::Off => {}
        // The path without its query: query strings often carry tokens. What the
        // client chose is escaped: a path or id cannot forge a line or close the quotes.
        AccessLog::Text => log::info!(
            target: "framex::access",
            "{} \"{} {}\" {} {:.3}ms {} {trace_id:032x}",
            peer(),
            Escaped(req.method()),
            Escaped(req.path()),
            status,
            elapsed.as_secs_f64() * 1000.0,
            Escaped(request_id)
        ),
        // One object per line; serde_json escapes every string (controls included).
        AccessLog::Json => {
            let bytes_in = req
                .headers()
                .get(actix_web::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let bytes_out = match response.body().size() {
                BodySize::None => Some(0),
                BodySize::Sized(n) => Some(n),
                BodySize::Stream => None,
            };
            let served = seen.served.as_ref();
            let upstream = served.and_then(|s| s.urls().last());
            // Every URL tried, when more than one was (a retry on another URL).
            let tried: Option<Vec<&str>> = served.filter(|s| s.attempts.endpoints.len() > 1).map(|s| s.urls().collect());
            let line = json!({
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "peer": peer(),
                "method": req.method().as_str(),
                "route": route,
                "path": req.path(),
                "status": status,
                "duration_ms": (elapsed.as_secs_f64() * 1e6).round() / 1e3,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "upstream": upstream,
                "attempts": served.map(|s| s.attempts.count),
                "tried": tried,
                "request_id": request_id,
                "trace_id": format!("{trace_id:032x}"),
            });
            log::info!(target: "framex::access", "{line}");
        }
    }
}

/// The server span of one request, with HTTP semantic-convention attributes.
fn server_span(req: &HttpRequest, status: u16, (route, served): (&str, Option<&Served>), context: &TraceContext, start: SystemTime) {
    let name = format!("{} {route}", req.method());
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let info = req.connection_info();
    let mut attributes = vec![
        ("http.request.method", AttrValue::Str(req.method().as_str())),
        ("http.route", AttrValue::Str(route)),
        ("url.path", AttrValue::Str(req.path())),
        ("url.scheme", AttrValue::Str(info.scheme())),
        ("server.address", AttrValue::Str(info.host())),
        ("http.response.status_code", AttrValue::Int(i64::from(status))),
    ];
    if let Some(peer) = &peer {
        attributes.push(("client.address", AttrValue::Str(peer)));
    }
    // Where a forwarded request went, failed or not (each attempt is a child span too).
    let tried = served.map(|s| s.urls().collect::<Vec<_>>().join(","));
    if let (Some(served), Some(tried)) = (served, &tried) {
        attributes.push(("framex.upstream.tried", AttrValue::Str(tried)));
        attributes.push(("framex.upstream.attempts", AttrValue::Int(i64::from(served.attempts.count))));
    }
    trace::record(&FinishedSpan {
        name: &name,
        kind: SpanKind::Server,
        context,
        start,
        end: SystemTime::now(),
        attributes: &attributes,
        error: (status >= 500).then_some("5xx"),
    });
}
