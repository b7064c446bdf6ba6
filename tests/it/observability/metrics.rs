//! `/metrics` after traffic over local, proxied, failing and streamed routes: valid
//! exposition (checked by `promtool`), histograms labelled by route template.

use std::process::{Command, Stdio};
use std::io::Write;

use crate::common::python::legacy_app;
use crate::common::{config, get, start};

/// The value of the first series `name{…}` whose labels include every `(key, value)`.
pub fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .find(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Runs `promtool check metrics` on `text`; `None` when promtool is missing outside CI
/// (under CI a missing promtool fails the test).
fn promtool(text: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED promtool check: promtool not runnable ({e}); .ci/run installs Debian's prometheus");
            return None;
        }
        Err(e) => panic!("promtool is required under CI: {e}"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), said))
}

/// Traffic over a local route, a templated proxied route (two concrete paths), an SSE
/// stream, a stream that breaks off, an upstream that times out and an unknown path:
/// `/metrics` then passes `promtool check metrics`, has the request histograms under
/// the route *templates* (never a concrete path), the upstream failures by kind, the
/// streamed bytes and the process's figures.
#[actix_rt::test]
async fn metrics_after_mixed_traffic_pass_promtool() {
    let legacy = legacy_app().await;
    let server = start(
        config(&format!(
            r#"
load_builtin_plugins = ["proxy", "echo"]
[server]
enable_proxy = true
[plugins.proxy]
proxy_urls = ["{}"]
timeout = 0.5
discovery_interval = 0
force_stream_apis = ["/api/v1/stream/sse", "/api/v1/stream/die"]
"#,
            legacy.url
        )),
        vec![],
    )
    .await;
    assert_eq!(get(&server.url("/api/v1/echo?message=hi")).await.status, 200);
    assert_eq!(get(&server.url("/api/v1/items/7")).await.status, 200);
    assert_eq!(get(&server.url("/api/v1/items/8")).await.status, 200);
    let sse = get(&server.url("/api/v1/stream/sse?n=2&delay_ms=10")).await;
    assert_eq!(sse.status, 200);
    let _broken = get(&server.url("/api/v1/stream/die?after=1")).await;
    assert_eq!(get(&server.url("/api/v1/slow?ms=3000")).await.status, 504);
    assert_eq!(get(&server.url("/no/such/path/42")).await.status, 404);

    let text = get(&server.url("/metrics")).await.text();
    if let Some((ok, said)) = promtool(&text) {
        assert!(ok, "promtool check metrics failed: {said}\n{text}");
    }
    // The registry is the process's: other tests in this binary add to the
    // route-labelled series, so those are compared with `>=`; URL-labelled ones are
    // this test's alone.
    let items = [("method", "GET"), ("route", "/api/v1/items/{item_id}")];
    let answered = series(&text, "framex_http_requests_total", &[items[0], items[1], ("status", "200")]);
    assert!(answered >= Some(2.0), "{text}");
    let timed = series(&text, "framex_http_request_duration_seconds_count", &[items[0], items[1], ("target", "upstream")]);
    assert!(timed >= Some(2.0), "{text}");
    assert!(!text.contains("/api/v1/items/7"), "a concrete path became a label:\n{text}");
    assert!(!text.contains("/no/such/path"), "an unknown path became a label:\n{text}");
    let local = [("route", "/api/v1/echo"), ("target", "local")];
    assert!(series(&text, "framex_http_request_duration_seconds_count", &local) >= Some(1.0));
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert!(series(&text, "framex_http_requests_total", &unmatched) >= Some(1.0));
    let url = legacy.url.as_str();
    let timeouts = series(&text, "framex_upstream_failures_total", &[("url", url), ("kind", "timeout")]);
    assert_eq!(timeouts, Some(1.0), "{text}");
    let broken = series(&text, "framex_upstream_failures_total", &[("url", url), ("kind", "broken_body")]);
    assert!(broken >= Some(1.0), "{text}");
    let heads = series(&text, "framex_upstream_request_duration_seconds_count", &[("url", url)]);
    assert!(heads >= Some(4.0), "every answered attempt is timed to its head: {heads:?}");
    assert!(series(&text, "framex_streamed_bytes_total", &[]) > Some(0.0));
    assert!(text.contains("# TYPE framex_sse_streams_open gauge"));
    assert!(series(&text, "process_resident_memory_bytes", &[]) > Some(0.0), "process metrics");
    server.stop(true).await;
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// Calls a local function API and an upstream route through `CallRemote`.
async fn call_both(_: NoArgs, cx: framex::actors::Ctx) -> Result<serde_json::Value, framex::actors::Error> {
    let local = cx.call_remote_api("echo.EchoPlugin.confess", serde_json::json!({"message": "m"})).await?;
    let upstream = cx.call_remote_api("/api/v1/items/{item_id}", serde_json::json!({"item_id": 3})).await?;
    Ok(serde_json::json!({"local": local, "upstream": upstream}))
}

/// `CallRemote` is counted and timed by the kind of its target: a plugin calling a
/// local function and an upstream route adds one to each.
#[actix_rt::test]
async fn call_remote_is_counted_by_target_kind() {
    let legacy = legacy_app().await;
    let plugin = framex::plugin::PluginBuilder::new("caller")
        .requires(["echo.EchoPlugin.confess", "/api/v1/items/{item_id}"])
        .get("/api/v1/caller/run", call_both)
        .build()
        .expect("plugin declarations are valid");
    let server = start(
        config(&format!(
            "load_builtin_plugins = [\"proxy\", \"echo\"]\n[server]\nenable_proxy = true\n[plugins.proxy]\nproxy_urls = [\"{}\"]\ndiscovery_interval = 0\n",
            legacy.url
        )),
        vec![plugin],
    )
    .await;
    let count = |text: &str, target: &str| {
        series(text, "framex_call_remote_duration_seconds_count", &[("target", target)]).unwrap_or(0.0)
    };
    let before = get(&server.url("/metrics")).await.text();
    let r = get(&server.url("/api/v1/caller/run")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["local"], "I am calling with message=m");
    let after = get(&server.url("/metrics")).await.text();
    // Other tests in this binary may call too: at least ours are there.
    assert!(count(&after, "local") >= count(&before, "local") + 1.0, "{after}");
    assert!(count(&after, "upstream") >= count(&before, "upstream") + 1.0, "{after}");
    assert!(series(&after, "framex_call_remote_total", &[("target", "upstream")]) >= Some(1.0));
    server.stop(true).await;
}

/// Requests that both workers served are all in the first scrape, whichever worker
/// answers it: each worker publishes its own share of the request and upstream series
/// before `/metrics` answers (and the status page's count agrees).
#[actix_rt::test]
async fn a_scrape_counts_the_requests_every_worker_served() {
    use actix_web::{web, HttpResponse};
    let path = "/api/v1/counted/by-every-worker";
    let doc = serde_json::json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {path: {"get": {"responses": {"200": {"description": "ok"}}}}}});
    let (up, up_handle) = crate::common::spawn_upstream(move |cfg| {
        let doc = doc.clone();
        cfg.route("/api/v1/openapi.json", web::get().to(move || { let doc = doc.clone(); async move { HttpResponse::Ok().json(doc) } }))
            .route(path, web::get().to(|| async { HttpResponse::Ok().json("counted") }));
    });
    let mut config = config(&format!(
        "load_builtin_plugins = [\"proxy\"]\n[server]\nenable_proxy = true\n[plugins.proxy]\nproxy_urls = [\"{up}\"]\ndiscovery_interval = 0\n"
    ));
    config.server.workers = Some(2);
    let server = start(config, vec![]).await;
    // 40 requests, 8 at a time, each on a connection of its own: both workers take some.
    let counted = server.url(path);
    for _ in 0..5 {
        let replies = futures::future::join_all((0..8).map(|_| get(&counted))).await;
        assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    }
    let text = get(&server.url("/metrics")).await.text();
    let url = [("url", up.as_str())];
    assert_eq!(series(&text, "framex_upstream_requests_total", &url), Some(40.0), "{text}");
    assert_eq!(series(&text, "framex_upstream_request_duration_seconds_count", &url), Some(40.0), "{text}");
    let route = [("route", path), ("status", "200")];
    assert_eq!(series(&text, "framex_http_requests_total", &route), Some(40.0), "{text}");
    let route = [("route", path), ("target", "upstream")];
    assert_eq!(series(&text, "framex_http_request_duration_seconds_count", &route), Some(40.0), "{text}");
    let status = get(&server.url("/api/v1/proxy/upstreams")).await.json();
    assert!(status.to_string().contains("\"requests\":40"), "{status}");
    server.stop(true).await;
    up_handle.stop(true).await;
}
