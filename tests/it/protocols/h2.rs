//! HTTPS and HTTP/2 for clients, with curl: the same answers as on HTTP/1.1 for local
//! and proxied routes, streams that arrive as produced, limits and auth; h2c with
//! prior knowledge; bad certificate/key pairs refused at start-up naming the file.

use std::time::Duration;

use serde_json::Value;

use super::{curl, curl_lines, have};
use crate::common::certs::TestCa;
use crate::common::python::legacy_app;
use crate::common::{config, start};

/// framex-rs on HTTPS in front of the FastAPI legacy app, with the echo plugin, a
/// 1000-byte body limit and one path protected by a key.
fn tls_config(ca: &TestCa, legacy: &str) -> framex::config::Config {
    config(&format!(
        r#"
load_builtin_plugins = ["proxy", "echo"]
[server]
{}max_body_size = 1000
[auth]
rules = {{ "/api/v1/hidden" = ["let-me-in"] }}
[plugins.proxy]
proxy_urls = ["{legacy}"]
discovery_interval = 0
force_stream_apis = ["/api/v1/stream/sse"]
"#,
        ca.server_toml()
    ))
}

/// curl over HTTPS negotiates HTTP/2 and gets a local route, a proxied route (which
/// sees `X-Forwarded-Proto: https`), a streamed upload without `Content-Length`, and
/// the same 413 and 401 as on HTTP/1.1; HTTP/1.1 still works on the same listener.
#[actix_rt::test]
async fn https_h2_serves_local_and_proxied_routes_with_the_same_limits() {
    if !have("curl") {
        return;
    }
    let ca = TestCa::new();
    let legacy = legacy_app().await;
    let server = start(tls_config(&ca, &legacy.url), vec![]).await;
    let cacert = ca.path("ca.pem");
    let cacert = cacert.to_str().unwrap();
    let url = |path: &str| server.url(path);
    assert!(url("/").starts_with("https://"));

    let local = curl(&[
        "--http2",
        "--cacert",
        cacert,
        &url("/api/v1/echo?message=hi"),
    ])
    .await;
    assert!(local.ok, "{local:?}");
    assert_eq!(
        (local.version.as_str(), local.status),
        ("2", 200),
        "{local:?}"
    );
    let body: Value = serde_json::from_str(&local.body).unwrap();
    assert_eq!(body["data"], "hi", "{body}");

    let proxied = curl(&["--http2", "--cacert", cacert, &url("/api/v1/headers")]).await;
    assert_eq!(
        (proxied.version.as_str(), proxied.status),
        ("2", 200),
        "{proxied:?}"
    );
    let body: Value = serde_json::from_str(&proxied.body).unwrap();
    assert_eq!(body["headers"]["x-forwarded-proto"], "https", "{body}");

    let h1 = curl(&[
        "--http1.1",
        "--cacert",
        cacert,
        &url("/api/v1/base/version"),
    ])
    .await;
    assert_eq!((h1.version.as_str(), h1.status), ("1.1", 200), "{h1:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&h1.body).unwrap()["version"],
        "1.2.3"
    );

    // A body streamed from stdin: on HTTP/2 it has no Content-Length and no chunking.
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.bin");
    std::fs::write(&small, vec![7u8; 600]).unwrap();
    let upload = curl(&[
        "--http2",
        "--cacert",
        cacert,
        "-X",
        "POST",
        "-H",
        "content-type: application/octet-stream",
        "-H",
        "transfer-encoding: chunked",
        "--data-binary",
        &format!("@{}", small.display()),
        &url("/api/v1/binary"),
    ])
    .await;
    assert_eq!(
        (upload.version.as_str(), upload.status),
        ("2", 200),
        "{upload:?}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&upload.body).unwrap()["size"],
        600,
        "{upload:?}"
    );

    let large = dir.path().join("large.bin");
    std::fs::write(&large, vec![7u8; 5000]).unwrap();
    for framing in [&[][..], &["-H", "transfer-encoding: chunked"][..]] {
        let mut args = vec!["--http2", "--cacert", cacert, "-X", "POST"];
        args.extend_from_slice(framing);
        let data = format!("@{}", large.display());
        let target = url("/api/v1/binary");
        args.extend_from_slice(&["--data-binary", &data, &target]);
        let refused = curl(&args).await;
        assert_eq!(
            (refused.version.as_str(), refused.status),
            ("2", 413),
            "{framing:?}: {refused:?}"
        );
    }
    let refused = curl(&[
        "--http2",
        "--cacert",
        cacert,
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", large.display()),
        &url("/api/v1/echo_model"),
    ])
    .await;
    assert_eq!(refused.status, 413, "local route: {refused:?}");

    let unauthorized = curl(&["--http2", "--cacert", cacert, &url("/api/v1/hidden")]).await;
    assert_eq!(
        (unauthorized.version.as_str(), unauthorized.status),
        ("2", 401),
        "{unauthorized:?}"
    );
    assert!(
        unauthorized.body.contains("Invalid API Key"),
        "{unauthorized:?}"
    );
    let authorized = curl(&[
        "--http2",
        "--cacert",
        cacert,
        "-H",
        "authorization: let-me-in",
        &url("/api/v1/hidden"),
    ])
    .await;
    assert_eq!(authorized.status, 200, "{authorized:?}");

    // Without the test CA, curl refuses the certificate: it really is TLS.
    let untrusted = curl(&["--http2", &url("/api/v1/echo?message=hi")]).await;
    assert!(!untrusted.ok && untrusted.status == 0, "{untrusted:?}");
    server.stop(true).await;
}

/// Server-sent events over HTTP/2 reach curl as the upstream produces them: the first
/// event arrives long before the last (five events 600 ms apart); multiplexed with a
/// quick request on the same connection, the quick one is answered while the stream
/// is still running.
#[actix_rt::test]
async fn sse_over_h2_arrives_incrementally() {
    if !have("curl") {
        return;
    }
    let ca = TestCa::new();
    let legacy = legacy_app().await;
    let server = start(tls_config(&ca, &legacy.url), vec![]).await;
    let cacert = ca.path("ca.pem").to_str().unwrap().to_owned();
    let url = server.url("/api/v1/stream/sse?n=5&delay_ms=600");
    let lines = curl_lines(&["--http2", "--cacert", &cacert, &url]).await;
    let data: Vec<&(Duration, String)> = lines
        .iter()
        .filter(|(_, l)| l.starts_with("data:"))
        .collect();
    assert_eq!(data.len(), 6, "five events and finish: {lines:?}");
    let (first, last) = (data[0].0, data[5].0);
    assert!(
        last.saturating_sub(first) > Duration::from_millis(1500),
        "events were buffered: first at {first:?}, last at {last:?}"
    );

    // The same stream and a quick request multiplexed on one connection (curl -Z):
    // the quick one is answered while the stream is still running.
    let quick = server.url("/api/v1/base/version");
    let mut command = std::process::Command::new("curl");
    command.args([
        "-sS", "--max-time", "30", "-Z", "--http2", "--cacert", &cacert, "-o", "/dev/null", "-o", "/dev/null",
        "-w", "%{url_effective} %{http_version} %{time_total} %{num_connects}\n", &url, &quick,
    ]);
    let out = actix_rt::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let times: Vec<(String, String, f64, u32)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.first()?.to_string(), f.get(1)?.to_string(), f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect();
    assert_eq!(times.len(), 2, "{text}");
    let sse = times.iter().find(|t| t.0.contains("sse")).unwrap();
    let fast = times.iter().find(|t| t.0.contains("version")).unwrap();
    assert_eq!((sse.1.as_str(), fast.1.as_str()), ("2", "2"), "{text}");
    assert_eq!(sse.3 + fast.3, 1, "one connection for both: {text}");
    assert!(sse.2 > 2.5 && fast.2 < sse.2 - 1.5, "the quick request waited for the stream: {text}");
    server.stop(true).await;
}

/// `server.h2c = true`: curl with HTTP/2 prior knowledge gets HTTP/2 on the plain
/// listener, and an HTTP/1.1 client on the same port still gets HTTP/1.1.
#[actix_rt::test]
async fn h2c_with_prior_knowledge() {
    if !have("curl") {
        return;
    }
    let server = start(
        config("load_builtin_plugins = [\"echo\"]\n[server]\nh2c = true\n"),
        vec![],
    )
    .await;
    let url = server.url("/api/v1/echo?message=h2c");
    let h2 = curl(&["--http2-prior-knowledge", &url]).await;
    assert_eq!((h2.version.as_str(), h2.status), ("2", 200), "{h2:?}");
    assert!(h2.body.contains("h2c"), "{h2:?}");
    let h1 = curl(&["--http1.1", &url]).await;
    assert_eq!((h1.version.as_str(), h1.status), ("1.1", 200), "{h1:?}");
    server.stop(true).await;

    // Without `h2c` the plain listener speaks HTTP/1.1 only.
    let server = start(config("load_builtin_plugins = [\"echo\"]\n"), vec![]).await;
    let h2 = curl(&[
        "--http2-prior-knowledge",
        &server.url("/api/v1/echo?message=x"),
    ])
    .await;
    assert_ne!(h2.version, "2", "{h2:?}");
    server.stop(true).await;
}

/// A key that does not go with the certificate, a missing key file, and a
/// certificate without its key stop `framex check` and `framex run`, naming the file.
#[test]
fn bad_certificate_pairs_fail_start_up_naming_the_file() {
    let ca = TestCa::new();
    let cases = [
        (
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                ca.path("cert.pem").display(),
                ca.path("other-key.pem").display()
            ),
            "other-key.pem",
        ),
        (
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                ca.path("cert.pem").display(),
                ca.path("nowhere.pem").display()
            ),
            "nowhere.pem",
        ),
        (
            format!("tls_cert = \"{}\"\n", ca.path("cert.pem").display()),
            "server.tls_key",
        ),
    ];
    for (lines, named) in cases {
        let file = ca.path("bad.toml");
        std::fs::write(&file, format!("[server]\nport = 0\n{lines}")).unwrap();
        for command in ["check", "run"] {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_framex"))
                .args([command, "-c", file.to_str().unwrap()])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let started = std::time::Instant::now();
            while child.try_wait().unwrap().is_none() {
                if started.elapsed() > Duration::from_secs(20) {
                    let _ = child.kill();
                    panic!("framex {command} started with {lines}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "framex {command} accepted {lines}");
            assert!(
                stderr.contains(named),
                "framex {command} does not name {named}: {stderr}"
            );
        }
    }
}

/// A reload with a renewed certificate (here from another CA) serves it to the next
/// handshakes, without a restart: curl trusting only the old CA is then refused, and
/// curl trusting the new one gets through on the same listener.
#[actix_rt::test]
async fn a_reload_serves_a_renewed_certificate() {
    if !have("curl") {
        return;
    }
    let (old, new) = (TestCa::new(), TestCa::new());
    let toml = |ca: &TestCa| format!("load_builtin_plugins = [\"echo\"]\n[server]\n{}", ca.server_toml());
    let server = start(config(&toml(&old)), vec![]).await;
    let url = server.url("/api/v1/echo?message=hi");
    let with = |ca: &TestCa| ca.path("ca.pem").to_str().unwrap().to_owned();
    assert!(curl(&["--cacert", &with(&old), &url]).await.ok, "the first certificate serves");
    let report = server.reload(config(&toml(&new))).await;
    assert!(report.restart_needed.is_empty(), "{report:?}");
    let refused = curl(&["--cacert", &with(&old), &url]).await;
    assert!(!refused.ok, "the old CA no longer verifies the listener: {refused:?}");
    let renewed = curl(&["--http2", "--cacert", &with(&new), &url]).await;
    assert!(renewed.ok && renewed.status == 200, "{renewed:?}");
    server.stop(true).await;
}
