//! WebSockets tunnelled to upstreams.
//!
//! An HTTP/1.1 upgrade request (`Connection: upgrade`, `Upgrade: websocket`) whose
//! canonical path a `websocket` pattern of `proxy_urls` covers goes to that pool on a
//! connection of its own, after the same checks as any request (canonical path, hop
//! limit, `[auth] rules`). The upstream's answer comes back as it is: its `101` with
//! its headers (`Sec-WebSocket-Accept`, the subprotocol and extensions it chose), or
//! its refusal. After a `101` the bytes flow both ways unbuffered (each read is
//! written on at once) and unchanged, so frames, extensions and close codes pass
//! through as the two ends wrote them, until either side closes or nothing moves
//! for `plugins.proxy.websocket_idle_timeout`.
//!
//! The one thing read off the bytes is where the upstream's frames begin (a small
//! hand-written parser of frame headers: no crate tracks frame boundaries without
//! decoding the messages): when the upstream's connection ends without a Close
//! frame, at a frame boundary, the client gets a Close frame with code 1014 (bad
//! gateway); on the idle timeout, and when the server stops (one second before the
//! end of the drain period), one with 1001 (going away); mid-frame the connection is
//! simply closed.
//!
//! An upgrade to a path no pattern covers is answered 404. Local plugins cannot
//! offer WebSocket handlers yet, and WebSockets over HTTP/2 (RFC 8441) are not
//! offered.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use framex_actors::upstream::tunnel::{self, Tunnel, TunnelGuard, TunnelIo, TunnelRead, TunnelRequest, TunnelWrite};
use framex_actors::upstream::wire::{HeaderName as WireName, HeaderValue as WireValue};
use framex_actors::CallContext;
use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;

use super::{envelope, error, forward, Worker};

/// Close code sent when the upstream's connection ends without a Close frame.
const CLOSE_UPSTREAM_GONE: u16 = 1014;
/// Close code sent when the tunnel was idle too long, or the server is stopping.
const CLOSE_GOING_AWAY: u16 = 1001;
/// How long the upstream is given to take our close when the tunnel ends.
const CLOSE_GRACE: Duration = Duration::from_millis(200);
/// How much of the upstream's bytes one read takes at most.
const READ_SIZE: usize = 64 * 1024;

/// Whether `req` asks to become a WebSocket (an HTTP/1 upgrade to `websocket`), read
/// exactly as the request parse read it: an `upgrade` token in `Connection` and no
/// `close`, an `Upgrade` line that is `websocket` alone, and no `Transfer-Encoding`.
/// Only then did the parse hand the rest of the connection over as the tunnel's
/// bytes; a request we tunnelled on any other reading would have its connection read
/// on as HTTP after the `101` (requests smuggled past a front proxy that switched).
pub fn is_upgrade(req: &HttpRequest) -> bool {
    // The request parse's reading of `Connection` (which `RequestHead::upgrade` would
    // look up again): no field lookup on the requests that are no upgrade.
    req.head().connection_type() == actix_web::http::ConnectionType::Upgrade
        && req
            .headers()
            .get_all(header::UPGRADE)
            .any(|v| v.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket")))
        && !req.headers().contains_key(header::TRANSFER_ENCODING)
}

/// Tunnels the upgrade request `req` (canonical path `path`) to the pool its path
/// names, or answers 404.
pub async fn serve(
    worker: &Worker<'_>,
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    consumed_auth: bool,
    ctx: CallContext,
) -> HttpResponse {
    let Some(proxy) = &worker.shared.proxy else {
        return envelope::error(StatusCode::NOT_FOUND, "Not Found", None);
    };
    let routes = proxy.websockets();
    let Some(target) = routes.target(path) else {
        return envelope::error(StatusCode::NOT_FOUND, "Not Found", None);
    };
    let (mut headers, added) = forward::upstream_headers(req, consumed_auth, worker.shared);
    for (name, value) in added {
        headers.append(name, value);
    }
    // The handshake has no body: what follows its head is the tunnel's (a client's
    // `Content-Length` would have the upstream read tunnel bytes as one).
    headers.remove(WireName::from_static("content-length"));
    headers.insert(
        WireName::from_static("connection"),
        WireValue::from_static("upgrade"),
    );
    headers.insert(WireName::from_static("upgrade"), WireValue::from_static("websocket"));
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let request_id = ctx.request_id.clone();
    let trace_id = ctx.trace.trace_id_hex();
    let request = TunnelRequest {
        path_and_query,
        headers,
        ctx,
        keys: target.keys,
    };
    match tunnel::open(target.pool, request).await {
        Err(e) => error::respond(&e, &request_id, trace_id),
        Ok(Tunnel::Refused {
            status,
            headers,
            body,
        }) => {
            let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut builder = HttpResponse::build(status);
            for (name, value) in headers.iter() {
                if !framex_actors::upstream::is_hop_by_hop(name.as_str(), &[])
                    && name != "content-length"
                {
                    builder.append_header((name.as_str(), value.as_bytes()));
                }
            }
            builder.body(body)
        }
        Ok(Tunnel::Open { headers, io, guard }) => {
            let mut builder = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
            for (name, value) in headers.iter() {
                // actix-http writes `Connection: upgrade` itself for a response with
                // an `Upgrade` header.
                if !matches!(
                    name.as_str(),
                    "connection" | "content-length" | "transfer-encoding" | "keep-alive"
                ) {
                    builder.append_header((name.as_str(), value.as_bytes()));
                }
            }
            let closing = worker.shared.closing.clone();
            builder.streaming(relay(io, payload, guard, routes.idle_timeout, closing))
        }
    }
}

/// Starts the client→upstream pump and returns the upstream→client stream.
fn relay(
    io: TunnelIo,
    payload: web::Payload,
    guard: TunnelGuard,
    idle: Duration,
    closing: tokio::sync::watch::Receiver<bool>,
) -> Down {
    let (read, write, early) = io.split();
    let last = Rc::new(Cell::new(Instant::now()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    actix_web::rt::spawn(pump(payload, write, last.clone(), stopped));
    Down {
        read,
        early,
        buf: BytesMut::new(),
        watches: Watches::new(closing, last.get() + idle),
        last,
        idle,
        frames: Frames::default(),
        done: false,
        _stop: stop,
        _guard: guard,
    }
}

/// Client → upstream: every chunk of the client's bytes is written on at once; the
/// client's end closes the upstream's write side. The other direction ending
/// (`stopped`) ends it all at once, a write the upstream is not taking included (a
/// close is offered for [`CLOSE_GRACE`]): the tunnel's socket is let go with it.
async fn pump(
    mut payload: web::Payload,
    mut write: TunnelWrite,
    last: Rc<Cell<Instant>>,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let carried = async {
        while let Some(Ok(bytes)) = payload.next().await {
            last.set(Instant::now());
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    };
    let ended_first = tokio::select! {
        biased;
        _ = stopped => true,
        () = carried => false,
    };
    if ended_first {
        // A close (TLS's `close_notify` on `wss`), if the upstream takes it at once.
        let _ = tokio::time::timeout(CLOSE_GRACE, write.shutdown()).await;
    }
}

/// Upstream → client, as the response body: a stream written by hand, each poll a
/// read of the upstream, then (only while nothing is there to read) the server's
/// closing signal and the idle timer.
struct Down {
    read: TunnelRead,
    /// Bytes the upstream sent with its `101`: the first to go.
    early: Bytes,
    /// Where reads land.
    buf: BytesMut,
    /// When a byte last moved either way.
    last: Rc<Cell<Instant>>,
    idle: Duration,
    /// The server's closing signal and the idle timer.
    watches: Watches,
    frames: Frames,
    done: bool,
    /// Dropped with the stream (the tunnel ended or the client went): stops the pump.
    _stop: tokio::sync::oneshot::Sender<()>,
    /// The endpoint's in-flight count, held while the tunnel lives.
    _guard: TunnelGuard,
}

impl futures::Stream for Down {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if !this.early.is_empty() {
            let bytes = std::mem::take(&mut this.early);
            this.frames.feed(&bytes);
            return Poll::Ready(Some(Ok(bytes)));
        }
        // One allocation serves many small reads: each read's bytes are split off.
        if this.buf.capacity() < READ_SIZE / 16 {
            this.buf.reserve(READ_SIZE);
        }
        // Bytes that are there go before a timer that fired meanwhile.
        match tokio_util::io::poll_read_buf(Pin::new(&mut this.read), cx, &mut this.buf) {
            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(this.close(CLOSE_UPSTREAM_GONE, "upstream connection lost")),
            Poll::Ready(Ok(_)) => {
                this.last.set(Instant::now());
                let bytes = this.buf.split().freeze();
                this.frames.feed(&bytes);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Pending => match this.watches.poll(cx, &this.last, this.idle) {
                Poll::Ready(reason) => Poll::Ready(this.close(CLOSE_GOING_AWAY, reason)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// What ends a tunnel besides its connections: the server's closing signal and the
/// idle timer. Each holds the task's waker once polled, so each is polled again only
/// when it may have fired (a new version of the signal, a timer out of the wheel) or
/// the waker is another: most of a tunnel's polls are for its bytes.
struct Watches {
    /// Ready once the server stops. Made once for the tunnel's life: polled again, it
    /// only checks its registration, where one made per poll would register anew.
    closing: Pin<Box<dyn Future<Output = ()>>>,
    /// The signal `closing` waits on, to see whether it changed.
    closing_seen: tokio::sync::watch::Receiver<bool>,
    /// Runs to the idle deadline as it was when set: when it fires, it is set again
    /// from the last move, or the tunnel closes. One timer for the tunnel's life, not
    /// one registered and removed per read.
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    /// The waker both were last polled with, each past tokio's budget check.
    waker: Option<std::task::Waker>,
}

impl Watches {
    /// Watches `closing`, and a first idle deadline at `deadline`.
    fn new(mut closing: tokio::sync::watch::Receiver<bool>, deadline: Instant) -> Watches {
        Watches {
            closing_seen: closing.clone(),
            closing: Box::pin(async move {
                // (Should the server be gone without saying so, tunnels live on.)
                if closing.wait_for(|closing| *closing).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }),
            idle_timer: Box::pin(tokio::time::sleep_until(deadline)),
            waker: None,
        }
    }

    /// Why the tunnel closes now, if it does; `last` is when a byte last moved either
    /// way and `idle` how long it may rest.
    fn poll(&mut self, cx: &mut Context<'_>, last: &Cell<Instant>, idle: Duration) -> Poll<&'static str> {
        // With the task's coop budget spent, tokio's futures answer `Pending` without
        // taking the waker (the task is woken again for that): nothing is polled, so
        // nothing is taken for registered.
        if !tokio::task::coop::has_budget_remaining() {
            return Poll::Pending;
        }
        let registered = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        // Once the signal has changed it is polled at every turn: its notification may
        // come after the change shows.
        if (!registered || !matches!(self.closing_seen.has_changed(), Ok(false)))
            && self.closing.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready("server shutting down");
        }
        if registered && !self.idle_timer.is_elapsed() {
            return Poll::Pending;
        }
        self.waker = Some(cx.waker().clone());
        loop {
            if self.idle_timer.as_mut().poll(cx).is_pending() {
                // Its fired poll may have spent the last of the budget, and this one
                // been refused. (tokio 1.54 takes the waker on any poll that gets past
                // the budget check, the fired one too, so the timer holds it anyway;
                // that is not relied on.)
                if !tokio::task::coop::has_budget_remaining() {
                    self.waker = None;
                }
                return Poll::Pending;
            }
            let deadline = last.get() + idle;
            if deadline <= Instant::now() {
                return Poll::Ready("idle timeout");
            }
            // Set again from the last move, and polled again to wait on it.
            self.idle_timer.as_mut().reset(deadline);
        }
    }
}

impl Down {
    /// Ends the stream, with a Close frame of `code` first when the upstream has not
    /// sent one and its last frame is complete.
    fn close(&mut self, code: u16, reason: &str) -> Option<Result<Bytes, std::io::Error>> {
        self.done = true;
        if self.frames.close_seen || !self.frames.at_boundary() {
            return None;
        }
        Some(Ok(close_frame(code, reason)))
    }
}

/// A server-to-client Close frame (unmasked) with `code` and `reason` (≤ 123 bytes).
fn close_frame(code: u16, reason: &str) -> Bytes {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut frame = Vec::with_capacity(4 + reason.len());
    frame.push(0x88);
    frame.push((2 + reason.len()) as u8);
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason);
    Bytes::from(frame)
}

/// Where the frames of a byte stream begin (RFC 6455 §5.2 headers only), and whether
/// a Close frame went by.
#[derive(Debug)]
struct Frames {
    /// The header being read.
    header: [u8; 14],
    /// Bytes of it read so far.
    have: usize,
    /// Its full length, once its first two bytes are known.
    need: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// Whether a Close frame's header went by.
    close_seen: bool,
}

impl Default for Frames {
    fn default() -> Self {
        Frames {
            header: [0; 14],
            have: 0,
            need: 2,
            remaining: 0,
            close_seen: false,
        }
    }
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(bytes.len() as u64);
                self.remaining -= take;
                bytes = &bytes[take as usize..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have == 2 {
                let extended = match self.header[1] & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
                self.need = 2 + extended + mask;
            }
            if self.have >= 2 && self.have == self.need {
                let length = match self.header[1] & 0x7f {
                    126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                    127 => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or([0xff; 8])),
                    n => u64::from(n),
                };
                if self.header[0] & 0x0f == 0x8 {
                    self.close_seen = true;
                }
                self.remaining = length;
                self.have = 0;
                self.need = 2;
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.remaining == 0 && self.have == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tunnel's watches with their signal's sender, the last move (now) and the idle
    /// period.
    struct Watched {
        send: tokio::sync::watch::Sender<bool>,
        watches: Watches,
        last: Cell<Instant>,
        idle: Duration,
    }

    impl Watched {
        fn new(idle: Duration) -> Watched {
            let (send, closing) = tokio::sync::watch::channel(false);
            let last = Cell::new(Instant::now());
            Watched { send, watches: Watches::new(closing, last.get() + idle), last, idle }
        }

        /// One poll, with `spend` units of the task's coop budget spent first (tokio's
        /// futures refuse without taking the waker once it is all spent); whether any
        /// budget was left after it.
        async fn poll_once(&mut self, spend: usize) -> (Poll<&'static str>, bool) {
            std::future::poll_fn(|cx| {
                for _ in 0..spend {
                    if std::pin::pin!(tokio::task::coop::consume_budget()).poll(cx).is_pending() {
                        break;
                    }
                }
                let poll = self.watches.poll(cx, &self.last, self.idle);
                Poll::Ready((poll, tokio::task::coop::has_budget_remaining()))
            })
            .await
        }

        /// Why the tunnel closed, polled with a full budget each time (at most 5 s).
        async fn closed(&mut self) -> Result<&'static str, tokio::time::error::Elapsed> {
            let (watches, last, idle) = (&mut self.watches, &self.last, self.idle);
            tokio::time::timeout(Duration::from_secs(5), std::future::poll_fn(|cx| watches.poll(cx, last, idle))).await
        }
    }

    /// The server's closing signal, sent while the tunnel's task had no budget left,
    /// still closes the tunnel at its next poll (a signal taken as seen then, or a
    /// waker taken as held, would have left it open until the idle timeout).
    #[actix_rt::test]
    async fn a_closing_signal_during_a_poll_without_budget_is_not_lost() {
        let mut tunnel = Watched::new(Duration::from_secs(600));
        assert!(tunnel.poll_once(0).await.0.is_pending());
        tunnel.send.send(true).unwrap();
        assert_eq!(tunnel.poll_once(usize::MAX).await, (Poll::Pending, false));
        assert_eq!(tunnel.closed().await, Ok("server shutting down"));
    }

    /// A first poll without budget does not leave the idle timer unregistered for
    /// good: the tunnel still closes at its idle deadline.
    #[actix_rt::test]
    async fn an_idle_timer_first_polled_without_budget_still_fires() {
        let mut tunnel = Watched::new(Duration::from_millis(100));
        assert_eq!(tunnel.poll_once(usize::MAX).await, (Poll::Pending, false));
        assert_eq!(tunnel.closed().await, Ok("idle timeout"));
        assert!(tunnel.last.get().elapsed() >= tunnel.idle);
    }

    /// An idle timer that fired after the last move is set again; when that leaves no
    /// budget for polling it again, it is still polled (and so fires) later.
    #[actix_rt::test]
    async fn an_idle_timer_set_again_on_the_last_unit_of_budget_still_fires() {
        let mut tunnel = Watched::new(Duration::from_millis(100));
        assert!(tunnel.poll_once(0).await.0.is_pending());
        tokio::time::sleep(tunnel.idle + Duration::from_millis(20)).await;
        tunnel.last.set(Instant::now());
        // A fresh budget (128), of which 127 are spent: the timer's fired poll takes the
        // last one, and its poll after the reset is refused.
        tokio::task::yield_now().await;
        assert_eq!(tunnel.poll_once(127).await, (Poll::Pending, false), "the poll after the reset was refused");
        assert_eq!(tunnel.closed().await, Ok("idle timeout"));
    }

    /// Frame boundaries are found across reads of any split, for the three length
    /// forms, and a Close frame is noticed.
    #[test]
    fn frames_are_tracked_across_any_split() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&[0x81, 3, b'a', b'b', b'c']);
        stream.extend_from_slice(&[0x82, 126, 0x01, 0x00]);
        stream.extend(std::iter::repeat_n(7u8, 256));
        stream.extend_from_slice(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        stream.extend(std::iter::repeat_n(9u8, 65536));
        let close = close_frame(1000, "bye");
        for split in [1, 2, 3, 7, 100, 70_000] {
            let mut frames = Frames::default();
            for chunk in stream.chunks(split) {
                frames.feed(chunk);
            }
            assert!(frames.at_boundary() && !frames.close_seen, "split {split}");
            frames.feed(&close[..1]);
            assert!(!frames.at_boundary(), "split {split}");
            frames.feed(&close[1..]);
            assert!(frames.at_boundary() && frames.close_seen, "split {split}");
        }
        let mut frames = Frames::default();
        frames.feed(&[0x81, 5, b'a']);
        assert!(!frames.at_boundary());
    }
}
