//! Built-in endpoints: health, version, ping, the merged OpenAPI document, the
//! offline docs page and the proxy's status page.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::{authorize, envelope, Auth, Worker};

/// The docs page: a self-contained viewer of `/api/v1/openapi.json` (no CDN).
const DOCS_HTML: &str = include_str!("docs.html");

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ping", web::get().to(ping))
        .route("/version", web::get().to(version))
        .route("/api/v1/openapi.json", web::get().to(openapi))
        .route("/docs", web::get().to(docs))
        .route("/api/v1/proxy/upstreams", web::get().to(upstreams));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json("ok")
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().json("pong")
}

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(crate::VERSION)
}

async fn openapi(worker: web::Data<Worker>) -> HttpResponse {
    let table = worker.shared.engine.table();
    let document = worker.shared.openapi.get(&table);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(document)
}

async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(DOCS_HTML)
}

/// The proxy's upstream URLs and pools with health and counters (under `[auth]`
/// rules like any other path).
async fn upstreams(req: HttpRequest, worker: web::Data<Worker>) -> HttpResponse {
    if let Auth::Refused(response) = authorize(&worker.shared, &req) {
        return *response;
    }
    match &worker.shared.proxy {
        Some(proxy) => HttpResponse::Ok().json(proxy.report().await),
        None => envelope::error(StatusCode::NOT_FOUND, "the proxy plugin is not loaded", None),
    }
}
