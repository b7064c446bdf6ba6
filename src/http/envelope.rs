//! FrameX's response envelope, sent with the real HTTP status.
//!
//! Success: `{"status":200,"message":"success","timestamp":"YYYY-MM-DD HH:MM:SS","data":…}`.
//! Error: `{"status":<code>,"message":<text>,"timestamp":…}`, plus `data` with
//! FastAPI-style `{"detail": [...]}` for 422.

use std::cell::RefCell;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::Value;

/// The envelope's timestamp: local time, to the second, as FrameX writes it.
pub fn timestamp() -> String {
    with_timestamp(str::to_owned)
}

thread_local! {
    /// The last second formatted on this thread, and its text: requests in the same
    /// second share one formatting.
    static LAST_SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// Calls `f` with the current timestamp text, formatting it at most once a second per
/// thread.
fn with_timestamp<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = chrono::Local::now();
    LAST_SECOND.with(|cell| {
        let mut last = cell.borrow_mut();
        let second = now.timestamp();
        if last.0 != second {
            last.1.clear();
            use std::fmt::Write as _;
            let _ = write!(last.1, "{}", now.format("%Y-%m-%d %H:%M:%S"));
            last.0 = second;
        }
        f(&last.1)
    })
}

/// The envelope as it goes on the wire (fields in FrameX's order).
#[derive(Serialize)]
struct Envelope<'a> {
    status: u16,
    message: &'a str,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

/// A JSON response of `status` holding the envelope: serialized straight from the
/// parts, with no intermediate JSON map.
fn respond(status: StatusCode, message: &str, data: Option<&Value>) -> HttpResponse {
    let body = with_timestamp(|timestamp| {
        let envelope = Envelope { status: status.as_u16(), message, timestamp, data };
        let mut out = Vec::with_capacity(96);
        // Serializing a `Value` and plain strings into a Vec cannot fail.
        serde_json::to_writer(&mut out, &envelope).map(|()| out)
    });
    match body {
        Ok(body) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// A 200 envelope around `data`.
pub fn success(data: Value) -> HttpResponse {
    respond(StatusCode::OK, "success", Some(&data))
}

/// An error envelope with the same status in the body and on the response.
#[cold]
pub fn error(status: StatusCode, message: &str, details: Option<Value>) -> HttpResponse {
    respond(status, message, details.as_ref())
}
