//! One attempt's client span (built only while spans are exported); the
//! `traceparent`/`tracestate` it carries are written with its request (`h1::Outbound`).

use http::Method;

use crate::trace::{record, recording, AttrValue, FinishedSpan, SpanKind, TraceContext};

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
