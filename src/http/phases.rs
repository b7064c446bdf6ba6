//! The phases of one request, in the order they run (as pingora's `ProxyHttp` names
//! its filters): canonical path → docs login → docs tools → built-ins → loop check →
//! `[auth]` → the special paths (WebSocket, FrameX's proxy function) → route match →
//! `[limits]` → dispatch (migration, local plugin, cache, upstream) → answer.
//!
//! Each phase is a method of [`RequestCtx`], the request's one context; a phase that
//! answers the request returns `ControlFlow::Break` with the answer, which ends it.
//!
//! Cost: the context holds borrows (the request, the worker, the access log's notes),
//! the canonical path and the call context, as the one function before it held them
//! in locals; the phases add no allocation of their own, and take no reference count
//! (the matched route and its target are lent by the request's view of the table).
//!
//! The request's future is the size of its largest state, and a state holds every
//! argument of every `async fn` under way (for the function's whole life, and again
//! where the function moves it): so the phases borrow the context (`&mut self`), what
//! is made of arguments is made before the future (`serve`, the forwarding's
//! `serve_body` and the pool's `forward_noted` are plain functions returning one), the
//! body is read before the exchange starts, and the rare, large sub-futures (the
//! request cache, the migration modes, the docs login and tools, a WebSocket's
//! handshake, an `OPTIONS` forwarded, Redis limits) are boxed where they are awaited.
//! `dispatch` boxes this one, so actix moves a pointer. Measured with `bench/cost`:
//! the split alone took a proxied GET from 61,909 to 71,289 instructions (a 8 KiB
//! future copied by `rep movsb`), the boxing brought it to 62,534; the future, 5,664
//! bytes before the arguments were held once, is 2,576 (a proxied GET 26,858 →
//! 26,464 instructions).

use std::borrow::Cow;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use actix_web::http::{header, Method as HttpMethod, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use framex_actors::upstream::{proxy_function::PATH as PROXY_FUNCTION_PATH, Body, UpstreamTarget};
use framex_actors::{CallContext, Error, HttpMatch, Method, Route, RouteTable, Target};

use super::{
    authorize, builtin, cached_proxy, docs_tools, envelope, error, forward, limit, local,
    migrate, observe, proxy_function, websocket, Auth, Shared, Worker,
};
use crate::canonical_path;
use crate::limits::Permit;
use crate::metrics::Target as Answered;

/// What a phase comes to: the request answered (`Break`), or what the next phase needs.
type Phase<T = ()> = ControlFlow<HttpResponse, T>;

/// One request on its way through the phases: what each phase reads, and what the
/// access log learns as the request goes.
struct RequestCtx<'a, 'w> {
    req: &'a HttpRequest,
    worker: &'a Worker<'w>,
    /// The canonical path: for every phase, and for the upstream.
    path: Cow<'a, str>,
    /// Deadline, request id, hops and trace of the call.
    ctx: CallContext,
    /// Where the request went, for the access log and metrics.
    seen: &'a mut observe::Seen<'w>,
    /// Whether `Authorization` held a key for us (it is not passed on).
    consumed_auth: bool,
    /// Which of its rule's `[auth]` keys the request presented (`[limits]` may count
    /// per key).
    key_index: Option<usize>,
    /// Whether the request came with no payload at all (an HTTP/1 request that
    /// declares no body): it has none to read.
    bodiless: bool,
}

/// Serves one request (whose call context is `ctx`) through the phases.
///
/// Not an `async fn`: the request's context is made here, so that its future holds
/// the context once (an `async fn` holds its arguments for its whole life, and again
/// what it makes of them).
pub(super) fn serve<'a, 'w>(
    req: &'a HttpRequest,
    (payload, bodiless): (web::Payload, bool),
    worker: &'a Worker<'w>,
    ctx: CallContext,
    seen: &'a mut observe::Seen<'w>,
) -> impl Future<Output = HttpResponse> + use<'a, 'w> {
    // One canonical path for everything below, and for the upstream.
    let mut request = canonical_path::canonicalize(req.uri().path()).map(|path| RequestCtx {
        req,
        worker,
        path,
        ctx,
        seen,
        consumed_auth: false,
        key_index: None,
        bodiless,
    });
    async move {
        match request {
            Ok(ref mut request) => match request.run(payload).await {
                ControlFlow::Break(response) | ControlFlow::Continue(response) => response,
            },
            Err(e) => envelope::error(StatusCode::BAD_REQUEST, &format!("Bad Request: {e}"), None),
        }
    }
}

impl<'w> RequestCtx<'_, 'w> {
    /// The request's story, phase by phase.
    async fn run(&mut self, payload: web::Payload) -> Phase<HttpResponse> {
        self.docs_login().await?;
        if let Some(tool) = self.docs_tool() {
            // Boxed: a rare request, whose gate, limit and answer make a large future.
            return ControlFlow::Break(Box::pin(self.serve_docs_tool(tool, payload)).await);
        }
        self.builtin().await?;
        self.refuse_loop()?;
        self.authorize()?;
        if websocket::is_upgrade(self.req) {
            // Boxed: the tunnel's handshake makes a large future, once per tunnel.
            return ControlFlow::Break(Box::pin(self.websocket(payload)).await);
        }
        if self.path == PROXY_FUNCTION_PATH && self.req.method() == HttpMethod::POST {
            return ControlFlow::Break(self.proxy_function(payload).await);
        }
        // Matched in the request's view of the table, which lends the route for the
        // whole request.
        let table: &'w RouteTable = self.worker.table;
        let matched = table.match_http(self.req.method(), &self.path);
        match matched {
            HttpMatch::NotFound => ControlFlow::Break(not_found()),
            // Boxed: an `OPTIONS` forwarded makes a large future, for a rare request.
            HttpMatch::MethodNotAllowed { allowed } => ControlFlow::Break(Box::pin(self.method_not_allowed(&allowed, payload)).await),
            HttpMatch::Found { route, params } => {
                let permit = self.limit(route).await?;
                // A rate limit writes its fields into the answer's.
                let rated = permit.as_ref().is_some_and(|p| p.rate.is_some());
                let response = match &route.target {
                    Target::Local { .. } => self.local(route, params, payload).await,
                    Target::Upstream(target) => self.upstream(route, target, payload, rated).await?,
                };
                ControlFlow::Continue(limit::attach(permit, response))
            }
        }
    }

    fn shared(&self) -> &Shared {
        self.worker.shared
    }

    /// The docs login's endpoints (`[auth.oauth]`).
    async fn docs_login(&mut self) -> Phase {
        if let Some(login) = &self.worker.shared.docs_login {
            if let Some(endpoint) = login.serve(self.req, &self.path) {
                self.seen.builtin = Some(endpoint.label());
                self.seen.target = Some(Answered::Builtin);
                // Boxed: its provider calls make a large future, for a rare request.
                return ControlFlow::Break(Box::pin(endpoint.answer(self.req)).await);
            }
        }
        ControlFlow::Continue(())
    }

    /// The docs page's tools under `/docs/` (action buttons, plugin config, release
    /// check), when the path and method name one.
    fn docs_tool(&mut self) -> Option<docs_tools::Tool> {
        let tool = self.path.strip_prefix("/docs/").and_then(|_| docs_tools::Tool::route(self.req.method(), &self.path))?;
        self.seen.builtin = Some(tool.label());
        self.seen.target = Some(Answered::Builtin);
        Some(tool)
    }

    /// A docs tool: its own gate decides who may use it; then `[limits]` count it (a
    /// button's password, a repository token's rate), as for any other path, each
    /// signed-in user or key as itself.
    async fn serve_docs_tool(&self, tool: docs_tools::Tool, payload: web::Payload) -> HttpResponse {
        let admitted = match tool.admit(self.req, &self.path, self.worker) {
            Ok(admitted) => admitted,
            Err(refused) => return *refused,
        };
        let permit = match limit::check_as(self.shared(), self.req, &self.path, &self.path, admitted.presented()).await {
            Ok(permit) => permit,
            Err(refused) => return refused,
        };
        limit::attach(permit, tool.answer(self.req, payload, self.worker).await)
    }

    /// The built-ins: `GET` of a fixed path.
    async fn builtin(&mut self) -> Phase {
        // `HEAD` as `GET` (its answer goes without the body): health checks use both.
        if matches!(*self.req.method(), HttpMethod::GET | HttpMethod::HEAD) {
            if let Some(response) = builtin::serve(&self.path, self.req, self.worker).await {
                self.seen.builtin = builtin::label(&self.path);
                self.seen.target = Some(Answered::Builtin);
                return ControlFlow::Break(response);
            }
        }
        ControlFlow::Continue(())
    }

    /// Refuses a request that passed through `max_hops` proxies already (a loop).
    fn refuse_loop(&self) -> Phase {
        let limit = self.shared().max_hops;
        if self.ctx.hops >= limit {
            return ControlFlow::Break(self.answer(Err(Error::Loop { hops: self.ctx.hops, limit })));
        }
        ControlFlow::Continue(())
    }

    /// Applies `[auth] rules`: notes the key presented, or answers 401.
    fn authorize(&mut self) -> Phase {
        match authorize(&self.shared().auth, self.req.headers(), &self.path) {
            Auth::Open => {}
            Auth::Passed(index) => {
                self.consumed_auth = true;
                self.key_index = Some(index);
            }
            Auth::Refused(response) => return ControlFlow::Break(*response),
        }
        ControlFlow::Continue(())
    }

    /// `[limits]` for a path counted under `template`: the permit to hold while
    /// answering, or the refusal.
    async fn check_limit(&self, template: &str) -> Phase<Option<Permit>> {
        match limit::check(self.shared(), self.req, &self.path, template, self.key_index).await {
            Ok(permit) => ControlFlow::Continue(permit),
            Err(refused) => ControlFlow::Break(refused),
        }
    }

    /// `[limits]` for a matched route, counted per its template (or function name).
    async fn limit(&self, route: &Route) -> Phase<Option<Permit>> {
        if self.shared().limits.is_none() {
            return ControlFlow::Continue(None);
        }
        self.check_limit(route.spec.key.template()).await
    }

    /// A WebSocket upgrade: tunnelled to the upstream of its path.
    async fn websocket(&self, payload: web::Payload) -> HttpResponse {
        let permit = match self.check_limit(&self.path).await {
            ControlFlow::Continue(permit) => permit,
            ControlFlow::Break(refused) => return refused,
        };
        let response = websocket::serve(self.worker, self.req, &self.path, payload, self.consumed_auth, self.ctx.clone()).await;
        limit::attach(permit, response)
    }

    /// FrameX's proxy-function path (`POST`): a pickled call to a remote function.
    async fn proxy_function(&mut self, payload: web::Payload) -> HttpResponse {
        self.seen.builtin = Some(PROXY_FUNCTION_PATH);
        self.seen.target = Some(Answered::Upstream);
        let permit = match self.check_limit(&self.path).await {
            ControlFlow::Continue(permit) => permit,
            ControlFlow::Break(refused) => return refused,
        };
        limit::attach(permit, proxy_function::serve(self.worker, payload, self.ctx.clone()).await)
    }

    /// A path with routes, none for this method: `OPTIONS` goes where `HEAD` goes (to
    /// the upstream of the path's `GET` route, else of its first route, which answers
    /// both); anything else, and an `OPTIONS` of a local path, gets 405 with `Allow`.
    async fn method_not_allowed(&mut self, allowed: &[Method], payload: web::Payload) -> HttpResponse {
        if self.req.method() == HttpMethod::OPTIONS {
            if let Some(target) = upstream_for_options(self.worker.table, allowed, &self.path) {
                if disabled(target, &self.path) {
                    return not_found();
                }
                self.seen.target = Some(Answered::Upstream);
                let how = forward::Forwarding {
                    consumed_auth: self.consumed_auth,
                    served: None,
                    fields_unread: true,
                };
                let forwarded = forward::serve(self.worker, self.req, &self.path, payload, target, how, self.ctx.clone());
                return self.answer(forwarded.await);
            }
        }
        let allow = allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        let mut response = envelope::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", None);
        if let Ok(v) = header::HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, v);
        }
        response
    }

    /// A local plugin's route: its migration mode first (which may send it upstream),
    /// else the plugin, through the router.
    async fn local(&mut self, route: &'w Arc<Route>, params: Vec<(String, String)>, payload: web::Payload) -> HttpResponse {
        self.seen.route = Some(route);
        self.seen.target = Some(Answered::Local);
        let migrated = migrate::serve(
            self.worker,
            self.req,
            &self.path,
            payload,
            route,
            &params,
            self.consumed_auth,
            &self.ctx,
            &mut self.seen.target,
        );
        let result = match migrated.await {
            Ok(answered) => answered,
            Err(payload) => local::serve(self.worker, self.req, payload, route.clone(), params, self.ctx.clone()).await,
        };
        self.answer(result)
    }

    /// An upstream's route: forwarded, through the request cache when a `[cache]` rule
    /// covers the path. A path the route's filter disables is unknown (404).
    ///
    /// A cached answer carries the `[limits]` permit like a forwarded one; the 404 of
    /// a disabled path is answered here (`Break`), without it. `rated`: the permit
    /// adds rate-limit fields to the answer.
    async fn upstream(&mut self, route: &'w Arc<Route>, target: &'w UpstreamTarget, payload: web::Payload, rated: bool) -> Phase<HttpResponse> {
        // A disabled concrete path is unknown, whatever template it falls under.
        if disabled(target, &self.path) {
            return ControlFlow::Break(not_found());
        }
        self.seen.route = Some(route);
        self.seen.target = Some(Answered::Upstream);
        let shared = &self.worker.shared;
        let json_log = shared.access_log == crate::config::AccessLog::Json;
        let how = forward::Forwarding {
            consumed_auth: self.consumed_auth,
            served: (json_log || framex_actors::trace::recording(&self.ctx.trace)).then_some(&mut self.seen.served),
            fields_unread: !rated,
        };
        if let Some(cache) = &shared.cache {
            if let Some(ttl) = cache.rule_ttl(&self.path) {
                // Boxed: the cache's future is large, and only paths it covers pay for it.
                let cached = Box::pin(cached_proxy::serve(self.worker, self.req, &self.path, payload, target, how, self.ctx.clone(), (cache, ttl)));
                return ControlFlow::Continue(answer(cached.await, &self.ctx));
            }
        }
        // The body first, then the exchange: one after the other, their futures share
        // this one's room (as `forward::serve` does for the other callers).
        let body = if self.bodiless {
            Body::Empty
        } else {
            match forward::read_body(self.worker, self.req, payload).await {
                Ok(body) => body,
                Err(error) => return ControlFlow::Continue(answer(Err(error), &self.ctx)),
            }
        };
        let forwarded = forward::serve_body(self.worker, self.req, &self.path, body, target, how, self.ctx.clone());
        ControlFlow::Continue(answer(forwarded.await, &self.ctx))
    }

    /// The answer to the client: the response, or the error's envelope.
    fn answer(&self, result: Result<HttpResponse, Error>) -> HttpResponse {
        answer(result, &self.ctx)
    }
}

/// The answer to the client of a call with context `ctx`: the response, or the
/// error's envelope (with the request id and trace id).
fn answer(result: Result<HttpResponse, Error>, ctx: &CallContext) -> HttpResponse {
    result.unwrap_or_else(|e| error::respond(&e, &ctx.request_id, ctx.trace.trace_id_hex()))
}

/// The 404 envelope.
fn not_found() -> HttpResponse {
    envelope::error(StatusCode::NOT_FOUND, "Not Found", None)
}

/// Whether the route's filter disables this concrete path.
fn disabled(target: &UpstreamTarget, path: &str) -> bool {
    target.filter.as_ref().is_some_and(|f| !f.allows(path))
}

/// The upstream an `OPTIONS` of `path` (which has no OPTIONS route) goes to: that of
/// its `GET` route, else of its first route, when that route is proxied.
fn upstream_for_options<'t>(table: &'t RouteTable, allowed: &[Method], path: &str) -> Option<&'t UpstreamTarget> {
    let first = allowed.iter().find(|m| **m == Method::GET).or_else(|| allowed.first())?;
    match table.match_http(first, path) {
        HttpMatch::Found { route, .. } => match &route.target {
            Target::Upstream(target) => Some(target),
            Target::Local { .. } => None,
        },
        _ => None,
    }
}
