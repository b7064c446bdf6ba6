//! A host name in `proxy_urls` is every address it resolves to: a real DNS server
//! (dnsmasq, on a loopback port) names two replicas on 127.0.0.2 and 127.0.0.3, and
//! changing its hosts file moves the traffic without a failed request.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::common::{config, dnsmasq, dns_answers, get, spawn_upstream_on, start};

/// A replica answering `GET /api/v1/who` (and a slow `/api/v1/slow`) with its name,
/// publishing both in its OpenAPI document, on `listener`.
fn replica(name: &'static str, listener: TcpListener) -> actix_web::dev::ServerHandle {
    spawn_upstream_on(listener, move |cfg| {
        cfg.route(
            "/api/v1/openapi.json",
            web::get().to(|| async {
                let op = json!({"get": {"responses": {"200": {"description": "ok"}}}});
                HttpResponse::Ok().json(json!({
                    "openapi": "3.1.0", "info": {"title": "r", "version": "1"},
                    "paths": {"/api/v1/who": op, "/api/v1/slow": op}
                }))
            }),
        )
        .route("/api/v1/who", web::get().to(move || async move { HttpResponse::Ok().json(name) }))
        .route(
            "/api/v1/slow",
            web::get().to(move || async move {
                actix_rt::time::sleep(Duration::from_millis(1500)).await;
                HttpResponse::Ok().json(name)
            }),
        );
    })
}

/// Listeners on 127.0.0.2 and 127.0.0.3 with the same port (a name has one port).
fn twin_listeners() -> (TcpListener, TcpListener, u16) {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if let Ok(b) = TcpListener::bind(("127.0.0.3", port)) {
            return (a, b, port);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

/// Waits until `ready()` holds (at most 60 s: generous for a loaded machine).
async fn until(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ready().await {
        assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Both addresses of the name serve; after the DNS answer drops one, traffic moves to
/// the other with zero failed requests under a bounded load, and the request in
/// flight on the dropped address still completes.
#[actix_rt::test]
async fn a_named_upstream_follows_its_dns_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.2 legacy.test\n127.0.0.3 legacy.test\n").unwrap();
    let Some((dns, dns_addr)) = dnsmasq(&hosts) else { return };
    dns_answers(dns_addr, "legacy.test.").await;
    let (a, b, port) = twin_listeners();
    let (ha, hb) = (replica("two", a), replica("three", b));
    let server = start(
        config(&format!(
            r#"
load_builtin_plugins = ["proxy"]
[plugins.proxy]
proxy_urls = ["http://legacy.test:{port}"]
dns_servers = ["{dns_addr}"]
dns_refresh = 0.3
discovery_interval = 0
"#
        )),
        vec![],
    )
    .await;
    until("both addresses are pool members", async || {
        let page = get(&server.url("/api/v1/proxy/upstreams")).await.json();
        page["upstreams"][0]["addresses"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let r = get(&server.url("/api/v1/who")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        seen.insert(r.json().as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 2, "traffic spreads over both addresses: {seen:?}");

    // Two slow requests in flight, one on each address (round robin), then the
    // name loses 127.0.0.2 while a bounded load keeps running.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/api/v1/slow");
            actix_rt::spawn(async move { get(&url).await })
        })
        .collect();
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&hosts, "127.0.0.3 legacy.test\n").unwrap();
    // SAFETY: kill(2) with a plain signal number has no memory effects.
    unsafe { libc::kill(dns.0.id() as i32, libc::SIGHUP) };
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut moved = false;
    // Bounded: at most 15 s of requests, one every 20 ms or so.
    while started.elapsed() < Duration::from_secs(15) {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        let r = get(&server.url("/api/v1/who")).await;
        if r.status != 200 {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        let page = get(&server.url("/api/v1/proxy/upstreams")).await.json();
        if page["upstreams"][0]["addresses"].as_array().is_some_and(|a| a.len() == 1) {
            moved = true;
            break;
        }
    }
    assert!(moved, "the dropped address left the pool");
    for _ in 0..10 {
        let r = get(&server.url("/api/v1/who")).await;
        assert_eq!((r.status, r.json()), (200, json!("three")), "only the remaining address serves");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed while the set changed");
    let mut answers: Vec<String> = Vec::new();
    for request in slow {
        let r = request.await.unwrap();
        assert_eq!(r.status, 200, "in-flight requests finish: {}", r.text());
        answers.push(r.json().as_str().unwrap().to_owned());
    }
    answers.sort();
    assert_eq!(answers, ["three", "two"], "one was in flight on the dropped address");
    server.stop(true).await;
    ha.stop(false).await;
    hb.stop(false).await;
    drop(dns);
}
