//! The proxy's control plane stops at once: re-discovery, health checks and the
//! requests they have in flight end with `stop`, not at their next wake-up, and
//! nothing is published after it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{config, get, raw_upstream, read_request, start};

/// What the upstream saw: document and health requests, and when the held document
/// request's connection was closed by the proxy.
#[derive(Default)]
struct Seen {
    documents: AtomicUsize,
    probes: AtomicUsize,
    held_closed: Mutex<Option<Instant>>,
}

/// A JSON response that closes its connection.
fn answer(body: &serde_json::Value) -> String {
    let body = body.to_string();
    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
}

/// The document listing `paths`, each a GET.
fn document(paths: &[&str]) -> serde_json::Value {
    let op = json!({"get": {"responses": {"200": {"description": "ok"}}}});
    let paths: serde_json::Map<_, _> = paths.iter().map(|p| ((*p).to_owned(), op.clone())).collect();
    json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths})
}

/// An upstream whose first document lists `/api/v1/a`; every later document request
/// is held for 2 s (noting when the proxy closes it), then answered with `/api/v1/b`
/// added; `/health` answers 200. Everything is counted.
async fn holding_upstream(seen: Arc<Seen>) -> String {
    raw_upstream(move |mut socket| {
        let seen = seen.clone();
        async move {
            let mut buf = Vec::new();
            let Some(head) = read_request(&mut socket, &mut buf).await else { return };
            let reply = if head.starts_with("get /api/v1/openapi.json") {
                if seen.documents.fetch_add(1, Ordering::SeqCst) == 0 {
                    answer(&document(&["/api/v1/a"]))
                } else {
                    let mut byte = [0u8; 1];
                    match tokio::time::timeout(Duration::from_secs(2), socket.read(&mut byte)).await {
                        Ok(Ok(0) | Err(_)) => {
                            *seen.held_closed.lock().unwrap() = Some(Instant::now());
                            return;
                        }
                        _ => answer(&document(&["/api/v1/a", "/api/v1/b"])),
                    }
                }
            } else if head.starts_with("get /health") {
                seen.probes.fetch_add(1, Ordering::SeqCst);
                answer(&json!("ok"))
            } else {
                answer(&json!("served"))
            };
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    })
    .await
}

/// With re-discovery every 0.2 s and health checks every 0.1 s, `stop` closes the
/// document request in flight at once (the upstream sees its connection go within a
/// second), no probe or discovery reaches the upstream afterwards, and what that
/// request would have answered is never published.
#[actix_rt::test]
async fn stop_ends_background_work_and_requests_in_flight_at_once() {
    let seen = Arc::new(Seen::default());
    let up = holding_upstream(seen.clone()).await;
    let cfg = config(&format!(
        "load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{up}\"]\n\
         discovery_interval = 0.2\nhealth_check_path = \"/health\"\nhealth_check_interval = 0.1\n"
    ));
    let server = start(cfg, vec![]).await;
    assert_eq!(get(&server.url("/api/v1/a")).await.status, 200);
    let began = Instant::now();
    while seen.documents.load(Ordering::SeqCst) < 2 || seen.probes.load(Ordering::SeqCst) < 2 {
        assert!(began.elapsed() < Duration::from_secs(5), "the background work never ran");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }

    let proxy = server.proxy().expect("proxy loaded");
    let stopped = Instant::now();
    proxy.stop().await;
    // A probe already connected may still land; nothing starts afterwards.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let (documents, probes) = (seen.documents.load(Ordering::SeqCst), seen.probes.load(Ordering::SeqCst));
    actix_rt::time::sleep(Duration::from_millis(2500)).await;

    let closed = seen.held_closed.lock().unwrap().expect("the held document request was closed, not answered");
    assert!(closed.duration_since(stopped) < Duration::from_secs(1), "closed {:?} after stop", closed.duration_since(stopped));
    assert_eq!(seen.documents.load(Ordering::SeqCst), documents, "no discovery after stop");
    assert_eq!(seen.probes.load(Ordering::SeqCst), probes, "no health check after stop");
    assert_eq!(get(&server.url("/api/v1/b")).await.status, 404, "nothing published after stop");
    assert_eq!(get(&server.url("/api/v1/a")).await.status, 200, "stop keeps the routes published");
    assert!(proxy.discover_all().await.iter().all(|(_, e)| e.to_string() == "the proxy is stopped"));
    server.stop(true).await;
}
