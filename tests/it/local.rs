//! Local plugins over HTTP: FrameX's shapes for the echo plugin, errors, auth,
//! OpenAPI, plugin-to-plugin calls and run-time registration.

use framex::actors::Error;
use framex::plugin::{Ctx, PluginBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::{config, get, get_with, post_json, request, sse_events, start};

const ECHO: &str = r#"load_builtin_plugins = ["echo"]"#;

/// The echo routes answer with FrameX's envelope, real statuses and SSE events.
#[actix_rt::test]
async fn echo_routes_answer_like_framex() {
    let server = start(config(ECHO), vec![]).await;

    let r = get(&server.url("/api/v1/echo?message=hi%20there")).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["status"], 200);
    assert_eq!(body["message"], "success");
    assert_eq!(body["data"], "hi there");
    let ts = body["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 19, "timestamp is YYYY-MM-DD HH:MM:SS: {ts}");

    let r = post_json(&server.url("/api/v1/echo_model?message=m"), &json!({"id": 7})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"], "m,{'id': 7, 'name': 'echo'}", "FrameX's answer, default name used");

    let r = get(&server.url("/api/v1/echo_stream?message=ab")).await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/event-stream"));
    let events = sse_events(&r.text());
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(last.0, "finish");
    let text: String = chunks
        .iter()
        .map(|(e, d)| {
            assert_eq!(e, "message_chunk");
            d["content"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "This message is being streamed., ab");
    assert_eq!(chunks.len(), text.chars().count(), "one chunk per character");

    server.stop(true).await;
}

/// Bad input gets the right status and says what is wrong.
#[actix_rt::test]
async fn bad_requests_get_clear_errors() {
    let server = start(config(ECHO), vec![]).await;

    let r = get(&server.url("/api/v1/echo")).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["status"], 422);
    assert!(r.text().contains("'message'"), "{}", r.text());
    assert_eq!(r.json()["data"]["detail"][0]["loc"], json!(["query", "message"]), "FastAPI's shape");

    let r = post_json(&server.url("/api/v1/echo_model?message=m"), &json!({"id": "seven"})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("id"), "{}", r.text());

    let r = request(
        "POST",
        &server.url("/api/v1/echo_model?message=m"),
        &[("content-type", "application/json")],
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("JSON decode error"), "{}", r.text());
    assert_eq!(r.json()["data"]["detail"][0]["type"], json!("json_invalid"));

    let r = get(&server.url("/api/v1/nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], 404);
    assert_eq!(r.json()["message"], "Not Found");
    assert!(r.json()["timestamp"].is_string());

    let r = request("DELETE", &server.url("/api/v1/echo"), &[], vec![]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers.get("allow").unwrap(), "GET, HEAD");

    // HEAD of a GET route: the GET's status and length, no body.
    let r = request("HEAD", &server.url("/api/v1/echo?message=hi"), &[], vec![]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    server.stop(true).await;
}

/// Built-in endpoints answer without any plugin, and answer `HEAD` as their `GET`
/// (a health check by `HEAD` sees 200, with the length and no body).
#[actix_rt::test]
async fn builtins_answer() {
    let server = start(config(""), vec![]).await;
    assert_eq!(get(&server.url("/health")).await.json(), json!("ok"));
    assert_eq!(get(&server.url("/ping")).await.json(), json!("pong"));
    assert_eq!(get(&server.url("/version")).await.json(), json!(framex::VERSION));
    for path in ["/health", "/ping", "/ready", "/version", "/metrics"] {
        let got = get(&server.url(path)).await;
        let head = request("HEAD", &server.url(path), &[], vec![]).await;
        assert_eq!(head.status, got.status, "{path}");
        assert!(head.body.is_empty(), "{path}");
        let length = |r: &crate::common::Reply| r.headers.get("content-length").map(|v| v.to_str().unwrap().to_owned());
        if path != "/metrics" {
            assert_eq!(length(&head), Some(got.body.len().to_string()), "{path}");
        }
    }
    let docs = get(&server.url("/docs")).await;
    assert!(docs.text().contains("/api/v1/openapi.json") && !docs.text().contains("https://"));
    server.stop(true).await;
}

/// The OpenAPI document describes local routes the way FrameX's proxy reads them:
/// query parameters with `schema.type`, JSON bodies as `$ref` into components.
#[actix_rt::test]
async fn openapi_describes_local_routes() {
    let server = start(config(ECHO), vec![]).await;
    let doc = get(&server.url("/api/v1/openapi.json")).await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let echo = &doc["paths"]["/api/v1/echo"]["get"];
    assert_eq!(echo["parameters"][0]["name"], "message");
    assert_eq!(echo["parameters"][0]["in"], "query");
    assert_eq!(echo["parameters"][0]["schema"]["type"], "string");
    let body = &doc["paths"]["/api/v1/echo_model"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let reference = body["$ref"].as_str().unwrap();
    let name = reference.strip_prefix("#/components/schemas/").unwrap();
    assert!(doc["components"]["schemas"][name]["properties"]["id"].is_object());
    assert!(doc["paths"]["/api/v1/echo_stream"]["get"].is_object());
    assert!(
        !doc.to_string().contains("confess"),
        "function APIs are never HTTP routes"
    );
    server.stop(true).await;
}

/// `[auth] rules` protect paths with `Authorization: <key>`; the key is never echoed.
#[actix_rt::test]
async fn auth_rules_protect_routes() {
    let server = start(
        config(
            r#"
load_builtin_plugins = ["echo"]
[auth]
rules = { "/api/v1/*" = ["k-secret-1"], "/api/v1/echo" = ["k-secret-2"] }
"#,
        ),
        vec![],
    )
    .await;
    let url = server.url("/api/v1/echo?message=x");
    let r = get(&url).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["status"], 401);
    let r = get_with(&url, &[("authorization", "wrong")]).await;
    assert_eq!(r.status, 401);
    assert!(!r.text().contains("k-secret"), "keys are never echoed");
    let r = get_with(&url, &[("authorization", "k-secret-2")]).await;
    assert_eq!(r.status, 200, "the longest matching rule applies");
    let r = get(&server.url("/health")).await;
    assert_eq!(r.status, 200, "unprotected paths stay open");
    server.stop(true).await;
}

#[derive(Deserialize, JsonSchema)]
struct Who {
    name: String,
}

#[derive(Deserialize, JsonSchema)]
struct Nothing {}

async fn greet(args: Who, _: Ctx) -> Result<String, Error> {
    Ok(format!("hello {}", args.name))
}

async fn secret(_: Nothing, _: Ctx) -> Result<i64, Error> {
    Ok(42)
}

fn plugin_b() -> std::sync::Arc<framex::actors::PluginSpec> {
    PluginBuilder::new("b")
        .get("/api/v1/b/greet", greet)
        .function("secret", secret)
        .build().expect("plugin declarations are valid")
}

async fn a_calls(_: Nothing, cx: Ctx) -> Result<Value, Error> {
    let greeting = cx
        .call_remote_api("/api/v1/b/greet", json!({"name": "a"}))
        .await?;
    let secret = cx.call_remote_api("b.BPlugin.secret", ()).await?;
    Ok(json!({"greeting": greeting, "secret": secret}))
}

async fn a_sneaks(_: Nothing, cx: Ctx) -> Result<Value, Error> {
    cx.call_remote_api("/api/v1/echo", json!({"message": "x"})).await
}

/// Plugin A calls plugin B's HTTP API and function API through `call_remote_api`;
/// an undeclared call fails with an error that says how to fix it.
#[actix_rt::test]
async fn plugins_call_each_other_through_the_engine() {
    let a = PluginBuilder::new("a")
        .requires(["/api/v1/b/greet", "b.BPlugin.secret"])
        .get("/api/v1/a/run", a_calls)
        .get("/api/v1/a/sneak", a_sneaks)
        .build().expect("plugin declarations are valid");
    let server = start(config(ECHO), vec![plugin_b(), a]).await;

    let r = get(&server.url("/api/v1/a/run")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"], json!({"greeting": "hello a", "secret": 42}));

    let r = get(&server.url("/api/v1/a/sneak")).await;
    assert_eq!(r.status, 500);
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("required_remote_apis") && message.contains("/api/v1/echo"),
        "{message}"
    );
    server.stop(true).await;
}

/// A plugin whose required API nobody serves stops start-up, naming both.
#[actix_rt::test]
async fn unresolvable_required_api_stops_start_up() {
    let a = PluginBuilder::new("lonely")
        .requires(["/api/v1/missing"])
        .get("/api/v1/lonely", secret)
        .build().expect("plugin declarations are valid");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = framex::Framex::new(config(""))
        .plugin(a)
        .start(listener)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lonely") && err.contains("/api/v1/missing"), "{err}");
}

/// A plugin registered while the server runs serves the very next request, and
/// unregistering it removes the route.
#[actix_rt::test]
async fn routes_registered_at_run_time_serve_the_next_request() {
    let server = start(config(""), vec![]).await;
    let url = server.url("/api/v1/b/greet?name=late");
    assert_eq!(get(&url).await.status, 404);
    server.engine().register_plugin(plugin_b()).await.unwrap();
    let r = get(&url).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"], "hello late");
    assert!(server.engine().unregister_plugin("b").await.unwrap());
    assert_eq!(get(&url).await.status, 404);
    server.stop(true).await;
}
