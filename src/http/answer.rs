//! The HTTP answer of a local plugin's reply: FrameX's envelope (or the value alone),
//! or an SSE stream. Shared by the plain and the cached local paths.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use framex_actors::{Reply, Route};

use super::body::streamed;
use super::{envelope, Worker};

/// Whether `route` answers without FrameX's envelope: the plugin said so
/// (`raw_response`), or the path is in `server.excluded_log_paths` (FrameX-kit's).
pub(super) fn is_raw(worker: &Worker<'_>, req: &HttpRequest, route: &Route) -> bool {
    route.spec.raw_response || worker.shared.raw_paths.iter().any(|p| p == req.path())
}

/// The HTTP answer of a reply: the FrameX envelope (or the value alone when `raw`),
/// or an SSE stream; with `sentry` on, a stream that breaks off after the answer
/// started is reported (see [`streamed`]).
pub(super) fn answer(reply: Reply, raw: bool, sentry: bool) -> HttpResponse {
    match reply {
        Reply::Value(value) if raw => HttpResponse::Ok().json(value),
        Reply::Value(value) => envelope::success(value),
        Reply::Stream(stream) => {
            let mut builder = HttpResponse::Ok();
            builder
                .insert_header((header::CONTENT_TYPE, "text/event-stream"))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .insert_header(("x-accel-buffering", "no"));
            streamed(builder, stream, true, None, sentry)
        }
    }
}
