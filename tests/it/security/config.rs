//! Config that says no (attacks 8 and 10, and `[auth.oauth]`): each value that cannot
//! work is refused by the real `framex` binary, by `check` and by `run` alike, from
//! the file and from the environment, with an error naming the key (and the file).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the `framex` binary with `args` in `dir` and `env`; kills it (and fails the
/// test) if it has not exited within 30 s.
fn framex(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn framex");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "framex {args:?} still running after 30 s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `check` and `run` both refuse `toml` (plus `env`), naming `key` and,
/// when the value comes from the file, the file.
fn refused_by_check_and_run(toml: &str, env: &[(&str, &str)], key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, toml).unwrap();
    let file = file.to_str().unwrap();
    for args in [vec!["check", "-c", file], vec!["run", "-c", file, "--port", "0"]] {
        let out = framex(dir.path(), &args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "framex {args:?} accepted {toml:?} {env:?}: {stderr}");
        assert!(stderr.contains(key), "framex {args:?} on {toml:?} {env:?} does not name {key}: {stderr}");
        if env.is_empty() {
            assert!(stderr.contains("bad.toml"), "framex {args:?} does not name the file: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("serving on"), "framex {args:?} started: {stderr}");
    }
}

/// Attack 8: `rules = { "/api/v1/echo" = [""] }` made the path public; an empty key
/// list was accepted. Both are refused, in `[auth]` and in the proxy's rules.
#[test]
fn empty_auth_keys_are_refused() {
    refused_by_check_and_run("[auth]\nrules = { \"/api/v1/echo\" = [\"\"] }\n", &[], "auth.rules");
    refused_by_check_and_run("[auth]\nrules = { \"/api/v1/echo\" = [] }\n", &[], "auth.rules");
    refused_by_check_and_run(
        "[plugins.proxy.auth]\nrules = { \"/api/v1/x\" = [\"\"] }\n",
        &[],
        "plugins.proxy.auth.rules",
    );
}

/// Attack 10: `timeout = 1e300` passed `check` and panicked at `run`; the same from
/// the environment; a health check every nanosecond; other durations out of range.
#[test]
fn absurd_durations_are_refused_from_the_file_and_the_environment() {
    refused_by_check_and_run("[plugins.proxy]\ntimeout = 1e300\n", &[], "plugins.proxy.timeout");
    refused_by_check_and_run("", &[("PLUGINS__PROXY__TIMEOUT", "1e300")], "plugins.proxy.timeout");
    refused_by_check_and_run("", &[("PLUGINS__PROXY__CONNECT_TIMEOUT", "nan")], "plugins.proxy.connect_timeout");
    refused_by_check_and_run(
        "[plugins.proxy]\nhealth_check_path = \"/health\"\nhealth_check_interval = 1e-9\n",
        &[],
        "plugins.proxy.health_check_interval",
    );
    refused_by_check_and_run("[plugins.proxy]\ndiscovery_interval = 1e-6\n", &[], "plugins.proxy.discovery_interval");
}

/// Attack 10: `max_hops = 0`, ports over 65535, CR/LF and credentials in
/// `proxy_urls`, unknown plugins, all passed `check`.
#[test]
fn impossible_values_are_refused() {
    refused_by_check_and_run("[plugins.proxy]\nmax_hops = 0\n", &[], "plugins.proxy.max_hops");
    refused_by_check_and_run("[server]\nport = 70000\n", &[], "server.port");
    refused_by_check_and_run("", &[("SERVER__PORT", "70000")], "server.port");
    refused_by_check_and_run(
        "[plugins.proxy]\nproxy_urls = [\"http://127.0.0.1:70000\"]\n",
        &[],
        "plugins.proxy.proxy_urls",
    );
    refused_by_check_and_run(
        "[plugins.proxy]\nproxy_urls = [\"http://127.0.0.1:1\\r\\nX-Injected: 1\"]\n",
        &[],
        "plugins.proxy.proxy_urls",
    );
    refused_by_check_and_run(
        "[plugins.proxy.proxy_urls.\"http://user:pw@127.0.0.1:1\"]\n",
        &[],
        "plugins.proxy.proxy_urls",
    );
    refused_by_check_and_run("[plugins.proxy]\nproxy_urls = [\"http://127.0.0.1:1/?a=b\"]\n", &[], "plugins.proxy.proxy_urls");
    refused_by_check_and_run("load_builtin_plugins = [\"echo\", \"nosuch\"]\n", &[], "load_builtin_plugins");
    refused_by_check_and_run("load_plugins = [\"nosuch\"]\n", &[], "load_plugins");
    refused_by_check_and_run("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", &[], "server.trusted_proxies");
}

/// `[auth.oauth]` that cannot log anyone in (a short `jwt_secret`, the `none`
/// algorithm, no `app_url`) is a start-up error naming the key, never public docs.
#[test]
fn oauth_settings_that_cannot_work_are_refused() {
    let base = "[auth.oauth]\nbase_url = \"https://login.example\"\nclient_id = \"id\"\nredirect_uri = \"/cb\"\n";
    let secret = "jwt_secret = \"a jwt secret of at least 32 bytes!\"\n";
    refused_by_check_and_run(&format!("{base}app_url = \"https://a.example\"\njwt_secret = \"short\"\n"), &[], "auth.oauth.jwt_secret");
    refused_by_check_and_run(&format!("{base}app_url = \"https://a.example\"\n{secret}jwt_algorithm = \"none\"\n"), &[], "auth.oauth.jwt_algorithm");
    refused_by_check_and_run(&format!("{base}{secret}"), &[], "auth.oauth.app_url");
}

/// The example config and a FrameX-kit style config still pass `check`.
#[test]
fn example_and_framex_kit_configs_still_pass() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let kit = dir.path().join("kit.toml");
    std::fs::write(
        &kit,
        r#"
load_builtin_plugins = ["echo", "proxy"]
load_plugins = []
[server]
host = "127.0.0.1"
port = 8080
use_ray = false
dashboard_port = 8260
num_cpus = -1
enable_proxy = true
[log]
simple_log = true
[sentry]
enable = false
[auth]
rules = { "/api/v1/echo" = ["k1", "k2"], "/api/v1/*" = ["k3"] }
[plugins.proxy]
proxy_urls = ["http://127.0.0.1:9000"]
white_list = ["/api/v1/*"]
timeout = 600
[plugins.proxy.auth]
rules = { "/api/v1/x" = ["up"] }
"#,
    )
    .unwrap();
    for file in [example.as_path(), kit.as_path()] {
        let out = framex(dir.path(), &["check", "-c", file.to_str().unwrap()], &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("config is valid"),
            "{}: {stdout} {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("k1") && !stdout.contains("k3"), "keys are never printed: {stdout}");
    }
}
