//! Faults cost nothing: a bounded load on a pooled GET and POST over three uvicorn
//! replicas of one FastAPI app, through the `framex` binary — one at a fixed address,
//! two behind a DNS name (dnsmasq on loopback names 127.0.0.2 and 127.0.0.3) — while
//! the config is reloaded, one replica is SIGKILLed and started again on its port,
//! another is SIGTERMed (a graceful shutdown) and started again, and the name drops
//! an address and regains it. Not one GET fails, no POST is processed twice, the
//! access log names where each failed request went, the regained address serves
//! again, and the binary's memory stays flat.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::python::{free_port, replica_app, replica_app_at, wait_ready, Child};
use crate::common::{dns_answers, dnsmasq, FramexProcess, Process};

/// Concurrent client tasks.
const CLIENTS: usize = 16;
/// How long the load runs; the faults happen at fixed times within it.
const LOAD: Duration = Duration::from_secs(32);

/// What the load saw.
#[derive(Default)]
struct Tally {
    gets: usize,
    posts: usize,
    /// GETs that got anything but a 2xx, with what they got.
    failed_gets: Vec<String>,
    /// POSTs that got anything but a 2xx (allowed: one in flight on a killed replica
    /// may be lost, but never sent twice).
    failed_posts: usize,
}

/// The config: a pool of `urls`, names resolved by the DNS server `dns`, a JSON
/// access log, a pid file.
fn write_config(file: &Path, port: u16, urls: &[String], dns: SocketAddr, pid_file: &Path, generation: u32) {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    std::fs::write(
        file,
        format!(
            "# generation {generation}\nload_builtin_plugins = [\"proxy\"]\n[server]\nport = {port}\nworkers = 2\n\
             access_log = \"json\"\npid_file = \"{}\"\n[plugins.proxy]\nproxy_urls = [{}]\ndiscovery_interval = 0\n\
             dns_servers = [\"{dns}\"]\ndns_refresh = 0.3\n",
            pid_file.display(),
            urls.join(", ")
        ),
    )
    .unwrap();
}

/// A port free on both 127.0.0.2 and 127.0.0.3 (a name has one port).
fn twin_port() -> u16 {
    for _ in 0..50 {
        let a = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.3", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

/// The binary's resident memory, in KiB (from `/proc`).
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One client task: GETs, and a POST with a fresh id every fourth request, until
/// `until`.
async fn client_task(base: String, task: usize, until: Instant, tally: Rc<RefCell<Tally>>) {
    let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
    let mut n = 0usize;
    while Instant::now() < until {
        n += 1;
        if n % 4 == 0 {
            let id = format!("{task}-{n}");
            let sent = client.post(format!("{base}/api/v1/hit")).send_json(&json!({"id": id})).await;
            let ok = sent.as_ref().is_ok_and(|r| r.status().is_success());
            let mut t = tally.borrow_mut();
            t.posts += 1;
            t.failed_posts += usize::from(!ok);
            continue;
        }
        let sent = client.get(format!("{base}/api/v1/who")).send().await;
        tally.borrow_mut().gets += 1;
        match sent {
            Ok(mut r) if r.status().is_success() => {
                let _ = r.body().await;
            }
            Ok(mut r) => {
                let status = r.status();
                let body = r.body().await.unwrap_or_default();
                tally.borrow_mut().failed_gets.push(format!("{status} {}", String::from_utf8_lossy(&body)));
            }
            Err(e) => tally.borrow_mut().failed_gets.push(format!("client error: {e}")),
        }
    }
}

/// `framex reload -c file`.
fn reload(file: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["reload", "-c", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// What the faults act on: the replicas (a on 127.0.0.1, b and c behind the name),
/// their ports and id files, dnsmasq and its hosts file, the config.
struct Scene {
    replicas: Vec<Child>,
    ports: [u16; 2],
    ids: Vec<PathBuf>,
    dns: Process,
    hosts: PathBuf,
    file: PathBuf,
    pid_file: PathBuf,
    dns_addr: SocketAddr,
    port: u16,
}

impl Scene {
    fn urls(&self) -> Vec<String> {
        vec![format!("http://127.0.0.1:{}", self.ports[0]), format!("http://legacy.test:{}", self.ports[1])]
    }

    fn reload(&self, generation: u32) {
        write_config(&self.file, self.port, &self.urls(), self.dns_addr, &self.pid_file, generation);
        reload(&self.file);
    }

    /// The name resolves to `addresses` from now on (dnsmasq re-reads on SIGHUP).
    fn name_resolves_to(&self, addresses: &[&str]) {
        let lines: String = addresses.iter().map(|a| format!("{a} legacy.test\n")).collect();
        std::fs::write(&self.hosts, lines).unwrap();
        // SAFETY: kill(2) with a plain signal number has no memory effects.
        unsafe { libc::kill(self.dns.0.id() as i32, libc::SIGHUP) };
    }
}

/// The faults, at fixed times after `start`: reloads; a SIGKILL and restart of a;
/// the name losing 127.0.0.3 (c) and regaining it; a SIGTERM and restart of b.
async fn faults(start: Instant, scene: &mut Scene) {
    let at = |secs: u64| actix_rt::time::sleep_until((start + Duration::from_secs(secs)).into());
    let ports = scene.ports;
    at(3).await;
    scene.reload(1);
    at(6).await;
    scene.replicas[0].stop_with(libc::SIGKILL).await;
    at(10).await;
    scene.replicas[0] = replica_app(ports[0], "a", &scene.ids[0]).await;
    at(12).await;
    scene.name_resolves_to(&["127.0.0.2"]);
    at(15).await;
    scene.reload(2);
    at(17).await;
    scene.name_resolves_to(&["127.0.0.2", "127.0.0.3"]);
    at(20).await;
    scene.replicas[1].stop_with(libc::SIGTERM).await;
    at(24).await;
    scene.replicas[1] = replica_app_at("127.0.0.2", ports[1], "b", &scene.ids[1]).await;
    at(27).await;
    scene.reload(3);
}

#[actix_rt::test]
async fn a_replica_dying_under_load_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.2 legacy.test\n127.0.0.3 legacy.test\n").unwrap();
    let Some((dns, dns_addr)) = dnsmasq(&hosts) else { return };
    dns_answers(dns_addr, "legacy.test.").await;
    let ports = [free_port(), twin_port()];
    let ids: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| dir.path().join(format!("ids-{n}"))).collect();
    let replicas = vec![
        replica_app(ports[0], "a", &ids[0]).await,
        replica_app_at("127.0.0.2", ports[1], "b", &ids[1]).await,
        replica_app_at("127.0.0.3", ports[1], "c", &ids[2]).await,
    ];
    let (file, pid_file, port) = (dir.path().join("config.toml"), dir.path().join("framex.pid"), free_port());
    let mut scene = Scene { replicas, ports, ids, dns, hosts, file, pid_file, dns_addr, port };
    write_config(&scene.file, port, &scene.urls(), dns_addr, &scene.pid_file, 0);
    let framex = FramexProcess::spawn(&scene.file, "warn,framex::server=info,framex::access=info").await;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/api/v1/who"), Duration::from_secs(30)).await;

    let tally = Rc::new(RefCell::new(Tally::default()));
    let start = Instant::now();
    let load: Vec<_> = (0..CLIENTS)
        .map(|task| actix_rt::spawn(client_task(base.clone(), task, start + LOAD, tally.clone())))
        .collect();
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_kib(framex.pid());
    faults(start, &mut scene).await;
    for task in load {
        task.await.unwrap();
    }
    let rss_after = rss_kib(framex.pid());
    regained_address_serves(&base).await;

    let tally = tally.borrow();
    eprintln!(
        "faults soak: {} GETs ({} failed), {} POSTs ({} failed), RSS {rss_before} → {rss_after} KiB",
        tally.gets,
        tally.failed_gets.len(),
        tally.posts,
        tally.failed_posts
    );
    assert!(tally.gets > 1000, "the load ran ({} GETs)", tally.gets);
    assert!(
        tally.failed_gets.is_empty(),
        "{} GETs failed, e.g. {:?}\n{}",
        tally.failed_gets.len(),
        &tally.failed_gets[..tally.failed_gets.len().min(5)],
        failures_in_log(&framex.log())
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for file in &scene.ids {
        for id in std::fs::read_to_string(file).unwrap_or_default().lines() {
            *seen.entry(id.to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "POSTs processed twice: {twice:?}");
    assert!(seen.len() + tally.failed_posts >= tally.posts, "every answered POST was processed");
    every_failure_names_its_upstream(&framex.log());
    assert!(rss_after < rss_before * 2 + 64 * 1024, "memory grew: {rss_before} → {rss_after} KiB");
}

/// The address the name regained (127.0.0.3, replica c) gets traffic again.
async fn regained_address_serves(base: &str) {
    let client = awc::Client::default();
    for _ in 0..60 {
        let mut answer = client.get(format!("{base}/api/v1/who")).send().await.unwrap();
        let body = answer.body().await.unwrap();
        if String::from_utf8_lossy(&body).contains("\"c\"") {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("127.0.0.3 never served again after the name regained it");
}

/// The access-log lines of failed requests (for a failing assertion's message).
fn failures_in_log(log: &str) -> String {
    log.lines()
        .filter(|l| !l.contains("\"status\":2"))
        .take(20)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every access-log line of a 5xx names the upstream it went to and the attempts.
fn every_failure_names_its_upstream(log: &str) {
    for line in log.lines().filter(|l| l.contains("\"route\"")) {
        let Some(json) = line.find('{').and_then(|at| serde_json::from_str::<Value>(&line[at..]).ok()) else {
            continue;
        };
        if json["status"].as_u64().is_some_and(|s| s >= 500) {
            assert!(json["upstream"].is_string() && json["attempts"].as_u64() >= Some(1), "{line}");
        }
    }
}
