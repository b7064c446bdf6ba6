//! WebSockets through framex-rs to a FastAPI upstream, with Python's `websockets`
//! client: messages both ways, a 1 MB message, subprotocol, close codes, an upstream
//! that dies, paths not listed, `[auth]` on the upgrade.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::python::{legacy_app, python, repo};
use crate::common::{config, start};

/// framex-rs proxying `/ws/*` of `legacy` as WebSockets, `/ws/private/*` behind a key.
fn ws_config(legacy: &str) -> framex::config::Config {
    config(&format!(
        r#"
load_builtin_plugins = ["proxy"]
[auth]
rules = {{ "/ws/private/*" = ["let-me-in"] }}
[plugins.proxy]
discovery_interval = 0
[plugins.proxy.proxy_urls."{legacy}"]
websocket = ["/ws/*"]
"#
    ))
}

/// A WebSocket handshake's own fields (a fixed key).
const HANDSHAKE: &str = "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// The upgrade request of `path`, with `extra` fields (each ending in CRLF) and `body`.
fn upgrade(path: &str, extra: &str, body: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: framex\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{HANDSHAKE}{extra}\r\n{body}")
}

/// framex-rs tunnelling `/ws/*` to `upstream`, with `extra` lines in `[plugins.proxy]`.
async fn ws_server(upstream: &str, extra: &str) -> framex::Running {
    let toml = format!(
        "load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\ndiscovery_interval = 0\n{extra}\n\
         [plugins.proxy.proxy_urls.\"{upstream}\"]\nwebsocket = [\"/ws/*\"]\n"
    );
    start(config(&toml), vec![]).await
}

/// What a raw upstream reads of a request: its head, byte by byte (nothing after it).
async fn read_head(socket: &mut actix_rt::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    head
}

/// Runs `tests/python/ws_client.py` with `args` and returns what it printed.
pub(crate) async fn ws_client(args: &[&str]) -> Value {
    let mut command = std::process::Command::new(python());
    command
        .arg(repo().join("tests/python/ws_client.py"))
        .args(args);
    let out = actix_rt::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "ws_client {args:?} printed no JSON ({e}): {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Text and binary messages both ways, a 1 MB message, the subprotocol the upstream
/// chose, and its close code 4001 reach the client through the tunnel; the same
/// client gets the same directly from the upstream.
#[actix_rt::test]
async fn websocket_messages_subprotocol_and_close_code_pass_through() {
    let legacy = legacy_app().await;
    let server = start(ws_config(&legacy.url), vec![]).await;
    let through = server.url("/ws/echo").replace("http://", "ws://");
    let direct = format!("{}/ws/echo", legacy.url.replace("http://", "ws://"));
    let expected = json!({
        "status": 101, "subprotocol": "chat.v2", "text": "hello", "binary_ok": true,
        "big_ok": true, "big_len": 1_000_000, "close_code": 4001, "close_reason": "",
    });
    assert_eq!(ws_client(&["echo", &direct]).await, expected, "directly");
    assert_eq!(
        ws_client(&["echo", &through]).await,
        expected,
        "through framex-rs"
    );
    server.stop(true).await;
}

/// An upstream process that dies mid-connection: the client's connection is closed
/// with code 1014 (bad gateway) rather than left open.
#[actix_rt::test]
async fn upstream_dying_closes_the_client_with_1014() {
    let legacy = legacy_app().await;
    let server = start(ws_config(&legacy.url), vec![]).await;
    let url = server.url("/ws/echo").replace("http://", "ws://");
    let seen = ws_client(&["die", &url]).await;
    assert_eq!(seen["status"], 101, "{seen}");
    assert_eq!(seen["close_code"], 1014, "{seen}");
    server.stop(true).await;
}

/// A tunnel on which nothing moves for `websocket_idle_timeout` (1 s here) is closed
/// with 1001 (going away); one message before does not keep it open for ever. One that
/// carries a message every 0.3 s stays open past the timeout for as long as they come,
/// three idle periods, and is closed with 1001 once they stop.
#[actix_rt::test]
async fn idle_tunnels_are_closed_with_1001_and_busy_ones_stay_open() {
    let legacy = legacy_app().await;
    let mut config = ws_config(&legacy.url);
    config.plugins.proxy.websocket_idle_timeout = 1.0;
    let server = start(config, vec![]).await;
    let url = server.url("/ws/echo").replace("http://", "ws://");
    let started = std::time::Instant::now();
    let (idle_args, busy_args) = (["idle", url.as_str()], ["chatty", url.as_str()]);
    let (idle, busy) = futures::join!(ws_client(&idle_args), ws_client(&busy_args));
    assert_eq!((idle["text"].clone(), idle["close_code"].clone()), (json!("one"), json!(1001)), "{idle}");
    assert_eq!((busy["echoed"].clone(), busy["close_code"].clone()), (json!(10), json!(1001)), "{busy}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "closed only after {:?}",
        started.elapsed()
    );
    server.stop(true).await;
}

/// SIGTERM: an open tunnel lives through the drain period (`shutdown_timeout`, 3 s
/// here) less a second, then the client gets Close 1001 and `framex run` exits 0.
#[actix_rt::test]
async fn sigterm_closes_tunnels_with_1001() {
    let legacy = legacy_app().await;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::python::free_port();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "load_builtin_plugins = [\"proxy\"]\n[server]\nport = {port}\nshutdown_timeout = 3\n\
             [plugins.proxy]\ndiscovery_interval = 0\n[plugins.proxy.proxy_urls.\"{}\"]\nwebsocket = [\"/ws/*\"]\n",
            legacy.url
        ),
    )
    .unwrap();
    let mut framex = std::process::Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["run", "-c", file.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::common::python::wait_ready(&format!("http://127.0.0.1:{port}/health"), std::time::Duration::from_secs(30)).await;
    let url = format!("ws://127.0.0.1:{port}/ws/echo");
    let client = actix_rt::spawn(async move { ws_client(&["idle", &url]).await });
    actix_rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    let signalled = std::time::Instant::now();
    // SAFETY: signals the child started above, by its pid.
    unsafe { libc::kill(framex.id() as i32, libc::SIGTERM) };
    let seen = client.await.unwrap();
    let closed_after = signalled.elapsed();
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = framex.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = framex.kill();
    assert_eq!((seen["text"].clone(), seen["close_code"].clone()), (json!("one"), json!(1001)), "{seen}");
    assert!(closed_after >= std::time::Duration::from_millis(1500), "closed before the drain period: {closed_after:?}");
    assert!(exited.is_some_and(|s| s.success()), "framex run did not exit cleanly: {exited:?}");
}

/// An upgrade to a path no `websocket` pattern lists gets 404; one to a protected
/// path gets 401 without the key and the tunnel with it.
#[actix_rt::test]
async fn unlisted_paths_get_404_and_protected_ones_need_the_key() {
    let legacy = legacy_app().await;
    let server = start(ws_config(&legacy.url), vec![]).await;
    let ws = |path: &str| server.url(path).replace("http://", "ws://");
    assert_eq!(
        ws_client(&["status", &ws("/api/v1/base/version")]).await["status"],
        404
    );
    assert_eq!(
        ws_client(&["status", &ws("/wsx/echo")]).await["status"],
        404
    );
    assert_eq!(
        ws_client(&["status", &ws("/ws/private/echo")]).await["status"],
        401
    );
    assert_eq!(
        ws_client(&["status", &ws("/ws/private/echo"), "wrong"]).await["status"],
        401
    );
    let open = ws_client(&["echo", &ws("/ws/private/echo"), "let-me-in"]).await;
    assert_eq!(
        (open["status"].clone(), open["big_ok"].clone()),
        (json!(101), json!(true)),
        "{open}"
    );
    // An upgrade the upstream itself refuses (no such WebSocket there) comes back as
    // the upstream's refusal, not as a tunnel.
    let refused = ws_client(&["status", &ws("/ws/nothing")]).await;
    assert_ne!(refused["status"], 101, "{refused}");
    server.stop(true).await;
}

/// An upgrade the request parse does not hand over as a tunnel (an `Upgrade` that is
/// not `websocket` alone, or a chunked body) is no upgrade either: never a `101`, so
/// the request after it is the plain request it is, not bytes a front proxy that saw
/// a `101` would pass through blind.
#[actix_rt::test]
async fn an_upgrade_the_parse_reads_otherwise_is_no_upgrade() {
    let legacy = legacy_app().await;
    let server = start(ws_config(&legacy.url), vec![]).await;
    let next = "GET /api/v1/base/version HTTP/1.1\r\nHost: internal\r\nConnection: close\r\n\r\n";
    for (upgrade, body) in [
        ("Upgrade: websocket, foo\r\n", ""),
        ("Upgrade: foo, websocket\r\n", ""),
        ("Upgrade: websocket\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
    ] {
        let request = format!("GET /ws/echo HTTP/1.1\r\nHost: framex\r\nConnection: Upgrade\r\n{upgrade}{HANDSHAKE}\r\n{body}{next}");
        let answer = crate::common::raw_http(server.local_addr(), &request).await;
        assert!(!answer.contains(" 101 "), "{upgrade:?}: {answer}");
        assert!(answer.starts_with("HTTP/1.1 4"), "{upgrade:?}: {answer}");
        assert!(answer.contains("1.2.3"), "the next request answered as itself: {answer}");
    }
    server.stop(true).await;
}

/// A handshake has no body: a client's `Content-Length` on it does not reach the
/// upstream (which would read that many tunnel bytes as the handshake's body).
#[actix_rt::test]
async fn a_handshake_goes_upstream_without_a_length() {
    use tokio::io::AsyncWriteExt;
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kept = heads.clone();
    let upstream = crate::common::raw_upstream(move |mut socket| {
        let kept = kept.clone();
        async move {
            let head = read_head(&mut socket).await;
            kept.lock().unwrap().push(String::from_utf8_lossy(&head).to_lowercase());
            let _ = socket.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno").await;
        }
    })
    .await;
    let server = start(ws_config(&upstream), vec![]).await;
    let answer = crate::common::raw_http(server.local_addr(), &upgrade("/ws/echo", "Content-Length: 5\r\n", "HELLO")).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let heads = heads.lock().unwrap().clone();
    let handshake: Vec<&String> = heads.iter().filter(|h| h.starts_with("get /ws/echo ")).collect();
    assert!(handshake.len() == 1 && handshake[0].contains("upgrade: websocket"), "{heads:?}");
    assert!(!handshake[0].contains("content-length"), "{heads:?}");
    server.stop(true).await;
}

/// An upstream that refuses the upgrade and stalls in its refusal's body holds the
/// client no longer than the proxy's `timeout`: a 504, as for no answer at all.
#[actix_rt::test]
async fn a_refusal_that_stalls_ends_at_the_timeout() {
    use tokio::io::AsyncWriteExt;
    let upstream = crate::common::raw_upstream(|mut socket| async move {
        if read_head(&mut socket).await.starts_with(b"GET /ws/") {
            let _ = socket.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nab").await;
            actix_rt::time::sleep(std::time::Duration::from_secs(8)).await;
        }
    })
    .await;
    let server = ws_server(&upstream, "timeout = 1").await;
    let started = std::time::Instant::now();
    let answer = crate::common::raw_http(server.local_addr(), &upgrade("/ws/echo", "", "")).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(6), "held past the timeout: {:?}", started.elapsed());
    server.stop(true).await;
}

/// An upstream that answers `101` and then reads nothing, while the client floods: when
/// the tunnel ends (idle: the client's bytes stopped moving), its upstream socket is
/// let go too, not held by a write the upstream never takes (the upstream's own writes
/// then fail).
#[actix_rt::test]
async fn a_tunnel_ended_lets_go_of_an_upstream_that_reads_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt;
    let closed = Arc::new(AtomicBool::new(false));
    let seen = closed.clone();
    let upstream = crate::common::raw_upstream(move |mut socket| {
        let seen = seen.clone();
        async move {
            if !read_head(&mut socket).await.starts_with(b"GET /ws/") {
                return;
            }
            let accept = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
            socket.write_all(accept).await.unwrap();
            // Reads nothing; a while after the tunnel's idle timeout, writes until a
            // write fails (the socket was let go) or 8 s pass.
            actix_rt::time::sleep(Duration::from_secs(3)).await;
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(8) {
                if socket.write_all(&[0x81, 0x01, b'x']).await.is_err() {
                    seen.store(true, Ordering::SeqCst);
                    return;
                }
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await;
    let server = ws_server(&upstream, "websocket_idle_timeout = 1").await;
    let mut client = actix_rt::net::TcpStream::connect(server.local_addr()).await.unwrap();
    client.write_all(upgrade("/ws/flood", "", "").as_bytes()).await.unwrap();
    // A masked 64 KiB binary frame, again and again, until the writes stall (at most 3 s).
    let mut frame = vec![0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
    frame.extend(std::iter::repeat_n(0u8, 65_536));
    let flood = async {
        while client.write_all(&frame).await.is_ok() {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), flood).await;
    drop(client);
    let started = std::time::Instant::now();
    while !closed.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(15) {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed.load(Ordering::SeqCst), "the upstream's socket was still held");
    server.stop(true).await;
}

/// An upgrade whose `Connection` fields also say `close` (in one field or two) is no
/// upgrade: it is answered as a plain request, never with `101`, and the connection
/// closes.
#[actix_rt::test]
async fn an_upgrade_that_also_asks_to_close_is_no_upgrade() {
    let legacy = legacy_app().await;
    let server = start(ws_config(&legacy.url), vec![]).await;
    for connection in ["Connection: close, Upgrade\r\n", "Connection: Upgrade\r\nConnection: close\r\n"] {
        let request = format!("GET /ws/echo HTTP/1.1\r\nHost: framex\r\n{connection}Upgrade: websocket\r\n{HANDSHAKE}\r\n");
        let answer = crate::common::raw_http(server.local_addr(), &request).await;
        assert!(answer.starts_with("HTTP/1.1 4"), "{connection:?}: {answer}");
    }
    let open = ws_client(&["status", &server.url("/ws/echo").replace("http://", "ws://")]).await;
    assert_eq!(open["status"], 101, "the same path upgrades when asked alone: {open}");
    server.stop(true).await;
}

/// An upstream that sends its first frame in the same write as its `101` (a greeting):
/// the frame reaches the client right behind the `101`, and the client's Close
/// reaches the upstream, whose own Close comes back before the tunnel ends.
#[actix_rt::test]
async fn a_frame_sent_with_the_101_reaches_the_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = crate::common::raw_upstream(|mut socket| async move {
        let mut buf = Vec::new();
        if crate::common::read_request(&mut socket, &mut buf).await.is_none() {
            return;
        }
        let greeting = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello";
        socket.write_all(greeting).await.unwrap();
        // The client's masked Close (2 + 4 + 2 bytes), then ours, and the end.
        let mut close = [0u8; 8];
        while buf.len() < close.len() {
            let n = socket.read(&mut close).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&close[..n]);
        }
        let code = [buf[2] ^ buf[6], buf[3] ^ buf[7]];
        socket.write_all(&[0x88, 2, code[0], code[1]]).await.unwrap();
    })
    .await;
    let server = start(ws_config(&upstream), vec![]).await;
    let mut client = actix_rt::net::TcpStream::connect(server.local_addr()).await.unwrap();
    client.write_all(upgrade("/ws/greet", "", "").as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_and_greeting = |seen: &[u8]| seen.ends_with(b"\r\n\r\n\x81\x05hello");
    while !head_and_greeting(&seen) {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), client.read(&mut chunk))
            .await
            .expect("the greeting never came")
            .unwrap();
        assert!(n > 0, "closed before the greeting: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&seen));
    // Close 1000, masked with 1, 2, 3, 4.
    client.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), client.read_to_end(&mut rest))
        .await
        .expect("the tunnel never ended")
        .unwrap();
    assert_eq!(rest, [0x88, 2, 0x03, 0xe8], "the upstream's Close, and nothing after it");
    server.stop(true).await;
}
