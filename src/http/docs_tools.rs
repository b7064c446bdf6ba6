//! The docs' own endpoints, at FrameX-kit's paths and with its answers:
//! - `POST /docs/action-buttons/{i}/invoke`: runs action button `i`'s request from
//!   the server (its URL, headers, query and body from the config, the user's
//!   `inputs` merged in) and answers `{ok, status_code, body[, open_url]}`;
//! - `POST /docs/action-buttons/{i}/open` (`{open_url}`) and `GET …/open` (a redirect):
//!   a `LINK` button's URL, given only after the button's auth;
//! - `GET /docs/plugin-config?plugin=<name>`: the plugin's config, secrets hidden, to
//!   a user logged in with `[auth.oauth]` who may read the plugin's repository (see
//!   [`crate::config_view`]);
//! - `GET /docs/plugin-release?plugin=<name>`: whether the plugin's repository has a
//!   newer release (see [`crate::repository`]).
//!
//! All of them answer only whoever may see `/docs` (an open session, or passing the
//! `[auth]` rule covering `/docs`); FrameX-kit runs action buttons for anyone. The
//! `POST`s take `Content-Type: application/json` only, so another site cannot send
//! one from a form; the body is at most [`MAX_BODY`] bytes. A button's target,
//! headers, body and password never reach the browser.

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::limit::Presented;
use super::{authorize, docs_actions, docs_login, envelope, Auth, Worker};
use crate::config::AuthRules;
use crate::repository::{self, Repo};

/// The largest request body read.
pub(super) const MAX_BODY: usize = 64 * 1024;
/// The path the tools are gated by.
const DOCS: &str = "/docs";

/// One of the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tool {
    /// `POST …/{i}/invoke` (`None`: not a button number).
    Invoke(Option<usize>),
    /// `POST …/{i}/open`.
    Open(Option<usize>),
    /// `GET …/{i}/open`.
    OpenWindow(Option<usize>),
    /// `GET /docs/plugin-config`.
    PluginConfig,
    /// `GET /docs/plugin-release`.
    PluginRelease,
}

impl Tool {
    /// The endpoint `method path` (canonical) is, if any.
    pub fn route(method: &Method, path: &str) -> Option<Tool> {
        // `HEAD` as `GET`, as every built-in page (its answer goes without the body).
        let get = method == Method::GET || method == Method::HEAD;
        match path {
            "/docs/plugin-config" if get => return Some(Tool::PluginConfig),
            "/docs/plugin-release" if get => return Some(Tool::PluginRelease),
            _ => {}
        }
        let rest = path.strip_prefix("/docs/action-buttons/")?;
        let (index, action) = rest.split_once('/')?;
        // One spelling per button (`1`, not `01` or `+1`): `[limits]` count per path.
        let canonical = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && (index == "0" || !index.starts_with('0'));
        let index = canonical.then(|| index.parse().ok()).flatten();
        match (action, method) {
            ("invoke", &Method::POST) => Some(Tool::Invoke(index)),
            ("open", &Method::POST) => Some(Tool::Open(index)),
            ("open", &Method::GET) => Some(Tool::OpenWindow(index)),
            _ => None,
        }
    }

    /// The `route` label of its metrics.
    pub fn label(self) -> &'static str {
        match self {
            Tool::Invoke(_) => "/docs/action-buttons/{index}/invoke",
            Tool::Open(_) | Tool::OpenWindow(_) => "/docs/action-buttons/{index}/open",
            Tool::PluginConfig => "/docs/plugin-config",
            Tool::PluginRelease => "/docs/plugin-release",
        }
    }

    /// Whether the request may use the tool (see `gate`): who it proved to be, or
    /// `Err` with the answer when it may not. Asked before `[limits]`, as `[auth]` is
    /// for any other path.
    ///
    /// # Errors
    /// The 401 (or the way to log in) of a request that may not.
    pub fn admit<'a>(self, req: &HttpRequest, path: &'a str, worker: &Worker<'_>) -> Result<Admitted<'a>, Box<HttpResponse>> {
        let get = matches!(self, Tool::OpenWindow(_) | Tool::PluginConfig | Tool::PluginRelease);
        // A form another site posts is refused before the gate, whose 401 would start a
        // login (a new state cookie) and spoil one the browser has under way.
        if !get && !is_json(req) {
            return Err(Box::new(not_json()));
        }
        gate(worker, req, path, get)
    }

    /// Answers a request [`Tool::admit`] let through.
    pub async fn answer(self, req: &HttpRequest, payload: web::Payload, worker: &Worker<'_>) -> HttpResponse {
        match self {
            Tool::PluginConfig => plugin_config(worker, req).await,
            Tool::PluginRelease => plugin_release(worker, req).await,
            Tool::OpenWindow(index) => docs_actions::open_window(worker, req, index),
            Tool::Invoke(index) | Tool::Open(index) => {
                let body = match json_body(worker, req, payload).await {
                    Ok(body) => body,
                    Err(refused) => return refused,
                };
                if matches!(self, Tool::Invoke(_)) {
                    docs_actions::invoke(worker, req, index, &body).await
                } else {
                    docs_actions::open(worker, req, index, &body)
                }
            }
        }
    }
}

/// Who passed the tools' gate, as `[limits]` count their requests (`per = "key"`):
/// the docs login's user of a session the server opened, else the `[auth]` key
/// presented (by index), else nobody in particular. Never the raw `Authorization`
/// value or cookie of one of them: a client cannot pick whom it is counted as.
#[derive(Debug, Default)]
pub(super) struct Admitted<'a> {
    /// `[auth.oauth] provider` and the username of the session's user.
    user: Option<(String, String)>,
    /// The path whose `[auth]` rule the key passed, and the key's index in it.
    key: Option<(&'a str, usize)>,
}

impl Admitted<'_> {
    /// What `[limits]` count the request as.
    pub fn presented(&self) -> Presented<'_> {
        Presented {
            key: self.key,
            user: self.user.as_ref().map(|(provider, name)| (provider.as_str(), name.as_str())),
        }
    }
}

/// Whoever may see `/docs` passes: an open session or the key of the `[auth]` rule
/// covering `/docs` (with `[auth.oauth]`), or that rule alone (without). An `[auth]`
/// rule covering the tool's own path (`/docs/*`, say) must pass too, unless a session
/// is open. Else a `GET` goes to log in (with `[auth.oauth]`) and a `POST` gets a 401
/// saying where.
fn gate<'a>(worker: &Worker<'_>, req: &HttpRequest, path: &'a str, get: bool) -> Result<Admitted<'a>, Box<HttpResponse>> {
    let shared = &worker.shared;
    let own = authorize(&shared.auth, req.headers(), path);
    let docs = authorize(&shared.auth, req.headers(), DOCS);
    let key = match (&docs, &own) {
        (Auth::Passed(index), _) => Some((DOCS, *index)),
        (_, Auth::Passed(index)) => Some((path, *index)),
        _ => None,
    };
    let Some(login) = &shared.docs_login else {
        return match (own, docs) {
            (Auth::Refused(refused), _) | (_, Auth::Refused(refused)) => Err(refused),
            _ => Ok(Admitted { user: None, key }),
        };
    };
    if let Some(user) = login.session_user(req) {
        return Ok(Admitted { user: Some((user.provider, user.username)), key: None });
    }
    if !matches!(own, Auth::Refused(_)) && matches!(docs, Auth::Passed(_)) {
        return Ok(Admitted { user: None, key });
    }
    if get {
        return Err(Box::new(login.guard(req, path, &AuthRules::default()).unwrap_or_else(|| {
            envelope::error(StatusCode::UNAUTHORIZED, "OAuth authentication required", None)
        })));
    }
    Err(Box::new(docs_login::required(Some(login))))
}

/// Whether the request says its body is JSON (`Content-Type: application/json`).
fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The 415 of a `POST` whose body is not JSON.
fn not_json() -> HttpResponse {
    envelope::error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json", None)
}

/// The JSON object a `POST` sends (`{}` for an empty body): 415 without
/// `Content-Type: application/json`, 413 past [`MAX_BODY`], 422 when not an object.
async fn json_body(worker: &Worker<'_>, req: &HttpRequest, payload: web::Payload) -> Result<Map<String, Value>, HttpResponse> {
    if !is_json(req) {
        return Err(not_json());
    }
    let bytes = match super::body::read_limited(payload, MAX_BODY, &worker.shared.body_deadlines).await {
        Ok(bytes) => bytes,
        Err(e) => return Err(envelope::error(super::error::status_of(&e), &e.to_string(), None)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        _ => Err(envelope::error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid payload: a JSON object is expected", None)),
    }
}

/// The `plugin` query parameter.
fn plugin_param(req: &HttpRequest) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes()).find(|(k, _)| k == "plugin").map(|(_, v)| v.into_owned())
}

/// `GET /docs/plugin-config?plugin=<name>`.
async fn plugin_config(worker: &Worker<'_>, req: &HttpRequest) -> HttpResponse {
    let shared = &worker.shared;
    let Some(login) = &shared.docs_login else {
        return envelope::error(StatusCode::FORBIDDEN, "Plugin config documentation requires auth", None);
    };
    let Some(name) = plugin_param(req) else {
        return envelope::error(StatusCode::UNPROCESSABLE_ENTITY, "Missing query parameter: plugin", None);
    };
    let denied = || envelope::error(StatusCode::FORBIDDEN, &format!("Repository access denied: {name}"), None);
    let tools = shared.docs.tools.clone();
    let (Some(user), Some((_, url))) = (login.session_user(req), shared.docs.plugin(&name)) else {
        return denied();
    };
    let Some(repo) = Repo::parse(url, &tools.repository) else {
        return denied();
    };
    if tools.is_public(url, &repo).await != Some(true) && repo.user_can_read(&user.provider, login.token_host(), &user.access_token).await != Some(true) {
        return denied();
    }
    let Some(table) = tools.tables.get(&name).cloned() else {
        return envelope::error(StatusCode::NOT_FOUND, &format!("Plugin config not found: {name}"), None);
    };
    // Files are read off the worker's thread.
    let html = web::block(move || {
        let (workspace, whitelist) = match &tools.workspace {
            Some(dir) => (dir.as_path(), tools.whitelist.as_slice()),
            None => (std::path::Path::new("/"), &[][..]),
        };
        let cx = crate::config_view::ViewContext { workspace, whitelist, secrets: &tools.secrets };
        crate::config_view::render(&table, &cx)
    })
    .await;
    match html {
        Ok(html) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(html),
        Err(_) => envelope::error(StatusCode::INTERNAL_SERVER_ERROR, "the config view could not be rendered", None),
    }
}

/// `GET /docs/plugin-release?plugin=<name>`.
async fn plugin_release(worker: &Worker<'_>, req: &HttpRequest) -> HttpResponse {
    let shared = &worker.shared;
    let name = plugin_param(req).unwrap_or_default();
    let not_found = || envelope::error(StatusCode::NOT_FOUND, &format!("Plugin not found: {name}"), None);
    let Some((version, url)) = shared.docs.plugin(&name).filter(|(v, u)| !v.is_empty() && !u.is_empty()) else {
        return not_found();
    };
    let current = if version.starts_with('v') { version.to_owned() } else { format!("v{version}") };
    let (latest, error) = match shared.docs.tools.release(url).await {
        Ok(latest) => (latest, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let has_update = latest.as_ref().is_some_and(|l| repository::is_newer(&current, &l.version));
    let mut answer = json!({
        "has_update": has_update,
        "current_version": current,
        "latest_version": latest.as_ref().map(|l| &l.version),
        "released_at": latest.as_ref().and_then(|l| l.released_at.as_ref()),
        "repo_url": url,
    });
    // FrameX-kit's five fields; when the provider could not say (FrameX-kit answers
    // as if there were no release), framex-rs adds why.
    if let Some(error) = error {
        answer["error"] = json!(error);
    }
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FrameX-kit's paths and methods, and nothing else.
    #[test]
    fn routes() {
        assert_eq!(Tool::route(&Method::POST, "/docs/action-buttons/2/invoke"), Some(Tool::Invoke(Some(2))));
        assert_eq!(Tool::route(&Method::POST, "/docs/action-buttons/x/invoke"), Some(Tool::Invoke(None)));
        for other_spelling in ["01", "+1", "001", ""] {
            let path = format!("/docs/action-buttons/{other_spelling}/invoke");
            assert_eq!(Tool::route(&Method::POST, &path), Some(Tool::Invoke(None)), "{path}: not button 1");
        }
        assert_eq!(Tool::route(&Method::POST, "/docs/action-buttons/10/invoke"), Some(Tool::Invoke(Some(10))));
        assert_eq!(Tool::route(&Method::GET, "/docs/action-buttons/0/open"), Some(Tool::OpenWindow(Some(0))));
        assert_eq!(Tool::route(&Method::POST, "/docs/action-buttons/0/open"), Some(Tool::Open(Some(0))));
        assert_eq!(Tool::route(&Method::GET, "/docs/plugin-config"), Some(Tool::PluginConfig));
        assert_eq!(Tool::route(&Method::GET, "/docs/plugin-release"), Some(Tool::PluginRelease));
        for (method, path) in [(Method::GET, "/docs/action-buttons/0/invoke"), (Method::POST, "/docs/plugin-config"), (Method::POST, "/docs/action-buttons/0/open/x"), (Method::GET, "/docs")] {
            assert_eq!(Tool::route(&method, path), None, "{method} {path}");
        }
    }
}
