//! A proxied request whose path a `[plugins.proxy.cache]` rule covers, through the
//! request cache. GET and POST only; a POST body is read (and hashed into the key)
//! only when its `Content-Length` is at most `[cache] max_entry_bytes`, else the
//! request is forwarded as it is, uncached (`BYPASS`). Stored: `200` answers with a
//! `Content-Length` within the bound, not event streams, without `Set-Cookie`,
//! `Cache-Control: private/no-store/no-cache`, or a `Vary` naming a header outside
//! the key (see [`crate::cache::key`]).

use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use framex_actors::upstream::{is_hop_by_hop, Body, UpstreamTarget};
use framex_actors::{CallContext, Error};

use super::cached::{mark, mark_key};
use super::forward::{self, Forwarding};
use super::Worker;
use crate::cache::{key, Action, Cache, Entry, Status};

/// Serves a proxied request under a cache rule of `ttl` seconds.
///
/// # Errors
/// The forwarding's, answered by the caller (never a cache failure).
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve(
    worker: &Worker<'_>,
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    target: &UpstreamTarget,
    how: Forwarding<'_>,
    ctx: CallContext,
    (cache, ttl): (&Arc<Cache>, i64),
) -> Result<HttpResponse, Error> {
    // The cache reads the answer's fields and marks it: they are taken as a map.
    let how = Forwarding { fields_unread: false, ..how };
    let method = req.method().as_str();
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let hashable = match (method, length) {
        ("GET", None | Some(0)) if !req.headers().contains_key(header::TRANSFER_ENCODING) => true,
        ("POST", Some(n)) => n <= cache.max_entry_bytes && n <= worker.shared.max_body_size,
        _ => false,
    };
    if !hashable {
        Status::Bypass.count();
        let mut response = forward::serve(worker, req, path, payload, target, how, ctx).await?;
        mark(&mut response, Status::Bypass);
        return Ok(response);
    }
    let body = match length {
        Some(n) if n > 0 => super::body::read_limited(payload, n, &worker.shared.body_deadlines).await?,
        _ => bytes::Bytes::new(),
    };
    // What the upstream is told of the request's way here: ours, and from a trusted
    // proxy its own claims too (`forward::upstream_headers` passes them on).
    let trusted = super::forwarded::from_trusted(req, &worker.shared.trusted_proxies);
    let added = super::forwarded::fields(req, trusted);
    let forwarded = added
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .chain(forward::claims_sent(req, trusted));
    let digest = key::proxied(method, path, req.query_string(), req.headers(), &body, forwarded);
    let action = Action::of(req.headers());
    let mut status = match action {
        Action::Bypass => Status::Bypass,
        Action::Refresh => Status::Refresh,
        Action::Use => Status::Miss,
    };
    if action == Action::Use {
        match cache.get(&digest).await {
            Ok(Some(entry)) => return Ok(hit(entry, &digest)),
            Ok(None) => {}
            Err(()) => status = Status::Bypass,
        }
    }
    let body = if body.is_empty() { Body::Empty } else { Body::Full(body) };
    let response = forward::serve_body(worker, req, path, body, target, how, ctx).await?;
    let mut response = match (status, storable(&response, cache.max_entry_bytes)) {
        (Status::Miss | Status::Refresh, true) => store(cache, &digest, ttl, response).await,
        _ => response,
    };
    status.count();
    mark(&mut response, status);
    mark_key(&mut response, &digest);
    Ok(response)
}

/// The cached answer, marked.
fn hit(entry: Entry, digest: &str) -> HttpResponse {
    Status::Hit.count();
    let mut builder = HttpResponse::build(StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK));
    for (name, value) in &entry.headers {
        builder.append_header((name.as_str(), value.as_str()));
    }
    let mut response = builder.body(entry.body);
    mark(&mut response, Status::Hit);
    mark_key(&mut response, digest);
    response
}

/// Whether an upstream answer may be stored.
fn storable(response: &HttpResponse, max: usize) -> bool {
    let headers = response.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let length_ok = text(header::CONTENT_LENGTH).parse::<usize>().is_ok_and(|n| n <= max)
        || matches!(actix_web::body::MessageBody::size(response.body()), actix_web::body::BodySize::Sized(n) if n <= max as u64);
    let cache_control = text(header::CACHE_CONTROL).to_ascii_lowercase();
    let vary_ok = headers.get_all(header::VARY).all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').map(|h| h.trim().to_ascii_lowercase()).all(|h| h.is_empty() || key::VARY_HEADERS.contains(&h.as_str()))
        })
    });
    response.status() == StatusCode::OK
        && length_ok
        && !framex_actors::sse::is_event_stream(text(header::CONTENT_TYPE).as_bytes())
        && !headers.contains_key(header::SET_COOKIE)
        && !["private", "no-store", "no-cache"].iter().any(|d| cache_control.contains(d))
        && vary_ok
}

/// Reads the (bounded) answer, stores it and gives it back.
async fn store(cache: &Cache, digest: &str, ttl: i64, response: HttpResponse) -> HttpResponse {
    let (head, body) = response.into_parts();
    let Ok(Ok(bytes)) = actix_web::body::to_bytes_limited(body, cache.max_entry_bytes).await else {
        // The body was cut or broke while read: nothing to relay faithfully.
        return HttpResponse::BadGateway().finish();
    };
    let entry = Entry {
        status: head.status().as_u16(),
        headers: kept_headers(head.headers()),
        expires_at: None,
        body: bytes.clone(),
    };
    cache.set(digest, entry, ttl).await;
    head.set_body(bytes).map_into_boxed_body()
}

/// Answer fields that speak of the one request that was answered (an upstream echoing
/// the request id or trace): never replayed to another.
const OF_ONE_REQUEST: [&str; 13] = [
    "x-request-id",
    "x-correlation-id",
    "traceparent",
    "tracestate",
    "sentry-trace",
    "baggage",
    "server-timing",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// The headers replayed on a hit: all but hop-by-hop ones, `Date`, `Content-Length`
/// (set again), those of the one request answered, and values that are not visible
/// ASCII.
fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let connection: Vec<&[u8]> = headers.get_all(header::CONNECTION).map(|v| v.as_bytes()).collect();
    headers
        .iter()
        .filter(|(n, _)| {
            !is_hop_by_hop(n.as_str(), &connection)
                && *n != header::DATE
                && *n != header::CONTENT_LENGTH
                && !OF_ONE_REQUEST.contains(&n.as_str())
        })
        .filter_map(|(n, v)| {
            let v = v.to_str().ok().filter(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t'))?;
            Some((n.as_str().to_owned(), v.to_owned()))
        })
        .collect()
}
