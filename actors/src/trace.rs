//! W3C trace context (`traceparent`, `tracestate`): where a call stands in a trace.
//!
//! An incoming `traceparent` is a claim: only a well-formed one (version not `ff`,
//! lower-case hex ids that are not all zero, the length its version demands) is
//! continued; anything else starts a new trace, and its `tracestate` is dropped, as the
//! W3C recommendation says. Each hop gets a span id of its own, so the service we call
//! sees our trace id with our span as its parent.
//!
//! Ids come from a per-thread splitmix64 sequence seeded from the clock, the process id
//! and the thread (hand written, like [`crate::RequestId::new`]: a few nanoseconds, no
//! system call and no shared counter per request); they are unique and unpredictable
//! enough for tracing, not secrets.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header.
pub const TRACESTATE: &str = "tracestate";
/// Longest `tracestate` kept (the W3C limit for what a vendor must propagate).
const MAX_TRACESTATE: usize = 512;

/// One span's place in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace, shared by every span of one request across services.
    pub trace_id: u128,
    /// This span.
    pub span_id: u64,
    /// The span this one continues (the caller's), if any.
    pub parent_id: Option<u64>,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
    /// The caller's `tracestate`, passed on unchanged.
    pub state: Option<Arc<str>>,
}

impl TraceContext {
    /// A new trace, sampled, with a new root span.
    pub fn start() -> Self {
        TraceContext {
            trace_id: (u128::from(next_id()) << 64) | u128::from(next_id()),
            span_id: next_id(),
            parent_id: None,
            flags: 1,
            state: None,
        }
    }

    /// Continues the caller's trace when `traceparent` is well formed (with its
    /// `tracestate` when that is printable ASCII of at most 512 bytes); `None`
    /// otherwise.
    pub fn continue_from(traceparent: &[u8], tracestate: Option<&[u8]>) -> Option<Self> {
        let (trace_id, parent, flags) = parse(traceparent)?;
        let state = tracestate
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE && s.iter().all(|b| (0x20..=0x7e).contains(b)))
            .and_then(|s| std::str::from_utf8(s).ok())
            .map(Arc::from);
        Some(TraceContext {
            trace_id,
            span_id: next_id(),
            parent_id: Some(parent),
            flags,
            state,
        })
    }

    /// A span under this one: same trace, flags and state, a new span id.
    pub fn child(&self) -> Self {
        TraceContext {
            trace_id: self.trace_id,
            span_id: next_id(),
            parent_id: Some(self.span_id),
            flags: self.flags,
            state: self.state.clone(),
        }
    }

    /// The `traceparent` value naming this span as the parent of what it calls.
    pub fn traceparent(&self) -> [u8; 55] {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        out[3..19].copy_from_slice(&hex_digits((self.trace_id >> 64) as u64));
        out[19..35].copy_from_slice(&hex_digits(self.trace_id as u64));
        out[35] = b'-';
        out[36..52].copy_from_slice(&hex_digits(self.span_id));
        out[52] = b'-';
        out[53..55].copy_from_slice(&hex_digits(u64::from(self.flags))[14..]);
        out
    }

    /// Whether the caller asked for this trace to be recorded.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 hex digits (for logs).
    pub fn trace_id_hex(&self) -> impl fmt::Display {
        TraceId(self.trace_id)
    }
}

impl Default for TraceContext {
    fn default() -> Self {
        Self::start()
    }
}

/// What kind of span a [`FinishedSpan`] is (OpenTelemetry's span kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A request we served.
    Server,
    /// A request we sent (one upstream attempt).
    Client,
    /// Work inside the process (a `CallRemote`).
    Internal,
}

/// An attribute value of a [`FinishedSpan`].
#[derive(Debug, Clone, Copy)]
pub enum AttrValue<'a> {
    /// Text.
    Str(&'a str),
    /// A whole number.
    Int(i64),
}

/// A span that ended, handed to the installed sink (see [`install_sink`]).
#[derive(Debug)]
pub struct FinishedSpan<'a> {
    /// Its name (`GET /api/v1/items/{id}`, `CallRemote …`).
    pub name: &'a str,
    /// Its kind.
    pub kind: SpanKind,
    /// Its ids and parent.
    pub context: &'a TraceContext,
    /// When it started (wall clock).
    pub start: std::time::SystemTime,
    /// When it ended.
    pub end: std::time::SystemTime,
    /// Semantic-convention attributes.
    pub attributes: &'a [(&'static str, AttrValue<'a>)],
    /// What went wrong, if it failed.
    pub error: Option<&'a str>,
}

/// Receives finished spans (an exporter); must return quickly (queue, never block).
pub type SpanSink = dyn Fn(&FinishedSpan<'_>) + Send + Sync;

static SINK: std::sync::OnceLock<Box<SpanSink>> = std::sync::OnceLock::new();

/// Installs the process's span sink, once; `false` if one was installed already.
/// Until then spans are not built at all (one atomic load per span site).
pub fn install_sink(sink: Box<SpanSink>) -> bool {
    SINK.set(sink).is_ok()
}

/// Whether a sink is installed and `context` is sampled: whether to build spans.
pub fn recording(context: &TraceContext) -> bool {
    context.sampled() && SINK.get().is_some()
}

/// Hands `span` to the sink, if one is installed.
pub fn record(span: &FinishedSpan<'_>) {
    if let Some(sink) = SINK.get() {
        sink(span);
    }
}

struct TraceId(u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Parses a `traceparent`: (trace id, parent span id, flags).
fn parse(value: &[u8]) -> Option<(u128, u64, u8)> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = unhex(&value[0..2])? as u8;
    // Version ff is invalid; 00 has exactly four fields; a later version may add
    // fields after a dash.
    if version == 0xff || (version == 0 && value.len() != 55) || (value.len() > 55 && value[55] != b'-') {
        return None;
    }
    let trace_id = unhex(&value[3..35])?;
    let parent = unhex(&value[36..52])? as u64;
    let flags = unhex(&value[53..55])? as u8;
    (trace_id != 0 && parent != 0).then_some((trace_id, parent, flags))
}

/// Lower-case hex digits to a number (at most 32 of them).
fn unhex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u128::from(v))
    })
}

/// The 16 hex digits (lower case) of `x`, most significant first. Each nibble is
/// spread to a byte of its own and the bytes turned into digits all at once, in a few
/// word-wide steps: digit by digit, a request's ids (its request id, and the trace
/// and span ids of its `traceparent`) cost about 300 instructions.
pub(crate) fn hex_digits(x: u64) -> [u8; 16] {
    const LOW_NIBBLES: u128 = 0x000F_000F_000F_000F_000F_000F_000F_000F;
    const BYTES: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
    let x = u128::from(x);
    // Halves, quarters, bytes, nibbles: each step moves the upper part of every lane
    // to the lower part of the next lane up, so that nibble i ends in byte i.
    let mut v = (x & 0xFFFF_FFFF) | ((x & 0xFFFF_FFFF_0000_0000) << 32);
    v = (v & 0x0000_0000_0000_FFFF_0000_0000_0000_FFFF) | ((v & 0x0000_0000_FFFF_0000_0000_0000_FFFF_0000) << 16);
    v = (v & 0x0000_00FF_0000_00FF_0000_00FF_0000_00FF) | ((v & 0x0000_FF00_0000_FF00_0000_FF00_0000_FF00) << 8);
    v = (v & LOW_NIBBLES) | ((v & (LOW_NIBBLES << 4)) << 4);
    // A nibble n becomes '0' + n, and 39 more ('a' - '0' - 10) when n > 9, which is
    // when n + 6 carries into the byte's fifth bit.
    let letters = ((v + 6 * BYTES) >> 4) & BYTES;
    (v + b'0' as u128 * BYTES + 39 * letters).to_be_bytes()
}

/// A new non-zero id: splitmix64 over a per-thread sequence (no shared counter, so
/// worker threads never contend for a cache line), each thread starting at a point
/// drawn from the clock, the process id and the thread's number.
fn next_id() -> u64 {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(thread_seed());
    }
    let n = STATE.with(|state| {
        let n = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(n);
        n
    });
    let mut z = n;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1)
}

/// Where a thread's id sequence starts.
fn thread_seed() -> u64 {
    static THREADS: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let thread = THREADS.fetch_add(1, Ordering::Relaxed);
    let mut z = t ^ u64::from(std::process::id()).rotate_left(40) ^ thread.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    z ^ (z >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_digits_are_the_formatters(x in any::<u64>()) {
            prop_assert_eq!(hex_digits(x).to_vec(), format!("{x:016x}").into_bytes());
        }

        #[test]
        fn a_traceparent_written_reads_back(trace_id in any::<u128>(), span_id in any::<u64>(), flags in any::<u8>()) {
            let ctx = TraceContext { trace_id, span_id, parent_id: None, flags, state: None };
            let written = ctx.traceparent();
            prop_assert_eq!(written.to_vec(), format!("00-{trace_id:032x}-{span_id:016x}-{flags:02x}").into_bytes());
        }
    }

    #[test]
    fn hex_digits_of_the_edges() {
        for x in [0, 9, 10, 15, 16, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, u64::MAX] {
            assert_eq!(hex_digits(x).to_vec(), format!("{x:016x}").into_bytes());
        }
    }

    #[test]
    fn a_well_formed_traceparent_is_continued_with_a_new_span() {
        let given = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::continue_from(given, Some(b"congo=t61rcWkgMzE")).unwrap();
        assert_eq!(ctx.trace_id_hex().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_id, Some(0x00f0_67aa_0ba9_02b7));
        assert_eq!(ctx.state.as_deref(), Some("congo=t61rcWkgMzE"));
        let sent = ctx.child().traceparent();
        let sent = std::str::from_utf8(&sent).unwrap();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{sent}");
        assert!(!sent.contains("00f067aa0ba902b7"), "our own span is the parent: {sent}");
        assert!(sent.ends_with("-01"));
        assert_eq!(TraceContext::continue_from(sent.as_bytes(), None).unwrap().trace_id, ctx.trace_id);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"[..],
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736\n00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::continue_from(bad, None).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        let later = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(TraceContext::continue_from(later, None).is_some(), "a later version may add fields");
        let ctx = TraceContext::continue_from(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Some(b"a=\x01"));
        assert_eq!(ctx.unwrap().state, None, "an unprintable tracestate is dropped");
    }
}
