//! A local route call through the request cache (FrameX-kit's `RequestCache.call`):
//! `DISABLED` when `[cache]` is off, `BYPASS` for methods other than GET/POST and
//! for `X-FrameX-Cache: bypass`, else a `HIT` from the store or the handler's
//! result stored (`MISS`, or `REFRESH` when asked). Only results (a handler that
//! returned) are stored, never errors; a store that fails serves uncached.

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use framex_actors::{Args, CallContext, Dispatch, Error, Reply, Route};
use serde_json::Value;

use super::Worker;
use crate::cache::{key, Action, Entry, Status, KEY_HEADER, STATUS_HEADER};

const STATUS_NAME: HeaderName = HeaderName::from_static(STATUS_HEADER);

/// Marks `response` with what the cache did.
pub fn mark(response: &mut HttpResponse, status: Status) {
    response.headers_mut().insert(STATUS_NAME, HeaderValue::from_static(status.as_str()));
}

pub(super) fn mark_key(response: &mut HttpResponse, digest: &str) {
    if let Ok(v) = HeaderValue::from_str(digest) {
        response.headers_mut().insert(HeaderName::from_static(KEY_HEADER), v);
    }
}

/// Serves a local route whose spec asks for caching (`ttl`: its own TTL, if any).
///
/// # Errors
/// The engine's, answered by the caller (never a cache failure).
pub async fn local(
    worker: &Worker<'_>,
    req: &HttpRequest,
    route: Arc<Route>,
    args: Args,
    ctx: CallContext,
    ttl: Option<i64>,
) -> Result<HttpResponse, Error> {
    let raw = super::answer::is_raw(worker, req, &route);
    let method = req.method().as_str();
    let status = match &worker.shared.cache {
        None => Some(Status::Disabled),
        Some(_) if method != "GET" && method != "POST" => Some(Status::Bypass),
        Some(_) => None,
    };
    let cache = match (status, &worker.shared.cache) {
        (None, Some(cache)) => cache.clone(),
        (status, _) => {
            let status = status.unwrap_or(Status::Bypass);
            status.count();
            return call(worker, route, args, ctx).await.map(|r| respond(r, status, None, raw, worker));
        }
    };
    let template = match &route.spec.key {
        framex_actors::ApiKey::Http { path, .. } => path.clone(),
        other => other.to_string(),
    };
    let (_, digest) = key::local(method, &template, &args, req.headers());
    let action = Action::of(req.headers());
    if action == Action::Use {
        match cache.get(&digest).await {
            Ok(Some(entry)) => {
                if let Ok(value) = serde_json::from_slice::<Value>(&entry.body) {
                    Status::Hit.count();
                    // Answered as the call's own value is: raw or in the envelope.
                    return Ok(respond(Reply::Value(value), Status::Hit, Some(&digest), raw, worker));
                }
            }
            Ok(None) => {}
            Err(()) => {
                Status::Bypass.count();
                return call(worker, route, args, ctx).await.map(|r| respond(r, Status::Bypass, Some(&digest), raw, worker));
            }
        }
    }
    let reply = call(worker, route, args, ctx).await?;
    let status = match action {
        Action::Bypass => Status::Bypass,
        Action::Refresh => Status::Refresh,
        Action::Use => Status::Miss,
    };
    if let (Reply::Value(value), false) = (&reply, status == Status::Bypass) {
        let body = serde_json::to_vec(value).unwrap_or_default();
        if body.len() <= cache.max_entry_bytes {
            cache.set(&digest, Entry::value(body.into()), ttl.unwrap_or(cache.default_ttl)).await;
        }
    }
    status.count();
    Ok(respond(reply, status, Some(&digest), raw, worker))
}

async fn call(worker: &Worker<'_>, route: Arc<Route>, args: Args, ctx: CallContext) -> Result<Reply, Error> {
    worker.router.send(Dispatch { route, args, ctx }).await?
}

fn respond(reply: Reply, status: Status, digest: Option<&str>, raw: bool, worker: &Worker<'_>) -> HttpResponse {
    let mut response = super::answer::answer(reply, raw, worker.shared.sentry.is_some());
    mark(&mut response, status);
    if let Some(digest) = digest {
        mark_key(&mut response, digest);
    }
    response
}
