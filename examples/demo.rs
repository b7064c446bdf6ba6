//! The mission end to end, on an embedded default with no outside services:
//!
//! 1. a legacy service (an embedded stand-in for a FastAPI app) runs on loopback;
//! 2. framex-rs starts with the built-in `echo` and `proxy` plugins and the `invoker`
//!    example plugin, discovers the legacy service and serves everything on one API;
//! 3. a client calls a local route, a proxied route, a proxied stream, and a plugin
//!    that reaches the legacy service through `call_remote_api`;
//! 4. a local plugin for `/api/v1/legacy/greet` is registered while running, and the
//!    very same call is now served locally: transparent migration.
//!
//! Run with `cargo run --example demo`. Exits non-zero if any step misbehaves.

#[path = "shared/invoker.rs"]
mod invoker;
#[path = "shared/legacy.rs"]
mod legacy;

use std::time::Duration;

use anyhow::{ensure, Context as _};
use framex::actors::{Ctx, Error};
use framex::config::Config;
use framex::plugin::PluginBuilder;
use framex::Framex;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, JsonSchema)]
struct Name {
    name: String,
}

async fn greet(args: Name, _: Ctx) -> Result<Value, Error> {
    Ok(json!({ "greeting": format!("hello {}", args.name), "served_by": "framex-rs" }))
}

async fn get(client: &awc::Client, url: &str) -> anyhow::Result<(u16, Value)> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    let body = response.body().await.context("body")?;
    Ok((response.status().as_u16(), serde_json::from_slice(&body)?))
}

fn show(step: &str, status: u16, body: &Value) {
    println!("{step}\n    -> {status} {body}\n");
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let legacy = legacy::start();
    println!("legacy service (embedded stand-in) on {legacy}\n");

    let config = Config::from_toml_str(
        &format!(
            r#"
load_builtin_plugins = ["echo", "proxy"]
load_plugins = ["invoker"]
[server]
enable_proxy = true
workers = 1
[plugins.proxy]
proxy_urls = ["{legacy}"]
force_stream_apis = ["/api/v1/legacy/ticks"]
timeout = 10
"#
        ),
        "demo config",
    )?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let server = Framex::new(config)
        .plugin(invoker::plugin())
        .start(listener)
        .await?;
    println!("framex-rs on {}\n", server.url(""));
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();

    let (status, body) = get(&client, &server.url("/api/v1/echo?message=hello")).await?;
    show("1. local plugin route   GET /api/v1/echo?message=hello", status, &body);
    ensure!(status == 200 && body["data"] == "hello", "echo answered wrongly");

    let (status, body) = get(&client, &server.url("/api/v1/legacy/greet?name=ada")).await?;
    show("2. proxied route        GET /api/v1/legacy/greet?name=ada", status, &body);
    ensure!(status == 200 && body["served_by"] == "legacy", "proxy answered wrongly");

    let (status, body) = get(&client, &server.url("/api/v1/invoker/version")).await?;
    show("3. call_remote_api      GET /api/v1/invoker/version  (plugin -> proxy -> legacy)", status, &body);
    ensure!(status == 200 && body["data"]["version"] == "1.2.3", "invoker/version failed");

    let (status, body) = get(&client, &server.url("/api/v1/invoker/match")).await?;
    show("   with a model         GET /api/v1/invoker/match    (legacy envelope unwrapped)", status, &body);
    ensure!(status == 200 && body["data"]["matched"] == "test", "invoker/match failed");

    println!("4. proxied stream       GET /api/v1/legacy/ticks");
    let mut response = client
        .get(server.url("/api/v1/legacy/ticks"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut streamed = String::new();
    while let Some(chunk) = response.next().await {
        let chunk = chunk?;
        let text = String::from_utf8_lossy(&chunk);
        for line in text.lines().filter(|l| l.starts_with("data:")) {
            println!("    <- {line}");
        }
        streamed.push_str(&text);
    }
    println!();
    ensure!(streamed.contains("tick 2") && streamed.contains("finish"), "stream incomplete");

    server
        .engine()
        .register_plugin(
            PluginBuilder::new("greeter")
                .get("/api/v1/legacy/greet", greet)
                .build().expect("plugin declarations are valid"),
        )
        .await?;
    let (status, body) = get(&client, &server.url("/api/v1/legacy/greet?name=ada")).await?;
    show("5. after registering a local 'greeter' plugin at run time, the same call:", status, &body);
    ensure!(status == 200 && body["data"]["served_by"] == "framex-rs", "migration did not take over");

    server.stop(true).await;
    println!("demo finished: local, proxied, streamed, call_remote_api and live migration all worked");
    Ok(())
}
