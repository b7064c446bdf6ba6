//! `[sentry] enable_logs`: log records go to Sentry as Sentry logs too, as FrameX-kit
//! sends its log lines (its Sentry SDK's default: `info` and above).
//!
//! [`Forward`] wraps the process's logger (the binary installs it): every record that
//! logger writes, at `info` or above, is also handed to the Sentry client that the
//! server registered with [`register`] — none before, none when `enable_logs` is off
//! (one atomic load per record). The client batches them and sends them from its own
//! thread. Records of the crates that carry them there (`ureq`, `rustls`, `sentry`)
//! are not sent, so sending cannot feed itself, nor is the access log (`framex::access`:
//! client addresses and paths, one line a request). Every secret value of every config
//! the process has run with (a reload adds its own, [`add_secrets`]) is replaced by
//! `[redacted]` before a record leaves (framex-rs logs none, by rule; this holds even
//! if one slipped into a message).

use std::sync::{Arc, LazyLock, OnceLock};

use arc_swap::ArcSwap;
use std::time::SystemTime;

use sentry::protocol::{Log, LogAttribute, LogLevel, Map};

use crate::config::secrets::scrub;

/// Targets never sent: the transport's own crates.
const OWN_TARGETS: [&str; 3] = ["ureq", "rustls", "sentry"];

/// The access log's target, never sent.
const ACCESS_LOG: &str = "framex::access";

/// Where records go, once a server with `enable_logs` has started.
struct Sink {
    client: Arc<sentry::Client>,
}

/// The secret values scrubbed from what goes to Sentry (logs and error events).
static SECRETS: LazyLock<ArcSwap<Vec<String>>> = LazyLock::new(|| ArcSwap::from_pointee(Vec::new()));

/// Adds `more` to the secret values scrubbed from what goes to Sentry (at start and
/// on every reload, before the new config's first log line; earlier ones are kept).
pub fn add_secrets(more: Vec<String>) {
    SECRETS.rcu(|known| {
        let mut all = known.as_ref().clone();
        all.extend(more.iter().cloned());
        crate::config::secrets::longest_first(&mut all);
        all
    });
}

/// The secret values scrubbed from what goes to Sentry.
pub fn secrets() -> Arc<Vec<String>> {
    SECRETS.load_full()
}

/// The one sink of the process (the first server with `enable_logs` sets it; it
/// stays across reloads, as the Sentry client does).
static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends records to `client` from now on (the config's secrets are added by the
/// reporter, whether logs are sent or not). A second call (another server in the
/// same process) changes nothing.
pub fn register(client: Arc<sentry::Client>) {
    let _ = SINK.set(Sink { client });
}

/// A logger that writes through `inner` and sends what it writes to Sentry.
pub struct Forward<L> {
    inner: L,
}

impl<L: log::Log> Forward<L> {
    /// `inner`, forwarding to Sentry once [`register`]ed.
    pub fn new(inner: L) -> Self {
        Forward { inner }
    }
}

impl<L: log::Log> log::Log for Forward<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        self.inner.log(record);
        if let Some(sink) = SINK.get() {
            let sent = record.level() <= log::Level::Info && record.target() != ACCESS_LOG && !is_own(record.target());
            if sent && self.inner.enabled(record.metadata()) {
                sink.client.capture_log(to_log(record, &SECRETS.load()), &sentry::Scope::default());
            }
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Whether `target` is one of the transport's crates.
fn is_own(target: &str) -> bool {
    OWN_TARGETS
        .iter()
        .any(|own| target == *own || target.strip_prefix(own).is_some_and(|rest| rest.starts_with("::") || rest.starts_with('_')))
}

/// The Sentry log of `record`: its level, its message (secrets scrubbed) and its
/// target as the `logger.name` attribute.
fn to_log(record: &log::Record<'_>, secrets: &[String]) -> Log {
    let level = match record.level() {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    };
    let mut attributes = Map::new();
    attributes.insert("logger.name".to_owned(), LogAttribute::from(record.target().to_owned()));
    attributes.insert("sentry.origin".to_owned(), LogAttribute::from("auto.log.framex".to_owned()));
    Log {
        level,
        body: scrub(&record.args().to_string(), secrets),
        trace_id: None,
        timestamp: SystemTime::now(),
        severity_number: None,
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets of every config run with are scrubbed: a reload adds its own, and
    /// keeps the earlier ones.
    #[test]
    fn a_reload_adds_its_secrets() {
        add_secrets(vec!["first-secret-x1".to_owned()]);
        add_secrets(vec!["second-secret-x2".to_owned(), "first-secret-x1".to_owned()]);
        let known = secrets();
        assert!(known.contains(&"first-secret-x1".to_owned()) && known.contains(&"second-secret-x2".to_owned()));
        assert_eq!(known.iter().filter(|s| *s == "first-secret-x1").count(), 1);
        // A later secret that contains an earlier one is still hidden whole.
        add_secrets(vec!["first-secret-x1-and-more".to_owned()]);
        let scrubbed = crate::config::secrets::scrub("k=first-secret-x1-and-more", &secrets());
        assert_eq!(scrubbed, "k=[redacted]");
    }

    /// The transport's crates are left out, and only they.
    #[test]
    fn own_targets() {
        for own in ["ureq", "ureq::unit", "rustls::client", "sentry", "sentry_core::client"] {
            assert!(is_own(own), "{own}");
        }
        for other in ["framex", "framex::access", "ureqx", "actix_server::worker"] {
            assert!(!is_own(other), "{other}");
        }
    }

    /// A record becomes a log with its level and target, its secrets scrubbed.
    #[test]
    fn records_become_scrubbed_logs() {
        let secrets = vec!["k-secret-1".to_owned()];
        let log = to_log(
            &log::Record::builder()
                .level(log::Level::Warn)
                .target("framex::auth")
                .args(format_args!("refused key k-secret-1 from {}", "127.0.0.1"))
                .build(),
            &secrets,
        );
        assert_eq!(log.level, LogLevel::Warn);
        assert_eq!(log.body, "refused key [redacted] from 127.0.0.1");
        assert!(format!("{:?}", log.attributes).contains("framex::auth"));
    }
}
