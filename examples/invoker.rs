//! FrameX's `invoker` example in Rust: a plugin that calls a legacy service through
//! `call_remote_api("/api/v1/base/version")` and
//! `call_remote_api("/api/v1/base/match", model = {"name": "test"})`.
//!
//! `cargo run --example invoker` serves it next to an embedded legacy stand-in. Point
//! it at your own service instead with `cargo run --example invoker -- URL`.

#[path = "shared/invoker.rs"]
mod invoker;
#[path = "shared/legacy.rs"]
mod legacy;

use framex::config::Config;
use framex::Framex;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let upstream = match std::env::args().nth(1) {
        Some(url) => url,
        None => legacy::start(),
    };
    let config = Config::from_toml_str(
        &format!(
            r#"
load_builtin_plugins = ["proxy"]
load_plugins = ["invoker"]
[server]
enable_proxy = true
port = 0
[plugins.proxy]
proxy_urls = ["{upstream}"]
"#
        ),
        "invoker example",
    )?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let server = Framex::new(config).plugin(invoker::plugin()).start(listener).await?;
    let client = awc::Client::default();
    for path in ["/api/v1/invoker/version", "/api/v1/invoker/match"] {
        let mut response = client
            .get(server.url(path))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let body = response.body().await?;
        println!("GET {path} -> {} {}", response.status(), String::from_utf8_lossy(&body));
        anyhow::ensure!(response.status().is_success(), "{path} failed");
    }
    server.stop(true).await;
    Ok(())
}
