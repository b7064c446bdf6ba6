//! Memory held by idle keep-alive connections, as an operator sees it: the resident
//! memory of a running `framex` while clients hold many connections open between
//! requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::python::free_port;
use crate::common::FramexProcess;

/// Idle connections held at once.
const CONNECTIONS: usize = 2000;

/// Most resident memory an idle keep-alive connection may add (issue 19's bar).
/// actix-http kept an 8 KiB read and an 8 KiB write buffer for every open connection
/// (about 12 KiB of resident memory each with the rest of a connection's state), and
/// its connection task was 2.8 KiB (the HTTP/2 dispatcher's size, held twice) for
/// HTTP/1 too (3.7 KiB each in this test's debug build); the patched crate frees the
/// buffers while a connection waits and keeps each protocol's state on the heap,
/// leaving the task, the HTTP/1 dispatcher, the socket's registration, timers and the
/// connection's data: 1.5 KiB, in the debug build as in the release one.
const BOUND_PER_CONNECTION: usize = 2 * 1024;

/// The resident set of process `pid`, in bytes.
fn rss(pid: i32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// How many file descriptors process `pid` has open (its sockets among them).
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Opens `n` connections to `port`, a hundred at a time (within the listen backlog),
/// sends one request on each, reads every answer and returns the connections, open and
/// idle (each kept alive by the server).
fn open_idle(port: u16, n: usize) -> Vec<TcpStream> {
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        all.extend(open_batch(port, (n - all.len()).min(100)));
    }
    all
}

fn open_batch(port: u16, n: usize) -> Vec<TcpStream> {
    let request = b"GET /api/v1/echo?message=hi HTTP/1.1\r\nHost: idle\r\n\r\n";
    let mut conns: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(request).unwrap();
    }
    for c in &mut conns {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let complete = loop {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .expect("a sized answer")
                    .parse()
                    .unwrap();
                if body.len() >= length {
                    break body.to_owned();
                }
            }
        };
        assert!(complete.contains("hi"), "{complete}");
    }
    conns
}

/// 2,000 keep-alive connections, each having made a request and now waiting, add
/// less than 2 KiB of resident memory each to the server (before the patch, about
/// 12 KiB: every one held its 8 KiB read and 8 KiB write buffers; then 3.7 KiB, its
/// task sized for HTTP/2).
#[actix_rt::test]
async fn idle_keep_alive_connections_hold_no_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let port = free_port();
    std::fs::write(
        &file,
        format!("load_builtin_plugins = [\"echo\"]\n[server]\nport = {port}\nworkers = 1\n"),
    )
    .unwrap();
    let framex = FramexProcess::spawn(&file, "info").await;
    let pid = framex.pid();
    let (before, after, fds) = actix_rt::task::spawn_blocking(move || {
        // A first round warms up the allocator and the worker, then goes away.
        drop(open_idle(port, 200));
        std::thread::sleep(Duration::from_millis(200));
        let before = rss(pid);
        let held = open_idle(port, CONNECTIONS);
        let (after, fds) = (rss(pid), open_fds(pid));
        drop(held);
        (before, after, fds)
    })
    .await
    .unwrap();
    // The server closes a connection idle for 5 s: all of them must still be open
    // when the memory was read (the worker's sockets are among its descriptors).
    assert!(fds >= CONNECTIONS, "only {fds} descriptors open: connections closed before measuring");
    let per_connection = after.saturating_sub(before) / CONNECTIONS;
    assert!(
        per_connection < BOUND_PER_CONNECTION,
        "each idle connection adds {per_connection} B of resident memory (RSS {before} → {after} B)"
    );
    eprintln!("idle keep-alive connection: {per_connection} B each (RSS {before} → {after} B)");
    drop(framex);
}
