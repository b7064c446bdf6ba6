//! FrameX-kit's keys, plugin options and flags that framex-rs reproduces (issue 22,
//! part B): the same request against FrameX-kit 0.4.2 and framex-rs where FrameX-kit
//! can run, framex-rs alone where it cannot (Rust plugin options).

use std::path::Path;
use std::sync::{Arc, Mutex};

use framex::actors::Error;
use framex::plugin::{Ctx, PluginBuilder};
use framex::Framex;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::common::python::{free_port, venv, Child};
use crate::common::{config, get, start, FramexProcess};

/// Writes `config.toml` (with a free port) and `files` into a new directory.
fn project(config_toml: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let toml = if config_toml.contains("[server]\n") {
        config_toml.replacen("[server]\n", &format!("[server]\nport = {port}\n"), 1)
    } else {
        format!("{config_toml}\n[server]\nport = {port}\n")
    };
    std::fs::write(dir.path().join("config.toml"), toml).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    (dir, port)
}

/// FrameX-kit and framex-rs, each run in its own copy of the same project.
async fn both(config_toml: &str, files: &[(&str, &str)], envs: &[(&str, &str)]) -> Vec<(Child, tempfile::TempDir)> {
    let mut out = Vec::new();
    for program in [venv().join("bin/framex"), Path::new(env!("CARGO_BIN_EXE_framex")).to_owned()] {
        let (dir, port) = project(config_toml, files);
        let child = Child::spawn(&program, &["run"], dir.path(), envs, port, "/health").await;
        out.push((child, dir));
    }
    out
}

/// Waits until `url` is served (FrameX-kit registers plugin routes after `/health`).
async fn body_when_served(url: &str) -> (u16, String) {
    let started = std::time::Instant::now();
    loop {
        let r = get(url).await;
        if r.status != 404 || started.elapsed() > std::time::Duration::from_secs(60) {
            return (r.status, r.text());
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

const PROJECT: &str = r#"load_builtin_plugins = ["echo"]
[server]
reversion = "from-toml"
excluded_log_paths = ["/api/v1/echo"]
"#;

#[actix_rt::test]
async fn version_dotenv_and_excluded_paths_answer_as_framex_kit_does() {
    let files = [(".env", "SERVER__REVERSION=from-dotenv\n"), (".env.prod", "server__reversion=from-prod\n")];
    let mut answers = Vec::new();
    for envs in [&[][..], &[("SERVER__REVERSION", "from-process")][..]] {
        for (child, _dir) in both(PROJECT, &files, envs).await {
            let version = get(&format!("{}/version", child.url)).await;
            let echo = body_when_served(&format!("{}/api/v1/echo?message=hi", child.url)).await;
            answers.push((version.status, version.text(), echo));
        }
    }
    assert_eq!(answers[0], answers[1], "FrameX-kit, then framex-rs: .env.prod wins over .env and the file");
    assert_eq!(answers[1].1, "\"from-prod\"");
    assert_eq!(answers[1].2, (200, "\"hi\"".to_owned()), "an excluded path answers without the envelope");
    assert_eq!(answers[2], answers[3], "FrameX-kit, then framex-rs: the environment wins over both files");
    assert_eq!(answers[3].1, "\"from-process\"");
}

#[derive(Debug, Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptsConfig {
    greeting: String,
    #[serde(default)]
    times: u32,
}

async fn greet(_: NoArgs, cx: Ctx) -> framex::Result<String> {
    let config: OptsConfig = cx.config()?;
    Ok(config.greeting.repeat(config.times.max(1) as usize))
}

fn opts_plugin(started: Arc<Mutex<Vec<String>>>) -> Arc<framex::actors::PluginSpec> {
    PluginBuilder::new("opts")
        .on_start(move |cx: Ctx| {
            let started = started.clone();
            async move {
                let config: OptsConfig = cx.config()?;
                started.lock().unwrap().push(format!("{}:{}", cx.plugin(), config.greeting));
                Ok(())
            }
        })
        .get("/greet", greet)
        .get("/greet_raw", greet)
        .raw_response()
        .api_prefix(false)
        .get("/bare", greet)
        .tags(["custom", "other"])
        .build()
        .unwrap()
}

#[actix_rt::test]
async fn plugin_options_on_start_and_own_config_work() {
    let started = Arc::new(Mutex::new(Vec::new()));
    let toml = "load_plugins = [\"opts\"]\n[plugins.opts]\ngreeting = \"hey\"\ntimes = 2\n";
    let server = start(config(toml), vec![opts_plugin(started.clone())]).await;
    assert_eq!(*started.lock().unwrap(), vec!["opts:hey".to_owned()], "on_start ran once, with its config");

    let r = get(&server.url("/api/v1/greet")).await;
    assert_eq!(r.json()["data"], "heyhey", "api_prefix (default) put /api/v1 in front: {}", r.text());
    let r = get(&server.url("/api/v1/greet_raw")).await;
    assert_eq!((r.status, r.text()), (200, "\"heyhey\"".to_owned()), "raw_response: no envelope");
    let r = get(&server.url("/bare")).await;
    assert_eq!(r.json()["data"], "heyhey", "api_prefix(false) serves the path as written");
    assert_eq!(get(&server.url("/api/v1/bare")).await.status, 404);

    let doc = get(&server.url("/api/v1/openapi.json")).await.json();
    assert_eq!(doc["paths"]["/bare"]["get"]["tags"], serde_json::json!(["custom", "other"]));
    assert_eq!(doc["paths"]["/api/v1/greet"]["get"]["tags"], serde_json::json!(["opts"]), "default tag: the plugin");
}

#[actix_rt::test]
async fn a_failing_on_start_or_a_bad_plugin_table_stops_the_start_naming_the_plugin() {
    let started = Arc::new(Mutex::new(Vec::new()));
    let bad_table = "load_plugins = [\"opts\"]\n[plugins.opts]\ngreeting = \"hey\"\ntypo = 1\n";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Framex::new(config(bad_table)).plugin(opts_plugin(started.clone())).start(listener).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("plugin 'opts' did not start") && message.contains("[plugins.opts]") && message.contains("typo"), "{message}");

    let failing = PluginBuilder::new("boom")
        .on_start(|_cx: Ctx| async { Err(Error::Plugin { status: 500, message: "no database".to_owned() }) })
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Framex::new(config("load_plugins = [\"boom\"]")).plugin(failing).start(listener).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin 'boom' did not start: its on_start failed: no database");
}

/// A start that fails after the proxy started (a plugin's `on_start`) stops its
/// background work: no health check reaches the upstream afterwards (while the same
/// proxy, started without the failing plugin, probes it every 0.1 s).
#[actix_rt::test]
async fn a_failed_start_leaves_no_proxy_running() {
    let probes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = probes.clone();
    let (up, up_handle) = crate::common::spawn_upstream(move |cfg| {
        let counted = counted.clone();
        cfg.route("/health", actix_web::web::get().to(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { actix_web::HttpResponse::Ok().finish() }
        }));
    });
    let failing = PluginBuilder::new("boom")
        .on_start(|_cx: Ctx| async { Err(Error::Plugin { status: 500, message: "no database".to_owned() }) })
        .build()
        .unwrap();
    let proxy = format!(
        "[plugins.proxy]\nproxy_urls = [\"{up}\"]\nhealth_check_path = \"/health\"\nhealth_check_interval = 0.1\n"
    );
    // The control: started, the proxy probes.
    let running = crate::common::start(config(&format!("load_builtin_plugins = [\"proxy\"]\n{proxy}")), vec![]).await;
    actix_rt::time::sleep(std::time::Duration::from_millis(700)).await;
    running.stop(true).await;
    assert!(probes.load(std::sync::atomic::Ordering::SeqCst) >= 2, "a running proxy probes its upstream");
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    probes.store(0, std::sync::atomic::Ordering::SeqCst);
    let toml = format!("load_builtin_plugins = [\"proxy\"]\nload_plugins = [\"boom\"]\n{proxy}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Framex::new(config(&toml)).plugin(failing).start(listener).await.unwrap_err();
    assert!(err.to_string().contains("no database"), "{err}");
    // A probe already connected may still land; nothing starts afterwards.
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = probes.load(std::sync::atomic::Ordering::SeqCst);
    actix_rt::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(probes.load(std::sync::atomic::Ordering::SeqCst), after, "health checks go on after a failed start");
    up_handle.stop(true).await;
}

fn write_config(dir: &Path, toml: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[actix_rt::test]
async fn load_flags_add_to_the_config_lists() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(dir.path(), &format!("load_builtin_plugins = [\"echo\"]\n[server]\nport = {port}\n"));
    let args = ["run", "-c", path.to_str().unwrap(), "--load-builtin-plugins", "proxy"];
    let child = Child::spawn(Path::new(env!("CARGO_BIN_EXE_framex")), &args, dir.path(), &[], port, "/health").await;
    assert_eq!(get(&format!("{}/api/v1/echo?message=a", child.url)).await.status, 200, "the config's echo stays");
    assert_eq!(get(&format!("{}/api/v1/proxy/upstreams", child.url)).await.status, 200, "the flag's proxy is added");
    drop(child);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["run", "-c", path.to_str().unwrap(), "--load-plugins", "nope\u{1b}[31m"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("load_plugins: unknown plugin 'nope\\u{1b}[31m'"), "named, escaped: {stderr}");
}

#[actix_rt::test]
async fn run_warns_once_about_unused_keys_and_leaves_probes_out_of_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let toml = format!("[sentry]\nenable = true\n[server]\nport = {port}\naccess_log = \"text\"\nuse_ray = false\n");
    let path = write_config(dir.path(), &toml);
    let framex = FramexProcess::spawn(&path, "").await;
    let url = format!("http://127.0.0.1:{port}");
    get(&format!("{url}/health")).await;
    get(&format!("{url}/ping")).await;
    get(&format!("{url}/version")).await;
    framex.until("\"GET /version\"").await;
    let log = framex.log();
    assert_eq!(log.matches("FrameX-kit keys accepted but unused: server.use_ray").count(), 1, "{log}");
    assert_eq!(log.matches("sentry.enable is true but sentry.dsn is empty: Sentry is off").count(), 1, "{log}");
    assert!(!log.contains("GET /health") && !log.contains("GET /ping"), "[log] ignored_contains default: {log}");
}

#[derive(Debug, Deserialize)]
struct TypedConfig {
    #[allow(dead_code)]
    retries: u32,
}

async fn typed(_: NoArgs, cx: Ctx) -> framex::Result<u32> {
    Ok(cx.config::<TypedConfig>()?.retries)
}

/// A plugin table that does not fit its type: the client gets a plain 500 with the
/// request id, never the value (it may be a secret); the error names the key.
#[actix_rt::test]
async fn a_misfit_plugin_table_never_shows_its_values() {
    let plugin = PluginBuilder::new("typed").get("/typed", typed).build().unwrap();
    let toml = "load_plugins = [\"typed\"]\n[plugins.typed]\nretries = \"hunter2-secret\"\n";
    let server = start(config(toml), vec![plugin]).await;
    let r = get(&server.url("/api/v1/typed")).await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("internal error") && !r.text().contains("hunter2"), "{}", r.text());
    let cx_error = Error::PluginConfig { plugin: "typed".into(), reason: "x".into() };
    assert_eq!(cx_error.external_message(), "internal error");

    let checked = PluginBuilder::new("typed")
        .on_start(|cx: Ctx| async move { cx.config::<TypedConfig>().map(drop) })
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Framex::new(config(toml)).plugin(checked).start(listener).await.unwrap_err().to_string();
    assert!(err.contains("[plugins.typed]: invalid type") && !err.contains("hunter2"), "{err}");
}
