//! A watchdog for HTTP/1.1 keep-alive connections.
//!
//! actix-http times a connection's first request head (`CLIENT_REQUEST_TIMEOUT`) and
//! the idle wait between two requests (`KEEP_ALIVE`), but once one byte of the *next*
//! head has arrived it stops timing: a client trickling that head a byte at a time
//! held the connection for ever. Here every connection is watched: once it has
//! answered its last request, the next one must be in within `KEEP_ALIVE` plus
//! `CLIENT_REQUEST_TIMEOUT`, or the socket is shut down. Written by hand: actix-web
//! offers no hook for it. What it costs: per connection one small record; per HTTP/1
//! request two cell writes and the response body held in a thin wrapper that notes
//! when it has been sent.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::Extensions;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

/// How often each worker looks at its connections.
const SWEEP: Duration = Duration::from_secs(1);

/// One connection as the watchdog sees it.
pub struct ConnWatch {
    fd: RawFd,
    /// Requests of this connection whose response is not sent yet.
    busy: Cell<u32>,
    /// Since when nothing is in progress (the connection's start, or its last answer).
    idle_since: Cell<Instant>,
    /// Whether it speaks HTTP/1 (HTTP/2 has flow control and pings of its own).
    http1: Cell<bool>,
}

thread_local! {
    /// This worker's connections; a connection's record goes when it closes.
    static WATCHED: RefCell<Vec<Weak<ConnWatch>>> = const { RefCell::new(Vec::new()) };
    /// Whether this worker's sweep runs.
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// `HttpServer::on_connect`: starts watching a new connection (plain or TLS).
pub fn on_connect(connection: &dyn std::any::Any, extensions: &mut Extensions) {
    use actix_web::rt::net::TcpStream;
    let fd = connection
        .downcast_ref::<TcpStream>()
        .map(AsRawFd::as_raw_fd)
        .or_else(|| {
            connection
                .downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
                .map(|tls| tls.get_ref().0.as_raw_fd())
        });
    let Some(fd) = fd else { return };
    let watch = Rc::new(ConnWatch {
        fd,
        busy: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
        http1: Cell::new(false),
    });
    WATCHED.with(|watched| watched.borrow_mut().push(Rc::downgrade(&watch)));
    if !SWEEPING.with(|s| s.replace(true)) {
        actix_web::rt::spawn(sweep(crate::conn_timeouts::KEEP_ALIVE + crate::conn_timeouts::CLIENT_REQUEST_TIMEOUT));
    }
    extensions.insert(watch);
}

/// Notes that an HTTP/1 request of this connection is in progress until `response`
/// has been sent.
pub fn watch(req: &HttpRequest, response: HttpResponse) -> HttpResponse {
    let Some(watch) = req.conn_data::<Rc<ConnWatch>>() else { return response };
    if req.version() >= actix_web::http::Version::HTTP_2 {
        return response;
    }
    watch.http1.set(true);
    watch.busy.set(watch.busy.get() + 1);
    let busy = Busy(watch.clone());
    response
        .map_body(|_, body| Watched { body, _busy: busy })
        .map_into_boxed_body()
}

/// A request in progress; dropped with its response body (sent, or the connection
/// gone).
struct Busy(Rc<ConnWatch>);

impl Drop for Busy {
    fn drop(&mut self) {
        let left = self.0.busy.get().saturating_sub(1);
        self.0.busy.set(left);
        if left == 0 {
            self.0.idle_since.set(Instant::now());
        }
    }
}

/// A response body that marks its request done when it goes.
struct Watched {
    body: BoxBody,
    _busy: Busy,
}

impl MessageBody for Watched {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Every `SWEEP`, shuts down this worker's HTTP/1 connections idle for longer than
/// `limit` (actix-http would have closed an idle one sooner, so such a connection is
/// stuck in a trickled head), and forgets closed ones.
async fn sweep(limit: Duration) {
    loop {
        actix_web::rt::time::sleep(SWEEP).await;
        let now = Instant::now();
        WATCHED.with(|watched| {
            watched.borrow_mut().retain(|weak| {
                let Some(watch) = weak.upgrade() else { return false };
                let stuck = watch.http1.get()
                    && watch.busy.get() == 0
                    && now.duration_since(watch.idle_since.get()) > limit;
                if stuck {
                    log::debug!("closing a kept-alive connection whose next request head did not come in time");
                    // SAFETY: the record lives only while its connection does, on this
                    // thread, so `fd` is still that connection's socket.
                    unsafe { libc::shutdown(watch.fd, libc::SHUT_RDWR) };
                    return false;
                }
                true
            });
        });
    }
}
