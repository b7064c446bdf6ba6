//! `POST /api/v1/proxy/remote`: FrameX instances call our function APIs as proxy
//! functions. The body is `{"func_name": E(name), "data": E(kwargs)}`; the answer an
//! envelope whose `data` is `E(result)` (see `framex_actors::upstream::proxy_function`).
//!
//! Only proxy functions are callable here: those a plugin declared with
//! `PluginBuilder::proxy_function`, and those we reach in turn through
//! `proxy_functions`. Other function APIs and HTTP routes are not.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use framex_actors::upstream::proxy_function::{decode, encode};
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

/// Answers one proxy-function call.
pub async fn serve(worker: &Worker, body: web::Payload, ctx: CallContext) -> HttpResponse {
    let request_id = ctx.request_id.clone();
    let limit = worker.shared.max_body_size;
    let bytes = match super::body::read_limited(body, limit, &worker.shared.body_deadlines).await {
        Ok(bytes) => bytes,
        Err(e) => return error::respond(&e, &request_id),
    };
    let call: Call = match serde_json::from_slice(&bytes) {
        Ok(call) => call,
        Err(e) => return unprocessable(format!("expected {{\"func_name\": ..., \"data\": ...}}: {e}")),
    };
    let name = match decode(&call.func_name) {
        // A path or "METHOD /path" would reach an HTTP route around its auth rules.
        Ok(Value::String(name)) if !name.starts_with('/') && !name.contains(char::is_whitespace) => name,
        Ok(_) => return unprocessable("func_name must name a function".to_owned()),
        Err(e) => return unprocessable(format!("func_name: {e}")),
    };
    let args = match decode(&call.data) {
        Ok(Value::Object(args)) => args,
        Ok(Value::Null) => Map::new(),
        Ok(_) => return unprocessable("data must hold keyword arguments".to_owned()),
        Err(e) => return unprocessable(format!("data: {e}")),
    };
    let route = worker
        .shared
        .engine
        .published()
        .load()
        .by_name(&name, &args)
        .filter(|route| route.spec.proxy_function);
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
            Err(e) => error::respond(&e, &request_id),
        },
        Err(e) => error::respond(&e, &request_id),
    }
}
