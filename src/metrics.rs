//! The HTTP surface's metrics and the `/metrics` exposition: requests per route
//! template, their latency by target, open SSE streams and bytes streamed, beside the
//! engine's series ([`framex_actors::metrics`]) and the process's (CPU, memory, open
//! files), all in one registry rendered by the `prometheus` crate.
//!
//! Cost on a request: one lookup of the route in the worker thread's own map of its
//! handles, then a counter add and a histogram observation in that thread's buffers
//! ([`framex_actors::metric_buffers`]: plain adds, published when `/metrics` is
//! scraped).

use std::sync::LazyLock;

use actix_web::http::Method;
use framex_actors::metrics::{histogram_vec, register, registry};
use framex_actors::metric_buffers::CountAndTime;
use prometheus::{Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, TextEncoder};

use crate::proxy::ProxyReport;

/// The `route` label of requests no route matched (and of requests refused before
/// matching): one value, so that unknown paths cannot grow the series.
pub const UNMATCHED: &str = "unmatched";

struct HttpFamilies {
    requests: IntCounterVec,
    duration: HistogramVec,
    sse_open: IntGauge,
    streamed: IntCounter,
    build: IntGaugeVec,
    in_flight: IntGaugeVec,
    healthy: IntGaugeVec,
    operations: IntGaugeVec,
    migration: IntCounterVec,
    cache: IntCounterVec,
    cache_failures: IntCounterVec,
}

static HTTP: LazyLock<HttpFamilies> = LazyLock::new(|| {
    #[cfg(target_os = "linux")]
    if let Err(e) = registry().register(Box::new(prometheus::process_collector::ProcessCollector::for_self())) {
        log::error!("process metrics not registered: {e}");
    }
    framex_actors::metrics::init();
    let gauges = |name: &str, help: &str, labels: &[&str]| {
        register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    };
    HttpFamilies {
        requests: register(
            IntCounterVec::new(
                Opts::new("framex_http_requests_total", "Requests answered, by method, route template and status."),
                &["method", "route", "status"],
            )
            .expect("valid metric"),
        ),
        duration: histogram_vec(
            "framex_http_request_duration_seconds",
            "Time to the response head, by method, route template and who answered (local, upstream, builtin, none).",
            &["method", "route", "target"],
        ),
        sse_open: register(
            IntGauge::new("framex_sse_streams_open", "Server-sent event streams open to clients now.").expect("valid metric"),
        ),
        streamed: register(
            IntCounter::new("framex_streamed_bytes_total", "Bytes of streamed response bodies sent to clients.")
                .expect("valid metric"),
        ),
        build: gauges("framex_build_info", "The running framex-rs.", &["version"]),
        in_flight: gauges("framex_upstream_in_flight", "Requests the upstream URL is serving now.", &["url"]),
        healthy: gauges(
            "framex_upstream_healthy",
            "1 while the upstream URL gets traffic, 0 while it is ejected.",
            &["url"],
        ),
        operations: gauges(
            "framex_upstream_operations",
            "Operations the upstream URL published at its last discovery.",
            &["url"],
        ),
        migration: register(
            IntCounterVec::new(
                Opts::new(
                    "framex_migration_calls_total",
                    "Calls of migrating routes compared or judged, by route template, mode and outcome \
                     (match, mismatch, local_error, upstream_error, not_compared, local_only, skipped_unsafe).",
                ),
                &["route", "mode", "outcome"],
            )
            .expect("valid metric"),
        ),
        cache: register(
            IntCounterVec::new(
                Opts::new(
                    "framex_cache_requests_total",
                    "Requests of caching routes, by what the request cache did (hit, miss, refresh, bypass, disabled).",
                ),
                &["status"],
            )
            .expect("valid metric"),
        ),
        cache_failures: register(
            IntCounterVec::new(
                Opts::new(
                    "framex_cache_failures_total",
                    "Request cache store reads and writes that failed (the request was served uncached), by op.",
                ),
                &["op"],
            )
            .expect("valid metric"),
        ),
    }
});

/// Counts one request the request cache looked at, by status (`hit`, `miss`,
/// `refresh`, `bypass`, `disabled`).
pub fn cache_request(status: &'static str) {
    HTTP.cache.with_label_values(&[status]).inc();
}

/// Counts one failed store read or write (`read`, `write`): the request was served
/// uncached.
pub fn cache_failure(op: &'static str) {
    HTTP.cache_failures.with_label_values(&[op]).inc();
}

/// Counts one call of a migrating route (`[plugins.proxy.migrate]`: a configured
/// template, so the series stay bounded).
pub fn migration_call(route: &str, mode: &str, outcome: &str) {
    HTTP.migration.with_label_values(&[route, mode, outcome]).inc();
}

/// Requests `[limits]` decided, by rule pattern and outcome (allowed, limited,
/// backend_error_allowed, backend_error_denied): bounded labels.
static LIMITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "framex_limit_decisions_total",
                "Requests [limits] decided, by rule pattern and outcome (allowed, limited, backend_error_allowed, backend_error_denied).",
            ),
            &["rule", "outcome"],
        )
        .expect("valid metric"),
    )
});

/// Counts one `[limits]` decision (the rule's pattern: a configured value, so the
/// series stay bounded).
pub fn limit_decision(rule: &str, outcome: &str) {
    LIMITS.with_label_values(&[rule, outcome]).inc();
}

/// Registers every series, so that `/metrics` lists them from the start.
pub fn init() {
    LazyLock::force(&HTTP);
}

/// Where a request went, for the `target` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A built-in endpoint (`/health`, `/metrics`…).
    Builtin,
    /// A local plugin.
    Local,
    /// An upstream (proxied route or proxy function).
    Upstream,
    /// Nowhere: refused or unmatched.
    None,
}

impl Target {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Builtin => "builtin",
            Target::Local => "local",
            Target::Upstream => "upstream",
            Target::None => "none",
        }
    }
}

/// The `method` label: the standard methods by name, anything else as `OTHER` (a
/// client's method token must not grow the series).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|m| *m == method.as_str()).unwrap_or("OTHER")
}

/// Records one answered request.
///
/// The series' handles are kept per worker thread, by route and then by method,
/// status and target: finding a series in its family hashes its three label values
/// and takes the family's lock, twice a request (460 instructions); a thread's own
/// map hashes the route alone (foldhash: SipHash took as long as the family). Both
/// sets are bounded alike (route templates, not paths; three-digit statuses). A route
/// keeps at most [`CACHED_PER_ROUTE`] label sets, scanned in turn; its others are
/// found in their families each time (an upstream may answer any status a client
/// asks for, and a list of them all would be scanned on every request).
///
/// The handles a thread keeps are its own buffers of the series (see
/// [`framex_actors::metric_buffers`]), published when `/metrics` is scraped.
pub fn observe(method: &Method, route: &str, status: u16, target: Target, seconds: f64) {
    let method = method_label(method);
    SERIES.with_borrow_mut(|series| {
        if !series.record(method, route, status, target, seconds) {
            let (requests, duration) = handles(method, route, status, target);
            requests.inc();
            duration.observe(seconds);
        }
    });
}

/// Most label sets (method, status, target) a thread keeps handles on for one route.
const CACHED_PER_ROUTE: usize = 32;

/// One thread's buffers of the request series it has recorded (see [`observe`]).
struct ThreadSeries {
    /// By route label, then by (method label, status, target).
    by_route: std::collections::HashMap<Box<str>, Vec<SeriesEntry>, foldhash::fast::RandomState>,
}

impl Default for ThreadSeries {
    fn default() -> Self {
        if framex_actors::metric_buffers::buffering() {
            framex_actors::metric_buffers::on_flush(flush_thread);
        }
        ThreadSeries { by_route: Default::default() }
    }
}

/// Publishes this thread's buffers of the request series.
fn flush_thread() {
    // `try_with`: a thread ending has dropped (and so published) them already.
    let _ = SERIES.try_with(|series| {
        if let Ok(series) = series.try_borrow() {
            series.by_route.values().flatten().for_each(|entry| entry.buffer.flush());
        }
    });
}

/// This thread's buffer of one (method, route, status, target).
struct SeriesEntry {
    method: &'static str,
    status: u16,
    target: Target,
    buffer: CountAndTime,
}

impl ThreadSeries {
    /// Records a request of these labels that took `seconds` in their buffer, made on
    /// first use (one lookup of the route when it is known); `false`, with nothing
    /// recorded, when the route keeps [`CACHED_PER_ROUTE`] other sets already.
    fn record(&mut self, method: &'static str, route: &str, status: u16, target: Target, seconds: f64) -> bool {
        let entries = match self.by_route.get_mut(route) {
            Some(entries) => entries,
            None => self.by_route.entry(route.into()).or_default(),
        };
        let at = match entries.iter().position(|e| e.method == method && e.status == status && e.target == target) {
            Some(at) => at,
            None if entries.len() >= CACHED_PER_ROUTE => return false,
            None => {
                let (requests, duration) = handles(method, route, status, target);
                entries.push(SeriesEntry { method, status, target, buffer: CountAndTime::of(&requests, &duration) });
                entries.len() - 1
            }
        };
        entries[at].buffer.count();
        entries[at].buffer.time(seconds);
        true
    }
}

/// The handles of these labels, found (or made) in their families.
fn handles(method: &str, route: &str, status: u16, target: Target) -> (IntCounter, Histogram) {
    let http = &*HTTP;
    let buffer = itoa_status(status);
    let text = std::str::from_utf8(&buffer[..]).unwrap_or("000");
    (
        http.requests.with_label_values(&[method, route, text]),
        http.duration.with_label_values(&[method, route, target.as_str()]),
    )
}

thread_local! {
    static SERIES: std::cell::RefCell<ThreadSeries> = std::cell::RefCell::new(ThreadSeries::default());
}

/// A three-digit status as ASCII, without allocating.
fn itoa_status(status: u16) -> [u8; 3] {
    let status = status.min(999);
    [b'0' + (status / 100) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8]
}

/// Counts an SSE stream open until the returned guard is dropped.
pub fn sse_stream_open() -> SseOpen {
    let gauge = HTTP.sse_open.clone();
    gauge.inc();
    SseOpen(gauge)
}

/// An open SSE stream, counted until dropped.
pub struct SseOpen(IntGauge);

impl Drop for SseOpen {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts `bytes` of a streamed body sent to a client.
pub fn streamed(bytes: usize) {
    HTTP.streamed.inc_by(bytes as u64);
}

/// The text exposition of every series, with the proxy's per-URL gauges taken from
/// `report` now.
pub fn render(report: Option<&ProxyReport>) -> String {
    let http = &*HTTP;
    http.build.with_label_values(&[crate::VERSION]).set(1);
    http.in_flight.reset();
    http.healthy.reset();
    http.operations.reset();
    for upstream in report.map_or(&[][..], |r| &r.upstreams[..]) {
        let url = [upstream.endpoint.url.as_str()];
        http.in_flight.with_label_values(&url).set(upstream.endpoint.in_flight as i64);
        http.healthy.with_label_values(&url).set(i64::from(upstream.endpoint.healthy));
        http.operations.with_label_values(&url).set(upstream.operations as i64);
    }
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry().gather(), &mut out) {
        log::error!("metrics could not be rendered: {e}");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
        assert_eq!(&itoa_status(204), b"204");
        assert_eq!(&itoa_status(5), b"005");
    }

    /// A thread's cached handles count in the families' own series, each set of
    /// labels in its own (a route, method, status or target apart is another series).
    #[test]
    fn observations_land_in_their_own_series() {
        let route = "/test/observations/{id}";
        let count = |method: &str, status: &str| HTTP.requests.with_label_values(&[method, route, status]).get();
        let samples = |target: Target| HTTP.duration.with_label_values(&["GET", route, target.as_str()]).get_sample_count();
        observe(&Method::GET, route, 200, Target::Local, 0.01);
        observe(&Method::GET, route, 200, Target::Local, 0.02);
        observe(&Method::GET, route, 404, Target::Local, 0.01);
        observe(&Method::POST, route, 200, Target::Local, 0.01);
        observe(&Method::GET, route, 200, Target::Upstream, 0.01);
        std::thread::spawn(move || observe(&Method::GET, route, 200, Target::Local, 0.01)).join().unwrap();
        assert_eq!((count("GET", "200"), count("GET", "404"), count("POST", "200")), (4, 1, 1));
        assert_eq!((samples(Target::Local), samples(Target::Upstream)), (4, 1));
        let other = HTTP.requests.with_label_values(&["GET", "/test/observations/other", "200"]).get();
        assert_eq!(other, 0);
    }

    /// An upstream that answers whatever status a client asks for (`/status/{code}`)
    /// must not make every request on its route scan a list of all it answered: a
    /// thread keeps handles on a few label sets of a route, and counts the others in
    /// their own series all the same.
    #[test]
    fn a_route_answering_every_status_keeps_its_lookups_short() {
        let route = "/test/status/{code}";
        for status in 100..1000 {
            observe(&Method::GET, route, status, Target::Upstream, 0.01);
        }
        observe(&Method::GET, route, 999, Target::Upstream, 0.01);
        let cached = SERIES.with_borrow(|series| series.by_route.get(route).map_or(0, Vec::len));
        assert!(cached <= CACHED_PER_ROUTE, "{cached} label sets scanned on every request of the route");
        let count = |status: &str| HTTP.requests.with_label_values(&["GET", route, status]).get();
        assert_eq!((count("100"), count("500"), count("999")), (1, 1, 2));
        let samples = HTTP.duration.with_label_values(&["GET", route, "upstream"]).get_sample_count();
        assert_eq!(samples, 901);
    }
}
