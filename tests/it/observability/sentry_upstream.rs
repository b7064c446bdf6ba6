//! `[sentry]` for proxied routes, side by side with FrameX-kit 0.4.2: the same upstream
//! (a stand-in on loopback answering 500, 404, and a stream that dies midway) behind
//! FrameX-kit's proxy plugin and behind framex-rs, each reporting to its own stand-in
//! ingest.
//!
//! What FrameX-kit does (its proxy calls `raise_for_status()` and catches what it
//! raises): for any non-2xx its client gets 200 `"error proxy"` and Sentry an
//! `HTTPStatusError` event whose value holds the upstream URL with its query; a stream
//! that dies midway is an SSE `error` event to the client and a `RemoteProtocolError`
//! event. framex-rs passes every answer on unchanged (the client sees the upstream's
//! 500 or 404), reports the 5xx (`UpstreamStatus`, naming status and route, no body, no
//! query) but not the 404 (the client has the upstream's own answer), and a stream
//! that dies midway (`StreamBroken`; the client's SSE `error` event as today).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::{json, Value};

use super::sentry::Ingest;
use crate::common::{config, get, sse_events, spawn_upstream, start};

/// What the upstream's 500 says: it must not reach Sentry.
const UPSTREAM_WORDS: &str = "upstream-body-words";

/// The upstream: `/api/v1/fail` (500, a `token` query parameter), `/api/v1/missing`
/// (404), `/api/v1/die` (an SSE stream whose connection breaks after one event).
fn failing_upstream() -> (String, actix_web::dev::ServerHandle) {
    spawn_upstream(|cfg| {
        let op = |id: &str| json!({ "get": { "operationId": id, "responses": { "200": { "description": "ok" } } } });
        let mut fail = op("fail");
        fail["get"]["parameters"] = json!([{ "name": "token", "in": "query", "required": false, "schema": { "type": "string" } }]);
        let doc = json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "1" },
            "paths": { "/api/v1/fail": fail, "/api/v1/missing": op("missing"), "/api/v1/die": op("die") }
        });
        cfg.route("/api/v1/openapi.json", web::get().to(move || {
            let doc = doc.clone();
            async move { HttpResponse::Ok().json(doc) }
        }))
        .route("/api/v1/fail", web::get().to(|| async { HttpResponse::InternalServerError().json(json!({ "detail": UPSTREAM_WORDS })) }))
        .route("/api/v1/missing", web::get().to(|| async { HttpResponse::NotFound().json(json!({ "detail": "no such thing" })) }))
        .route(
            "/api/v1/die",
            web::get().to(|| async {
                let chunks = futures::stream::iter([
                    Ok(Bytes::from_static(b"data: one\n\n")),
                    Err(actix_web::error::ErrorInternalServerError("dies")),
                ])
                .then(|chunk| async move {
                    if chunk.is_err() {
                        actix_rt::time::sleep(Duration::from_millis(200)).await;
                    }
                    chunk
                });
                HttpResponse::Ok().content_type("text/event-stream").streaming(chunks)
            }),
        );
    })
}

/// The table both are given.
fn proxy_table(upstream: &str, dsn: &str) -> String {
    format!(
        "load_builtin_plugins = [\"proxy\"]\n[server]\nenable_proxy = true\n\
         [plugins.proxy]\nforce_stream_apis = [\"/api/v1/die\"]\n\
         [plugins.proxy.proxy_urls.\"{upstream}\"]\nenable = [\"*\"]\n\
         [sentry]\nenable = true\ndsn = \"{dsn}\"\nenv = \"test\"\n"
    )
}

/// What a client and Sentry saw of the three requests.
struct Seen {
    fail: (u16, String),
    missing: (u16, String),
    die: Vec<(String, Value)>,
    events: Vec<Value>,
    raw: String,
}

/// Asks `base` for the three routes (the 500 with a query), then waits until the
/// `expected` events are in and 500 ms more.
async fn ask(base: &str, ingest: &Ingest, expected: usize) -> Seen {
    let fail = get(&format!("{base}/api/v1/fail?token=q-secret")).await;
    let missing = get(&format!("{base}/api/v1/missing")).await;
    let die = get(&format!("{base}/api/v1/die")).await;
    ingest.wait_events(expected).await;
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    Seen {
        fail: (fail.status, fail.text()),
        missing: (missing.status, missing.text()),
        die: sse_events(&die.text()),
        events: ingest.events(),
        raw: String::from_utf8_lossy(&ingest.raw.lock().unwrap()).into_owned(),
    }
}

/// The event whose transaction is `route`.
fn event_of<'a>(seen: &'a Seen, route: &str) -> Option<&'a Value> {
    seen.events.iter().find(|e| e["transaction"] == route)
}

fn exception(event: &Value) -> (&str, &str) {
    let first = &event["exception"]["values"][0];
    (first["type"].as_str().unwrap_or_default(), first["value"].as_str().unwrap_or_default())
}

#[actix_rt::test]
async fn an_upstream_5xx_and_a_broken_stream_reach_sentry_as_from_framex_kit() {
    let (upstream, upstream_handle) = failing_upstream();
    let (kit_ingest, kit_dsn, kit_ingest_handle) = Ingest::start();
    let paths = ["/api/v1/fail", "/api/v1/missing", "/api/v1/die"];
    let (kit, _dir) = crate::common::python::framex_kit(&proxy_table(&upstream, &kit_dsn), &paths).await;
    let theirs = ask(&kit.url, &kit_ingest, 3).await;

    let (ingest, dsn, ingest_handle) = Ingest::start();
    let server = start(config(&proxy_table(&upstream, &dsn)), vec![]).await;
    let base = server.url("");
    let ours = ask(base.trim_end_matches('/'), &ingest, 2).await;

    // FrameX-kit: every non-2xx is "error proxy" to the client and an event.
    assert_eq!(theirs.fail, (200, "\"error proxy\"".to_owned()));
    assert_eq!(theirs.missing, (200, "\"error proxy\"".to_owned()));
    assert_eq!(theirs.events.len(), 3, "{:?}", theirs.events);
    let (ty, value) = exception(event_of(&theirs, "/api/v1/fail").expect("the 500's event"));
    assert_eq!(ty, "HTTPStatusError");
    assert!(value.contains("500") && value.contains("token=q-secret"), "FrameX-kit names the URL with its query: {value}");
    let (ty, value) = exception(event_of(&theirs, "/api/v1/missing").expect("the 404's event"));
    assert_eq!((ty, value.contains("404")), ("HTTPStatusError", true), "{value}");
    assert_eq!(exception(event_of(&theirs, "/api/v1/die").expect("the broken stream's event")).0, "RemoteProtocolError");

    // framex-rs: the answers passed on unchanged; the 5xx and the broken stream reported.
    assert_eq!(ours.fail.0, 500);
    assert!(ours.fail.1.contains(UPSTREAM_WORDS), "the client gets the upstream's answer: {}", ours.fail.1);
    assert_eq!(ours.missing.0, 404, "{}", ours.missing.1);
    assert_eq!(ours.events.len(), 2, "none for the 404: {:?}", ours.events);
    let fail = event_of(&ours, "/api/v1/fail").expect("the 500's event");
    let (ty, value) = exception(fail);
    assert_eq!(ty, "UpstreamStatus");
    assert!(value.contains("500") && value.contains("/api/v1/fail"), "{value}");
    let die = event_of(&ours, "/api/v1/die").expect("the broken stream's event");
    assert_eq!(exception(die).0, "StreamBroken", "{die}");
    assert!(!ours.raw.contains(UPSTREAM_WORDS) && !ours.raw.contains("q-secret"), "no body, no query: {}", ours.raw);

    // Alike: the stream's client sees its event then an SSE `error`; both events look the same.
    for seen in [&theirs, &ours] {
        assert_eq!(seen.die.first().map(|(name, _)| name.as_str()), Some("message"), "{:?}", seen.die);
        assert_eq!(seen.die.last().map(|(name, _)| name.as_str()), Some("error"), "{:?}", seen.die);
    }
    for (seen, base) in [(&theirs, kit.url.as_str()), (&ours, base.trim_end_matches('/'))] {
        for route in ["/api/v1/fail", "/api/v1/die"] {
            let event = event_of(seen, route).unwrap();
            assert_eq!(event["environment"], "test_noray", "{event}");
            assert_eq!(event["level"], "info", "{event}");
            assert_eq!(event["request"]["url"], format!("{base}{route}"), "{event}");
            assert_eq!(event["request"]["method"], "GET", "{event}");
        }
    }
    server.stop(true).await;
    drop(kit);
    for handle in [kit_ingest_handle, ingest_handle, upstream_handle] {
        handle.stop(true).await;
    }
}

/// `ignore_errors = ["UpstreamStatus"]` silences the upstream's 5xx (the name to list;
/// FrameX-kit's is `HTTPStatusError`), while the client still gets its answer.
#[actix_rt::test]
async fn ignore_errors_names_upstream_status() {
    let (upstream, upstream_handle) = failing_upstream();
    let (ingest, dsn, ingest_handle) = Ingest::start();
    let toml = proxy_table(&upstream, &dsn) + "ignore_errors = [\"UpstreamStatus\"]\n";
    let server = start(config(&toml), vec![]).await;
    let base = server.url("");
    let seen = ask(base.trim_end_matches('/'), &ingest, 1).await;
    assert_eq!(seen.fail.0, 500);
    assert_eq!(seen.events.len(), 1, "the broken stream only: {:?}", seen.events);
    assert_eq!(exception(&seen.events[0]).0, "StreamBroken");
    server.stop(true).await;
    for handle in [ingest_handle, upstream_handle] {
        handle.stop(true).await;
    }
}
