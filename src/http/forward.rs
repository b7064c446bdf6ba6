//! Faithful forwarding of a request to an upstream route.
//!
//! Method, path, query, the request's own headers and the body go upstream as they
//! came (the body streamed unless small); hop-by-hop headers are dropped and
//! `X-Forwarded-For`/`-Proto`/`-Host` and `X-Request-Id` are set. The upstream's
//! status, headers and body come back unchanged, streamed.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use framex_actors::stream::bridge;
use framex_actors::upstream::wire::header as wire_header;
use framex_actors::upstream::wire::{HeaderMap as WireHeaders, HeaderName as WireName, HeaderValue as WireValue};
use framex_actors::upstream::{forward_here, is_hop_by_hop, Body, ForwardRequest, UpstreamTarget, FULL_BODY_LIMIT};
use framex_actors::{CallContext, Error};

use super::body::{read_limited, response_stream};
use super::Worker;

const X_FORWARDED_FOR: WireName = WireName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: WireName = WireName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: WireName = WireName::from_static("x-forwarded-host");

/// Forwards this request to `target` and relays the answer.
///
/// # Errors
/// Engine errors before the upstream answered (502, 504, 413…), answered by the caller.
pub async fn serve(
    worker: &Worker,
    req: &HttpRequest,
    payload: web::Payload,
    target: Arc<UpstreamTarget>,
    consumed_auth: bool,
    ctx: CallContext,
) -> Result<HttpResponse, Error> {
    let limit = worker.shared.max_body_size;
    let headers = upstream_headers(req, consumed_auth);

    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if length.is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let body = match length {
        Some(0) => Body::Empty,
        None if !chunked => Body::Empty,
        Some(n) if n <= FULL_BODY_LIMIT => Body::Full(read_limited(payload, limit, &worker.shared.body_deadlines).await?),
        _ => Body::Stream(stream_request_body(payload, limit, worker.shared.body_deadlines.rate_guard())),
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |pq| pq.as_str().to_owned());
    let request = ForwardRequest {
        method: req.method().clone(),
        path_and_query,
        headers,
        body,
        ctx,
    };
    // The route is matched already: forward on this worker's connections directly
    // rather than through two mailbox hops (Router, UpstreamPool), which cost more
    // than the rest of our own work on a small request (see the README's benchmarks).
    let response = forward_here(target, request).await?;

    let status = StatusCode::from_u16(response.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    let length = response
        .headers
        .get(wire_header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let sse = response
        .headers
        .get(wire_header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    for (name, value) in response.headers.iter() {
        if name != wire_header::CONTENT_LENGTH {
            builder.append_header((name.as_str(), value.as_bytes()));
        }
    }
    if sse {
        builder.insert_header(("x-accel-buffering", "no"));
    }
    Ok(match response.body {
        Body::Empty => match length {
            // A HEAD answer keeps the length the GET would have had.
            // (actix-web writes the length of the body it is given: an empty stream of
            // that declared size, of which a HEAD response sends nothing.)
            Some(n) if req.method() == actix_web::http::Method::HEAD => builder.body(SizedStream::new(
                n,
                futures::stream::empty::<Result<bytes::Bytes, actix_web::Error>>(),
            )),
            _ => builder.finish(),
        },
        Body::Full(bytes) => builder.body(bytes),
        Body::Stream(stream) => match length {
            Some(n) if !sse => builder.body(SizedStream::new(n, response_stream(stream, false))),
            _ => builder.streaming(response_stream(stream, sse)),
        },
    })
}

/// The headers sent upstream, in one pass over the request's: the ones that belong
/// to the request (not hop-by-hop, not `Host`, not a key that was for us), then
/// `X-Forwarded-For`/`-Proto`/`-Host` (extending what earlier proxies set). The
/// request id and hop count are the transport's to set, for every call alike.
fn upstream_headers(req: &HttpRequest, consumed_auth: bool) -> WireHeaders {
    let incoming = req.headers();
    let connection = incoming
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok());
    let mut out = WireHeaders::with_capacity(incoming.len() + 4);
    let mut forwarded_for: Option<&[u8]> = None;
    let (mut has_proto, mut has_host) = (false, false);
    for (name, value) in incoming.iter() {
        let name = name.as_str();
        if name == "host"
            || (consumed_auth && name == "authorization")
            || is_hop_by_hop(name, connection)
        {
            continue;
        }
        match name {
            "x-forwarded-for" => {
                forwarded_for = Some(value.as_bytes());
                continue;
            }
            "x-forwarded-proto" => has_proto = true,
            "x-forwarded-host" => has_host = true,
            _ => {}
        }
        if let (Ok(n), Ok(v)) = (WireName::from_bytes(name.as_bytes()), WireValue::from_bytes(value.as_bytes())) {
            out.append(n, v);
        }
    }
    let peer = req.peer_addr().map(|a| ip_text(a.ip()));
    let chain = match (forwarded_for, peer) {
        (Some(earlier), Some(peer)) => {
            let mut v = Vec::with_capacity(earlier.len() + peer.len() + 2);
            v.extend_from_slice(earlier);
            v.extend_from_slice(b", ");
            v.extend_from_slice(peer.as_bytes());
            WireValue::from_bytes(&v).ok()
        }
        (Some(earlier), None) => WireValue::from_bytes(earlier).ok(),
        (None, Some(peer)) => WireValue::from_str(&peer).ok(),
        (None, None) => None,
    };
    if let Some(chain) = chain {
        out.insert(X_FORWARDED_FOR, chain);
    }
    if !has_proto {
        // We serve plain HTTP; a TLS terminator in front sets its own.
        out.insert(X_FORWARDED_PROTO, WireValue::from_static("http"));
    }
    if !has_host {
        if let Some(host) = incoming
            .get(header::HOST)
            .and_then(|h| WireValue::from_bytes(h.as_bytes()).ok())
        {
            out.insert(X_FORWARDED_HOST, host);
        }
    }
    out
}

/// An IP address as text, without the formatting machinery for the common IPv4 case.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if octet >= 100 {
                    s.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    s.push(char::from(b'0' + octet / 10 % 10));
                }
                s.push(char::from(b'0' + octet % 10));
            }
            s
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// Streams a request body upstream through the bridge, cutting it off past `limit`
/// or when it arrives slower than `pace` allows.
fn stream_request_body(
    mut payload: web::Payload,
    limit: usize,
    mut pace: super::body_deadline::RateGuard,
) -> framex_actors::stream::ChunkStream {
    let (sender, stream) = bridge();
    actix_web::rt::spawn(async move {
        let mut seen = 0usize;
        loop {
            match pace.next_chunk(&mut payload).await {
                Ok(Some(bytes)) => {
                    seen += bytes.len();
                    if seen > limit {
                        sender.fail(Error::PayloadTooLarge { limit }).await;
                        return;
                    }
                    if sender.send(bytes).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    sender.fail(e).await;
                    return;
                }
            }
        }
    });
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_matches_display() {
        for ip in ["127.0.0.1", "10.200.3.45", "0.0.0.0", "255.255.255.255", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }
}
