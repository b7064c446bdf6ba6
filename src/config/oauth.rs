//! `[auth.oauth]`: FrameX-kit's OAuth login in front of the docs, with its keys and
//! defaults (GitLab-style URLs derived from `base_url`), checked when the config is
//! loaded.

use std::fmt;

use serde::Deserialize;
use framex_actors::upstream::UpstreamUrl;
use url::Url;

/// The shortest `jwt_secret`, in UTF-8 bytes (FrameX-kit's rule, and HS256's key size).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The signing algorithms `jwt_algorithm` accepts: HMACs keyed by `jwt_secret`
/// (FrameX-kit passes the name to PyJWT with that secret, so no other one can work).
pub const JWT_ALGORITHMS: [&str; 3] = ["HS256", "HS384", "HS512"];

/// `[auth.oauth]`. Secrets are never printed (see the `Debug` impl).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OauthConfig {
    /// The provider's name, carried in the session (`oauth_provider`). Default: empty.
    #[serde(default, deserialize_with = "text")]
    pub provider: String,
    /// The application's id at the provider. Required.
    #[serde(default, deserialize_with = "text")]
    pub client_id: String,
    /// The application's secret at the provider, sent to `token_url` only.
    #[serde(default, deserialize_with = "text")]
    pub client_secret: String,
    /// Where the browser is sent to log in. Default: `{base_url}/oauth/authorize`.
    #[serde(default)]
    pub authorization_url: String,
    /// The callback's path on this server (`/oauth/callback`, say); the provider is
    /// told `{app_url}{redirect_uri}`. Required.
    #[serde(default)]
    pub redirect_uri: String,
    /// The provider's address, from which the three URLs default (GitLab's paths).
    #[serde(default)]
    pub base_url: String,
    /// Where the code is exchanged for a token. Default: `{base_url}/oauth/token`.
    #[serde(default)]
    pub token_url: String,
    /// Where the user is read with that token. Default: `{base_url}/api/v4/user`.
    #[serde(default)]
    pub user_info_url: String,
    /// This server's address as browsers reach it (`https://api.example.com`).
    /// Required. Cookies are `Secure` when it is `https`.
    #[serde(default)]
    pub app_url: String,
    /// The key signing the session and state cookies: at least 32 UTF-8 bytes.
    #[serde(deserialize_with = "text")]
    pub jwt_secret: String,
    /// `HS256`, `HS384` or `HS512`. Default: `HS256`.
    #[serde(default = "default_algorithm")]
    pub jwt_algorithm: String,
}

/// A string, or a number or boolean taken as its text: an environment override
/// (`AUTH__OAUTH__CLIENT_ID=12345`) reads as TOML, where digits are a number.
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Text::deserialize(deserializer)? {
        Text::String(s) => s,
        Text::Integer(i) => i.to_string(),
        Text::Float(f) => f.to_string(),
        Text::Bool(b) => b.to_string(),
    })
}

fn default_algorithm() -> String {
    JWT_ALGORITHMS[0].to_owned()
}

impl fmt::Debug for OauthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OauthConfig")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<hidden>")
            .field("authorization_url", &self.authorization_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("user_info_url", &self.user_info_url)
            .field("app_url", &self.app_url)
            .field("jwt_secret", &"<hidden>")
            .field("jwt_algorithm", &self.jwt_algorithm)
            .finish()
    }
}

/// The provider's three URLs, parsed (defaults from `base_url` applied).
#[derive(Debug, Clone)]
pub struct ProviderUrls {
    /// Where the browser logs in.
    pub authorization: Url,
    /// Where the code is exchanged.
    pub token: Url,
    /// Where the user is read.
    pub user_info: Url,
}

impl OauthConfig {
    /// `key` as set, else `{base_url}{default_path}` (FrameX-kit's defaults).
    fn or_base(&self, value: &str, default_path: &str) -> String {
        if value.is_empty() {
            format!("{}{default_path}", self.base_url)
        } else {
            value.to_owned()
        }
    }

    /// The provider's URLs, each set or derived from `base_url`.
    ///
    /// # Errors
    /// One that is not an absolute `http(s)` URL without credentials or fragment; the
    /// message names the key.
    pub fn provider_urls(&self) -> Result<ProviderUrls, String> {
        let url = |key: &str, value: &str, default_path: &str| {
            let derived = value.is_empty();
            absolute_url(key, &self.or_base(value, default_path)).map_err(|e| {
                if derived {
                    format!("{e} (derived from auth.oauth.base_url; set base_url or {key})")
                } else {
                    e
                }
            })
        };
        Ok(ProviderUrls {
            authorization: url("auth.oauth.authorization_url", &self.authorization_url, "/oauth/authorize")?,
            token: server_called("auth.oauth.token_url", url("auth.oauth.token_url", &self.token_url, "/oauth/token")?)?,
            user_info: server_called("auth.oauth.user_info_url", url("auth.oauth.user_info_url", &self.user_info_url, "/api/v4/user")?)?,
        })
    }

    /// The address the provider sends the browser back to: `{app_url}{redirect_uri}`.
    pub fn call_back_url(&self) -> String {
        format!("{}{}", self.app_url, self.redirect_uri)
    }

    /// Whether cookies carry `Secure`: `app_url` is `https`.
    pub fn use_secure_cookie(&self) -> bool {
        self.app_url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    /// Everything a login needs, checked: the secret's length, the algorithm, the
    /// URLs, the callback path.
    ///
    /// # Errors
    /// The first problem, naming its key (never showing a secret).
    pub fn check(&self) -> Result<(), String> {
        if self.jwt_secret.trim().is_empty() || self.jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(format!(
                "auth.oauth.jwt_secret must contain at least {MIN_JWT_SECRET_BYTES} UTF-8 bytes (it has {})",
                self.jwt_secret.len()
            ));
        }
        if !JWT_ALGORITHMS.contains(&self.jwt_algorithm.as_str()) {
            return Err(format!(
                "auth.oauth.jwt_algorithm must be one of {}, not '{}'",
                JWT_ALGORITHMS.join(", "),
                self.jwt_algorithm.escape_default()
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err("auth.oauth.client_id is required (the application's id at the provider)".to_owned());
        }
        let app = absolute_url("auth.oauth.app_url", &self.app_url)?;
        if app.query().is_some() {
            return Err("auth.oauth.app_url must not hold a query".to_owned());
        }
        let path = &self.redirect_uri;
        if !path.starts_with('/') || path.starts_with("//") || path.contains(['?', '#']) || path.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "auth.oauth.redirect_uri must be the callback's path on this server, starting with one '/' \
                 (no query, no spaces), not '{}'",
                path.escape_default()
            ));
        }
        if crate::builtin_paths::is_builtin("GET", path) || path == crate::builtin_paths::LOGOUT_PATH {
            return Err(format!("auth.oauth.redirect_uri '{path}' is a path framex-rs answers itself"));
        }
        absolute_url("auth.oauth.call_back_url", &self.call_back_url())?;
        self.provider_urls().map(|_| ())
    }
}

/// A URL this server calls itself (the token and user endpoints): its origin must
/// be one the upstream client connects to (see [`UpstreamUrl`]).
fn server_called(key: &str, url: Url) -> Result<Url, String> {
    match UpstreamUrl::parse(&url[..url::Position::BeforePath]) {
        Ok(_) => Ok(url),
        Err(e) => Err(format!("{key}: '{url}' {e}")),
    }
}

/// `raw` parsed as an absolute `http://` or `https://` URL with a host, no
/// credentials and no fragment.
fn absolute_url(key: &str, raw: &str) -> Result<Url, String> {
    let shown = raw.escape_default();
    let bad = |why: &str| format!("{key}: '{shown}' {why}");
    if raw.is_empty() {
        return Err(format!("{key} is required (an http:// or https:// URL)"));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("holds whitespace or a control character"));
    }
    let url = Url::parse(raw).map_err(|e| bad(&format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not hold credentials"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not hold a fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid config, with the line `extra` replacing the default of its key.
    fn parsed(extra: &str) -> Result<OauthConfig, String> {
        let key = extra.split('=').next().unwrap_or("").trim();
        let text: String = [
            "client_id = \"id\"",
            "redirect_uri = \"/oauth/callback\"",
            "app_url = \"https://api.example\"",
            "base_url = \"https://git.example\"",
            "jwt_secret = \"0123456789abcdef0123456789abcdef\"",
        ]
        .into_iter()
        .filter(|line| key.is_empty() || !line.starts_with(&format!("{key} ")))
        .chain([extra])
        .map(|line| format!("{line}\n"))
        .collect();
        let config: OauthConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.check().map(|()| config)
    }

    /// FrameX-kit's defaults: GitLab's paths under `base_url`, HS256, the callback at
    /// `{app_url}{redirect_uri}`, secure cookies for an https `app_url`.
    #[test]
    fn defaults_follow_framex_kit() {
        let config = parsed("").unwrap();
        let urls = config.provider_urls().unwrap();
        assert_eq!(urls.authorization.as_str(), "https://git.example/oauth/authorize");
        assert_eq!(urls.token.as_str(), "https://git.example/oauth/token");
        assert_eq!(urls.user_info.as_str(), "https://git.example/api/v4/user");
        assert_eq!(config.jwt_algorithm, "HS256");
        assert_eq!(config.call_back_url(), "https://api.example/oauth/callback");
        assert!(config.use_secure_cookie());
        let plain = parsed("").map(|c| OauthConfig { app_url: "http://127.0.0.1:8080".into(), ..c }).unwrap();
        assert!(!plain.use_secure_cookie());
        let set = parsed("token_url = \"https://sso.example/token\"").unwrap();
        assert_eq!(set.provider_urls().unwrap().token.as_str(), "https://sso.example/token");
    }

    /// Each value that cannot work is refused, naming its key; secrets are not shown.
    #[test]
    fn refusals_name_the_key() {
        let refused = |extra: &str, want: &str| {
            let err = parsed(extra).unwrap_err();
            assert!(err.contains(want), "{extra}: {err}");
            assert!(!err.contains("0123456789abcdef"), "the secret leaked: {err}");
        };
        refused("jwt_algorithm = \"none\"", "auth.oauth.jwt_algorithm");
        refused("jwt_algorithm = \"RS256\"", "auth.oauth.jwt_algorithm");
        refused("app_url = \"api.example\"", "auth.oauth.app_url");
        refused("app_url = \"https://user:pw@api.example\"", "credentials");
        refused("redirect_uri = \"oauth/callback\"", "auth.oauth.redirect_uri");
        refused("redirect_uri = \"//evil.example/cb\"", "auth.oauth.redirect_uri");
        refused("redirect_uri = \"/docs\"", "answers itself");
        refused("client_id = \"\"", "auth.oauth.client_id");
        refused("token_url = \"ftp://git.example/token\"", "auth.oauth.token_url");
        refused("base_url = \"\"", "derived from auth.oauth.base_url");
        refused("surprise = 1", "unknown field");
        let short = toml::from_str::<OauthConfig>("jwt_secret = \"short-secret\"").unwrap().check().unwrap_err();
        assert!(short.contains("auth.oauth.jwt_secret") && short.contains("32") && !short.contains("short-secret"), "{short}");
        let missing = toml::from_str::<OauthConfig>("client_id = \"x\"").unwrap_err().to_string();
        assert!(missing.contains("jwt_secret"), "{missing}");
    }

    /// Secrets and ids may come from the environment, digits included.
    #[test]
    fn environment_overrides_fill_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[auth.oauth]\nbase_url = \"https://git.example\"\nredirect_uri = \"/cb\"\napp_url = \"https://a.example\"\n").unwrap();
        let env = [
            ("AUTH__OAUTH__CLIENT_ID", "12345"),
            ("AUTH__OAUTH__JWT_SECRET", "12345678901234567890123456789012345"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = crate::config::Config::load_with_env(Some(&file), env).unwrap();
        let oauth = config.auth.oauth.unwrap();
        assert_eq!(oauth.client_id, "12345");
        assert_eq!(oauth.jwt_secret.len(), 35);
    }

    /// `Debug` never shows the secrets.
    #[test]
    fn debug_hides_secrets() {
        let config = parsed("client_secret = \"provider-secret\"").unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("provider-secret") && !shown.contains("0123456789abcdef"), "{shown}");
    }
}
