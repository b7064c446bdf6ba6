//! Serving a local plugin route: bind the request to arguments, dispatch, answer with
//! the envelope or an SSE stream.

use std::borrow::Cow;
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::{web, HttpRequest, HttpResponse};
use framex_actors::{
    ArgProblem, Args, BodySpec, CallContext, Dispatch, Error, ParamLocation, Reply, Route, Target,
};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::body::read_limited;
use super::{answer, Worker};

/// Serves `route` for this request.
///
/// # Errors
/// Binding and engine errors, answered by the caller.
pub async fn serve(
    worker: &Worker<'_>,
    req: &HttpRequest,
    payload: web::Payload,
    route: Arc<Route>,
    params: Vec<(String, String)>,
    ctx: CallContext,
) -> Result<HttpResponse, Error> {
    let body = match route.spec.body {
        BodySpec::None => None,
        _ => Some(read_limited(payload, worker.shared.max_body_size, &worker.shared.body_deadlines).await?),
    };
    let args = bind(&route, &params, req.query_string(), req.headers(), body.as_deref())?;
    if let Some(ttl) = route.spec.cache {
        // Boxed: the cache's future is large, and only routes it covers pay for it.
        return Box::pin(super::cached::local(worker, req, route, args, ctx, ttl)).await;
    }
    let raw = answer::is_raw(worker, req, &route);
    let reply = worker
        .router
        .send(Dispatch { route, args, ctx })
        .await??;
    let streams = matches!(reply, Reply::Stream(_));
    let mut response = answer::answer(reply, raw, worker.shared.sentry.is_some());
    if !streams && worker.shared.cache.is_some() {
        // FrameX-kit marks every non-streaming route that does not cache; framex-rs
        // does while `[cache]` is on (off, a request pays no header).
        super::cached::mark(&mut response, crate::cache::Status::Bypass);
    }
    Ok(response)
}

/// Reads a route's arguments out of a request the way FastAPI does: path and query
/// text converted to the declared types, the JSON body as the model argument, form
/// fields by name, headers by the names the route's [`framex_actors::LocalApi`] made
/// when it was built (a route no local plugin serves has no header read). Unknown
/// query parameters are ignored.
///
/// # Errors
/// [`Error::BadArguments`] naming every argument that is missing or does not parse.
pub fn bind(
    route: &Route,
    params: &[(String, String)],
    query: &str,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<Args, Error> {
    let spec = &route.spec;
    let mut args = Args::new();
    let mut problems = Vec::new();
    // Borrowed from the query unless a pair is escaped.
    let pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(query.as_bytes()).collect();
    let local = match &route.target {
        Target::Local { api, .. } => Some(api),
        Target::Upstream(_) => None,
    };
    for (i, param) in spec.params.iter().enumerate() {
        let header = local.and_then(|api| api.header(i)).map(|name| (name, headers));
        let texts = param_texts(param, params, &pairs, header);
        if texts.is_empty() {
            if param.required {
                problems.push(ArgProblem::pydantic(
                    "missing",
                    param.location.to_string(),
                    &param.name,
                    "Field required",
                    Value::Null,
                ));
            }
            continue;
        }
        match param_value(param, &texts) {
            Some(v) => {
                args.insert(param.name.clone(), v);
            }
            None => problems.push(unparsable(param, texts.last().map_or("", |t| &**t))),
        }
    }
    if let Some(bytes) = body {
        bind_body(&spec.body, bytes, &mut args, &mut problems);
    }
    if problems.is_empty() {
        Ok(args)
    } else {
        Err(Error::BadArguments {
            api: spec.key.to_string(),
            problems,
        })
    }
}

/// The texts a request gives for `param`: the route's path `params` (percent-decoded),
/// the query's `pairs`, or, for a header parameter, the header `header` names (its
/// name, and the request's headers).
fn param_texts<'a>(
    param: &framex_actors::Param,
    params: &'a [(String, String)],
    pairs: &'a [(Cow<'a, str>, Cow<'a, str>)],
    header: Option<(&HeaderName, &'a HeaderMap)>,
) -> Vec<Cow<'a, str>> {
    match param.location {
        ParamLocation::Path => params
            .iter()
            .filter(|(k, _)| *k == param.name)
            .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy())
            .collect(),
        ParamLocation::Query => pairs
            .iter()
            .filter(|(k, _)| *k == param.name)
            .map(|(_, v)| Cow::Borrowed(&**v))
            .collect(),
        ParamLocation::Header => header
            .and_then(|(name, headers)| headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(|v| vec![Cow::Borrowed(v)])
            .unwrap_or_default(),
    }
}

/// `param`'s value from its (non-empty) `texts`: every one for an array, else the
/// last; `None` when one does not parse as the declared type.
fn param_value(param: &framex_actors::Param, texts: &[Cow<'_, str>]) -> Option<Value> {
    if param.kind == framex_actors::ValueKind::Array {
        let item_kind = param.items.clone().unwrap_or(framex_actors::ValueKind::Any);
        texts
            .iter()
            .map(|t| item_kind.parse_text(t))
            .collect::<Option<Vec<Value>>>()
            .map(Value::Array)
    } else {
        texts.last().and_then(|t| param.kind.parse_text(t))
    }
}

/// Binds a request's body `bytes` as `spec` declares it: the JSON body as the model
/// argument, form fields by name; what is missing or does not parse goes to `problems`.
fn bind_body(spec: &BodySpec, bytes: &[u8], args: &mut Args, problems: &mut Vec<ArgProblem>) {
    match spec {
        BodySpec::Json { arg, required, .. } => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                if *required {
                    problems.push(ArgProblem::pydantic("missing", "body", "", "Field required", Value::Null));
                }
            } else {
                match serde_json::from_slice::<Value>(bytes) {
                    Ok(v) => {
                        args.insert(arg.clone(), v);
                    }
                    Err(e) => problems.push(ArgProblem::pydantic(
                        "json_invalid",
                        "body",
                        // pydantic's position: characters before the error.
                        &e.column().saturating_sub(1).to_string(),
                        "JSON decode error",
                        Value::Object(Default::default()),
                    )),
                }
            }
        }
        BodySpec::Form { fields } => {
            for (k, v) in form_urlencoded::parse(bytes) {
                if fields.iter().any(|f| f.name == k) {
                    args.insert(k.into_owned(), Value::String(v.into_owned()));
                }
            }
        }
        _ => {}
    }
}

/// A query, path or header value that does not parse as its parameter's type, in
/// pydantic's words (what FastAPI and FrameX-kit answer).
fn unparsable(param: &framex_actors::Param, text: &str) -> ArgProblem {
    use framex_actors::ValueKind;
    let (kind, message) = match param.kind {
        ValueKind::Integer => ("int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
        ValueKind::Number => ("float_parsing", "Input should be a valid number, unable to parse string as a number"),
        ValueKind::Boolean => ("bool_parsing", "Input should be a valid boolean, unable to interpret input"),
        ValueKind::Object => ("dict_type", "Input should be a valid dictionary"),
        _ => ("value_error", "Input is not valid"),
    };
    ArgProblem::pydantic(kind, param.location.to_string(), &param.name, message, Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use framex_actors::{ApiHandler, ApiKey, ApiSpec, LocalApi, Param, PluginMeta, PluginSpec, ValueKind};

    /// A local route `GET /t` with an integer header parameter `x_count`.
    fn route() -> Route {
        let mut spec = ApiSpec::new(ApiKey::http(framex_actors::Method::GET, "/t"));
        spec.params.push(Param {
            name: "x_count".to_owned(),
            location: ParamLocation::Header,
            kind: ValueKind::Integer,
            items: None,
            required: true,
            schema: Value::Null,
            canonical: None,
        });
        let handler = ApiHandler::Call(Box::new(|_, _| Box::pin(async { Ok(Value::Null) })));
        let api = Arc::new(LocalApi::new(Arc::new(spec), handler));
        let plugin = Arc::new(PluginSpec { meta: PluginMeta::default(), apis: vec![api.clone()], on_start: None });
        Route { spec: api.spec.clone(), target: Target::Local { plugin, api } }
    }

    /// A header parameter is read from the header of its name with `_` as `-`, as
    /// FastAPI reads it (not from the query); without it, a required one is missing.
    #[test]
    fn a_header_parameter_is_read_from_its_dashed_header() {
        let route = route();
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-count"),
            actix_web::http::header::HeaderValue::from_static("7"),
        );
        let args = bind(&route, &[], "", &headers, None).expect("the header binds");
        assert_eq!(args.get("x_count"), Some(&serde_json::json!(7)));
        let missing = bind(&route, &[], "x_count=7", &HeaderMap::new(), None).expect_err("a header, not a query");
        assert!(matches!(&missing, Error::BadArguments { problems, .. } if problems.len() == 1), "{missing:?}");
    }
}
