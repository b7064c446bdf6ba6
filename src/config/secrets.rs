//! Every secret value a config holds, so that what leaves the server (logs sent to
//! Sentry, a plugin's config shown in the docs) can be scrubbed of them whatever
//! key or message they sit in.

use super::Config;

/// The shortest value scrubbed: shorter ones (`"1"`, `"on"`) would blot out
/// ordinary words, and are no secret anyway.
pub const MIN_SECRET_LEN: usize = 4;

impl Config {
    /// The secret values of this config: `[auth]` and `[plugins.proxy]` keys (and
    /// each upstream URL's), the OAuth client secret and JWT secret, the Sentry DSN
    /// and its public key, repository tokens, action-button passwords and header
    /// values, and Redis URLs (they may hold a password). Longest first (so that a
    /// scrub replaces a secret before any shorter one inside it), without
    /// duplicates, none shorter than [`MIN_SECRET_LEN`].
    pub fn secret_values(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let proxy = &self.plugins.proxy;
        let upstreams = proxy.upstreams();
        for rule in [&self.auth.rules, &proxy.auth.rules].into_iter().chain(upstreams.iter().map(|u| &u.auth)) {
            out.extend(rule.entries().flat_map(|(_, keys)| keys.iter().cloned()));
        }
        if let Some(oauth) = &self.auth.oauth {
            out.extend([oauth.client_secret.clone(), oauth.jwt_secret.clone()]);
        }
        let dsn = self.sentry.dsn.trim();
        if !dsn.is_empty() {
            out.push(dsn.to_owned());
            if let Ok(parsed) = dsn.parse::<sentry::types::Dsn>() {
                out.push(parsed.public_key().to_owned());
            }
        }
        let repo = &self.repository.auth;
        out.push(repo.github.token.clone());
        out.push(repo.gitlab.token.clone());
        out.extend(repo.gitlab.endpoints.iter().map(|e| e.token.clone()));
        for button in &self.docs.action_buttons {
            if let super::ButtonAuth::Password { password } = &button.auth {
                out.push(password.clone());
            }
            out.extend(button.headers.values().cloned());
        }
        out.extend([&self.redis.url, &self.cache.redis_url, &self.limits.redis_url].into_iter().flatten().cloned());
        out.retain(|s| s.len() >= MIN_SECRET_LEN);
        longest_first(&mut out);
        out
    }
}

/// Orders `secrets` as [`scrub`] needs them: longest first (a secret that contains
/// another is replaced whole, not left with the shorter one's tail), no repeats.
pub fn longest_first(secrets: &mut Vec<String>) {
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
}

/// `text` with every one of `secrets` (longest first, see
/// [`Config::secret_values`]) replaced by `[redacted]`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys from every table are found; a scrub leaves none of them.
    #[test]
    fn every_secret_is_found_and_scrubbed() {
        let c = Config::from_toml_str(
            r#"
[auth]
rules = { "/api/*" = ["auth-key-1"] }
[auth.oauth]
client_id = "id"
client_secret = "oauth-client-secret"
redirect_uri = "/cb"
base_url = "http://127.0.0.1:9"
app_url = "http://127.0.0.1:8"
jwt_secret = "jwt secret of at least thirty-two bytes"
[sentry]
dsn = "http://sentrypublickey@127.0.0.1:9/1"
[repository.auth.github]
token = "gh-token"
[[docs.action_buttons]]
title = "Go"
url = "http://127.0.0.1:9/go"
headers = { Authorization = "button-header-secret" }
auth = { type = "password", password = "button-password" }
[plugins.proxy.proxy_urls."http://127.0.0.1:7"]
auth = { "/*" = ["upstream-key"] }
"#,
            "test",
        )
        .unwrap();
        let secrets = c.secret_values();
        let all = ["auth-key-1", "oauth-client-secret", "jwt secret of at least thirty-two bytes", "sentrypublickey", "gh-token", "button-header-secret", "button-password", "upstream-key"];
        let text = all.join(" and ");
        let scrubbed = scrub(&text, &secrets);
        for secret in all {
            assert!(!scrubbed.contains(secret), "{secret} left in {scrubbed}");
        }
        assert!(scrubbed.contains("[redacted] and [redacted]"), "{scrubbed}");
        assert!(!secrets.iter().any(|s| s == "id"), "too short to be scrubbed");
    }
}
