//! The engine's metrics: per upstream URL, per pool and per `CallRemote`, registered
//! in one process-wide [`prometheus::Registry`] ([`registry`]); the HTTP surface adds
//! its own series there and renders the text exposition (the engine never does).
//!
//! Hot-path cost: the label handles of an endpoint are resolved once, when its pool
//! is created ([`EndpointMetrics`]); an attempt then adds to its request count and
//! observes its latency in the pool replica's own buffers ([`EndpointBuffers`], see
//! [`metric_buffers`](crate::metric_buffers)), with no lookup, no allocation and no
//! atomic the other workers write.

use std::sync::LazyLock;

use crate::metric_buffers::CountAndTime;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Latency buckets (seconds) shared by every duration histogram: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide registry every framex-rs series lives in.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);
    &REGISTRY
}

/// Registers `metric` in [`registry`]; a name registered twice is a programming error
/// caught by the tests, so it is logged rather than panicking.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    if let Err(e) = registry().register(Box::new(metric.clone())) {
        log::error!("metric not registered: {e}");
    }
    metric
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

/// A latency histogram over [`LATENCY_BUCKETS`], registered.
pub fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    register(HistogramVec::new(opts, labels).expect("valid metric"))
}

/// How an attempt at an upstream URL failed (label `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection (refused, DNS, TLS).
    Connect,
    /// No answer within the deadline, or a streamed body idle too long.
    Timeout,
    /// The connection closed or broke before the answer.
    Reset,
    /// A 5xx answer.
    Status5xx,
    /// The answer's body broke off, or the reply was not HTTP we asked for.
    BrokenBody,
}

impl FailureKind {
    const ALL: [FailureKind; 5] = [
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::Reset,
        FailureKind::Status5xx,
        FailureKind::BrokenBody,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Reset => "reset",
            FailureKind::Status5xx => "5xx",
            FailureKind::BrokenBody => "broken_body",
        }
    }
}

struct UpstreamFamilies {
    requests: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    retries: IntCounterVec,
    ejections: IntCounterVec,
    open_streams: IntGaugeVec,
    budget_exhausted: IntCounterVec,
    retries_not_sent: IntCounterVec,
    saturated: IntCounterVec,
}

static UPSTREAM: LazyLock<UpstreamFamilies> = LazyLock::new(|| UpstreamFamilies {
    requests: counter_vec("framex_upstream_requests_total", "Attempts sent to the upstream URL.", &["url"]),
    failures: counter_vec(
        "framex_upstream_failures_total",
        "Attempts that failed at the upstream URL, by kind (connect, timeout, reset, 5xx, broken_body).",
        &["url", "kind"],
    ),
    duration: histogram_vec(
        "framex_upstream_request_duration_seconds",
        "Time from sending an attempt to the upstream URL to its response head.",
        &["url"],
    ),
    retries: counter_vec(
        "framex_upstream_retries_total",
        "Attempts at the upstream URL that failed and were tried again (same URL on a fresh connection, or another URL).",
        &["url"],
    ),
    ejections: counter_vec(
        "framex_upstream_ejections_total",
        "Times the upstream URL was taken out of rotation after a failure.",
        &["url"],
    ),
    open_streams: gauge_vec(
        "framex_upstream_open_streams",
        "Response bodies streaming from the upstream URL now.",
        &["url"],
    ),
    budget_exhausted: counter_vec(
        "framex_pool_retry_budget_exhausted_total",
        "Retries a pool refused because its retry budget was spent.",
        &["pool"],
    ),
    retries_not_sent: counter_vec(
        "framex_pool_retries_not_sent_total",
        "Requests that never reached a URL (refused, reset unsent, TLS) and went to another healthy one, outside the retry budget.",
        &["pool"],
    ),
    saturated: counter_vec(
        "framex_pool_saturated_total",
        "Requests a pool answered with 503 because every URL was ejected or at max_in_flight.",
        &["pool"],
    ),
});

/// The series of one upstream URL, resolved once.
#[derive(Debug, Clone)]
pub struct EndpointMetrics {
    pub(crate) requests: IntCounter,
    failures: [IntCounter; 5],
    pub(crate) duration: Histogram,
    pub(crate) retries: IntCounter,
    pub(crate) ejections: IntCounter,
    pub(crate) open_streams: IntGauge,
}

impl EndpointMetrics {
    /// The series of `url`.
    pub fn of(url: &str) -> Self {
        let families = &*UPSTREAM;
        EndpointMetrics {
            requests: families.requests.with_label_values(&[url]),
            failures: FailureKind::ALL.map(|kind| families.failures.with_label_values(&[url, kind.as_str()])),
            duration: families.duration.with_label_values(&[url]),
            retries: families.retries.with_label_values(&[url]),
            ejections: families.ejections.with_label_values(&[url]),
            open_streams: families.open_streams.with_label_values(&[url]),
        }
    }

    /// Counts a failure of kind `kind`.
    pub(crate) fn failed(&self, kind: FailureKind) {
        self.failures[kind as usize].inc();
    }
}

/// A pool replica's own share of its endpoints' request and latency series (see
/// [`metric_buffers`](crate::metric_buffers)): updated with plain adds on the replica's
/// arbiter, published when `/metrics` is scraped and when the replica goes.
pub(crate) struct EndpointBuffers(Vec<CountAndTime>);

impl EndpointBuffers {
    /// Buffers for the series of `endpoints` (in the pool's order), kept with this
    /// thread's others.
    pub(crate) fn new(endpoints: &[EndpointMetrics]) -> std::rc::Rc<Self> {
        let buffers = std::rc::Rc::new(EndpointBuffers(endpoints.iter().map(|m| CountAndTime::of(&m.requests, &m.duration)).collect()));
        if crate::metric_buffers::buffering() {
            let weak: std::rc::Weak<dyn crate::metric_buffers::Buffered> = std::rc::Rc::downgrade(&buffers) as _;
            crate::metric_buffers::keep(weak);
        }
        buffers
    }

    /// Counts a request to endpoint `index`.
    pub(crate) fn request(&self, index: usize) {
        self.0[index].count();
    }

    /// Notes how long endpoint `index` took to answer.
    pub(crate) fn answered_in(&self, index: usize, seconds: f64) {
        self.0[index].time(seconds);
    }
}

impl crate::metric_buffers::Buffered for EndpointBuffers {
    fn flush(&self) {
        self.0.iter().for_each(CountAndTime::flush);
    }
}

/// The series of one pool, resolved once.
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    pub(crate) budget_exhausted: IntCounter,
    pub(crate) retries_not_sent: IntCounter,
    pub(crate) saturated: IntCounter,
}

impl PoolMetrics {
    /// The series of the pool named `name`.
    pub fn of(name: &str) -> Self {
        PoolMetrics {
            budget_exhausted: UPSTREAM.budget_exhausted.with_label_values(&[name]),
            retries_not_sent: UPSTREAM.retries_not_sent.with_label_values(&[name]),
            saturated: UPSTREAM.saturated.with_label_values(&[name]),
        }
    }
}

/// `CallRemote` series, by the kind of target (`local`, `upstream`, `none`).
pub(crate) struct CallRemoteMetrics {
    pub(crate) calls: [IntCounter; 3],
    pub(crate) duration: [Histogram; 3],
}

pub(crate) static CALL_REMOTE: LazyLock<CallRemoteMetrics> = LazyLock::new(|| {
    let calls = counter_vec(
        "framex_call_remote_total",
        "CallRemote calls, by kind of target (local, upstream, none).",
        &["target"],
    );
    let duration = histogram_vec(
        "framex_call_remote_duration_seconds",
        "Time a CallRemote took until its reply (value or stream head), by kind of target.",
        &["target"],
    );
    let kinds = ["local", "upstream", "none"];
    CallRemoteMetrics {
        calls: kinds.map(|k| calls.with_label_values(&[k])),
        duration: kinds.map(|k| duration.with_label_values(&[k])),
    }
});

/// Makes sure every engine series is registered (so that `/metrics` lists them
/// before the first request).
pub fn init() {
    LazyLock::force(&UPSTREAM);
    LazyLock::force(&CALL_REMOTE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_handles_share_one_series_per_url() {
        let a = EndpointMetrics::of("http://metrics-test:1");
        let b = EndpointMetrics::of("http://metrics-test:1");
        a.failed(FailureKind::Timeout);
        b.failed(FailureKind::Timeout);
        let value = UPSTREAM
            .failures
            .with_label_values(&["http://metrics-test:1", "timeout"])
            .get();
        assert_eq!(value, 2);
    }
}
