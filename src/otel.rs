//! OpenTelemetry export, opt-in with the standard environment variables: when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, spans
//! go to that collector over OTLP/HTTP (protobuf) through the `opentelemetry-otlp`
//! crate. `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the service (default
//! `framex-rs`), `OTEL_TRACES_SAMPLER` / `_ARG` pick the sampler,
//! `OTEL_EXPORTER_OTLP_HEADERS` / `_TIMEOUT` tune the export, `OTEL_SDK_DISABLED=true`
//! or `OTEL_TRACES_EXPORTER=none` turn it off.
//!
//! The engine builds spans with the ids it sends as `traceparent` (server span per
//! request, client span per upstream attempt, internal span per `CallRemote`) and hands
//! them to the sink installed here, which gives them to the SDK's batch processor: a
//! bounded queue drained by its own thread, so a slow or absent collector costs
//! requests nothing (spans beyond the queue are dropped).

use opentelemetry::trace::{
    SpanBuilder, SpanContext, SpanId, SpanKind as OtelKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Span as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use std::cell::Cell;

use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use framex_actors::trace::{install_sink, AttrValue, FinishedSpan, SpanKind};

/// The export pipeline while it runs; [`Telemetry::shutdown`] flushes what is queued.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Sends what is queued and stops the export thread.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            log::warn!("OpenTelemetry export did not shut down cleanly: {e}");
        }
    }
}

thread_local! {
    /// The ids of the span being handed to the SDK on this thread (see [`export`]).
    static WIRE_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// The SDK's id generator: the ids the engine put on the wire for the span being
/// exported, or random ones for a span the SDK would start on its own.
#[derive(Debug, Default)]
struct WireIds(RandomIdGenerator);

impl IdGenerator for WireIds {
    fn new_trace_id(&self) -> TraceId {
        WIRE_IDS.with(Cell::get).map_or_else(|| self.0.new_trace_id(), |(trace, _)| trace)
    }

    fn new_span_id(&self) -> SpanId {
        WIRE_IDS.with(Cell::get).map_or_else(|| self.0.new_span_id(), |(_, span)| span)
    }
}

/// Whether the environment asks for OTLP export.
fn wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let off = |name: &str, value: &str| var(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !off("OTEL_SDK_DISABLED", "true")
        && !off("OTEL_TRACES_EXPORTER", "none")
}

/// Starts OTLP export when the environment asks for it (see the module doc); `None`
/// when it does not, or when the exporter cannot be built (logged).
pub fn init_from_env() -> Option<Telemetry> {
    if !wanted(|name| std::env::var(name).ok()) {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            log::error!("OpenTelemetry export not started: {e}");
            return None;
        }
    };
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut resource = Resource::builder();
    if !named {
        resource = resource.with_service_name("framex-rs");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(WireIds::default())
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("framex-rs");
    if !install_sink(Box::new(move |span| export(&tracer, span))) {
        log::warn!("OpenTelemetry export already set up in this process");
    }
    log::info!("OpenTelemetry: exporting spans over OTLP/HTTP");
    Some(Telemetry { provider })
}

/// Hands one finished span to the SDK with the ids the engine used on the wire.
fn export(tracer: &SdkTracer, span: &FinishedSpan<'_>) {
    let ctx = span.context;
    let trace_id = TraceId::from_bytes(ctx.trace_id.to_be_bytes());
    let parent = match ctx.parent_id {
        Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
            trace_id,
            SpanId::from_bytes(parent.to_be_bytes()),
            TraceFlags::new(ctx.flags),
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let attributes = span
        .attributes
        .iter()
        .map(|(key, value)| {
            let value = match *value {
                AttrValue::Str(s) => Value::from(s.to_owned()),
                AttrValue::Int(n) => Value::I64(n),
            };
            KeyValue::new(*key, value)
        })
        .collect::<Vec<_>>();
    let builder = SpanBuilder::from_name(span.name.to_owned())
        .with_kind(match span.kind {
            SpanKind::Server => OtelKind::Server,
            SpanKind::Client => OtelKind::Client,
            SpanKind::Internal => OtelKind::Internal,
        })
        .with_start_time(span.start)
        .with_attributes(attributes);
    // The SDK takes the new span's ids from its id generator: [`WireIds`] hands it the
    // ones the engine already sent, set here for this one call on this thread.
    WIRE_IDS.with(|ids| ids.set(Some((trace_id, SpanId::from_bytes(ctx.span_id.to_be_bytes())))));
    let mut started = tracer.build_with_context(builder, &parent);
    WIRE_IDS.with(|ids| ids.set(None));
    if let Some(error) = span.error {
        started.set_status(Status::error(error.to_owned()));
    }
    started.end_with_timestamp(span.end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_is_opt_in() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        assert!(!wanted(env(&[])));
        assert!(wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])));
        assert!(wanted(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_SDK_DISABLED", "true")])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_TRACES_EXPORTER", "none")])));
    }
}
