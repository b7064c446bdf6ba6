//! Faithful forwarding of a request to an upstream route.
//!
//! Method, path, query, the request's own headers and the body go upstream as they
//! came (the body streamed unless small); hop-by-hop headers are dropped, the
//! forwarding headers set (see `forwarded`) and `X-Request-Id` set. The upstream's
//! status, headers and body come back unchanged, streamed.

use std::future::Future;

use actix_web::body::SizedStream;
use actix_web::http::{header, Version};
use actix_web::{web, HttpRequest, HttpResponse};
use framex_actors::stream::bridge;
use framex_actors::upstream::wire::HeaderMap as WireHeaders;
use framex_actors::upstream::{is_hop_by_hop, AddedFields, HOPS_HEADER, REQUEST_ID_HEADER, Body, ForwardRequest, ForwardResponse, UpstreamTarget, FULL_BODY_LIMIT};
use framex_actors::{CallContext, Error};
use futures::{FutureExt as _, StreamExt as _};

use super::body::{read_limited, streamed};
use super::{docs_login, forwarded, Shared, Worker};

/// How a request is forwarded, beside where.
pub(super) struct Forwarding<'a> {
    /// Whether `Authorization` held a key for us (it is not passed on).
    pub consumed_auth: bool,
    /// Where to note which endpoint answered, when the access log wants it.
    pub served: Option<&'a mut Option<super::observe::Served>>,
    /// Whether nothing reads or changes the answer's fields after this: an HTTP/1
    /// answer with a whole body (or none) then goes out with the upstream's fields as
    /// the lines they were written into, without a map (see
    /// `framex_actors::upstream::AnswerFields`).
    pub fields_unread: bool,
}

/// Forwards this request, whose canonical path is `path`, to `target` and relays the
/// answer: its body read ([`read_body`]), then [`serve_body`].
///
/// # Errors
/// Engine errors before the upstream answered (502, 504, 413…), answered by the caller.
pub(super) async fn serve(
    worker: &Worker<'_>,
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    target: &UpstreamTarget,
    how: Forwarding<'_>,
    ctx: CallContext,
) -> Result<HttpResponse, Error> {
    // The `upstream` phase does the same in its own future (`phases`), so that the
    // body's read and the exchange share its room: keep the two in step.
    let body = read_body(worker, req, payload).await?;
    serve_body(worker, req, path, body, target, how, ctx).await
}

/// The request's body as it goes upstream: none, read whole when small and of known
/// length, else streamed (cut off past `max_body_size`, or when it comes too slowly).
///
/// # Errors
/// A declared length past `max_body_size` (413), and a small body that failed while
/// read (400, 408, 413).
pub(super) async fn read_body(worker: &Worker<'_>, req: &HttpRequest, payload: web::Payload) -> Result<Body, Error> {
    let limit = worker.shared.max_body_size;

    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if length.is_some_and(|n| n > limit) {
        if req.version() == actix_web::http::Version::HTTP_2 {
            drain_h2(payload).await;
        }
        return Err(Error::PayloadTooLarge { limit });
    }
    let deadlines = &worker.shared.body_deadlines;
    Ok(match length {
        Some(0) => Body::Empty,
        // HTTP/2 frames a body without `Content-Length` or chunking: whether there is
        // one shows only when its first DATA frame (or the end of the stream) comes.
        None if req.version() == actix_web::http::Version::HTTP_2 => {
            let mut payload = payload;
            let first = tokio::time::timeout(deadlines.total, payload.next())
                .await
                .map_err(|_| deadlines.total_exceeded())?;
            match first {
                None => Body::Empty,
                Some(first) => {
                    let first = first.map_err(super::body_deadline::payload_error)?;
                    Body::Stream(stream_request_body(payload, Some(first), limit, deadlines.rate_guard()))
                }
            }
        }
        None if !chunked => Body::Empty,
        Some(n) if n <= FULL_BODY_LIMIT => Body::Full(read_limited(payload, limit, deadlines).await?),
        _ => Body::Stream(stream_request_body(payload, None, limit, deadlines.rate_guard())),
    })
}

/// Forwards this request with a body already read (or none) to `target` and relays
/// the answer (the request's own body is not read).
///
/// Not an `async fn`: the request is made here and handed to the pool, whose future
/// is then mapped to the answer, so that nothing of the request is held beside it.
///
/// # Errors
/// Engine errors before the upstream answered (502, 504…), answered by the caller.
pub(super) fn serve_body<'a>(
    worker: &'a Worker<'_>,
    req: &'a HttpRequest,
    path: &str,
    body: Body,
    target: &'a UpstreamTarget,
    how: Forwarding<'a>,
    ctx: CallContext,
) -> impl Future<Output = Result<HttpResponse, Error>> + 'a {
    let Forwarding { consumed_auth, served, fields_unread } = how;
    let (headers, added) = upstream_headers(req, consumed_auth, worker.shared);
    // The canonical path (what the rules were checked against) and the query as sent.
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let request = ForwardRequest {
        method: req.method().clone(),
        path_and_query,
        headers,
        added,
        body,
        ctx,
    };
    // The route is matched already: forward on this arbiter's pool replica directly
    // rather than through a mailbox hop, which costs more than the rest of our own
    // work on a small request (see the README's benchmarks).
    let replica = worker.pools.replica(&target.pool);
    let pool = served.is_some().then(|| target.pool.clone());
    // The exchange's future holds the replica until it ends (its actor may retire it
    // meanwhile: a request then still finds the replica its exchanges use).
    replica.forward_noted(target, request).map(move |(response, attempts)| {
        // Where it went is recorded for failures too (the access log names them).
        if let (Some(served), Some(pool)) = (served, pool) {
            *served = Some(super::observe::Served { pool, attempts });
        }
        Ok(response_of(worker, req, response?, fields_unread))
    })
}

/// Our answer of the upstream's `response`: its status, fields and body (see
/// [`Forwarding::fields_unread`] for how the fields go).
fn response_of(worker: &Worker<'_>, req: &HttpRequest, response: ForwardResponse, fields_unread: bool) -> HttpResponse {
    let mut builder = HttpResponse::build(response.status);
    let (length, sse) = (response.content_length, response.event_stream);
    // A streamed body's builder sets a default `Content-Type`, which the upstream's
    // replaces, and an event stream (with a body or none) gets `X-Accel-Buffering`:
    // those take the map.
    let as_lines = fields_unread && !sse && !matches!(response.body, Body::Stream(_)) && req.version() < Version::HTTP_2;
    let mut answer = match response.body {
        Body::Empty => match length {
            // A HEAD answer keeps the length the GET would have had.
            // (actix-web writes the length of the body it is given: an empty stream of
            // that declared size, of which a HEAD response sends nothing.)
            Some(n) if req.method() == actix_web::http::Method::HEAD => builder.body(SizedStream::new(
                n,
                futures::stream::empty::<Result<bytes::Bytes, actix_web::Error>>(),
            )),
            // One whose GET has no length ahead (chunked, or until close) claims none:
            // an empty body would be written as `Content-Length: 0`.
            None if req.method() == actix_web::http::Method::HEAD => builder.body(actix_web::body::None::new()),
            _ => builder.finish(),
        },
        Body::Full(bytes) => builder.body(bytes),
        // With `[sentry]` on, a break after the answer started is reported.
        Body::Stream(stream) => streamed(builder, stream, sse, length, worker.shared.sentry.is_some()),
    };
    if as_lines {
        let (lines, has_date) = response.headers.into_lines();
        // SAFETY: the lines were written from httparse's parse of the answer head (token
        // names, values of the bytes a field value may hold), without the hop-by-hop
        // fields and `Content-Length` (`AnswerFields`); the response's map is empty
        // (nothing above set a field on a whole or empty body, and nothing after this
        // does: `Forwarding::fields_unread`).
        unsafe { answer.head_mut().set_written_fields(lines, has_date) };
    } else {
        install_fields(response.headers.into_map(), &mut answer);
    }
    if sse {
        answer.headers_mut().insert(header::HeaderName::from_static("x-accel-buffering"), header::HeaderValue::from_static("no"));
    }
    answer
}

/// Makes the upstream's answer fields (hop-by-hop ones and `Content-Length` already
/// left out: actix-web writes the length of the body it is given) our answer's, as one
/// map: both are actix-web's. A field the builder set (a streamed body's default
/// `Content-Type`) stays only where the upstream sent none.
fn install_fields(fields: header::HeaderMap, answer: &mut HttpResponse) {
    let defaults = std::mem::replace(answer.headers_mut(), fields);
    for (name, value) in defaults {
        if !answer.headers().contains_key(&name) {
            answer.headers_mut().insert(name, value);
        }
    }
}

/// The headers sent upstream: the request's own, in one pass (not hop-by-hop, not
/// `Host`, not a key that was for us, no forwarding claim), and beside them the
/// forwarding ones (`forwarded::fields`: replaced, or extended from a trusted proxy).
/// The request id and hop count are the transport's to set, for every call alike.
///
/// `Authorization` stays behind when it held a key for us on this path
/// (`consumed_auth`) and also whenever it holds one of `[auth]`'s keys, whatever the
/// path: a client that sends its key on every call must not hand it to an upstream.
pub(super) fn upstream_headers(req: &HttpRequest, consumed_auth: bool, shared: &Shared) -> (WireHeaders, AddedFields) {
    let incoming = req.headers();
    // Every `Connection` line, as sent (none: no allocation).
    let connection: Vec<&[u8]> = incoming.get_all(header::CONNECTION).map(|v| v.as_bytes()).collect();
    // Room for all but `Host` (never passed on) without growing: `http`'s map keeps a
    // quarter of its slots free. A request with no other field allocates none.
    let mut out = WireHeaders::with_capacity(if incoming.len() <= 1 { 0 } else { incoming.len() });
    // From anyone but a trusted proxy, every forwarding claim is dropped (not only the
    // ones `forwarded` sets again).
    let trusted_peer = forwarded::from_trusted(req, &shared.trusted_proxies);
    // HTTP/2 splits `Cookie` into a field per cookie; HTTP/1.1 takes one line, joined
    // with "; " (RFC 9113 §8.2.3).
    let h2 = req.version() == Version::HTTP_2;
    // With the docs login on, its cookies are ours (a session is a credential for the
    // docs, as a key is for the routes): taken out of every `Cookie` line.
    let ours = shared.docs_login.is_some();
    for (key, value) in incoming.iter() {
        let name = key.as_str();
        if ((h2 || ours) && name == "cookie")
            || name == "host"
            || (name == "authorization" && (consumed_auth || shared.our_keys.holds(value.as_bytes())))
            || is_hop_by_hop(name, &connection)
            || is_underscore_twin(name, &connection)
            || forwarded::is_forwarding(name)
            || (!trusted_peer && forwarded::is_claim(name))
        {
            continue;
        }
        out.append(key.clone(), value.clone());
    }
    if h2 || ours {
        // HTTP/2's cookie fields as one line; HTTP/1.1's lines each as sent, but ours.
        let lines: Vec<&[u8]> = incoming.get_all(header::COOKIE).map(|v| v.as_bytes()).collect();
        let mut push = |group: &[&[u8]]| {
            if let Some(cookies) = cookie_line(group, ours) {
                out.append(header::COOKIE, cookies);
            }
        };
        if h2 {
            push(&lines);
        } else {
            lines.iter().for_each(|line| push(std::slice::from_ref(line)));
        }
    }
    (out, forwarded::fields(req, trusted_peer))
}

/// The forwarding claims of `req` that go upstream as it sent them (a trusted proxy's
/// `X-Forwarded-Prefix` and the like; none from anyone else): those [`upstream_headers`]
/// lets through, by its rule (a claim is never a cookie, `Host` or `Authorization`).
/// What the request cache keys on beside the fields we set. `trusted_peer`: whether
/// the request came from one of `server.trusted_proxies`.
pub(super) fn claims_sent(req: &HttpRequest, trusted_peer: bool) -> impl Iterator<Item = (&str, &[u8])> {
    let incoming = req.headers();
    let connection: Vec<&[u8]> = incoming.get_all(header::CONNECTION).map(|v| v.as_bytes()).collect();
    incoming.iter().map(|(name, value)| (name.as_str(), value.as_bytes())).filter(move |(name, _)| {
        trusted_peer
            && forwarded::is_claim(name)
            && !forwarded::is_forwarding(name)
            && !is_hop_by_hop(name, &connection)
            && !is_underscore_twin(name, &connection)
    })
}

/// One `Cookie` line of `lines` (an HTTP/2 request's cookie fields, or one HTTP/1.1
/// line), joined with "; ", without the docs login's cookies when `drop_ours`; none if
/// nothing is left.
fn cookie_line(lines: &[&[u8]], drop_ours: bool) -> Option<header::HeaderValue> {
    let ours = |pair: &[u8]| {
        let name = pair.split(|&b| b == b'=').next().unwrap_or_default().trim_ascii();
        [docs_login::SESSION_COOKIE, docs_login::STATE_COOKIE].iter().any(|n| name == n.as_bytes())
    };
    let mut line = Vec::new();
    for pair in lines.iter().flat_map(|l| l.split(|&b| b == b';')).map(<[u8]>::trim_ascii) {
        if pair.is_empty() || (drop_ours && ours(pair)) {
            continue;
        }
        if !line.is_empty() {
            line.extend_from_slice(b"; ");
        }
        line.extend_from_slice(pair);
    }
    (!line.is_empty()).then(|| header::HeaderValue::from_bytes(&line).ok()).flatten()
}

/// Fields the transport writes itself (`h1::head`) whose names a client may spell with
/// `_` for `-` (`host`, `authorization`, `traceparent`, `tracestate` have no `-`).
const TRANSPORT_NAMES: [&str; 4] = ["content-length", "transfer-encoding", HOPS_HEADER, REQUEST_ID_HEADER];

/// Whether `name` spells with `_` for `-` a field that never goes upstream as the
/// client sent it (hop-by-hop, forwarding, or the transport's own): servers that read
/// `_` as `-` (CGI and WSGI ones) would take it for the real one. (nginx drops every
/// name with `_`; other names with `_` go on.)
fn is_underscore_twin(name: &str, connection: &[&[u8]]) -> bool {
    if !name.contains('_') {
        return false;
    }
    let dashed = name.replace('_', "-");
    TRANSPORT_NAMES.contains(&dashed.as_str()) || is_hop_by_hop(&dashed, connection) || forwarded::is_forwarding(&dashed)
}

/// Most of a refused HTTP/2 body read and dropped before answering.
const H2_DRAIN_LIMIT: usize = 256 * 1024;
/// Longest wait for it.
const H2_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops a refused HTTP/2 request body (at most 256 KiB, for at most 1 s)
/// before the early answer: a stream whose body has ended closes cleanly, while one
/// still uploading is reset, and some clients (curl 7) report that reset as a failed
/// transfer instead of the 413 they were sent. Only on this error path.
async fn drain_h2(mut payload: web::Payload) {
    let mut seen = 0usize;
    let _ = tokio::time::timeout(H2_DRAIN_TIME, async {
        while let Some(Ok(chunk)) = payload.next().await {
            seen += chunk.len();
            if seen > H2_DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

/// Streams a request body upstream through the bridge (`first`, a chunk already
/// read, then the rest), cutting it off past `limit` or when it arrives slower than
/// `pace` allows.
fn stream_request_body(
    mut payload: web::Payload,
    mut first: Option<bytes::Bytes>,
    limit: usize,
    mut pace: super::body_deadline::RateGuard,
) -> framex_actors::stream::ChunkStream {
    let (sender, stream) = bridge();
    actix_web::rt::spawn(async move {
        let mut seen = 0usize;
        loop {
            let next = match first.take() {
                Some(chunk) => Ok(Some(chunk)),
                None => pace.next_chunk(&mut payload).await,
            };
            match next {
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
