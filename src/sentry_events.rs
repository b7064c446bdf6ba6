//! What framex-rs sends to Sentry (`[sentry]`, FrameX-kit's keys): an event for every
//! 5xx answer that framex-rs itself gives (an upstream unreachable, broken or too slow,
//! a plugin's error or panic, an internal error), for a proxied route's upstream 5xx
//! (passed on unchanged), for a proxied stream that breaks off after it started, and a
//! transaction for every request (as FrameX-kit, whose sample rate is 1; framex-rs's
//! `traces_sample_rate` can lower it).
//!
//! Each server owns its own [`Reporter`] (a `sentry::Client`, no global hub), made at
//! start and kept across reloads. Nothing here runs when `[sentry]` is off: the request
//! path holds an `Option` that is `None`. What an event carries is chosen, never
//! collected: the method, the URL without its query, the route template, the status,
//! the request id and the trace (a `trace` context and tags) — no header, cookie,
//! query string or body, so no key can leave in one. Where FrameX-kit 0.4.2 shows a
//! Sentry user something framex-rs can show too, it is shown alike: the environment
//! `<env>_noray`, the level `info` (FrameX-kit sets it on its scope), the transaction
//! named by the route template, op `http.server` and its status from the HTTP status,
//! the request's URL.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::HttpRequest;
use framex_actors::{Error, Route, TraceContext};
use sentry::protocol::{self, Context, Event, Exception, Level, Map, Request, Transaction};

use crate::config::SentryConfig;

/// Paths FrameX-kit never reports errors of (its `before_send` drops events whose URL
/// holds one; it does not see transactions, so these paths still have theirs).
const QUIET_PATHS: [&str; 2] = ["/health", "/ping"];

/// How long stopping waits for queued events to leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a 5xx answer failed, attached to it by `http::error::respond` for the
/// [`Reporter`]: the kind of failure (what `ignore_errors` names) and the detailed
/// message (the log's, not the client's).
#[derive(Debug, Clone)]
pub struct Failure {
    /// The kind: `UpstreamConnect`, `PluginPanic`… (see [`kind_of`]).
    pub kind: &'static str,
    /// What went wrong, in detail.
    pub message: String,
}

impl Failure {
    /// The failure `error` is.
    pub fn of(error: &Error) -> Self {
        Failure {
            kind: kind_of(error),
            message: error.to_string(),
        }
    }

    /// A proxied route's upstream answered `status` (a 5xx, passed on to the client
    /// unchanged): kind `UpstreamStatus`, naming the status, the method and the route
    /// template — not the upstream's body or URL.
    pub fn upstream_status(status: u16, method: &str, route: &str) -> Self {
        let reason = actix_web::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        Failure {
            kind: "UpstreamStatus",
            message: format!("the upstream answered {status} {reason} to {method} {route}"),
        }
    }

    /// A streamed answer broke off after it started (the client had its status and
    /// first bytes): kind `StreamBroken`.
    pub fn stream_broken(error: &Error) -> Self {
        Failure {
            kind: "StreamBroken",
            message: format!("the stream broke off after the answer started: {error}"),
        }
    }
}

/// The name of an engine error's kind, as `ignore_errors` lists it (FrameX-kit lists
/// Python exception type names; these are framex-rs's).
pub fn kind_of(error: &Error) -> &'static str {
    match error {
        Error::NoRoute { .. } => "NoRoute",
        Error::NotDeclared { .. } => "NotDeclared",
        Error::BadArguments { .. } => "BadArguments",
        Error::PluginConfig { .. } => "PluginConfig",
        Error::Plugin { .. } => "PluginError",
        Error::PluginPanic { .. } => "PluginPanic",
        Error::UpstreamConnect { .. } => "UpstreamConnect",
        Error::UpstreamTimeout { .. } => "UpstreamTimeout",
        Error::UpstreamReply { .. } => "UpstreamReply",
        Error::UpstreamStatus { .. } => "UpstreamStatus",
        Error::Overloaded { .. } => "Overloaded",
        Error::Loop { .. } => "Loop",
        Error::Deadline { .. } => "Deadline",
        Error::Mailbox(_) => "Mailbox",
        Error::Internal(_) => "Internal",
        _ => "Error",
    }
}

/// The environment's suffix FrameX-kit 0.4.2 appends to `env` when it runs without
/// Ray (its adapter mode `noray`).
const ENVIRONMENT_SUFFIX: &str = "_noray";

/// What an event or transaction says of the request.
pub struct RequestFacts<'a> {
    /// Its method.
    pub method: &'a str,
    /// `http` or `https`, as it reached framex-rs.
    pub scheme: &'a str,
    /// The host it named (its `Host` header or authority), empty if none.
    pub host: &'a str,
    /// Its canonical path, without the query.
    pub path: &'a str,
    /// The route template it matched (or the built-in's path, or `unmatched`).
    pub route: &'a str,
    /// The status answered.
    pub status: u16,
    /// Its request id.
    pub request_id: &'a str,
    /// Its trace.
    pub trace: &'a TraceContext,
}

/// A server's link to Sentry.
pub struct Reporter {
    client: Arc<sentry::Client>,
    ignore_errors: Vec<String>,
    /// `traces_sample_rate`.
    sample_rate: f64,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").field("sample_rate", &self.sample_rate).finish()
    }
}

impl Reporter {
    /// The reporter `config` asks for, or `None` when Sentry is off. `release` is the
    /// version (`server.reversion` or framex-rs's), sent as `v<release>` as FrameX-kit
    /// does. `secrets` are scrubbed from every event; with `enable_logs`, log records
    /// go to Sentry too (see [`crate::sentry_logs`]), scrubbed alike.
    pub fn start(config: &SentryConfig, release: &str, secrets: Vec<String>) -> Option<Arc<Reporter>> {
        if !config.active() {
            return None;
        }
        // Checked when the config was loaded.
        let dsn = config.dsn.trim().parse().ok()?;
        let release = if release.starts_with('v') { release.to_owned() } else { format!("v{release}") };
        let options = sentry::ClientOptions {
            dsn: Some(dsn),
            debug: config.debug,
            release: Some(release.into()),
            environment: Some(format!("{}{ENVIRONMENT_SUFFIX}", config.env).into()),
            send_default_pii: false,
            default_integrations: false,
            traces_sample_rate: config.traces_sample_rate as f32,
            shutdown_timeout: CLOSE_TIMEOUT,
            enable_logs: config.enable_logs,
            transport: Some(Arc::new(crate::sentry_transport::transport)),
            ..Default::default()
        };
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        // Error events are scrubbed with these too, logs sent or not.
        crate::sentry_logs::add_secrets(secrets);
        if config.enable_logs {
            crate::sentry_logs::register(client.clone());
        }
        log::info!(
            "sentry: reporting 5xx errors, transactions for {}% of requests{} as environment {}{ENVIRONMENT_SUFFIX}",
            config.traces_sample_rate * 100.0,
            if config.enable_logs { ", log records at info and above" } else { "" },
            framex_actors::Escaped(&config.env)
        );
        Some(Arc::new(Reporter {
            client,
            ignore_errors: config.ignore_errors.clone(),
            sample_rate: config.traces_sample_rate,
        }))
    }

    /// Reports what a request's answer says: its failure (not a kind `ignore_errors`
    /// lists, not a probe's path), and its transaction — for every method but `HEAD`
    /// and `OPTIONS` (which FrameX-kit's Sentry SDK leaves out), probes included (its
    /// `before_send` sees errors only), when the trace is sampled.
    pub fn request(&self, facts: &RequestFacts<'_>, failure: Option<&Failure>, started: SystemTime) {
        if let Some(failure) = failure {
            self.failure(facts, failure);
        }
        if !matches!(facts.method, "HEAD" | "OPTIONS") && sampled(facts.trace, self.sample_rate) {
            self.client.send_envelope(self.transaction(facts, started).into());
        }
    }

    /// Reports `failure` of a request, unless `ignore_errors` lists its kind or the
    /// path is a probe's.
    fn failure(&self, facts: &RequestFacts<'_>, failure: &Failure) {
        let quiet = QUIET_PATHS.iter().any(|quiet| facts.path.contains(quiet));
        if !quiet && !self.ignore_errors.iter().any(|i| i == failure.kind) {
            self.client.capture_event(error_event(facts, failure), None);
        }
    }

    /// Sends what is queued (waiting at most two seconds) and stops the client.
    pub fn close(&self) {
        self.client.close(Some(CLOSE_TIMEOUT));
    }

    fn transaction(&self, facts: &RequestFacts<'_>, started: SystemTime) -> Transaction<'static> {
        let options = self.client.options();
        let mut tags = tags(facts);
        // The tag FrameX-kit's transactions carry, for dashboards written for them.
        tags.insert("http.status_code".to_owned(), facts.status.to_string());
        Transaction {
            name: Some(facts.route.to_owned()),
            release: options.release.clone(),
            environment: options.environment.clone(),
            tags,
            contexts: trace_context(facts, Some(span_status(facts.status))),
            request: Some(request(facts)),
            start_timestamp: started,
            timestamp: Some(SystemTime::now()),
            ..Default::default()
        }
    }
}

/// Whether the trace is sent as a transaction at `rate`: its trace id's low 64 bits
/// (random, W3C says) against the rate, so every hop that shares the trace and the
/// rate decides alike, and no random number is drawn.
fn sampled(trace: &TraceContext, rate: f64) -> bool {
    rate >= 1.0 || (trace.trace_id as u64 as f64) < rate * u64::MAX as f64
}

/// The span status of an HTTP status, as Sentry's SDKs map it.
fn span_status(status: u16) -> protocol::SpanStatus {
    use protocol::SpanStatus as S;
    match status {
        0..=399 => S::Ok,
        401 => S::Unauthenticated,
        403 => S::PermissionDenied,
        404 => S::NotFound,
        409 => S::AlreadyExists,
        413 => S::FailedPrecondition,
        429 => S::ResourceExhausted,
        400..=499 => S::InvalidArgument,
        501 => S::Unimplemented,
        503 => S::Unavailable,
        504 => S::DeadlineExceeded,
        500..=599 => S::InternalError,
        _ => S::UnknownError,
    }
}

/// A streamed answer's link to Sentry, when `[sentry]` is on: made where the stream
/// is answered ([`crate::http`]'s one place for streamed answers), armed by the
/// dispatcher once the answer is made, and told by the stream when it breaks off
/// ([`Failure::stream_broken`]). Arming copies nothing: the tap keeps reference counts
/// (the request, the route, the request id) and builds the event's facts only when a
/// break is reported. It lives on the response's worker thread only.
#[derive(Clone, Default)]
pub struct StreamTap(Rc<RefCell<Option<Armed>>>);

/// What an armed [`StreamTap`] reports with: the reporter and what the request's
/// [`RequestFacts`] are read from.
struct Armed {
    reporter: Arc<Reporter>,
    source: FactsSource,
}

/// What a request's [`RequestFacts`] are read from, kept without copying a string:
/// the request (its method, scheme, host and path), the route it matched, the status
/// answered, its request id and its trace.
pub struct FactsSource {
    /// The request (a reference count).
    pub req: HttpRequest,
    /// The route it matched.
    pub route: RouteName,
    /// The status answered.
    pub status: u16,
    /// Its request id.
    pub request_id: framex_actors::RequestId,
    /// Its trace.
    pub trace: TraceContext,
}

/// The route a request matched as Sentry names it, kept by reference count: a
/// route's template (or function name), or a fixed label (a built-in's path,
/// `unmatched`).
#[derive(Clone)]
pub enum RouteName {
    /// A route of the table.
    Route(Arc<Route>),
    /// A label that is no route's.
    Fixed(&'static str),
}

impl RouteName {
    /// The name: the route's template, or the label.
    pub fn as_str(&self) -> &str {
        match self {
            RouteName::Route(route) => route.spec.key.template(),
            RouteName::Fixed(label) => label,
        }
    }
}

impl<'a> RequestFacts<'a> {
    /// The facts of `req`, answered `status` on `route` (a route's template or a
    /// label), with its `request_id` and `trace`.
    pub fn of(req: &'a HttpRequest, route: &'a str, status: u16, request_id: &'a str, trace: &'a TraceContext) -> Self {
        let host = req.headers().get(actix_web::http::header::HOST).and_then(|v| v.to_str().ok());
        RequestFacts {
            method: req.method().as_str(),
            scheme: if req.app_config().secure() { "https" } else { "http" },
            host: host.or_else(|| req.uri().authority().map(|a| a.as_str())).unwrap_or(""),
            path: req.path(),
            route,
            status,
            request_id,
            trace,
        }
    }
}

impl StreamTap {
    /// Reports to `reporter` a break from now on, with the facts read from `source`
    /// then.
    pub fn arm(&self, reporter: Arc<Reporter>, source: FactsSource) {
        *self.0.borrow_mut() = Some(Armed { reporter, source });
    }

    /// The stream broke off with `error`: reported once, if armed.
    pub fn broken(&self, error: &Error) {
        let Some(Armed { reporter, source: s }) = self.0.borrow_mut().take() else { return };
        let facts = RequestFacts::of(&s.req, s.route.as_str(), s.status, &s.request_id, &s.trace);
        reporter.failure(&facts, &Failure::stream_broken(error));
    }
}

/// The event of a failed request. Its level is `info`, as FrameX-kit's (whose
/// `sentry_sdk.set_level("info")` sets every event's), so filters and alerts written
/// for FrameX-kit's events match these.
fn error_event(facts: &RequestFacts<'_>, failure: &Failure) -> Event<'static> {
    Event {
        level: Level::Info,
        logger: Some("framex".to_owned()),
        transaction: Some(facts.route.to_owned()),
        exception: vec![Exception {
            ty: failure.kind.to_owned(),
            value: Some(crate::config::secrets::scrub(&failure.message, &crate::sentry_logs::secrets())),
            ..Default::default()
        }]
        .into(),
        tags: tags(facts),
        contexts: trace_context(facts, Some(protocol::SpanStatus::InternalError)),
        request: Some(request(facts)),
        ..Default::default()
    }
}

fn tags(facts: &RequestFacts<'_>) -> Map<String, String> {
    let mut tags = Map::new();
    tags.insert("request_id".to_owned(), facts.request_id.to_owned());
    tags.insert("trace_id".to_owned(), facts.trace.trace_id_hex().to_string());
    tags.insert("route".to_owned(), facts.route.to_owned());
    tags.insert("status_code".to_owned(), facts.status.to_string());
    tags
}

/// The `trace` context: our W3C trace and span ids are Sentry's (16 and 8 bytes).
fn trace_context(facts: &RequestFacts<'_>, status: Option<protocol::SpanStatus>) -> Map<String, Context> {
    let trace = facts.trace;
    let mut contexts = Map::new();
    contexts.insert(
        "trace".to_owned(),
        Context::Trace(Box::new(protocol::TraceContext {
            trace_id: trace.trace_id.to_be_bytes().into(),
            span_id: trace.span_id.to_be_bytes().into(),
            parent_span_id: trace.parent_id.map(|id| id.to_be_bytes().into()),
            op: Some("http.server".to_owned()),
            status,
            ..Default::default()
        })),
    );
    contexts
}

/// The request as Sentry shows it: method and URL without its query (no headers,
/// cookies, query or body: they may hold keys). A host that makes no URL leaves the
/// URL out; the path is in `PATH_INFO` either way.
fn request(facts: &RequestFacts<'_>) -> Request {
    let mut env = Map::new();
    env.insert("PATH_INFO".to_owned(), facts.path.to_owned());
    let url = format!("{}://{}{}", facts.scheme, facts.host, facts.path).parse().ok();
    Request {
        url: url.filter(|_| !facts.host.is_empty()),
        method: Some(facts.method.to_owned()),
        env,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds `ignore_errors` names are stable words, one per failure.
    #[test]
    fn kinds_name_the_failure() {
        let connect = Error::UpstreamConnect {
            upstream: framex_actors::Peer::endpoint("http://127.0.0.1:9".parse().unwrap(), None),
            cause: framex_actors::ConnectFailure::Tcp(std::sync::Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))),
        };
        assert_eq!(Failure::of(&connect).kind, "UpstreamConnect");
        let panic = Error::PluginPanic { plugin: "p".into(), message: "boom".into() };
        assert_eq!((kind_of(&panic), Failure::of(&panic).message.as_str()), ("PluginPanic", "plugin 'p' panicked: boom"));
    }

    /// The sample decision follows the trace id's low half: all at 1, none at 0,
    /// about the share asked between, the same for the same trace.
    #[test]
    fn sampling_follows_the_trace_id() {
        let trace = |id: u128| TraceContext { trace_id: id, ..TraceContext::start() };
        assert!(sampled(&trace(u128::MAX), 1.0) && !sampled(&trace(0), 0.0));
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let kept = (0..10_000)
            .filter(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                sampled(&trace(u128::from(state) << 64 | u128::from(state)), 0.25)
            })
            .count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
        // The decision is the trace's: every hop of one trace decides alike, and a
        // rate keeps the lower part of the id space.
        assert!(sampled(&trace(1 << 64), 0.5) && !sampled(&trace(u128::MAX - (1 << 64)), 0.5));
    }

    /// HTTP statuses map to Sentry's span statuses as its SDKs map them.
    #[test]
    fn span_statuses() {
        use protocol::SpanStatus as S;
        let cases = [(200, S::Ok), (302, S::Ok), (404, S::NotFound), (422, S::InvalidArgument), (429, S::ResourceExhausted)];
        for (status, expected) in cases.into_iter().chain([(500, S::InternalError), (502, S::InternalError), (503, S::Unavailable), (504, S::DeadlineExceeded)]) {
            assert_eq!(span_status(status), expected, "{status}");
        }
    }

    /// Off unless enable, dsn and env are all set; no event leaves for a probe path.
    #[test]
    fn off_without_dsn_and_env() {
        let mut config = SentryConfig { enable: true, ..Default::default() };
        assert!(Reporter::start(&config, "1.0", Vec::new()).is_none());
        config.dsn = "http://k@127.0.0.1:9/1".into();
        assert!(Reporter::start(&config, "1.0", Vec::new()).is_none());
        config.env = "test".into();
        let secret = "k-sentry-start-secret-1".to_owned();
        let reporter = Reporter::start(&config, "1.0", vec![secret.clone()]).unwrap();
        assert!(
            crate::sentry_logs::secrets().contains(&secret),
            "error events are scrubbed with the config's secrets even without enable_logs"
        );
        assert_eq!(reporter.client.options().environment.as_deref(), Some("test_noray"));
        assert_eq!(reporter.client.options().release.as_deref(), Some("v1.0"));
        reporter.close();
    }
}
