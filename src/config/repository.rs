//! FrameX-kit's `[repository]`: the server-side tokens the docs use to ask GitHub or
//! GitLab about a plugin's repository (its latest release, for the update mark on its
//! card). Tokens are never printed (see the `Debug` impls).

use std::fmt;

use serde::Deserialize;

/// GitHub's API, unless `GITHUB_API_URL` names another.
pub const GITHUB_API: &str = "https://api.github.com";

/// `[repository]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepositoryConfig {
    /// `[repository.auth]`.
    pub auth: RepositoryAuth,
    /// The GitHub API base from the `GITHUB_API_URL` environment variable (GitHub
    /// Actions', GitHub Enterprise's `https://<host>/api/v3`), checked and without a
    /// trailing `/`; `None`: [`GITHUB_API`].
    #[serde(skip)]
    pub github_api: Option<String>,
}

impl RepositoryConfig {
    /// The GitHub API base: `GITHUB_API_URL`'s, or [`GITHUB_API`].
    pub fn github_api(&self) -> &str {
        self.github_api.as_deref().unwrap_or(GITHUB_API)
    }

    /// The `host[:port]` of `GITHUB_API_URL` when it names another host than
    /// `api.github.com` (a GitHub Enterprise): its repositories are GitHub's too.
    pub fn github_enterprise_host(&self) -> Option<String> {
        let url = url::Url::parse(self.github_api.as_deref()?).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        (host != "api.github.com").then(|| match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    }
}

/// `GITHUB_API_URL` checked: an http(s) URL with a host and no credentials, query or
/// fragment; `http://` only to a loopback host (the GitHub token goes to it, and in
/// clear text it would cross the network). The value is never echoed (it could hold a
/// credential).
pub(super) fn github_api(value: &str) -> Result<String, String> {
    let refused = || "GITHUB_API_URL must be an http(s) URL such as https://api.github.com (a host, no user, password, query or fragment)".to_owned();
    let url = url::Url::parse(value.trim()).map_err(|_| refused())?;
    let plain = url.username().is_empty() && url.password().is_none() && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !plain {
        return Err(refused());
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err("GITHUB_API_URL must be https:// (http:// only to a loopback host): the GitHub token is sent to it".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Whether `url`'s host is this machine: `localhost`, 127.0.0.0/8 or `::1`.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `[repository.auth]`: one token per provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepositoryAuth {
    /// `[repository.auth.github]`: sent to `api.github.com`.
    pub github: ProviderToken,
    /// `[repository.auth.gitlab]`: sent to the GitLab host of the repository.
    pub gitlab: GitLabAuth,
}

/// A provider's token and how it is sent.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderToken {
    /// The token. Default: none (requests go without).
    pub token: String,
    /// The header carrying it. Default: `Authorization`.
    pub token_header: String,
    /// The word before it (`Bearer`); empty sends the token alone. Default: `Bearer`.
    pub token_scheme: String,
}

impl Default for ProviderToken {
    fn default() -> Self {
        ProviderToken {
            token: String::new(),
            token_header: "Authorization".to_owned(),
            token_scheme: "Bearer".to_owned(),
        }
    }
}

impl fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderToken")
            .field("token", &if self.token.is_empty() { "" } else { "(set)" })
            .field("token_header", &self.token_header)
            .field("token_scheme", &self.token_scheme)
            .finish()
    }
}

impl ProviderToken {
    /// The header to send (`None` without a token).
    pub fn header(&self) -> Option<(&str, String)> {
        if self.token.is_empty() {
            return None;
        }
        let value = if self.token_scheme.is_empty() {
            self.token.clone()
        } else {
            format!("{} {}", self.token_scheme, self.token)
        };
        Some((self.token_header.as_str(), value))
    }
}

/// `[repository.auth.gitlab]`: a default token, and tokens per host and path prefix.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitLabAuth {
    /// The default token. Default: none.
    pub token: String,
    /// The header carrying it. Default: `PRIVATE-TOKEN`.
    pub token_header: String,
    /// The word before it; empty sends the token alone. Default: empty.
    pub token_scheme: String,
    /// `[[repository.auth.gitlab.endpoints]]`: tokens for one host (and path prefix);
    /// the longest matching prefix wins. Their hosts are GitLab hosts too.
    pub endpoints: Vec<GitLabEndpoint>,
}

impl Default for GitLabAuth {
    fn default() -> Self {
        GitLabAuth {
            token: String::new(),
            token_header: gitlab_header(),
            token_scheme: String::new(),
            endpoints: Vec::new(),
        }
    }
}

impl fmt::Debug for GitLabAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitLabAuth")
            .field("token", &if self.token.is_empty() { "" } else { "(set)" })
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

fn gitlab_header() -> String {
    "PRIVATE-TOKEN".to_owned()
}

/// One `[[repository.auth.gitlab.endpoints]]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitLabEndpoint {
    /// The GitLab host (`gitlab.example.com`, with `:port` if not the default).
    pub host: String,
    /// Only repositories under this path (`/team-a`). Default: all of the host.
    #[serde(default)]
    pub path_prefix: String,
    /// The token. Default: none.
    #[serde(default)]
    pub token: String,
    /// The header carrying it. Default: `PRIVATE-TOKEN`.
    #[serde(default = "gitlab_header")]
    pub token_header: String,
    /// The word before it. Default: empty.
    #[serde(default)]
    pub token_scheme: String,
}

impl fmt::Debug for GitLabEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitLabEndpoint")
            .field("host", &self.host)
            .field("path_prefix", &self.path_prefix)
            .field("token", &if self.token.is_empty() { "" } else { "(set)" })
            .finish_non_exhaustive()
    }
}

impl GitLabEndpoint {
    /// `path_prefix` with a leading `/` (empty for none).
    fn prefix(&self) -> String {
        match self.path_prefix.as_str() {
            "" => String::new(),
            p if p.starts_with('/') => p.to_owned(),
            p => format!("/{p}"),
        }
    }

    fn matches(&self, host: &str, path: &str) -> bool {
        let prefix = self.prefix();
        self.host.eq_ignore_ascii_case(host)
            && (prefix.is_empty() || path == prefix || path.starts_with(&format!("{prefix}/")))
    }
}

impl GitLabAuth {
    /// Whether `host` is named by an endpoint (a self-hosted GitLab).
    pub fn knows_host(&self, host: &str) -> bool {
        self.endpoints.iter().any(|e| e.host.eq_ignore_ascii_case(host))
    }

    /// The token for a repository at `host` and `path`: the endpoint with the longest
    /// matching prefix, else the default.
    pub fn token_for(&self, host: &str, path: &str) -> ProviderToken {
        let (token, token_header, token_scheme) = self
            .endpoints
            .iter()
            .filter(|e| e.matches(host, path))
            .max_by_key(|e| e.prefix().len())
            .map_or((&self.token, &self.token_header, &self.token_scheme), |e| (&e.token, &e.token_header, &e.token_scheme));
        ProviderToken { token: token.clone(), token_header: token_header.clone(), token_scheme: token_scheme.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_parse as parse;

    /// FrameX-kit's keys and defaults; the longest endpoint prefix wins; tokens are
    /// never printed; unknown keys are refused.
    #[test]
    fn tokens_per_provider_host_and_prefix() {
        let c = parse(
            r#"
[repository.auth.github]
token = "gh-secret"
[repository.auth.gitlab]
token = "gl-default"
[[repository.auth.gitlab.endpoints]]
host = "git.example.org"
token = "gl-host"
[[repository.auth.gitlab.endpoints]]
host = "git.example.org"
path_prefix = "team-a"
token = "gl-team"
token_header = "Authorization"
token_scheme = "Bearer"
"#,
        )
        .unwrap();
        let r = &c.repository.auth;
        assert_eq!(r.github.header(), Some(("Authorization", "Bearer gh-secret".to_owned())));
        let gl = &r.gitlab;
        assert_eq!(gl.token_for("gitlab.com", "/a/b").header(), Some(("PRIVATE-TOKEN", "gl-default".to_owned())));
        assert_eq!(gl.token_for("GIT.example.org", "/b/c").header(), Some(("PRIVATE-TOKEN", "gl-host".to_owned())));
        assert_eq!(gl.token_for("git.example.org", "/team-a/c").header(), Some(("Authorization", "Bearer gl-team".to_owned())));
        assert_eq!(gl.token_for("git.example.org", "/team-ab/c").header().unwrap().1, "gl-host");
        assert!(gl.knows_host("git.example.org") && !gl.knows_host("example.org"));
        let shown = format!("{c:?}");
        for secret in ["gh-secret", "gl-default", "gl-host", "gl-team"] {
            assert!(!shown.contains(secret), "{secret} printed");
        }
        assert_eq!(ProviderToken::default().header(), None);
        let err = parse("[repository.auth.github]\ntokn = \"x\"").unwrap_err();
        assert!(err.contains("tokn"), "{err}");
    }

    /// `GITHUB_API_URL` (from the environment, or a `.env` file) becomes the GitHub API
    /// base, its host a GitHub host; a value that is not a plain http(s) URL is
    /// refused without being echoed; unset or empty, `api.github.com`.
    #[test]
    fn github_api_url_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "").unwrap();
        let load_at = |value: &str| {
            let env = [("GITHUB_API_URL".to_owned(), value.to_owned())];
            crate::config::Config::load_with_env(Some(&path), env).map(|c| c.repository)
        };
        let ghe = load_at("https://GHE.example.com/api/v3/").unwrap();
        assert_eq!(ghe.github_api(), "https://ghe.example.com/api/v3");
        assert_eq!(ghe.github_enterprise_host().as_deref(), Some("ghe.example.com"));
        let actions = load_at("https://api.github.com").unwrap();
        assert_eq!((actions.github_api(), actions.github_enterprise_host()), ("https://api.github.com", None));
        assert_eq!(load_at("").unwrap().github_api(), GITHUB_API);
        assert_eq!(load_at("http://127.0.0.1:8080").unwrap().github_enterprise_host().as_deref(), Some("127.0.0.1:8080"));
        assert!(load_at("http://localhost:9").is_ok());
        for clear in ["http://ghe.example.com/api/v3", "http://10.0.0.1", "http://[::2]:80"] {
            let err = load_at(clear).unwrap_err().to_string();
            assert!(err.contains("GITHUB_API_URL must be https://"), "{clear}: {err}");
        }
        for bad in ["ftp://ghe.example.com", "https://user:pw-secret@ghe.example.com", "https://ghe.example.com/?q=pw-secret", "not a url pw-secret", "https://ghe.example.com/#pw-secret"] {
            let err = load_at(bad).unwrap_err().to_string();
            assert!(err.contains("GITHUB_API_URL must be an http(s) URL") && !err.contains("pw-secret"), "{bad}: {err}");
        }
        std::fs::write(dir.path().join(".env"), "GITHUB_API_URL=https://ghe.example.org/api/v3\n").unwrap();
        let from_file = crate::config::Config::load_with_env(Some(&path), std::iter::empty()).unwrap();
        assert_eq!(from_file.repository.github_api(), "https://ghe.example.org/api/v3");
    }
}
