//! The two calls to the OAuth provider after the browser comes back: the code
//! exchanged for an access token at `token_url`, then the user read at
//! `user_info_url`. Each on a connection of its own, within [`CALL_TIMEOUT`], reading
//! at most [`MAX_ANSWER_BYTES`]. Nothing the provider sends, nor the code or the
//! token, is ever logged or echoed.

use std::time::Duration;

use bytes::Bytes;
use framex_actors::upstream::wire::{header, HeaderMap, HeaderValue, Method};
use framex_actors::upstream::{fetch_request, OneRequest, UpstreamUrl};
use serde::Deserialize;
use url::Url;

/// How long each call to the provider may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from the provider.
pub(super) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why the provider did not give us a user. The words never hold what it sent.
#[derive(Debug, thiserror::Error)]
pub(super) enum ProviderError {
    /// The call failed (connection, timeout, answer too large).
    #[error("{step}: {reason}")]
    Call {
        /// `token exchange` or `user info`.
        step: &'static str,
        /// What failed, in words.
        reason: String,
    },
    /// It answered with a status other than 2xx.
    #[error("{step}: the provider answered {status}")]
    Status {
        /// `token exchange` or `user info`.
        step: &'static str,
        /// Its status.
        status: u16,
    },
    /// Its answer lacks what we need (JSON with `access_token`, or with `username`).
    #[error("{step}: the provider's answer has no {field}")]
    Missing {
        /// `token exchange` or `user info`.
        step: &'static str,
        /// The field missing.
        field: &'static str,
    },
}

/// What the client sends to the token endpoint.
pub(super) struct Client<'a> {
    /// `[auth.oauth] client_id`.
    pub id: &'a str,
    /// `[auth.oauth] client_secret`.
    pub secret: &'a str,
    /// The callback URL the code was issued for.
    pub redirect_uri: &'a str,
}

/// The user the provider vouches for.
#[derive(Deserialize)]
pub(super) struct User {
    /// Its username (required, as in FrameX-kit).
    pub username: Option<String>,
    /// Its email, when given.
    pub email: Option<String>,
    /// The access token the code was exchanged for (kept in the session, on the
    /// server, to ask the provider what the user may read).
    #[serde(skip)]
    pub access_token: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("username", &self.username).field("email", &self.email).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
}

/// Exchanges `code` at `token_url`, then reads the user at `user_info_url`.
///
/// # Errors
/// A call that failed, a status other than 2xx, an answer without `access_token` or
/// `username`.
pub(super) async fn user(token_url: &Url, user_info_url: &Url, client: &Client<'_>, code: &str) -> Result<User, ProviderError> {
    const EXCHANGE: &str = "token exchange";
    const USER: &str = "user info";
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client.id)
        .append_pair("client_secret", client.secret)
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", client.redirect_uri)
        .finish();
    let mut headers = json_accepted();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    let answer = call(EXCHANGE, token_url, Method::POST, headers, Bytes::from(form)).await?;
    let token = serde_json::from_slice::<TokenAnswer>(&answer)
        .ok()
        .and_then(|t| t.access_token)
        .filter(|t| !t.is_empty())
        .ok_or(ProviderError::Missing { step: EXCHANGE, field: "access_token" })?;
    let mut headers = json_accepted();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ProviderError::Missing { step: EXCHANGE, field: "usable access_token" })?;
    headers.insert(header::AUTHORIZATION, bearer);
    let answer = call(USER, user_info_url, Method::GET, headers, Bytes::new()).await?;
    let mut user = serde_json::from_slice::<User>(&answer)
        .ok()
        .filter(|u| u.username.as_deref().is_some_and(|n| !n.is_empty()))
        .ok_or(ProviderError::Missing { step: USER, field: "username" })?;
    user.access_token = token;
    Ok(user)
}

/// Headers asking for JSON (GitHub's token endpoint answers a form otherwise).
fn json_accepted() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers
}

/// One call to `url`; its 2xx answer's body.
async fn call(step: &'static str, url: &Url, method: Method, headers: HeaderMap, body: Bytes) -> Result<Bytes, ProviderError> {
    // Checked when the config was loaded (`OauthConfig::provider_urls`).
    let base = UpstreamUrl::parse(&url[..url::Position::BeforePath])
        .map_err(|e| ProviderError::Call { step, reason: format!("'{url}' {e}") })?;
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let one = OneRequest { method, path, headers, body };
    let tls = framex_actors::upstream::tls::default_config();
    let (status, body) = fetch_request(&base, None, one, &tls, CALL_TIMEOUT, MAX_ANSWER_BYTES)
        .await
        .map_err(|reason| ProviderError::Call { step, reason })?;
    if !status.is_success() {
        return Err(ProviderError::Status { step, status: status.as_u16() });
    }
    Ok(body)
}
