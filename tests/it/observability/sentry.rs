//! `[sentry]` against a stand-in ingest endpoint on loopback: a small actix-web server
//! that accepts `POST /api/<project>/envelope/`, decodes the envelope (newline-separated
//! JSON: the envelope header, then each item's header and payload; gzip if so sent)
//! and keeps every item. One test runs the same table and requests against FrameX-kit
//! 0.4.2 too, each reporting to its own stand-in (and `sentry_upstream` does for
//! proxied routes).

use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use framex::plugin::{Ctx, PluginBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::{config, get, get_with, spawn_upstream, start};

/// Items received by the stand-in ingest: `(item type, payload)`, and every raw body.
#[derive(Clone, Default)]
pub(super) struct Ingest {
    pub(super) items: Arc<Mutex<Vec<(String, Value)>>>,
    pub(super) raw: Arc<Mutex<Vec<u8>>>,
}

impl Ingest {
    /// Starts the stand-in; returns it and the DSN pointing at it (project 42).
    pub(super) fn start() -> (Ingest, String, actix_web::dev::ServerHandle) {
        let ingest = Ingest::default();
        let kept = ingest.clone();
        let (url, handle) = spawn_upstream(move |cfg| {
            let kept = kept.clone();
            // FrameX-kit's events carry each frame's local variables: tens of KB.
            let envelope = web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let kept = kept.clone();
                async move {
                    assert_eq!(req.match_info().get("project"), Some("42"));
                    kept.receive(&req, &body);
                    HttpResponse::Ok().json(json!({}))
                }
            });
            let limit = web::PayloadConfig::new(8 << 20);
            cfg.service(web::resource("/api/{project}/envelope/").app_data(limit).route(envelope));
        });
        let dsn = url.replacen("http://", "http://public-key@", 1) + "/42";
        (ingest, dsn, handle)
    }

    fn receive(&self, req: &HttpRequest, body: &[u8]) {
        let mut bytes = body.to_vec();
        if req.headers().get("content-encoding").is_some_and(|v| v == "gzip") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(body).read_to_end(&mut plain).unwrap();
            bytes = plain;
        }
        self.raw.lock().unwrap().extend_from_slice(&bytes);
        let text = String::from_utf8(bytes).unwrap();
        let mut lines = text.lines().skip(1); // the envelope's header
        while let Some(header) = lines.next() {
            if header.trim().is_empty() {
                continue;
            }
            let header: Value = serde_json::from_str(header).unwrap();
            let payload: Value = serde_json::from_str(lines.next().unwrap_or("null")).unwrap_or(Value::Null);
            self.items.lock().unwrap().push((header["type"].as_str().unwrap_or("").to_owned(), payload));
        }
    }

    /// The events received so far.
    pub(super) fn events(&self) -> Vec<Value> {
        self.of_type("event")
    }

    /// The items of type `kind` received so far.
    pub(super) fn of_type(&self, kind: &str) -> Vec<Value> {
        self.items.lock().unwrap().iter().filter(|(t, _)| t == kind).map(|(_, v)| v.clone()).collect()
    }

    /// The transactions named `name` received so far.
    pub(super) fn transactions(&self, name: &str) -> Vec<Value> {
        self.of_type("transaction").into_iter().filter(|t| t["transaction"] == name).collect()
    }

    /// The first transaction named `name`, once it has arrived (20 s at most).
    pub(super) async fn wait_transaction(&self, name: &str) -> Value {
        let started = Instant::now();
        loop {
            if let Some(found) = self.transactions(name).into_iter().next() {
                return found;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no transaction {name}: {:?}", self.of_type("transaction"));
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The events, once `count` have arrived (20 s at most).
    pub(super) async fn wait_events(&self, count: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let events = self.events();
            if events.len() >= count {
                return events;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{count} events expected, got {events:?}");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
struct NoArgs {}

async fn boom(_: NoArgs, _cx: Ctx) -> framex::Result<String> {
    panic!("the plugin fell over");
}

async fn fine(_: NoArgs, _cx: Ctx) -> framex::Result<String> {
    Ok("fine".to_owned())
}

async fn breaks(_: NoArgs, _cx: Ctx, out: framex::plugin::Emitter) -> framex::Result<()> {
    out.chunk("first".to_owned()).await?;
    Err(framex::actors::Error::Plugin { status: 500, message: "the stream fell over".to_owned() })
}

/// A 502 from a dead upstream, a panicking local plugin and a local stream that
/// breaks off each produce one event with the request id, the trace id and the
/// environment (`<env>_noray`); the
/// `Authorization` key of the request is nowhere in what was sent; a 2xx produces
/// nothing; the plugin answers its next call (the panic did not take it down).
#[actix_rt::test]
async fn errors_and_panics_become_events_with_the_request_ids() {
    let (ingest, dsn, ingest_handle) = Ingest::start();
    let upstream = alive_then_dead().await;
    let toml = format!(
        r#"
load_builtin_plugins = ["proxy"]
load_plugins = ["boom"]
[server]
enable_proxy = true
trusted_proxies = ["127.0.0.1/32"]
[plugins.proxy]
proxy_urls = ["{}"]
discovery_interval = 0
connect_timeout = 2
[sentry]
enable = true
dsn = "{dsn}"
env = "test"
"#,
        upstream.url
    );
    let plugin = PluginBuilder::new("boom").get("/boom", boom).get("/fine", fine).stream("/breaks", breaks).build().unwrap();
    let server = start(config(&toml), vec![plugin]).await;
    upstream.stop().await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let secret = "sk-live-never-leaves";
    let r = get_with(
        &server.url("/api/v1/gone?token=q-secret"),
        &[("x-request-id", "req-gone-1"), ("traceparent", &traceparent), ("authorization", secret)],
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    let events = ingest.wait_events(1).await;
    let event = &events[0];
    assert_eq!(event["environment"], "test_noray");
    assert_eq!(event["tags"]["request_id"], "req-gone-1");
    assert_eq!(event["tags"]["trace_id"], trace_id);
    assert_eq!(event["contexts"]["trace"]["trace_id"], trace_id);
    assert_eq!(event["exception"]["values"][0]["type"], "UpstreamConnect");
    assert_eq!(event["request"]["method"], "GET");

    assert_eq!(get(&server.url("/api/v1/fine")).await.status, 200);
    let r = get_with(&server.url("/api/v1/boom"), &[("x-request-id", "req-boom-1"), ("authorization", secret)]).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(!r.text().contains("fell over"), "the panic's words stay out of the answer: {}", r.text());
    let events = ingest.wait_events(2).await;
    let panic = &events[1];
    assert_eq!(panic["tags"]["request_id"], "req-boom-1");
    assert_eq!(panic["tags"]["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(panic["environment"], "test_noray");
    assert_eq!(panic["exception"]["values"][0]["type"], "PluginPanic");
    assert!(panic["exception"]["values"][0]["value"].as_str().unwrap().contains("the plugin fell over"));
    assert_eq!(get(&server.url("/api/v1/fine")).await.status, 200, "the plugin still serves");

    // A local stream that breaks after its answer started: the client gets FrameX's
    // `error` event, Sentry the break.
    let r = get_with(&server.url("/api/v1/breaks"), &[("x-request-id", "req-breaks-1")]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("event: error"), "{}", r.text());
    let events = ingest.wait_events(3).await;
    let broken = &events[2];
    assert_eq!(broken["exception"]["values"][0]["type"], "StreamBroken");
    assert_eq!(broken["tags"]["request_id"], "req-breaks-1");

    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ingest.events().len(), 3, "one event per failure, none for a 2xx: {:?}", ingest.events());
    let raw = String::from_utf8_lossy(&ingest.raw.lock().unwrap()).into_owned();
    assert!(!raw.contains(secret) && !raw.contains("q-secret"), "no key or query in the events: {raw}");
    server.stop(true).await;
    ingest_handle.stop(true).await;
}

/// An error kind listed in `ignore_errors` produces no event, others still do; every
/// request is a transaction in the request's trace (op `http.server`, its status from
/// the HTTP status), the probe paths included (FrameX-kit's `before_send` drops their
/// errors only), but not a `HEAD` (FrameX-kit's Sentry SDK leaves `HEAD` and `OPTIONS`
/// out) — with no `lifecycle` set.
#[actix_rt::test]
async fn ignored_errors_send_nothing_and_every_request_is_a_transaction() {
    let (ingest, dsn, ingest_handle) = Ingest::start();
    let upstream = alive_then_dead().await;
    let toml = format!(
        r#"
load_builtin_plugins = ["proxy"]
load_plugins = ["boom"]
[server]
enable_proxy = true
trusted_proxies = ["127.0.0.1/32"]
[plugins.proxy]
proxy_urls = ["{}"]
discovery_interval = 0
[sentry]
enable = true
dsn = "{dsn}"
env = "prod"
ignore_errors = ["UpstreamConnect"]
"#,
        upstream.url
    );
    let plugin = PluginBuilder::new("boom").get("/boom", boom).get("/fine", fine).stream("/breaks", breaks).build().unwrap();
    let server = start(config(&toml), vec![plugin]).await;
    upstream.stop().await;

    assert_eq!(get(&server.url("/api/v1/gone")).await.status, 502);
    assert_eq!(get(&server.url("/api/v1/boom")).await.status, 500);
    let events = ingest.wait_events(1).await;
    assert_eq!(events[0]["exception"]["values"][0]["type"], "PluginPanic", "the ignored kind sent nothing");
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    assert_eq!(crate::common::request("HEAD", &server.url("/api/v1/fine"), &[], Vec::new()).await.status, 200);
    assert_eq!(get_with(&server.url("/api/v1/fine"), &[("traceparent", &traceparent)]).await.status, 200);
    assert_eq!(get(&server.url("/health")).await.status, 200);
    let transaction = ingest.wait_transaction("/api/v1/fine").await;
    assert_eq!(transaction["contexts"]["trace"]["trace_id"], trace_id);
    assert_eq!(transaction["environment"], "prod_noray");
    assert_eq!(transaction["contexts"]["trace"]["op"], "http.server");
    assert_eq!(transaction["contexts"]["trace"]["status"], "ok");
    assert_eq!(transaction["contexts"]["trace"]["parent_span_id"], "b7ad6b7169203331");
    assert_eq!(transaction["tags"]["http.status_code"], "200");
    let health = ingest.wait_transaction("/health").await;
    assert_eq!(health["contexts"]["trace"]["status"], "ok");
    for (route, status) in [("/api/v1/gone", "internal_error"), ("/api/v1/boom", "internal_error")] {
        let failed = ingest.transactions(route);
        assert_eq!(failed.len(), 1, "{route}: {failed:?}");
        assert_eq!(failed[0]["contexts"]["trace"]["status"], status, "{route}");
    }
    assert_eq!(ingest.transactions("/api/v1/fine").len(), 1, "the HEAD sent none");
    assert_eq!(ingest.events().len(), 1, "{:?}", ingest.events());
    server.stop(true).await;
    ingest_handle.stop(true).await;
}

/// `traces_sample_rate` (framex-rs's key): at 0 no transaction leaves, while errors
/// still do; at 0.5 about half the requests are sent (requests one at a time, so the
/// transport's queue of 30 never overflows).
#[actix_rt::test]
async fn the_sample_rate_thins_transactions_not_errors() {
    for (rate, requests) in [(0.0, 5_usize), (0.5, 100)] {
        let (ingest, dsn, ingest_handle) = Ingest::start();
        let toml = format!(
            "load_plugins = [\"boom\"]\n[sentry]\nenable = true\ndsn = \"{dsn}\"\nenv = \"test\"\ntraces_sample_rate = {rate:?}\n"
        );
        let plugin = PluginBuilder::new("boom").get("/boom", boom).get("/fine", fine).stream("/breaks", breaks).build().unwrap();
        let server = start(config(&toml), vec![plugin]).await;
        for _ in 0..requests {
            assert_eq!(get(&server.url("/api/v1/fine")).await.status, 200);
        }
        // Sent after the others on the same queue: once it is in, they are too.
        assert_eq!(get(&server.url("/api/v1/boom")).await.status, 500);
        ingest.wait_events(1).await;
        let sent = ingest.transactions("/api/v1/fine").len();
        if rate == 0.0 {
            assert!(ingest.of_type("transaction").is_empty(), "{:?}", ingest.of_type("transaction"));
        } else {
            assert!((20..=80).contains(&sent), "about half of {requests}: {sent}");
        }
        server.stop(true).await;
        ingest_handle.stop(true).await;
    }
}

/// An upstream serving its document until stopped.
struct Upstream {
    url: String,
    handle: actix_web::dev::ServerHandle,
}

impl Upstream {
    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// An upstream with one operation, `GET /api/v1/gone`; stop it after discovery.
async fn alive_then_dead() -> Upstream {
    let (url, handle) = spawn_upstream(|cfg| {
        cfg.route(
            "/api/v1/openapi.json",
            web::get().to(|| async {
                HttpResponse::Ok().json(json!({
                    "openapi": "3.1.0",
                    "info": { "title": "t", "version": "1" },
                    "paths": { "/api/v1/gone": { "get": { "responses": { "200": { "description": "ok" } } } } }
                }))
            }),
        );
    });
    Upstream { url, handle }
}

/// `enable_logs` (`framex run`): log records at info and above reach the ingest as
/// Sentry `log` items, with their level and text; a config secret that ends up in a
/// log line (here a key written into an upstream URL, which the failed health check's
/// warning names) reaches Sentry as `[redacted]`, while the local log keeps the line. The
/// access log (client addresses and paths, a line a request) is not sent.
#[actix_rt::test]
async fn enable_logs_sends_log_records_with_secrets_scrubbed() {
    let (ingest, dsn, _handle) = Ingest::start();
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::python::free_port();
    let closed = crate::common::python::free_port();
    let toml = format!(
        "load_builtin_plugins = [\"echo\", \"proxy\"]\n[server]\nport = {port}\naccess_log = \"text\"\nenable_proxy = true\n\
         [auth]\nrules = {{ \"/api/v1/echo\" = [\"auth-key-9f3c\"] }}\n\
         [plugins.proxy]\nproxy_urls = [\"http://127.0.0.1:{closed}/auth-key-9f3c\"]\n\
         health_check_path = \"/health\"\nhealth_check_interval = 0.2\n\
         [sentry]\nenable = true\ndsn = \"{dsn}\"\nenv = \"test\"\nenable_logs = true\n"
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let framex = crate::common::FramexProcess::spawn(&path, "").await;
    let url = format!("http://127.0.0.1:{port}");
    get(&format!("{url}/version")).await;
    framex.until("GET /version").await;
    let started = Instant::now();
    let logs = loop {
        let logs: Vec<Value> = ingest
            .items
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == "log")
            .flat_map(|(_, v)| v["items"].as_array().cloned().unwrap_or_default())
            .collect();
        if logs.iter().any(|l| l["body"].as_str().is_some_and(|b| b.contains("health check failed"))) {
            break logs;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no log items: {logs:?}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    };
    let bodies: Vec<&str> = logs.iter().filter_map(|l| l["body"].as_str()).collect();
    assert!(bodies.iter().any(|b| b.contains("serving on")), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains(&format!("127.0.0.1:{closed}/[redacted]"))), "{bodies:?}");
    assert!(!bodies.iter().any(|b| b.contains("GET /version")), "the access log stays local: {bodies:?}");
    assert!(logs.iter().all(|l| ["info", "warn", "error"].contains(&l["level"].as_str().unwrap_or(""))), "{logs:?}");
    let raw = String::from_utf8_lossy(&ingest.raw.lock().unwrap()).into_owned();
    assert!(!raw.contains("auth-key-9f3c"), "the key reached Sentry: {raw}");
    let local = framex.log();
    assert!(local.contains("auth-key-9f3c") && local.contains("GET /version"), "the local log is unchanged");
}

/// A TCP relay on loopback in front of `target` that closes a client connection,
/// unanswered, when a request begins on it after `idle` without traffic: the ingest's
/// keep-alive running out at the moment the client reuses the connection, every time
/// (the race a real ingest loses now and then). It stops taking connections when
/// dropped; a connection's threads end with the connection.
struct ClosingWhenIdle {
    addr: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl ClosingWhenIdle {
    fn start(target: &str, idle: Duration) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (target, stopped) = (target.to_owned(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let target = target.clone();
                std::thread::spawn(move || relay_until_idle(client, &target, idle));
            }
        });
        ClosingWhenIdle { addr, stop }
    }
}

impl Drop for ClosingWhenIdle {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wakes the listener's thread, which then ends.
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

/// Copies `client` to and from a new connection to `target` until the client ends or
/// sends after `idle` without traffic (then both are closed). The ingest's own close
/// of an idle connection is not passed on: the client sees an open connection, as it
/// does in the instant before a close reaches it.
fn relay_until_idle(mut client: std::net::TcpStream, target: &str, idle: Duration) {
    use std::io::Write as _;
    let Ok(mut upstream) = std::net::TcpStream::connect(target) else { return };
    let last = Arc::new(Mutex::new(Instant::now()));
    let (mut back_from, mut back_to, answered) = (upstream.try_clone().unwrap(), client.try_clone().unwrap(), last.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        while let Ok(n @ 1..) = back_from.read(&mut buf) {
            *answered.lock().unwrap() = Instant::now();
            if back_to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 16 << 10];
    while let Ok(n @ 1..) = client.read(&mut buf) {
        let quiet = last.lock().unwrap().elapsed();
        *last.lock().unwrap() = Instant::now();
        if quiet >= idle || upstream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = upstream.shutdown(std::net::Shutdown::Both);
}

/// The log batch goes 5 s after start; the transaction of the first request opened a
/// connection to the ingest just before. An ingest that closes a connection idle for
/// 3 s as the batch is written on it loses nothing: a connection idle for longer than
/// framex-rs's reuse limit (2 s, below common keep-alives) is not reused. Reusing it,
/// as the SDK's default agent does for 15 s, drops the batch (checked).
#[actix_rt::test]
async fn a_log_batch_is_not_lost_to_an_ingest_closing_an_idle_connection() {
    let (ingest, dsn, _handle) = Ingest::start();
    let direct = dsn.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
    let relay = ClosingWhenIdle::start(&direct, Duration::from_secs(3));
    let dsn = dsn.replacen(&direct, &relay.addr, 1);
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::python::free_port();
    let toml = format!(
        "load_builtin_plugins = [\"echo\"]\n[server]\nport = {port}\n\
         [sentry]\nenable = true\ndsn = \"{dsn}\"\nenv = \"test\"\nenable_logs = true\n"
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let framex = crate::common::FramexProcess::spawn(&path, "").await;
    get(&format!("http://127.0.0.1:{port}/version")).await;
    ingest.wait_transaction("/version").await;
    let started = Instant::now();
    while !ingest.of_type("log").iter().any(|batch| batch.to_string().contains("serving on")) {
        assert!(started.elapsed() < Duration::from_secs(15), "the log batch was lost: {:?}", framex.log());
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An ingest that refuses every envelope with `429` and `Retry-After: 60`: framex-rs
/// sends it one, then holds back until the minute is over, as the ingest asked (it
/// sent every request's transaction, into the refusal).
#[actix_rt::test]
async fn a_rate_limited_ingest_is_not_sent_to_again() {
    let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = posts.clone();
    let (url, _handle) = spawn_upstream(move |cfg| {
        let counted = counted.clone();
        cfg.default_service(web::to(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { HttpResponse::TooManyRequests().insert_header(("retry-after", "60")).finish() }
        }));
    });
    let dsn = url.replacen("http://", "http://public-key@", 1) + "/42";
    let server = start(config(&format!("load_builtin_plugins = [\"echo\"]\n[sentry]\nenable = true\ndsn = \"{dsn}\"\nenv = \"test\"\n")), vec![]).await;
    get(&server.url("/api/v1/echo?message=1")).await;
    let started = Instant::now();
    while posts.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "nothing reached the ingest");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 2..=4 {
        get(&server.url(&format!("/api/v1/echo?message={n}"))).await;
    }
    // The transport's thread sends within milliseconds: a second is ample.
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(posts.load(std::sync::atomic::Ordering::SeqCst), 1, "sent again while rate-limited");
    server.stop(true).await;
}

/// A FrameX-kit plugin: `/boom` raises, `/ignored` raises a type `ignore_errors` lists.
const KIT_PLUGIN: &str = r#"
from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(name="boomkit", version="0.1.0", description="", author="", url="", required_remote_apis=[])

@on_register()
class BoomPlugin(BasePlugin):
    @on_request("/api/v1/boom", methods=["GET"])
    async def boom(self) -> str:
        raise RuntimeError("the plugin fell over")

    @on_request("/api/v1/ignored", methods=["GET"])
    async def ignored(self) -> str:
        raise ValueError("an ignored failure")

    @on_request("/api/v1/fine", methods=["GET"])
    async def fine(self) -> str:
        return "fine"
"#;

async fn plugin_error(_: NoArgs, _cx: Ctx) -> framex::Result<String> {
    let message = "the plugin fell over".to_owned();
    Err(framex::actors::Error::Plugin { status: 500, message })
}

/// The `[sentry]` table both are given: `ignore_errors` names the ignored failure in
/// each one's words (a Python exception type, a framex-rs error kind).
fn sentry_table(dsn: &str) -> String {
    format!("[sentry]\nenable = true\ndsn = \"{dsn}\"\nenv = \"test\"\nignore_errors = [\"ValueError\", \"PluginPanic\"]\n")
}

/// Asks `base` for the ignored failure, then for the reported one (each a 500, with a
/// key and a query), and returns the one event `ingest` got (the ignored request's
/// would have come first: each client sends in order) and whether the key was sent.
async fn the_one_event(base: &str, ingest: &Ingest) -> (Value, bool) {
    let secret = [("authorization", "sk-live-never-leaves")];
    assert_eq!(get_with(&format!("{base}/api/v1/ignored?token=q-secret"), &secret).await.status, 500);
    assert_eq!(get_with(&format!("{base}/api/v1/boom?token=q-secret"), &secret).await.status, 500);
    let event = ingest.wait_events(1).await.remove(0);
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ingest.events().len(), 1, "nothing for the ignored failure: {:?}", ingest.events());
    let raw = String::from_utf8_lossy(&ingest.raw.lock().unwrap()).into_owned();
    (event, raw.contains("sk-live-never-leaves"))
}

/// Asks `base` for `/api/v1/fine` and returns its one transaction (after 500 ms in
/// which no second one came).
async fn the_one_transaction(base: &str, ingest: &Ingest) -> Value {
    assert_eq!(get(&format!("{base}/api/v1/fine")).await.status, 200);
    let transaction = ingest.wait_transaction("/api/v1/fine").await;
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ingest.transactions("/api/v1/fine").len(), 1, "one request, one transaction");
    transaction
}

/// The same `[sentry]` table and the same requests against FrameX-kit 0.4.2 and
/// framex-rs, each reporting to its own stand-in ingest: a Sentry user sees one event
/// for the failure and none for the ignored one, with the same environment, level,
/// transaction, method, URL (without the query) and trace status, and the failure's
/// type and message (FrameX-kit's Python exception, framex-rs's error kind). They
/// differ where framex-rs sends less: FrameX-kit sends the query string and, in its
/// frames' local variables, the `Authorization` key; framex-rs neither. A successful
/// request is one transaction to each, alike: named by the route, op `http.server`,
/// status `ok`, the same environment, a `v` release.
#[actix_rt::test]
async fn a_plugin_failure_reaches_sentry_as_from_framex_kit() {
    let (kit_ingest, kit_dsn, kit_ingest_handle) = Ingest::start();
    let kit_toml = format!("load_plugins = [\"boomkit\"]\n{}", sentry_table(&kit_dsn));
    let paths = ["/api/v1/boom", "/api/v1/ignored", "/api/v1/fine"];
    let files = [("boomkit.py", KIT_PLUGIN)];
    let (kit, _dir) = crate::common::python::framex_kit_with(&kit_toml, &paths, &files).await;
    let (theirs, kit_sent_key) = the_one_event(&kit.url, &kit_ingest).await;
    let their_transaction = the_one_transaction(&kit.url, &kit_ingest).await;

    let (ingest, dsn, ingest_handle) = Ingest::start();
    let plugin = PluginBuilder::new("boomkit").get("/boom", plugin_error).get("/ignored", boom).get("/fine", fine).build().unwrap();
    let server = start(config(&format!("load_plugins = [\"boomkit\"]\n{}", sentry_table(&dsn))), vec![plugin]).await;
    let base = server.url("");
    let base = base.trim_end_matches('/');
    let (ours, sent_key) = the_one_event(base, &ingest).await;
    let our_transaction = the_one_transaction(base, &ingest).await;
    for (transaction, base) in [(&their_transaction, kit.url.as_str()), (&our_transaction, base)] {
        assert_eq!(transaction["transaction"], "/api/v1/fine", "{transaction}");
        assert_eq!(transaction["contexts"]["trace"]["op"], "http.server", "{transaction}");
        assert_eq!(transaction["contexts"]["trace"]["status"], "ok", "{transaction}");
        assert_eq!(transaction["environment"], "test_noray", "{transaction}");
        assert_eq!(transaction["tags"]["http.status_code"], "200", "{transaction}");
        assert_eq!(transaction["request"]["url"], format!("{base}/api/v1/fine"), "{transaction}");
        assert!(transaction["release"].as_str().is_some_and(|r| r.starts_with('v')), "{transaction}");
    }

    for (event, base) in [(&theirs, kit.url.as_str()), (&ours, base)] {
        assert_eq!(event["environment"], "test_noray", "{event}");
        assert_eq!(event["level"], "info", "FrameX-kit sets info on its scope: {event}");
        assert_eq!(event["transaction"], "/api/v1/boom");
        assert_eq!(event["request"]["method"], "GET");
        assert_eq!(event["request"]["url"], format!("{base}/api/v1/boom"), "the URL, without the query");
        assert_eq!(event["contexts"]["trace"]["status"], "internal_error");
        assert_eq!(event["contexts"]["trace"]["trace_id"].as_str().map(str::len), Some(32));
        assert!(event["release"].as_str().is_some_and(|r| r.starts_with('v')), "{event}");
        let value = event["exception"]["values"][0]["value"].as_str().unwrap_or_default();
        assert!(value.contains("the plugin fell over"), "{event}");
    }
    assert_eq!(theirs["exception"]["values"][0]["type"], "RuntimeError");
    assert_eq!(ours["exception"]["values"][0]["type"], "PluginError");
    assert_eq!(theirs["request"]["query_string"], "token=q-secret", "FrameX-kit sends the query");
    assert!(kit_sent_key, "FrameX-kit sends the key in its frames' variables (as the README says)");
    assert!(ours["request"].get("query_string").is_none() && ours["request"].get("headers").is_none(), "{ours}");
    assert!(!sent_key, "framex-rs never sends the key");
    server.stop(true).await;
    drop(kit);
    for handle in [kit_ingest_handle, ingest_handle] {
        handle.stop(true).await;
    }
}
