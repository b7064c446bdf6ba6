//! What framex-rs sends to Sentry (`[sentry]`, FrameX-kit's keys): an event for every
//! 5xx answer that framex-rs itself gives (an upstream unreachable, broken or too slow,
//! a plugin's error or panic, an internal error), and with `lifecycle = "trace"` a
//! transaction for every request.
//!
//! Each server owns its own [`Reporter`] (a `sentry::Client`, no global hub), made at
//! start and kept across reloads. Nothing here runs when `[sentry]` is off: the request
//! path holds an `Option` that is `None`. What an event carries is chosen, never
//! collected: the method, the URL without its query, the route template, the status,
//! the request id and the trace (a `trace` context and tags) — no header, cookie,
//! query string or body, so no key can leave in one. Where FrameX-kit 0.4.2 shows a
//! Sentry user something framex-rs can show too, it is shown alike: the environment
//! `<env>_noray`, the level `info` (FrameX-kit sets it on its scope), the transaction
//! named by the route template, the request's URL.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use framex_actors::{Error, TraceContext};
use sentry::protocol::{self, Context, Event, Exception, Level, Map, Request, Transaction};

use crate::config::{SentryConfig, SentryLifecycle};

/// Paths FrameX-kit never reports (its `before_send` drops events whose URL holds one).
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
    transactions: bool,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").field("transactions", &self.transactions).finish()
    }
}

impl Reporter {
    /// The reporter `config` asks for, or `None` when Sentry is off. `release` is the
    /// version (`server.reversion` or framex-rs's), sent as `v<release>` as FrameX-kit
    /// does. With `enable_logs`, log records go to Sentry too (see
    /// [`crate::sentry_logs`]), `secrets` scrubbed from them.
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
            traces_sample_rate: 1.0,
            shutdown_timeout: CLOSE_TIMEOUT,
            enable_logs: config.enable_logs,
            ..Default::default()
        };
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        if config.enable_logs {
            crate::sentry_logs::register(client.clone(), secrets);
        }
        log::info!(
            "sentry: reporting 5xx errors{}{} as environment {}{ENVIRONMENT_SUFFIX}",
            if config.lifecycle == SentryLifecycle::Trace { ", a transaction per request" } else { "" },
            if config.enable_logs { ", log records at info and above" } else { "" },
            framex_actors::Escaped(&config.env)
        );
        Some(Arc::new(Reporter {
            client,
            ignore_errors: config.ignore_errors.clone(),
            transactions: config.lifecycle == SentryLifecycle::Trace,
        }))
    }

    /// Reports what a request's answer says: its failure when it is a 5xx of ours
    /// (not a kind `ignore_errors` lists, not a probe's path), and its transaction when
    /// `lifecycle = "trace"`.
    pub fn request(&self, facts: &RequestFacts<'_>, failure: Option<&Failure>, started: SystemTime) {
        if QUIET_PATHS.iter().any(|quiet| facts.path.contains(quiet)) {
            return;
        }
        if let Some(failure) = failure.filter(|f| !self.ignore_errors.iter().any(|i| i == f.kind)) {
            self.client.capture_event(error_event(facts, failure), None);
        }
        if self.transactions {
            self.client.send_envelope(self.transaction(facts, started).into());
        }
    }

    /// Sends what is queued (waiting at most two seconds) and stops the client.
    pub fn close(&self) {
        self.client.close(Some(CLOSE_TIMEOUT));
    }

    fn transaction(&self, facts: &RequestFacts<'_>, started: SystemTime) -> Transaction<'static> {
        let options = self.client.options();
        let status = if facts.status >= 500 {
            protocol::SpanStatus::InternalError
        } else {
            protocol::SpanStatus::Ok
        };
        Transaction {
            name: Some(facts.route.to_owned()),
            release: options.release.clone(),
            environment: options.environment.clone(),
            tags: tags(facts),
            contexts: trace_context(facts, Some(status)),
            request: Some(request(facts)),
            start_timestamp: started,
            timestamp: Some(SystemTime::now()),
            ..Default::default()
        }
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

    /// Off unless enable, dsn and env are all set; no event leaves for a probe path.
    #[test]
    fn off_without_dsn_and_env() {
        let mut config = SentryConfig { enable: true, ..Default::default() };
        assert!(Reporter::start(&config, "1.0", Vec::new()).is_none());
        config.dsn = "http://k@127.0.0.1:9/1".into();
        assert!(Reporter::start(&config, "1.0", Vec::new()).is_none());
        config.env = "test".into();
        let reporter = Reporter::start(&config, "1.0", Vec::new()).unwrap();
        assert_eq!(reporter.client.options().environment.as_deref(), Some("test_noray"));
        assert_eq!(reporter.client.options().release.as_deref(), Some("v1.0"));
        reporter.close();
    }
}
