//! The HTTP/1.1 client of one pool replica (hyper's connection API): keep-alive
//! connections per endpoint, opened under a connect timeout, reused only once their
//! previous exchange is over, and a clear answer to "was this request ever written?".
//!
//! Everything lives on the replica's arbiter thread: connection tasks are spawned
//! locally and the idle lists are plain `RefCell`s.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::pumps::Pumps;
use super::Body;
use crate::error::{BodyError, ConnectFailure, Error, Fault};
use crate::upstream_url::UpstreamUrl;

/// Idle connections kept per endpoint; more are closed when released.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

/// A request body as hyper sends it: nothing, bytes held whole, or a stream.
pub(super) enum OutBody {
    /// No body.
    Empty,
    /// Bytes held whole (taken on the first poll).
    Full(Option<Bytes>),
    /// A stream of chunks; an error in it aborts the request.
    Stream(crate::stream::ChunkStream),
}

impl From<Body> for OutBody {
    fn from(body: Body) -> Self {
        match body {
            Body::Empty => OutBody::Empty,
            Body::Full(bytes) => OutBody::Full(Some(bytes)),
            Body::Stream(stream) => OutBody::Stream(stream),
        }
    }
}

impl From<OutBody> for Body {
    fn from(body: OutBody) -> Self {
        match body {
            OutBody::Empty | OutBody::Full(None) => Body::Empty,
            OutBody::Full(Some(bytes)) => Body::Full(bytes),
            OutBody::Stream(stream) => Body::Stream(stream),
        }
    }
}

impl http_body::Body for OutBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.get_mut() {
            OutBody::Empty => Poll::Ready(None),
            OutBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            OutBody::Stream(stream) => Pin::new(stream)
                .poll_next(cx)
                .map(|item| item.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Empty => true,
            OutBody::Full(bytes) => bytes.is_none(),
            OutBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Empty => SizeHint::with_exact(0),
            OutBody::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            OutBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Where one endpoint is, as a connection needs it, computed once per client from
/// the endpoint's parsed URL: the address to connect to, the TLS name, the `Host`
/// header and the path prefix (nothing is parsed or built per request).
#[derive(Debug)]
pub(super) struct Endpoint {
    /// `host:port`, or the address the host was resolved to.
    address: String,
    /// For `https://`: the name the certificate must carry.
    tls: Option<ServerName<'static>>,
    /// The `Host` header value (the URL's authority).
    pub(super) host: HeaderValue,
    /// The URL's path prefix (empty or `/prefix`, no trailing slash).
    pub(super) prefix: String,
}

impl Endpoint {
    /// The endpoint at `url`; `resolved`, when given, is where to connect instead of
    /// the URL's host (which stays the `Host` and the TLS name).
    pub(super) fn new(url: &UpstreamUrl, resolved: Option<std::net::SocketAddr>) -> Endpoint {
        Endpoint {
            address: resolved.map_or_else(|| url.connect_address(), |addr| addr.to_string()),
            tls: url.tls_name().cloned(),
            host: url.host_header().clone(),
            prefix: url.path_prefix().to_owned(),
        }
    }
}

/// Why a request got no response head. The exchange decides what each allows.
pub(super) enum SendError {
    /// No connection could be made (refused, unreachable, timed out): nothing was sent.
    Connect(ConnectFailure),
    /// The connection refused the request before writing any of it (the upstream had
    /// closed it): the request comes back whole, to go again.
    Unsent {
        /// The request, untouched (boxed: it is large, and this is the rare case).
        request: Box<Request<OutBody>>,
        /// Whether the connection had carried earlier requests (an idle keep-alive
        /// connection the upstream closed as we reused it).
        reused: bool,
        /// What the connection said.
        cause: ConnectFailure,
    },
    /// The connection failed after the request was (at least partly) written, or the
    /// reply could not be parsed: the upstream may have acted on it.
    Exchange {
        /// What failed.
        error: hyper::Error,
        /// Whether the connection had carried earlier requests.
        reused: bool,
    },
    /// Our own request body failed (over the size limit, or the client broke off).
    Body(Error),
}

/// The client of one pool replica.
pub(super) struct Client {
    endpoints: Vec<Endpoint>,
    idle: RefCell<Vec<Vec<SendRequest<OutBody>>>>,
    connect_timeout: Duration,
    tls: Arc<ClientConfig>,
    /// Where streamed bodies are pumped: the replica's actor (see `pumps`).
    pumps: Pumps,
}

impl Client {
    /// A client for the endpoints of `pool`, none connected yet.
    pub(super) fn new(pool: &super::PoolConfig, connect_timeout: Duration, tls: Arc<ClientConfig>) -> Rc<Client> {
        let urls = &pool.endpoints;
        Rc::new(Client {
            endpoints: urls.iter().enumerate().map(|(i, u)| Endpoint::new(u, pool.address(i))).collect(),
            idle: RefCell::new(urls.iter().map(|_| Vec::new()).collect()),
            connect_timeout,
            tls,
            pumps: Pumps::default(),
        })
    }

    /// The way to the replica's actor, for pumping streamed bodies.
    pub(super) fn pumps(&self) -> &Pumps {
        &self.pumps
    }

    /// The endpoint at `index`.
    pub(super) fn endpoint(&self, index: usize) -> &Endpoint {
        &self.endpoints[index]
    }

    /// Sends `request` to endpoint `index` on an idle connection (unless `fresh`), or a
    /// new one, and waits for the response head. A new connection is given up on
    /// ([`ConnectFailure::Ejected`]) if `health` ejects the endpoint while it opens.
    /// Whether and how a failure is tried again is the exchange's decision, made in
    /// one place.
    pub(super) async fn send(
        self: &Rc<Self>,
        index: usize,
        request: Request<OutBody>,
        fresh: bool,
        health: &super::health::Health,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let (mut sender, reused) = self.acquire(index, fresh, health).await?;
        match sender.try_send_request(request).await {
            Ok(response) => {
                let lease = Lease {
                    client: self.clone(),
                    index,
                    sender,
                };
                Ok((response, lease))
            }
            Err(mut failed) => match failed.take_message() {
                Some(request) => Err(SendError::Unsent {
                    request: Box::new(request),
                    reused,
                    cause: ConnectFailure::Http(Arc::new(failed.into_error())),
                }),
                None => {
                    let error = failed.into_error();
                    Err(match body_error(error) {
                        Ok(ours) => SendError::Body(ours),
                        Err(error) => SendError::Exchange { error, reused },
                    })
                }
            },
        }
    }

    /// An idle connection to endpoint `index` that is ready for a request (unless
    /// `fresh`), else a new one, unless `health` ejects the endpoint while it opens;
    /// says whether it was reused.
    async fn acquire(
        &self,
        index: usize,
        fresh: bool,
        health: &super::health::Health,
    ) -> Result<(SendRequest<OutBody>, bool), SendError> {
        if !fresh {
            loop {
                let idle = self.idle.borrow_mut()[index].pop();
                let Some(mut sender) = idle else { break };
                if !sender.is_closed() && sender.ready().await.is_ok() {
                    return Ok((sender, true));
                }
            }
        }
        let endpoint = self.endpoint(index);
        // Nothing is written before the connection is made: giving up is safe.
        let sender = tokio::select! {
            biased;
            made = connect(endpoint, &self.tls, self.connect_timeout, false) => made,
            () = health.ejected() => Err(ConnectFailure::Ejected),
        };
        Ok((sender.map_err(SendError::Connect)?, false))
    }

    fn release(&self, index: usize, sender: SendRequest<OutBody>) {
        let mut idle = self.idle.borrow_mut();
        if !sender.is_closed() && idle[index].len() < MAX_IDLE_PER_ENDPOINT {
            idle[index].push(sender);
        }
    }
}

/// Opens a connection to `endpoint` (TLS for `https://`) within `timeout` and starts
/// its task on the current arbiter; with `upgrades`, a `101` reply hands the
/// connection over (`hyper::upgrade::on`) rather than closing it.
pub(super) async fn connect(
    endpoint: &Endpoint,
    tls: &Arc<ClientConfig>,
    timeout: Duration,
    upgrades: bool,
) -> Result<SendRequest<OutBody>, ConnectFailure> {
    let opening = async {
        let stream = tokio::net::TcpStream::connect(&endpoint.address)
            .await
            .map_err(|e| ConnectFailure::Tcp(Arc::new(e)))?;
        let _ = stream.set_nodelay(true);
        match &endpoint.tls {
            None => handshake(TokioIo::new(stream), upgrades).await,
            Some(name) => {
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| ConnectFailure::Tls(Arc::new(e)))?;
                handshake(TokioIo::new(stream), upgrades).await
            }
        }
    };
    match tokio::time::timeout(timeout, opening).await {
        Ok(result) => result,
        Err(_) => Err(ConnectFailure::Timeout {
            seconds: timeout.as_secs_f64(),
        }),
    }
}

/// The HTTP/1.1 handshake on an open stream; the connection's task runs locally.
async fn handshake<T>(io: T, upgrades: bool) -> Result<SendRequest<OutBody>, ConnectFailure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| ConnectFailure::Http(Arc::new(e)))?;
    actix_rt::spawn(async move {
        let ended = if upgrades {
            connection.with_upgrades().await
        } else {
            connection.await
        };
        if let Err(e) = ended {
            log::debug!("upstream connection ended: {}", crate::Escaped(&e));
        }
    });
    Ok(sender)
}

/// `GET {base_url}{path}` on a connection of its own (to `resolved` when given, else
/// to the URL's host), within `timeout`, reading at most `limit` bytes of body: for
/// discovery and health checks, which are not on the hot path and must not disturb
/// the pools' connections.
///
/// # Errors
/// What went wrong, in words (no connection, TLS, timeout, body too large).
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    base_url: &UpstreamUrl,
    resolved: Option<std::net::SocketAddr>,
    path: &str,
    headers: HeaderMap,
    tls: &Arc<ClientConfig>,
    timeout: Duration,
    limit: usize,
) -> Result<(StatusCode, Bytes), String> {
    let request = OneRequest {
        method: http::Method::GET,
        path,
        headers,
        body: Bytes::new(),
    };
    fetch_request(base_url, resolved, request, tls, timeout, limit).await
}

/// One request sent by [`fetch_request`]: method, path (with its query) under the
/// base URL, headers, and a body held whole (empty: none).
#[derive(Debug)]
pub struct OneRequest<'a> {
    /// The method.
    pub method: http::Method,
    /// The path and query, appended to the base URL's path.
    pub path: &'a str,
    /// The headers (`Host` is set from the base URL; `Content-Length` from the body).
    pub headers: HeaderMap,
    /// The body; empty sends none.
    pub body: Bytes,
}

/// As [`fetch`], for any method and a body held whole: one exchange on a connection
/// of its own, within `timeout`, reading at most `limit` bytes of answer (the token
/// exchange of the docs login, for one).
///
/// # Errors
/// As [`fetch`].
pub async fn fetch_request(
    base_url: &UpstreamUrl,
    resolved: Option<std::net::SocketAddr>,
    one: OneRequest<'_>,
    tls: &Arc<ClientConfig>,
    timeout: Duration,
    limit: usize,
) -> Result<(StatusCode, Bytes), String> {
    let endpoint = Endpoint::new(base_url, resolved);
    let exchange = async {
        let mut sender = connect(&endpoint, tls, timeout, false).await.map_err(|e| e.to_string())?;
        let body = if one.body.is_empty() { OutBody::Empty } else { OutBody::Full(Some(one.body)) };
        let mut request = Request::builder()
            .method(one.method)
            .uri(format!("{}{}", endpoint.prefix, one.path))
            .body(body)
            .map_err(|e| format!("bad request: {e}"))?;
        *request.headers_mut() = one.headers;
        request.headers_mut().insert(http::header::HOST, endpoint.host.clone());
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = read_to_end(&mut response.into_body(), limit).await.map_err(|e| e.to_string())?;
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:.3}s", timeout.as_secs_f64())))
}

/// Our request body's own error inside a hyper error, if that is what failed (else
/// hyper's error, given back).
fn body_error(error: hyper::Error) -> Result<Error, hyper::Error> {
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        if let Some(ours) = inner.downcast_ref::<Error>() {
            return Ok(match ours {
                Error::PayloadTooLarge { limit } => Error::PayloadTooLarge { limit: *limit },
                Error::ClientAbort { reason } => Error::ClientAbort { reason: reason.clone() },
                Error::BodyTimeout { reason } => Error::BodyTimeout { reason: reason.clone() },
                // Ours, but of no kind the caller is told about: hyper's error holds it.
                _ => Error::Internal(Fault::RequestBody(error)),
            });
        }
        source = inner.source();
    }
    Err(error)
}

/// The connection an exchange is using; handed back for reuse with
/// [`Lease::release`] once the response body has been read to its end. Dropped
/// without that, the connection is not reused.
pub(super) struct Lease {
    client: Rc<Client>,
    index: usize,
    sender: SendRequest<OutBody>,
}

impl Lease {
    /// Where a streamed body read on this connection is pumped.
    pub(super) fn pumps(&self) -> Pumps {
        self.client.pumps.clone()
    }

    /// The exchange is over: the connection may carry the next request.
    pub(super) fn release(self) {
        self.client.release(self.index, self.sender);
    }
}

/// Reads a body to its end, refusing more than `limit` bytes. A body that comes in
/// one frame (most small replies) is kept as it came, without a copy.
///
/// # Errors
/// The connection broke (a body cut off before its declared end included), or the
/// body is over `limit`.
pub(super) async fn read_to_end(body: &mut Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(BodyError::Broken)?.into_data() {
            len += data.len();
            if len > limit {
                return Err(BodyError::TooLarge { limit });
            }
            match first.take() {
                None if buf.is_empty() => first = Some(data),
                None => buf.extend_from_slice(&data),
                Some(earlier) => {
                    buf.reserve(len);
                    buf.extend_from_slice(&earlier);
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}
