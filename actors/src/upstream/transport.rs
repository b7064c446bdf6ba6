//! Sending requests upstream: endpoint choice and retries, headers, deadlines, and
//! bodies read whole or streamed through the bridge with an idle timeout and prompt
//! cancellation.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::client::{read_to_end, Client, Lease, OutBody, SendError};
use super::{
    Body, ForwardRequest, ForwardResponse, PoolShared, RetryPermit, UpstreamTarget, HOPS_HEADER,
    REQUEST_ID_HEADER,
};
use crate::error::Error;
use crate::stream::{bridge, ChunkSender};

/// Replies up to this size (with a known length) are read whole instead of streamed.
pub const FULL_BODY_LIMIT: usize = 256 * 1024;

/// Whether `name` (lower case, as header names are stored) is one of the headers that
/// describe one connection rather than the message (RFC 9110 §7.6.1), never forwarded
/// in either direction.
fn is_hop_by_hop_name(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether a header named `name` (lower case) is hop-by-hop: one of RFC 9110's, or one
/// that the message's `Connection` header (`connection`, its value) names.
pub fn is_hop_by_hop(name: &str, connection: Option<&str>) -> bool {
    is_hop_by_hop_name(name)
        || connection.is_some_and(|named| {
            named
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case(name))
        })
}

/// Removes the hop-by-hop headers from `headers` (see [`is_hop_by_hop`]).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: look before removing (each removal hashes a name).
    if !headers.keys().any(|name| is_hop_by_hop_name(name.as_str())) {
        return;
    }
    let mut doomed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    doomed.extend(headers.keys().filter(|n| is_hop_by_hop_name(n.as_str())).cloned());
    for name in doomed {
        headers.remove(name);
    }
}

/// A reply framed by `Transfer-Encoding` is framed by it alone (RFC 9112 §6.3): its
/// `Content-Length`, if it also sent one, says nothing about the body and is dropped,
/// so that no consumer sizes the body from it.
fn frame_by_transfer_encoding(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
}

/// Decrements an endpoint's in-flight count when the exchange ends (even when the
/// body is still streaming when the response is handed back).
struct InFlight {
    pool: Arc<PoolShared>,
    index: usize,
}

impl InFlight {
    fn start(pool: Arc<PoolShared>, index: usize) -> Self {
        let stats = &pool.stats[index];
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        InFlight { pool, index }
    }

    fn failed(&self) {
        let stats = &self.pool.stats[self.index];
        stats.failures.fetch_add(1, Ordering::Relaxed);
        stats.health.record_failure();
    }

    fn succeeded(&self) {
        self.pool.stats[self.index].health.record_success();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pool.stats[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request/response exchange with a pool, made on the current arbiter.
pub(super) struct Exchange {
    shared: Arc<PoolShared>,
    client: Rc<Client>,
}

impl Exchange {
    pub(super) fn new(shared: &Arc<PoolShared>, client: &Rc<Client>) -> Self {
        Exchange {
            shared: shared.clone(),
            client: client.clone(),
        }
    }

    pub(super) fn upstream_name(&self) -> &str {
        &self.shared.name
    }

    pub(super) fn legal_codes(&self) -> Vec<u16> {
        self.shared.config.legal_codes.clone()
    }

    /// Sends `request` to an endpoint of the pool and returns the response head with
    /// its body (whole when small, else streaming).
    ///
    /// A request that never reached an endpoint (no connection) is tried on another
    /// one, whatever its method; an idempotent request also after a 502, 503 or 504
    /// or a connection lost before the answer. Only bodies held whole are replayed,
    /// and every attempt shares the call's deadline.
    pub(super) async fn forward(
        &self,
        target: Arc<UpstreamTarget>,
        request: ForwardRequest,
    ) -> Result<ForwardResponse, Error> {
        let config = &self.shared.config;
        let ForwardRequest {
            method,
            path_and_query,
            headers,
            mut body,
            ctx,
        } = request;
        let method = Method::from_bytes(method.as_str().as_bytes())
            .map_err(|e| Error::Internal(format!("method: {e}")))?;
        let deadline = tokio::time::Instant::now()
            + ctx
                .remaining()
                .map_or(config.timeout, |left| left.min(config.timeout));
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        let hops = HeaderValue::from(ctx.hops + 1);
        let request_id = HeaderValue::from_str(&ctx.request_id).ok();
        let mut tried: Vec<usize> = Vec::new();
        let mut permit: Option<RetryPermit> = None;
        // An idempotent request lost on a reused keep-alive connection goes once more
        // to the same endpoint on a fresh connection: the endpoint did nothing wrong.
        let mut stale_retry: Option<usize> = None;
        let mut fresh_retried = false;
        loop {
            let fresh = stale_retry.is_some();
            let index = match stale_retry.take() {
                Some(index) => index,
                None => {
                    let Some(index) = self.shared.pick(&tried) else {
                        return Err(Error::Overloaded {
                            upstream: self.shared.name.clone(),
                            retry_after: 1,
                        });
                    };
                    tried.push(index);
                    index
                }
            };
            // Errors name the endpoint that failed, not the whole pool.
            let endpoint = config.endpoints[index].clone();
            let replayable = !matches!(body, Body::Stream(_));
            let retries_left = tried.len() <= config.retries as usize
                && tried.len() < config.endpoints.len()
                && replayable;
            let this_body = match &body {
                Body::Empty => Body::Empty,
                Body::Full(bytes) => Body::Full(bytes.clone()),
                Body::Stream(_) => std::mem::replace(&mut body, Body::Empty),
            };
            let guard = InFlight::start(self.shared.clone(), index);
            let outgoing = self
                .build(&target, index, &method, &path_and_query, &headers, &hops, &request_id, this_body)
                .map_err(|reason| Error::UpstreamConnect {
                    upstream: endpoint.clone(),
                    reason,
                })?;
            let sent = tokio::time::timeout_at(deadline, self.client.send(index, outgoing, fresh)).await;
            let (response, lease) = match sent {
                Err(_) => {
                    guard.failed();
                    return Err(Error::UpstreamTimeout {
                        upstream: endpoint,
                        seconds: config.timeout.as_secs_f64(),
                    });
                }
                // Our side's body failed: not the endpoint's fault, nothing to retry.
                Ok(Err(SendError::Body(error))) => return Err(error),
                Ok(Err(SendError::Connect(reason))) => {
                    guard.failed();
                    let error = Error::UpstreamConnect {
                        upstream: endpoint,
                        reason,
                    };
                    if self.may_retry(retries_left, &mut permit) {
                        log::debug!("retrying on another endpoint after: {error}");
                        continue;
                    }
                    return Err(error);
                }
                Ok(Err(SendError::Exchange { reused: true, error }))
                    if idempotent && replayable && !fresh_retried =>
                {
                    log::debug!("{method} lost on a reused connection to {endpoint} ({error}); again on a fresh one");
                    fresh_retried = true;
                    stale_retry = Some(index);
                    continue;
                }
                Ok(Err(SendError::Exchange { error: e, .. })) => {
                    guard.failed();
                    let reason = if e.is_incomplete_message() || e.is_canceled() {
                        "closed the connection without answering".to_owned()
                    } else {
                        e.to_string()
                    };
                    let error = Error::UpstreamReply {
                        upstream: endpoint,
                        reason,
                    };
                    // It may have acted on the request: only idempotent ones go again.
                    if idempotent && self.may_retry(retries_left, &mut permit) {
                        log::debug!("retrying {method} on another endpoint after: {error}");
                        continue;
                    }
                    return Err(error);
                }
                Ok(Ok(sent)) => sent,
            };
            let status = response.status();
            if status.is_server_error() {
                guard.failed();
                if idempotent
                    && matches!(status.as_u16(), 502..=504)
                    && self.may_retry(retries_left, &mut permit)
                {
                    log::debug!("retrying {method} on another endpoint after {status}");
                    continue;
                }
            } else {
                guard.succeeded();
            }
            return self.relay(response, lease, &method, endpoint, guard).await;
        }
    }

    /// Whether a failed attempt may go again: the request allows it (`allowed`: attempts
    /// and endpoints left, body replayable) and the pool's retry budget has room (the
    /// permit, once taken, is held for the rest of the exchange).
    fn may_retry(&self, allowed: bool, permit: &mut Option<RetryPermit>) -> bool {
        if !allowed {
            return false;
        }
        if permit.is_none() {
            *permit = self.shared.retry_permit();
            if permit.is_none() {
                log::warn!("upstream {}: retry budget spent, not retrying", self.shared.name);
            }
        }
        permit.is_some()
    }

    /// The request to one endpoint: the caller's headers, the endpoint's `Host`, the
    /// route's key, the hop count and the request id.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        target: &UpstreamTarget,
        index: usize,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        hops: &HeaderValue,
        request_id: &Option<HeaderValue>,
        body: Body,
    ) -> Result<Request<OutBody>, String> {
        let endpoint = self.client.endpoint(index)?;
        let uri = if endpoint.prefix.is_empty() {
            path_and_query.to_owned()
        } else {
            format!("{}{path_and_query}", endpoint.prefix)
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(OutBody::from(body))
            .map_err(|e| format!("bad request: {e}"))?;
        let out = request.headers_mut();
        out.reserve(headers.len() + 4);
        for (name, value) in headers {
            if name != header::HOST {
                out.append(name.clone(), value.clone());
            }
        }
        out.insert(header::HOST, endpoint.host.clone());
        if let Some(key) = target.auth.as_deref().and_then(|k| HeaderValue::from_str(k).ok()) {
            out.insert(header::AUTHORIZATION, key);
        }
        out.insert(HeaderName::from_static(HOPS_HEADER), hops.clone());
        if let Some(id) = request_id {
            out.insert(HeaderName::from_static(REQUEST_ID_HEADER), id.clone());
        }
        Ok(request)
    }

    /// Takes the response head and its body: read whole when small and of known
    /// length, else streamed through the bridge. The connection is handed back for
    /// reuse once the body has been read to its end.
    async fn relay(
        &self,
        response: http::Response<Incoming>,
        lease: Lease,
        method: &Method,
        upstream: String,
        guard: InFlight,
    ) -> Result<ForwardResponse, Error> {
        let config = &self.shared.config;
        let (head, mut incoming) = response.into_parts();
        let status = head.status;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // We never ask for an upgrade: a switch nobody asked for is a broken reply,
            // and the connection is no longer HTTP (dropping the lease closes it).
            guard.failed();
            return Err(Error::UpstreamReply {
                upstream,
                reason: "switched protocols (101) without being asked to".to_owned(),
            });
        }
        let mut headers = head.headers;
        frame_by_transfer_encoding(&mut headers);
        strip_hop_by_hop(&mut headers);
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let is_event_stream = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));

        let body = if *method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || length == Some(0)
        {
            lease.release();
            Body::Empty
        } else if let Some(len) = length.filter(|&n| n <= FULL_BODY_LIMIT && !is_event_stream) {
            match tokio::time::timeout(config.timeout, read_to_end(&mut incoming, len)).await {
                Ok(Ok(bytes)) => {
                    lease.release();
                    Body::Full(bytes)
                }
                Ok(Err(e)) => {
                    guard.failed();
                    return Err(Error::UpstreamReply {
                        upstream,
                        reason: format!("body could not be read: {e}"),
                    });
                }
                Err(_) => {
                    guard.failed();
                    return Err(Error::UpstreamTimeout {
                        upstream,
                        seconds: config.timeout.as_secs_f64(),
                    });
                }
            }
        } else {
            let (sender, stream) = bridge();
            let idle = config.timeout;
            actix_rt::spawn(pump(incoming, lease, sender, idle, upstream, guard));
            Body::Stream(stream)
        };
        Ok(ForwardResponse {
            status,
            headers,
            body,
        })
    }
}

/// Copies an upstream body into the bridge until it ends, fails, idles past `idle`,
/// or the consumer goes away; dropping `incoming` then closes the upstream connection.
/// A body cut off before its end (shorter than its `Content-Length`, or chunked
/// without the last chunk) is a failure, reported to the consumer.
async fn pump(
    mut incoming: Incoming,
    lease: Lease,
    sender: ChunkSender,
    idle: Duration,
    upstream: String,
    guard: InFlight,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = sender.closed() => return,
            next = tokio::time::timeout(idle, incoming.frame()) => next,
        };
        match next {
            Ok(None) => {
                lease.release();
                return;
            }
            Ok(Some(Ok(frame))) => {
                let Ok(chunk) = frame.into_data() else { continue };
                if sender.send(chunk).await.is_err() {
                    return;
                }
            }
            Ok(Some(Err(e))) => {
                guard.failed();
                let reason = if e.is_incomplete_message() {
                    "the stream broke off before its end".to_owned()
                } else {
                    format!("the stream broke off: {e}")
                };
                sender.fail(Error::UpstreamReply { upstream, reason }).await;
                return;
            }
            Err(_) => {
                guard.failed();
                sender
                    .fail(Error::UpstreamTimeout {
                        upstream,
                        seconds: idle.as_secs_f64(),
                    })
                    .await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunked reply's Content-Length goes; without Transfer-Encoding it stays.
    #[test]
    fn content_length_goes_when_the_reply_is_chunked() {
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999999"));
        frame_by_transfer_encoding(&mut h);
        assert!(!h.contains_key(header::CONTENT_LENGTH));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        frame_by_transfer_encoding(&mut h);
        assert_eq!(h[header::CONTENT_LENGTH], "12");
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert(HeaderName::from_static("x-secret-hop"), HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
        assert!(is_hop_by_hop("keep-alive", None));
        assert!(is_hop_by_hop("x-secret-hop", Some("close, X-Secret-Hop")));
        assert!(!is_hop_by_hop("content-type", Some("close")));
    }
}
