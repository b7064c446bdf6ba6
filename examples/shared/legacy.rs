//! A stand-in for a legacy FastAPI service, embedded so the examples need nothing
//! from outside: a few routes and the OpenAPI 3.1 document FastAPI would publish.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct MatchModel {
    name: String,
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

fn openapi() -> serde_json::Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "legacy", "version": "1.2.3"},
        "paths": {
            "/api/v1/base/version": {"get": {
                "summary": "Version",
                "responses": {"200": {"description": "Successful Response"}}
            }},
            "/api/v1/base/match": {"post": {
                "summary": "Match",
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/MatchModel"}}}},
                "responses": {"200": {"description": "Successful Response"}}
            }},
            "/api/v1/legacy/greet": {"get": {
                "summary": "Greet",
                "parameters": [{"name": "name", "in": "query", "required": true,
                                "schema": {"type": "string", "title": "Name"}}],
                "responses": {"200": {"description": "Successful Response"}}
            }},
            "/api/v1/legacy/ticks": {"get": {
                "summary": "Ticks",
                "responses": {"200": {"description": "Successful Response",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
            }}
        },
        "components": {"schemas": {"MatchModel": {
            "type": "object", "title": "MatchModel",
            "properties": {"name": {"type": "string", "title": "Name"}},
            "required": ["name"]
        }}}
    })
}

async fn ticks() -> HttpResponse {
    let events = futures::stream::unfold(0u32, |i| async move {
        if i > 3 {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        let frame = if i == 3 {
            "event: finish\ndata: {}\n\n".to_owned()
        } else {
            format!("event: message_chunk\ndata: {{\"content\": \"tick {i}\"}}\n\n")
        };
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(frame)), i + 1))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(events)
}

/// Starts the stand-in on an ephemeral loopback port and returns its base URL.
pub fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = HttpServer::new(|| {
        App::new()
            .route("/api/v1/openapi.json", web::get().to(|| async { HttpResponse::Ok().json(openapi()) }))
            .route("/api/v1/base/version", web::get().to(|| async { HttpResponse::Ok().json(json!({"version": "1.2.3"})) }))
            .route(
                "/api/v1/base/match",
                web::post().to(|m: web::Json<MatchModel>| async move {
                    HttpResponse::Ok().json(json!({"status": 200, "message": "success", "data": {"matched": m.name}}))
                }),
            )
            .route(
                "/api/v1/legacy/greet",
                web::get().to(|q: web::Query<Name>| async move {
                    HttpResponse::Ok().json(json!({"greeting": format!("hello {}", q.name), "served_by": "legacy"}))
                }),
            )
            .route("/api/v1/legacy/ticks", web::get().to(ticks))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    url
}
