//! Built-in endpoints: health, version, ping, the merged OpenAPI document, the
//! offline docs page, the proxy's status page and Prometheus metrics.

use actix_web::http::{header, StatusCode};
use actix_web::body::MessageBody;
use actix_web::{HttpRequest, HttpResponse};

use super::{authorize, envelope, Auth, Worker};

/// The docs page: a self-contained viewer of `/api/v1/openapi.json` (no CDN).
const DOCS_HTML: &str = include_str!("docs.html");

/// Every built-in path (what `/metrics` labels their requests with).
const PATHS: [&str; 7] = ["/health", "/ping", "/version", "/api/v1/openapi.json", "/docs", "/api/v1/proxy/upstreams", "/metrics"];

/// The built-in path `path` is, as a `'static` label.
pub(super) fn label(path: &str) -> Option<&'static str> {
    PATHS.into_iter().find(|p| *p == path)
}

/// The built-in answer to `GET path` (canonical), or `None` when `path` is not a
/// built-in. (A
/// match here rather than actix-web routes: every request would otherwise be tried
/// against each built-in's pattern before reaching the route table.)
pub(super) async fn serve(path: &str, req: &HttpRequest, worker: &Worker) -> Option<HttpResponse> {
    // Probes stay open whatever the rules say.
    match path {
        "/health" => return Some(HttpResponse::Ok().json("ok")),
        "/ping" => return Some(HttpResponse::Ok().json("pong")),
        "/version" => return Some(HttpResponse::Ok().json(crate::VERSION)),
        "/api/v1/openapi.json" | "/docs" | "/api/v1/proxy/upstreams" | "/metrics" => {}
        _ => return None,
    }
    // The documents and the proxy's figures fall under `[auth]` rules like any path.
    if let Auth::Refused(response) = authorize(&worker.shared, req, path) {
        return Some(*response);
    }
    Some(match path {
        "/api/v1/openapi.json" => openapi(worker),
        "/docs" => docs(),
        "/metrics" => metrics(worker).await,
        _ => upstreams(worker).await,
    })
}

/// A 200 with `body` of `content_type`.
fn typed(content_type: &'static str, body: impl MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(body)
}

fn openapi(worker: &Worker) -> HttpResponse {
    let table = worker.shared.engine.table();
    typed("application/json", worker.shared.openapi.get(&table))
}

fn docs() -> HttpResponse {
    typed("text/html; charset=utf-8", DOCS_HTML)
}

/// Prometheus metrics: the build, requests per route, upstreams, CallRemote, process.
async fn metrics(worker: &Worker) -> HttpResponse {
    let report = match &worker.shared.proxy {
        Some(proxy) => Some(proxy.report().await),
        None => None,
    };
    typed("text/plain; version=0.0.4; charset=utf-8", crate::metrics::render(report.as_ref()))
}

/// The proxy's upstream URLs and pools with health and counters.
async fn upstreams(worker: &Worker) -> HttpResponse {
    match &worker.shared.proxy {
        Some(proxy) => HttpResponse::Ok().json(proxy.report().await),
        None => envelope::error(StatusCode::NOT_FOUND, "the proxy plugin is not loaded", None),
    }
}
