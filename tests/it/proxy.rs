//! The system proxy against in-process upstreams: discovery, faithful forwarding,
//! auth keys, filters, migration and failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use framex::actors::upstream::{PoolConfig, PoolShared, UpstreamTarget};
use framex::actors::{ApiKey, ApiSpec, Ctx, Error, UpstreamRoute};
use framex::plugin::PluginBuilder;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::{config, get, get_with, post_json, raw_http, raw_upstream, read_request, request, spawn_upstream, start};

/// The upstream's OpenAPI document: FastAPI style, 3.1.
fn upstream_doc() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "up", "version": "1"},
        "paths": {
            "/api/v1/items/{item_id}": {"get": {
                "parameters": [
                    {"name": "item_id", "in": "path", "required": true, "schema": {"type": "integer"}},
                    {"name": "q", "in": "query", "required": false, "schema": {"anyOf": [{"type": "string"}, {"type": "null"}]}}
                ],
                "responses": {"200": {"description": "ok"}}}},
            "/api/v1/items": {"post": {
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                "responses": {"200": {"description": "ok"}}}},
            "/api/v1/echo-all": {"post": {
                "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "ok"}}}},
            "/api/v1/teapot": {"get": {"responses": {"418": {"description": "teapot"}}}},
            "/api/v1/secret": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/api/v1/hidden": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/api/v1/slow": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/api/v1/envelope": {"get": {"responses": {"200": {"description": "ok"}}}}
        },
        "components": {"schemas": {"Item": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}
    })
}

/// What the upstream saw of a request, echoed back.
async fn mirror(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
        .collect();
    HttpResponse::Ok().json(json!({
        "method": req.method().as_str(),
        "path": req.path(),
        "query": req.query_string(),
        "headers": headers,
        "body_len": body.len(),
        "body_sum": body.iter().map(|b| *b as u64).sum::<u64>(),
        "body": String::from_utf8_lossy(&body[..body.len().min(200)]),
    }))
}

fn configure_upstream(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(1 << 24)).route("/api/v1/openapi.json", web::get().to(|| async { HttpResponse::Ok().json(upstream_doc()) }))
        .route("/api/v1/items/{item_id}", web::get().to(mirror))
        .route("/api/v1/items", web::post().to(mirror))
        .route("/api/v1/echo-all", web::post().to(mirror))
        .route(
            "/api/v1/teapot",
            web::get().to(|| async { HttpResponse::build(actix_web::http::StatusCode::IM_A_TEAPOT).json(json!({"detail": "I'm a teapot"})) }),
        )
        .route(
            "/api/v1/secret",
            web::get().to(|req: HttpRequest| async move {
                match req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("up-key") => HttpResponse::Ok().json(json!({"secret": "ok"})),
                    _ => HttpResponse::Unauthorized().json(json!({"detail": "bad key"})),
                }
            }),
        )
        .route("/api/v1/hidden", web::get().to(|| async { HttpResponse::Ok().json(json!({"hidden": true})) }))
        .route(
            "/api/v1/slow",
            web::get().to(|| async {
                actix_web::rt::time::sleep(Duration::from_secs(5)).await;
                HttpResponse::Ok().json(json!({"slept": true}))
            }),
        )
        .route(
            "/api/v1/envelope",
            web::get().to(|| async {
                HttpResponse::Ok().json(json!({"status": 200, "message": "success", "timestamp": "2026-01-01 00:00:00", "data": {"wrapped": 1}}))
            }),
        );
}

fn proxy_config(upstream: &str, extra: &str) -> framex::config::Config {
    config(&format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[plugins.proxy]
timeout = 2
discovery_interval = 0
{extra}
[plugins.proxy.proxy_urls."{upstream}"]
disable = ["/api/v1/hidden"]
[plugins.proxy.auth]
rules = {{ "/api/v1/secret" = ["up-key"] }}
"#
    ))
}

/// Path parameters, query, headers and bodies reach the upstream as sent; the
/// upstream's status and body come back unchanged.
#[actix_rt::test]
async fn requests_are_forwarded_faithfully() {
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let server = start(proxy_config(&up, ""), vec![]).await;

    let raw = raw_http(
        server.local_addr(),
        "GET /api/v1/items/42?q=a%20b&q=c HTTP/1.1\r\nHost: front.example\r\nX-Custom: yes\r\nConnection: close, x-hop\r\nX-Hop: drop-me\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let seen: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(seen["path"], "/api/v1/items/42");
    assert_eq!(seen["query"], "q=a%20b&q=c");
    assert_eq!(seen["headers"]["x-custom"], "yes");
    assert!(seen["headers"].get("x-hop").is_none(), "headers named by Connection are hop-by-hop");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
    assert_eq!(seen["headers"]["x-forwarded-host"], "front.example");
    assert_ne!(seen["headers"]["host"], "front.example", "the upstream gets its own Host");
    assert_eq!(seen["headers"]["x-request-id"].as_str().unwrap().len(), 16);

    // The peer's address is made once per connection: every request on it says it.
    let two = raw_http(
        server.local_addr(),
        "GET /api/v1/items/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /api/v1/items/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(two.matches(r#""x-forwarded-for":"127.0.0.1""#).count(), 2, "{two}");
    assert_eq!(two.matches(r#""x-real-ip":"127.0.0.1""#).count(), 2, "{two}");

    let r = post_json(&server.url("/api/v1/items"), &json!({"name": "widget"})).await;
    assert_eq!(r.json()["body"], r#"{"name":"widget"}"#);
    assert_eq!(r.json()["headers"]["content-type"], "application/json");

    // A binary body larger than the whole-read limit is streamed and arrives intact.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let sum: u64 = big.iter().map(|b| *b as u64).sum();
    let r = request("POST", &server.url("/api/v1/echo-all"), &[("content-type", "application/octet-stream")], big).await;
    assert_eq!(r.json()["body_len"], 1_000_000);
    assert_eq!(r.json()["body_sum"], sum);

    let r = get(&server.url("/api/v1/teapot")).await;
    assert_eq!(r.status, 418);
    assert_eq!(r.json(), json!({"detail": "I'm a teapot"}));

    server.stop(true).await;
    up_handle.stop(false).await;
}

/// The answers in `raw` (HTTP/1.1, each with a `Content-Length`), in order: head (in
/// lower case) and JSON body; the answers numbered in `to_head` (answers to `HEAD`)
/// have none (`Value::Null`).
fn answers_of(raw: &str, to_head: &[usize]) -> Vec<(String, Value)> {
    let mut rest = raw;
    let mut out = Vec::new();
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = rest[..end].to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("an answer without a length: {head}"));
        let length = if to_head.contains(&out.len()) { 0 } else { length };
        let body = &rest[end + 4..end + 4 + length];
        out.push((head, if length == 0 { Value::Null } else { serde_json::from_str(body).unwrap() }));
        rest = &rest[end + 4 + length..];
    }
    assert!(rest.is_empty(), "left over: {rest}");
    out
}

/// Pipelined HTTP/1.1 requests are each answered, in order, on one connection: a POST
/// whose body came in the same write as its head and the requests around it, then a
/// POST whose body comes a while after its head, with the next request behind it. No
/// answer but the last says `Connection: close` (the next request's body, not yet all
/// in, is not the answered one's).
#[actix_rt::test]
async fn pipelined_requests_are_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let server = start(proxy_config(&up, ""), vec![]).await;
    let post = |body: &str| {
        format!("POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len())
    };
    let mut stream = actix_rt::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let first = format!("GET /api/v1/items/1 HTTP/1.1\r\nHost: x\r\n\r\n{}{{\"n\":2}}GET /api/v1/items/3 HTTP/1.1\r\nHost: x\r\n\r\n", post(r#"{"n":2}"#));
    stream.write_all(first.as_bytes()).await.unwrap();
    stream.write_all(post(r#"{"n":4}"#).as_bytes()).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(b"{\"n\":4}GET /api/v1/items/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await.expect("all answered").unwrap();
    let answers = answers_of(&String::from_utf8_lossy(&raw), &[]);
    let seen: Vec<(&str, bool, &str, &str)> = answers
        .iter()
        .map(|(head, body)| {
            let status = head.lines().next().unwrap();
            (status, head.contains("\r\nconnection: close"), body["path"].as_str().unwrap(), body["body"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("http/1.1 200 ok", false, "/api/v1/items/1", ""),
            ("http/1.1 200 ok", false, "/api/v1/items", r#"{"n":2}"#),
            ("http/1.1 200 ok", false, "/api/v1/items/3", ""),
            ("http/1.1 200 ok", false, "/api/v1/items", r#"{"n":4}"#),
            ("http/1.1 200 ok", true, "/api/v1/items/5", ""),
        ]
    );
    server.stop(true).await;
    up_handle.stop(false).await;
}

/// An answer to a pipelined request is written as its own request asks, not as the
/// one decoded after it does: a proxied GET followed by a `HEAD` keeps its body, one
/// followed by a request saying `Connection: close` does not say it, and an HTTP/1.0
/// request's answer is HTTP/1.0 whatever follows it.
#[actix_rt::test]
async fn a_pipelined_answer_is_written_as_its_own_request_asks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let server = start(proxy_config(&up, ""), vec![]).await;
    let mut stream = actix_rt::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let requests = "GET /api/v1/items/1 HTTP/1.1\r\nHost: x\r\n\r\n\
                    HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /api/v1/items/2 HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /api/v1/items/3 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n\
                    GET /api/v1/items/4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await.expect("all answered").unwrap();
    // Each answer: its status line, whether it says close, and its body's path (no body
    // to HEAD).
    let seen: Vec<(String, bool, String)> = answers_of(&String::from_utf8_lossy(&raw), &[1])
        .into_iter()
        .map(|(head, body)| {
            let status = head.lines().next().unwrap().to_owned();
            (status, head.contains("\r\nconnection: close"), body["path"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let row = |status: &str, close: bool, path: &str| (status.to_owned(), close, path.to_owned());
    assert_eq!(
        seen,
        [
            row("http/1.1 200 ok", false, "/api/v1/items/1"),
            row("http/1.1 200 ok", false, ""),
            row("http/1.1 200 ok", false, "/api/v1/items/2"),
            row("http/1.0 200 ok", false, "/api/v1/items/3"),
            row("http/1.1 200 ok", true, "/api/v1/items/4"),
        ]
    );
    server.stop(true).await;
    up_handle.stop(false).await;
}

/// Requests to `/api/v1/counted` the upstream of the next test has seen.
static COUNTED: AtomicUsize = AtomicUsize::new(0);

/// No pipelined request after one whose answer closes the connection is served or
/// forwarded (RFC 9112 §9.6): the client gets that one answer and the close, and the
/// upstream sees none of the requests behind it; alike after an HTTP/1.0 request
/// without keep-alive, after an `Expect: 100-continue` that `[auth]` refuses, and
/// after one let through to a route answered at once (the docs login's redirect, with
/// no body, answered while the heads behind it are still being read).
#[actix_rt::test]
async fn no_request_after_an_answer_that_closes_is_served() {
    let up = raw_upstream_answering(&["/api/v1/counted"], |_| {
        COUNTED.fetch_add(1, Ordering::SeqCst);
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".to_owned()
    })
    .await;
    // With the docs login on, `/docs` answers a redirect with no body at once.
    let login = crate::docs_login::oauth_toml("http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let server = start(proxy_config(&up, &format!("[auth]\nrules = {{ \"/api/v1/guarded\" = [\"key\"] }}\n{login}")), vec![]).await;
    let expect = "Expect: 100-continue\r\nConnection: close\r\n\r\n";
    let cases = [
        ("GET /api/v1/counted HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(), "HTTP/1.1 200", 1),
        ("GET /api/v1/counted HTTP/1.0\r\nHost: x\r\n\r\n".to_owned(), "HTTP/1.0 200", 1),
        (format!("GET /api/v1/guarded HTTP/1.1\r\nHost: x\r\n{expect}"), "HTTP/1.1 401", 0),
        (format!("GET /health HTTP/1.1\r\nHost: x\r\n{expect}"), "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", 0),
        (format!("GET /docs HTTP/1.1\r\nHost: x\r\n{expect}"), "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302", 0),
    ];
    for (first, answer, forwarded) in cases {
        let before = COUNTED.load(Ordering::SeqCst);
        let behind = "GET /api/v1/counted HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        let raw = raw_http(server.local_addr(), &format!("{first}{behind}")).await;
        assert!(raw.starts_with(answer), "{raw}");
        assert_eq!(raw.matches("HTTP/1.").count(), answer.matches("HTTP/1.").count(), "one answer, then the close: {raw}");
        assert_eq!(COUNTED.load(Ordering::SeqCst) - before, forwarded, "the upstream saw only the first: {raw}");
    }
    server.stop(true).await;
}

/// A raw upstream whose OpenAPI document offers `GET` on each of `paths`, and which
/// answers every other request with `answer(head)` (the head in lower case), as it is.
async fn raw_upstream_answering(paths: &'static [&'static str], answer: fn(&str) -> String) -> String {
    use tokio::io::AsyncWriteExt;
    raw_upstream(move |mut socket| async move {
        let mut buf = Vec::new();
        while let Some(head) = read_request(&mut socket, &mut buf).await {
            let reply = if head.starts_with("get /api/v1/openapi.json") {
                let offered: serde_json::Map<String, serde_json::Value> = paths
                    .iter()
                    .map(|path| (path.to_string(), json!({"get": {"responses": {"200": {"description": "ok"}}}})))
                    .collect();
                let doc = json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": offered}).to_string();
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{doc}", doc.len())
            } else {
                answer(&head)
            };
            if socket.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// An upstream's hop-by-hop answer fields (RFC 9110 §7.6.1), and those its
/// `Connection` names, describe its connection to us: the client sees none of them,
/// and every other field as sent.
#[actix_rt::test]
async fn an_upstreams_hop_by_hop_answer_fields_stay_with_its_connection() {
    let up = raw_upstream_answering(&["/api/v1/hops"], |_| {
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret-Hop\r\nKeep-Alive: timeout=5\r\n\
         X-Secret-Hop: 1\r\nProxy-Connection: keep-alive\r\nTrailer: x-sum\r\nUpgrade: h2c\r\n\
         Proxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
            .to_owned()
    })
    .await;
    let server = start(proxy_config(&up, ""), vec![]).await;
    let raw = raw_http(server.local_addr(), "GET /api/v1/hops HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    assert_eq!(body, "ok");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nx-kept: yes"), "{head}");
    for gone in ["x-secret-hop", "keep-alive:", "proxy-connection", "trailer", "upgrade", "proxy-authenticate"] {
        assert!(!head.contains(gone), "{gone} reached the client: {head}");
    }
    server.stop(true).await;
}

/// An answer passed on unread goes out with the upstream's fields written once each,
/// in its order, names in lower case and values as sent: its own `Date` instead of
/// ours, both of two `Set-Cookie`s, one `Content-Length` (ours, for the body sent).
/// The same answer through a rate limit (whose fields are added to the upstream's, in
/// a map) has the same fields beside the limit's. An answer without `Date` gets ours;
/// one written with bare line feeds goes out as well-formed lines.
#[actix_rt::test]
async fn an_answers_fields_reach_the_client_once_each_as_sent() {
    let up = raw_upstream_answering(&["/api/v1/fields", "/api/v1/undated", "/api/v1/bare"], |head| {
        if head.starts_with("get /api/v1/undated") {
            return "HTTP/1.1 200 OK\r\nX-Undated: 1\r\nContent-Length: 2\r\n\r\nok".to_owned();
        }
        if head.starts_with("get /api/v1/bare") {
            // Bare line feeds, no space after the colons, a tab in a value.
            return "HTTP/1.1 200 OK\nX-Bare:1\nX-Tab:a\tb\nContent-Length: 2\n\nok".to_owned();
        }
        "HTTP/1.1 200 OK\r\nServer: legacy\r\nDate: Tue, 01 Jan 2030 00:00:00 GMT\r\nSet-Cookie: a=1\r\n\
         X-Mixed-Case:A  b\r\nContent-Length: 2\r\nSet-Cookie: b=2\r\nContent-Type: text/plain\r\n\r\nok"
            .to_owned()
    })
    .await;
    let limits = "[limits.rules]\n\"/api/v1/fields\" = { rate = 100, burst = 100, per = \"route\" }\n";
    for extra in ["", limits] {
        let server = start(proxy_config(&up, extra), vec![]).await;
        for version in ["HTTP/1.1", "HTTP/1.0"] {
            let request = format!("GET /api/v1/fields {version}\r\nHost: x\r\nConnection: close\r\n\r\n");
            let raw = raw_http(server.local_addr(), &request).await;
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("{version} 200")), "{raw}");
            assert_eq!(body, "ok");
            let lines: Vec<&str> = head.lines().skip(1).collect();
            let named = |name: &str| lines.iter().filter(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:"))).count();
            assert_eq!(named("date"), 1, "{head}");
            assert!(lines.contains(&"date: Tue, 01 Jan 2030 00:00:00 GMT"), "the upstream's date: {head}");
            assert_eq!(named("content-length"), 1, "{head}");
            assert!(lines.contains(&"content-length: 2"), "{head}");
            let cookies: Vec<_> = lines.iter().filter(|l| l.starts_with("set-cookie:")).collect();
            assert_eq!(cookies, [&"set-cookie: a=1", &"set-cookie: b=2"], "{head}");
            assert!(lines.contains(&"x-mixed-case: A  b"), "{head}");
            assert!(lines.contains(&"server: legacy") && lines.contains(&"content-type: text/plain"), "{head}");
            assert_eq!(named("ratelimit"), usize::from(!extra.is_empty()), "{head}");
            if extra.is_empty() {
                // The upstream's order, which a map (grouping values by name, in hash
                // order) does not keep.
                let ours = |l: &&str| l.starts_with("content-length:") || l.starts_with("connection:");
                let upstream: Vec<&str> = lines.iter().copied().filter(|l| !ours(l)).collect();
                assert_eq!(
                    upstream,
                    ["server: legacy", "date: Tue, 01 Jan 2030 00:00:00 GMT", "set-cookie: a=1", "x-mixed-case: A  b", "set-cookie: b=2", "content-type: text/plain"],
                    "{head}"
                );
            }
        }
        let raw = raw_http(server.local_addr(), "GET /api/v1/undated HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "ok");
        assert_eq!(head.lines().filter(|l| l.starts_with("date: ")).count(), 1, "ours: {head}");
        assert!(head.contains("\r\nx-undated: 1"), "{head}");
        // An upstream head with bare line feeds goes out as well-formed CRLF lines.
        let raw = raw_http(server.local_addr(), "GET /api/v1/bare HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "ok");
        assert!(head.contains("\r\nx-bare: 1\r\nx-tab: a\tb\r\n"), "{head:?}");
        assert!(!head.replace("\r\n", "").contains('\n'), "no bare line feed reaches the client: {head:?}");
        server.stop(true).await;
    }
}

/// An upstream URL written with an uppercase scheme, a path prefix and a trailing
/// slash is parsed once into its endpoint: the document and every request go under
/// the prefix (once, no doubled slash), with the URL's authority as `Host`.
#[actix_rt::test]
async fn a_path_prefix_and_an_uppercase_scheme_reach_the_upstream() {
    let (up, up_handle) = spawn_upstream(|cfg: &mut web::ServiceConfig| {
        cfg.service(web::scope("/base").configure(configure_upstream));
    });
    let written = format!("{}/base/", up.replacen("http://", "HTTP://", 1));
    let server = start(proxy_config(&written, ""), vec![]).await;
    let r = get(&server.url("/api/v1/items/7?q=x")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/base/api/v1/items/7");
    assert_eq!(r.json()["query"], "q=x");
    assert_eq!(r.json()["headers"]["host"], up.trim_start_matches("http://"));
    let ready = get(&server.url("/ready")).await;
    assert_eq!(ready.status, 200, "discovered under the prefix: {}", ready.text());
    server.stop(true).await;
    up_handle.stop(false).await;
}

/// Upstream keys come from the proxy's auth rules; the client's own key is replaced.
#[actix_rt::test]
async fn upstream_keys_are_injected_per_rule() {
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let server = start(proxy_config(&up, ""), vec![]).await;
    let r = get_with(&server.url("/api/v1/secret"), &[("authorization", "client-key")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"secret": "ok"}));
    let r = get_with(&server.url("/api/v1/items/1"), &[("authorization", "client-key")]).await;
    assert_eq!(r.json()["headers"]["authorization"], "client-key", "no rule: the client's header passes");
    server.stop(true).await;
    up_handle.stop(false).await;
}

/// Disabled routes are not proxied; the merged document lists exactly the others.
#[actix_rt::test]
async fn disabled_routes_are_not_served_and_the_document_is_merged() {
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let mut cfg = proxy_config(&up, "");
    cfg.load_builtin_plugins.push("echo".into());
    let server = start(cfg, vec![]).await;
    assert_eq!(get(&server.url("/api/v1/hidden")).await.status, 404);
    let doc = get(&server.url("/api/v1/openapi.json")).await.json();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/items/{item_id}") && paths.contains_key("/api/v1/echo"));
    assert!(!paths.contains_key("/api/v1/hidden"));
    let reference = doc["paths"]["/api/v1/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let name = reference.rsplit('/').next().unwrap();
    assert!(doc["components"]["schemas"][name].is_object(), "{reference} resolves in the merged document");

    let listing = framex::cli::route_listing(&proxy_config(&up, "")).await.unwrap().table;
    assert!(listing.contains("/api/v1/items/{item_id}") && !listing.contains("/api/v1/hidden"), "{listing}");
    server.stop(true).await;
    up_handle.stop(false).await;
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

async fn calls_upstream(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    let item = cx.call_remote_api("/api/v1/items/{item_id}", json!({"item_id": 5, "q": "x"})).await?;
    let created = cx.call_remote_api("/api/v1/items", json!({"model": {"name": "n"}})).await?;
    let unwrapped = cx.call_remote_api("/api/v1/envelope", ()).await?;
    Ok(json!({"item": item["path"], "query": item["query"], "created": created["body"], "unwrapped": unwrapped}))
}

async fn calls_badly(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    cx.call_remote_api("/api/v1/items/{item_id}", json!({"item_id": "five", "colour": 1})).await
}

/// `call_remote_api` maps arguments onto the discovered signature, checks them before
/// any I/O, and unwraps FrameX envelopes.
#[actix_rt::test]
async fn call_remote_api_maps_arguments_onto_upstream_signatures() {
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let plugin = PluginBuilder::new("caller")
        .requires(["/api/v1/items/{item_id}", "/api/v1/items", "/api/v1/envelope"])
        .get("/api/v1/caller/run", calls_upstream)
        .get("/api/v1/caller/bad", calls_badly)
        .build().expect("plugin declarations are valid");
    let server = start(proxy_config(&up, ""), vec![plugin]).await;
    let r = get(&server.url("/api/v1/caller/run")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["data"],
        json!({"item": "/api/v1/items/5", "query": "q=x", "created": "{\"name\":\"n\"}", "unwrapped": {"wrapped": 1}})
    );
    let r = get(&server.url("/api/v1/caller/bad")).await;
    assert_eq!(r.status, 422);
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("'item_id' must be an integer") && message.contains("unknown argument 'colour'"), "{message}");
    server.stop(true).await;
    up_handle.stop(false).await;
}

async fn local_item(args: ItemArgs, _: Ctx) -> Result<Value, Error> {
    Ok(json!({"local": args.item_id}))
}

#[derive(Deserialize, JsonSchema)]
struct ItemArgs {
    item_id: i64,
}

/// A local plugin registered at run time takes over a proxied route for the next
/// request; removing it hands the route back to the upstream.
#[actix_rt::test]
async fn local_plugins_take_over_proxied_routes() {
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let server = start(proxy_config(&up, ""), vec![]).await;
    let url = server.url("/api/v1/items/9");
    assert_eq!(get(&url).await.json()["path"], "/api/v1/items/9");
    let local = PluginBuilder::new("items").get("/api/v1/items/{item_id}", local_item).build().expect("plugin declarations are valid");
    server.engine().register_plugin(local).await.unwrap();
    assert_eq!(get(&url).await.json()["data"], json!({"local": 9}));
    server.engine().unregister_plugin("items").await.unwrap();
    assert_eq!(get(&url).await.json()["path"], "/api/v1/items/9");
    server.stop(true).await;
    up_handle.stop(false).await;
}

/// A slow upstream gets 504 and an unreachable one 502, each with a fixed message and
/// the request id (to find the detail in the log), naming neither the upstream's URL,
/// host or port nor the timeout (attack 18.7: addresses told to anyone).
#[actix_rt::test]
async fn upstream_failures_get_gateway_statuses_naming_no_upstream() {
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let server = start(proxy_config(&up, ""), vec![]).await;
    let port = up.rsplit(':').next().unwrap().to_owned();
    let tells_nothing = |text: &str| {
        for secret in [up.as_str(), "127.0.0.1", port.as_str(), "2.000", "2s", "timeout"] {
            assert!(!text.contains(secret), "names {secret}: {text}");
        }
    };
    // The request id is ours (a client that is no trusted proxy cannot choose it).
    let with_id = |message: &str, prefix: &str| {
        let id = message.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(')')).unwrap_or_else(|| panic!("{message}"));
        assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{message}");
    };
    let r = get_with(&server.url("/api/v1/slow"), &[("x-request-id", "probe-504")]).await;
    assert_eq!(r.status, 504, "{}", r.text());
    with_id(r.json()["message"].as_str().unwrap(), "Gateway Timeout: upstream did not answer in time (request id ");
    tells_nothing(&r.text());
    up_handle.stop(false).await;
    let r = get_with(&server.url("/api/v1/items/1"), &[("x-request-id", "probe-502")]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    with_id(r.json()["message"].as_str().unwrap(), "Bad Gateway: upstream unreachable (request id ");
    tells_nothing(&r.text());
    server.stop(true).await;
}

/// An upstream that is down at start-up does not stop the server; its routes appear
/// once it comes up.
#[actix_rt::test]
async fn upstreams_down_at_start_up_appear_later() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let up = format!("http://127.0.0.1:{port}");
    let server = start(proxy_config(&up, ""), vec![]).await;
    assert_eq!(get(&server.url("/api/v1/items/1")).await.status, 404);
    assert_eq!(get(&server.url("/health")).await.status, 200);

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let upstream = actix_web::HttpServer::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        actix_web::App::new().configure(configure_upstream)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = upstream.handle();
    actix_rt::spawn(upstream);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if get(&server.url("/api/v1/items/1")).await.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "routes did not appear");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop(true).await;
    handle.stop(false).await;
}

/// An `https://` upstream signed by a private CA: trusted once `ca_file` names the CA
/// (discovery, forwarding and health checks all over TLS), refused with a 502
/// otherwise (the certificate problem goes to the log). WebSockets tunnel to it over
/// TLS.
#[actix_rt::test]
async fn https_upstreams_are_trusted_through_ca_file() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "framex-rs test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(path("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(path("key.pem"), leaf_key.serialize_pem()).unwrap();
    let legacy = crate::common::python::legacy_app_tls(&path("cert.pem"), &path("key.pem")).await;
    assert!(legacy.url.starts_with("https://"));

    let trusted = config(&format!(
        "load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nca_file = \"{}\"\nhealth_check_path = \"/api/v1/base/version\"\n\
         health_check_interval = 0.2\n[plugins.proxy.proxy_urls.\"{}\"]\nwebsocket = [\"/ws/*\"]\n",
        path("ca.pem").display(),
        legacy.url,
    ));
    let server = start(trusted, vec![]).await;
    let started = std::time::Instant::now();
    // Discovery retries after 1, 2, 4, 8 and 16 s: on a loaded machine (a TLS handshake
    // with a Python upstream that has just started) the first fetches may fail, and 30 s
    // was once too short. The loop ends as soon as the route answers.
    let reply = loop {
        let reply = get(&server.url("/api/v1/base/version")).await;
        if reply.status != 404 || started.elapsed() > Duration::from_secs(60) {
            break reply;
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"version": "1.2.3"}));
    let r = post_json(&server.url("/api/v1/base/match"), &json!({"name": "tls"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let page = get(&server.url("/api/v1/proxy/upstreams")).await.json();
    assert_eq!(page["upstreams"][0]["healthy"], true, "health checks pass over TLS: {page}");
    // A WebSocket tunnelled over TLS (the tunnel keeps the TLS stream, split by tokio).
    let ws = crate::protocols::websocket::ws_client(&["echo", &server.url("/ws/echo").replace("http://", "ws://")]).await;
    assert_eq!((ws["status"].clone(), ws["big_ok"].clone(), ws["close_code"].clone()), (json!(101), json!(true), json!(4001)), "{ws}");
    server.stop(true).await;

    // Without the CA the certificate is unknown: no routes, and a forced route fails
    // with 502 (the upstream and the certificate problem go to the log, not the client).
    let untrusted = config(&format!(
        "load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{}\"]\n",
        legacy.url
    ));
    let server = start(untrusted, vec![]).await;
    assert_eq!(get(&server.url("/api/v1/base/version")).await.status, 404);
    let route = UpstreamRoute {
        spec: Arc::new(ApiSpec::new(ApiKey::http(framex::actors::Method::GET, "/api/v1/base/version"))),
        target: Arc::new(UpstreamTarget {
            pool: PoolShared::new(PoolConfig::single(legacy.url.parse().unwrap())),
            auth: Default::default(),
            filter: None,
        }),
    };
    server.engine().set_upstream_routes("manual", vec![route]).await.unwrap();
    let r = get(&server.url("/api/v1/base/version")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("Bad Gateway: upstream unreachable"), "{message}");
    assert!(!message.contains(&legacy.url), "{message}");
    server.stop(true).await;
}

/// An upstream FrameX instance publishes its own `/health`, `/ping` and `/version`:
/// framex-rs answers those itself, so they are left out (one warning per upstream, as
/// FrameX-kit does) — not routed, not listed by `framex routes`, not in the merged
/// document as the upstream's — while its other routes and a `POST /health` are proxied.
#[actix_rt::test]
async fn an_upstreams_builtin_paths_are_not_proxied() {
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "kit", "version": "0.4.2"},
        "paths": {
            "/health": {"get": {"responses": {"200": {"description": "ok"}}}, "post": {"responses": {"200": {"description": "ok"}}}},
            "/ping": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/version": {"get": {"operationId": "kit_version", "responses": {"200": {"description": "ok"}}}},
            "/api/v1/kit/hello": {"get": {"responses": {"200": {"description": "ok"}}}}
        }
    });
    let (up, handle) = spawn_upstream(move |cfg| {
        let doc = doc.clone();
        cfg.route("/api/v1/openapi.json", web::get().to(move || {
            let doc = doc.clone();
            async move { HttpResponse::Ok().json(doc) }
        }))
        .route("/version", web::get().to(|| async { HttpResponse::Ok().json("0.4.2") }))
        .route("/health", web::post().to(|| async { HttpResponse::Ok().json("upstream health") }))
        .route("/api/v1/kit/hello", web::get().to(|| async { HttpResponse::Ok().json("hello") }));
    });
    let toml = format!("load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{up}\"]\ndiscovery_interval = 0\n");
    let server = start(config(&toml), vec![]).await;
    assert_eq!(get(&server.url("/version")).await.json(), json!(framex::VERSION));
    assert_eq!(get(&server.url("/api/v1/kit/hello")).await.json(), json!("hello"));
    assert_eq!(request("POST", &server.url("/health"), &[], vec![]).await.json(), json!("upstream health"));
    let doc = get(&server.url("/api/v1/openapi.json")).await.json();
    let text = doc.to_string();
    assert!(!text.contains("kit_version"), "the upstream's /version is not in the document");
    let listing = framex::cli::route_listing(&config(&toml)).await.unwrap().table;
    assert!(listing.contains("/api/v1/kit/hello"), "{listing}");
    for builtin in ["GET      /health", "GET      /ping", "GET      /version"] {
        assert!(!listing.contains(builtin), "{builtin} listed: {listing}");
    }
    assert!(listing.contains("POST     /health"), "{listing}");
    server.stop(true).await;
    handle.stop(false).await;
}

/// A GET's body reaches the upstream however it was declared, and a GET that declares
/// none (or a zero length, however written) sends none: the proxied path's shortcut
/// for requests that came with no payload must never drop a body, nor read one where
/// none was declared.
#[actix_rt::test]
async fn a_gets_body_goes_upstream_however_it_is_declared() {
    let (up, up_handle) = spawn_upstream(configure_upstream);
    let server = start(proxy_config(&up, ""), vec![]).await;
    let head = "GET /api/v1/items/7 HTTP/1.1\r\nHost: framex\r\nConnection: close\r\n";
    for (framing, body, sent) in [
        ("Content-Length: 5\r\n", "hello", "hello"),
        ("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n3\r\n!!!\r\n0\r\n\r\n", "hello!!!"),
        ("Content-Length: 0\r\n", "", ""),
        ("Content-Length: 00\r\n", "", ""),
        (&format!("Content-Length: {}\r\n", "0".repeat(1000)), "", ""),
        ("", "", ""),
    ] {
        let raw = raw_http(server.local_addr(), &format!("{head}{framing}\r\n{body}")).await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{framing:?}: {raw}");
        let seen: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(seen["body"], sent, "{framing:?}");
        assert_eq!(seen["body_len"], sent.len(), "{framing:?}");
    }
    // Lengths spelled so that two readers could disagree are refused outright.
    for framing in [
        "Content-Length: +0\r\n",
        "Content-Length: 0, 0\r\n",
        "Content-Length: 0x0\r\n",
        "Content-Length: 0\r\nContent-Length: 0\r\n",
        "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let raw = raw_http(server.local_addr(), &format!("{head}{framing}\r\n0\r\n\r\n")).await;
        assert!(raw.starts_with("HTTP/1.1 400"), "{framing:?}: {raw}");
    }
    server.stop(true).await;
    up_handle.stop(true).await;
}
