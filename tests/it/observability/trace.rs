//! W3C trace context through framex-rs: continued from the caller, a new parent id at
//! each hop, carried by `CallRemote` to local plugins and upstreams.

use framex::actors::{Ctx, Error};
use framex::plugin::PluginBuilder;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::python::legacy_app;
use crate::common::{config, get, get_with, start};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn proxy_config(upstream: &str, plugins: &str) -> framex::config::Config {
    config(&format!(
        r#"
load_builtin_plugins = ["proxy"{plugins}]
[server]
enable_proxy = true
# The test's client is the caller whose trace is continued (DESIGN §9: from a trusted
# proxy only).
trusted_proxies = ["127.0.0.1/32"]
[plugins.proxy]
proxy_urls = ["{upstream}"]
discovery_interval = 0
"#
    ))
}

/// The fields of a `traceparent`: version, trace id, parent id, flags.
fn fields(traceparent: &str) -> Vec<String> {
    traceparent.split('-').map(str::to_owned).collect()
}

/// A FastAPI service behind two framex-rs hops (client → A → B → FastAPI) sees the
/// client's trace id with a parent id that is neither the client's nor one it could
/// have made up, and the client's `tracestate`; without a `traceparent` the service
/// still gets a well-formed one (a trace started at the first hop), and a malformed
/// one is not passed on.
#[actix_rt::test]
async fn trace_context_survives_two_hops_with_a_new_parent() {
    let legacy = legacy_app().await;
    let inner = start(proxy_config(&legacy.url, ""), vec![]).await;
    let outer = start(proxy_config(&inner.url(""), ""), vec![]).await;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let r = get_with(
        &outer.url("/api/v1/headers"),
        &[("traceparent", &traceparent), ("tracestate", "congo=t61rcWkgMzE")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json()["headers"].clone();
    let got = fields(seen["traceparent"].as_str().expect("the service got a traceparent"));
    assert_eq!(got[0], "00");
    assert_eq!(got[1], TRACE_ID, "the trace id is the client's");
    assert_ne!(got[2], PARENT_ID, "the parent is our span, not the client's");
    assert_eq!(got[2].len(), 16);
    assert_eq!(got[3], "01");
    assert_eq!(seen["tracestate"], "congo=t61rcWkgMzE");

    let fresh = get(&outer.url("/api/v1/headers")).await.json()["headers"].clone();
    let started = fields(fresh["traceparent"].as_str().expect("a trace is started"));
    assert_eq!((started.len(), started[1].len()), (4, 32));
    assert_ne!(started[1], TRACE_ID);

    let forged = get_with(&outer.url("/api/v1/headers"), &[("traceparent", "00-zz-forged-01"), ("tracestate", "evil=1")]).await;
    let forged = forged.json()["headers"].clone();
    let replaced = fields(forged["traceparent"].as_str().unwrap());
    assert_eq!(replaced[1].len(), 32, "a malformed traceparent is replaced by a new trace: {replaced:?}");
    assert!(forged.get("tracestate").is_none(), "its tracestate is dropped: {forged}");
    outer.stop(true).await;
    inner.stop(true).await;
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// Calls the FastAPI `/api/v1/headers` through `CallRemote` and reports what it saw
/// and the plugin's own trace context.
async fn relay_headers(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    let upstream = cx.call_remote_api("/api/v1/headers", json!({})).await?;
    let trace = &cx.call_context().trace;
    Ok(json!({
        "upstream": upstream["headers"]["traceparent"],
        "plugin_trace": trace.trace_id_hex().to_string(),
        "plugin_span": format!("{:016x}", trace.span_id),
    }))
}

/// A local plugin called with a `traceparent` runs in the caller's trace, and the
/// FastAPI service it calls through `CallRemote` sees that trace id with a parent
/// that is neither the client's span nor the plugin's (the call's own span).
#[actix_rt::test]
async fn call_remote_carries_the_callers_trace() {
    let legacy = legacy_app().await;
    let plugin = PluginBuilder::new("tracer")
        .requires(["/api/v1/headers"])
        .get("/api/v1/tracer/run", relay_headers)
        .build()
        .expect("plugin declarations are valid");
    let server = start(proxy_config(&legacy.url, ""), vec![plugin]).await;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let r = get_with(&server.url("/api/v1/tracer/run"), &[("traceparent", &traceparent)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.json()["data"].clone();
    assert_eq!(data["plugin_trace"], TRACE_ID, "{data}");
    let upstream = fields(data["upstream"].as_str().expect("the upstream got a traceparent"));
    assert_eq!(upstream[1], TRACE_ID, "{data}");
    assert_ne!(upstream[2], PARENT_ID);
    assert_ne!(upstream[2], data["plugin_span"].as_str().unwrap(), "CallRemote is a span of its own");
    server.stop(true).await;
}
