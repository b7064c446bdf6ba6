//! FrameX's response envelope, sent with the real HTTP status.
//!
//! Success: `{"status":200,"message":"success","timestamp":"YYYY-MM-DD HH:MM:SS","data":…}`.
//! Error: `{"status":<code>,"message":<text>,"timestamp":…}`, plus `data` with
//! FastAPI-style `{"detail": [...]}` for 422.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

/// The envelope's timestamp: local time, to the second, as FrameX writes it.
pub fn timestamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A 200 envelope around `data`.
pub fn success(data: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": 200,
        "message": "success",
        "timestamp": timestamp(),
        "data": data,
    }))
}

/// An error envelope with the same status in the body and on the response.
pub fn error(status: StatusCode, message: &str, details: Option<Value>) -> HttpResponse {
    let mut body = json!({ "status": status.as_u16(), "message": message, "timestamp": timestamp() });
    if let Some(details) = details {
        body["data"] = details;
    }
    HttpResponse::build(status).json(body)
}
