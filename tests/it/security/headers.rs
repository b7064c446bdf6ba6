//! Headers from outside are claims (attack 11), and what held must keep holding:
//! forwarding headers replaced unless a trusted proxy sent them, request ids kept only
//! when harmless, everything logged from a request or an upstream escaped; request
//! smuggling, header floods, other hosts, hop-by-hop headers and our keys refused or
//! kept back.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{config, python, raw_http, spawn_upstream, start, FramexProcess};

/// An upstream whose document publishes `/api/v1/headers` (and `/api/v1/secret`) and
/// which answers with every header line it received, in order.
fn mirror_upstream(extra_path: &'static str) -> (String, actix_web::dev::ServerHandle) {
    spawn_upstream(move |cfg: &mut web::ServiceConfig| {
        let mut paths = serde_json::Map::new();
        for path in ["/api/v1/headers", "/api/v1/secret", extra_path] {
            paths.insert(path.to_owned(), json!({"get": {"responses": {"200": {"description": "ok"}}}}));
        }
        let doc = json!({"openapi": "3.1.0", "info": {"title": "mirror", "version": "1"}, "paths": paths});
        cfg.route("/api/v1/openapi.json", web::get().to(move || {
            let doc = doc.clone();
            async move { HttpResponse::Ok().json(doc) }
        }))
        .default_service(web::to(|req: HttpRequest| async move {
            let lines: Vec<Value> = req
                .headers()
                .iter()
                .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
                .collect();
            HttpResponse::Ok().json(json!({"path": req.path(), "headers": lines}))
        }));
    })
}

/// The values of header `name` the mirror saw, in order.
fn seen(reply: &str, name: &str) -> Vec<String> {
    let body: Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {reply}"));
    body["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

fn proxy_toml(upstream: &str, extra_server: &str) -> String {
    format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
{extra_server}
[auth]
rules = {{ "/api/v1/secret" = ["client-key-123"] }}
[plugins.proxy]
timeout = 10
discovery_interval = 0
proxy_urls = ["{upstream}"]
"#
    )
}

/// Attack 11, against the FastAPI app: a client's forged `X-Forwarded-Proto`,
/// `-Host`, `-For`, `Forwarded` and `X-Real-IP` went upstream unchanged. From a peer
/// that is not a trusted proxy they are now replaced by what framex-rs saw.
#[actix_rt::test]
async fn forged_forwarding_headers_from_an_untrusted_client_are_replaced() {
    let app = python::legacy_app().await;
    let server = start(config(&proxy_toml(&app.url, "")), vec![]).await;
    let reply = raw_http(
        server.local_addr(),
        "GET /api/v1/headers HTTP/1.1\r\nHost: front.example\r\nX-Forwarded-For: 6.6.6.6\r\n\
         X-Forwarded-Proto: https\r\nX-Forwarded-Host: bank.example\r\nForwarded: for=6.6.6.6;proto=https\r\n\
         X-Real-IP: 6.6.6.6\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let body: Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let h = &body["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"], "http", "{h}");
    assert_eq!(h["x-forwarded-host"], "front.example", "{h}");
    assert_eq!(h["x-real-ip"], "127.0.0.1", "{h}");
    assert!(h.get("forwarded").is_none(), "{h}");
    server.stop(true).await;
}

/// Every forwarding claim of an untrusted client is dropped, not only the five we set
/// again: `X-Forwarded-Port`, `-Prefix`, `-Ssl`, `-Server` (read by frameworks to build
/// URLs and decide on https) and `_` spellings of them; a trusted proxy's reach the
/// upstream.
#[actix_rt::test]
async fn other_forwarding_claims_from_an_untrusted_client_are_dropped() {
    let request = "GET /api/v1/headers HTTP/1.1\r\nHost: front.example\r\nX-Forwarded-Port: 443\r\n\
         X-Forwarded-Prefix: /admin\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Server: bank.example\r\n\
         X_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nConnection: close\r\n\r\n";
    let (up, handle) = mirror_upstream("/api/v1/other");
    let server = start(config(&proxy_toml(&up, "")), vec![]).await;
    let reply = raw_http(server.local_addr(), request).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    for name in ["x-forwarded-port", "x-forwarded-prefix", "x-forwarded-ssl", "x-forwarded-server", "x_forwarded_for", "x_real_ip"] {
        assert!(seen(&reply, name).is_empty(), "{name} reached the upstream: {reply}");
    }
    assert_eq!(seen(&reply, "x-forwarded-for"), ["127.0.0.1"]);
    server.stop(true).await;

    let server = start(config(&proxy_toml(&up, "trusted_proxies = [\"127.0.0.1/32\"]")), vec![]).await;
    let reply = raw_http(server.local_addr(), request).await;
    assert_eq!(seen(&reply, "x-forwarded-port"), ["443"]);
    assert_eq!(seen(&reply, "x-forwarded-prefix"), ["/admin"]);
    server.stop(true).await;
    handle.stop(true).await;
}

/// From a trusted proxy (`trusted_proxies = ["127.0.0.1/32"]`) the forwarding headers
/// are kept, and two `X-Forwarded-For` lines (the first was lost) both reach the
/// upstream in order, followed by the proxy's address.
#[actix_rt::test]
async fn a_trusted_proxys_forwarding_headers_are_kept_and_extended() {
    let (up, handle) = mirror_upstream("/api/v1/other");
    let server = start(config(&proxy_toml(&up, "trusted_proxies = [\"127.0.0.1/32\"]")), vec![]).await;
    let reply = raw_http(
        server.local_addr(),
        "GET /api/v1/headers HTTP/1.1\r\nHost: front.example\r\nX-Forwarded-For: 1.1.1.1\r\n\
         X-Forwarded-For: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\n\
         Forwarded: for=1.1.1.1;proto=https\r\nX-Real-IP: 1.1.1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(seen(&reply, "x-forwarded-for"), ["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]);
    assert_eq!(seen(&reply, "x-forwarded-proto"), ["https"]);
    assert_eq!(seen(&reply, "x-forwarded-host"), ["public.example"]);
    assert_eq!(seen(&reply, "forwarded"), ["for=1.1.1.1;proto=https"]);
    assert_eq!(seen(&reply, "x-real-ip"), ["1.1.1.1"]);

    // The same proxy without headers of its own: ours are set.
    let reply = raw_http(server.local_addr(), "GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await;
    assert_eq!(seen(&reply, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&reply, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&reply, "x-real-ip"), ["127.0.0.1"]);
    server.stop(true).await;
    handle.stop(true).await;
}

/// Attack 11: a request id is a claim (DESIGN §9): from a client that is no trusted
/// proxy it is replaced by ours, and a `traceparent` starts no trace of its choosing;
/// a trusted proxy's is kept only if it is 1–128 visible ASCII characters (too long,
/// with a space, a tab or non-ASCII bytes it is replaced).
#[actix_rt::test]
async fn request_ids_are_kept_only_when_harmless() {
    let (up, handle) = mirror_upstream("/api/v1/other");
    let untrusted = start(config(&proxy_toml(&up, "")), vec![]).await;
    let reply = raw_http(
        untrusted.local_addr(),
        "GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nX-Request-Id: chosen-id\r\n\
         traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nConnection: close\r\n\r\n",
    )
    .await;
    let id = seen(&reply, "x-request-id").pop().expect("a request id goes upstream");
    assert_ne!(id, "chosen-id", "{reply}");
    let parent = seen(&reply, "traceparent").pop().expect("a trace goes upstream");
    assert!(!parent.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "the client chose the trace: {reply}");
    untrusted.stop(true).await;

    let server = start(config(&proxy_toml(&up, "trusted_proxies = [\"127.0.0.1/32\"]")), vec![]).await;
    let send = |id: Vec<u8>| {
        let addr = server.local_addr();
        async move {
            let mut request = b"GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Request-Id: ".to_vec();
            request.extend_from_slice(&id);
            request.extend_from_slice(b"\r\n\r\n");
            let mut stream = actix_rt::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(&request).await.unwrap();
            let mut out = Vec::new();
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out)).await.unwrap().unwrap();
            let reply = String::from_utf8_lossy(&out).into_owned();
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            seen(&reply, "x-request-id").pop().expect("a request id goes upstream")
        }
    };
    let good = "req-42_abc.DEF~!".to_owned();
    assert_eq!(send(good.clone().into_bytes()).await, good);
    let longest = "a".repeat(128);
    assert_eq!(send(longest.clone().into_bytes()).await, longest);
    for bad in [
        "a".repeat(129).into_bytes(),
        b"two words".to_vec(),
        b"tab\there".to_vec(),
        "caf\u{e9}".as_bytes().to_vec(),
        b"x\" 200 0.1ms forged".to_vec(),
    ] {
        let replaced = send(bad.clone()).await;
        assert_ne!(replaced.as_bytes(), bad.as_slice());
        assert!(
            (1..=128).contains(&replaced.len()) && replaced.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "{replaced:?}"
        );
    }
    server.stop(true).await;
    handle.stop(true).await;
}

/// Attack 11: upstream path names with CR/LF and a client's hostile path were logged
/// as they were (forged log lines), and so was a client's request id. Run as an
/// operator would (the `framex` binary, `RUST_LOG=info`, access log on): the path
/// names appear escaped, a non-ASCII request id is replaced (never logged), the
/// client's path stays on its one line, and the client's key never appears at all.
/// (actix-web itself refuses raw quotes and non-ASCII bytes in a request target.)
#[actix_rt::test]
async fn hostile_text_is_escaped_in_the_log() {
    let (up, handle) = mirror_upstream("/api/v1/evil\r\n2026-01-01T00:00:00Z ERROR forged line");
    let dir = tempfile::tempdir().unwrap();
    let port = python::free_port();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, proxy_toml(&up, &format!("port = {port}\naccess_log = true"))).unwrap();
    let framex = FramexProcess::spawn(&file, "info").await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut stream = actix_rt::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /api/v1/x%0d%0aforged HTTP/1.1\r\nHost: h\r\nX-Request-Id: id\xc3\xa9\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out)).await.unwrap().unwrap();
    let reply = raw_http(
        addr,
        "GET /api/v1/secret HTTP/1.1\r\nHost: h\r\nAuthorization: client-key-123\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    framex.until("/api/v1/secret").await;
    let log = framex.log();
    drop(framex);
    handle.stop(true).await;
    assert!(log.contains("/api/v1/evil\\r\\n2026-01-01T00:00:00Z ERROR forged line"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR forged")), "{log}");
    // Refused by the canonical path (control characters), and logged as sent.
    assert!(log.contains("\"GET /api/v1/x%0d%0aforged\" 400"), "{log}");
    assert!(!log.contains("id\u{e9}") && !log.contains('\u{e9}'), "{log}");
    assert!(!log.contains("client-key-123"), "keys are never logged: {log}");
}

/// What held must keep holding: request smuggling (CL+TE, duplicate or odd
/// `Transfer-Encoding`, obs-fold, bad chunks) is 400, and a header flood 431, before
/// anything reaches the upstream.
#[actix_rt::test]
async fn smuggling_and_header_floods_are_refused() {
    let (up, handle) = mirror_upstream("/api/v1/other");
    let server = start(config(&proxy_toml(&up, "")), vec![]).await;
    let head = "GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nConnection: close\r\n";
    for (what, extra) in [
        ("CL+TE", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("duplicate TE", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("odd TE", "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold", "X-Folded: a\r\n b\r\n\r\n"),
        ("two lengths", "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
    ] {
        let reply = raw_http(server.local_addr(), &format!("{head}{extra}")).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{what}: {reply}");
    }
    // A bad chunk on a streamed body: never served (today the connection is closed
    // without an answer when the body was already on its way upstream).
    let reply = raw_http(
        server.local_addr(),
        &format!("{head}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    )
    .await;
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 400"), "bad chunk: {reply}");
    let flood: String = (0..200).map(|i| format!("X-Flood-{i}: v\r\n")).collect();
    let reply = raw_http(server.local_addr(), &format!("{head}{flood}\r\n")).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    server.stop(true).await;
    handle.stop(true).await;
}

/// What held: no request form reaches a host other than the configured upstream. An
/// absolute-form target naming another host, `CONNECT`, or an odd `Host` is either
/// refused or served by the configured upstream with our own path.
#[actix_rt::test]
async fn requests_reach_only_the_configured_upstream() {
    let elsewhere = actix_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = elsewhere.local_addr().unwrap();
    let (up, handle) = mirror_upstream("/api/v1/other");
    let server = start(config(&proxy_toml(&up, "")), vec![]).await;
    for request in [
        format!("GET http://{other}/api/v1/headers HTTP/1.1\r\nHost: {other}\r\nConnection: close\r\n\r\n"),
        format!("CONNECT {other} HTTP/1.1\r\nHost: {other}\r\nConnection: close\r\n\r\n"),
        format!("GET /api/v1/headers HTTP/1.1\r\nHost: {other}\r\nConnection: close\r\n\r\n"),
        "GET /api/v1/headers HTTP/1.1\r\nHost: a@evil.example:1\r\nConnection: close\r\n\r\n".to_owned(),
    ] {
        let reply = raw_http(server.local_addr(), &request).await;
        let status: u16 = reply[9..12].parse().unwrap();
        assert!(status == 200 || (400..500).contains(&status), "{request}: {reply}");
        if status == 200 {
            assert!(reply.contains("\"path\":\"/api/v1/headers\""), "served by our upstream: {reply}");
        }
    }
    let nobody = tokio::time::timeout(Duration::from_millis(500), elsewhere.accept()).await;
    assert!(nobody.is_err(), "a request reached {other}");
    server.stop(true).await;
    handle.stop(true).await;
}

/// What held: hop-by-hop headers (and those `Connection` names) are stripped, and a
/// key that was for us (`[auth]`) is never forwarded; a wrong key of the same length
/// is refused.
#[actix_rt::test]
async fn hop_by_hop_headers_and_our_keys_stay_here() {
    let (up, handle) = mirror_upstream("/api/v1/other");
    let server = start(config(&proxy_toml(&up, "")), vec![]).await;
    let reply = raw_http(
        server.local_addr(),
        "GET /api/v1/secret HTTP/1.1\r\nHost: h\r\nAuthorization: client-key-123\r\nConnection: close, x-hop\r\n\
         X-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
         X-Kept: yes\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    for name in ["authorization", "x-hop", "keep-alive", "proxy-authorization", "te", "upgrade", "connection"] {
        assert!(seen(&reply, name).iter().all(|v| !v.contains("client-key-123")), "{name}: {reply}");
        if name != "connection" {
            assert!(seen(&reply, name).is_empty(), "{name} forwarded: {reply}");
        }
    }
    assert_eq!(seen(&reply, "x-kept"), ["yes"]);
    assert!(!reply.contains("client-key-123"), "{reply}");
    for wrong in ["client-key-124", "", "client-key-12", "Client-key-123"] {
        let reply = raw_http(
            server.local_addr(),
            &format!("GET /api/v1/secret HTTP/1.1\r\nHost: h\r\nAuthorization: {wrong}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 401"), "{wrong}: {reply}");
        assert!(!reply.contains("client-key-123"), "{reply}");
    }
    server.stop(true).await;
    handle.stop(true).await;
}

/// A field the transport writes or never forwards, spelled with `_` for `-` (which
/// CGI and WSGI servers read as the same field), stays here; other `_` names go on.
#[actix_rt::test]
async fn underscore_spellings_of_our_fields_stay_here() {
    let (up, handle) = mirror_upstream("/api/v1/other");
    let server = start(config(&proxy_toml(&up, "")), vec![]).await;
    let reply = raw_http(
        server.local_addr(),
        "GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent_Length: 0\r\n\
         Proxy_Authorization: Basic eDp5\r\nX_Request_Id: forged\r\nX_Framex_Hops: 0\r\nX_Other_Name: kept\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    for name in ["transfer_encoding", "content_length", "proxy_authorization", "x_request_id", "x_framex_hops"] {
        assert!(seen(&reply, name).is_empty(), "{name} went upstream: {reply}");
    }
    assert_eq!(seen(&reply, "x_other_name"), ["kept"]);
    server.stop(true).await;
    handle.stop(true).await;
}

/// With the docs login on, its cookies (the session, a login's state) are credentials
/// for us: taken out of the `Cookie` lines that go upstream, the other cookies kept.
#[actix_rt::test]
async fn the_docs_session_cookie_stays_here() {
    let (up, handle) = mirror_upstream("/api/v1/other");
    let login = crate::docs_login::oauth_toml("http://127.0.0.1:1", "http://127.0.0.1:1", "");
    let server = start(config(&format!("{}{login}", proxy_toml(&up, ""))), vec![]).await;
    let reply = raw_http(
        server.local_addr(),
        "GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nCookie: theme=dark; framex_token=eyJ.session.sig\r\n\
         Cookie: framex_oauth_state=s1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(seen(&reply, "cookie"), ["theme=dark"], "{reply}");
    server.stop(true).await;
    handle.stop(true).await;
}

/// Our key sent on a path no `[auth]` rule covers (clients that send it on every call)
/// stays here too, while another `Authorization` goes on; every `Connection` line
/// names its fields, one that is not text included.
#[actix_rt::test]
async fn our_key_on_an_open_path_and_every_connection_line_stay_here() {
    let (up, handle) = mirror_upstream("/api/v1/other");
    let server = start(config(&proxy_toml(&up, "")), vec![]).await;
    let reply = raw_http(
        server.local_addr(),
        "GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nAuthorization: client-key-123\r\nConnection: keep-alive\r\n\
         Connection: X-Secret, \u{ff}\r\nX-Secret: s1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(seen(&reply, "authorization").is_empty() && !reply.contains("client-key-123"), "our key went upstream: {reply}");
    assert!(seen(&reply, "x-secret").is_empty(), "a field Connection names went upstream: {reply}");
    for almost in ["Client-Key-123", " client-key-123 ", "CLIENT-KEY-123\t"] {
        let reply = raw_http(
            server.local_addr(),
            &format!("GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nAuthorization: {almost}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(seen(&reply, "authorization").is_empty(), "our key spelled {almost:?} went upstream: {reply}");
    }
    let reply = raw_http(
        server.local_addr(),
        "GET /api/v1/headers HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer theirs\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(seen(&reply, "authorization"), ["Bearer theirs"], "a key not ours is the upstream's: {reply}");
    server.stop(true).await;
    handle.stop(true).await;
}
