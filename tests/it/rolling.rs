//! A rolling restart is lossless: two `framex` processes behind an nginx front (as a
//! load balancer would stand), one SIGTERMed and started again while a bounded load
//! runs through the front: not one request fails.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::python::free_port;
use crate::common::{get, Process};

/// A `framex run` on `port` serving the echo plugin, with a short drain.
fn framex(dir: &std::path::Path, port: u16) -> Process {
    let file = dir.join(format!("framex-{port}.toml"));
    std::fs::write(
        &file,
        format!("load_builtin_plugins = [\"echo\"]\n[server]\nport = {port}\nworkers = 1\nshutdown_timeout = 5\n"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["run", "-c", file.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Process(child)
}

/// nginx in the foreground (one process, so that killing it leaves nothing behind)
/// balancing over `backends`, retrying another one on a connection error.
fn nginx(dir: &std::path::Path, port: u16, backends: &[u16]) -> Option<Process> {
    let servers: String = backends.iter().map(|p| format!("server 127.0.0.1:{p} max_fails=0;\n")).collect();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off;\n  upstream framex {{ {servers} keepalive 16; }}\n\
               server {{ listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://framex; proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\"; proxy_next_upstream error timeout http_502 http_503; }} }} }}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    match Command::new("nginx")
        .args(["-c", conf.to_str().unwrap(), "-p", dir.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => Some(Process(child)),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: nginx cannot run here ({e}); .ci/run installs nginx-light");
            None
        }
        Err(e) => panic!("nginx is needed (apt-get install nginx-light): {e}"),
    }
}

async fn until_ready(url: &str) {
    let started = Instant::now();
    loop {
        let answer = awc::Client::new().get(url).send().await;
        if answer.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{url} never became ready");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Instance A is SIGTERMed (it stops being ready, drains, exits 0) and started again
/// on the same port while three clients send requests through the front for a few
/// seconds: every request gets its 200.
#[actix_rt::test]
async fn a_rolling_restart_behind_a_front_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, front) = (free_port(), free_port(), free_port());
    let mut first = framex(dir.path(), a);
    let _second = framex(dir.path(), b);
    for port in [a, b] {
        until_ready(&format!("http://127.0.0.1:{port}/ready")).await;
    }
    let Some(_nginx) = nginx(dir.path(), front, &[a, b]) else { return };
    until_ready(&format!("http://127.0.0.1:{front}/health")).await;

    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let deadline = Instant::now() + Duration::from_secs(6);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (sent, failed) = (sent.clone(), failed.clone());
            let url = format!("http://127.0.0.1:{front}/api/v1/echo?message=roll");
            actix_rt::spawn(async move {
                while Instant::now() < deadline {
                    let r = get(&url).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if r.status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    actix_rt::time::sleep(Duration::from_millis(1000)).await;
    // SAFETY: kill(2) with a plain signal number has no memory effects.
    unsafe { libc::kill(first.0.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = first.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "A did not exit after SIGTERM");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "A exits 0 after draining: {status}");
    first = framex(dir.path(), a);
    until_ready(&format!("http://127.0.0.1:{a}/ready")).await;
    for client in clients {
        client.await.unwrap();
    }
    drop(first);
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 100, "the load ran: {sent} requests");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed at the front");
}
