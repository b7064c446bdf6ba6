//! Child processes from the Python venv: the FastAPI stand-in for a legacy service
//! and FrameX-kit instances. The venv is created once by `tests/python/ensure-venv`
//! and cached under `target/`; children are killed when their guard drops.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's directory, creating it on first use (serialized by a file lock in the
/// script, so parallel tests and CI share one install).
pub fn venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = repo().join("tests/python/ensure-venv");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/python/ensure-venv");
        assert!(out.status.success(), "ensure-venv failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(stdout.lines().last().expect("venv path").trim())
    })
    .clone()
}

/// The venv's Python interpreter.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// A port the OS says is free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (with its process group) when dropped.
pub struct Child {
    child: std::process::Child,
    /// Base URL it serves.
    pub url: String,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Child {
    /// Starts `program args` in `dir`, then waits until `ready_path` answers 2xx.
    pub async fn spawn(
        program: &Path,
        args: &[&str],
        dir: &Path,
        envs: &[(&str, &str)],
        port: u16,
        ready_path: &str,
    ) -> Child {
        let child = Child::start(program, args, dir, envs, format!("http://127.0.0.1:{port}"));
        wait_ready(&format!("{}{ready_path}", child.url), Duration::from_secs(90)).await;
        child
    }

    /// Sends `signal` to the child and waits (20 s at most, then kills it) until it
    /// has exited.
    pub async fn stop_with(&mut self, signal: i32) {
        // SAFETY: kill(2) with a plain signal number has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts `program args` in `dir`, to serve at `url`; does not wait.
    fn start(program: &Path, args: &[&str], dir: &Path, envs: &[(&str, &str)], url: String) -> Child {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("FRAMEX_TEST_CHILD_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (k, v) in envs {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Child { child, url }
    }
}

/// Polls `url` until it answers 2xx or `limit` passes (then panics).
pub async fn wait_ready(url: &str, limit: Duration) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(2))
        .finish();
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(start.elapsed() < limit, "{url} did not come up within {limit:?}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the FastAPI legacy app (`tests/python/legacy_app.py`) on a free port.
pub async fn legacy_app() -> Child {
    fastapi_app("legacy_app.py").await
}

/// Starts the FastAPI app with typed path parameters (`tests/python/typed_app.py`) on
/// a free port.
pub async fn typed_app() -> Child {
    fastapi_app("typed_app.py").await
}

/// Starts `tests/python/<script>` (taking `--port`, serving its OpenAPI document at
/// `/api/v1/openapi.json`) on a free port.
async fn fastapi_app(script: &str) -> Child {
    let port = free_port();
    let port_text = port.to_string();
    let script = repo().join("tests/python").join(script);
    Child::spawn(
        &python(),
        &[script.to_str().unwrap(), "--port", &port_text],
        &repo(),
        &[],
        port,
        "/api/v1/openapi.json",
    )
    .await
}

/// Starts a replica of a small FastAPI service (`tests/python/replica_app.py`) named
/// `name` on `port`, appending the ids of the POSTs it processes to `ids`.
pub async fn replica_app(port: u16, name: &str, ids: &Path) -> Child {
    replica_app_at("127.0.0.1", port, name, ids).await
}

/// As [`replica_app`], on loopback address `host` (`127.0.0.2`, …).
pub async fn replica_app_at(host: &str, port: u16, name: &str, ids: &Path) -> Child {
    let script = repo().join("tests/python/replica_app.py");
    let args = [
        script.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--name",
        name,
        "--ids",
        ids.to_str().unwrap(),
        "--host",
        host,
    ];
    let child = Child::start(&python(), &args, &repo(), &[], format!("http://{host}:{port}"));
    wait_ready(&format!("{}/health", child.url), Duration::from_secs(90)).await;
    child
}

/// Starts the FastAPI legacy app over HTTPS with the given PEM certificate and key,
/// and waits until its port accepts connections.
pub async fn legacy_app_tls(cert: &Path, key: &Path) -> Child {
    let port = free_port();
    let script = repo().join("tests/python/legacy_app.py");
    let args = [
        script.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--ssl-certfile",
        cert.to_str().unwrap(),
        "--ssl-keyfile",
        key.to_str().unwrap(),
    ];
    let child = Child::start(&python(), &args, &repo(), &[], format!("https://127.0.0.1:{port}"));
    let start = Instant::now();
    while actix_rt::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(90), "the HTTPS legacy app never listened");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    child
}

/// Starts a FrameX-kit instance (`framex run` from the venv) in a fresh directory
/// holding `config_toml`, which must not set `[server] port`: the port is chosen
/// here. Waits until its OpenAPI document lists every path in `expect_paths`
/// (FrameX-kit registers proxied routes after it starts listening).
pub async fn framex_kit(config_toml: &str, expect_paths: &[&str]) -> (Child, tempfile::TempDir) {
    framex_kit_with(config_toml, expect_paths, &[]).await
}

/// As [`framex_kit`], with `files` (name, text) written beside the config, which is
/// on `PYTHONPATH` (so a plugin module there can be loaded by name).
pub async fn framex_kit_with(
    config_toml: &str,
    expect_paths: &[&str],
    files: &[(&str, &str)],
) -> (Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let python_path = dir.path().display().to_string();
    let port = free_port();
    let config = format!("{config_toml}\n");
    let config = if config.contains("[server]") {
        config.replacen("[server]", &format!("[server]\nport = {port}"), 1)
    } else {
        format!("{config}\n[server]\nport = {port}\n")
    };
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let envs = [("PYTHONPATH", python_path.as_str())];
    let child = Child::spawn(&venv().join("bin/framex"), &["run"], dir.path(), &envs, port, "/health").await;
    let docs = format!("{}/api/v1/openapi.json", child.url);
    let client = awc::Client::builder().timeout(Duration::from_secs(5)).finish();
    let start = Instant::now();
    loop {
        let listed = match client.get(&docs).send().await {
            Ok(mut r) => r
                .body()
                .limit(1 << 24)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|doc| expect_paths.iter().all(|p| doc["paths"].get(*p).is_some())),
            Err(_) => false,
        };
        if listed {
            return (child, dir);
        }
        assert!(start.elapsed() < Duration::from_secs(60), "FrameX-kit never listed {expect_paths:?}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}
