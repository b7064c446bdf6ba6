//! `[docs] action_buttons` run from the server, as FrameX-kit runs them (see
//! `docs_tools` for the endpoints and who reaches them): the button's own
//! auth (`none`, a `password` sent in the body, or the docs login's user among
//! `allowed_usernames`), required `inputs`, then one request to the configured URL
//! with its headers, its query and body with the inputs merged in, within the
//! button's `timeout`, reading at most [`MAX_ANSWER_BYTES`], following no redirect.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use framex_actors::upstream::wire::{header as wire_header, HeaderMap, HeaderValue, Method};
use framex_actors::upstream::{fetch_request, OneRequest, UpstreamUrl};
use framex_actors::Escaped;
use serde_json::{json, Map, Value};

use super::{constant_time_eq, docs_login, envelope, Worker};
use crate::config::{ActionButton, ButtonAuth, ButtonError};

/// The largest answer read from a button's target.
pub(super) const MAX_ANSWER_BYTES: usize = 1 << 20;

/// `POST /docs/action-buttons/{i}/invoke`.
pub(super) async fn invoke(worker: &Worker<'_>, req: &HttpRequest, index: Option<usize>, body: &Map<String, Value>) -> HttpResponse {
    let button = match button(worker, index, false) {
        Ok(button) => button,
        Err(refused) => return *refused,
    };
    if let Err(refused) = check_auth(worker, req, button, body) {
        return *refused;
    }
    let inputs = match body.get("inputs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(inputs)) => inputs.clone(),
        Some(_) => return envelope::error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid input payload", None),
    };
    let missing: Vec<&str> = button
        .inputs
        .iter()
        .filter(|i| i.required && inputs.get(&i.name).is_none_or(|v| text(v).trim().is_empty()))
        .map(|i| if i.label.is_empty() { i.name.as_str() } else { i.label.as_str() })
        .collect();
    if !missing.is_empty() {
        let message = format!("Missing required inputs: {}", missing.join(", "));
        return envelope::error(StatusCode::UNPROCESSABLE_ENTITY, &message, None);
    }
    // The config check ran the same parse: only a config built by hand fails here.
    let request = match build(button, &inputs) {
        Ok(request) => request,
        Err(e) => {
            log::warn!("docs action button {}: {} {e}", Escaped(&button.title), e.key());
            return envelope::error(StatusCode::BAD_GATEWAY, "Docs action request failed", None);
        }
    };
    let timeout = Duration::from_secs_f64(button.timeout.min(crate::config::MAX_SECONDS));
    let tls = framex_actors::upstream::tls::default_config();
    let one = OneRequest { method: request.method, path: &request.path, headers: request.headers, body: request.body };
    match fetch_request(&request.base, None, one, &tls, timeout, MAX_ANSWER_BYTES).await {
        Ok((status, answer)) => {
            let text = String::from_utf8_lossy(&answer).into_owned();
            let mut out = json!({ "ok": status.is_success(), "status_code": status.as_u16(), "body": text });
            if !button.response_open_url.is_empty() {
                out["open_url"] = open_url(&text, &button.response_open_url).map_or(Value::Null, Value::String);
            }
            log::info!("docs action button {} ran: {}", Escaped(&button.title), status.as_u16());
            HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(out)
        }
        Err(reason) => {
            log::warn!("docs action button {} failed: {}", Escaped(&button.title), Escaped(&reason));
            envelope::error(StatusCode::BAD_GATEWAY, "Docs action request failed", None)
        }
    }
}

/// `POST /docs/action-buttons/{i}/open`: `{open_url}` after the button's auth.
pub(super) fn open(worker: &Worker<'_>, req: &HttpRequest, index: Option<usize>, body: &Map<String, Value>) -> HttpResponse {
    match button(worker, index, true).and_then(|b| check_auth(worker, req, b, body).map(|()| b)) {
        Ok(button) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({ "open_url": button.url })),
        Err(refused) => *refused,
    }
}

/// `GET /docs/action-buttons/{i}/open`: a redirect to the URL after the button's
/// auth (a `password` button cannot pass here: no body carries the password).
pub(super) fn open_window(worker: &Worker<'_>, req: &HttpRequest, index: Option<usize>) -> HttpResponse {
    match button(worker, index, true).and_then(|b| check_auth(worker, req, b, &Map::new()).map(|()| b)) {
        Ok(button) => HttpResponse::Found()
            .insert_header((header::LOCATION, button.url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(refused) => *refused,
    }
}

/// Button `index`: 404 when there is none, 400 when it is (`link`) or is not
/// (`!link`) a `LINK`.
fn button<'a>(worker: &'a Worker<'_>, index: Option<usize>, link: bool) -> Result<&'a ActionButton, Box<HttpResponse>> {
    let button = index
        .and_then(|i| worker.shared.docs.tools.buttons.get(i))
        .ok_or_else(|| Box::new(envelope::error(StatusCode::NOT_FOUND, "Docs action button not found", None)))?;
    match (button.method == "LINK", link) {
        (true, false) => Err(Box::new(envelope::error(StatusCode::BAD_REQUEST, "Docs action button is a link", None))),
        (false, true) => Err(Box::new(envelope::error(StatusCode::BAD_REQUEST, "Docs action button is not a link", None))),
        _ => Ok(button),
    }
}

/// The button's own auth: its password (`{"auth": {"password": …}}`, compared in
/// constant time), or a logged-in user it allows.
fn check_auth(worker: &Worker<'_>, req: &HttpRequest, button: &ActionButton, body: &Map<String, Value>) -> Result<(), Box<HttpResponse>> {
    match &button.auth {
        ButtonAuth::None => Ok(()),
        ButtonAuth::Password { password } => {
            let given = body.get("auth").and_then(|a| a.get("password")).and_then(Value::as_str).unwrap_or("");
            if constant_time_eq(given.as_bytes(), password.as_bytes()) {
                Ok(())
            } else {
                Err(Box::new(envelope::error(StatusCode::UNAUTHORIZED, "Invalid action password", None)))
            }
        }
        ButtonAuth::Oauth { allowed_usernames } => {
            let user = worker.shared.docs_login.as_ref().and_then(|login| login.session_user(req));
            match user {
                None => Err(Box::new(docs_login::required(worker.shared.docs_login.as_deref()))),
                Some(user) if allowed_usernames.iter().any(|u| u == "*" || *u == user.username) => Ok(()),
                Some(_) => Err(Box::new(envelope::error(StatusCode::FORBIDDEN, "User is not allowed", None))),
            }
        }
    }
}

/// A button's request, ready to go.
struct Request {
    /// `scheme://host[:port]`.
    base: UpstreamUrl,
    /// The path and the query.
    path: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
}

/// The button's request ([`ActionButton::target`], the parse the config check ran)
/// with `inputs` merged into its query or body (FrameX-kit sends a body only when
/// there is something in it, and a query, when there is one, in place of the URL's
/// own).
///
/// # Errors
/// What [`ActionButton::target`] refuses (never, for a button the config check
/// passed).
fn build(button: &ActionButton, inputs: &Map<String, Value>) -> Result<Request, ButtonError> {
    let target = button.target()?;
    let mut query: Vec<(String, Value)> = button.query.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
    let mut body: Map<String, Value> = button.body.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
    for input in &button.inputs {
        if let Some(value) = inputs.get(&input.name) {
            if input.target == "query" {
                query.retain(|(k, _)| *k != input.name);
                query.push((input.name.clone(), value.clone()));
            } else {
                body.insert(input.name.clone(), value.clone());
            }
        }
    }
    let mut path = target.path;
    if query.is_empty() {
        if let Some(own) = &target.query {
            path.push('?');
            path.push_str(own);
        }
    } else {
        // As FrameX-kit's client does: the query sent replaces the URL's own.
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query {
            match v {
                Value::Array(items) => items.iter().for_each(|item| {
                    pairs.append_pair(k, &text(item));
                }),
                v => {
                    pairs.append_pair(k, &text(v));
                }
            }
        }
        path.push('?');
        path.push_str(&pairs.finish());
    }
    let mut headers = target.headers;
    let body = if body.is_empty() {
        Bytes::new()
    } else if button.body_type == "form" {
        let mut form = form_urlencoded::Serializer::new(String::new());
        body.iter().for_each(|(k, v)| {
            form.append_pair(k, &text(v));
        });
        headers.entry(wire_header::CONTENT_TYPE).or_insert(HeaderValue::from_static("application/x-www-form-urlencoded"));
        Bytes::from(form.finish())
    } else {
        headers.entry(wire_header::CONTENT_TYPE).or_insert(HeaderValue::from_static("application/json"));
        Bytes::from(Value::Object(body).to_string())
    };
    Ok(Request { base: target.base, path, method: target.method, headers, body })
}

/// A config value as JSON.
fn to_json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A value as query or form text: strings as they are, the rest as JSON writes it
/// (`true`, `3`), as FrameX-kit's HTTP client writes them.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The URL at dotted `path` in a JSON answer, when it is an `http(s)://` string.
fn open_url(answer: &str, path: &str) -> Option<String> {
    let mut current: Value = serde_json::from_str(answer).ok()?;
    for part in path.split('.') {
        current = current.as_object_mut()?.remove(part)?;
    }
    let url = current.as_str()?;
    (url.starts_with("http://") || url.starts_with("https://")).then(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn button(toml: &str) -> ActionButton {
        let config = crate::config::Config::from_toml_str(&format!("[[docs.action_buttons]]\ntitle = \"b\"\n{toml}"), "test").unwrap();
        config.docs.action_buttons[0].clone()
    }

    /// Inputs go where their target says; config values are written as FrameX-kit's
    /// client writes them; a body goes only when there is one.
    #[test]
    fn requests_merge_inputs() {
        let b = button(
            "url = \"http://127.0.0.1:9/run?x=1\"\nquery = { source = \"docs\", n = 2 }\nbody = { job = \"m\", force = true }\n\
             headers = { Authorization = \"Bearer t\" }\n\
             inputs = [{ name = \"env\", label = \"Env\", target = \"query\" }, { name = \"tag\", label = \"Tag\" }]",
        );
        let inputs: Map<String, Value> = serde_json::from_str(r#"{"env": "prod", "tag": "v1", "other": "ignored"}"#).unwrap();
        let r = build(&b, &inputs).unwrap();
        assert_eq!((r.base.as_str(), r.method.as_str()), ("http://127.0.0.1:9", "POST"));
        let own = button("url = \"http://127.0.0.1:9/run?x=1&y=%20z#frag\"\nmethod = \"GET\"");
        assert_eq!(build(&own, &Map::new()).unwrap().path, "/run?x=1&y=%20z", "the URL's own query, when no other");
        assert_eq!(r.path, "/run?n=2&source=docs&env=prod", "the URL's own query is replaced, as FrameX-kit's client does");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, json!({"job": "m", "force": true, "tag": "v1"}));
        assert_eq!(r.headers["authorization"], "Bearer t");
        assert_eq!(r.headers["content-type"], "application/json");
        let get = button("url = \"http://127.0.0.1:9/s\"\nmethod = \"GET\"\nbody_type = \"form\"");
        let r = build(&get, &Map::new()).unwrap();
        assert!(r.body.is_empty() && r.headers.get("content-type").is_none());
    }

    /// What loads is what can be sent: for URLs and headers of every kind, the config
    /// check passes a button exactly when the send path builds its request.
    #[test]
    fn what_loads_is_what_is_sent() {
        let urls = [
            "http://127.0.0.1:9/x", "http://u:p@127.0.0.1:9/x", "http://@127.0.0.1:9/x", "http://a!b/x", "http://a$b/x",
            "http://127.1/x", "http://0x7f.1/x", "http://1.2.3.999/x", "http://[::1]:9/x", "http://[::1/x", "https://-bad-.example/x",
            "https://Bücher.example/x", "http://h:0/x", "http://h:99999/x", "http://h/%zz", "http://h/a\"b{c}|d^e`f", "http://h/x?a={b}|c`d",
            "ftp://h/x", "http://", "/relative", "http://h/x#frag", "HTTP://h/x", "http://h\\x/y",
        ];
        let headers = [
            ("X-Ok", "v"), ("Content-Type", "text/plain"), ("content-length", "1"), ("Host", "h"), ("Connection", "close"),
            ("Upgrade", "websocket"), ("TE", "trailers"), ("Bad Name", "v"), ("X-Ctl", "a\u{1}b"), ("X-Del", "a\u{7f}"),
            ("X-Utf8", "café"), ("X-Tab", "a\tb"), ("", "v"),
        ];
        let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let ok = "http://127.0.0.1:9/x";
        let mut cases: Vec<(&str, Option<(&str, &str)>)> = urls.iter().map(|u| (*u, None)).collect();
        cases.extend(headers.iter().map(|h| (ok, Some(*h))));
        for (url, header) in cases {
            let mut toml = format!("[[docs.action_buttons]]\ntitle = \"b\"\nurl = {}\n", quoted(url));
            if let Some((name, value)) = header {
                toml.push_str(&format!("headers = {{ {} = {} }}\n", quoted(name), quoted(value)));
            }
            let loads = crate::config::Config::from_toml_str(&toml, "test").is_ok();
            let b = ActionButton {
                url: url.to_owned(),
                headers: header.map(|(n, v)| (n.to_owned(), v.to_owned())).into_iter().collect(),
                ..button("url = \"http://127.0.0.1:9/x\"")
            };
            let sent = build(&b, &Map::new());
            assert_eq!(loads, sent.is_ok(), "{url:?} {header:?}: loads {loads}, sent {:?}", sent.err());
        }
    }

    /// `response_open_url` picks an http(s) URL only.
    #[test]
    fn open_urls() {
        let answer = r#"{"result": {"web_url": "https://ci.example/1", "bad": "javascript:alert(1)"}}"#;
        assert_eq!(open_url(answer, "result.web_url").as_deref(), Some("https://ci.example/1"));
        assert_eq!(open_url(answer, "result.bad"), None);
        assert_eq!(open_url(answer, "result.none"), None);
        assert_eq!(open_url("not json", "a"), None);
    }
}
