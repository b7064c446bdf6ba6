//! Faithful forwarding of a request to an upstream route.
//!
//! Method, path, query, the request's own headers and the body go upstream as they
//! came (the body streamed unless small); hop-by-hop headers are dropped and
//! `X-Forwarded-For`/`-Proto`/`-Host` and `X-Request-Id` are set. The upstream's
//! status, headers and body come back unchanged, streamed.

use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use framex_actors::stream::bridge;
use framex_actors::upstream::{strip_hop_by_hop, Body, ForwardRequest, FULL_BODY_LIMIT, REQUEST_ID_HEADER};
use framex_actors::{CallContext, Error, ForwardTo};
use futures::StreamExt;

use super::body::{read_limited, response_stream};
use super::Worker;
use framex_actors::upstream::UpstreamTarget;

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
    let mut headers = req.headers().clone();
    strip_hop_by_hop(&mut headers);
    if consumed_auth {
        // The key was for us; never pass it on.
        headers.remove(header::AUTHORIZATION);
    }
    add_forwarded(&mut headers, req, &ctx);

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
        Some(n) if n <= FULL_BODY_LIMIT => Body::Full(read_limited(payload, limit).await?),
        _ => Body::Stream(stream_request_body(payload, limit)),
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
    let response = worker
        .router
        .send(ForwardTo { target, request })
        .await??;

    let mut builder = HttpResponse::build(response.status);
    let length = response
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let sse = response
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    for (name, value) in response.headers.iter() {
        if name != header::CONTENT_LENGTH {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    if sse {
        builder.insert_header(("x-accel-buffering", "no"));
    }
    Ok(match response.body {
        Body::Empty => match length {
            // A HEAD answer keeps the length the GET would have had.
            Some(n) if req.method() == actix_web::http::Method::HEAD => {
                let mut r = builder.finish();
                if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
                    r.headers_mut().insert(header::CONTENT_LENGTH, v);
                }
                r
            }
            _ => builder.finish(),
        },
        Body::Full(bytes) => builder.body(bytes),
        Body::Stream(stream) => match length {
            Some(n) if !sse => builder.body(SizedStream::new(n, response_stream(stream, false))),
            _ => builder.streaming(response_stream(stream, sse)),
        },
    })
}

/// Adds `X-Forwarded-*` and the request id, keeping what earlier proxies set.
fn add_forwarded(headers: &mut HeaderMap, req: &HttpRequest, ctx: &CallContext) {
    let info = req.connection_info();
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let forwarded_for = match headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(earlier) if !peer.is_empty() => format!("{earlier}, {peer}"),
        Some(earlier) => earlier.to_owned(),
        None => peer,
    };
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    if !forwarded_for.is_empty() {
        set("x-forwarded-for", &forwarded_for);
    }
    if !req.headers().contains_key("x-forwarded-proto") {
        set("x-forwarded-proto", info.scheme());
    }
    if !req.headers().contains_key("x-forwarded-host") {
        set("x-forwarded-host", info.host());
    }
    set(REQUEST_ID_HEADER, &ctx.request_id);
}

/// Streams a request body upstream through the bridge, cutting it off past `limit`.
fn stream_request_body(mut payload: web::Payload, limit: usize) -> framex_actors::stream::ChunkStream {
    let (sender, stream) = bridge();
    actix_web::rt::spawn(async move {
        let mut seen = 0usize;
        while let Some(chunk) = payload.next().await {
            match chunk {
                Ok(bytes) => {
                    seen += bytes.len();
                    if seen > limit {
                        sender.fail(Error::PayloadTooLarge { limit }).await;
                        return;
                    }
                    if sender.send(bytes).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    sender.fail(super::body::payload_error(e)).await;
                    return;
                }
            }
        }
    });
    stream
}
