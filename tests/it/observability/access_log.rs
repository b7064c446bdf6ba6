//! The JSON access log (`server.access_log = "json"`), read from a real `framex run`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::python::{free_port, legacy_app, wait_ready};
use crate::common::get_with;

/// A `framex run` child process, killed when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JSON objects among the `framex::access` lines of `log`.
fn access_objects(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| line.contains("framex::access"))
        .filter_map(|line| line.find('{').and_then(|at| serde_json::from_str(&line[at..]).ok()))
        .collect()
}

/// With `access_log = "json"`, a proxied request leaves one JSON object on one line:
/// the route template, the path without its query (a token in the query stays out of
/// the log), status, duration, bytes, the upstream URL that answered and the attempts,
/// the client's request id and the trace id of its `traceparent`.
#[actix_rt::test]
async fn json_access_log_has_one_object_per_request() {
    let legacy = legacy_app().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "load_builtin_plugins = [\"proxy\"]\n[server]\nport = {port}\naccess_log = \"json\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n[plugins.proxy]\nproxy_urls = [\"{}\"]\n",
            legacy.url
        ),
    )
    .unwrap();
    let log_path = dir.path().join("framex.log");
    let _process = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_framex"))
            .arg("run")
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/api/v1/items/1"), Duration::from_secs(30)).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = get_with(
        &format!("{base}/api/v1/items/42?token=hunter2"),
        &[("traceparent", traceparent), ("x-request-id", "req-\"json\"-1")],
    )
    .await;
    assert_eq!(reply.status, 200);

    let started = Instant::now();
    let line = loop {
        let log = std::fs::read_to_string(&log_path).unwrap();
        if let Some(line) = access_objects(&log).into_iter().find(|o| o["request_id"] == "req-\"json\"-1") {
            assert!(!log.contains("hunter2"), "the query stays out of the log:\n{log}");
            break line;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no JSON access line in:\n{log}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["route"], "/api/v1/items/{item_id}");
    assert_eq!(line["path"], "/api/v1/items/42");
    assert_eq!(line["status"], 200);
    assert_eq!(line["upstream"], legacy.url.as_str());
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["peer"], "127.0.0.1");
    assert_eq!(line["bytes_in"], 0);
    assert_eq!(line["bytes_out"].as_u64(), Some(reply.text().len() as u64));
    assert!(line["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{line}");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
}
