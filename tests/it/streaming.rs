//! Streaming end to end through the bridge, against a real FastAPI streaming upstream:
//! arrival as produced, identical bytes, cancellation, failures mid-stream, idle
//! deadlines, and streams consumed by plugins.

use std::time::Duration;

use framex::actors::sse::events;
use framex::actors::{Ctx, Error};
use framex::plugin::PluginBuilder;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::python::{legacy_app, Child};
use crate::common::{client, config, get, sse_events, start};

fn streaming_config(legacy: &str, timeout: f64) -> framex::config::Config {
    config(&format!(
        r#"
load_builtin_plugins = ["proxy", "echo"]
[server]
enable_proxy = true
[plugins.proxy]
proxy_urls = ["{legacy}"]
timeout = {timeout}
discovery_interval = 0
force_stream_apis = ["/api/v1/stream/sse"]
"#
    ))
}

async fn disconnects(legacy: &Child) -> u64 {
    get(&format!("{}/api/v1/counter", legacy.url)).await.json()["disconnects"]
        .as_u64()
        .unwrap()
}

/// Events reach the client as the upstream produces them: the first arrives while the
/// upstream is still producing (not buffered until the end).
#[actix_rt::test]
async fn sse_events_arrive_as_they_are_produced() {
    let legacy = legacy_app().await;
    let server = start(streaming_config(&legacy.url, 30.0), vec![]).await;
    let mut response = client()
        .get(server.url("/api/v1/stream/sse?n=4&delay_ms=400"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers().get("content-type").unwrap(), "text/event-stream; charset=utf-8");
    let first = response.next().await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.contains(r#"{"content": "0"}"#), "{first}");
    assert!(!first.contains("finish"), "the first read must not wait for the end: {first}");
    let mut rest = first;
    while let Some(chunk) = response.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let got = sse_events(&rest);
    let contents: Vec<&str> = got.iter().filter_map(|(_, d)| d["content"].as_str()).collect();
    assert_eq!(contents, ["0", "1", "2", "3"]);
    assert_eq!(got.last().unwrap().0, "finish");
    server.stop(true).await;
}

/// A large binary stream arrives byte for byte.
#[actix_rt::test]
async fn binary_streams_arrive_identical() {
    let legacy = legacy_app().await;
    let server = start(streaming_config(&legacy.url, 30.0), vec![]).await;
    let size = 24 * 1024 * 1024 + 17;
    let mut response = client()
        .get(server.url(&format!("/api/v1/stream/bytes?size={size}")))
        .send()
        .await
        .unwrap();
    let mut seen = 0usize;
    while let Some(chunk) = response.next().await {
        for b in chunk.unwrap() {
            assert_eq!(b as usize, seen % 251, "byte {seen}");
            seen += 1;
        }
    }
    assert_eq!(seen, size);
    server.stop(true).await;
}

/// When the client goes away mid-stream, the upstream sees its request dropped.
#[actix_rt::test]
async fn client_disconnect_cancels_the_upstream_request() {
    let legacy = legacy_app().await;
    let server = start(streaming_config(&legacy.url, 30.0), vec![]).await;
    let before = disconnects(&legacy).await;
    let mut response = client()
        .get(server.url("/api/v1/stream/bytes?size=10000000000"))
        .send()
        .await
        .unwrap();
    for _ in 0..4 {
        response.next().await.unwrap().unwrap();
    }
    drop(response);
    let mut waited = Duration::ZERO;
    while disconnects(&legacy).await == before {
        assert!(waited < Duration::from_secs(20), "the upstream never saw the disconnect");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    server.stop(true).await;
}

/// An upstream that dies after the first events, whether its body announced a length
/// or was chunked (cut off without the last chunk): the client gets the events, then
/// an `error` event with 502, then a clean end.
#[actix_rt::test]
async fn a_failure_mid_stream_becomes_an_error_event() {
    let legacy = legacy_app().await;
    let server = start(streaming_config(&legacy.url, 30.0), vec![]).await;
    for framing in ["declared_length=1000", "declared_length=0"] {
        let r = get(&server.url(&format!("/api/v1/stream/die?after=2&{framing}"))).await;
        assert_eq!(r.status, 200);
        let got = sse_events(&r.text());
        assert_eq!(got.len(), 3, "{framing}: {}", r.text());
        assert_eq!(got[0].1, json!({"content": "0"}));
        assert_eq!(got[2].0, "error", "{framing}: {}", r.text());
        assert_eq!(got[2].1["status"], 502);
        let message = got[2].1["message"].as_str().unwrap();
        assert!(message.starts_with("Bad Gateway"), "{message}");
        assert!(!message.contains(&legacy.url), "the upstream is not named: {message}");
    }
    server.stop(true).await;
}

/// `timeout` bounds the idle time between chunks, not the length of the stream: a
/// stream that goes quiet for longer gets an `error` event with 504, while a stream
/// longer than `timeout` but never idle that long completes.
#[actix_rt::test]
async fn timeout_applies_to_idle_time_between_chunks() {
    let legacy = legacy_app().await;
    let server = start(streaming_config(&legacy.url, 1.0), vec![]).await;
    let r = get(&server.url("/api/v1/stream/sse?n=3&delay_ms=2500")).await;
    let got = sse_events(&r.text());
    assert_eq!(got[0].1, json!({"content": "0"}), "{}", r.text());
    assert_eq!(got.last().unwrap().0, "error");
    assert_eq!(got.last().unwrap().1["status"], 504);

    let r = get(&server.url("/api/v1/stream/sse?n=6&delay_ms=300")).await;
    let got = sse_events(&r.text());
    assert_eq!(got.len(), 7, "1.8 s of stream under a 1 s idle timeout: {}", r.text());
    assert_eq!(got.last().unwrap().0, "finish");
    server.stop(true).await;
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// Consumes a proxied stream and a local one event by event.
async fn consume(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    let mut remote = Vec::new();
    let mut stream = Box::pin(events(
        cx.call_remote_stream("/api/v1/stream/sse", json!({"n": 3, "delay_ms": 10}))
            .await?,
    ));
    while let Some(event) = stream.next().await {
        remote.push(event?.event);
    }
    let mut local = String::new();
    let mut stream = Box::pin(events(
        cx.call_remote_stream("/api/v1/echo_stream", json!({"message": "hi"})).await?,
    ));
    while let Some(event) = stream.next().await {
        if let Some(c) = event?.data["content"].as_str() {
            local.push_str(c);
        }
    }
    Ok(json!({"remote": remote, "local": local}))
}

/// A plugin consumes a proxied SSE stream and a local one as parsed events.
#[actix_rt::test]
async fn plugins_consume_streams_as_events() {
    let legacy = legacy_app().await;
    let plugin = PluginBuilder::new("consumer")
        .requires(["/api/v1/stream/sse", "/api/v1/echo_stream"])
        .get("/api/v1/consumer/run", consume)
        .build().expect("plugin declarations are valid");
    let server = start(streaming_config(&legacy.url, 30.0), vec![plugin]).await;
    let r = get(&server.url("/api/v1/consumer/run")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["data"],
        json!({
            "remote": ["message_chunk", "message_chunk", "message_chunk", "finish"],
            "local": "This message is being streamed., hi"
        })
    );
    server.stop(true).await;
}

/// Chunk sizes on both sides of each hex digit count's boundary.
const CHUNK_SIZES: [usize; 9] = [1, 15, 16, 255, 256, 4095, 4096, 65_535, 65_537];

async fn sized_chunks(_: NoArgs, _: Ctx, out: framex::plugin::Emitter) -> Result<(), Error> {
    for (i, size) in CHUNK_SIZES.into_iter().enumerate() {
        out.bytes(bytes::Bytes::from(vec![b'a' + i as u8; size])).await?;
    }
    Ok(())
}

/// A streamed answer's chunks go out framed as HTTP/1.1 says: each chunk-size line in
/// hex (upper case, no leading zero), its data, CRLF; then the last chunk. Sizes on
/// both sides of each hex digit count's boundary.
#[actix_rt::test]
async fn streamed_chunks_are_framed_with_their_sizes() {
    let plugin = PluginBuilder::new("sized")
        .stream("/api/v1/sized", sized_chunks)
        .build()
        .expect("plugin declarations are valid");
    let server = start(config("load_builtin_plugins = []"), vec![plugin]).await;
    let raw = crate::common::raw_http(server.local_addr(), "GET /api/v1/sized HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let (head, mut body) = raw.split_once("\r\n\r\n").expect("a head");
    assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    let mut sizes = Vec::new();
    let mut data = String::new();
    loop {
        let (line, rest) = body.split_once("\r\n").expect("a chunk-size line");
        assert!(!line.is_empty() && (line == "0" || !line.starts_with('0')), "{line:?}");
        assert!(line.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)), "{line:?}");
        let size = usize::from_str_radix(line, 16).unwrap();
        if size == 0 {
            assert_eq!(rest, "\r\n", "the last chunk ends the answer");
            break;
        }
        sizes.push(size);
        data.push_str(&rest[..size]);
        assert_eq!(&rest[size..size + 2], "\r\n");
        body = &rest[size + 2..];
    }
    let sent: String = CHUNK_SIZES.iter().enumerate().map(|(i, &n)| String::from(char::from(b'a' + i as u8)).repeat(n)).collect();
    // The stream's `finish` event follows what the handler sent.
    let finish = "event: finish\ndata: {}\n\n";
    assert_eq!(sizes, [&CHUNK_SIZES[..], &[finish.len()]].concat(), "one chunk per piece sent");
    assert!(data == format!("{sent}{finish}"), "the data as sent ({} bytes, {} expected)", data.len(), sent.len() + finish.len());
    server.stop(true).await;
}

/// A streamed answer keeps its chunked framing when a request that would take over the
/// connection (`CONNECT`, a WebSocket upgrade) is pipelined behind it: the answer is
/// written as its own request asks, and ends with its last chunk before anything else.
#[actix_rt::test]
async fn a_stream_keeps_its_framing_before_a_pipelined_takeover() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(config("load_builtin_plugins = [\"echo\"]"), vec![]).await;
    let takeovers = [
        "CONNECT x:80 HTTP/1.1\r\nHost: x:80\r\n\r\n",
        "GET /api/v1/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ];
    for takeover in takeovers {
        let mut stream = actix_rt::net::TcpStream::connect(server.local_addr()).await.unwrap();
        let write = format!("GET /api/v1/echo_stream?message=ab HTTP/1.1\r\nHost: x\r\n\r\n{takeover}");
        stream.write_all(write.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut raw)).await;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, mut body) = raw.split_once("\r\n\r\n").expect("an answer");
        assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
        let mut events = String::new();
        loop {
            let (line, rest) = body.split_once("\r\n").unwrap_or_else(|| panic!("a chunk-size line: {raw}"));
            let size = usize::from_str_radix(line, 16).unwrap_or_else(|_| panic!("a chunk-size line, not {line:?}: {raw}"));
            if size == 0 {
                break;
            }
            events.push_str(&rest[..size]);
            body = &rest[size + 2..];
        }
        let got = sse_events(&events);
        assert_eq!(got.last().map(|(event, _)| event.as_str()), Some("finish"), "{events}");
    }
    server.stop(true).await;
}
