//! A hostile (or broken) upstream's answers, as a client and the pool see them
//! (RFC 9110 §7.6.1, RFC 9112 §6.3): no field with a byte a field value may not hold,
//! no hop-by-hop field nor one its `Connection` names, no ambiguous framing taken,
//! and no byte left over on a pooled connection answering the next request.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{config, raw_upstream, read_request, start};

/// The paths the hostile upstream publishes (under `/api/v1/`), answered by
/// [`answer_to`]; `plain` answers `plain`.
const PATHS: [&str; 16] = [
    "plain", "extra", "head-chunked", "named-type", "odd", "del", "fold", "two-lengths", "same-lengths", "chunked-and-length", "named", "named-length",
    "head-body", "early-hints", "switch", "tokens",
];

/// A `200` with `fields` and `body`, framed by its length.
fn ok(fields: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// What the hostile upstream answers to `method` (lower case) `path`.
fn answer_to(method: &str, path: &str) -> Vec<u8> {
    match path {
        "odd" => b"HTTP/1.1 200 OK\r\nX-Odd: a\tb \x80\xff c\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        "del" => b"HTTP/1.1 200 OK\r\nX-Odd: a\x7fb\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        "fold" => b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        "two-lengths" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\nok".to_vec(),
        "same-lengths" => b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        // Chunked wins; what the length would cover is a second, forged answer.
        "chunked-and-length" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n\
            2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
            .to_vec(),
        // A whole answer, and in the same write a second one nobody asked for.
        "extra" => [ok("", "ok"), ok("", "forged")].concat(),
        "named" => ok(
            "Connection: keep-alive, content-type, set-cookie, x-request-id\r\nContent-Type: text/html\r\n\
             Set-Cookie: s=1\r\nX-Request-Id: theirs\r\nX-Kept: 1\r\n",
            "ok",
        ),
        "named-type" => ok("Connection: content-type\r\nContent-Type: text/event-stream\r\n", "ok"),
        "named-length" => ok("Connection: content-length\r\nContent-Type: text/plain\r\n", "hello"),
        // A HEAD answer with a body, itself an answer, that must answer no request.
        "head-body" if method == "head" => {
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged".to_vec()
        }
        // The HEAD answer of a GET framed chunked: no length to tell.
        "head-chunked" if method == "head" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        "early-hints" => [&b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"[..], &ok("X-Final: 1\r\n", "ok")].concat(),
        "switch" => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n".to_vec(),
        "tokens" => {
            let tokens: Vec<String> = (0..6000).map(|i| format!("x-{i}")).collect();
            ok(&format!("Connection: {}\r\nX-5999: gone\r\nX-Kept: 1\r\n", tokens.join(",")), "ok")
        }
        _ => ok("", "plain"),
    }
}

/// The hostile upstream: its document, then every request on a connection answered
/// by [`answer_to`] (keep-alive, so the pool reuses its connections).
async fn hostile_upstream() -> String {
    raw_upstream(|mut socket| async move {
        let mut buf = Vec::new();
        while let Some(head) = read_request(&mut socket, &mut buf).await {
            let mut words = head.split(' ');
            let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let answer = if target == "/api/v1/openapi.json" {
                let get = json!({"get": {"responses": {"200": {"description": "ok"}}}});
                let paths: serde_json::Map<_, _> = PATHS.iter().map(|p| (format!("/api/v1/{p}"), get.clone())).collect();
                let doc = json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths}).to_string();
                ok("Content-Type: application/json\r\n", &doc)
            } else {
                answer_to(method, target.trim_start_matches("/api/v1/"))
            };
            if socket.write_all(&answer).await.is_err() {
                return;
            }
        }
    })
    .await
}

fn proxy_config(upstream: &str) -> framex::config::Config {
    config(&format!(
        "load_builtin_plugins = [\"proxy\"]\n[server]\nenable_proxy = true\n[plugins.proxy]\ntimeout = 2\n\
         discovery_interval = 0\n[plugins.proxy.proxy_urls.\"{upstream}\"]\n"
    ))
}

/// All a connection to `addr` that sent `request` got back.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> Vec<u8> {
    let mut stream = actix_rt::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out)).await.expect("closed").unwrap();
    out
}

/// `method /api/v1/path` through the gateway on a connection of its own: the head
/// (lower case) and the body (de-chunked).
async fn through(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, Vec<u8>) {
    let raw = exchange(addr, &format!("{method} /api/v1/{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = raw[end + 4..].to_vec();
    let body = if head.contains("transfer-encoding: chunked") { dechunk(&body) } else { body };
    (head, body)
}

/// A whole chunked body's content.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = raw.windows(2).position(|w| w == b"\r\n").expect("a chunk-size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line + 2..line + 2 + size]);
        raw = &raw[line + 4 + size..];
    }
}

/// Field values reach the client byte for byte (tab and obs-text included); a value
/// with a control byte, a folded line, lengths that disagree and an unasked switch
/// are a 502; lengths that agree are one length.
#[actix_rt::test]
async fn an_upstreams_field_bytes_and_lengths_are_taken_only_when_unambiguous() {
    let server = start(proxy_config(&hostile_upstream().await), vec![]).await;
    let addr = server.local_addr();
    let raw = exchange(addr, "GET /api/v1/odd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let sent = b"x-odd: a\tb \x80\xff c\r\n";
    assert!(raw.windows(sent.len()).any(|w| w == sent), "{:?}", String::from_utf8_lossy(&raw));
    for bad in ["del", "fold", "two-lengths", "switch"] {
        let (head, _) = through(addr, "GET", bad).await;
        assert!(head.starts_with("http/1.1 502"), "{bad}: {head}");
    }
    let (head, body) = through(addr, "GET", "same-lengths").await;
    assert!(head.starts_with("http/1.1 200") && body == b"ok", "{head}");
    server.stop(true).await;
}

/// What follows an answer on its connection (an answer nobody asked for, past a body
/// taken with its head; past a chunked body that also claimed a length; a HEAD
/// answer's body) answers no later request: the connection is not pooled again.
#[actix_rt::test]
async fn bytes_past_an_answer_never_answer_the_next_request() {
    let server = start(proxy_config(&hostile_upstream().await), vec![]).await;
    let addr = server.local_addr();
    assert_eq!(through(addr, "GET", "extra").await.1, b"ok");
    for _ in 0..3 {
        assert_eq!(through(addr, "GET", "plain").await.1, b"plain", "an answer nobody asked for answered a request");
    }
    let (head, body) = through(addr, "GET", "chunked-and-length").await;
    assert!(head.starts_with("http/1.1 200") && !head.contains("content-length: 7"), "{head}");
    assert_eq!(body, b"ok");
    for _ in 0..3 {
        assert_eq!(through(addr, "GET", "plain").await.1, b"plain", "a leftover answered another request");
    }
    let (head, body) = through(addr, "HEAD", "head-body").await;
    assert!(head.starts_with("http/1.1 200") && head.contains("content-length: 6") && body.is_empty(), "{head}");
    for _ in 0..3 {
        assert_eq!(through(addr, "GET", "plain").await.1, b"plain", "a HEAD answer's body answered another request");
    }
    server.stop(true).await;
}

/// Fields the upstream's `Connection` names go (end-to-end ones too, and however many
/// it names, in bounded time); a `Content-Length` it names still frames the body, a
/// `Content-Type` it names makes no event stream of the answer; an interim 1xx answer
/// and its fields stay with the connection.
#[actix_rt::test]
async fn fields_an_upstreams_connection_names_stay_with_it() {
    let server = start(proxy_config(&hostile_upstream().await), vec![]).await;
    let addr = server.local_addr();
    let (head, body) = through(addr, "GET", "named").await;
    assert_eq!(body, b"ok");
    for gone in ["content-type", "set-cookie", "x-request-id: theirs"] {
        assert!(!head.contains(gone), "{gone}: {head}");
    }
    assert!(head.contains("x-kept: 1"), "{head}");
    let (head, body) = through(addr, "GET", "named-type").await;
    assert!(!head.contains("x-accel-buffering") && head.contains("content-length: 2") && body == b"ok", "{head}");
    let (head, body) = through(addr, "GET", "named-length").await;
    assert!(head.contains("content-length: 5") && body == b"hello", "{head}");
    let (head, body) = through(addr, "GET", "early-hints").await;
    assert!(head.starts_with("http/1.1 200") && head.contains("x-final: 1") && !head.contains("link"), "{head}");
    assert_eq!(body, b"ok");
    let started = Instant::now();
    let (head, body) = through(addr, "GET", "tokens").await;
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(head.contains("x-kept: 1") && !head.contains("x-5999") && body == b"ok", "{head}");
    server.stop(true).await;
}

/// A HEAD answer claims the length the GET would have only when the upstream told
/// it: a GET framed chunked has none, and the answer says none (not
/// `Content-Length: 0`, which tells a client or a cache that the GET is empty); the
/// client's connection carries its next request.
#[actix_rt::test]
async fn a_head_answer_claims_no_length_the_upstream_did_not_give() {
    let server = start(proxy_config(&hostile_upstream().await), vec![]).await;
    let addr = server.local_addr();
    let raw = exchange(
        addr,
        "HEAD /api/v1/head-chunked HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let raw = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("http/1.1 200") && !head.contains("content-length"), "{head}");
    assert!(rest.starts_with("http/1.1 200") && rest.ends_with("\r\n\r\nplain"), "{rest}");
    server.stop(true).await;
}
