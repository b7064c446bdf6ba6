//! One attempt's place in the trace: the `traceparent`/`tracestate` it carries and its
//! client span (built only while spans are exported).

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;

use crate::trace::{record, recording, AttrValue, FinishedSpan, SpanKind, TraceContext, TRACEPARENT, TRACESTATE};

/// The trace headers' names, made once at compile time (`from_static` at run time
/// checks the name each call).
const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);

/// Trace context for one attempt: the caller's trace, the attempt as the parent (a
/// header the client sent is replaced; a `tracestate` goes only with a trace we
/// continue).
pub(super) fn set_trace_headers(out: &mut HeaderMap, attempt: &TraceContext) {
    out.remove(TRACEPARENT);
    out.remove(TRACESTATE);
    add_trace_headers(out, attempt);
}

/// As [`set_trace_headers`], into headers that hold no trace context yet.
pub(super) fn add_trace_headers(out: &mut HeaderMap, attempt: &TraceContext) {
    if let Ok(parent) = HeaderValue::from_bytes(&attempt.traceparent()) {
        out.append(TRACEPARENT_NAME, parent);
    }
    if let Some(state) = attempt.state.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        out.append(TRACESTATE_NAME, state);
    }
}

/// Whether `name` is one of the trace context's headers, which each attempt sets anew.
pub(super) fn is_trace_header(name: &HeaderName) -> bool {
    matches!(name.as_str(), TRACEPARENT | TRACESTATE)
}

/// The client span of one attempt, when spans are being recorded (else nothing is
/// built: no clock read, no allocation).
pub(super) struct AttemptSpan<'a> {
    started: Option<std::time::SystemTime>,
    context: &'a TraceContext,
    number: u32,
}

impl<'a> AttemptSpan<'a> {
    pub(super) fn start(context: &'a TraceContext, number: u32) -> Self {
        AttemptSpan {
            started: recording(context).then(std::time::SystemTime::now),
            context,
            number,
        }
    }

    /// Ends the span with the answer's status, or how the attempt failed.
    pub(super) fn end(&self, method: &Method, endpoint: &str, status: Option<u16>, error: Option<&str>) {
        let Some(start) = self.started else { return };
        let mut attributes = vec![
            ("http.request.method", AttrValue::Str(method.as_str())),
            ("url.full", AttrValue::Str(endpoint)),
            ("http.request.resend_count", AttrValue::Int(i64::from(self.number) - 1)),
        ];
        if let Some(status) = status {
            attributes.push(("http.response.status_code", AttrValue::Int(i64::from(status))));
        }
        if let Some(error) = error {
            attributes.push(("error.type", AttrValue::Str(error)));
        }
        record(&FinishedSpan {
            name: method.as_str(),
            kind: SpanKind::Client,
            context: self.context,
            start,
            end: std::time::SystemTime::now(),
            attributes: &attributes,
            error: error.or(status.filter(|s| *s >= 500).map(|_| "5xx")),
        });
    }
}
