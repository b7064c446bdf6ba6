//! The request cache (issue 22): FrameX-kit's `X-FrameX-Cache` headers and statuses
//! on local routes, in memory, in files and in a real Redis server, and what an
//! attacker would try (another key's entry, a planted symlink, a dead Redis).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use framex::actors::Error;
use framex::actors::PluginSpec;
use framex::plugin::{Ctx, PluginBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::python::free_port;
use crate::common::{config, get, get_with, post_json, request, start, Process, Reply};

#[derive(Deserialize, JsonSchema)]
struct Q {
    #[serde(default)]
    q: String,
}

#[derive(Deserialize, JsonSchema, serde::Serialize)]
struct Body {
    a: i64,
    #[serde(default)]
    b: i64,
}

#[derive(Deserialize, JsonSchema)]
struct PostArgs {
    body: Body,
}

/// Routes that answer a fresh count on every call, so a hit is visible.
fn counting(calls: Arc<AtomicU64>) -> Arc<PluginSpec> {
    let c = [calls.clone(), calls.clone(), calls.clone(), calls.clone()];
    let [a, b, d, e] = c;
    PluginBuilder::new("counting")
        .get("/api/v1/count", move |q: Q, _cx: Ctx| {
            let n = a.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<Value, Error>(json!({"n": n, "q": q.q})) }
        })
        .cache(None)
        .post("/api/v1/count", move |args: PostArgs, _cx: Ctx| {
            let n = b.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<Value, Error>(json!({"n": n, "body": args.body})) }
        })
        .cache(Some(-1))
        .get("/api/v1/short", move |_q: Q, _cx: Ctx| {
            let n = d.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<Value, Error>(json!(n)) }
        })
        .cache(Some(1))
        .get("/api/v1/plain", move |_q: Q, _cx: Ctx| {
            let n = e.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<Value, Error>(json!(n)) }
        })
        .get("/api/v1/fails", |_q: Q, _cx: Ctx| async { Err::<Value, Error>(Error::plugin(500, "no")) })
        .cache(None)
        .build()
        .unwrap()
}

fn status(r: &Reply) -> String {
    header(r, "x-framex-cache-status")
}

fn header(r: &Reply, name: &str) -> String {
    r.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// FrameX-kit's sequence: MISS then HIT (same answer, same key), `bypass`,
/// `refresh`, TTL expiry, POST bodies in the key, errors never stored, and BYPASS on
/// a route that does not cache.
#[actix_rt::test]
async fn memory_mode_follows_framex_kit() {
    let server = start(config("load_builtin_plugins = [\"echo\"]\n[cache]\nenabled = true\nmode = \"memory\""), vec![counting(Arc::default())]).await;
    let url = server.url("/api/v1/count?q=a");
    let miss = get(&url).await;
    assert_eq!((miss.status, status(&miss).as_str()), (200, "MISS"), "{}", miss.text());
    let key = header(&miss, "x-framex-cache-key");
    assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    let hit = get(&url).await;
    assert_eq!(status(&hit), "HIT");
    assert_eq!(header(&hit, "x-framex-cache-key"), key);
    assert_eq!(hit.json()["data"], miss.json()["data"]);
    assert_eq!(hit.json()["status"], 200);

    let other = get(&server.url("/api/v1/count?q=b")).await;
    assert_eq!(status(&other), "MISS");
    assert_ne!(header(&other, "x-framex-cache-key"), key);

    let bypass = get_with(&url, &[("X-FrameX-Cache", " BYPASS ")]).await;
    assert_eq!(status(&bypass), "BYPASS");
    assert_eq!(header(&bypass, "x-framex-cache-key"), key, "FrameX-kit names the key even when bypassing");
    assert_ne!(bypass.json()["data"], miss.json()["data"]);
    assert_eq!(get(&url).await.json()["data"], miss.json()["data"], "bypass stored nothing");

    let refresh = get_with(&url, &[("X-FrameX-Cache", "refresh")]).await;
    assert_eq!(status(&refresh), "REFRESH");
    let after = get(&url).await;
    assert_eq!((status(&after).as_str(), &after.json()["data"]), ("HIT", &refresh.json()["data"]));
    assert_eq!(status(&get_with(&url, &[("X-FrameX-Cache", "whatever")]).await), "HIT", "unknown = use");

    let p1 = post_json(&server.url("/api/v1/count"), &json!({"a": 1, "b": 2})).await;
    let p2 = post_json(&server.url("/api/v1/count"), &json!({"b": 2, "a": 1})).await;
    let p3 = post_json(&server.url("/api/v1/count"), &json!({"a": 2})).await;
    assert_eq!([status(&p1), status(&p2), status(&p3)], ["MISS", "HIT", "MISS"]);
    assert_eq!(p1.json()["data"], p2.json()["data"], "key order does not matter (sort_keys)");

    let s1 = get(&server.url("/api/v1/short")).await;
    assert_eq!(status(&get(&server.url("/api/v1/short")).await), "HIT");
    actix_rt::time::sleep(Duration::from_millis(2100)).await;
    let s2 = get(&server.url("/api/v1/short")).await;
    assert_eq!(status(&s2), "MISS", "a 1-second entry expired");
    assert_ne!(s1.json()["data"], s2.json()["data"]);

    let f1 = get(&server.url("/api/v1/fails")).await;
    let f2 = get(&server.url("/api/v1/fails")).await;
    assert_eq!((f1.status, f2.status), (500, 500));
    assert_ne!(status(&f2), "HIT", "errors are never stored");

    let plain = get(&server.url("/api/v1/plain")).await;
    assert_eq!(status(&plain), "BYPASS", "FrameX-kit marks routes that do not cache");
    assert_eq!(header(&plain, "x-framex-cache-key"), "");
    let stream = get(&server.url("/api/v1/echo_stream?message=x")).await;
    assert_eq!(status(&stream), "", "streams are neither cached nor marked");

    let metrics = get(&server.url("/metrics")).await.text();
    assert!(metrics.contains("framex_cache_requests_total{status=\"hit\"}"), "{metrics}");
    server.stop(true).await;
}

/// A cached route that answers raw (`raw_response`) answers raw on a hit too, as on the
/// miss (a hit answered in the envelope).
#[actix_rt::test]
async fn a_raw_route_answers_raw_on_a_hit() {
    let calls = Arc::new(AtomicU64::new(0));
    let plugin = PluginBuilder::new("rawcache")
        .get("/api/v1/rawcount", move |_q: Q, _cx: Ctx| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<Value, Error>(json!({"n": n})) }
        })
        .cache(None)
        .raw_response()
        .build()
        .unwrap();
    let server = start(config("[cache]\nenabled = true\nmode = \"memory\""), vec![plugin]).await;
    let url = server.url("/api/v1/rawcount");
    let (miss, hit) = (get(&url).await, get(&url).await);
    assert_eq!([status(&miss), status(&hit)], ["MISS", "HIT"]);
    assert_eq!(miss.json(), json!({"n": 0}), "{}", miss.text());
    assert_eq!(hit.json(), miss.json(), "the hit as the miss: {}", hit.text());
    server.stop(true).await;
}

/// `[cache]` absent: caching routes say DISABLED and name no key; `HEAD`/`PUT` and
/// friends are not cached.
#[actix_rt::test]
async fn disabled_by_default() {
    let server = start(config(r#"load_builtin_plugins = ["echo"]"#), vec![counting(Arc::default())]).await;
    let r = get(&server.url("/api/v1/count")).await;
    assert_eq!((status(&r).as_str(), header(&r, "x-framex-cache-key").as_str()), ("DISABLED", ""));
    assert_eq!(status(&get(&server.url("/api/v1/count")).await), "DISABLED");
    let plain = get(&server.url("/api/v1/plain")).await;
    assert_eq!((plain.status, status(&plain).as_str()), (200, ""), "off: no header to pay for");
    server.stop(true).await;
}

/// Two `Authorization` keys never share an entry, and the key is never echoed.
#[actix_rt::test]
async fn authorization_keys_are_isolated() {
    let server = start(config("[cache]\nenabled = true"), vec![counting(Arc::default())]).await;
    let url = server.url("/api/v1/count?q=same");
    let alice = get_with(&url, &[("Authorization", "alice-secret")]).await;
    let bob = get_with(&url, &[("Authorization", "bob-secret")]).await;
    let anon = get(&url).await;
    assert_eq!([status(&alice), status(&bob), status(&anon)], ["MISS", "MISS", "MISS"]);
    assert_ne!(alice.json()["data"], bob.json()["data"]);
    let again = get_with(&url, &[("Authorization", "alice-secret")]).await;
    assert_eq!((status(&again).as_str(), &again.json()["data"]), ("HIT", &alice.json()["data"]));
    for r in [&alice, &bob, &again] {
        let headers = format!("{:?}", r.headers);
        assert!(!headers.contains("secret") && !r.text().contains("secret"));
    }
    // Headers not in the key cannot make one request's answer another's.
    let forwarded = get_with(&url, &[("X-Forwarded-Host", "evil"), ("Host", "evil")]).await;
    assert_eq!((status(&forwarded).as_str(), &forwarded.json()["data"]), ("HIT", &anon.json()["data"]));
    server.stop(true).await;
}

/// File mode: entries are `<sha256>.fxc` files another instance reads; a symlink
/// planted at an entry's name is never read nor written through.
#[actix_rt::test]
async fn file_mode_shares_and_ignores_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let toml = format!("[cache]\nenabled = true\nmode = \"file\"\nmax_size = 3\nfile_dir = {:?}", cache_dir.display().to_string());
    let one = start(config(&toml), vec![counting(Arc::default())]).await;
    let first = get(&one.url("/api/v1/count?q=f")).await;
    assert_eq!(status(&first), "MISS");
    let key = header(&first, "x-framex-cache-key");
    assert!(cache_dir.join(format!("{key}.fxc")).is_file());
    let two = start(config(&toml), vec![counting(Arc::new(AtomicU64::new(100)))]).await;
    let seen = get(&two.url("/api/v1/count?q=f")).await;
    assert_eq!((status(&seen).as_str(), &seen.json()["data"]), ("HIT", &first.json()["data"]));

    for i in 0..10 {
        get(&one.url(&format!("/api/v1/count?q=flood{i}"))).await;
    }
    let files = std::fs::read_dir(&cache_dir).unwrap().count();
    assert!(files <= 3, "max_size bounds the directory: {files} files");

    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "do not touch").unwrap();
    let r = get(&one.url("/api/v1/count?q=planted")).await;
    let planted = cache_dir.join(format!("{}.fxc", header(&r, "x-framex-cache-key")));
    std::fs::remove_file(&planted).unwrap();
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    let r = get(&one.url("/api/v1/count?q=planted")).await;
    assert_eq!((r.status, status(&r).as_str()), (200, "BYPASS"), "a symlink is not followed");
    let r = get_with(&one.url("/api/v1/count?q=planted"), &[("X-FrameX-Cache", "refresh")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not touch");
    one.stop(true).await;
    two.stop(true).await;
}

/// A `redis-server` on a free loopback port, killed on drop.
fn redis_server() -> (Process, u16) {
    let port = free_port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let process = Process(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (process, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not start");
}

/// Redis mode: two instances share entries; Redis killed: requests are served
/// uncached (BYPASS, never a 5xx) and the failure is counted.
#[actix_rt::test]
async fn redis_mode_shares_and_survives_redis_dying() {
    let (mut redis, port) = redis_server();
    let toml = format!("[cache]\nenabled = true\nmode = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}/0\"");
    let one = start(config(&toml), vec![counting(Arc::default())]).await;
    let two = start(config(&toml), vec![counting(Arc::new(AtomicU64::new(100)))]).await;
    let first = post_json(&one.url("/api/v1/count"), &json!({"a": 1})).await;
    assert_eq!(status(&first), "MISS", "{}", first.text());
    let seen = post_json(&two.url("/api/v1/count"), &json!({"a": 1})).await;
    assert_eq!((status(&seen).as_str(), &seen.json()["data"]), ("HIT", &first.json()["data"]));

    redis.0.kill().unwrap();
    redis.0.wait().unwrap();
    for _ in 0..3 {
        let r = post_json(&one.url("/api/v1/count"), &json!({"a": 1})).await;
        assert_eq!((r.status, status(&r).as_str()), (200, "BYPASS"), "{}", r.text());
    }
    let r = request("POST", &two.url("/api/v1/count"), &[("Content-Type", "application/json")], b"{\"a\":2}".to_vec()).await;
    assert_eq!(r.status, 200, "a store failing on write serves the answer");
    let metrics = get(&one.url("/metrics")).await.text();
    assert!(metrics.contains("framex_cache_failures_total{op=\"read\"}"), "{metrics}");
    one.stop(true).await;
    two.stop(true).await;
}

/// Config that cannot work is refused, naming the key.
#[test]
fn bad_cache_config_is_refused() {
    for (toml, key) in [
        ("[cache]\nttl = 0", "cache.ttl"),
        ("[cache]\nttl = -2", "cache.ttl"),
        ("[cache]\nmax_size = 0", "cache.max_size"),
        ("[cache]\nmode = \"redis\"", "cache.redis_url"),
        ("[cache]\nredis_url = \"http://x\"", "cache.redis_url"),
        ("[cache]\nbogus = 1", "bogus"),
        ("[plugins.proxy.cache]\n\"/a/*\" = { ttl = 0 }", "plugins.proxy.cache"),
    ] {
        let err = framex::config::Config::from_toml_str(toml, "t").unwrap_err().to_string();
        assert!(err.contains(key), "{toml}: {err}");
    }
    framex::config::Config::from_toml_str("[cache]\nenabled = true\nmode = \"file\"\nttl = -1", "t").unwrap();
}

fn proxied_doc() -> Value {
    let get = json!({"get": {"responses": {"200": {"description": "ok"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "up", "version": "1"},
        "paths": {
            "/api/v1/up/{id}": get, "/api/v1/cookie": get, "/api/v1/vary": get, "/api/v1/sse": get,
            "/api/v1/err": get, "/api/v1/link": get,
            "/api/v1/post": {"post": {"responses": {"200": {"description": "ok"}}}}
        }
    })
}

fn counting_upstream(calls: Arc<AtomicU64>) -> impl Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static {
    use actix_web::{web, HttpRequest, HttpResponse};
    move |cfg: &mut web::ServiceConfig| {
        let calls = calls.clone();
        let next = move || calls.fetch_add(1, Ordering::SeqCst);
        let (n1, n2, n3, n4, n5, n6) = (next.clone(), next.clone(), next.clone(), next.clone(), next.clone(), next);
        cfg.route("/api/v1/openapi.json", web::get().to(|| async { HttpResponse::Ok().json(proxied_doc()) }))
            .route("/api/v1/up/{id}", web::get().to(move |req: HttpRequest| {
                let n = n1();
                async move { HttpResponse::Ok().insert_header(("x-up", "kept")).json(json!({"n": n, "q": req.query_string()})) }
            }))
            .route("/api/v1/cookie", web::get().to(move || {
                let n = n2();
                async move { HttpResponse::Ok().insert_header(("set-cookie", "s=1")).json(json!(n)) }
            }))
            .route("/api/v1/vary", web::get().to(move || {
                let n = n3();
                async move { HttpResponse::Ok().insert_header(("vary", "X-Tenant")).json(json!(n)) }
            }))
            .route("/api/v1/err", web::get().to(move || {
                let n = n4();
                async move { HttpResponse::InternalServerError().json(json!(n)) }
            }))
            .route("/api/v1/sse", web::get().to(move || {
                let n = n5();
                let events = futures::stream::iter([Ok::<_, actix_web::Error>(bytes::Bytes::from(format!("data: {n}\n\n")))]);
                async move { HttpResponse::Ok().content_type("text/event-stream").streaming(events) }
            }))
            .route("/api/v1/link", web::get().to(|req: HttpRequest| async move {
                // Builds its link from the forwarding fields, as FastAPI apps behind a
                // proxy do, and echoes the request id.
                let field = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let next = format!("{}://{}{}/api/v1/link?page=2", field("x-forwarded-proto"), field("x-forwarded-host"), field("x-forwarded-prefix"));
                HttpResponse::Ok().insert_header(("x-request-id", field("x-request-id"))).json(json!({"next": next}))
            }))
            .route("/api/v1/post", web::post().to(move |body: web::Bytes| {
                let n = n6();
                async move { HttpResponse::Ok().json(json!({"n": n, "len": body.len()})) }
            }));
    }
}

/// `[plugins.proxy.cache]`: proxied answers are cached per method, path, query and
/// body; Set-Cookie, Vary on other headers, errors and streams never are; a body over
/// `max_entry_bytes` is forwarded uncached, not buffered; a cached answer carries its
/// `[limits]` headers like a forwarded one.
#[actix_rt::test]
async fn proxied_routes_under_rules() {
    let calls = Arc::new(AtomicU64::new(0));
    let (up, up_handle) = crate::common::spawn_upstream(counting_upstream(calls.clone()));
    let toml = format!(
        "load_builtin_plugins = [\"proxy\"]\n[cache]\nenabled = true\nmax_entry_bytes = 1000\n\
         [plugins.proxy]\ndiscovery_interval = 0\nproxy_urls = [\"{up}\"]\n\
         [plugins.proxy.cache]\n\"/api/v1/up/*\" = {{ ttl = 60 }}\n\"/api/v1/cookie\" = {{}}\n\"/api/v1/vary\" = {{}}\n\
         \"/api/v1/err\" = {{}}\n\"/api/v1/sse\" = {{}}\n\"/api/v1/post\" = {{}}\n\
         [limits.rules]\n\"/api/v1/up/*\" = {{ rate = 100, burst = 100, per = \"route\" }}\n"
    );
    let server = start(config(&toml), vec![]).await;
    let a = get(&server.url("/api/v1/up/1?x=1")).await;
    let b = get_with(&server.url("/api/v1/up/1?x=1"), &[("X-Forwarded-Host", "evil")]).await;
    assert_eq!([status(&a), status(&b)], ["MISS", "HIT"], "{}", a.text());
    assert_eq!((a.json(), header(&b, "x-up")), (b.json(), "kept".to_owned()));
    assert!(header(&b, "ratelimit").starts_with("\"default\";r="), "a cached answer counts and says so");
    assert_eq!(status(&get(&server.url("/api/v1/up/1?x=2")).await), "MISS");
    let other = get_with(&server.url("/api/v1/up/1?x=1"), &[("Authorization", "k2")]).await;
    assert_eq!(status(&other), "MISS", "another Authorization, another entry");

    for path in ["/api/v1/cookie", "/api/v1/vary", "/api/v1/err", "/api/v1/sse"] {
        let first = get(&server.url(path)).await;
        let second = get(&server.url(path)).await;
        assert_ne!(status(&second), "HIT", "{path} must not be stored");
        assert_ne!(first.body, second.body, "{path} answered twice by the upstream");
    }

    let post_url = server.url("/api/v1/post");
    let post = |body: &'static [u8]| request("POST", &post_url, &[("Content-Type", "application/json")], body.to_vec());
    let (p1, p2, p3) = (post(b"{\"a\":1}").await, post(b"{\"a\":1}").await, post(b"{\"a\":2}").await);
    assert_eq!([status(&p1), status(&p2), status(&p3)], ["MISS", "HIT", "MISS"]);
    let huge = vec![b'x'; 5000];
    let h1 = request("POST", &server.url("/api/v1/post"), &[], huge.clone()).await;
    let h2 = request("POST", &server.url("/api/v1/post"), &[], huge).await;
    assert_eq!([status(&h1), status(&h2)], ["BYPASS", "BYPASS"]);
    assert_eq!(h2.json()["len"], 5000, "forwarded whole, uncached");
    server.stop(true).await;
    up_handle.stop(false).await;
}

/// Attack: a client names another host (`Host`, which framex-rs tells the upstream as
/// `X-Forwarded-Host`) on a cached route whose upstream builds links from it. Its
/// answer is its own entry: other clients never get its links, not after a `refresh`
/// either; and a request id the upstream echoed is not replayed to them.
#[actix_rt::test]
async fn a_forged_host_cannot_poison_the_cache() {
    let (up, up_handle) = crate::common::spawn_upstream(counting_upstream(Arc::default()));
    let toml = format!(
        "load_builtin_plugins = [\"proxy\"]\n[cache]\nenabled = true\n\
         [plugins.proxy]\ndiscovery_interval = 0\nproxy_urls = [\"{up}\"]\n\
         [plugins.proxy.cache]\n\"/api/v1/link\" = {{ ttl = 60 }}\n"
    );
    let server = start(config(&toml), vec![]).await;
    let url = server.url("/api/v1/link");
    let evil = get_with(&url, &[("Host", "evil.example"), ("X-Request-Id", "attacker-id")]).await;
    assert_eq!(status(&evil), "MISS");
    assert_eq!(evil.json()["next"], "http://evil.example/api/v1/link?page=2");
    let mine = get(&url).await;
    assert_eq!(status(&mine), "MISS", "another host, another entry: {}", mine.text());
    let own_host = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    assert_eq!(mine.json()["next"], format!("http://{own_host}/api/v1/link?page=2"));
    let refreshed = get_with(&url, &[("Host", "evil2.example"), ("X-FrameX-Cache", "refresh")]).await;
    assert_eq!(status(&refreshed), "REFRESH");
    let again = get_with(&url, &[("X-Request-Id", "mine-2")]).await;
    assert_eq!(status(&again), "HIT");
    assert_eq!(again.json(), mine.json(), "still this host's own links");
    assert_eq!(header(&again, "x-request-id"), "", "no earlier request's id replayed");
    server.stop(true).await;

    // Behind a trusted proxy, its claims reach the upstream: each is its own entry.
    let server = start(config(&toml.replace("[cache]", "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[cache]")), vec![]).await;
    let url = server.url("/api/v1/link");
    let prefixed = get_with(&url, &[("X-Forwarded-Prefix", "//evil.example")]).await;
    assert_eq!(status(&prefixed), "MISS");
    assert!(prefixed.json()["next"].as_str().unwrap().contains("//evil.example"), "{}", prefixed.text());
    let plain = get(&url).await;
    assert_eq!(status(&plain), "MISS", "another prefix, another entry: {}", plain.text());
    assert!(!plain.text().contains("evil"), "{}", plain.text());
    // A `_` spelling of a field we set never reaches the upstream, so it keys nothing.
    let twin = get_with(&url, &[("X_Forwarded_Host", "evil.example")]).await;
    assert_eq!((status(&twin).as_str(), twin.json()), ("HIT", plain.json()));
    server.stop(true).await;
    up_handle.stop(false).await;
}

/// A FrameX-kit plugin with the same routes as [`counting`] (GET ones).
const KIT_PLUGIN: &str = r#"
import itertools
from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(name="counting", version="0.1.0", description="", author="", url="", required_remote_apis=[])
_n = itertools.count()

@on_register()
class CountingPlugin(BasePlugin):
    @on_request("/api/v1/count", methods=["GET"], cache={})
    async def count(self, q: str = "") -> dict:
        return {"n": next(_n), "q": q}

    @on_request("/api/v1/short", methods=["GET"], cache={"ttl": 1})
    async def short(self, q: str = "") -> int:
        return next(_n)

    @on_request("/api/v1/plain", methods=["GET"])
    async def plain(self, q: str = "") -> int:
        return next(_n)
"#;

/// The statuses a fixed sequence of requests gets from a server at `base`.
async fn sequence(base: &str) -> Vec<String> {
    let count = format!("{base}/api/v1/count?q=a");
    let mut seen = Vec::new();
    for header_value in ["", "", "bypass", "refresh", "", "Nonsense"] {
        let r = get_with(&count, &[("X-FrameX-Cache", header_value)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        seen.push(status(&r));
    }
    let plain = get(&format!("{base}/api/v1/plain?q=a")).await;
    assert_eq!(plain.status, 200, "{:?} {}", plain.headers, plain.text());
    seen.push(status(&plain));
    seen.push(status(&get(&format!("{base}/api/v1/short?q=a")).await));
    seen.push(status(&get(&format!("{base}/api/v1/short?q=a")).await));
    actix_rt::time::sleep(Duration::from_millis(2100)).await;
    seen.push(status(&get(&format!("{base}/api/v1/short?q=a")).await));
    seen
}

/// The same requests against FrameX-kit 0.4.2 and framex-rs get the same
/// `X-FrameX-Cache-Status` sequence, the same `X-FrameX-Cache-Key`, and DISABLED
/// alike when `[cache]` is off.
#[actix_rt::test]
async fn same_statuses_and_keys_as_framex_kit() {
    let files = [("counting.py", KIT_PLUGIN)];
    let paths = ["/api/v1/count", "/api/v1/short", "/api/v1/plain"];
    let on = "load_plugins = [\"counting\"]\n[cache]\nenabled = true\nmode = \"memory\"\n";
    let (kit, _dir) = crate::common::python::framex_kit_with(on, &paths, &files).await;
    let ours = start(config("[cache]\nenabled = true\nmode = \"memory\""), vec![counting(Arc::default())]).await;
    let base = ours.url("");
    let (theirs, mine) = (sequence(&kit.url).await, sequence(base.trim_end_matches('/')).await);
    assert_eq!(mine, theirs);
    assert_eq!(theirs, ["MISS", "HIT", "BYPASS", "REFRESH", "HIT", "HIT", "BYPASS", "MISS", "HIT", "MISS"]);
    let key = |r: Reply| header(&r, "x-framex-cache-key");
    let kit_key = key(get(&format!("{}/api/v1/count?q=k%C3%A9y", kit.url)).await);
    assert_eq!(key(get(&ours.url("/api/v1/count?q=k%C3%A9y")).await), kit_key, "FrameX-kit's key, byte for byte");
    ours.stop(true).await;
    drop(kit);

    let off = "load_plugins = [\"counting\"]\n[cache]\nenabled = false\n";
    let (kit, _dir) = crate::common::python::framex_kit_with(off, &paths, &files).await;
    let r = get(&format!("{}/api/v1/count?q=a", kit.url)).await;
    assert_eq!((status(&r).as_str(), header(&r, "x-framex-cache-key").as_str()), ("DISABLED", ""));
}
