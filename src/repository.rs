//! What the docs ask a plugin's repository (FrameX-kit's `repository` package): its
//! latest release (the update mark on a plugin card), whether it is public, and
//! whether a logged-in user's OAuth token can read it (the plugin-config view).
//!
//! A repository is on GitHub (`github.com`, or the host of a GitHub Enterprise named
//! by `GITHUB_API_URL`: asked at `api.github.com`, or at `GITHUB_API_URL` when set) or
//! on GitLab (`gitlab.com`, `*.gitlab.com`, or a host named in `[[repository.auth.
//! gitlab.endpoints]]`: asked at that host's `/api/v4`); any other URL has no provider
//! and every question about it answers `None`. Each call goes on a connection of its own
//! within [`CALL_TIMEOUT`], reading at most [`MAX_ANSWER_BYTES`], following no
//! redirect. Tokens (`[repository.auth]`'s and the user's) are sent to that
//! provider's host only, and never logged.

use std::time::Duration;

use bytes::Bytes;
use framex_actors::upstream::wire::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use framex_actors::upstream::{fetch_request, OneRequest};
use url::Url;

use crate::config::{ProviderToken, RepositoryConfig};

/// How long one call to a provider may take (FrameX-kit's 15 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read from a provider.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
/// How deep GitLab nests groups and subgroups.
const MAX_GITLAB_DEPTH: usize = 20;
/// GitLab's path words that end a project's path in a URL (`/group/p/-/tree/main`).
const GITLAB_MARKERS: [&str; 8] = ["-", "tree", "blob", "raw", "commits", "branches", "tags", "merge_requests"];

/// Who hosts a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub.
    GitHub,
    /// GitLab (gitlab.com or self-hosted).
    GitLab,
}

impl Provider {
    /// FrameX-kit's name (what `auth.oauth.provider` must say for a user's token to
    /// be tried).
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
        }
    }
}

/// A repository URL with a provider.
#[derive(Debug, Clone)]
pub struct Repo {
    provider: Provider,
    /// `scheme://host[:port]`.
    origin: String,
    /// `host[:port]`, lower case.
    host: String,
    /// The host name alone, lower case (what a provider token is issued for).
    host_name: String,
    /// The GitHub API base asked (`GITHUB_API_URL`'s or `api.github.com`).
    github_api: String,
    /// The URL's path.
    path: String,
    /// The path's segments, `.git` cut from the last.
    parts: Vec<String>,
}

/// A repository's latest release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Its tag (or name).
    pub version: String,
    /// When it was published, as the provider says.
    pub released_at: Option<String>,
}

impl Repo {
    /// The repository at `url`, when GitHub or GitLab hosts it.
    pub fn parse(url: &str, config: &RepositoryConfig) -> Option<Repo> {
        let parsed = Url::parse(url).ok()?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return None;
        }
        let host = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str()?),
            None => parsed.host_str()?.to_owned(),
        }
        .to_ascii_lowercase();
        let enterprise = || config.github_enterprise_host().is_some_and(|h| h == host);
        let provider = if matches!(host.as_str(), "github.com" | "www.github.com") || enterprise() {
            Provider::GitHub
        } else if host == "gitlab.com" || host.ends_with(".gitlab.com") || config.auth.gitlab.knows_host(&host) {
            Provider::GitLab
        } else {
            return None;
        };
        let mut parts: Vec<String> = parsed.path_segments()?.filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if let Some(last) = parts.last_mut() {
            if let Some(cut) = last.strip_suffix(".git") {
                *last = cut.to_owned();
            }
        }
        // Tokens go over TLS: `http` is kept only for a GitLab the config names (its
        // `endpoints` say where that GitLab is, and how it is reached).
        let scheme = match parsed.scheme() {
            "http" if provider == Provider::GitLab && config.auth.gitlab.knows_host(&host) => "http",
            _ => "https",
        };
        Some(Repo {
            provider,
            origin: format!("{scheme}://{host}"),
            host_name: parsed.host_str()?.to_ascii_lowercase(),
            github_api: config.github_api().to_owned(),
            host,
            path: parsed.path().to_owned(),
            parts,
        })
    }

    /// Its provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// GitHub's `owner/repo`.
    fn github_name(&self) -> Option<String> {
        (self.parts.len() >= 2).then(|| format!("{}/{}", self.parts[0], self.parts[1]))
    }

    /// The GitLab project paths the URL may name, longest first (a project sits in
    /// groups and subgroups; a marker such as `-` ends it).
    fn gitlab_candidates(&self) -> Vec<String> {
        let end = self.parts.iter().position(|p| GITLAB_MARKERS.contains(&p.as_str())).unwrap_or(self.parts.len());
        // GitLab nests groups 20 deep: a longer path names no project, and each
        // candidate is a request to the provider.
        let end = end.min(MAX_GITLAB_DEPTH + 1);
        (2..=end).rev().map(|n| self.parts[..n].join("/")).collect()
    }

    /// The latest release, asked with `[repository.auth]`'s token: `Ok(None)` when
    /// there is none (the provider answered 404, or a release without a tag).
    ///
    /// # Errors
    /// [`LookupError`] when the provider could not say: unreachable, or an answer
    /// other than 200 and 404 (a rate limit's 403 or 429, a 5xx…).
    pub async fn latest_release(&self, config: &RepositoryConfig) -> Result<Option<Release>, LookupError> {
        let answer = match self.provider {
            Provider::GitHub => {
                let Some(name) = self.github_name() else { return Ok(None) };
                let url = format!("{}/repos/{name}/releases/latest", self.github_api);
                self.answer(&url, &config.auth.github).await?
            }
            Provider::GitLab => {
                let token = config.auth.gitlab.token_for(&self.host, &self.path);
                let Some(project) = self.gitlab_project(&token, false).await else { return Ok(None) };
                self.answer(&format!("{}/releases/permalink/latest", self.gitlab_api(&project)), &token).await?
            }
        };
        let Some(answer) = answer else { return Ok(None) };
        let text = |field: &str| answer.get(field).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let Some(version) = text("tag_name").or_else(|| text("name")) else { return Ok(None) };
        let released_at = text(if self.provider == Provider::GitHub { "published_at" } else { "released_at" });
        Ok(Some(Release { version, released_at }))
    }

    /// `GET url` with `token`'s header: its JSON object on a 200, `None` on a 404 (or
    /// a 200 that is not a JSON object).
    async fn answer(&self, url: &str, token: &ProviderToken) -> Result<Option<serde_json::Map<String, serde_json::Value>>, LookupError> {
        let provider = self.provider;
        match get(url, token).await {
            None => Err(LookupError::Unreachable { provider }),
            Some((StatusCode::OK, body)) => Ok(serde_json::from_slice(&body).ok()),
            Some((StatusCode::NOT_FOUND, _)) => Ok(None),
            Some((status, _)) => Err(LookupError::Status { provider, status: status.as_u16() }),
        }
    }

    /// Whether anyone may read it (without a token); `None` when that cannot be told.
    pub async fn is_public(&self) -> Option<bool> {
        let url = match self.provider {
            Provider::GitHub => format!("{}/repos/{}", self.github_api, self.github_name()?),
            Provider::GitLab => format!("{}{}", self.origin, self.path),
        };
        Some(ok(&url, &ProviderToken { token: String::new(), ..ProviderToken::default() }).await)
    }

    /// Whether the user whose OAuth provider is `user_provider` and whose token is
    /// `access_token` (issued for `token_host`) may read it: `None` when the providers
    /// differ, or when a GitLab repository is on another host name than the one the
    /// token is for (the token is not sent), `Some(false)` without a token.
    pub async fn user_can_read(&self, user_provider: &str, token_host: Option<&str>, access_token: &str) -> Option<bool> {
        if user_provider != self.provider.name() {
            return None;
        }
        // The host name, whatever the port (a GitLab serves its API and OAuth alike).
        let same_host = token_host.is_some_and(|host| host.eq_ignore_ascii_case(&self.host_name));
        if self.provider == Provider::GitLab && !same_host {
            return None;
        }
        if access_token.is_empty() {
            return Some(false);
        }
        let token = ProviderToken { token: access_token.to_owned(), ..ProviderToken::default() };
        Some(match self.provider {
            Provider::GitHub => match self.github_name() {
                Some(name) => ok(&format!("{}/repos/{name}", self.github_api), &token).await,
                None => false,
            },
            Provider::GitLab => self.gitlab_project(&token, true).await.is_some(),
        })
    }

    /// The GitLab project the URL names: the only candidate when `probe` is off and
    /// there is one, else the longest candidate the API knows.
    async fn gitlab_project(&self, token: &ProviderToken, probe: bool) -> Option<String> {
        let candidates = self.gitlab_candidates();
        if !probe && candidates.len() == 1 {
            return candidates.into_iter().next();
        }
        for candidate in candidates {
            if ok(&self.gitlab_api(&candidate), token).await {
                return Some(candidate);
            }
        }
        None
    }

    /// `…/api/v4/projects/<group%2Fproject>`.
    fn gitlab_api(&self, project: &str) -> String {
        let id: String = form_urlencoded::byte_serialize(project.as_bytes()).collect();
        format!("{}/api/v4/projects/{id}", self.origin)
    }
}

/// Whether `latest` is a newer release than `current`: their first `N.N…` numbers
/// compared part by part (missing parts are 0); `false` when either has none.
pub fn is_newer(current: &str, latest: &str) -> bool {
    match (version_numbers(current), version_numbers(latest)) {
        (Some(mut c), Some(mut l)) => {
            let n = c.len().max(l.len());
            c.resize(n, 0);
            l.resize(n, 0);
            l > c
        }
        _ => false,
    }
}

/// The first `digits(.digits)*` run of `text`, as numbers.
fn version_numbers(text: &str) -> Option<Vec<u64>> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let mut numbers = Vec::new();
    for part in text[start..].split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            break;
        }
        numbers.push(digits.parse().unwrap_or(u64::MAX));
        if digits.len() != part.len() {
            break;
        }
    }
    Some(numbers)
}

/// Why a provider could not say what its latest release is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// It could not be reached, or did not answer in time (the cause is logged at
    /// debug level).
    #[error("{} could not be reached", .provider.name())]
    Unreachable {
        /// Which.
        provider: Provider,
    },
    /// It answered neither 200 nor 404.
    #[error("{} answered {status}{}", .provider.name(), hint(*.status))]
    Status {
        /// Which.
        provider: Provider,
        /// Its status.
        status: u16,
    },
}

/// What a provider's status most likely means.
fn hint(status: u16) -> &'static str {
    match status {
        403 | 429 => " (rate limited or refused: check [repository.auth]'s token)",
        401 => " (the token was refused)",
        500..=599 => " (the provider failed)",
        _ => "",
    }
}

/// Whether `GET url` with `token`'s header answers 200.
async fn ok(url: &str, token: &ProviderToken) -> bool {
    get(url, token).await.is_some_and(|(status, _)| status == StatusCode::OK)
}

/// `GET url` with `token`'s header (none without a token); `None` when the call
/// fails (logged at debug, without the URL's query or any token).
async fn get(url: &str, token: &ProviderToken) -> Option<(StatusCode, Bytes)> {
    let parsed = Url::parse(url).ok()?;
    let base = &parsed[..url::Position::BeforePath];
    let upstream = framex_actors::upstream::UpstreamUrl::parse(base).ok()?;
    let path = &parsed[url::Position::BeforePath..url::Position::AfterQuery];
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static("framex-docs"));
    if let Some((name, value)) = token.header() {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            headers.insert(name, value);
        }
    }
    let one = OneRequest { method: Method::GET, path, headers, body: Bytes::new() };
    let tls = framex_actors::upstream::tls::default_config();
    match fetch_request(&upstream, None, one, &tls, CALL_TIMEOUT, MAX_ANSWER_BYTES).await {
        Ok(answer) => Some(answer),
        Err(reason) => {
            log::debug!("repository: {} failed: {}", framex_actors::Escaped(base), framex_actors::Escaped(&reason));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> RepositoryConfig {
        crate::config::Config::from_toml_str(toml, "test").unwrap().repository
    }

    /// A user's GitLab token goes only to the host it was issued for: asked about a
    /// repository elsewhere, the answer is "cannot tell" before anything is sent.
    #[actix_rt::test]
    async fn a_gitlab_token_stays_with_its_host() {
        let repo = Repo::parse("https://gitlab.com/grp/project", &config("")).expect("a GitLab repository");
        assert_eq!(repo.user_can_read("gitlab", Some("git.corp.example"), "user-token").await, None);
        assert_eq!(repo.user_can_read("gitlab", None, "user-token").await, None);
        assert_eq!(repo.user_can_read("github", Some("gitlab.com"), "user-token").await, None, "another provider");
    }

    /// Providers by host (GitLab's own hosts and the configured ones); others have none.
    #[test]
    fn providers_by_host() {
        let none = config("");
        let gl = config("[[repository.auth.gitlab.endpoints]]\nhost = \"git.example.org:8443\"");
        assert_eq!(Repo::parse("https://github.com/o/r.git", &none).unwrap().provider(), Provider::GitHub);
        assert_eq!(Repo::parse("https://gitlab.com/g/p", &none).unwrap().provider(), Provider::GitLab);
        assert_eq!(Repo::parse("https://team.gitlab.com/g/p", &none).unwrap().provider(), Provider::GitLab);
        assert!(Repo::parse("https://git.example.org:8443/g/p", &none).is_none());
        assert_eq!(Repo::parse("https://git.example.org:8443/g/p", &gl).unwrap().provider(), Provider::GitLab);
        assert!(Repo::parse("https://example.org/o/r", &none).is_none());
        assert!(Repo::parse("ftp://github.com/o/r", &none).is_none());
        assert_eq!(Repo::parse("https://github.com/o/r.git", &none).unwrap().github_name().unwrap(), "o/r");
        let ghe = RepositoryConfig { github_api: Some("https://ghe.example.com/api/v3".to_owned()), ..none.clone() };
        assert_eq!(Repo::parse("https://ghe.example.com/o/r", &ghe).unwrap().provider(), Provider::GitHub, "GITHUB_API_URL's host");
        assert!(Repo::parse("https://ghe.example.com/o/r", &none).is_none());
    }

    /// GitLab project paths: longest first, cut at a marker, at least two parts.
    #[test]
    fn gitlab_candidates() {
        let none = config("");
        let repo = Repo::parse("https://gitlab.com/a/b/c/-/tree/main", &none).unwrap();
        assert_eq!(repo.gitlab_candidates(), ["a/b/c", "a/b"]);
        assert!(Repo::parse("https://gitlab.com/a", &none).unwrap().gitlab_candidates().is_empty());
        let deep = format!("https://gitlab.com/{}", vec!["g"; 100].join("/"));
        assert_eq!(Repo::parse(&deep, &none).unwrap().gitlab_candidates().len(), 20, "no more requests than GitLab has levels");
        // A token never goes in clear to gitlab.com; `http` only for a GitLab the config names.
        let plain = Repo::parse("http://gitlab.com/g/p", &none).unwrap();
        assert_eq!(plain.gitlab_api("g/p"), "https://gitlab.com/api/v4/projects/g%2Fp");
        let gl = config("[[repository.auth.gitlab.endpoints]]\nhost = \"git.example.org:8080\"");
        assert!(Repo::parse("http://git.example.org:8080/g/p", &gl).unwrap().gitlab_api("g/p").starts_with("http://"));
        assert_eq!(repo.gitlab_api("a/b"), "https://gitlab.com/api/v4/projects/a%2Fb");
    }

    /// Versions compare by their numbers, as FrameX-kit compares them.
    #[test]
    fn newer_versions() {
        assert!(is_newer("v0.1.0", "v0.2"));
        assert!(is_newer("1.9", "1.10.0"));
        assert!(!is_newer("v1.0", "1.0.0"));
        assert!(!is_newer("2.0", "v1.99"));
        assert!(!is_newer("dev", "v1.0"));
        assert!(!is_newer("1.0", "latest"));
        assert!(is_newer("release-1.2.3-rc1", "1.2.4"));
    }
}
