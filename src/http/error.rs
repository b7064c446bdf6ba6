//! The one place where engine errors become HTTP responses.
//!
//! The client gets a short envelope saying what failed, in a fixed text per kind of
//! upstream failure with the request id (never an upstream's URL, address, timeout
//! or key); the details go to the log, under that id.

use actix_web::http::{header, ConnectionType, StatusCode};
use actix_web::HttpResponse;
use framex_actors::{Error, Escaped};
use serde_json::{json, Value};

use super::envelope;

/// The status an engine error is answered with.
pub fn status_of(error: &Error) -> StatusCode {
    let code = match error {
        Error::NoRoute { .. } => 404,
        Error::BadArguments { .. } => 422,
        Error::Plugin { status, .. } => *status,
        Error::UpstreamConnect { .. } | Error::UpstreamReply { .. } => 502,
        Error::UpstreamTimeout { .. } | Error::Deadline { .. } => 504,
        Error::UpstreamStatus { status, .. } => *status,
        Error::Overloaded { .. } => 503,
        Error::Limited { unavailable: false, .. } => 429,
        Error::Limited { unavailable: true, .. } => 503,
        Error::Loop { .. } => 508,
        Error::PayloadTooLarge { .. } => 413,
        Error::ClientAbort { .. } => 400,
        Error::BodyTimeout { .. } => 408,
        Error::StreamClosed => 400,
        // Our own faults (a plugin's undeclared call or config, a start-up refusal
        // met at run time, a closed mailbox). No `_` arm: a new variant must be
        // given its status here before it compiles.
        Error::NotDeclared { .. }
        | Error::PluginConfig { .. }
        | Error::Mailbox(_)
        | Error::DuplicatePlugin { .. }
        | Error::RouteConflict { .. }
        | Error::PluginPanic { .. }
        | Error::Internal(_) => 500,
    };
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Answers an engine error with its status and envelope, and logs it with the
/// request's id and trace id (`trace_id` from [`framex_actors::TraceContext::trace_id_hex`]).
#[cold]
pub fn respond(error: &Error, request_id: &str, trace_id: impl std::fmt::Display) -> HttpResponse {
    let status = status_of(error);
    if status.is_server_error() {
        log::warn!("request {} trace {trace_id}: {status}: {}", Escaped(request_id), Escaped(error));
    } else {
        log::debug!("request {} trace {trace_id}: {status}: {}", Escaped(request_id), Escaped(error));
    }
    // FastAPI's shape, so FrameX clients read it as they read FrameX-kit's.
    let details = error.arg_problems().map(|problems| {
        json!({
            "detail": problems
                .iter()
                .map(|p| {
                    // pydantic's `loc`: one element per step (`["body", "items", 0, "id"]`),
                    // list indexes and character positions as numbers.
                    let steps = p.name.split('.').filter(|s| !s.is_empty()).map(|s| match s.parse::<u64>() {
                        Ok(n) => json!(n),
                        Err(_) => json!(s),
                    });
                    let loc: Vec<Value> = std::iter::once(json!(p.location)).chain(steps).collect();
                    json!({ "type": p.kind, "loc": loc, "msg": p.message, "input": p.input })
                })
                .collect::<Vec<_>>()
        })
    });
    let message = if error.wants_request_id() {
        format!("{} (request id {request_id})", error.external_message())
    } else {
        error.external_message()
    };
    let mut response = envelope::error(status, &message, details);
    if matches!(error, Error::ClientAbort { .. } | Error::BodyTimeout { .. }) {
        // The rest of the body is not read: this connection cannot carry another
        // request, and a slow client must not keep it.
        response.head_mut().set_connection_type(ConnectionType::Close);
    }
    if status.is_server_error() {
        // For `[sentry]` (read in `dispatch` only when it is on).
        response.extensions_mut().insert(crate::sentry_events::Failure::of(error));
    }
    let retry_after = match error {
        Error::Overloaded { retry_after, .. } => Some(u64::from(*retry_after)),
        Error::Limited { retry_after, .. } => Some(*retry_after),
        _ => None,
    };
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind of failure gets the status a client expects; our own faults are 500.
    #[test]
    fn every_kind_of_error_has_its_status() {
        let cases = [
            (Error::NoRoute { api: "x".into() }, 404),
            (Error::plugin(418, "teapot"), 418),
            (Error::Loop { hops: 9, limit: 8 }, 508),
            (Error::Overloaded { upstream: framex_actors::Peer::pool("pool"), retry_after: 1 }, 503),
            (Error::Limited { api: "x".into(), retry_after: 1, unavailable: false }, 429),
            (Error::Limited { api: "x".into(), retry_after: 1, unavailable: true }, 503),
            (Error::PayloadTooLarge { limit: 1 }, 413),
            (Error::BodyTimeout { reason: "slow".into() }, 408),
            (Error::Deadline { api: "x".into() }, 504),
            (Error::NotDeclared { plugin: "p".into(), api: "x".into() }, 500),
            (Error::DuplicatePlugin { name: "p".into() }, 500),
            (Error::Internal(framex_actors::Fault::PoolStopped), 500),
            (Error::PluginPanic { plugin: "p".into(), message: "boom".into() }, 500),
        ];
        for (error, status) in cases {
            assert_eq!(status_of(&error).as_u16(), status, "{error}");
        }
    }

    /// A status a plugin cannot mean (not a valid HTTP status) is answered 500.
    #[test]
    fn an_impossible_plugin_status_is_500() {
        assert_eq!(status_of(&Error::plugin(1000, "x")), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
