//! hyper's HTTP/1.1 client, for what is not on the request path: the WebSocket
//! tunnel (an upgraded connection), and one-off fetches on connections of their own
//! (discovery, health checks, the docs login's token exchange).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;

use super::endpoint::Endpoint;
use super::hyper_door;
use super::out_body::OutBody;
use crate::error::{BodyError, ConnectFailure};
use crate::upstream_url::UpstreamUrl;
use crate::wire_error::WireError;

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
        let mut headers = one.headers;
        headers.insert(http::header::HOST, endpoint.host.clone());
        let request = hyper_door::request(&one.method, format!("{}{}", endpoint.prefix, one.path), &headers, body)
            .map_err(|e| format!("bad request: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = hyper_door::status(response.status());
        let body = read_incoming_to_end(&mut response.into_body(), limit).await.map_err(|e| e.to_string())?;
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:.3}s", timeout.as_secs_f64())))
}

/// Reads a body of hyper's client to its end (the tunnel's refusals, one-off
/// fetches), refusing more than `limit` bytes.
///
/// # Errors
/// As [`read_to_end`].
pub(super) async fn read_incoming_to_end(body: &mut Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(WireError::Hyper(e)))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
