//! Built-in endpoints: health, version, ping, the merged OpenAPI document, the
//! docs pages (Swagger UI, ReDoc; see [`super::assets`]), the proxy's status page, the
//! migration status page (`/api/v1/proxy/migration`), the limits page (`/api/v1/limits`) and Prometheus metrics.

use actix_web::http::{header, StatusCode};
use actix_web::body::MessageBody;
use actix_web::{HttpRequest, HttpResponse};

use super::{assets, authorize, docs_login, docs_page, envelope, Auth, Worker};

/// The built-in path `path` is, as a `'static` label (what `/metrics` labels their
/// requests with).
pub(super) fn label(path: &str) -> Option<&'static str> {
    crate::builtin_paths::BUILTIN_GETS.into_iter().find(|p| *p == path)
}

/// The built-in answer to `GET path` (canonical), or `None` when `path` is not a
/// built-in. (A
/// match here rather than actix-web routes: every request would otherwise be tried
/// against each built-in's pattern before reaching the route table.)
pub(super) async fn serve(path: &str, req: &HttpRequest, worker: &Worker<'_>) -> Option<HttpResponse> {
    // Probes stay open whatever the rules say.
    match path {
        "/health" => return Some(HttpResponse::Ok().json("ok")),
        "/ping" => return Some(HttpResponse::Ok().json("pong")),
        "/version" => {
            return Some(
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(worker.shared.version.clone()),
            )
        }
        "/ready" => return Some(ready(worker)),
        "/api/v1/openapi.json" | "/docs" | "/redoc" | "/api/v1/proxy/upstreams" | "/api/v1/proxy/migration" | "/api/v1/limits" | "/metrics" => {}
        _ => return assets::file(path),
    }
    // The docs behind the login, when `[auth.oauth]` is set; else the documents and
    // the proxy's figures fall under `[auth]` rules like any path.
    let login = worker.shared.docs_login.as_deref().filter(|_| docs_login::is_guarded(path));
    let auth = match login {
        Some(login) => match login.guard(req, path, &worker.shared.auth) {
            Some(to_login) => return Some(to_login),
            None => Auth::Open,
        },
        None => authorize(&worker.shared.auth, req.headers(), path),
    };
    if let Auth::Refused(response) = auth {
        return Some(*response);
    }
    let sign_out = if login.is_some() { docs_login::SIGN_OUT_FORM } else { "" };
    Some(match path {
        "/api/v1/openapi.json" => openapi(worker),
        "/docs" => {
            let overview = docs_page::overview(worker).await;
            assets::page(path, || overview, sign_out)?
        }
        "/redoc" => assets::page(path, String::new, "")?,
        "/metrics" => metrics(worker).await,
        "/api/v1/proxy/migration" => migration(worker),
        "/api/v1/limits" => limits(worker, matches!(auth, Auth::Passed(_))),
        _ => upstreams(worker).await,
    })
}

/// Readiness: 200 `"ready"`, or 503 `"not ready"` — to anyone, so it names nothing;
/// the reason (upstreams not discovered yet, draining) goes to the log when it
/// changes, and to the `[auth]`-protected status page.
fn ready(worker: &Worker<'_>) -> HttpResponse {
    let shared = &worker.shared;
    match shared.readiness.not_ready(shared.proxy.as_ref()) {
        None => HttpResponse::Ok().json("ready"),
        Some(reason) => {
            shared.readiness.log_once(&reason);
            envelope::error(StatusCode::SERVICE_UNAVAILABLE, "not ready", None)
        }
    }
}

/// A 200 with `body` of `content_type`.
fn typed(content_type: &'static str, body: impl MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(body)
}

fn openapi(worker: &Worker<'_>) -> HttpResponse {
    let table = worker.shared.engine.table();
    typed("application/json", worker.shared.openapi.get(&table, &worker.shared.auth))
}

/// Prometheus metrics: the build, requests per route, upstreams, CallRemote, process.
async fn metrics(worker: &Worker<'_>) -> HttpResponse {
    // Every worker's own share of the request series, published first.
    framex_actors::metric_buffers::flush_all().await;
    let report = match &worker.shared.proxy {
        Some(proxy) => Some(proxy.report().await),
        None => None,
    };
    typed("text/plain; version=0.0.4; charset=utf-8", crate::metrics::render(report.as_ref()))
}

/// `[limits]`: each rule with its settings and, in process, how many keys it tracks;
/// its most used keys (key identities and client addresses, never keys) only to a
/// request that passed an `[auth]` rule covering the page (`covered`); an empty list
/// when there are no rules.
fn limits(worker: &Worker<'_>, covered: bool) -> HttpResponse {
    match &worker.shared.limits {
        Some(limiter) => HttpResponse::Ok().json(limiter.report(if covered { 20 } else { 0 })),
        None => HttpResponse::Ok().json(serde_json::json!({ "rules": [] })),
    }
}

/// Each migrating route's mode, counts and last mismatches.
fn migration(worker: &Worker<'_>) -> HttpResponse {
    let table = worker.shared.engine.table();
    let active = |template: &str| {
        table
            .shadowed_keys()
            .any(|key| matches!(key, framex_actors::ApiKey::Http { path, .. } if path == template))
    };
    HttpResponse::Ok().json(serde_json::json!({ "routes": worker.shared.migration.report(active) }))
}

/// The proxy's upstream URLs and pools with health and counters, and why `/ready`
/// says no (`not_ready`, absent when ready).
async fn upstreams(worker: &Worker<'_>) -> HttpResponse {
    match &worker.shared.proxy {
        Some(proxy) => {
            let mut report = serde_json::to_value(proxy.report().await).unwrap_or_default();
            if let (Some(reason), Some(fields)) = (worker.shared.readiness.not_ready(Some(proxy)), report.as_object_mut()) {
                fields.insert("not_ready".to_owned(), reason.into());
            }
            HttpResponse::Ok().json(report)
        }
        None => envelope::error(StatusCode::NOT_FOUND, "the proxy plugin is not loaded", None),
    }
}
