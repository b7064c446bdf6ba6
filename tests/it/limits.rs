//! `[limits]` against real servers: a key's rate over seconds, streams holding their
//! concurrency slots, forged addresses, a flood of distinct addresses, reload, and
//! two instances sharing one limit through a real `redis-server` (killed mid-run).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use futures::StreamExt;
use serde_json::json;

use crate::common::python::free_port;
use crate::common::{client, config, get, get_with, start};

/// A stand-in upstream: `/api/v1/items/{id}` answers at once, `/api/v1/chat` is an
/// SSE stream of `n` ticks 100 ms apart (endless without `n`), `/api/v1/who` answers.
fn upstream() -> (String, actix_web::dev::ServerHandle) {
    crate::common::spawn_upstream(|cfg| {
        let op = json!({"responses": {"200": {"description": "ok"}}});
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "limited", "version": "1"},
            "paths": {
                "/api/v1/items/{id}": {"get": {
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                    "responses": {"200": {"description": "ok"}}
                }},
                "/api/v1/chat": {"get": op},
                "/api/v1/who": {"get": op}
            }
        });
        cfg.route("/api/v1/openapi.json", web::get().to(move || {
            let doc = doc.clone();
            async move { HttpResponse::Ok().json(doc) }
        }))
        .route("/api/v1/items/{id}", web::get().to(|| async { HttpResponse::Ok().json(json!({"item": 1})) }))
        .route("/api/v1/who", web::get().to(|| async { HttpResponse::Ok().json(json!({"who": 1})) }))
        .route("/api/v1/chat", web::get().to(|q: web::Query<std::collections::HashMap<String, u32>>| async move {
            let n = q.get("n").copied().unwrap_or(u32::MAX);
            let ticks = futures::stream::unfold(0u32, move |i| async move {
                if i >= n {
                    return None;
                }
                actix_rt::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, actix_web::Error>(bytes::Bytes::from("data: tick\n\n")), i + 1))
            });
            HttpResponse::Ok().content_type("text/event-stream").streaming(ticks)
        }));
    })
}

fn limited_config(upstream: &str, limits: &str) -> framex::config::Config {
    config(&format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[auth]
rules = {{ "/api/v1/items/*" = ["secret-key-one", "secret-key-two"], "/api/v1/limits" = ["admin-key"] }}
[plugins.proxy]
proxy_urls = ["{upstream}"]
discovery_interval = 0
timeout = 10
force_stream_apis = ["/api/v1/chat"]
{limits}
"#
    ))
}

/// Sends `GET url` with `headers` until `window` has passed (at most 20,000
/// requests), counting the answers by status.
async fn hammer(urls: &[String], headers: &[(&str, &str)], window: Duration) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let start = Instant::now();
    let mut i = 0usize;
    while start.elapsed() < window && i < 20_000 {
        let r = get_with(&urls[i % urls.len()], headers).await;
        *counts.entry(r.status).or_default() += 1;
        i += 1;
    }
    counts
}

/// A key limited to 10/s (burst 1) gets 10±2 a second over 5 s; another key is not
/// slowed by it; refusals are 429 with the envelope, `Retry-After` and the rate-limit
/// headers; the status page names key identities, never keys.
#[actix_rt::test]
async fn a_key_gets_its_rate_and_no_more() {
    let (url, _upstream) = upstream();
    let limits = r#"
[limits.rules]
"/api/v1/items/*" = { rate = 10, burst = 1, per = "key" }
"#;
    let server = start(limited_config(&url, limits), vec![]).await;
    let item = server.url("/api/v1/items/7");
    let counts = hammer(std::slice::from_ref(&item), &[("Authorization", "secret-key-one")], Duration::from_secs(5)).await;
    let accepted = counts.get(&200).copied().unwrap_or(0);
    assert!((40..=61).contains(&accepted), "10±2 a second over 5 s: {counts:?}");
    assert!(counts.keys().all(|s| *s == 200 || *s == 429), "{counts:?}");

    let other = get_with(&item, &[("Authorization", "secret-key-two")]).await;
    assert_eq!(other.status, 200, "another key has its own budget");
    let refused = get_with(&item, &[("Authorization", "secret-key-one")]).await;
    let refused = if refused.status == 200 { get_with(&item, &[("Authorization", "secret-key-one")]).await } else { refused };
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["status"], 429, "the FrameX envelope: {}", refused.text());
    assert_eq!(refused.headers.get("retry-after").unwrap(), "1");
    assert_eq!(refused.headers.get("ratelimit-policy").unwrap(), "\"default\";q=1;w=1");
    assert!(refused.headers.get("ratelimit").unwrap().to_str().unwrap().starts_with("\"default\";r=0;t="));

    let page = get_with(&server.url("/api/v1/limits"), &[("Authorization", "admin-key")]).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("key:auth /api/v1/items/* #0") && !text.contains("secret-key"), "{text}");
    assert!(text.contains("top_keys"), "a request that passed the page's [auth] rule sees the busiest keys: {text}");
    assert_eq!(get(&server.url("/api/v1/limits")).await.status, 401, "the page is under [auth]");
    let metrics = get(&server.url("/metrics")).await.text();
    assert!(metrics.contains("framex_limit_decisions_total{outcome=\"limited\",rule=\"/api/v1/items/*\"}"), "{metrics}");
    server.stop(true).await;
}

/// Opens an SSE stream of `url` and reads its first event: the response, to hold.
async fn open_stream(url: &str) -> Result<awc::ClientResponse<impl futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin>, u16> {
    let mut response = client().get(url).send().await.expect("an answer");
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let first = response.next().await.expect("a first event").expect("bytes");
    assert!(String::from_utf8_lossy(&first).contains("tick"));
    Ok(response)
}

/// `limit_conn`: four streams open at once, the fifth refused (429), a slot freed when
/// a client leaves and when a stream ends.
#[actix_rt::test]
async fn four_streams_at_once_and_the_fifth_waits() {
    let (url, _upstream) = upstream();
    let limits = r#"
[limits.rules]
"/api/v1/chat" = { concurrent = 4, per = "route" }
"#;
    let server = start(limited_config(&url, limits), vec![]).await;
    let chat = server.url("/api/v1/chat");
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(open_stream(&chat).await.expect("one of the four"));
    }
    assert_eq!(open_stream(&chat).await.err(), Some(429), "the fifth is refused");
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let fifth = loop {
        match open_stream(&chat).await {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => actix_rt::time::sleep(Duration::from_millis(50)).await,
            Err(status) => panic!("the slot of the client that left was not freed: {status}"),
        }
    };
    open.push(fifth);
    assert_eq!(open_stream(&chat).await.err(), Some(429));
    drop(open);
    // A stream that ends by itself gives its slot back: six short ones in a row.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..6 {
        let r = get(&server.url("/api/v1/chat?n=2")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    server.stop(true).await;
}

/// Per address: a client that forges `X-Forwarded-For` (not a trusted proxy) is still
/// counted by its own address; a trusted proxy's clients are counted apart; a flood of
/// 20,000 distinct forwarded addresses keeps the table within `max_keys` (1,000); a
/// million keys straight into the table: `limits::table`'s unit test.
#[actix_rt::test]
async fn addresses_cannot_be_forged_or_flooded() {
    let (url, _upstream) = upstream();
    let limits = r#"
[limits]
max_keys = 1000
[limits.rules]
"/api/v1/who" = { rate = 1, burst = 2, per = "address" }
"#;
    let server = start(limited_config(&url, limits), vec![]).await;
    let who = server.url("/api/v1/who");
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(get_with(&who, &[("X-Forwarded-For", &format!("10.0.0.{i}"))]).await.status);
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429], "a forged X-Forwarded-For is not an address");
    server.stop(true).await;

    let trusted = format!("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n{limits}");
    let mut c = limited_config(&url, "");
    c.server.trusted_proxies = framex::config::TrustedProxies::parse(&["127.0.0.1"]).unwrap();
    c.limits = framex::config::Config::from_toml_str(&trusted, "t").unwrap().limits;
    // No [auth] rule over the status page here.
    c.auth = framex::config::Config::from_toml_str("[auth]\nrules = { \"/api/v1/items/*\" = [\"k\"] }", "t").unwrap().auth;
    let server = start(c, vec![]).await;
    let who = server.url("/api/v1/who");
    let mut flood = futures::stream::iter(0..20_000u32)
        .map(|i| {
            let (who, xff) = (who.clone(), format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
            async move { get_with(&who, &[("X-Forwarded-For", xff.as_str())]).await.status }
        })
        .buffer_unordered(16);
    let mut accepted = 0;
    while let Some(status) = flood.next().await {
        assert!(status == 200 || status == 429, "{status}");
        accepted += usize::from(status == 200);
    }
    assert!(accepted > 15_000, "distinct clients are counted apart: {accepted}");
    let page = get(&server.url("/api/v1/limits")).await;
    assert_eq!(page.status, 200, "no [auth] rule covers the page here");
    // Without an [auth] rule over it the page gives counts only: no client address.
    assert!(!page.text().contains("10.") && page.json()["rules"][0].get("top_keys").is_none(), "{}", page.text());
    let rule = &page.json()["rules"][0];
    assert!(rule["keys_tracked"].as_u64().unwrap() <= rule["max_keys"].as_u64().unwrap(), "{rule}");
    assert!(rule["max_keys"].as_u64().unwrap() <= 1000);
    server.stop(true).await;
}

/// A reload that leaves a rule unchanged keeps its counters; a changed rule starts
/// afresh.
#[actix_rt::test]
async fn reload_keeps_the_counters_of_unchanged_rules() {
    let (url, _upstream) = upstream();
    let limits = r#"
[limits.rules]
"/api/v1/who" = { rate = 0.01, burst = 1, per = "route" }
"/api/v1/chat" = { rate = 0.01, burst = 1, per = "route" }
"#;
    let server = start(limited_config(&url, limits), vec![]).await;
    for path in ["/api/v1/who", "/api/v1/chat?n=1"] {
        assert_eq!(get(&server.url(path)).await.status, 200);
        assert_eq!(get(&server.url(path)).await.status, 429);
    }
    let changed = r#"
[limits.rules]
"/api/v1/who" = { rate = 0.01, burst = 1, per = "route" }
"/api/v1/chat" = { rate = 0.01, burst = 2, per = "route" }
"#;
    let _ = server.reload(limited_config(&url, changed)).await;
    assert_eq!(get(&server.url("/api/v1/who")).await.status, 429, "unchanged rule, same counters");
    assert_eq!(get(&server.url("/api/v1/chat?n=1")).await.status, 200, "changed rule, new counters");
    server.stop(true).await;
}

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    async fn start() -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        Redis { child, url: format!("redis://127.0.0.1:{port}") }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two instances sharing one Redis hold one limit together; with Redis killed, the
/// `allow` rule lets requests through and the `deny` rule refuses them (503 as
/// configured), with no 5xx of ours in either.
#[actix_rt::test]
async fn a_fleet_shares_one_limit_through_redis() {
    let mut redis = Redis::start().await;
    let (url, _upstream) = upstream();
    let limits = format!(
        r#"
[redis]
url = "{}"
[limits]
backend = "redis"
on_backend_error = "allow"
[limits.rules]
"/api/v1/items/*" = {{ rate = 10, burst = 1, per = "route" }}
"/api/v1/who" = {{ rate = 1000, per = "route", on_backend_error = "deny", status = 503 }}
"/api/v1/chat" = {{ concurrent = 2, per = "route" }}
"#,
        redis.url
    );
    let a = start(limited_config(&url, &limits), vec![]).await;
    let b = start(limited_config(&url, &limits), vec![]).await;
    // Two streams open in the fleet at once, one on each instance; a slot given back
    // on one is taken on the other.
    let first = open_stream(&a.url("/api/v1/chat")).await.expect("one of two");
    let second = open_stream(&b.url("/api/v1/chat")).await.expect("two of two, on the other instance");
    assert_eq!(open_stream(&a.url("/api/v1/chat")).await.err(), Some(429), "the fleet holds two");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let third = loop {
        match open_stream(&b.url("/api/v1/chat")).await {
            Ok(stream) => break stream,
            Err(status) => {
                assert!(Instant::now() < deadline, "the slot given back on a never reached b: {status}");
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    drop((second, third));

    let items = [a.url("/api/v1/items/1"), b.url("/api/v1/items/1")];
    let key = [("Authorization", "secret-key-one")];
    let counts = hammer(&items, &key, Duration::from_secs(3)).await;
    let accepted = counts.get(&200).copied().unwrap_or(0);
    assert!((22..=40).contains(&accepted), "one limit of 10/s for both, not 10/s each: {counts:?}");
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), [200, 429], "{counts:?}");

    redis.kill();
    let after = hammer(&items, &key, Duration::from_secs(2)).await;
    assert_eq!(after.keys().copied().collect::<Vec<_>>(), [200], "allow: every request passes: {after:?}");
    let who = hammer(&[a.url("/api/v1/who"), b.url("/api/v1/who")], &[], Duration::from_secs(1)).await;
    assert_eq!(who.keys().copied().collect::<Vec<_>>(), [503], "deny: refused as configured: {who:?}");
    let metrics = get(&a.url("/metrics")).await.text();
    assert!(metrics.contains("outcome=\"backend_error_allowed\"") && metrics.contains("outcome=\"backend_error_denied\""));
    a.stop(true).await;
    b.stop(true).await;
}

/// WebSocket upgrades count: a route allowed one upgrade per 100 s tunnels the first
/// and refuses the second with 429.
#[actix_rt::test]
async fn websocket_upgrades_count() {
    let legacy = crate::common::python::legacy_app().await;
    let server = start(
        config(&format!(
            r#"
load_builtin_plugins = ["proxy"]
[limits.rules]
"/ws/*" = {{ rate = 0.01, burst = 1, per = "route" }}
[plugins.proxy]
discovery_interval = 0
[plugins.proxy.proxy_urls."{}"]
websocket = ["/ws/*"]
"#,
            legacy.url
        )),
        vec![],
    )
    .await;
    let ws = server.url("/ws/echo").replace("http://", "ws://");
    let ws_client = crate::protocols::websocket::ws_client;
    assert_eq!(ws_client(&["echo", &ws]).await["status"], 101);
    assert_eq!(ws_client(&["status", &ws]).await["status"], 429);
    server.stop(true).await;
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Item {
    id: i64,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Ticks {
    ticks: u32,
}

/// A plugin `name` whose `/api/v1/<name>/fetch?id=` calls the upstream's item `id`
/// through `CallRemote`.
fn fetcher(name: &str) -> std::sync::Arc<framex::actors::PluginSpec> {
    use framex::plugin::{Ctx, PluginBuilder};
    PluginBuilder::new(name)
        .requires(["/api/v1/items/{id}"])
        .get(&format!("/api/v1/{name}/fetch"), |args: Item, cx: Ctx| async move {
            cx.call_remote_api("/api/v1/items/{id}", json!({"id": args.id})).await
        })
        .build()
        .expect("plugin declarations are valid")
}

/// A plugin relaying `ticks` events of the upstream's `/api/v1/chat` stream, called
/// through `CallRemote`, as its own stream.
fn relay() -> std::sync::Arc<framex::actors::PluginSpec> {
    use framex::plugin::{Ctx, Emitter, PluginBuilder};
    PluginBuilder::new("relay")
        .requires(["/api/v1/chat"])
        .stream("/api/v1/relay/chat", |args: Ticks, cx: Ctx, out: Emitter| async move {
            let mut chat = cx.call_remote_stream("/api/v1/chat", ()).await?;
            for _ in 0..args.ticks {
                match chat.next().await {
                    Some(Ok(chunk)) => out.chunk(String::from_utf8_lossy(&chunk).into_owned()).await?,
                    _ => break,
                }
            }
            Ok(())
        })
        .build()
        .expect("plugin declarations are valid")
}

/// `CallRemote`s from plugins count, per calling plugin: plugin `a` gets its burst of
/// three calls to item 41 and then 429 with `Retry-After` (its own caller sees it);
/// item 42, which no rule covers, still answers (the rule sees the filled-in path);
/// plugin `b` and an HTTP client have budgets of their own. A stream a plugin opened
/// holds the route's one concurrency slot until the plugin lets it go.
#[actix_rt::test]
async fn calls_from_plugins_count_per_calling_plugin() {
    let (url, _upstream) = upstream();
    let limits = r#"
[limits.rules]
"/api/v1/items/41" = { rate = 0.1, burst = 3, per = "key" }
"/api/v1/chat" = { concurrent = 1, per = "route" }
"#;
    let server = start(limited_config(&url, limits), vec![fetcher("a"), fetcher("b"), relay()]).await;
    for _ in 0..3 {
        let r = get(&server.url("/api/v1/a/fetch?id=41")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["data"], json!({"item": 1}));
    }
    let refused = get(&server.url("/api/v1/a/fetch?id=41")).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.json()["status"], 429, "the FrameX envelope: {}", refused.text());
    let wait: u64 = refused.headers.get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "a call comes back within 10 s at 0.1/s: {wait}");
    assert_eq!(get(&server.url("/api/v1/a/fetch?id=42")).await.status, 200, "no rule covers item 42");
    assert_eq!(get(&server.url("/api/v1/b/fetch?id=41")).await.status, 200, "plugin b counts apart");
    let direct = get_with(&server.url("/api/v1/items/41"), &[("Authorization", "secret-key-one")]).await;
    assert_eq!(direct.status, 200, "an HTTP client counts apart: {}", direct.text());

    let chat = server.url("/api/v1/chat");
    // The relay would run for 1,000 s on its own: the slot can come back only because
    // its client left.
    let relayed = open_stream(&server.url("/api/v1/relay/chat?ticks=10000")).await.expect("the relay streams");
    assert_eq!(open_stream(&chat).await.err(), Some(429), "the plugin's stream holds the slot");
    drop(relayed);
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Err(status) = open_stream(&chat).await {
        assert!(Instant::now() < deadline, "the slot came back when the relay's client left: {status}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = get(&server.url("/metrics")).await.text();
    assert!(metrics.contains("framex_limit_decisions_total{outcome=\"limited\",rule=\"/api/v1/items/41\"}"), "{metrics}");
    server.stop(true).await;
}

/// A plugin `name` whose `on_start` calls the upstream's item 41 `calls` times
/// through `CallRemote`, counting those that answered in `answered`, and whose
/// `/api/v1/<name>/fetch?id=` does the same per request.
fn starting_fetcher(name: &str, calls: usize, answered: Arc<AtomicUsize>) -> Arc<framex::actors::PluginSpec> {
    use framex::plugin::{Ctx, PluginBuilder};
    PluginBuilder::new(name)
        .requires(["/api/v1/items/{id}"])
        .on_start(move |cx: Ctx| {
            let answered = answered.clone();
            async move {
                for _ in 0..calls {
                    cx.call_remote_api("/api/v1/items/{id}", json!({"id": 41})).await?;
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            }
        })
        .get(&format!("/api/v1/{name}/fetch"), |args: Item, cx: Ctx| async move {
            cx.call_remote_api("/api/v1/items/{id}", json!({"id": args.id})).await
        })
        .build()
        .expect("plugin declarations are valid")
}

/// A plugin's `on_start` calls go through `[limits]` as its later calls do, on the
/// same count: one that calls item 41 more often than its burst of two stops the
/// start at once with the limit's error (not a hang), after its first two calls
/// answered; one that calls it once has one call of its burst left for its requests.
#[actix_rt::test]
async fn start_hooks_are_counted_as_their_plugins_later_calls() {
    let (url, _upstream) = upstream();
    let limits = "[limits.rules]\n\"/api/v1/items/41\" = { rate = 0.1, burst = 2, per = \"key\" }\n";
    let answered = Arc::new(AtomicUsize::new(0));
    let greedy = framex::Framex::new(limited_config(&url, limits)).plugin(starting_fetcher("greedy", 3, answered.clone()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = actix_rt::time::timeout(Duration::from_secs(30), greedy.start(listener)).await;
    let Ok(Err(framex::StartError::PluginStart { plugin, source })) = started else {
        panic!("the start must fail at once with the limit's error: {:?}", started.map(|r| r.map(|_| "started")));
    };
    assert_eq!(plugin, "greedy");
    assert!(
        matches!(&source, framex::actors::Error::Limited { api, retry_after: 1..=10, unavailable: false } if api == "GET /api/v1/items/{id}"),
        "{source:?}"
    );
    assert_eq!(answered.load(Ordering::SeqCst), 2, "the burst's two calls answered before the third was refused");

    let answered = Arc::new(AtomicUsize::new(0));
    let server = start(limited_config(&url, limits), vec![starting_fetcher("modest", 1, answered.clone())]).await;
    assert_eq!(answered.load(Ordering::SeqCst), 1);
    assert_eq!(get(&server.url("/api/v1/modest/fetch?id=41")).await.status, 200, "one call of the burst is left");
    let refused = get(&server.url("/api/v1/modest/fetch?id=41")).await;
    assert_eq!(refused.status, 429, "the start hook's call was counted: {}", refused.text());
    server.stop(true).await;
}

/// A Redis slot nobody gave back (its instance died) is dropped once it is older than
/// its expiry, even while its key stays busy: asked every 50 ms, a key of one slot
/// whose holder vanished admits again after the (here 300 ms) expiry.
#[actix_rt::test]
async fn a_slot_never_given_back_expires_on_a_busy_key() {
    use framex::redis_store::{LimitAsk, Outcome, RedisStore};
    let redis = Redis::start().await;
    let store = RedisStore::new(&redis.url).expect("a Redis URL");
    let ask = |member| LimitAsk { interval_us: 0, tolerance_us: 0, slots: 1, expiry_ms: 300, member };
    let (rate, slots) = ("framex:test:{leak}:rate", "framex:test:{leak}:slots");
    let held = store.limit(rate, slots, ask(1)).await.expect("Redis answers");
    assert_eq!(held.outcome, Outcome::Allowed);
    let started = Instant::now();
    let mut busy = 0;
    let readmitted = loop {
        let reply = store.limit(rate, slots, ask(2)).await.expect("Redis answers");
        if reply.outcome == Outcome::Allowed {
            break started.elapsed();
        }
        busy += 1;
        assert!(started.elapsed() < Duration::from_secs(3), "the vanished holder's slot never expired");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(busy >= 3 && readmitted >= Duration::from_millis(250), "refused while held: {busy} times, {readmitted:?}");
    store.release(slots, 2).await;
    assert_eq!(store.limit(rate, slots, ask(3)).await.expect("Redis answers").outcome, Outcome::Allowed, "given back");
}
