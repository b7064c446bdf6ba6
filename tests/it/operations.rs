//! Operating a running server: live reload (in process, and SIGHUP / `framex reload`
//! on the binary), what waits for a restart, and readiness.

use std::process::Command;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use futures::StreamExt;
use serde_json::json;

use crate::common::python::{free_port, legacy_app};
use crate::common::{client, config, get, get_with, spawn_upstream, sse_events, start, FramexProcess};

/// An upstream publishing one operation, `GET /api/v1/b`.
fn upstream_b() -> (String, actix_web::dev::ServerHandle) {
    spawn_upstream(|cfg| {
        cfg.route(
            "/api/v1/openapi.json",
            web::get().to(|| async {
                HttpResponse::Ok().json(json!({
                    "openapi": "3.1.0",
                    "info": {"title": "b", "version": "1"},
                    "paths": {"/api/v1/b": {"get": {"responses": {"200": {"description": "ok"}}}}}
                }))
            }),
        )
        .route("/api/v1/b", web::get().to(|| async { HttpResponse::Ok().json("from b") }));
    })
}

fn proxy_config(url: &str, key: &str) -> String {
    format!(
        r#"
load_builtin_plugins = ["echo", "proxy"]
[auth]
rules = {{ "/api/v1/echo" = ["{key}"] }}
[plugins.proxy]
proxy_urls = ["{url}"]
discovery_interval = 0
force_stream_apis = ["/api/v1/stream/sse"]
"#
    )
}

/// A reload swaps the upstreams and the auth rules for new requests, while an SSE
/// stream that started on the old configuration flows on to its end.
#[actix_rt::test]
async fn reload_swaps_upstreams_and_rules_while_a_stream_keeps_flowing() {
    let legacy = legacy_app().await;
    let (b, handle) = upstream_b();
    let server = start(config(&proxy_config(&legacy.url, "k1")), vec![]).await;
    let mut stream = client()
        .get(server.url("/api/v1/stream/sse?n=8&delay_ms=150"))
        .send()
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains(r#""0""#));

    let report = server.reload(config(&proxy_config(&b, "k2"))).await;
    assert!(report.restart_needed.is_empty(), "{report:?}");
    assert_eq!(get(&server.url("/api/v1/items/1")).await.status, 404, "the old upstream's routes are gone");
    let r = get(&server.url("/api/v1/b")).await;
    assert_eq!((r.status, r.json()), (200, json!("from b")), "the new upstream serves");
    let echo = |key: &'static str| {
        let url = server.url("/api/v1/echo?message=hi");
        async move { get_with(&url, &[("authorization", key)]).await.status }
    };
    assert_eq!(echo("k1").await, 401, "the old key no longer opens the path");
    assert_eq!(echo("k2").await, 200, "the new one does");

    let mut body = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = stream.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let events = sse_events(&body);
    let contents: Vec<&str> = events.iter().filter_map(|(_, d)| d["content"].as_str()).collect();
    assert_eq!(contents, ["0", "1", "2", "3", "4", "5", "6", "7"], "{body}");
    assert_eq!(events.last().unwrap().0, "finish", "{body}");
    server.stop(true).await;
    handle.stop(false).await;
}

/// Keys only a restart can apply are reported, and their running values stay.
#[actix_rt::test]
async fn restart_only_keys_are_reported_not_applied() {
    let server = start(config("load_builtin_plugins = [\"echo\"]"), vec![]).await;
    let mut changed = config("load_builtin_plugins = [\"echo\"]\n[server]\nport = 1\naccess_log = true");
    changed.server.workers = Some(7);
    let report = server.reload(changed).await;
    assert_eq!(report.restart_needed, vec!["server.port", "server.workers"]);
    assert_eq!(get(&server.url("/health")).await.status, 200, "still on the old listener");
    server.stop(true).await;
}

/// `/ready` waits for every upstream's first discovery (unless told not to) and stops
/// while SIGTERM's drain runs; `/health` stays 200 throughout. Open to anyone, it says
/// only `not ready`: what it waits for (an upstream's address) is on the
/// `[auth]`-protected status page (attack 18.7).
#[actix_rt::test]
async fn ready_waits_for_discovery_and_names_nothing() {
    let port = free_port();
    let down = format!("http://127.0.0.1:{port}");
    let toml = format!(
        "load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{down}\"]\ndiscovery_interval = 0\n\
         [auth]\nrules = {{ \"*\" = [\"k\"] }}\n"
    );
    let server = start(config(&toml), vec![]).await;
    let r = get(&server.url("/ready")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!((r.json()["status"].clone(), r.json()["message"].clone()), (json!(503), json!("not ready")));
    for secret in ["127.0.0.1", port.to_string().as_str()] {
        assert!(!r.text().contains(secret), "names {secret}: {}", r.text());
    }
    assert_eq!(get(&server.url("/api/v1/proxy/upstreams")).await.status, 401);
    let page = get_with(&server.url("/api/v1/proxy/upstreams"), &[("authorization", "k")]).await;
    assert!(page.json()["not_ready"].as_str().unwrap().contains(&down), "{}", page.text());
    assert_eq!(get(&server.url("/health")).await.status, 200);
    server.stop(true).await;

    let toml = format!("{toml}[server]\nready_without = [\"{down}/\"]\n");
    let server = start(config(&toml), vec![]).await;
    assert_eq!(get(&server.url("/ready")).await.status, 200, "not waited for");
    server.start_draining();
    let r = get(&server.url("/ready")).await;
    assert_eq!((r.status, r.json()["message"].clone()), (503, json!("not ready")));
    assert_eq!(get(&server.url("/health")).await.status, 200, "liveness is not readiness");
    server.stop(true).await;
}

/// The binary: `framex reload` (SIGHUP through `server.pid_file`) applies a changed
/// auth rule; a config that does not load is refused by `framex reload` itself and,
/// on a bare SIGHUP, by the server with a log line naming the key, changing nothing;
/// SIGTERM removes the pid file.
#[actix_rt::test]
async fn framex_reload_applies_a_new_config_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (file, pid_file) = (dir.path().join("config.toml"), dir.path().join("framex.pid"));
    let port = free_port();
    let write = |key: &str, extra: &str| {
        std::fs::write(
            &file,
            format!(
                "load_builtin_plugins = [\"echo\"]\n[server]\nport = {port}\npid_file = \"{}\"\n{extra}\n[auth]\nrules = {{ \"/api/v1/echo\" = [\"{key}\"] }}\n",
                pid_file.display()
            ),
        )
        .unwrap();
    };
    write("k1", "");
    let framex = FramexProcess::spawn(&file, "info").await;
    assert!(pid_file.exists(), "the pid file is written");
    let url = format!("http://127.0.0.1:{port}/api/v1/echo?message=hi");
    let status = |key: &'static str| {
        let url = url.clone();
        async move { get_with(&url, &[("authorization", key)]).await.status }
    };
    assert_eq!(status("k1").await, 200);

    write("k2", "");
    let reload = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_framex"))
            .args(["reload", "-c", file.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = reload(&file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    framex.until("the new configuration serves new requests").await;
    assert_eq!((status("k1").await, status("k2").await), (401, 200));

    write("k3", "client_body_timeout = 1e300");
    let out = reload(&file);
    assert!(!out.status.success(), "framex reload checks the file first, like nginx -t");
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.client_body_timeout"));
    // Sent anyway (a plain SIGHUP), the server refuses it and keeps running as it was.
    // SAFETY: kill(2) with a plain signal number has no memory effects.
    unsafe { libc::kill(framex.pid(), libc::SIGHUP) };
    framex.until("reload refused").await;
    assert!(framex.log().contains("server.client_body_timeout"), "{}", framex.log());
    assert_eq!((status("k2").await, status("k3").await), (200, 401), "nothing changed");

    // SAFETY: kill(2) with a plain signal number has no memory effects.
    unsafe { libc::kill(framex.pid(), libc::SIGTERM) };
    let started = Instant::now();
    while pid_file.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the pid file stays after SIGTERM");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    drop(framex);
}

/// A stale pid file naming another process (an id reused after a crash) is refused by
/// `framex reload`, and that process gets no signal.
#[test]
fn framex_reload_never_signals_a_process_that_is_not_framex() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    let pid_file = dir.path().join("framex.pid");
    std::fs::write(&pid_file, format!("{}\n", other.id())).unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, format!("[server]\npid_file = \"{}\"\n", pid_file.display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["reload", "-c", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not framex"), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(200));
    assert!(other.try_wait().unwrap().is_none(), "the other process was not signalled");
    let _ = other.kill();
    let _ = other.wait();
}

/// A first start on the example config, with no `RUST_LOG`, says one line: where it
/// serves and what (three routes and a function), with no warning and no chatter of
/// actix's (a default that warns is a wrong default).
#[actix_rt::test]
async fn first_start_says_one_clean_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    let example = example.replacen("port = 8080", &format!("port = {}", free_port()), 1);
    std::fs::write(&file, example).unwrap();
    let framex = FramexProcess::spawn(&file, "").await;
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let log = framex.log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("INFO  framex::server] serving on http://127.0.0.1:"), "{log}");
    assert!(lines[0].ends_with("(3 routes, 1 function)"), "{log}");
}

/// `framex routes` with an upstream that cannot be read prints the table of what it
/// could read, logs the unreadable URL (before the table, at warning level, nothing
/// else), and exits non-zero so that a script notices.
#[test]
fn framex_routes_fails_when_an_upstream_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let dead = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(
        &file,
        format!(
            "load_builtin_plugins = [\"echo\", \"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{dead}\"]\nconnect_timeout = 1\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["routes", "-c", file.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "exit status {:?}", out.status);
    assert!(stdout.starts_with("METHOD") && stdout.contains("/api/v1/echo"), "{stdout}");
    assert!(stderr.contains(&dead) && stderr.contains("could not be read"), "{stderr}");
    assert!(!stderr.contains(" INFO "), "{stderr}");
}
