//! `POST /api/v1/proxy/remote`: FrameX instances call our function APIs as proxy
//! functions. The body is `{"func_name": E(name), "data": E(kwargs)}`; the answer an
//! envelope whose `data` is `E(result)` (see `framex_actors::upstream::proxy_function`).
//!
//! Only proxy functions are callable here: those a plugin declared with
//! `PluginBuilder::proxy_function`, and those we reach in turn through
//! `proxy_functions`. Other function APIs and HTTP routes are not. While none is
//! offered the endpoint does not exist (404, body unread). `[auth]` rules apply to
//! it like to any path (the dispatcher authorizes before calling [`serve`]).
//!
//! Payloads are decoded within bounds (see `framex_actors::upstream::proxy_function`):
//! at most `MAX_LAYERS` layers and `server.max_body_size` bytes across them (413
//! past it, 422 otherwise), on the blocking pool so the worker keeps serving.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use framex_actors::upstream::proxy_function::{decode, encode, DecodeError, DecodeLimits};
use framex_actors::{CallContext, Dispatch, Error};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{envelope, error, Worker};

/// The request body FrameX sends.
#[derive(Deserialize)]
struct Call {
    func_name: String,
    data: String,
}

fn unprocessable(message: String) -> HttpResponse {
    envelope::error(StatusCode::UNPROCESSABLE_ENTITY, &message, None)
}

/// The answer to a payload that could not be decoded (`field`: which one).
fn refused(field: &str, error: &DecodeError) -> HttpResponse {
    match error {
        DecodeError::TooLarge { .. } => {
            envelope::error(StatusCode::PAYLOAD_TOO_LARGE, &format!("{field}: {error}"), None)
        }
        _ => unprocessable(format!("{field}: {error}")),
    }
}

/// Both fields of a call decoded, on the blocking pool, within one shared budget.
async fn decode_call(call: Call, max_decoded: usize) -> Result<(Value, Value), HttpResponse> {
    let decoded = web::block(move || {
        let name = decode(&call.func_name, DecodeLimits { max_decoded }).map_err(|e| ("func_name", e))?;
        let used = serde_json::to_vec(&name).map_or(0, |v| v.len());
        let rest = DecodeLimits {
            max_decoded: max_decoded.saturating_sub(used),
        };
        let args = decode(&call.data, rest).map_err(|e| ("data", e))?;
        Ok::<_, (&str, DecodeError)>((name, args))
    })
    .await;
    match decoded {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err((field, e))) => Err(refused(field, &e)),
        Err(e) => Err(envelope::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("decoding failed: {e}"),
            None,
        )),
    }
}

/// Answers one proxy-function call.
pub async fn serve(worker: &Worker<'_>, body: web::Payload, ctx: CallContext) -> HttpResponse {
    let request_id = ctx.request_id.clone();
    let trace_id = ctx.trace.trace_id;
    let offered = worker.table.routes().any(|route| route.spec.proxy_function);
    if !offered {
        return envelope::error(StatusCode::NOT_FOUND, "Not Found", None);
    }
    let limit = worker.shared.max_body_size;
    let bytes = match super::body::read_limited(body, limit, &worker.shared.body_deadlines).await {
        Ok(bytes) => bytes,
        Err(e) => return error::respond(&e, &request_id, format_args!("{trace_id:032x}")),
    };
    let call: Call = match serde_json::from_slice(&bytes) {
        Ok(call) => call,
        Err(e) => return unprocessable(format!("expected {{\"func_name\": ..., \"data\": ...}}: {e}")),
    };
    drop(bytes);
    let (name, args) = match decode_call(call, limit).await {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let name = match name {
        // A path or "METHOD /path" would reach an HTTP route around its auth rules.
        Value::String(name) if !name.starts_with('/') && !name.contains(char::is_whitespace) => name,
        _ => return unprocessable("func_name must name a function".to_owned()),
    };
    let args = match args {
        Value::Object(args) => args,
        Value::Null => Map::new(),
        _ => return unprocessable("data must hold keyword arguments".to_owned()),
    };
    let route = worker.table.by_name(&name, &args).filter(|route| route.spec.proxy_function);
    let Some(route) = route else {
        return envelope::error(
            StatusCode::NOT_FOUND,
            &format!("proxy function '{name}' is not registered"),
            None,
        );
    };
    let reply = match worker.router.send(Dispatch { route, args, ctx }).await {
        Ok(reply) => reply,
        Err(e) => Err(Error::from(e)),
    };
    match reply {
        Ok(reply) => match reply.into_value().await {
            Ok(value) => envelope::success(Value::String(encode(&value))),
            Err(e) => error::respond(&e, &request_id, format_args!("{trace_id:032x}")),
        },
        Err(e) => error::respond(&e, &request_id, format_args!("{trace_id:032x}")),
    }
}
