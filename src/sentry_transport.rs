//! How events and logs reach Sentry: the Sentry SDK's own ureq transport (its thread,
//! its rate limits), over an agent that reuses a connection only while it has been idle
//! for less than [`IDLE_REUSE`].
//!
//! The SDK sends an envelope once and drops it if the send fails. A connection idle
//! for as long as the ingest's keep-alive (5 s for uvicorn and actix-web; the log
//! batch goes every 5 s) may be closed by the ingest just as the next envelope is
//! written on it, and that envelope is lost. Below the shortest keep-alive in common
//! use, a connection is reused while the ingest still keeps it, and a fresh one is
//! opened otherwise (one handshake at most per log batch).
//!
//! A status is an answer, not a failed send: so the SDK sees a `429`'s rate limits
//! and sends nothing the ingest said it would refuse until they pass (with ureq's
//! default, every status but 2xx was an error, and the limits were never read).

use std::sync::Arc;
use std::time::Duration;

use sentry::transports::UreqHttpTransport;
use sentry::types::Scheme;
use sentry::{ClientOptions, Transport};
use ureq::tls::{TlsConfig, TlsProvider};

/// The longest idle time after which a connection to the ingest is still reused.
pub const IDLE_REUSE: Duration = Duration::from_secs(2);

/// The transport for `options` (the factory `ClientOptions::transport` takes).
pub fn transport(options: &ClientOptions) -> Arc<dyn Transport> {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .disable_verification(options.accept_invalid_certs)
        .build();
    let agent = ureq::Agent::config_builder()
        // A 429 (or any status) is an answer, not an error: the SDK then reads its
        // `Retry-After` or `X-Sentry-Rate-Limits` and holds back what the ingest refuses.
        .http_status_as_error(false)
        .tls_config(tls)
        .proxy(proxy(options))
        .max_idle_age(IDLE_REUSE)
        .build()
        .new_agent();
    Arc::new(UreqHttpTransport::with_agent(options, agent))
}

/// The proxy the SDK would take: `https_proxy` for an `https` DSN, else `http_proxy`
/// (both from the environment by default); none when it does not parse.
fn proxy(options: &ClientOptions) -> Option<ureq::Proxy> {
    let https = options.dsn.as_ref().is_some_and(|dsn| dsn.scheme() == Scheme::Https);
    let chosen = match (&options.https_proxy, &options.http_proxy) {
        (Some(proxy), _) if https => Some(proxy),
        (_, Some(proxy)) => Some(proxy),
        _ => None,
    };
    let parsed = ureq::Proxy::new(chosen?);
    if parsed.is_err() {
        log::warn!("sentry: the proxy given for it does not parse; sending directly");
    }
    parsed.ok()
}
