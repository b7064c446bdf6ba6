//! Migration modes (`[plugins.proxy.migrate]`) between the FastAPI legacy app and a
//! local Rust plugin serving the same routes: `shadow` compares off the client's path,
//! `canary` splits and rolls back, `upstream` pins, and a reload changes the mode.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use framex::actors::{Error, PluginSpec};
use framex::plugin::{Ctx, PluginBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::common::python::legacy_app;
use crate::common::{config, get, get_with, request, start};

/// The proxy on the legacy app at `legacy`, with `migrate` lines under
/// `[plugins.proxy.migrate]`.
fn migrate_config(legacy: &str, migrate: &str) -> String {
    format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
# The test's client names each request's id (a trusted proxy's, DESIGN §9).
trusted_proxies = ["127.0.0.1/32"]
[plugins.proxy]
timeout = 30
discovery_interval = 0
proxy_urls = ["{legacy}"]
[plugins.proxy.migrate]
{migrate}
"#
    )
}

#[derive(Deserialize, JsonSchema)]
struct ItemArgs {
    item_id: i64,
    q: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct NewItem {
    model: Map<String, Value>,
}

/// How many times the local plugin's routes were called.
#[derive(Default)]
struct Calls {
    get: AtomicUsize,
    post: AtomicUsize,
}

/// The local plugin replacing the legacy app's items routes. `GET` answers like
/// FastAPI (inside FrameX's envelope) for ids below 100; ids 100–199 answer a wrong
/// `q` (an injected mismatch), 500–599 fail with a 500, 900–999 answer right but
/// after 5 s.
fn items_plugin(calls: Arc<Calls>) -> Arc<PluginSpec> {
    let on_post = calls.clone();
    PluginBuilder::new("items")
        .get("/api/v1/items/{item_id}", move |args: ItemArgs, _: Ctx| {
            calls.get.fetch_add(1, Ordering::SeqCst);
            async move {
                match args.item_id {
                    100..=199 => Ok(json!({"item_id": args.item_id, "q": "local"})),
                    500..=599 => Err(Error::Plugin { status: 500, message: "local failure".into() }),
                    900..=999 => {
                        actix_rt::time::sleep(Duration::from_secs(5)).await;
                        Ok(json!({"item_id": args.item_id, "q": args.q}))
                    }
                    _ => Ok(json!({"item_id": args.item_id, "q": args.q})),
                }
            }
        })
        .post("/api/v1/items", move |args: NewItem, _: Ctx| {
            on_post.post.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!({"created": args.model.get("name")})) }
        })
        .build()
        .expect("plugin declarations are valid")
}

/// The migration page's entry for the items route.
async fn items_report(base: &str) -> Value {
    let page = get(&format!("{base}/api/v1/proxy/migration")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    page.json()["routes"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["route"] == "/api/v1/items/{item_id}").cloned())
        .unwrap_or_else(|| panic!("the items route is listed: {}", page.text()))
}

/// Polls the items route's counts until `done` says yes (at most 20 s).
async fn wait_for_counts(base: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let report = items_report(base).await;
        if done(&report["counts"]) {
            return report;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "counts never settled: {report}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a reply is the legacy app's bare answer (the upstream's), not our envelope.
fn from_upstream(body: &Value) -> bool {
    body.get("message").is_none() && body.get("item_id").is_some()
}

/// Shadow: the client always gets the upstream's answer, even when the local plugin
/// fails or is slow; matches and the injected mismatches are counted exactly, and each
/// mismatch shows its request id, path without query and first differing pointer.
#[actix_rt::test]
async fn shadow_serves_the_upstream_and_counts_matches_and_mismatches() {
    let legacy = legacy_app().await;
    let calls = Arc::new(Calls::default());
    let cfg = migrate_config(&legacy.url, r#""/api/v1/items/{item_id}" = { mode = "shadow" }"#);
    let server = start(config(&cfg), vec![items_plugin(calls.clone())]).await;
    let base = server.url("");

    for id in (0..10).chain([500, 501]) {
        let r = get(&format!("{base}/api/v1/items/{id}?q=x")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), json!({"item_id": id, "q": "x"}), "the upstream's bare answer");
    }
    for id in 100..103 {
        let id_header = format!("mm-{id}");
        let r = get_with(&format!("{base}/api/v1/items/{id}?q=secret"), &[("x-request-id", &id_header)]).await;
        assert_eq!(r.json(), json!({"item_id": id, "q": "secret"}));
    }
    // HEAD: FastAPI refuses it on a GET route (405) where the local plugin answers:
    // the client gets the upstream's 405, and the status difference is reported.
    let head = request("HEAD", &format!("{base}/api/v1/items/3?q=x"), &[], Vec::new()).await;
    assert_eq!(head.status, 405, "the upstream's answer");
    let started = Instant::now();
    let r = get(&format!("{base}/api/v1/items/900")).await;
    assert_eq!(r.json(), json!({"item_id": 900, "q": null}));
    assert!(started.elapsed() < Duration::from_secs(3), "the client does not wait for a 5 s local plugin");

    let report = wait_for_counts(&base, |c| c["match"].as_u64().unwrap_or(0) == 11).await;
    assert_eq!(report["mode"], "shadow");
    assert_eq!(report["active"], true, "a local plugin shadows the upstream route");
    assert_eq!(report["counts"]["match"], 11, "10 plain calls and the slow one: {report}");
    assert_eq!(report["counts"]["mismatch"], 4, "3 injected and the HEAD: {report}");
    assert_eq!(report["counts"]["local_error"], 2, "{report}");
    assert_eq!(report["counts"]["upstream_error"], 0, "{report}");
    let mismatches = report["mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 4);
    let by = |key: &str, value: &str| mismatches.iter().find(|m| m[key] == value).unwrap_or_else(|| panic!("{report}"));
    let head = by("method", "HEAD");
    assert_eq!((&head["method"], &head["pointer"], &head["upstream"], &head["local"]), (&json!("HEAD"), &json!("(status)"), &json!("405"), &json!("200")));
    let first = by("request_id", "mm-100");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/api/v1/items/100", "no query (it may carry secrets)");
    assert_eq!(first["pointer"], "/q");
    assert_eq!(first["upstream"], "\"secret\"");
    assert_eq!(first["local"], "\"local\"");
    assert_eq!(calls.get.load(Ordering::SeqCst), 17, "every call was shadowed once");
    let metrics = get(&format!("{base}/metrics")).await.text();
    for outcome in ["match", "mismatch", "local_error"] {
        let series = format!(
            "framex_migration_calls_total{{mode=\"shadow\",outcome=\"{outcome}\",route=\"/api/v1/items/{{item_id}}\"}}"
        );
        assert!(metrics.contains(&series), "{series} on /metrics:\n{metrics}");
    }
    server.stop(true).await;
}

/// A shadowed POST goes only to the upstream; once a reload marks the route
/// `unsafe = true`, the next POST reaches the local plugin too (no restart).
#[actix_rt::test]
async fn a_shadowed_post_reaches_the_local_plugin_only_when_unsafe() {
    let legacy = legacy_app().await;
    let calls = Arc::new(Calls::default());
    let safe = migrate_config(&legacy.url, r#""/api/v1/items" = { mode = "shadow" }"#);
    let server = start(config(&safe), vec![items_plugin(calls.clone())]).await;
    let url = server.url("/api/v1/items");
    let body = serde_json::to_vec(&json!({"name": "a", "owner": {"id": 1}})).unwrap();
    let post = || request("POST", &url, &[("content-type", "application/json")], body.clone());

    for _ in 0..3 {
        let r = post().await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["total"], 1.0, "the upstream answers");
    }
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.post.load(Ordering::SeqCst), 0, "no side effect duplicated by default");

    let unsafe_cfg = migrate_config(&legacy.url, r#""/api/v1/items" = { mode = "shadow", unsafe = true }"#);
    server.reload(config(&unsafe_cfg)).await;
    let r = post().await;
    assert_eq!(r.json()["total"], 1.0, "the upstream still answers");
    let started = Instant::now();
    while calls.post.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the unsafe shadow call never came");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls.post.load(Ordering::SeqCst), 1);
    server.stop(true).await;
}

/// Canary at 25 %: over 400 calls the local plugin's share is within 5 points of it,
/// and the client gets each side's own answer.
#[actix_rt::test]
async fn a_canary_sends_its_percent_to_the_local_plugin() {
    let legacy = legacy_app().await;
    let calls = Arc::new(Calls::default());
    let cfg = migrate_config(&legacy.url, r#""/api/v1/items/{item_id}" = { mode = "canary", percent = 25 }"#);
    let server = start(config(&cfg), vec![items_plugin(calls.clone())]).await;
    let mut local_answers = 0;
    for i in 0..400 {
        let id = i % 100;
        let r = get(&server.url(&format!("/api/v1/items/{id}"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        if from_upstream(&body) {
            assert_eq!(body, json!({"item_id": id, "q": null}));
        } else {
            assert_eq!(body["data"], json!({"item_id": id, "q": null}), "the local envelope");
            local_answers += 1;
        }
    }
    assert!((80..=120).contains(&local_answers), "{local_answers} of 400 answered locally");
    assert_eq!(calls.get.load(Ordering::SeqCst), local_answers);
    let report = items_report(&server.url("")).await;
    assert_eq!(report["canary_local"], local_answers as u64);
    assert_eq!(report["rolled_back"], false);
    server.stop(true).await;
}

/// A canary whose local plugin fails is rolled back after the first 20 local calls
/// (all failed, over the 5 % default); from then on the upstream answers every call.
#[actix_rt::test]
async fn a_failing_canary_rolls_back_to_the_upstream() {
    let legacy = legacy_app().await;
    let calls = Arc::new(Calls::default());
    let cfg = migrate_config(&legacy.url, r#""/api/v1/items/{item_id}" = { mode = "canary", percent = 50 }"#);
    let server = start(config(&cfg), vec![items_plugin(calls.clone())]).await;
    let mut failures = 0;
    for _ in 0..40 {
        let r = get(&server.url("/api/v1/items/500")).await;
        if r.status == 500 {
            failures += 1;
        } else {
            assert!(from_upstream(&r.json()), "{}", r.text());
        }
    }
    assert_eq!(failures, 20, "half of 40 calls went to the failing plugin");
    for _ in 0..30 {
        let r = get(&server.url("/api/v1/items/500")).await;
        assert_eq!(r.status, 200, "rolled back: {}", r.text());
        assert_eq!(r.json(), json!({"item_id": 500, "q": null}));
    }
    assert_eq!(calls.get.load(Ordering::SeqCst), 20, "no local call after the rollback");
    let report = items_report(&server.url("")).await;
    assert_eq!((report["rolled_back"].clone(), report["mode"].clone()), (json!(true), json!("upstream")));
    assert_eq!(report["configured"], "canary");
    assert_eq!(report["counts"]["local_error"], 20);
    server.stop(true).await;
}

/// `upstream` pins the route to the legacy app; a reload to `local` hands it to the
/// plugin without a restart. An entry for a route no local plugin serves is listed as
/// inactive and changes nothing.
#[actix_rt::test]
async fn a_reload_changes_the_mode() {
    let legacy = legacy_app().await;
    let calls = Arc::new(Calls::default());
    let pinned = migrate_config(
        &legacy.url,
        r#""/api/v1/items/{item_id}" = { mode = "upstream" }
"/api/v1/base/version" = { mode = "shadow" }"#,
    );
    let server = start(config(&pinned), vec![items_plugin(calls.clone())]).await;
    let url = server.url("/api/v1/items/7?q=z");
    assert_eq!(get(&url).await.json(), json!({"item_id": 7, "q": "z"}), "pinned to the upstream");
    assert_eq!(calls.get.load(Ordering::SeqCst), 0);
    assert_eq!(get(&server.url("/api/v1/base/version")).await.status, 200);
    let page = get(&server.url("/api/v1/proxy/migration")).await.json();
    let routes: Vec<(Value, Value, Value)> = page["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["route"].clone(), r["active"].clone(), r["counts"]["match"].clone()))
        .collect();
    assert_eq!(
        routes,
        vec![(json!("/api/v1/base/version"), json!(false), json!(0)), (json!("/api/v1/items/{item_id}"), json!(true), json!(0))],
        "sorted by template; the version route has no local plugin"
    );

    server.reload(config(&migrate_config(&legacy.url, ""))).await;
    let r = get(&url).await;
    assert_eq!(r.json()["data"], json!({"item_id": 7, "q": "z"}), "the local plugin's envelope: {}", r.text());
    assert_eq!(calls.get.load(Ordering::SeqCst), 1);
    server.stop(true).await;
}

#[derive(Deserialize, JsonSchema)]
struct CallerArgs {
    item_id: i64,
}

/// A plugin that reads an item through `call_remote_api`, as a migrating caller would.
fn caller_plugin() -> Arc<PluginSpec> {
    PluginBuilder::new("caller")
        .requires(["/api/v1/items/{item_id}"])
        .get("/api/v1/caller/{item_id}", |args: CallerArgs, cx: Ctx| async move {
            cx.call_remote_api("/api/v1/items/{item_id}", json!({"item_id": args.item_id})).await
        })
        .build()
        .expect("plugin declarations are valid")
}

/// `call_remote_api` from a plugin follows the route's mode: pinned to the upstream,
/// shadowed (the upstream's answer, the local one compared), then a 100 % canary (the
/// local plugin's answer), each after a reload.
#[actix_rt::test]
async fn call_remote_follows_the_migration_modes() {
    let legacy = legacy_app().await;
    let calls = Arc::new(Calls::default());
    let cfg = |mode: &str| config(&migrate_config(&legacy.url, &format!(r#""/api/v1/items/{{item_id}}" = {mode}"#)));
    let plugins = vec![items_plugin(calls.clone()), caller_plugin()];
    let server = start(cfg(r#"{ mode = "upstream" }"#), plugins).await;
    let url = server.url("/api/v1/caller/150");

    let r = get(&url).await;
    assert_eq!(r.json()["data"], json!({"item_id": 150, "q": null}), "the upstream's answer: {}", r.text());
    assert_eq!(calls.get.load(Ordering::SeqCst), 0);

    server.reload(cfg(r#"{ mode = "shadow" }"#)).await;
    let r = get(&url).await;
    assert_eq!(r.json()["data"], json!({"item_id": 150, "q": null}), "still the upstream's: {}", r.text());
    let report = wait_for_counts(&server.url(""), |c| c["mismatch"] == 1).await;
    assert_eq!(report["mismatches"][0]["pointer"], "/q", "{report}");
    assert_eq!(report["mismatches"][0]["path"], "/api/v1/items/{item_id}");
    assert_eq!(calls.get.load(Ordering::SeqCst), 1);

    server.reload(cfg(r#"{ mode = "canary", percent = 100 }"#)).await;
    let r = get(&url).await;
    assert_eq!(r.json()["data"], json!({"item_id": 150, "q": "local"}), "the local plugin's: {}", r.text());
    server.stop(true).await;
}

/// Local calls of the slow plugin under way now, and the most seen at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// The items route served slowly (1 s a call), noting how many calls run at once.
fn slow_items_plugin(in_flight: Arc<InFlight>) -> Arc<PluginSpec> {
    PluginBuilder::new("items")
        .get("/api/v1/items/{item_id}", move |args: ItemArgs, _: Ctx| {
            let in_flight = in_flight.clone();
            async move {
                let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
                in_flight.most.fetch_max(now, Ordering::SeqCst);
                actix_rt::time::sleep(Duration::from_secs(1)).await;
                in_flight.now.fetch_sub(1, Ordering::SeqCst);
                Ok(json!({"item_id": args.item_id, "q": args.q}))
            }
        })
        .build()
        .expect("plugin declarations are valid")
}

/// 100 concurrent `call_remote_api`s to a shadowed route whose local plugin is slow:
/// every caller gets the upstream's answer at once, and at most
/// `MAX_SHADOWS_IN_FLIGHT` (64) local calls run at a time — the bound HTTP shadowing
/// has, now on the `CallRemote` path too (one decision for both).
#[actix_rt::test]
async fn shadowed_call_remotes_to_a_slow_plugin_stay_within_the_bound() {
    let legacy = legacy_app().await;
    let in_flight = Arc::new(InFlight::default());
    let cfg = config(&migrate_config(&legacy.url, r#""/api/v1/items/{item_id}" = { mode = "shadow" }"#));
    let server = start(cfg, vec![slow_items_plugin(in_flight.clone()), caller_plugin()]).await;

    let calls = (0..100).map(|i| {
        let url = server.url(&format!("/api/v1/caller/{i}"));
        async move { (i, get(&url).await) }
    });
    for (i, r) in futures::future::join_all(calls).await {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["data"], json!({"item_id": i, "q": null}), "the upstream's answer: {}", r.text());
    }
    let report = wait_for_counts(&server.url(""), |c| {
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        n("match") + n("not_compared") == 100
    })
    .await;
    let most = in_flight.most.load(Ordering::SeqCst);
    assert!(most > 0, "the local plugin was shadowed: {report}");
    assert!(most <= framex::http::migrate::state::MAX_SHADOWS_IN_FLIGHT, "{most} local calls ran at once");
    server.stop(true).await;
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// An upstream publishing the routes of [`truth_plugin`] (and the echo plugin's `GET
/// /api/v1/echo`), each answering `{"v": 1}`.
fn truth_upstream() -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{web, HttpResponse};
    let op = json!({"responses": {"200": {"description": "ok"}}});
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "legacy", "version": "1"},
        "paths": {
            "/api/v1/truth/shadow": {"get": op, "post": op},
            "/api/v1/truth/canary": {"get": op},
            "/api/v1/truth/pinned": {"get": op},
            "/api/v1/echo": {"get": op}
        }
    });
    crate::common::spawn_upstream(move |cfg| {
        let doc = doc.clone();
        cfg.route("/api/v1/openapi.json", web::get().to(move || { let doc = doc.clone(); async move { HttpResponse::Ok().json(doc) } }))
            .default_service(web::to(|| async { HttpResponse::Ok().json(json!({"v": 1})) }));
    })
}

/// The local side of [`truth_upstream`]'s routes, answering the same value.
fn truth_plugin() -> Arc<PluginSpec> {
    let same = |_: NoArgs, _: Ctx| async { Ok(json!({"v": 1})) };
    PluginBuilder::new("truth")
        .get("/api/v1/truth/shadow", same)
        .post("/api/v1/truth/shadow", same)
        .get("/api/v1/truth/canary", same)
        .get("/api/v1/truth/pinned", same)
        .build()
        .expect("plugin declarations are valid")
}

/// The `_count` of `framex_http_request_duration_seconds` for one method, route and
/// target (0 when the series does not exist).
fn duration_count(metrics: &str, method: &str, route: &str, target: &str) -> u64 {
    let series = format!("framex_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\",target=\"{target}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(series.as_str())).map_or(0, |n| n.trim().parse().unwrap())
}

/// One truth about where a request went: the upstream answers shadowed and pinned
/// routes (POSTs too) and `/metrics` says `target="upstream"` for them, `local` for a
/// canary's local share; a canary's local answers count as `local_only` (nothing was
/// compared), a shadowed POST as `skipped_unsafe`; the migration page is labelled as
/// itself, not `unmatched`; `framex routes` names the mode and who answers.
#[actix_rt::test]
async fn where_a_migrating_request_went_is_told_the_same_everywhere() {
    let (up, handle) = truth_upstream();
    let migrate = r#""/api/v1/truth/shadow" = { mode = "shadow" }
"/api/v1/truth/canary" = { mode = "canary", percent = 100 }
"/api/v1/truth/pinned" = { mode = "upstream" }
"/api/v1/echo" = { mode = "upstream" }"#;
    let cfg = migrate_config(&up, migrate);
    let server = start(config(&cfg), vec![truth_plugin()]).await;
    let base = server.url("");
    for path in ["shadow", "shadow", "canary", "canary", "pinned"] {
        let r = get(&format!("{base}/api/v1/truth/{path}")).await;
        assert_eq!((r.status, from_upstream_v(&r.json())), (200, path != "canary"), "{path}: {}", r.text());
    }
    for _ in 0..2 {
        let r = request("POST", &format!("{base}/api/v1/truth/shadow"), &[("content-type", "application/json")], b"{}".to_vec()).await;
        assert_eq!(r.json(), json!({"v": 1}), "the upstream answers a shadowed POST");
    }
    let page = get(&format!("{base}/api/v1/proxy/migration")).await.json();
    let counts = |route: &str| page["routes"].as_array().unwrap().iter().find(|r| r["route"] == route).unwrap()["counts"].clone();
    assert_eq!((counts("/api/v1/truth/canary")["local_only"].clone(), counts("/api/v1/truth/canary")["match"].clone()), (json!(2), json!(0)), "{page}");
    assert_eq!(counts("/api/v1/truth/shadow")["skipped_unsafe"], 2, "{page}");

    let metrics = get(&format!("{base}/metrics")).await.text();
    for (method, route, target, n) in [
        ("GET", "/api/v1/truth/shadow", "upstream", 2),
        ("POST", "/api/v1/truth/shadow", "upstream", 2),
        ("GET", "/api/v1/truth/pinned", "upstream", 1),
        ("GET", "/api/v1/truth/canary", "local", 2),
        ("GET", "/api/v1/truth/shadow", "local", 0),
        ("POST", "/api/v1/truth/shadow", "local", 0),
        ("GET", "/api/v1/truth/pinned", "local", 0),
    ] {
        assert_eq!(duration_count(&metrics, method, route, target), n, "{method} {route} target={target}");
    }
    assert!(metrics.contains("framex_migration_calls_total{mode=\"shadow\",outcome=\"skipped_unsafe\",route=\"/api/v1/truth/shadow\"} 2"), "{metrics}");
    assert!(metrics.contains("framex_http_requests_total{method=\"GET\",route=\"/api/v1/proxy/migration\",status=\"200\"}"), "{metrics}");
    server.stop(true).await;

    // `framex routes` (built-in plugins: echo) with the echo route pinned to the upstream.
    let listing_cfg = cfg.replace("load_builtin_plugins = [\"proxy\"]", "load_builtin_plugins = [\"echo\", \"proxy\"]");
    let listing = framex::cli::route_listing(&config(&listing_cfg)).await.unwrap();
    let echo = listing.table.lines().find(|l| l.starts_with("GET") && l.contains("/api/v1/echo ")).unwrap_or_else(|| panic!("{}", listing.table));
    assert!(echo.contains("upstream:") && echo.contains("(migrate upstream; plugin:echo waits)"), "{echo}");
    handle.stop(false).await;
}

/// Whether a reply is [`truth_upstream`]'s bare answer rather than the local envelope.
fn from_upstream_v(body: &Value) -> bool {
    body == &json!({"v": 1})
}
