//! Shared test harness: start framex-rs and upstreams on loopback, talk HTTP to them.

#![allow(dead_code)]

pub mod certs;
pub mod python;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use framex::actors::PluginSpec;
use framex::config::Config;
use framex::{Framex, Running};
use serde_json::Value;

/// Parses a config written inline in a test; one worker keeps tests light.
pub fn config(toml: &str) -> Config {
    let mut config = Config::from_toml_str(toml, "test config").expect("test config is valid");
    config.server.workers = Some(1);
    config
}

/// Starts framex-rs on an ephemeral loopback port.
pub async fn start(config: Config, plugins: Vec<Arc<PluginSpec>>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut framex = Framex::new(config);
    for plugin in plugins {
        framex = framex.plugin(plugin);
    }
    framex.start(listener).await.expect("framex starts")
}

/// An HTTP client with a generous timeout (tests must not hang forever).
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
}

/// A response as tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: awc::http::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn finish(
    mut response: awc::ClientResponse<
        impl futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Reply {
    let body = response.body().limit(1 << 30).await.expect("body");
    Reply {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        headers: response.headers().clone(),
        body,
    }
}

/// `GET url`.
pub async fn get(url: &str) -> Reply {
    finish(client().get(url).send().await.expect("GET")).await
}

/// `GET url` with headers.
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    finish(req.send().await.expect("GET")).await
}

/// `POST url` with a JSON body.
pub async fn post_json(url: &str, body: &Value) -> Reply {
    finish(client().post(url).send_json(body).await.expect("POST")).await
}

/// Any request with a raw body.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(method, url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    finish(req.send_body(body).await.expect("request")).await
}

/// Splits an SSE body into `(event, data)` pairs.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            (event, data)
        })
        .collect()
}

/// Starts an actix-web app on an ephemeral loopback port, as a stand-in upstream.
/// Returns its base URL and the handle that stops it.
pub fn spawn_upstream<F>(configure: F) -> (String, actix_web::dev::ServerHandle)
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (format!("http://{addr}"), spawn_upstream_on(listener, configure))
}

/// As [`spawn_upstream`], on a listener of the test's choosing (another loopback
/// address, a given port).
pub fn spawn_upstream_on<F>(listener: TcpListener, configure: F) -> actix_web::dev::ServerHandle
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().configure(configure.clone())
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    handle
}

/// Sends raw bytes on a fresh connection and returns everything read until the
/// server closes it (send `Connection: close`).
pub async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = actix_rt::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out))
        .await
        .expect("server closed the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A raw TCP upstream on loopback: `serve` gets each accepted connection.
pub async fn raw_upstream<F, Fut>(serve: F) -> String
where
    F: Fn(actix_rt::net::TcpStream) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let listener = actix_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            actix_rt::spawn(serve(socket));
        }
    });
    format!("http://{addr}")
}

/// Reads one whole request (head and `Content-Length` body) off `socket`, keeping
/// what follows in `buf`; returns its head in lower case, or `None` at the end.
pub async fn read_request(socket: &mut actix_rt::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                buf.drain(..end + 4 + length);
                return Some(head);
            }
        }
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A child process (the `framex` binary, say) killed when the test ends, however it
/// ends.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `framex` binary running `run -c <config>` with `RUST_LOG=<rust_log>`, its
/// stderr collected as it comes (killed when dropped).
pub struct FramexProcess {
    /// The child.
    pub process: Process,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl FramexProcess {
    /// Starts it and waits (30 s at most) until it serves. (Waiting yields to the
    /// test's runtime, where in-process upstreams answer its discovery.) An empty
    /// `rust_log` leaves `RUST_LOG` unset, as a user's first start does.
    pub async fn spawn(config: &std::path::Path, rust_log: &str) -> Self {
        use std::io::Read as _;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_framex"));
        match rust_log {
            "" => command.env_remove("RUST_LOG"),
            level => command.env("RUST_LOG", level),
        };
        let mut child = command
            .args(["run", "-c", config.to_str().unwrap()])
            .current_dir(config.parent().unwrap())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let running = FramexProcess {
            process: Process(child),
            log,
        };
        running.until("serving on").await;
        running
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (30 s at most) until its log holds `text`.
    pub async fn until(&self, text: &str) {
        let started = std::time::Instant::now();
        while !self.log.lock().unwrap().contains(text) {
            assert!(started.elapsed() < Duration::from_secs(30), "no '{text}' in the log: {}", self.log());
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.process.0.id() as i32
    }
}

/// dnsmasq serving `hosts` on a loopback port (UDP and TCP), as root without dropping
/// privileges (it re-reads the file on SIGHUP), TTL 1 s. A start that fails (the
/// port taken meanwhile by a parallel test) is tried again on another port.
pub fn dnsmasq(hosts: &std::path::Path) -> Option<(Process, std::net::SocketAddr)> {
    for _ in 0..5 {
        let port = dns_port();
        let child = std::process::Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--pid-file",
                "--local-ttl=1",
                &format!("--port={port}"),
                &format!("--addn-hosts={}", hosts.display()),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(child) => Process(child),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: dnsmasq cannot run here ({e}); .ci/run installs dnsmasq-base");
                return None;
            }
            Err(e) => panic!("dnsmasq is needed (apt-get install dnsmasq-base): {e}"),
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        if child.0.try_wait().ok().flatten().is_none() {
            return Some((child, std::net::SocketAddr::from(([127, 0, 0, 1], port))));
        }
    }
    panic!("dnsmasq exited at start five times");
}

/// A loopback port free for both UDP and TCP right now (dnsmasq listens on both).
fn dns_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits (60 s at most) until the DNS server at `addr` answers for `name` (a busy
/// machine may take a moment to start it).
pub async fn dns_answers(addr: std::net::SocketAddr, name: &str) {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::proto::xfer::Protocol;
    let mut config = ResolverConfig::new();
    config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
    let resolver = hickory_resolver::TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).build();
    let started = std::time::Instant::now();
    while resolver.lookup_ip(name).await.is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "dnsmasq never answered");
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
