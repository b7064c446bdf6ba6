//! `[limits]` on the request path: the rule covering a request, its decision, the
//! 429 (or 503) answer with `Retry-After` and the rate-limit headers, and the
//! concurrency slot tied to the response body.
//!
//! The headers follow draft-ietf-httpapi-ratelimit-headers-09 (structured fields):
//! `RateLimit-Policy: "default";q=<burst>;w=<seconds to refill>` and
//! `RateLimit: "default";r=<remaining>;t=<seconds until whole>`.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

use super::{envelope, Shared};
use crate::limits::{client_ip, Identity, Permit, RateState, Refusal};

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Applies the `[limits]` rule covering the canonical `path` (counted per `route`,
/// the route template) to a request that presented `[auth]` key `key_index`: the
/// permit to hold while answering, `None` when no rule covers it, or the refusal.
pub(super) async fn check(
    shared: &Shared,
    req: &HttpRequest,
    path: &str,
    route: &str,
    key_index: Option<usize>,
) -> Result<Option<Permit>, HttpResponse> {
    let presented = Presented { key: key_index.map(|index| (path, index)), user: None };
    check_as(shared, req, path, route, presented).await
}

/// Who a request proved to be, for `per = "key"`: what the server checked, never a
/// value the client chose.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Presented<'a> {
    /// The index of the key it presented, among those of the `[auth]` rule covering
    /// the path given with it (`/docs` for the docs tools, else the request's).
    pub key: Option<(&'a str, usize)>,
    /// The docs login's user (provider, username) of a session the server verified.
    pub user: Option<(&'a str, &'a str)>,
}

/// As [`check`], for a request that `presented` itself (the docs tools).
pub(super) async fn check_as(
    shared: &Shared,
    req: &HttpRequest,
    path: &str,
    route: &str,
    presented: Presented<'_>,
) -> Result<Option<Permit>, HttpResponse> {
    let Some(limiter) = &shared.limits else {
        return Ok(None);
    };
    let Some(rule) = limiter.rule_for(path) else {
        return Ok(None);
    };
    let identity = Identity {
        auth: presented.key.map(|(key_path, i)| (shared.auth.pattern_for(key_path).unwrap_or_default(), i)),
        authorization: match (presented.key, presented.user) {
            (None, None) => req.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes),
            _ => None,
        },
        user: presented.user,
        address: match rule.settings.per {
            crate::config::LimitPer::Address => client_ip(req, &shared.trusted_proxies),
            _ => None,
        },
        route,
        plugin: None,
    };
    limiter.admit(rule, &identity).await.map(Some).map_err(|r| refuse(&r))
}

/// The answer to a refused request: the FrameX envelope with the rule's status,
/// `Retry-After`, and the rate-limit headers when the rate refused it.
fn refuse(refusal: &Refusal) -> HttpResponse {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let mut response = envelope::error(status, refusal.message, None);
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(refusal.retry_after));
    if let Some(rate) = &refusal.rate {
        insert_rate(headers, rate);
    }
    response
}

/// `RateLimit-Policy` and `RateLimit` for `rate`.
fn insert_rate(headers: &mut header::HeaderMap, rate: &RateState) {
    let policy = format!("\"default\";q={};w={}", rate.quota, rate.window);
    let state = format!("\"default\";r={};t={}", rate.remaining, rate.reset);
    for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

/// `response` with `permit`'s rate-limit headers, holding its concurrency slot until
/// the body ends or the client leaves (the body is dropped then).
pub(super) fn attach(permit: Option<Permit>, mut response: HttpResponse) -> HttpResponse {
    let Some(permit) = permit else {
        return response;
    };
    if let Some(rate) = &permit.rate {
        // The upstream's fields were taken as a map for this (`Forwarding::fields_unread`).
        debug_assert!(response.head().written_fields().is_none(), "rate fields beside written ones");
        insert_rate(response.headers_mut(), rate);
    }
    match permit.slot {
        None => response,
        Some(slot) => response
            .map_body(|_, body| Holding { body, _slot: slot })
            .map_into_boxed_body(),
    }
}

/// A response body holding a concurrency slot.
struct Holding {
    body: BoxBody,
    _slot: crate::limits::Slot,
}

impl MessageBody for Holding {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
