use std::{
    cmp,
    error::Error as StdError,
    future::Future,
    marker::PhantomData,
    net,
    cell::Cell,
    pin::{pin, Pin},
    rc::Rc,
    task::{Context, Poll},
};

use actix_codec::{AsyncRead, AsyncWrite};
use actix_service::Service;
use actix_utils::future::poll_fn;
use bytes::{Bytes, BytesMut};
use futures_core::ready;
use h2::{
    server::{Connection, SendResponse},
    Ping, PingPong,
};
use pin_project_lite::pin_project;
use tokio::time::{sleep, Sleep};

use crate::{
    body::{BodySize, BoxBody, MessageBody},
    config::ServiceConfig,
    header::{
        HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING, UPGRADE,
    },
    service::HttpFlow,
    Extensions, Method, OnConnectData, Payload, Request, Response, ResponseHead,
};

const CHUNK_SIZE: usize = 16_384;

pin_project! {
    /// Dispatcher for HTTP/2 protocol.
    pub struct Dispatcher<T, S, B, X, U> {
        flow: Rc<HttpFlow<S, X, U>>,
        connection: Connection<T, Bytes>,
        conn_data: Option<Rc<Extensions>>,
        config: ServiceConfig,
        peer_addr: Option<net::SocketAddr>,
        ping_pong: Option<H2PingPong>,
        // framex-rs patch: streams whose response is still being produced or sent.
        open_streams: Rc<Cell<usize>>,
        // framex-rs patch: a stream was accepted since the keep-alive timer last fired.
        active_since_tick: bool,
        // framex-rs patch: GOAWAY was sent because the connection was idle.
        closing: bool,
        _phantom: PhantomData<B>
    }
}

impl<T, S, B, X, U> Dispatcher<T, S, B, X, U>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    pub(crate) fn new(
        mut conn: Connection<T, Bytes>,
        flow: Rc<HttpFlow<S, X, U>>,
        config: ServiceConfig,
        peer_addr: Option<net::SocketAddr>,
        conn_data: OnConnectData,
        timer: Option<Pin<Box<Sleep>>>,
    ) -> Self {
        let ping_pong = config.keep_alive().duration().map(|dur| H2PingPong {
            timer: timer
                .map(|mut timer| {
                    // reuse timer slot if it was initialized for handshake
                    timer.as_mut().reset((config.now() + dur).into());
                    timer
                })
                .unwrap_or_else(|| Box::pin(sleep(dur))),
            in_flight: false,
            ping_pong: conn.ping_pong().unwrap(),
        });

        Self {
            flow,
            config,
            peer_addr,
            connection: conn,
            conn_data: conn_data.0.map(Rc::new),
            ping_pong,
            open_streams: Rc::new(Cell::new(0)),
            active_since_tick: false,
            closing: false,
            _phantom: PhantomData,
        }
    }
}

struct H2PingPong {
    /// Handle to send ping frames from the peer.
    ping_pong: PingPong,

    /// True when a ping has been sent and is waiting for a reply.
    in_flight: bool,

    /// Timeout for pong response.
    timer: Pin<Box<Sleep>>,
}

impl<T, S, B, X, U> Future for Dispatcher<T, S, B, X, U>
where
    T: AsyncRead + AsyncWrite + Unpin,

    S: Service<Request>,
    S::Error: Into<Response<BoxBody>>,
    S::Future: 'static,
    S::Response: Into<Response<B>>,

    B: MessageBody,
{
    type Output = Result<(), crate::error::DispatchError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();

        'accept: loop {
            match Pin::new(&mut this.connection).poll_accept(cx)? {
                Poll::Ready(Some((req, mut tx))) => {
                    let (parts, body) = req.into_parts();
                    this.active_since_tick = true;
                    // framex-rs patch: HTTP/1.1's header count limit holds on HTTP/2 too.
                    if parts.headers.len() > super::MAX_HEADERS {
                        refuse_header_flood(&mut tx);
                        continue;
                    }
                    let Some(open) = OpenStream::new(&this.open_streams) else {
                        tx.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    };
                    let payload = crate::h2::Payload::new(body);
                    let pl = Payload::H2 { payload };
                    let mut req = Request::with_payload(pl);
                    let head_req = parts.method == Method::HEAD;

                    let head = req.head_mut();
                    head.uri = parts.uri;
                    head.method = parts.method;
                    head.version = parts.version;
                    head.headers = parts.headers.into();
                    head.peer_addr = this.peer_addr;

                    req.conn_data.clone_from(&this.conn_data);

                    let fut = this.flow.service.call(req);
                    let config = this.config.clone();

                    // multiplex request handling with spawn task
                    tokio::task::spawn_local(async move {
                        let _open = open;
                        // resolve service call and send response.
                        let res = match fut.await {
                            Ok(res) => handle_response(res.into(), tx, config, head_req).await,
                            Err(err) => {
                                let res: Response<BoxBody> = err.into();
                                handle_response(res, tx, config, head_req).await
                            }
                        };

                        // log error.
                        if let Err(err) = res {
                            match err {
                                DispatchError::SendResponse(err) => {
                                    tracing::trace!("Error sending response: {err:?}");
                                }
                                DispatchError::SendData(err) => {
                                    tracing::warn!("Send data error: {err:?}");
                                }
                                DispatchError::ResponseBody(err) => {
                                    tracing::error!("Response payload stream error: {err:?}");
                                }
                            }
                        }
                    });
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),

                Poll::Pending => match this.ping_pong.as_mut() {
                    Some(ping_pong) => loop {
                        if ping_pong.in_flight {
                            // When there is an in-flight ping-pong, poll pong and keep-alive
                            // timer. On successful pong received, update keep-alive timer to
                            // determine the next timing of ping pong.
                            match ping_pong.ping_pong.poll_pong(cx)? {
                                Poll::Ready(_) => {
                                    ping_pong.in_flight = false;

                                    let dead_line = this.config.keep_alive_deadline().unwrap();
                                    ping_pong.timer.as_mut().reset(dead_line.into());
                                }
                                Poll::Pending => {
                                    return ping_pong.timer.as_mut().poll(cx).map(|_| Ok(()));
                                }
                            }
                        } else {
                            // When there is no in-flight ping-pong, keep-alive timer is used to
                            // wait for next timing of ping-pong. Therefore, at this point it serves
                            // as an interval instead.
                            ready!(ping_pong.timer.as_mut().poll(cx));

                            // framex-rs patch: no stream open and none started for a whole
                            // keep-alive period: the connection is idle. GOAWAY, and close
                            // once the client has seen it (or the pong below times out).
                            let idle = this.open_streams.get() == 0 && !this.active_since_tick;
                            this.active_since_tick = false;
                            if idle && !this.closing {
                                this.closing = true;
                                this.connection.graceful_shutdown();
                                continue 'accept;
                            }

                            ping_pong.ping_pong.send_ping(Ping::opaque())?;

                            let dead_line = this.config.keep_alive_deadline().unwrap();
                            ping_pong.timer.as_mut().reset(dead_line.into());

                            ping_pong.in_flight = true;
                        }
                    },
                    None => return Poll::Pending,
                },
            }
        }
    }
}

/// framex-rs patch: counts a stream as open, on its connection and on its thread, from
/// its acceptance until its task ends.
struct OpenStream(Rc<Cell<usize>>);

impl OpenStream {
    /// `None` when the thread's stream limit is reached.
    fn new(open: &Rc<Cell<usize>>) -> Option<Self> {
        let limit = super::THREAD_STREAM_LIMIT.with(Cell::get);
        let on_thread = super::THREAD_STREAMS.with(Cell::get);
        if limit != 0 && on_thread >= limit {
            return None;
        }
        super::THREAD_STREAMS.with(|n| n.set(on_thread + 1));
        open.set(open.get() + 1);
        Some(Self(Rc::clone(open)))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
        super::THREAD_STREAMS.with(|n| n.set(n.get() - 1));
    }
}

/// framex-rs patch: answers a request with too many header fields with 431, as the
/// HTTP/1.1 parser does, without calling the service.
fn refuse_header_flood(tx: &mut SendResponse<Bytes>) {
    let mut res = http::Response::new(());
    *res.status_mut() = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    if let Err(err) = tx.send_response(res, true) {
        tracing::trace!("Error sending 431 response: {err:?}");
    }
}

enum DispatchError {
    SendResponse(h2::Error),
    SendData(h2::Error),
    ResponseBody(Box<dyn StdError>),
}

async fn handle_response<B>(
    res: Response<B>,
    mut tx: SendResponse<Bytes>,
    config: ServiceConfig,
    head_req: bool,
) -> Result<(), DispatchError>
where
    B: MessageBody,
{
    let (res, body) = res.replace_body(());

    // prepare response.
    let mut size = body.size();
    let res = prepare_response(config, res.head(), &mut size);
    let eof_or_head = size.is_eof() || head_req;

    // send response head and return on eof.
    let mut stream = tx
        .send_response(res, eof_or_head)
        .map_err(DispatchError::SendResponse)?;

    if eof_or_head {
        return Ok(());
    }

    let mut body = pin!(body);

    // poll response body and send chunks to client
    while let Some(res) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let mut chunk = res.map_err(|err| DispatchError::ResponseBody(err.into()))?;

        'send: loop {
            let chunk_size = cmp::min(chunk.len(), CHUNK_SIZE);

            // reserve enough space and wait for stream ready.
            stream.reserve_capacity(chunk_size);

            match window(&mut stream).await {
                // No capacity left. drop body and return.
                Window::Closed => return Ok(()),

                Window::Failed(err) => return Err(DispatchError::SendData(err)),

                // framex-rs patch: a stream that gets no send window for the write stall
                // limit is reset, and its body (an upstream exchange, say) let go, as
                // HTTP/1 drops a connection whose client takes nothing.
                Window::Stalled => {
                    tracing::debug!("HTTP/2 stream reset: no send window within the write stall limit");
                    stream.send_reset(h2::Reason::CANCEL);
                    return Ok(());
                }

                Window::Open(cap) => {
                    // split chunk to writeable size and send to client
                    let len = chunk.len();
                    let bytes = chunk.split_to(cmp::min(len, cap));

                    stream
                        .send_data(bytes, false)
                        .map_err(DispatchError::SendData)?;

                    // Current chuck completely sent. break send loop and poll next one.
                    if chunk.is_empty() {
                        break 'send;
                    }
                }
            }
        }
    }

    // response body streaming finished. send end of stream and return.
    stream
        .send_data(Bytes::new(), true)
        .map_err(DispatchError::SendData)?;

    Ok(())
}

/// framex-rs patch: what a wait for send window came to.
enum Window {
    /// This many bytes may be sent (never 0).
    Open(usize),
    /// The stream can send no more (h2's `None`).
    Closed,
    /// The stream failed.
    Failed(h2::Error),
    /// None came within the write stall limit.
    Stalled,
}

/// framex-rs patch: waits for send capacity on `stream` for at most the write stall
/// limit (`h1::set_thread_write_stall`) from now. A grant of 0 bytes (h2 reports one when
/// a window shrinks again before it was used) is no progress: the wait goes on under
/// the same deadline. The timer is made only if the capacity is not there at once.
async fn window(stream: &mut h2::SendStream<Bytes>) -> Window {
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| loop {
        match stream.poll_capacity(cx) {
            Poll::Ready(Some(Ok(0))) => continue,
            Poll::Ready(Some(Ok(cap))) => return Poll::Ready(Window::Open(cap)),
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Window::Failed(err)),
            Poll::Ready(None) => return Poll::Ready(Window::Closed),
            Poll::Pending => {
                let timer = timer.get_or_insert_with(|| Box::pin(sleep(crate::h1::thread_write_stall())));
                return timer.as_mut().poll(cx).map(|()| Window::Stalled);
            }
        }
    })
    .await
}

fn prepare_response(
    config: ServiceConfig,
    head: &ResponseHead,
    size: &mut BodySize,
) -> http::Response<()> {
    let mut has_date = false;
    let mut skip_len = size != &BodySize::Stream;

    let mut res = http::Response::new(());
    *res.status_mut() = head.status;
    *res.version_mut() = http::Version::HTTP_2;

    // Content length
    match head.status {
        http::StatusCode::NO_CONTENT
        | http::StatusCode::CONTINUE
        | http::StatusCode::PROCESSING => *size = BodySize::None,
        http::StatusCode::SWITCHING_PROTOCOLS => {
            skip_len = true;
            *size = BodySize::Stream;
        }
        _ => {}
    }

    match size {
        BodySize::None | BodySize::Stream => {}

        BodySize::Sized(0) => {
            #[allow(clippy::declare_interior_mutable_const)]
            const HV_ZERO: HeaderValue = HeaderValue::from_static("0");
            res.headers_mut().insert(CONTENT_LENGTH, HV_ZERO);
        }

        BodySize::Sized(len) => {
            let mut buf = itoa::Buffer::new();

            res.headers_mut().insert(
                CONTENT_LENGTH,
                HeaderValue::from_str(buf.format(*len)).unwrap(),
            );
        }
    };

    // copy headers
    for (key, value) in head.headers.iter() {
        match key {
            // omit HTTP/1.x only headers according to:
            // https://datatracker.ietf.org/doc/html/rfc7540#section-8.1.2.2
            &CONNECTION | &TRANSFER_ENCODING | &UPGRADE => continue,

            &CONTENT_LENGTH if skip_len => continue,
            &DATE => has_date = true,

            // omit HTTP/1.x only headers according to:
            // https://datatracker.ietf.org/doc/html/rfc7540#section-8.1.2.2
            hdr if hdr == HeaderName::from_static("keep-alive")
                || hdr == HeaderName::from_static("proxy-connection") =>
            {
                continue
            }

            _ => {}
        }

        res.headers_mut().append(key, value.clone());
    }

    // framex-rs patch: the head's written lines (`name: value\r\n`) go into the field
    // list; a line that is no valid field is left out.
    if let Some((lines, lines_have_date)) = &head.written_fields {
        has_date |= *lines_have_date;
        for line in lines.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            let Ok(name) = HeaderName::from_bytes(name) else {
                continue;
            };
            // As for the map's fields: no HTTP/1.x connection field on HTTP/2.
            let http1_only = matches!(name, CONNECTION | TRANSFER_ENCODING | UPGRADE | CONTENT_LENGTH)
                || name == HeaderName::from_static("keep-alive")
                || name == HeaderName::from_static("proxy-connection")
                || name == HeaderName::from_static("te");
            if let (false, Ok(value)) = (http1_only, HeaderValue::from_bytes(value)) {
                res.headers_mut().append(name, value);
            }
        }
    }

    // set date header
    if !has_date {
        let mut bytes = BytesMut::with_capacity(29);
        config.write_date_header_value(&mut bytes);
        res.headers_mut().insert(
            DATE,
            // SAFETY: serialized date-times are known ASCII strings
            unsafe { HeaderValue::from_maybe_shared_unchecked(bytes.freeze()) },
        );
    }

    res
}
