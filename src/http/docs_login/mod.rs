//! FrameX-kit's OAuth login in front of the docs (`[auth.oauth]`): `/docs`, `/redoc`
//! and `/api/v1/openapi.json` are served to a browser holding a session cookie, or
//! to a client sending a key of the `[auth]` rule covering the path; anyone else is
//! sent to the provider to log in. The callback checks the `state` against its
//! cookie (and that it was not used before), exchanges the code, reads the user,
//! and sets the session cookie; `POST /auth/logout` ends the session.
//!
//! Off (no `[auth.oauth]`), none of this runs: one branch on an `Option` per request.

mod pages;
mod provider;
mod sessions;
mod tokens;

pub use pages::SIGN_OUT_FORM;

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use cookie::{Cookie, SameSite};
use framex_actors::Escaped;
use url::Url;

use super::{authorize, envelope, Auth};

use crate::builtin_paths::LOGOUT_PATH;
use crate::config::{AuthRules, OauthConfig, ProviderUrls};
use sessions::Sessions;
use tokens::{SessionClaims, Signer, StateClaims};

/// The session cookie (FrameX-kit's name).
pub const SESSION_COOKIE: &str = "framex_token";
/// The cookie holding a login attempt's `state` (FrameX-kit's name).
pub const STATE_COOKIE: &str = "framex_oauth_state";
/// How long a session lasts, in seconds (24 hours, as in FrameX-kit).
const SESSION_SECONDS: i64 = 24 * 3600;
/// How long a login attempt may take, in seconds (10 minutes, as in FrameX-kit).
const STATE_SECONDS: i64 = 600;
/// The longest path and query a login returns to; a longer one returns to `/docs`.
const MAX_RETURN_LENGTH: usize = 2048;
/// The scopes asked for (FrameX-kit's, GitLab's names).
const SCOPE: &str = "read_user read_api";
/// Where a login returns when the path it started from cannot be used.
const DOCS: &str = "/docs";
/// The answer to a callback whose state is missing, forged, expired or used.
const BAD_STATE: &str = "Invalid or expired OAuth state";

/// Whether `path` (canonical) is one the login guards: FrameX-kit's docs paths.
pub fn is_guarded(path: &str) -> bool {
    matches!(path, "/docs" | "/redoc" | "/api/v1/openapi.json")
}

/// The docs login of one configuration.
pub struct DocsLogin {
    config: OauthConfig,
    urls: ProviderUrls,
    call_back_url: String,
    /// `app_url`'s `host[:port]` in lower case, the default port left out.
    app_authority: String,
    /// `app_url` without its trailing `/`.
    app_base: String,
    secure: bool,
    signer: Signer,
    sessions: Arc<Sessions>,
}

impl DocsLogin {
    /// The login of `config`, keeping the sessions of `previous` (a reload ends none).
    ///
    /// # Errors
    /// A value the config check refuses (it runs first, so only for a config built by
    /// hand), naming the key.
    pub fn new(config: &OauthConfig, previous: Option<&DocsLogin>) -> Result<DocsLogin, String> {
        config.check()?;
        let app = Url::parse(&config.app_url).map_err(|e| format!("auth.oauth.app_url: {e}"))?;
        let app_authority = match app.port() {
            Some(port) => format!("{}:{port}", app.host_str().unwrap_or_default()),
            None => app.host_str().unwrap_or_default().to_owned(),
        }
        .to_ascii_lowercase();
        Ok(DocsLogin {
            urls: config.provider_urls()?,
            call_back_url: config.call_back_url(),
            app_authority,
            app_base: config.app_url.trim_end_matches('/').to_owned(),
            secure: config.use_secure_cookie(),
            signer: Signer::new(&config.jwt_secret, &config.jwt_algorithm)?,
            sessions: previous.map_or_else(Arc::default, |p| p.sessions.clone()),
            config: config.clone(),
        })
    }

    /// For a guarded path: `None` when the request may see it (an open session, or
    /// the key of the `[auth]` rule covering the path); else the way to log in.
    pub fn guard(&self, req: &HttpRequest, path: &str, rules: &AuthRules) -> Option<HttpResponse> {
        if self.session(req).is_some() {
            return None;
        }
        if let Auth::Passed(_) = authorize(rules, req.headers(), path) {
            return None;
        }
        if let Some(canonical) = self.canonical_url(req) {
            return Some(found(&canonical));
        }
        let query = req.query_string();
        let back = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
        Some(self.login_redirect(&back))
    }

    /// The login's own endpoints: the callback (`GET redirect_uri`) and the logout
    /// (`GET`, `POST /auth/logout`); `None` for any other request.
    pub fn serve(&self, req: &HttpRequest, path: &str) -> Option<ServeLogin<'_>> {
        let get = req.method() == actix_web::http::Method::GET;
        if path == self.config.redirect_uri && get {
            Some(ServeLogin::Callback(self))
        } else if path == LOGOUT_PATH && (get || req.method() == actix_web::http::Method::POST) {
            Some(ServeLogin::Logout(self, get))
        } else {
            None
        }
    }

    /// The open session whose cookie `req` carries.
    fn session(&self, req: &HttpRequest) -> Option<SessionClaims> {
        self.user(req).map(|(claims, _)| claims)
    }

    /// The open session whose cookie `req` carries, with what the server keeps of it.
    fn user(&self, req: &HttpRequest) -> Option<(SessionClaims, sessions::Open)> {
        let claims: SessionClaims = self.signer.verify(&cookie(req, SESSION_COOKIE)?)?;
        let open = self.sessions.get(&claims.session_id, tokens::now())?;
        Some((claims, open))
    }

    /// The host the users' provider tokens were issued for (that of the user-info
    /// URL): a token is sent to no other host.
    pub fn token_host(&self) -> Option<&str> {
        self.urls.user_info.host_str()
    }

    /// The user logged in on `req` (an open session), if any.
    pub fn session_user(&self, req: &HttpRequest) -> Option<SessionUser> {
        self.user(req).map(|(claims, open)| SessionUser {
            username: claims.username,
            provider: claims.oauth_provider,
            access_token: open.access_token,
        })
    }

    /// The provider's login URL for a browser that is to come back to `back` (if it
    /// is a local path), with a fresh `state`, and the `Set-Cookie` value of the state
    /// cookie that also holds `back` (FrameX-kit's answer to an action button that
    /// needs a login: `X-FrameX-OAuth-Redirect`); `None` when the state cannot be
    /// signed.
    pub fn login_url(&self, back: &str) -> Option<(String, header::HeaderValue)> {
        let state = tokens::random_token();
        let claims = StateClaims {
            state: state.clone(),
            redirect_url: local_path(back).to_owned(),
            exp: tokens::now() + STATE_SECONDS,
        };
        let signed = self.signer.sign(&claims).ok()?;
        let mut to = self.urls.authorization.clone();
        to.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.call_back_url)
            .append_pair("scope", SCOPE)
            .append_pair("state", &state);
        let cookie = self.cookie(STATE_COOKIE, signed).max_age(cookie::time::Duration::seconds(STATE_SECONDS));
        let cookie = header::HeaderValue::from_str(&cookie.build().to_string()).ok()?;
        Some((to.into(), cookie))
    }

    /// `app_url` with the request's path and query, when the request came to another
    /// host: cookies are set on the host the provider sends the browser back to.
    fn canonical_url(&self, req: &HttpRequest) -> Option<String> {
        let info = req.connection_info();
        let host = info.host().to_ascii_lowercase();
        let default_port = if self.secure { ":443" } else { ":80" };
        if host.strip_suffix(default_port).unwrap_or(&host) == self.app_authority {
            return None;
        }
        let query = req.query_string();
        let query = if query.is_empty() { String::new() } else { format!("?{query}") };
        Some(format!("{}{}{query}", self.app_base, req.path()))
    }

    /// The redirect to the provider's login, with a fresh `state` in a cookie that
    /// also holds where to come back to (see [`DocsLogin::login_url`]).
    fn login_redirect(&self, back: &str) -> HttpResponse {
        let Some((to, cookie)) = self.login_url(back) else {
            return envelope::error(StatusCode::INTERNAL_SERVER_ERROR, "the login could not start", None);
        };
        let mut response = found(&to);
        response.headers_mut().append(header::SET_COOKIE, cookie);
        response
    }

    /// The callback: state checked (cookie, match, not used before), code exchanged,
    /// user read, session opened, back to where the login started.
    async fn callback(&self, req: &HttpRequest) -> HttpResponse {
        let mut code = None;
        let mut state = None;
        for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
            match &*name {
                "code" => code = Some(value.into_owned()),
                "state" => state = Some(value.into_owned()),
                _ => {}
            }
        }
        let bad_state = || envelope::error(StatusCode::BAD_REQUEST, BAD_STATE, None);
        let Some(claims) = cookie(req, STATE_COOKIE).and_then(|c| self.signer.verify::<StateClaims>(&c)) else {
            return bad_state();
        };
        let matches = state.as_deref().is_some_and(|s| super::constant_time_eq(s.as_bytes(), claims.state.as_bytes()));
        if !matches {
            return bad_state();
        }
        let Some(code) = code.filter(|c| !c.is_empty()) else {
            return envelope::error(StatusCode::BAD_REQUEST, "Missing OAuth code: the provider did not grant the login", None);
        };
        // Before the state is marked: a flood of (free) signed states can neither fill
        // the used-state memory faster than the provider answers nor spend the client
        // secret on more than a few exchanges at once.
        let Some(_exchange) = Exchanging::start() else {
            let mut busy = envelope::error(StatusCode::SERVICE_UNAVAILABLE, "Too many logins under way: try again", None);
            busy.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return busy;
        };
        if !self.sessions.use_state(&claims.state, claims.exp, tokens::now()) {
            return bad_state();
        }
        let client = provider::Client {
            id: &self.config.client_id,
            secret: &self.config.client_secret,
            redirect_uri: &self.call_back_url,
        };
        let user = match provider::user(&self.urls.token, &self.urls.user_info, &client, &code).await {
            Ok(user) => user,
            Err(e) => {
                log::warn!("docs login failed: {}", Escaped(&e.to_string()));
                return envelope::error(StatusCode::BAD_GATEWAY, "OAuth login failed: the provider did not vouch for a user", None);
            }
        };
        self.open_session(user, local_path(&claims.redirect_url))
    }

    /// Opens a session for `user` and sends the browser to `back`.
    fn open_session(&self, user: provider::User, back: &str) -> HttpResponse {
        let now = tokens::now();
        let username = user.username.unwrap_or_default();
        let claims = SessionClaims {
            message: format!("Welcome {username}"),
            username,
            email: user.email,
            oauth_provider: self.config.provider.clone(),
            session_id: tokens::random_token(),
            iat: now,
            exp: now + SESSION_SECONDS,
        };
        let Ok(signed) = self.signer.sign(&claims) else {
            return envelope::error(StatusCode::INTERNAL_SERVER_ERROR, "the session could not be opened", None);
        };
        self.sessions.open(claims.session_id.clone(), claims.exp, user.access_token.into(), now);
        log::info!("docs login: {} logged in", Escaped(&claims.username));
        let mut response = found(back);
        self.set_cookie(&mut response, self.cookie(SESSION_COOKIE, signed));
        self.set_cookie(&mut response, self.removal(STATE_COOKIE));
        response
    }

    /// `POST /auth/logout`: the session ends, its cookie is cleared, and the browser
    /// sees the signed-out page; `GET` shows that page.
    fn logout(&self, req: &HttpRequest, get: bool) -> HttpResponse {
        if get {
            return pages::signed_out();
        }
        if let Some(claims) = self.session(req) {
            self.sessions.close(&claims.session_id);
        }
        let mut response = HttpResponse::SeeOther()
            .insert_header((header::LOCATION, LOGOUT_PATH))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
        self.set_cookie(&mut response, self.removal(SESSION_COOKIE));
        response
    }

    /// A cookie of the login: whole site, not for scripts, sent on top-level
    /// navigations from elsewhere (the provider's redirect), `Secure` for https.
    fn cookie(&self, name: &'static str, value: String) -> cookie::CookieBuilder<'static> {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
    }

    /// The cookie clearing `name`.
    fn removal(&self, name: &'static str) -> cookie::CookieBuilder<'static> {
        self.cookie(name, String::new())
            .max_age(cookie::time::Duration::ZERO)
            .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
    }

    /// Adds `cookie` to `response` as a `Set-Cookie` header.
    fn set_cookie(&self, response: &mut HttpResponse, cookie: cookie::CookieBuilder<'static>) {
        if let Ok(value) = header::HeaderValue::from_str(&cookie.build().to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// The 401 of a request that needs the docs login, with FrameX-kit's
/// `X-FrameX-OAuth-Redirect` (the provider's login URL, back to `/docs`) and the
/// login's state cookie when the login is on.
pub fn required(login: Option<&DocsLogin>) -> HttpResponse {
    let mut response = envelope::error(StatusCode::UNAUTHORIZED, "OAuth authentication required", None);
    if let Some((url, cookie)) = login.and_then(|login| login.login_url(DOCS)) {
        if let Ok(url) = header::HeaderValue::from_str(&url) {
            response.headers_mut().insert(header::HeaderName::from_static("x-framex-oauth-redirect"), url);
        }
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Who is logged in on a request, as [`DocsLogin::session_user`] says.
pub struct SessionUser {
    /// The provider's username.
    pub username: String,
    /// `[auth.oauth] provider` when the user logged in.
    pub provider: String,
    /// The provider's access token of the user (never shown, never logged).
    pub access_token: Arc<str>,
}

/// One of the login's endpoints, matched by [`DocsLogin::serve`].
pub enum ServeLogin<'a> {
    /// The callback.
    Callback(&'a DocsLogin),
    /// The logout: `true` for its `GET` page.
    Logout(&'a DocsLogin, bool),
}

impl ServeLogin<'_> {
    /// Answers the request.
    pub async fn answer(self, req: &HttpRequest) -> HttpResponse {
        match self {
            ServeLogin::Callback(login) => login.callback(req).await,
            ServeLogin::Logout(login, get) => login.logout(req, get),
        }
    }

    /// The `route` label of its metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ServeLogin::Callback(_) => "(docs login callback)",
            ServeLogin::Logout(..) => LOGOUT_PATH,
        }
    }
}

/// A `302 Found` to `location`, not to be cached.
fn found(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The value of cookie `name` in `req`'s `Cookie` headers.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// `target` when it is a path of this server (`/…`, not `//…` nor `/\…`, no scheme,
/// at most [`MAX_RETURN_LENGTH`] long, no control character); else `/docs`. A login
/// never sends the browser elsewhere.
fn local_path(target: &str) -> &str {
    let local = target.len() <= MAX_RETURN_LENGTH
        && target.starts_with('/')
        && !target.starts_with("//")
        && !target.starts_with("/\\")
        && !target.chars().any(|c| c.is_control() || c.is_whitespace());
    if local {
        target
    } else {
        DOCS
    }
}


/// Provider exchanges (callbacks that call the token endpoint) under way at once, at
/// most, in the process.
const MAX_EXCHANGES: usize = 32;

/// The exchanges under way.
static EXCHANGES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Leave for one provider exchange, given back when dropped.
struct Exchanging;

impl Exchanging {
    /// Leave, unless [`MAX_EXCHANGES`] are under way.
    fn start() -> Option<Exchanging> {
        use std::sync::atomic::Ordering;
        let taken = EXCHANGES.fetch_add(1, Ordering::AcqRel);
        let leave = Exchanging;
        (taken < MAX_EXCHANGES).then_some(leave)
    }
}

impl Drop for Exchanging {
    fn drop(&mut self) {
        EXCHANGES.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At most [`MAX_EXCHANGES`] provider exchanges at once; a place comes back when
    /// one ends.
    #[test]
    fn provider_exchanges_are_bounded() {
        let held: Vec<_> = (0..MAX_EXCHANGES + 3).filter_map(|_| Exchanging::start()).collect();
        assert_eq!(held.len(), MAX_EXCHANGES);
        assert!(Exchanging::start().is_none());
        drop(held);
        assert!(Exchanging::start().is_some());
    }

    /// Only local paths are returned to; anything that a browser could read as
    /// another site goes to `/docs`.
    #[test]
    fn returns_only_to_local_paths() {
        assert_eq!(local_path("/redoc?x=1"), "/redoc?x=1");
        for bad in ["https://evil.example/", "//evil.example/", "/\\evil.example", "docs", "", "/a\r\nb", &format!("/{}", "a".repeat(3000))] {
            assert_eq!(local_path(bad), "/docs", "{bad:?}");
        }
    }
}
