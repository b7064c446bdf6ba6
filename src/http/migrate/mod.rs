//! Migration modes of a route that a local plugin serves and an upstream served
//! before it (`[plugins.proxy.migrate]`): `upstream` pins the upstream, `shadow`
//! answers from the upstream and compares the local plugin's answer off the client's
//! path, `canary` sends a share of calls to the local plugin and rolls back by itself.
//!
//! Where a call goes is decided in one place, [`decide()`] (for `CallRemote` too, through
//! the engine's `CallPolicy`: `policy`), which also bounds the shadow calls.
//!
//! Cost: routes without a migration entry pay one check that the table is empty (or
//! one hash lookup when it is not). A shadowed call reads its body and the upstream's
//! answer whole (up to [`COMPARED_LIMIT`]) to send and compare them; the local call
//! runs in a spawned task the client never waits for.

pub mod compare;
pub mod decide;
mod policy;
pub mod state;

use std::sync::Arc;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use framex_actors::upstream::Body;
use framex_actors::{ApiKey, BodySpec, CallContext, Dispatch, Error, Escaped, Reply, Route, Target};

pub use state::{Migration, RouteMigration};

use super::body::read_limited;
use super::{envelope, forward, local, Worker};
use compare::{compare, Answer};
use decide::{decide, Decision};
use state::{Mismatch, Outcome};

/// Largest answer (either side) a shadowed call compares; larger ones and streams
/// are counted as `not_compared`.
pub const COMPARED_LIMIT: usize = 1 << 20;

/// Serves a call to a local `route` that has a migration entry, or gives the
/// payload back (`Err`) when the local plugin answers as usual: mode `local`, or no
/// upstream route shadowed under that key. `answered_by` becomes `Upstream` when the
/// upstream answers the client (pinned, a canary's upstream share, shadow), so that
/// metrics and logs tell where the request went.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    worker: &Worker<'_>,
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    route: &Arc<Route>,
    params: &[(String, String)],
    consumed_auth: bool,
    ctx: &CallContext,
    answered_by: &mut Option<crate::metrics::Target>,
) -> Result<Result<HttpResponse, Error>, web::Payload> {
    let ApiKey::Http { path: template, .. } = &route.spec.key else { return Err(payload) };
    let Some(migration) = worker.shared.migration.route(template) else { return Err(payload) };
    let Some(Target::Upstream(target)) = worker.table.shadowed(&route.spec.key).map(|r| &r.target) else {
        return Err(payload);
    };
    if target.filter.as_ref().is_some_and(|f| !f.allows(path)) {
        return Err(payload);
    }
    let ctx = ctx.clone();
    let decision = decide(migration, req.method().as_str());
    if matches!(decision, Decision::Upstream | Decision::Shadow(_)) {
        *answered_by = Some(crate::metrics::Target::Upstream);
    }
    Ok(match decision {
        Decision::AsUsual => return Err(payload),
        // Each branch boxed: only a migrating route pays for their large futures.
        Decision::Upstream => Box::pin(forward::serve(worker, req, path, payload, target, forwarding(consumed_auth), ctx)).await,
        Decision::CanaryLocal => {
            let answer = Box::pin(local::serve(worker, req, payload, route.clone(), params.to_vec(), ctx.clone())).await;
            let failed = match &answer {
                Ok(response) => response.status().is_server_error(),
                Err(e) => super::error::status_of(e).is_server_error(),
            };
            migration.canary_answered(failed);
            answer
        }
        Decision::Shadow(permit) => {
            let call = Shadowed { route, params, migration, target, consumed_auth, permit };
            Box::pin(shadow(worker, req, path, payload, call, ctx)).await
        }
    })
}

/// A call `decide` shadowed: the route, its upstream, and the permit held until the
/// local call ends.
struct Shadowed<'a> {
    route: &'a Arc<Route>,
    params: &'a [(String, String)],
    migration: &'a Arc<RouteMigration>,
    target: &'a framex_actors::upstream::UpstreamTarget,
    consumed_auth: bool,
    permit: framex_actors::call_policy::ShadowPermit,
}

/// `shadow`: the upstream answers the client; the same call goes to the local plugin
/// in a spawned task, and the answers are compared there.
async fn shadow(
    worker: &Worker<'_>,
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    call: Shadowed<'_>,
    ctx: CallContext,
) -> Result<HttpResponse, Error> {
    let Shadowed { route, params, migration, target, consumed_auth, permit } = call;
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING)
        || !matches!(route.spec.body, BodySpec::None);
    let body = if has_body {
        read_limited(payload, worker.shared.max_body_size, &worker.shared.body_deadlines).await?
    } else {
        Bytes::new()
    };
    let sent = if body.is_empty() { Body::Empty } else { Body::Full(body.clone()) };
    let response = match forward::serve_body(worker, req, path, sent, target, forwarding(consumed_auth), ctx.clone()).await {
        Ok(response) if !response.status().is_server_error() => response,
        failed => {
            migration.record(Outcome::UpstreamError, None);
            return failed;
        }
    };
    let sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| framex_actors::sse::is_event_stream(v.as_bytes()));
    let comparable = matches!(response.body().size(), BodySize::Sized(n) if n as usize <= COMPARED_LIMIT)
        || matches!(response.body().size(), BodySize::None);
    if sse || !comparable {
        migration.record(Outcome::NotCompared, None);
        return Ok(response);
    }
    let status = response.status().as_u16();
    let head_request = req.method() == actix_web::http::Method::HEAD;
    // A HEAD answer goes back untouched (it keeps the length a GET would have); only
    // its status is compared.
    let (response, upstream_body) = if head_request {
        (response, Bytes::new())
    } else {
        let (head, body) = response.into_parts();
        match actix_web::body::to_bytes(body).await {
            Ok(body) => (head.set_body(body.clone()).map_into_boxed_body(), body),
            Err(e) => {
                migration.record(Outcome::UpstreamError, None);
                log::debug!(target: "framex::migrate", "request {}: the upstream's answer broke off: {}", Escaped(&ctx.request_id), Escaped(&e));
                let message = "the upstream's answer broke off";
                return Ok(envelope::error(actix_web::http::StatusCode::BAD_GATEWAY, message, None));
            }
        }
    };
    let call = LocalCall {
        router: worker.router.clone(),
        route: route.clone(),
        params: params.to_vec(),
        query: req.query_string().to_owned(),
        headers: req.headers().clone(),
        body,
        head: head_request,
        timeout: worker.shared.timeout,
        method: req.method().to_string(),
        path: path.to_owned(),
        ctx,
    };
    let migration = migration.clone();
    actix_rt::spawn(async move {
        call.compare(migration, status, upstream_body).await;
        drop(permit);
    });
    Ok(response)
}

/// The shadow call to the local plugin, with everything it needs once the client's
/// request is gone.
struct LocalCall {
    router: actix::Addr<framex_actors::Router>,
    route: Arc<Route>,
    params: Vec<(String, String)>,
    query: String,
    headers: actix_web::http::header::HeaderMap,
    body: Bytes,
    head: bool,
    timeout: std::time::Duration,
    method: String,
    path: String,
    ctx: CallContext,
}

impl LocalCall {
    /// Calls the local plugin and records how its answer compares with the upstream's.
    async fn compare(self, migration: Arc<RouteMigration>, status: u16, upstream_body: Bytes) {
        let request_id = self.ctx.request_id.clone();
        let trace_id = self.ctx.trace.trace_id_hex();
        let body = (!self.body.is_empty()).then_some(&self.body[..]);
        let answer = match local::bind(&self.route, &self.params, &self.query, &self.headers, body) {
            Err(e) => Err(e),
            Ok(args) => {
                let call = self.router.send(Dispatch { route: self.route.clone(), args, ctx: self.ctx });
                match tokio::time::timeout(self.timeout, call).await {
                    Err(_) => {
                        log::debug!(target: "framex::migrate", "request {}: the shadow call timed out", Escaped(&request_id));
                        return migration.record(Outcome::LocalError, None);
                    }
                    Ok(reply) => reply.map_err(Error::from).and_then(|r| r),
                }
            }
        };
        let response = match answer {
            Ok(Reply::Value(value)) => envelope::success(value),
            Ok(Reply::Stream(_)) => return migration.record(Outcome::NotCompared, None),
            Err(e) => super::error::respond(&e, &request_id, trace_id),
        };
        if response.status().is_server_error() {
            return migration.record(Outcome::LocalError, None);
        }
        let local_status = response.status().as_u16();
        let local_body = if self.head {
            Bytes::new()
        } else {
            actix_web::body::to_bytes(response.into_body()).await.unwrap_or_default()
        };
        let upstream = Answer { status, body: &upstream_body };
        let local = Answer { status: local_status, body: &local_body };
        match compare(upstream, local, &migration.config.ignore) {
            None => migration.record(Outcome::Match, None),
            Some(difference) => migration.record(
                Outcome::Mismatch,
                Some(Mismatch {
                    request_id: request_id.to_string(),
                    method: self.method,
                    path: self.path,
                    pointer: difference.pointer,
                    upstream: difference.upstream,
                    local: difference.local,
                }),
            ),
        }
    }
}

/// How a migrated request is forwarded: the key for us stays here; which endpoint
/// answered is not noted (the access log's upstream fields stay empty for it).
fn forwarding(consumed_auth: bool) -> forward::Forwarding<'static> {
    forward::Forwarding {
        consumed_auth,
        served: None,
        fields_unread: false,
    }
}
