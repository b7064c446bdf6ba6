//! The TLS and HTTP/2 edge tried as an attacker would: silent TCP connections against
//! the TLS accept path, HTTP/2 stream and header limits (raw frames and a real h2
//! client), idle HTTP/2 connections, and `Expect: 100-continue` before `[auth]`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_rt::net::TcpStream;
use actix_web::{web, HttpResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{curl, have};
use crate::common::certs::TestCa;
use crate::common::{config, spawn_upstream, start};

/// The client connection preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// One HTTP/2 frame: type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A HPACK header block for `GET <path>` over http, every field a literal without
/// indexing (no Huffman), so nothing needs a decoder's state.
fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    for (index, value) in [(4u8, path), (1u8, "127.0.0.1")] {
        block.push(index); // literal without indexing, name from the static table
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// Frames read off a raw connection until `stop` says so or the connection ends
/// (bounded: 20 s without a frame ends it too). Returns (type, flags, stream, payload).
async fn read_frames(
    conn: &mut (impl tokio::io::AsyncRead + Unpin),
    mut stop: impl FnMut(&(u8, u8, u32, Vec<u8>)) -> bool,
) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        let mut head = [0u8; 9];
        let read = tokio::time::timeout(Duration::from_secs(20), conn.read_exact(&mut head)).await;
        if !matches!(read, Ok(Ok(_))) {
            return frames;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if conn.read_exact(&mut payload).await.is_err() {
            return frames;
        }
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let frame = (head[3], head[4], stream, payload);
        let done = stop(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// framex-rs with h2c on, the echo plugin, and a proxied slow route.
async fn h2c_server(upstream: &str) -> framex::Running {
    start(
        config(&format!(
            r#"
load_builtin_plugins = ["echo", "proxy"]
[server]
h2c = true
[auth]
rules = {{ "/api/v1/hidden" = ["let-me-in"] }}
[plugins.proxy]
proxy_urls = ["{upstream}"]
discovery_interval = 0
"#
        )),
        vec![],
    )
    .await
}

/// An upstream whose `GET /api/v1/slow` holds each request for 2 s, counting how many
/// it holds at once (the most is kept).
fn slow_upstream() -> (String, Arc<AtomicUsize>, actix_web::dev::ServerHandle) {
    let most = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let seen = most.clone();
    let (url, handle) = spawn_upstream(move |cfg| {
        let (most, now) = (most.clone(), now.clone());
        cfg.route(
            "/api/v1/slow",
            web::get().to(move || {
                let (most, now) = (most.clone(), now.clone());
                async move {
                    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(current, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    HttpResponse::Ok().json("slow")
                }
            }),
        )
        .route(
            "/api/v1/openapi.json",
            web::get().to(|| async {
                HttpResponse::Ok().json(serde_json::json!({
                    "openapi": "3.1.0", "info": {"title": "slow", "version": "1"},
                    "paths": {"/api/v1/slow": {"get": {"responses": {"200": {"description": "ok"}}}}}
                }))
            }),
        );
    });
    (url, seen, handle)
}

/// The server's SETTINGS advertise at most 128 concurrent streams and a 64 KiB header
/// list; a client opening 200 streams at once on one connection gets the ones past
/// 128 refused (RST_STREAM REFUSED_STREAM), and the upstream never holds more than 128
/// of its requests at once.
#[actix_rt::test]
async fn h2_streams_and_header_lists_are_limited() {
    let (upstream, most, _up) = slow_upstream();
    let server = h2c_server(&upstream).await;
    let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    let settings = read_frames(&mut conn, |f| f.0 == 0x4 && f.1 & 0x1 == 0).await;
    let (_, _, _, payload) = settings.last().expect("the server sends its SETTINGS");
    // A server applies its own settings once the client has acknowledged them.
    conn.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
    let advertised: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
        .collect();
    assert!(advertised.contains(&(0x3, 128)), "MAX_CONCURRENT_STREAMS: {advertised:?}");
    assert!(advertised.contains(&(0x6, 65_536)), "MAX_HEADER_LIST_SIZE: {advertised:?}");

    let (refused, answered) = burst(&mut conn, 200).await;
    assert_eq!((refused, answered), (72, 128), "streams refused and answered");
    assert!(most.load(Ordering::SeqCst) <= 128, "upstream held {}", most.load(Ordering::SeqCst));
}

/// Opens `n` streams at once on `conn` (a GET of the slow route each) and counts the
/// streams refused (RST_STREAM REFUSED_STREAM) and answered (a HEADERS frame).
async fn burst(conn: &mut TcpStream, n: u32) -> (u32, u32) {
    let mut burst = Vec::new();
    for i in 0..n {
        // END_STREAM | END_HEADERS
        burst.extend(frame(0x1, 0x5, 2 * i + 1, &get_block("/api/v1/slow")));
    }
    conn.write_all(&burst).await.unwrap();
    let (mut refused, mut answered) = (0, 0);
    read_frames(conn, |(kind, _, _, payload)| {
        match kind {
            0x3 if payload.as_slice() == [0, 0, 0, 7] => refused += 1,
            0x1 => answered += 1,
            _ => {}
        }
        refused + answered >= n
    })
    .await;
    (refused, answered)
}

/// Streams in progress count against the connection limit: with `max_connections = 3`
/// (one worker), a client that opens 10 streams on its one connection gets 3 served
/// and 7 refused, so one connection cannot hold more than the server would give
/// connections.
#[actix_rt::test]
async fn h2_streams_count_against_the_connection_limit() {
    let (upstream, most, _up) = slow_upstream();
    let mut config = config(&format!(
        "load_builtin_plugins = [\"proxy\"]\n[server]\nh2c = true\nmax_connections = 3\n\
         [plugins.proxy]\nproxy_urls = [\"{upstream}\"]\ndiscovery_interval = 0\n"
    ));
    config.server.workers = Some(1);
    let server = start(config, vec![]).await;
    let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    read_frames(&mut conn, |f| f.0 == 0x4 && f.1 & 0x1 == 0).await;
    conn.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
    assert_eq!(burst(&mut conn, 10).await, (7, 3), "(refused, answered)");
    assert!(most.load(Ordering::SeqCst) <= 3);
}

/// A header block that never ends (HEADERS without END_HEADERS, then CONTINUATION
/// frames) is not buffered past the header-list limit: the server sends GOAWAY and
/// closes the connection long before 16 MiB.
#[actix_rt::test]
async fn h2_continuation_flood_is_cut_off() {
    let (upstream, _, _up) = slow_upstream();
    let server = h2c_server(&upstream).await;
    let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    read_frames(&mut conn, |f| f.0 == 0x4 && f.1 & 0x1 == 0).await;
    conn.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
    conn.write_all(&frame(0x1, 0x0, 1, &get_block("/health"))).await.unwrap();
    // Each frame one whole literal header `a: x…` (value 16,378 bytes: HPACK integer
    // 127 + 16,251), so the block stays valid HPACK however long it grows.
    let mut chunk = vec![0x00, 0x01, b'a', 0x7f, 0xfb, 0x7e];
    chunk.resize(16_384, b'x');
    let mut sent = 0usize;
    // At most 4 MiB, a quarter of h2's old 16 MiB buffer.
    while sent < 4 << 20 {
        if conn.write_all(&frame(0x9, 0x0, 1, &chunk)).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let frames = read_frames(&mut conn, |f| f.0 == 0x7).await;
    let goaway = frames.iter().find(|f| f.0 == 0x7).map(|f| f.3[4..8].to_vec());
    // COMPRESSION_ERROR (header list over the limit) or ENHANCE_YOUR_CALM (too many
    // CONTINUATION frames); h2's old limit took 16 MiB and sent none.
    assert!(
        matches!(goaway.as_deref(), Some([0, 0, 0, 9] | [0, 0, 0, 11])),
        "GOAWAY {goaway:?} after {sent} bytes of CONTINUATION"
    );
}

/// HTTP/2 sends each cookie as a field of its own; the HTTP/1.1 upstream gets them as
/// the one `Cookie` line HTTP/1.1 takes, joined with "; " (RFC 9113 §8.2.3). The host
/// an HTTP/2 client names (`:authority`, no `Host`) reaches it as `X-Forwarded-Host`.
#[actix_rt::test]
async fn h2_cookies_and_authority_reach_an_http1_upstream() {
    let (upstream, _up) = spawn_upstream(|cfg: &mut web::ServiceConfig| {
        let doc = serde_json::json!({"openapi": "3.1.0", "info": {"title": "c", "version": "1"},
            "paths": {"/api/v1/cookies": {"get": {"responses": {"200": {"description": "ok"}}}}}});
        cfg.route("/api/v1/openapi.json", web::get().to(move || {
            let doc = doc.clone();
            async move { HttpResponse::Ok().json(doc) }
        }))
        .route("/api/v1/cookies", web::get().to(|req: actix_web::HttpRequest| async move {
            let lines: Vec<String> = req.headers().get_all("cookie").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
            let host = req.headers().get("x-forwarded-host").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            HttpResponse::Ok().json(serde_json::json!({"cookies": lines, "host": host}))
        }));
    });
    let server = h2c_server(&upstream).await;
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    actix_rt::spawn(async move {
        let _ = connection.await;
    });
    let request = http02::Request::builder()
        .uri(format!("http://{}/api/v1/cookies", server.local_addr()))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(())
        .unwrap();
    let mut ready = client.ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let seen: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(seen["cookies"], serde_json::json!(["a=1; b=2"]));
    assert_eq!(seen["host"], server.local_addr().to_string(), "{seen}");
}

/// HTTP/1.1's limits hold on HTTP/2: 120 header fields, or one 100 KiB header, get
/// 431 (or the stream refused) and never reach the route; 20 fields are fine.
#[actix_rt::test]
async fn h2_header_floods_get_431() {
    let (upstream, _, _up) = slow_upstream();
    let server = h2c_server(&upstream).await;
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    actix_rt::spawn(async move {
        let _ = connection.await;
    });
    let status = |fields: usize, size: usize| {
        let mut builder = http02::Request::builder().uri(format!("http://{}/health", server.local_addr()));
        for i in 0..fields {
            builder = builder.header(format!("x-field-{i}"), "v".repeat(size));
        }
        let request = builder.body(()).unwrap();
        let sent = client.clone().ready();
        async move {
            let mut ready = sent.await.unwrap();
            match ready.send_request(request, true) {
                Ok((response, _)) => match response.await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                },
                Err(_) => 0,
            }
        }
    };
    assert_eq!(status(20, 10).await, 200);
    assert_eq!(status(120, 1).await, 431);
    let big = status(1, 100 * 1024).await;
    assert!(big == 431 || big == 0, "a 100 KiB header got {big}");
    // The connection still serves after both refusals.
    assert_eq!(status(1, 10).await, 200);
}

/// An HTTP/2 connection that carries no request for a keep-alive period is closed with
/// GOAWAY, although the client answers every PING (nginx closes idle HTTP/2
/// connections too); one with a stream open stays.
#[actix_rt::test]
async fn idle_h2_connections_are_closed() {
    let (upstream, _, _up) = slow_upstream();
    let server = h2c_server(&upstream).await;
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let closed = actix_rt::spawn(connection);
    let mut ready = client.ready().await.unwrap();
    let request = http02::Request::get(format!("http://{}/health", server.local_addr()))
        .body(())
        .unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    // h2's client answers PINGs by itself while the connection future runs.
    let ended = tokio::time::timeout(Duration::from_secs(20), closed).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection was still open after 20 s");
}

/// A stream whose window the client keeps shut is reset after `server.send_timeout`,
/// even when the client nudges it every 300 ms with a SETTINGS frame that opens every
/// window by a byte and a second, in the same write, that shuts it again: h2 reports
/// that as a grant of 0 bytes, which is no progress (before: an empty DATA frame, and
/// the wait begun again, so the stream was held for as long as the client went on).
#[actix_rt::test]
async fn a_window_opened_and_shut_again_is_no_progress() {
    let server = start(config("[server]\nh2c = true\nsend_timeout = 2\n"), vec![]).await;
    let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
    let window = |size: u32| frame(0x4, 0, 0, &[&[0x00, 0x04][..], &size.to_be_bytes()].concat());
    let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    opening.extend(window(0));
    conn.write_all(&opening).await.unwrap();
    read_frames(&mut conn, |f| f.0 == 0x4 && f.1 & 0x1 == 0).await;
    conn.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
    // END_STREAM | END_HEADERS
    conn.write_all(&frame(0x1, 0x5, 1, &get_block("/health"))).await.unwrap();
    let started = std::time::Instant::now();
    let (mut reading, mut writing) = conn.into_split();
    let nudges = actix_rt::spawn(async move {
        for _ in 0..30 {
            actix_rt::time::sleep(Duration::from_millis(300)).await;
            if writing.write_all(&[window(1), window(0)].concat()).await.is_err() {
                return;
            }
        }
    });
    let frames = read_frames(&mut reading, |(kind, _, stream, _)| *stream == 1 && *kind == 0x3).await;
    nudges.abort();
    let on_stream: Vec<(u8, usize)> = frames.iter().filter(|f| f.2 == 1).map(|f| (f.0, f.3.len())).collect();
    // HEADERS, then RST_STREAM CANCEL (8), no DATA frame between.
    assert_eq!(on_stream, [(0x1, on_stream[0].1), (0x3, 4)], "{on_stream:?}");
    assert_eq!(frames.last().unwrap().3, [0, 0, 0, 8], "CANCEL");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(6), "{elapsed:?}");
}

/// `Expect: 100-continue` on a path under `[auth]` without the key gets 401 at once,
/// not an invitation to upload; with the key it gets `100 Continue`, unless its declared
/// body is over `server.max_body_size` (64 MiB): then 413 at once.
#[actix_rt::test]
async fn expect_continue_only_after_auth() {
    let (upstream, _, _up) = slow_upstream();
    let server = h2c_server(&upstream).await;
    let head = |key: &str, length: u64| {
        format!(
            "POST /api/v1/hidden HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\nExpect: 100-continue\r\n{key}\r\n"
        )
    };
    let key = "Authorization: let-me-in\r\n";
    for (head, want) in [
        (head("", 1_000_000), "HTTP/1.1 401"),
        (head(key, 1_000_000), "HTTP/1.1 100 Continue"),
        (head(key, 100 << 20), "HTTP/1.1 413"),
        (head("", 100 << 20), "HTTP/1.1 401"),
    ] {
        let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut first = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut first))
            .await
            .expect("an answer to the head alone")
            .unwrap();
        let text = String::from_utf8_lossy(&first[..n]);
        assert!(text.starts_with(want), "{head:?}: {text}");
    }
}

/// Hundreds of silent TCP connections on the HTTPS port (a handshake never started)
/// do not stop the listener: `/health` over HTTPS keeps answering within 1.5 s while
/// 700 of them are held, as behind nginx.
#[actix_rt::test]
async fn silent_connections_do_not_stall_https() {
    if !have("curl") {
        return;
    }
    let ca = TestCa::new();
    let server = start(
        config(&format!("load_builtin_plugins = [\"echo\"]\n[server]\n{}", ca.server_toml())),
        vec![],
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..700 {
        silent.push(TcpStream::connect(server.local_addr()).await.unwrap());
    }
    let cacert = ca.path("ca.pem");
    for _ in 0..5 {
        let probe = curl(&["--cacert", cacert.to_str().unwrap(), "--max-time", "1.5", &server.url("/health")]).await;
        assert!(probe.ok && probe.status == 200, "{probe:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(silent);
}

/// The patched actix-http's written fields (`ResponseHead::set_written_fields`, which
/// the proxy uses for answers passed on unread) reach an HTTP/1 client as lines and an
/// HTTP/2 client as fields (HTTP/1-only ones left out), beside the map's, with their
/// `Date` instead of the server's; the next response on the connection, from a pooled
/// head, carries none of them.
#[actix_rt::test]
async fn written_fields_reach_http1_and_http2_clients() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new()
            .route("/plain", web::get().to(|| async { HttpResponse::Ok().body("plain") }))
            .default_service(web::to(|| async {
                let mut response = HttpResponse::Ok().insert_header(("x-map", "m")).body("ok");
                let lines = bytes::Bytes::from_static(
                    b"x-a: 1\r\ndate: Tue, 01 Jan 2030 00:00:00 GMT\r\nx-a: 2\r\nkeep-alive: timeout=5\r\n",
                );
                // SAFETY: valid field lines; the map holds none of their names.
                unsafe { response.head_mut().set_written_fields(lines, true) };
                response
            }))
    })
    .workers(1)
    .disable_signals()
    .listen_auto_h2c(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);

    let raw = crate::common::raw_http(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (first, second) = raw.split_once("okHTTP/1.1").expect("two answers");
    let lines: Vec<&str> = first.lines().skip(1).take_while(|l| !l.is_empty()).collect();
    let count = |line: &str| lines.iter().filter(|l| **l == line).count();
    for line in ["x-map: m", "x-a: 1", "x-a: 2", "date: Tue, 01 Jan 2030 00:00:00 GMT", "content-length: 2"] {
        assert_eq!(count(line), 1, "{line} once: {first}");
    }
    assert_eq!(lines.iter().filter(|l| l.starts_with("date:")).count(), 1, "{first}");
    assert!(second.ends_with("plain"), "{second}");
    assert!(!second.contains("x-a") && !second.contains("2030"), "a pooled head carries nothing over: {second}");

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    actix_rt::spawn(async move {
        let _ = connection.await;
    });
    let request = http02::Request::builder().uri(format!("http://{addr}/")).body(()).unwrap();
    let (response, _) = client.ready().await.unwrap().send_request(request, true).unwrap();
    let response = response.await.unwrap();
    let headers = response.headers();
    let values = |name: &str| headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(values("x-a"), ["1", "2"]);
    assert_eq!(values("x-map"), ["m"]);
    assert_eq!(values("date"), ["Tue, 01 Jan 2030 00:00:00 GMT"]);
    assert!(values("keep-alive").is_empty(), "no HTTP/1-only field on HTTP/2");
    handle.stop(false).await;
}

/// Written lines are let go with their response: a head returned to actix-http's pool
/// keeps none of them (it held them until the pool handed it out again, so every
/// pooled head could hold an upstream answer's fields, up to 64 KiB each).
#[actix_rt::test]
async fn a_pooled_head_lets_its_written_fields_go() {
    /// Owns the lines; says when they are dropped.
    struct Owned(Arc<AtomicUsize>);
    impl AsRef<[u8]> for Owned {
        fn as_ref(&self) -> &[u8] {
            b"x-owned: 1\r\n"
        }
    }
    impl Drop for Owned {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let in_handler = dropped.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = crate::common::spawn_upstream_on(listener, move |app| {
        let dropped = in_handler.clone();
        app.default_service(web::to(move || {
            let lines = bytes::Bytes::from_owner(Owned(dropped.clone()));
            async move {
                let mut response = HttpResponse::Ok().body("ok");
                // SAFETY: a valid field line; the map holds no field of its name.
                unsafe { response.head_mut().set_written_fields(lines, false) };
                response
            }
        }));
    });
    let raw = crate::common::raw_http(addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(raw.contains("\r\nx-owned: 1\r\n") && raw.ends_with("ok"), "{raw}");
    // No other request follows (the next would take the same head from the pool).
    for _ in 0..40 {
        if dropped.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the lines outlived their response");
    handle.stop(false).await;
}
