//! Upgraded connections (WebSocket) to an endpoint of a pool: the upgrade request is
//! sent on a connection of its own (an upgraded connection is never reused), and a
//! `101` hands back the raw byte stream, which the caller relays both ways.
//!
//! The endpoint is picked as for any request of the pool (health, in-flight limit,
//! balance); failing to connect or to get an answer counts against its health, as it
//! does for other requests. An answer other than `101` (the upstream refusing the
//! upgrade: 403, 404…) is returned whole, for the caller to relay.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;

use super::endpoint::Endpoint;
use super::fetch::{connect, read_incoming_to_end};
use super::hyper_door;
use super::out_body::OutBody;
use crate::wire_error::WireError;
use super::{selection, PoolShared, HOPS_HEADER, REQUEST_ID_HEADER};
use crate::call::CallContext;
use crate::error::{BrokenReply, ConnectFailure, Error};
use crate::peer::Peer;

/// Largest body of a refused upgrade read and relayed.
const REFUSAL_BODY_LIMIT: usize = 64 * 1024;

pub use super::tunnel_io::{TunnelIo, TunnelRead, TunnelWrite};

/// An upgrade request: `GET` of `path_and_query` with the client's end-to-end headers
/// (the `Upgrade` and `Connection: upgrade` headers included).
#[derive(Debug)]
pub struct TunnelRequest {
    /// Path and query, as matched.
    pub path_and_query: String,
    /// Headers to send (`Host`, the request id and hop count are set here).
    pub headers: HeaderMap,
    /// The call context (request id, hops).
    pub ctx: CallContext,
    /// The key each endpoint is sent (`Authorization`), set once one is picked.
    pub keys: super::EndpointKeys,
}

/// What the endpoint answered to an upgrade request.
pub enum Tunnel {
    /// `101 Switching Protocols`: its headers, and the connection, now raw bytes.
    Open {
        /// The `101`'s headers (`Upgrade`, `Sec-WebSocket-Accept`, subprotocol,
        /// extensions…).
        headers: HeaderMap,
        /// The connection.
        io: TunnelIo,
        /// Holds the endpoint's in-flight count while the tunnel lives.
        guard: TunnelGuard,
    },
    /// Any other answer, with its body (at most 64 KiB).
    Refused {
        /// Its status.
        status: StatusCode,
        /// Its headers.
        headers: HeaderMap,
        /// Its body.
        body: Bytes,
    },
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tunnel::Open { .. } => f.write_str("Tunnel::Open"),
            Tunnel::Refused { status, .. } => write!(f, "Tunnel::Refused({status})"),
        }
    }
}

/// An open tunnel counted as one request in flight on its endpoint (so
/// `least_inflight` and `max_in_flight` see long-lived WebSockets).
#[derive(Debug)]
pub struct TunnelGuard {
    pool: Arc<PoolShared>,
    index: usize,
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.pool.stats[self.index]
            .in_flight
            .sub(1);
    }
}

/// Sends the upgrade `request` to an endpoint of `pool` and waits (within the pool's
/// `timeout`) for its answer.
///
/// # Errors
/// No endpoint available (503), none reachable (502), no answer in time (504), or a
/// broken answer (502).
pub async fn open(pool: &Arc<PoolShared>, request: TunnelRequest) -> Result<Tunnel, Error> {
    let config = pool.config();
    let stats = pool.stats();
    let index = selection::pick(config.balance, pool.next.fetch_add(1, Ordering::Relaxed), stats, config.max_in_flight, &[])
        .ok_or_else(|| Error::Overloaded {
            upstream: pool.peer().clone(),
            retry_after: 1,
        })?;
    let base = &config.endpoints[index];
    let peer = pool.endpoint_peer(index);
    stats[index].in_flight.add(1);
    stats[index].requests.add(1);
    let guard = TunnelGuard {
        pool: pool.clone(),
        index,
    };
    let fail = |error: Error| {
        stats[index].failures.fetch_add(1, Ordering::Relaxed);
        stats[index].health.record_failure();
        error
    };
    let endpoint = Endpoint::new(base, config.address(index));
    let upgrade = async {
        let mut sender = connect(&endpoint, &config.tls, config.connect_timeout, true)
            .await
            .map_err(|cause| Error::UpstreamConnect {
                upstream: peer.clone(),
                cause,
            })?;
        let upstream_request = upgrade_request(&endpoint, request, index, peer)?;
        sender
            .send_request(upstream_request)
            .await
            .map_err(|e| Error::UpstreamReply {
                upstream: peer.clone(),
                reason: BrokenReply::of_exchange(WireError::Hyper(e)),
            })
    };
    // One deadline for the answer's head and a refusal's body: an upstream that sends
    // a refusal's head and stalls holds the client no longer than one that sends none.
    let deadline = tokio::time::Instant::now() + config.timeout;
    let too_slow = || Error::UpstreamTimeout {
        upstream: peer.clone(),
        seconds: config.timeout.as_secs_f64(),
    };
    let response = match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return Err(fail(e)),
        Err(_) => return Err(fail(too_slow())),
    };
    stats[index].health.record_success();
    tokio::time::timeout_at(deadline, answered(response, peer, guard))
        .await
        .unwrap_or_else(|_| Err(fail(too_slow())))
}

/// The upgrade request to `endpoint` (endpoint `index` of its pool, `peer`): the
/// client's headers, our `Host`, the endpoint's key, hops and request id.
fn upgrade_request(endpoint: &Endpoint, request: TunnelRequest, index: usize, peer: &Peer) -> Result<http1::Request<OutBody>, Error> {
    let mut out = request.headers;
    out.insert(header::HOST, endpoint.host.clone());
    if let Some(key) = request.keys.for_endpoint(index) {
        out.insert(header::AUTHORIZATION, key.clone());
    }
    out.insert(
        HeaderName::from_static(HOPS_HEADER),
        HeaderValue::from(request.ctx.hops + 1),
    );
    if let Ok(id) = HeaderValue::from_str(&request.ctx.request_id) {
        out.insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
    }
    let uri = format!("{}{}", endpoint.prefix, request.path_and_query);
    hyper_door::request(&http::Method::GET, uri, &out, OutBody::Empty).map_err(|e| Error::UpstreamConnect {
        upstream: peer.clone(),
        cause: ConnectFailure::Request(Arc::new(e)),
    })
}

/// What the endpoint's answer to the upgrade makes: an open tunnel (`101`), or its
/// refusal passed on (any other status, with a bounded body).
async fn answered(response: hyper::Response<hyper::body::Incoming>, peer: &Peer, guard: TunnelGuard) -> Result<Tunnel, Error> {
    let status = hyper_door::status(response.status());
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let headers = hyper_door::headers(response.headers());
        let body = read_incoming_to_end(&mut response.into_body(), REFUSAL_BODY_LIMIT)
            .await
            .map_err(|e| Error::UpstreamReply {
                upstream: peer.clone(),
                reason: BrokenReply::Body(e),
            })?;
        return Ok(Tunnel::Refused {
            status,
            headers,
            body,
        });
    }
    let headers = hyper_door::headers(response.headers());
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| Error::UpstreamReply {
            upstream: peer.clone(),
            reason: BrokenReply::Upgrade(e),
        })?;
    Ok(Tunnel::Open {
        headers,
        io: TunnelIo::new(upgraded),
        guard,
    })
}
