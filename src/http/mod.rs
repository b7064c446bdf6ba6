//! The HTTP surface: built-in endpoints, local plugin routes and proxied routes.
//!
//! Every request goes through [`service`], which serves it through the named phases
//! of `phases`: built-ins (the docs login, the docs tools, `GET` of a fixed path), then the loop check, auth rules,
//! FrameX's proxy-function path, the route match, `[limits]`, and either a local
//! plugin (arguments bound, FrameX envelope back) or faithful forwarding to an
//! upstream.

mod answer;
mod assets;
mod body;
mod body_deadline;
mod builtin;
mod cached;
mod cached_proxy;
mod docs_actions;
mod docs_page;
mod docs_tools;
pub mod docs_login;
mod envelope;
pub mod error;
mod forward;
mod forwarded;
mod limit;
mod local;
pub mod migrate;
mod observe;
mod phases;
mod proxy_function;
mod unread_body;
mod websocket;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use actix::Addr;
use arc_swap::ArcSwap;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest as _, HttpRequest, HttpResponse};
use framex_actors::upstream::{HOPS_HEADER, REQUEST_ID_HEADER};
use framex_actors::PoolReplicas;
use framex_actors::trace::{TRACEPARENT, TRACESTATE};
use framex_actors::{CallContext, Engine, RouteTable, Router, TraceContext};

use crate::canonical_path;
use crate::config::AuthRules;
use crate::openapi::DocumentCache;

pub use body_deadline::{BodyDeadlines, MIN_RATE_GRACE};
pub use docs_page::DocsPage;
pub use envelope::timestamp;
pub use local::bind;

/// State shared by every worker.
pub struct Shared {
    /// The engine (published route table, registry).
    pub engine: Engine,
    /// `[auth] rules` protecting our own paths.
    pub auth: AuthRules,
    /// Their keys, spelled loosely (for the `Authorization` never forwarded).
    pub our_keys: OurKeys,
    /// `[limits]` rules, or `None` when there are none (one check per request).
    pub limits: Option<Arc<crate::limits::Limiter>>,
    /// Requests that passed through this many proxies are refused as a loop.
    pub max_hops: u32,
    /// Largest request body accepted, in bytes.
    pub max_body_size: usize,
    /// How long request bodies may take to arrive (`client_body_timeout`,
    /// `min_body_rate`).
    pub body_deadlines: BodyDeadlines,
    /// Whether and how every request gets an access-log line (`framex::access`, info
    /// level).
    pub access_log: crate::config::AccessLog,
    /// What `/version` answers (`server.reversion`, else framex-rs's version), as JSON.
    pub version: web::Bytes,
    /// Local routes answered without the envelope (`server.excluded_log_paths`).
    pub raw_paths: Vec<String>,
    /// Access-log lines containing one of these are not written
    /// (`[log] ignored_contains`).
    pub log_ignored: Vec<String>,
    /// Peers whose forwarding headers are kept and extended (`server.trusted_proxies`).
    pub trusted_proxies: crate::config::TrustedProxies,
    /// Deadline of a call (the proxy's `timeout`).
    pub timeout: std::time::Duration,
    /// The merged OpenAPI document, rebuilt when the table changes.
    pub openapi: DocumentCache,
    /// The system proxy, when loaded (for its status page).
    pub proxy: Option<crate::proxy::Proxy>,
    /// Whether `/ready` says yes (see [`Readiness`]).
    pub readiness: Readiness,
    /// `[plugins.proxy.migrate]` in force, with its counters (new on each reload).
    pub migration: Arc<migrate::Migration>,
    /// The docs login, when `[auth.oauth]` is set (`None`: off, one check per request).
    pub docs_login: Option<Arc<docs_login::DocsLogin>>,
    /// The request cache, when `[cache] enabled` (`None`: off, one check per request).
    pub cache: Option<Arc<crate::cache::Cache>>,
    /// `[sentry]`, when on (`None`: off, one check per request); kept across reloads.
    pub sentry: Option<Arc<crate::sentry_events::Reporter>>,
    /// What the `/docs` header shows besides live figures (start time, plugins,
    /// `[docs]` action buttons).
    pub docs: Arc<DocsPage>,
    /// Becomes `true` when open WebSocket tunnels are to be closed (1001) because the
    /// server is stopping.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

/// What `/ready` answers: ready once every upstream URL has been discovered at least
/// once (but those listed in `server.ready_without`), and never while draining.
#[derive(Clone, Default)]
pub struct Readiness {
    /// Set when SIGTERM starts draining; shared by every state a reload makes.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Upstream URLs not waited for.
    pub without: Vec<framex_actors::upstream::UpstreamUrl>,
    /// The reason last logged, so that a probe every second logs a change once.
    pub logged: Arc<std::sync::Mutex<String>>,
}

impl Readiness {
    /// Why the server is not ready, or `None` when it is.
    pub fn not_ready(&self, proxy: Option<&crate::proxy::Proxy>) -> Option<String> {
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return Some("draining".to_owned());
        }
        let waiting: Vec<String> = proxy
            .map(|p| p.undiscovered())
            .unwrap_or_default()
            .into_iter()
            .filter(|url| !self.without.contains(url))
            .map(|url| url.to_string())
            .collect();
        (!waiting.is_empty()).then(|| format!("not yet discovered: {}", waiting.join(", ")))
    }

    /// Logs why the server is not ready, when that changed since last logged.
    pub fn log_once(&self, reason: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *logged != reason {
            log::info!("/ready: not ready: {}", framex_actors::Escaped(reason));
            reason.clone_into(&mut logged);
        }
    }
}

/// What one worker holds for its whole life: the current shared state (swapped
/// whole by a reload) and its arbiter's share of the engine.
pub struct WorkerState {
    /// The router replica on this worker's arbiter.
    router: Addr<Router>,
    /// The pool replicas on this worker's arbiter (owned with the router).
    pools: PoolReplicas,
    /// The state and table as this worker last saw them.
    latest: RefCell<Latest>,
}

/// What a request reads of the process's state: the shared state and the route table
/// as they were when it came in (a reload or a new table during the request changes
/// nothing for it).
pub struct View {
    /// The shared state.
    pub shared: Arc<Shared>,
    /// The published route table.
    pub table: Arc<RouteTable>,
}

/// The view a worker's requests share, made again when the state or the table
/// changed. A request takes the view by `Rc`, a count of this thread's own: taking
/// the `Arc`s from their `ArcSwap`s would update, on every request, reference counts
/// every worker shares (their cache lines moving between the cores: measured at 256
/// connections, `perf` found the shared counts' updates among the most expensive
/// instructions of a proxied request).
struct Latest {
    shared: arc_swap::Cache<Arc<ArcSwap<Shared>>, Arc<Shared>>,
    table: arc_swap::Cache<Arc<ArcSwap<RouteTable>>, Arc<RouteTable>>,
    view: Rc<View>,
}

impl Latest {
    /// The current view: one plain load of each pointer, unless one changed.
    fn view(&mut self) -> &Rc<View> {
        let (shared, table) = (self.shared.load(), self.table.load());
        if !Arc::ptr_eq(shared, &self.view.shared) || !Arc::ptr_eq(table, &self.view.table) {
            self.view = Rc::new(View { shared: shared.clone(), table: table.clone() });
        }
        &self.view
    }
}

/// How often an idle worker looks at the state again, so that the view it keeps does
/// not hold a replaced state or table (and what they hold) for longer.
const VIEW_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// What one request sees: the view as it was when the request came in, and the
/// worker's engine, borrowed (an actor address's clone is an allocation).
pub struct Worker<'a> {
    /// Shared state, as the request's view holds it.
    pub shared: &'a Arc<Shared>,
    /// The route table, taken with it.
    pub table: &'a RouteTable,
    /// The router replica on this worker's arbiter.
    pub router: &'a Addr<Router>,
    /// The pool replicas on this worker's arbiter (owned with the router).
    pub pools: &'a PoolReplicas,
}

impl WorkerState {
    /// A worker's state, following `state` and the table its `pools` follow; it looks
    /// at them again every [`VIEW_REFRESH`] while it lives (made on the worker's
    /// arbiter, inside a running actix system).
    pub fn new(state: Arc<ArcSwap<Shared>>, router: Addr<Router>, pools: PoolReplicas) -> Rc<Self> {
        let table = pools.published().clone();
        let view = Rc::new(View { shared: state.load_full(), table: table.load_full() });
        let latest = Latest { shared: arc_swap::Cache::new(state), table: arc_swap::Cache::new(table), view };
        let worker = Rc::new(WorkerState { router, pools, latest: RefCell::new(latest) });
        actix_rt::spawn(refresh_view(Rc::downgrade(&worker)));
        worker
    }

    /// The view of one request: the current state and table.
    pub(crate) fn view(&self) -> Rc<View> {
        self.latest.borrow_mut().view().clone()
    }

    /// What a request sees, of `view`.
    fn worker<'a>(&'a self, view: &'a View) -> Worker<'a> {
        Worker { shared: &view.shared, table: &view.table, router: &self.router, pools: &self.pools }
    }
}

/// Looks at the state and the table again every [`VIEW_REFRESH`] while the worker
/// lives, so that an idle worker lets a replaced state or table go (its pool replicas
/// too: the actors of pools the table no longer names are retired, their idle
/// connections closed). One wake-up a second per worker, against a `Notify` that every
/// store of a state or a table would have to remember to signal. The same wake-up lets
/// go of the read and write buffers idle connections gave up that lay unused since the
/// last one (`actix_http::h1::spare_buffers`, patched: kept for the next reads under
/// load, at most 16 once the load is gone).
async fn refresh_view(worker: std::rc::Weak<WorkerState>) {
    loop {
        tokio::time::sleep(VIEW_REFRESH).await;
        let Some(worker) = worker.upgrade() else { return };
        worker.latest.borrow_mut().view();
        worker.pools.prune();
        actix_http::h1::spare_buffers::trim();
    }
}

/// The service that answers every request on one worker: built-ins, then the route
/// table. A plain service over actix-web's request rather than a handler with
/// extractors: the worker's state is its own (no lookup in the app data per request),
/// and the request and body are taken as they come.
pub fn service(
    worker: Rc<WorkerState>,
) -> impl actix_web::dev::ServiceFactory<
    actix_web::dev::ServiceRequest,
    Config = (),
    Response = actix_web::dev::ServiceResponse,
    Error = actix_web::Error,
    InitError = (),
> {
    actix_web::dev::fn_service(move |request: actix_web::dev::ServiceRequest| {
        let worker = worker.clone();
        async move {
            let (req, payload) = request.into_parts();
            let response = dispatch(&req, payload, &worker).await;
            Ok(actix_web::dev::ServiceResponse::new(req, response))
        }
    })
}

/// Serves one request, and writes its access-log line when `server.access_log` is on.
async fn dispatch(req: &HttpRequest, payload: actix_web::dev::Payload, state: &WorkerState) -> HttpResponse {
    // An HTTP/1 request with neither `Content-Length` (but 0) nor `Transfer-Encoding`
    // comes with no payload at all: whether it has a body is known without looking
    // its fields up again.
    let bodiless = matches!(payload, actix_web::dev::Payload::None);
    // Taking the body as `web::Payload` does not fail (a ready `Ok`).
    let Ok(payload) = web::Payload::from_request(req, &mut { payload }).into_inner() else {
        unreachable!("web::Payload is taken as it is")
    };
    let view = state.view();
    let worker = state.worker(&view);
    let started = std::time::Instant::now();
    let ctx = context(req, worker.shared, started);
    // The body outlives the handler, so one left unread closes the connection rather
    // than being drained for as long as a slow client cares to send it.
    let (payload, keeper) = unread_body::share(req, payload, bodiless).await;
    let request_id = ctx.request_id.clone();
    let trace = observe::Trace::of(&ctx.trace);
    let access_log = match worker.shared.access_log {
        crate::config::AccessLog::Off => crate::config::AccessLog::Off,
        _ if observe::ignored(&worker.shared.log_ignored, req) => crate::config::AccessLog::Off,
        on => on,
    };
    let mut seen = observe::Seen::default();
    let sentry = worker.shared.sentry.clone().map(|reporter| (reporter, ctx.trace.clone(), std::time::SystemTime::now()));
    // Boxed: the phases' future is 2.5 KiB (the upstream exchange's), and actix-web
    // boxes the service's future whole, moving it; a pointer moves for free, against
    // one allocation (measured: 1,300 instructions a request fewer at 8 KiB, 450 at
    // 2.5 KiB; with the plain service, 430 fewer).
    let response = Box::pin(phases::serve(req, (payload, bodiless), &worker, ctx, &mut seen)).await;
    observe::record(req, &response, &seen, started, (&request_id, &trace), access_log);
    if let Some((reporter, trace, wall_start)) = sentry {
        report(&reporter, (req, &response, &seen), &request_id, &trace, wall_start);
    }
    match keeper {
        Some(keeper) => keeper.attach(response),
        None => response,
    }
}

/// Tells Sentry of a request's answer (`[sentry]` on): its failure — a 5xx of ours,
/// or a proxied route's upstream 5xx passed on — and its transaction; arms a streamed
/// answer's tap, so a break after the answer started is reported too.
fn report(
    reporter: &Arc<crate::sentry_events::Reporter>,
    (req, response, seen): (&HttpRequest, &HttpResponse, &observe::Seen<'_>),
    request_id: &framex_actors::RequestId,
    trace: &framex_actors::TraceContext,
    wall_start: std::time::SystemTime,
) {
    let status = response.status().as_u16();
    let facts = crate::sentry_events::RequestFacts::of(req, seen.route_label(), status, request_id, trace);
    let extensions = response.extensions();
    let upstream_status = || {
        let proxied = seen.target == Some(crate::metrics::Target::Upstream) && facts.status >= 500;
        proxied.then(|| crate::sentry_events::Failure::upstream_status(facts.status, facts.method, facts.route))
    };
    let failure = extensions.get::<crate::sentry_events::Failure>().cloned().or_else(upstream_status);
    if let Some(tap) = extensions.get::<crate::sentry_events::StreamTap>() {
        let source = crate::sentry_events::FactsSource {
            req: req.clone(),
            route: seen.route_name(),
            status,
            request_id: request_id.clone(),
            trace: trace.clone(),
        };
        tap.arm(reporter.clone(), source);
    }
    reporter.request(&facts, failure.as_ref(), wall_start);
}

// The names `context` reads, made once: a name given as text is parsed, and when it is
// not a standard one allocated, on every lookup.
static REQUEST_ID_NAME: header::HeaderName = header::HeaderName::from_static(REQUEST_ID_HEADER);
static TRACEPARENT_NAME: header::HeaderName = header::HeaderName::from_static(TRACEPARENT);
static TRACESTATE_NAME: header::HeaderName = header::HeaderName::from_static(TRACESTATE);
static HOPS_NAME: header::HeaderName = header::HeaderName::from_static(HOPS_HEADER);

/// The call context of a request that came in at `started`: deadline, request id (the
/// caller's, if it is a trusted proxy and the id 1–128 visible ASCII characters; else a
/// generated one), hops so far, trace context (a trusted proxy's, if well formed; else a
/// new trace).
fn context(req: &HttpRequest, shared: &Shared, started: std::time::Instant) -> CallContext {
    let mut ctx = CallContext::new().with_deadline(started + shared.timeout);
    // One pass over the fields, keeping the first value of each name (as a lookup
    // gives it): four lookups by name cost more on the usual request, which carries
    // none of these.
    let (mut id, mut parent, mut state, mut hops) = (None, None, None, None);
    for (name, value) in req.headers() {
        let slot = match name {
            n if *n == REQUEST_ID_NAME => &mut id,
            n if *n == TRACEPARENT_NAME => &mut parent,
            n if *n == TRACESTATE_NAME => &mut state,
            n if *n == HOPS_NAME => &mut hops,
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    // A caller's request id and trace are claims (DESIGN §9): taken from a trusted
    // proxy only; anyone else's request gets ids of its own.
    // (The peer is looked at only when the request makes such a claim.)
    let trusted = (id.is_some() || parent.is_some()) && forwarded::from_trusted(req, &shared.trusted_proxies);
    if let Some(id) = id.and_then(|v| usable_request_id(v.as_bytes())).filter(|_| trusted) {
        ctx.request_id = id.into();
    }
    let continued = parent.filter(|_| trusted).and_then(|p| TraceContext::continue_from(p.as_bytes(), state.map(|v| v.as_bytes())));
    if let Some(trace) = continued {
        ctx.trace = trace;
    }
    ctx.hops = hops.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    ctx
}

/// A client's request id, if it is 1–128 visible ASCII characters (0x21–0x7E): no
/// spaces, controls or non-ASCII, so it is safe in logs and headers as it is.
fn usable_request_id(id: &[u8]) -> Option<&str> {
    let usable = (1..=128).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b));
    usable.then(|| std::str::from_utf8(id).ok()).flatten()
}

/// What `[auth] rules` say of a request.
enum Auth {
    /// No rule covers its path.
    Open,
    /// A rule covers it and the request carries one of its keys (the key was for
    /// us): the index of that key in the rule.
    Passed(usize),
    /// A rule covers it and the key is missing or wrong: the 401 envelope to answer.
    Refused(Box<HttpResponse>),
}

/// Applies `[auth] rules` to a request whose canonical path is `path`.
fn authorize(rules: &AuthRules, headers: &header::HeaderMap, path: &str) -> Auth {
    let Some(keys) = rules.keys_for(path) else {
        return Auth::Open;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(index) = keys.iter().position(|k| constant_time_eq(k.as_bytes(), given.as_bytes())) {
        Auth::Passed(index)
    } else {
        let message = format!("Invalid API Key for API({path})");
        Auth::Refused(Box::new(envelope::error(StatusCode::UNAUTHORIZED, &message, None)))
    }
}

/// The check actix-http runs before it writes `100 Continue` to a request that sent
/// `Expect: 100-continue` (put in every connection's data by the server): a request
/// that `[auth]` refuses gets its 401 at once, one whose declared body is over
/// `server.max_body_size` its 413, and neither is invited to send its body.
/// A path that does not canonicalise is let through: the request gets its 400 without
/// its body being read.
pub fn expect_check(state: Arc<ArcSwap<Shared>>) -> actix_http::h1::ExpectCheck {
    actix_http::h1::ExpectCheck(Arc::new(move |req: &actix_http::Request| {
        let path = canonical_path::canonicalize(req.path()).ok()?;
        let shared = state.load();
        let headers = actix_http::HttpMessage::headers(req);
        // The docs behind the login answer a redirect, not a 401, whatever the rules.
        let guarded = shared.docs_login.is_some() && docs_login::is_guarded(&path);
        if !guarded {
            if let Auth::Refused(response) = authorize(&shared.auth, headers, &path) {
                return Some((*response).into());
            }
        }
        // A body declared larger than any request may send is refused before it is
        // invited (nginx checks `client_max_body_size` alike).
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > shared.max_body_size as u64) {
            let refused = framex_actors::Error::PayloadTooLarge { limit: shared.max_body_size };
            return Some(error::respond(&refused, "-", "-").into());
        }
        None
    }))
}

/// Every `[auth]` key, of any rule, as [`loosely`] spells it: made once per state, so
/// that a request's `Authorization` is compared without spelling the keys again.
pub struct OurKeys(Vec<Vec<u8>>);

impl OurKeys {
    /// The keys of `rules`.
    pub fn of(rules: &AuthRules) -> Self {
        OurKeys(rules.entries().flat_map(|(_, keys)| keys.iter().map(|k| loosely(k.as_bytes()))).collect())
    }

    /// Whether `value` (an `Authorization` value) is one of the keys, as spelled or
    /// spelled otherwise (letters in either case, spaces added or doubled): each
    /// compared in constant time. A key is refused unless sent exactly, but one sent
    /// almost right is still ours, and never goes upstream.
    fn holds(&self, value: &[u8]) -> bool {
        let value = loosely(value);
        self.0.iter().fold(false, |found, key| found | constant_time_eq(key, &value))
    }
}

/// `text` with ASCII letters lower-cased and every run of spaces and tabs made one
/// space, none at either end.
fn loosely(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for word in text.split(|b| *b == b' ' || *b == b'\t').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend(word.iter().map(u8::to_ascii_lowercase));
    }
    out
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key of any rule, sent in another case or with its spaces doubled, tabbed or
    /// padded, is ours; a key with a character more or less, or split where it has no
    /// space, is not.
    #[test]
    fn our_keys_are_found_however_spaced_or_cased() {
        let rules = AuthRules::new([("/api/v1/a", vec!["Bearer Tok3n".to_owned()]), ("/api/v1/b", vec!["other".to_owned()])]).unwrap();
        let keys = OurKeys::of(&rules);
        for sent in ["Bearer Tok3n", "bearer tok3n", "BEARER  TOK3N", "\tBearer\tTok3n ", "OTHER"] {
            assert!(keys.holds(sent.as_bytes()), "{sent:?} is ours");
        }
        for sent in ["Bearer Tok3", "Bearer Tok3nn", "BearerTok3n", "Bearer To k3n", "", " ", "Bearer\u{a0}Tok3n"] {
            assert!(!keys.holds(sent.as_bytes()), "{sent:?} is not ours");
        }
        assert!(!OurKeys::of(&AuthRules::default()).holds(b""), "no rules, no keys");
    }
}
