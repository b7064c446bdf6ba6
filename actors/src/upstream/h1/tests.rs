//! The connection against real sockets on 127.0.0.1: an upstream that answers with
//! fixed bytes, read in pieces, and what the connection says of them.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Answer, Conn, Failed, Outbound, WireBody};
use crate::upstream::endpoint::Endpoint;
use crate::upstream::out_body::OutBody;
use crate::wire_error::WireError;

/// An upstream that reads one request head and answers `pieces`, one write each
/// with a pause between (so the client reads them apart), then holds the connection
/// open for 2 s unless `close`. Sends back what it read, request by request.
async fn upstream(answers: Vec<Vec<&'static [u8]>>, close: bool) -> (Endpoint, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
    let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        for pieces in answers {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                request.extend_from_slice(&buf[..n]);
            }
            // The body, if any: whatever comes until a pause.
            while let Ok(Ok(n @ 1..)) = tokio::time::timeout(Duration::from_millis(50), socket.read(&mut buf)).await {
                request.extend_from_slice(&buf[..n]);
            }
            let _ = seen.send(request);
            for piece in pieces {
                socket.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if !close {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    (Endpoint::new(&url, None), requests)
}

/// Sends `method path` with `body` on `conn`, with no fields of the caller's.
async fn send(conn: Conn, method: Method, path: &str, body: OutBody) -> Result<Answer, Failed> {
    let (headers, host) = (HeaderMap::new(), HeaderValue::from_static("u"));
    let request = Outbound {
        method: &method,
        path,
        headers: &headers,
        added: &[],
        host: &host,
        authorization: None,
        hops: 1,
        request_id: None,
        traceparent: [b'0'; 55],
        tracestate: None,
    };
    conn.exchange(&request, body).await
}

/// What [`send`] writes after the request line, before any framing.
fn our_fields() -> String {
    format!("host: u\r\nx-framex-hops: 1\r\ntraceparent: {}\r\n", "0".repeat(55))
}

async fn open(endpoint: &Endpoint) -> Conn {
    Conn::open(endpoint, &crate::upstream::tls::default_config()).await.ok().unwrap()
}

async fn body_of(body: &mut WireBody) -> Result<Bytes, WireError> {
    let mut all = Vec::new();
    while let Some(piece) = body.frame().await {
        all.extend_from_slice(&piece?);
    }
    Ok(all.into())
}

#[actix_rt::test]
async fn a_chunked_answer_in_pieces_is_read_and_the_connection_kept() {
    let (endpoint, mut requests) = upstream(
        vec![
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
                b"lo\r\n",
                b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            ],
            vec![b"HTTP/1.1 204 No Content\r\n\r\n"],
        ],
        false,
    )
    .await;
    let conn = open(&endpoint).await;
    let Ok(response) = send(conn, Method::GET, "/a?b=1", OutBody::Empty).await else { panic!("no answer") };
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert_eq!(&body_of(&mut body).await.unwrap()[..], b"hello world");
    let request = requests.recv().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&request), format!("GET /a?b=1 HTTP/1.1\r\n{}\r\n", our_fields()));
    let mut conn = body.into_idle().expect("read to its end: reusable");
    assert!(conn.is_usable());
    let Ok(response) = send(conn, Method::GET, "/next", OutBody::Empty).await else { panic!("no second answer") };
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.into_body().into_idle().is_some());
}

/// A head trickled in pieces, cut anywhere (inside the status line, a field, its last
/// line feed alone), is read whole once its last line feed comes: pieces without a
/// line feed are not parsed again from the start.
#[actix_rt::test]
async fn a_head_trickled_in_pieces_is_read_when_it_ends() {
    let (endpoint, _requests) = upstream(
        vec![vec![b"HTTP/1.1 2", b"00 OK\r\nX-A: ", b"b\r\nContent-Length: 2\r", b"\n\r", b"\nhi"]],
        false,
    )
    .await;
    let conn = open(&endpoint).await;
    let Ok(response) = send(conn, Method::GET, "/", OutBody::Empty).await else { panic!("no answer") };
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers.get("x-a").unwrap(), b"b");
    let mut body = response.into_body();
    assert_eq!(&body_of(&mut body).await.unwrap()[..], b"hi");
}

/// A body that came with its head is taken at once, whole, and leaves its connection
/// reusable; one still on its way is not (it is read as usual), nor is a chunked one.
#[actix_rt::test]
async fn a_body_read_with_its_head_is_taken_whole_at_once() {
    let (endpoint, _requests) = upstream(
        vec![
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", b"llo"],
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"],
        ],
        false,
    )
    .await;
    let Ok(response) = send(open(&endpoint).await, Method::GET, "/", OutBody::Empty).await else { panic!("no answer") };
    let mut body = response.into_body();
    assert_eq!(body.take_if_buffered().as_deref(), Some(&b"hello"[..]));
    let conn = body.into_idle().expect("all of it read: reusable");
    let Ok(response) = send(conn, Method::GET, "/", OutBody::Empty).await else { panic!("no second answer") };
    let mut body = response.into_body();
    assert_eq!(body.take_if_buffered(), None, "half of it is still on its way");
    assert_eq!(&body_of(&mut body).await.unwrap()[..], b"hello");
    let Ok(response) = send(body.into_idle().unwrap(), Method::GET, "/", OutBody::Empty).await else { panic!("no third answer") };
    let mut body = response.into_body();
    assert_eq!(body.take_if_buffered(), None, "chunked: not taken by length");
    assert_eq!(&body_of(&mut body).await.unwrap()[..], b"hi");
}

#[actix_rt::test]
async fn a_body_cut_off_is_an_error_and_its_connection_is_not_reused() {
    let (endpoint, _requests) =
        upstream(vec![vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]], true).await;
    let Ok(response) = send(open(&endpoint).await, Method::GET, "/", OutBody::Empty).await else { panic!("no answer") };
    let mut body = response.into_body();
    assert!(matches!(body_of(&mut body).await, Err(WireError::ClosedInBody)));
    assert!(body.into_idle().is_none());
}

#[actix_rt::test]
async fn a_broken_chunk_is_an_error() {
    let (endpoint, _requests) = upstream(
        vec![vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"]],
        false,
    )
    .await;
    let Ok(response) = send(open(&endpoint).await, Method::GET, "/", OutBody::Empty).await else { panic!("no answer") };
    let mut body = response.into_body();
    assert!(matches!(body_of(&mut body).await, Err(WireError::Chunk(_))));
    assert!(body.into_idle().is_none());
}

#[actix_rt::test]
async fn a_body_until_close_ends_with_the_connection() {
    let (endpoint, _requests) = upstream(vec![vec![b"HTTP/1.1 200 OK\r\n\r\nall ", b"of it"]], true).await;
    let Ok(response) = send(open(&endpoint).await, Method::GET, "/", OutBody::Empty).await else { panic!("no answer") };
    let mut body = response.into_body();
    assert_eq!(&body_of(&mut body).await.unwrap()[..], b"all of it");
    assert!(body.into_idle().is_none(), "framed by the close: not reusable");
}

#[actix_rt::test]
async fn an_idle_connection_the_upstream_closed_is_not_taken_again() {
    let (endpoint, _requests) = upstream(vec![vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]], true).await;
    let Ok(response) = send(open(&endpoint).await, Method::GET, "/", OutBody::Empty).await else { panic!("no answer") };
    let mut body = response.into_body();
    assert_eq!(&body_of(&mut body).await.unwrap()[..], b"ok");
    let mut conn = body.into_idle().expect("complete");
    // The upstream closes once it has answered; give its FIN time to arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!conn.is_usable());
}

#[actix_rt::test]
async fn no_answer_at_all_is_closed_before_the_head() {
    let (endpoint, _requests) = upstream(vec![vec![]], true).await;
    match send(open(&endpoint).await, Method::GET, "/", OutBody::Empty).await {
        Err(Failed::Exchange(WireError::ClosedBeforeHead)) => {}
        _ => panic!("expected ClosedBeforeHead"),
    }
}

#[actix_rt::test]
async fn a_whole_body_goes_with_its_length_and_a_stream_chunked() {
    let (endpoint, mut requests) = upstream(
        vec![vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]],
        false,
    )
    .await;
    let conn = open(&endpoint).await;
    let whole = OutBody::Full(Some(Bytes::from_static(b"abc")));
    let Ok(response) = send(conn, Method::POST, "/w", whole).await else { panic!("no answer") };
    let request = requests.recv().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&request), format!("POST /w HTTP/1.1\r\n{}content-length: 3\r\n\r\nabc", our_fields()));
    let conn = response.into_body().into_idle().unwrap();
    let (sender, stream) = crate::stream::bridge();
    actix_rt::spawn(async move {
        sender.send(Bytes::from_static(b"ab")).await.unwrap();
        sender.send(Bytes::from_static(b"cde")).await.unwrap();
    });
    let Ok(_) = send(conn, Method::PUT, "/s", OutBody::Stream(stream)).await else { panic!("no answer") };
    let request = requests.recv().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&request),
        format!("PUT /s HTTP/1.1\r\n{}transfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n", our_fields())
    );
}

/// A streamed body of `chunks` pieces of 64 KiB, produced on its own task.
fn streamed_body(chunks: usize) -> OutBody {
    let (sender, stream) = crate::stream::bridge();
    actix_rt::spawn(async move {
        for _ in 0..chunks {
            if sender.send(Bytes::from(vec![b'x'; 64 * 1024])).await.is_err() {
                return;
            }
        }
    });
    OutBody::Stream(stream)
}

#[actix_rt::test]
async fn an_answer_before_the_body_is_sent_is_taken_not_waited_for() {
    let endpoint = answering_in_pieces(vec![b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!"]).await;
    let sending = send(open(&endpoint).await, Method::POST, "/upload", streamed_body(256));
    let answered = tokio::time::timeout(Duration::from_secs(2), sending).await;
    let Ok(Ok(response)) = answered else { panic!("the early answer was not taken within 2 s") };
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let mut body = response.into_body();
    assert_eq!(&body_of(&mut body).await.unwrap()[..], b"big!");
    assert!(body.into_idle().is_none(), "the rest of the request is still due: not reused");
}

#[actix_rt::test]
async fn an_interim_answer_does_not_stop_the_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
    actix_rt::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        let n = socket.read(&mut buf).await.unwrap();
        seen.extend_from_slice(&buf[..n]);
        socket.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        while !seen.ends_with(b"0\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the body ended early");
            seen.extend_from_slice(&buf[..n]);
        }
        socket.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let conn = open(&Endpoint::new(&url, None)).await;
    let Ok(response) = send(conn, Method::PUT, "/upload", streamed_body(64)).await else { panic!("no answer") };
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.into_body().into_idle().is_some(), "all of it was sent: reusable");
}

/// An upstream that reads a request head, then after 200 ms writes `pieces` 100 ms
/// apart, reading nothing more for 10 s.
async fn answering_in_pieces(pieces: Vec<&'static [u8]>) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
    actix_rt::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = socket.read(&mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        for piece in pieces {
            socket.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    Endpoint::new(&url, None)
}

/// A body that sends one chunk, then stalls for 10 s.
fn stalled_body() -> OutBody {
    let (sender, stream) = crate::stream::bridge();
    actix_rt::spawn(async move {
        sender.send(Bytes::from_static(b"first")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(sender);
    });
    OutBody::Stream(stream)
}

/// Sends a stalled body to `endpoint` on a task of its own (as in the server, where
/// nothing else polls it), expecting `status` within 1 s.
async fn early_answer_within_a_second(endpoint: Endpoint, status: StatusCode) {
    let conn = open(&endpoint).await;
    let started = std::time::Instant::now();
    let sending = actix_rt::spawn(async move {
        let answered = tokio::time::timeout(Duration::from_secs(3), send(conn, Method::POST, "/upload", stalled_body())).await;
        matches!(answered, Ok(Ok(ref r)) if r.status() == status)
    });
    assert!(sending.await.unwrap(), "no {status}");
    assert!(started.elapsed() < Duration::from_secs(1), "taken only after {:?}", started.elapsed());
}

#[actix_rt::test]
async fn an_early_answer_in_two_reads_wakes_the_request() {
    let endpoint = answering_in_pieces(vec![b"HTTP/1.1 401 Unauthorized\r\n", b"content-length: 0\r\n\r\n"]).await;
    early_answer_within_a_second(endpoint, StatusCode::UNAUTHORIZED).await;
}

#[actix_rt::test]
async fn an_early_answer_after_an_interim_one_wakes_the_request() {
    let endpoint = answering_in_pieces(vec![
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
    ])
    .await;
    early_answer_within_a_second(endpoint, StatusCode::PAYLOAD_TOO_LARGE).await;
}

/// A writer that takes at most `each` bytes a call (across the slices of a vectored
/// write), or fails once it has taken `fail_after`.
struct Trickle {
    taken: Vec<u8>,
    each: usize,
    fail_after: Option<usize>,
}

impl tokio::io::AsyncWrite for Trickle {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.fail_after.is_some_and(|n| this.taken.len() >= n) {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let mut room = this.each;
        for buf in bufs {
            let n = room.min(buf.len());
            this.taken.extend_from_slice(&buf[..n]);
            room -= n;
        }
        std::task::Poll::Ready(Ok(this.each - room))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A request's head and small body go out whole and in order whatever each write
/// takes: a write that ends inside the head, at its end, one past it, or inside the
/// body; a failure says how much went (none: the body may go again elsewhere).
#[actix_rt::test]
async fn a_head_and_its_body_go_out_whole_however_the_writes_split() {
    let head = b"POST /x HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\n";
    let body = b"0123456789";
    let whole = [&head[..], &body[..]].concat();
    for each in [1, 7, head.len() - 1, head.len(), head.len() + 1, whole.len()] {
        let mut io = Trickle { taken: Vec::new(), each, fail_after: None };
        super::write_first(&mut io, head, body).await.unwrap();
        assert_eq!(io.taken, whole, "{each} bytes a write");
    }
    let mut io = Trickle { taken: Vec::new(), each: 8, fail_after: Some(0) };
    assert_eq!(super::write_first(&mut io, head, body).await.unwrap_err().1, 0, "nothing went");
    let mut io = Trickle { taken: Vec::new(), each: 8, fail_after: Some(16) };
    assert_eq!(super::write_first(&mut io, head, body).await.unwrap_err().1, 16, "16 bytes went");
}
