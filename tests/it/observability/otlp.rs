//! OpenTelemetry export from a real `framex run` to a real OTLP/HTTP receiver
//! (`tests/python/otlp_receiver.py`, decoding with `opentelemetry-proto`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::python::{free_port, legacy_app, python, repo, Child};
use crate::common::{get, get_with};

/// Starts `framex run` in `dir` proxying to `upstream`, with `envs`, once it answers.
async fn framex_run(dir: &Path, upstream: &str, envs: &[(&str, &str)]) -> Child {
    let port = free_port();
    std::fs::write(
        dir.join("config.toml"),
        format!("load_builtin_plugins = [\"proxy\"]\n[server]\nport = {port}\ntrusted_proxies = [\"127.0.0.1/32\"]\n[plugins.proxy]\nproxy_urls = [\"{upstream}\"]\n"),
    )
    .unwrap();
    Child::spawn(Path::new(env!("CARGO_BIN_EXE_framex")), &["run"], dir, envs, port, "/api/v1/headers").await
}

/// The spans the receiver holds of trace `trace_id`, once `count` have arrived.
async fn spans_of(receiver: &Child, trace_id: &str, count: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let all = get(&format!("{}/spans", receiver.url)).await.json();
        let spans: Vec<Value> = all.as_array().unwrap().iter().filter(|s| s["trace_id"] == trace_id).cloned().collect();
        if spans.len() >= count {
            return spans;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{count} spans of {trace_id} expected, got: {all}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, one proxied request yields a server span
/// (child of the client's `traceparent`, with `http.route` the template) and a client
/// span for the upstream attempt (child of the server span), both in the client's
/// trace and under `OTEL_SERVICE_NAME`; the upstream saw the client span as its parent.
#[actix_rt::test]
async fn spans_of_one_request_reach_an_otlp_receiver() {
    let receiver_port = free_port();
    let port = receiver_port.to_string();
    let script = repo().join("tests/python/otlp_receiver.py");
    let receiver = Child::spawn(&python(), &[script.to_str().unwrap(), "--port", &port], &repo(), &[], receiver_port, "/health").await;
    let legacy = legacy_app().await;
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("OTEL_SERVICE_NAME", "framex-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let framex = framex_run(dir.path(), &legacy.url, &envs).await;

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let client_parent = "b7ad6b7169203331";
    let traceparent = format!("00-{trace_id}-{client_parent}-01");
    let reply = get_with(&format!("{}/api/v1/headers", framex.url), &[("traceparent", &traceparent)]).await;
    assert_eq!(reply.status, 200);
    let upstream_saw = reply.json()["headers"]["traceparent"].as_str().unwrap().to_owned();

    let spans = spans_of(&receiver, trace_id, 2).await;
    let server = spans.iter().find(|s| s["kind"] == 2).unwrap_or_else(|| panic!("no server span: {spans:?}"));
    let client = spans.iter().find(|s| s["kind"] == 3).unwrap_or_else(|| panic!("no client span: {spans:?}"));
    assert_eq!(server["service"], "framex-under-test");
    assert_eq!(server["parent_span_id"], client_parent, "the server span continues the client's");
    assert_eq!(server["name"], "GET /api/v1/headers");
    assert_eq!(server["attributes"]["http.route"], "/api/v1/headers");
    assert_eq!(server["attributes"]["http.response.status_code"], 200);
    assert_eq!(client["parent_span_id"], server["span_id"], "the attempt is a child of the server span");
    assert_eq!(client["attributes"]["url.full"], legacy.url.as_str());
    assert_eq!(client["attributes"]["http.request.resend_count"], 0);
    let client_span = client["span_id"].as_str().unwrap();
    assert_eq!(upstream_saw, format!("00-{trace_id}-{client_span}-01"), "the upstream's parent is the attempt span");
}

/// With the collector down — refusing connections, or a black hole that accepts them
/// and never answers — requests are answered as usual and promptly: export never sits
/// on a request's path.
#[actix_rt::test]
async fn a_collector_that_is_down_does_not_affect_requests() {
    let legacy = legacy_app().await;
    // Accepted by the kernel, never read or answered: an export waits its timeout.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let collectors = [
        format!("http://127.0.0.1:{}", free_port()),
        format!("http://{}", black_hole.local_addr().unwrap()),
    ];
    for collector in &collectors {
        let dir = tempfile::tempdir().unwrap();
        let envs = [("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
        let framex = framex_run(dir.path(), &legacy.url, &envs).await;
        let started = Instant::now();
        for i in 0..50 {
            let reply = get(&format!("{}/api/v1/items/{i}", framex.url)).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        // Fifty small requests 20 ms apart take about a second; the exporter's own
        // timeout is ten seconds, which would show if export ran on the request path.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(8), "requests slowed with collector {collector}: {took:?}");
    }
    drop(black_hole);
}
