//! The HTTP answer of a local plugin's reply: FrameX's envelope (or the value alone),
//! or an SSE stream. Shared by the plain and the cached local paths.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use framex_actors::{Reply, Route};

use super::body::response_stream;
use super::{envelope, Worker};
use crate::sentry_events::StreamTap;

/// Whether `route` answers without FrameX's envelope: the plugin said so
/// (`raw_response`), or the path is in `server.excluded_log_paths` (FrameX-kit's).
pub(super) fn is_raw(worker: &Worker, req: &HttpRequest, route: &Route) -> bool {
    route.spec.raw_response || worker.shared.raw_paths.iter().any(|p| p == req.path())
}

/// The HTTP answer of a reply: the FrameX envelope (or the value alone when `raw`),
/// or an SSE stream; with `sentry` on, a stream that breaks off after the answer
/// started is reported (the dispatcher arms the tap with the request's facts).
pub(super) fn answer(reply: Reply, raw: bool, sentry: bool) -> HttpResponse {
    match reply {
        Reply::Value(value) if raw => HttpResponse::Ok().json(value),
        Reply::Value(value) => envelope::success(value),
        Reply::Stream(stream) => {
            let tap = sentry.then(StreamTap::default);
            let mut response = HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "text/event-stream"))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .insert_header(("x-accel-buffering", "no"))
                .streaming(response_stream(stream, true, tap.clone()));
            if let Some(tap) = tap {
                response.extensions_mut().insert(tap);
            }
            response
        }
    }
}
