//! Bounded decoders (attacks 5, 6, 9 of issue 15) and what held: proxy-function
//! payloads are refused past 4 layers or `server.max_body_size` decoded bytes, off
//! the worker threads; upstream documents are refused past
//! `plugins.proxy.max_document_size`, 10,000 operations or their published bound;
//! hostile upstream replies (an unsolicited 101, CL+TE) never reach the client as
//! they are; broken and slow upstreams are 502/504.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use framex::actors::upstream::proxy_function::encode;
use framex::actors::{Ctx, Error};
use framex::plugin::PluginBuilder;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use crate::common::{config, get, post_json, raw_upstream, read_request, request, spawn_upstream, start};

#[derive(Deserialize, JsonSchema)]
struct Terms {
    a: i64,
    b: i64,
}

async fn add(terms: Terms, _: Ctx) -> Result<Value, Error> {
    Ok(json!({"sum": terms.a + terms.b}))
}

/// A server offering the proxy function `calc.add`, with the given extra config.
async fn offering_a_function(toml: &str) -> framex::Running {
    let calc = PluginBuilder::new("calc").proxy_function("calc.add", add).build().expect("plugin declarations are valid");
    start(config(toml), vec![calc]).await
}

/// `E` applied `layers` times around `value`.
fn nested(value: &Value, layers: usize) -> String {
    let mut text = encode(value);
    for _ in 1..layers {
        text = encode(&Value::String(text));
    }
    text
}

/// Pseudo-random hex text (incompressible enough to keep its size through zlib).
fn hex_text(len: usize) -> String {
    let mut seed = 0x9e37_79b9_u32;
    (0..len)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from_digit((seed >> 16) % 16, 16).unwrap_or('0')
        })
        .collect()
}

/// Attack 5: a ~258 KB body of 60 nested encoding layers is refused (422, too deep)
/// in seconds, and while it is decoded the one worker still answers another route.
#[actix_rt::test]
async fn sixty_layer_payload_is_refused_quickly_while_the_worker_serves() {
    let server = offering_a_function("").await;
    let data = nested(&json!(hex_text(150_000)), 60);
    assert!(data.len() > 200_000, "payload of {} bytes", data.len());
    let body = json!({"func_name": encode(&json!("calc.add")), "data": data});
    let remote = server.url("/api/v1/proxy/remote");
    let started = Instant::now();
    let attack = actix_rt::spawn(async move { post_json(&remote, &body).await });
    let health = get(&server.url("/health")).await;
    let health_took = started.elapsed();
    let refused = attack.await.unwrap();
    let attack_took = started.elapsed();
    assert_eq!(health.status, 200);
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(refused.text().contains("more than 4 encoding layers"), "{}", refused.text());
    assert!(health_took < Duration::from_secs(10), "health took {health_took:?}");
    assert!(attack_took < Duration::from_secs(20), "refusal took {attack_took:?}");
    server.stop(true).await;
}

/// A small payload that decompresses past `server.max_body_size` (a zlib bomb) is
/// refused with 413; a proper call under the same limit is still answered.
#[actix_rt::test]
async fn payload_decoding_past_max_body_size_is_refused() {
    let server = offering_a_function("[server]\nmax_body_size = 65536\n").await;
    let remote = server.url("/api/v1/proxy/remote");
    let bomb = encode(&json!({"a": 1, "b": 2, "pad": "0".repeat(1024 * 1024)}));
    assert!(bomb.len() < 16 * 1024);
    let r = post_json(&remote, &json!({"func_name": encode(&json!("calc.add")), "data": bomb})).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let r = post_json(&remote, &json!({"func_name": encode(&json!("calc.add")), "data": encode(&json!({"a": 40, "b": 2}))})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop(true).await;
}

/// With no proxy function offered, `POST /api/v1/proxy/remote` is the ordinary 404
/// envelope, whatever the body (it is not read, so not decoded).
#[actix_rt::test]
async fn proxy_remote_is_404_when_no_function_is_offered() {
    let server = start(config(""), vec![]).await;
    let remote = server.url("/api/v1/proxy/remote");
    let body = json!({"func_name": encode(&json!("calc.add")), "data": nested(&json!({}), 10)});
    let r = post_json(&remote, &body).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["message"], "Not Found");
    server.stop(true).await;
}

/// Under `[auth]`, the endpoint wants its key before anything is decoded.
#[actix_rt::test]
async fn proxy_remote_stays_under_auth() {
    let server = offering_a_function("[auth]\nrules = { \"/api/v1/proxy/remote\" = [\"k-remote\"] }\n").await;
    let remote = server.url("/api/v1/proxy/remote");
    let body = serde_json::to_vec(&json!({"func_name": encode(&json!("calc.add")), "data": encode(&json!({"a": 1, "b": 1}))})).unwrap();
    let r = request("POST", &remote, &[("content-type", "application/json")], body.clone()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = request("POST", &remote, &[("content-type", "application/json"), ("authorization", "k-remote")], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop(true).await;
}

/// An in-process upstream serving `doc` at `/api/v1/openapi.json`, and a server
/// proxying it (one discovery, no re-discovery), with `extra` proxy config.
async fn proxying(doc: Value, extra: &str) -> (framex::Running, actix_web::dev::ServerHandle) {
    let doc = web::Bytes::from(serde_json::to_vec(&doc).unwrap());
    let (url, handle) = spawn_upstream(move |cfg| {
        let doc = doc.clone();
        cfg.route(
            "/api/v1/openapi.json",
            web::get().to(move || {
                let doc = doc.clone();
                async move { HttpResponse::Ok().content_type("application/json").body(doc) }
            }),
        );
        cfg.default_service(web::to(|| async { HttpResponse::Ok().json(json!({"upstream": "answered"})) }));
    });
    let toml = format!(
        "load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{url}\"]\ndiscovery_interval = 0\n{extra}"
    );
    (start(config(&toml), vec![]).await, handle)
}

/// The reason the server's one upstream was refused, from a fresh discovery.
async fn refusal(server: &framex::Running) -> String {
    let failed = server.proxy().expect("proxy loaded").discover_all().await;
    assert_eq!(failed.len(), 1, "the document was accepted");
    failed[0].1.to_string()
}

/// Attack 6: one large path item `$ref`'d from 500 paths (~0.7 MB document, ~340 MB
/// merged document before) is refused naming the limit and its key; none of its
/// routes is published and the merged document stays small.
#[actix_rt::test]
async fn fan_out_document_is_refused_and_the_merged_document_stays_small() {
    let props: Map<String, Value> = (0..6000)
        .map(|i| (format!("f{i}"), json!({"type": "string", "description": hex_text(60)})))
        .collect();
    let mut paths = Map::new();
    paths.insert("/big".into(), json!({"get": {"responses": {"200": {"description": "ok",
        "content": {"application/json": {"schema": {"type": "object", "properties": props}}}}}}}));
    for i in 0..500 {
        paths.insert(format!("/p{i}"), json!({"$ref": "#/paths/~1big"}));
    }
    let doc = json!({"openapi": "3.1.0", "paths": paths});
    assert!(serde_json::to_vec(&doc).unwrap().len() > 600_000);
    let (server, upstream) = proxying(doc, "").await;
    let why = refusal(&server).await;
    assert!(why.contains("plugins.proxy.max_document_size") && why.contains("16777216"), "{why}");
    let merged = get(&server.url("/api/v1/openapi.json")).await;
    assert_eq!(merged.status, 200);
    assert!(merged.body.len() < 64 * 1024, "merged document of {} bytes", merged.body.len());
    assert_eq!(get(&server.url("/p7")).await.status, 404);
    server.stop(true).await;
    upstream.stop(true).await;
}

/// A document larger than `plugins.proxy.max_document_size` is refused while it
/// is read; under the limit the same upstream is published.
#[actix_rt::test]
async fn document_over_max_document_size_is_refused() {
    let doc = json!({"openapi": "3.1.0", "paths": {"/api/v1/x": {"get": {"summary": hex_text(20_000), "responses": {}}}}});
    let (server, upstream) = proxying(doc.clone(), "max_document_size = 10000\n").await;
    let why = refusal(&server).await;
    assert!(why.contains("larger than 10000 bytes") && why.contains("plugins.proxy.max_document_size"), "{why}");
    assert_eq!(get(&server.url("/api/v1/x")).await.status, 404);
    server.stop(true).await;
    upstream.stop(true).await;
    let (server, upstream) = proxying(doc, "max_document_size = 100000\n").await;
    assert_eq!(get(&server.url("/api/v1/x")).await.status, 200);
    server.stop(true).await;
    upstream.stop(true).await;
}

/// A document of 10,001 operations is refused; none of them is published.
#[actix_rt::test]
async fn ten_thousand_and_one_operations_are_refused() {
    let paths: Map<String, Value> = (0..10_001)
        .map(|i| (format!("/o{i}"), json!({"get": {"responses": {}}})))
        .collect();
    let (server, upstream) = proxying(json!({"openapi": "3.0.3", "paths": paths}), "").await;
    let why = refusal(&server).await;
    assert!(why.contains("more than 10000 operations"), "{why}");
    assert_eq!(get(&server.url("/o1")).await.status, 404);
    server.stop(true).await;
    upstream.stop(true).await;
}

/// What held: invalid JSON, Swagger 2.0, a 50 MB document, deep nesting and `$ref`
/// cycles are each refused with a reason (cycles: read, without hanging).
#[actix_rt::test]
async fn hostile_documents_are_refused_with_a_reason() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!(r#"{{"openapi":"3.1.0","paths":{{}},"x":"{}"}}"#, "a".repeat(50 * 1024 * 1024));
    let cases: [(&str, String, &str); 4] = [
        ("invalid JSON", "{\"openapi\": ".to_owned(), "not JSON"),
        ("Swagger 2.0", r#"{"swagger":"2.0","paths":{}}"#.to_owned(), "no 'openapi' version"),
        ("50 MB", huge, "larger than"),
        ("deep nesting", deep, "recursion limit"),
    ];
    for (name, body, reason) in cases {
        let body = web::Bytes::from(body);
        let (url, handle) = spawn_upstream(move |cfg| {
            let body = body.clone();
            cfg.default_service(web::to(move || {
                let body = body.clone();
                async move { HttpResponse::Ok().content_type("application/json").body(body) }
            }));
        });
        let toml = format!("load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{url}\"]\ndiscovery_interval = 0\n");
        let server = start(config(&toml), vec![]).await;
        let why = refusal(&server).await;
        assert!(why.contains(reason), "{name}: {why}");
        server.stop(true).await;
        handle.stop(true).await;
    }
    let cycle = json!({"openapi": "3.1.0", "paths": {
        "/a": {"$ref": "#/paths/~1b"}, "/b": {"$ref": "#/paths/~1a"},
        "/c": {"get": {"parameters": [{"$ref": "#/components/parameters/P"}], "responses": {}}}},
        "components": {"parameters": {"P": {"$ref": "#/components/parameters/P"}},
                       "schemas": {"S": {"$ref": "#/components/schemas/S"}}}});
    let (server, upstream) = proxying(cycle, "").await;
    assert!(server.proxy().unwrap().discover_all().await.is_empty());
    assert_eq!(get(&server.url("/a")).await.status, 404, "a cycle publishes nothing");
    server.stop(true).await;
    upstream.stop(true).await;
}

/// A raw upstream publishing `GET /api/v1/raw` and answering it with `reply`.
async fn raw_replying(reply: Vec<u8>) -> String {
    let doc = serde_json::to_vec(&json!({"openapi": "3.1.0", "paths": {"/api/v1/raw": {"get": {"responses": {}}}}})).unwrap();
    raw_upstream(move |mut socket| {
        let (doc, reply) = (doc.clone(), reply.clone());
        async move {
            let mut buf = Vec::new();
            while let Some(head) = read_request(&mut socket, &mut buf).await {
                let out = if head.starts_with("get /api/v1/openapi.json") {
                    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", doc.len()).into_bytes();
                    out.extend_from_slice(&doc);
                    out
                } else {
                    reply.clone()
                };
                if socket.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

async fn proxying_raw(reply: Vec<u8>, extra: &str) -> framex::Running {
    let url = raw_replying(reply).await;
    let toml = format!("load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{url}\"]\ndiscovery_interval = 0\nretries = 0\n{extra}");
    start(config(&toml), vec![]).await
}

/// framex-rs proxying `/api/v1/raw` (timeout 1 s, no retries) to an upstream that
/// serves its OpenAPI document and hands the connection of any other request to `call`.
async fn proxying_call<F, Fut>(call: F) -> framex::Running
where
    F: Fn(actix_rt::net::TcpStream) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let doc = serde_json::to_vec(&json!({"openapi": "3.1.0", "paths": {"/api/v1/raw": {"get": {"responses": {}}}}})).unwrap();
    let url = raw_upstream(move |mut socket| {
        let (doc, call) = (doc.clone(), call.clone());
        async move {
            let mut buf = Vec::new();
            while let Some(head) = read_request(&mut socket, &mut buf).await {
                if !head.starts_with("get /api/v1/openapi.json") {
                    return call(socket).await;
                }
                let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", doc.len()).into_bytes();
                out.extend_from_slice(&doc);
                let _ = socket.write_all(&out).await;
            }
        }
    })
    .await;
    let toml = format!("load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{url}\"]\ndiscovery_interval = 0\nretries = 0\ntimeout = 1\n");
    start(config(&toml), vec![]).await
}

/// Attack 9: an upstream's unsolicited `101 Switching Protocols` is a 502 naming
/// the upstream, not a protocol switch handed to the client.
#[actix_rt::test]
async fn unsolicited_101_is_a_502() {
    let server = proxying_raw(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nraw bytes".to_vec(), "").await;
    let r = get(&server.url("/api/v1/raw")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    // The client is told the upstream broke; the detail (a 101) goes to the log.
    assert!(r.text().contains("sent a broken reply"), "{}", r.text());
    server.stop(true).await;
}

/// Attack 9: a chunked reply of 300 KiB that also claims `Content-Length: 999999`
/// reaches the client whole, framed by the chunking, with no false length.
#[actix_rt::test]
async fn chunked_reply_with_a_bogus_content_length_arrives_whole() {
    let body = hex_text(300 * 1024);
    let mut reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 999999\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for chunk in body.as_bytes().chunks(64 * 1024) {
        reply.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        reply.extend_from_slice(chunk);
        reply.extend_from_slice(b"\r\n");
    }
    reply.extend_from_slice(b"0\r\n\r\n");
    let server = proxying_raw(reply, "").await;
    let r = get(&server.url("/api/v1/raw")).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.headers.get("content-length").map(|v| v.as_bytes()), Some(&b"999999"[..]));
    assert_eq!(r.body.len(), body.len());
    assert_eq!(r.text(), body);
    server.stop(true).await;
}

/// What held: an upstream that answers garbage is a 502, one that never answers a
/// 504 after `timeout`.
#[actix_rt::test]
async fn broken_and_slow_upstreams_are_502_and_504() {
    let server = proxying_raw(b"NOT HTTP AT ALL\r\n\r\n".to_vec(), "").await;
    assert_eq!(get(&server.url("/api/v1/raw")).await.status, 502);
    server.stop(true).await;

    // Never answers; holds the connection past the proxy's timeout.
    let server = proxying_call(|socket| async move {
        let _held = socket;
        actix_rt::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let started = Instant::now();
    assert_eq!(get(&server.url("/api/v1/raw")).await.status, 504);
    assert!(started.elapsed() < Duration::from_secs(20));
    server.stop(true).await;
}

/// An upstream that never stops sending interim `100 Continue` heads, and never a final
/// one, still gets its request a 504 at the deadline: reading what it sends without
/// end must not keep the deadline from being looked at.
#[actix_rt::test]
async fn an_upstream_flooding_interim_answers_ends_at_the_deadline() {
    // Interim heads for as long as the proxy reads them (60 s at most).
    let server = proxying_call(|mut socket| async move {
        let flood = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(40_000);
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && socket.write_all(&flood).await.is_ok() {}
    })
    .await;
    let started = Instant::now();
    let r = get(&server.url("/api/v1/raw")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    server.stop(true).await;
}
