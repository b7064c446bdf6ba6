//! Client protocols: HTTPS (rustls) with HTTP/2 by ALPN, h2c with prior knowledge,
//! and WebSockets tunnelled to upstreams, each used by a real client (curl, Python's
//! `websockets`) against real servers.

mod edge;
mod h2;
pub(crate) mod websocket;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `program` can be run; when it cannot, a test skips with a printed reason
/// outside CI and fails under CI (`CI` set), where `.ci/run` installs it.
pub fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing under CI (.ci/run installs it)"
        );
        eprintln!("skipped: {program} is not installed (CI installs it)");
    }
    found
}

/// What one curl run gave.
#[derive(Debug)]
pub struct Curl {
    /// Exit status success.
    pub ok: bool,
    /// Everything written to stdout, the `-w` trailer (`\n<http_version> <status>`)
    /// split off into `version` and `status`.
    pub body: String,
    /// `2` or `1.1`.
    pub version: String,
    /// The response status.
    pub status: u16,
    /// stderr, shown when an assertion fails.
    #[allow(dead_code)]
    pub stderr: String,
}

/// Runs `curl -sS --max-time 30 <args> -w '\n%{http_version} %{http_code}'` off the
/// test's thread (the server under test shares its runtime).
pub async fn curl(args: &[&str]) -> Curl {
    let mut all: Vec<String> = ["-sS", "--max-time", "30"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    all.extend(args.iter().map(|s| (*s).to_owned()));
    all.extend(["-w".to_owned(), "\n%{http_version} %{http_code}".to_owned()]);
    let out = actix_rt::task::spawn_blocking(move || {
        Command::new("curl")
            .args(&all)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .unwrap()
    .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, trailer) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (version, status) = trailer.split_once(' ').unwrap_or(("", "0"));
    Curl {
        ok: out.status.success(),
        body: body.to_owned(),
        version: version.to_owned(),
        status: status.parse().unwrap_or(0),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs curl with `-N` and returns each stdout line with the time it arrived since
/// the start (to see a stream arrive incrementally).
pub async fn curl_lines(args: &[&str]) -> Vec<(Duration, String)> {
    use std::io::BufRead as _;
    let mut all: Vec<String> = ["-sS", "-N", "--max-time", "30"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    all.extend(args.iter().map(|s| (*s).to_owned()));
    actix_rt::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut child = Command::new("curl")
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl runs");
        let reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let lines = reader
            .lines()
            .take(1000)
            .map_while(Result::ok)
            .map(|line| (started.elapsed(), line))
            .collect();
        let _ = child.wait();
        lines
    })
    .await
    .unwrap()
}
