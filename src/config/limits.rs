//! `[limits]` (extension): rate and concurrency limits per client key, client address
//! or route, kept in process or fleet-wide in Redis; and `[redis]`, the Redis server
//! the features that share state across instances use.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::rules::{PatternError, RuleSet};

/// Default `[limits] max_keys`: entries per rule in the in-process table.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// `[redis]` (extension): the Redis server shared by `[limits] backend = "redis"`
/// (and other features that keep state for a fleet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` (or `redis+unix://`; `rediss://` is refused: no TLS
    /// in this build). Default: none.
    pub url: Option<String>,
}

/// Where limit state is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LimitBackend {
    /// In this process (each instance has its own limits).
    #[default]
    Local,
    /// In Redis, shared by every instance using the same server.
    Redis,
}

/// What a rule does when its backend (Redis) cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum OnBackendError {
    /// Let the request through.
    #[default]
    Allow,
    /// Refuse it with the rule's status.
    Deny,
}

/// What a rule counts requests by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum LimitPer {
    /// The client's key identity: the index of the `[auth]` key it presented, else a
    /// hash of its `Authorization` header (never the key itself).
    #[default]
    Key,
    /// The client's address (through `server.trusted_proxies`).
    Address,
    /// The route (every client together).
    Route,
}

/// `TryFrom<String>` for a config enum: its values as written, the error naming the
/// key and the values allowed.
macro_rules! named_values {
    ($ty:ty, $key:literal, $($text:literal => $value:expr),+) => {
        impl TryFrom<String> for $ty {
            type Error = String;

            fn try_from(text: String) -> Result<Self, String> {
                match text.as_str() {
                    $($text => Ok($value),)+
                    _ => Err(format!(
                        concat!($key, ": '{}' is not one of ", $("'", $text, "' ",)+),
                        text.escape_debug()
                    )),
                }
            }
        }
    };
}

named_values!(LimitBackend, "limits.backend", "local" => LimitBackend::Local, "redis" => LimitBackend::Redis);
named_values!(OnBackendError, "on_backend_error", "allow" => OnBackendError::Allow, "deny" => OnBackendError::Deny);
named_values!(LimitPer, "limits.rules: per", "key" => LimitPer::Key, "address" => LimitPer::Address, "route" => LimitPer::Route);

/// One `[limits.rules]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRule {
    /// Requests per second (GCRA); fractions allowed (`0.5` is one every 2 s).
    pub rate: Option<f64>,
    /// Requests that may come at once before `rate` paces them. Default: `rate`
    /// rounded up (at least 1).
    pub burst: Option<u32>,
    /// Requests (streams, WebSocket tunnels) open at once.
    pub concurrent: Option<u32>,
    /// What requests are counted by. Default: `key`.
    #[serde(default)]
    pub per: LimitPer,
    /// The status of a refusal: 429 (default) or 503.
    pub status: Option<u16>,
    /// Overrides `[limits] on_backend_error` for this rule.
    pub on_backend_error: Option<OnBackendError>,
}

impl LimitRule {
    /// The burst in force (see [`LimitRule::burst`]).
    pub fn burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| self.rate.map_or(1, |r| r.ceil().clamp(1.0, f64::from(u32::MAX)) as u32))
    }
}

/// The rules, parsed at load (patterns as `[auth]` writes them).
#[derive(Clone, Default, Deserialize)]
#[serde(try_from = "BTreeMap<String, LimitRule>")]
pub struct LimitRules(pub RuleSet<LimitRule>);

impl TryFrom<BTreeMap<String, LimitRule>> for LimitRules {
    type Error = String;

    fn try_from(map: BTreeMap<String, LimitRule>) -> Result<Self, String> {
        RuleSet::new(map)
            .map(LimitRules)
            .map_err(|e: PatternError| format!("limits.rules: {e}"))
    }
}

impl PartialEq for LimitRules {
    fn eq(&self, other: &Self) -> bool {
        self.0.iter().eq(other.0.iter())
    }
}

impl fmt::Debug for LimitRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// `[limits]` (extension).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// `local` (default) or `redis`.
    pub backend: LimitBackend,
    /// The Redis server for `backend = "redis"` when `[redis] url` is not set.
    pub redis_url: Option<String>,
    /// When Redis cannot answer: `allow` (default) or `deny`.
    pub on_backend_error: OnBackendError,
    /// Entries per rule in the in-process table (oldest idle evicted). Default 100000.
    pub max_keys: usize,
    /// Path pattern → rule.
    pub rules: LimitRules,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            backend: LimitBackend::Local,
            redis_url: None,
            on_backend_error: OnBackendError::Allow,
            max_keys: DEFAULT_MAX_KEYS,
            rules: LimitRules::default(),
        }
    }
}

/// Checks what the types cannot: every rule limits something, with sane values; a
/// Redis backend has a URL. Errors name the key.
pub fn validate(limits: &LimitsConfig, redis: &RedisConfig) -> Result<(), String> {
    for (pattern, rule) in limits.rules.0.iter() {
        let key = format!("limits.rules.\"{pattern}\"");
        if rule.rate.is_none() && rule.concurrent.is_none() {
            return Err(format!("{key}: a rule sets 'rate' or 'concurrent' (or both)"));
        }
        if let Some(rate) = rule.rate {
            if !(rate.is_finite() && (0.001..=1_000_000.0).contains(&rate)) {
                return Err(format!("{key}.rate: {rate} is not between 0.001 and 1000000 per second"));
            }
        }
        if rule.burst == Some(0) || rule.burst.is_some_and(|b| b > 1_000_000) {
            return Err(format!("{key}.burst: between 1 and 1000000"));
        }
        if rule.burst.is_some() && rule.rate.is_none() {
            return Err(format!("{key}.burst: only with 'rate'"));
        }
        if rule.concurrent == Some(0) {
            return Err(format!("{key}.concurrent: at least 1"));
        }
        if rule.status.is_some_and(|s| s != 429 && s != 503) {
            return Err(format!("{key}.status: 429 or 503"));
        }
    }
    if !(16..=100_000_000).contains(&limits.max_keys) {
        return Err(format!("limits.max_keys: {} is not between 16 and 100000000", limits.max_keys));
    }
    for (key, url) in [("redis.url", &redis.url), ("limits.redis_url", &limits.redis_url)] {
        if let Some(url) = url {
            redis_url_ok(url).map_err(|e| format!("{key}: {e}"))?;
        }
    }
    if limits.backend == LimitBackend::Redis && !limits.rules.0.is_empty() && redis_url(limits, redis).is_none() {
        return Err("limits.backend = \"redis\" needs [redis] url (or limits.redis_url)".to_owned());
    }
    Ok(())
}

/// The Redis URL `[limits]` uses: `limits.redis_url`, else `[redis] url`.
pub fn redis_url<'a>(limits: &'a LimitsConfig, redis: &'a RedisConfig) -> Option<&'a str> {
    limits.redis_url.as_deref().or(redis.url.as_deref())
}

/// Whether `url` is a Redis URL the client accepts (its text is not echoed: it may
/// hold a password).
fn redis_url_ok(url: &str) -> Result<(), String> {
    if url.starts_with("rediss://") {
        // The client is built without TLS: refused here rather than failing on every
        // request (or, worse, being taken for plain text).
        return Err("rediss:// (Redis over TLS) is not supported by this build; use redis:// on a trusted network or a TLS tunnel (stunnel, a sidecar)".to_owned());
    }
    if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
        return Err("a redis:// or redis+unix:// URL".to_owned());
    }
    redis::Client::open(url).map(|_| ()).map_err(|_| "not a valid Redis URL".to_owned())
}

#[cfg(test)]
mod tests {
    use crate::config::test_parse as parse;

    /// The issue's shape loads; burst defaults to the rate.
    #[test]
    fn the_documented_shape_loads() {
        let c = parse(
            r#"
[limits]
backend = "redis"
redis_url = "redis://127.0.0.1:6379"
on_backend_error = "deny"
[limits.rules]
"/api/v1/items/*" = { rate = 10, burst = 10, per = "key" }
"/api/v1/chat"    = { concurrent = 4, per = "route" }
"/api/v1/x/{id}"  = { rate = 2.5, per = "address", status = 503 }
"#,
        )
        .unwrap();
        let rule = c.limits.rules.0.lookup("/api/v1/x/7").unwrap();
        assert_eq!((rule.burst(), rule.status), (3, Some(503)));
        assert_eq!(super::redis_url(&c.limits, &c.redis), Some("redis://127.0.0.1:6379"));
        let c = parse("[redis]\nurl = \"redis://h:1\"\n[limits]\nbackend = \"redis\"\n[limits.rules]\n\"*\" = { rate = 1 }").unwrap();
        assert_eq!(super::redis_url(&c.limits, &c.redis), Some("redis://h:1"));
    }

    /// Rules that cannot work are refused naming the key; a password in a Redis URL
    /// is never echoed.
    #[test]
    fn rules_that_cannot_work_are_refused_naming_the_key() {
        for (bad, key) in [
            ("[limits.rules]\n\"/a\" = { per = \"key\" }", "limits.rules.\"/a\""),
            ("[limits.rules]\n\"/a\" = { rate = 0 }", "limits.rules.\"/a\".rate"),
            ("[limits.rules]\n\"/a\" = { rate = nan }", "limits.rules.\"/a\".rate"),
            ("[limits.rules]\n\"/a\" = { rate = 1, burst = 0 }", "limits.rules.\"/a\".burst"),
            ("[limits.rules]\n\"/a\" = { concurrent = 0 }", "limits.rules.\"/a\".concurrent"),
            ("[limits.rules]\n\"/a\" = { concurrent = 1, status = 500 }", "limits.rules.\"/a\".status"),
            ("[limits.rules]\n\"/a\" = { concurrent = 1, per = \"user\" }", "per"),
            ("[limits.rules]\n\"/a\" = { concurrent = 1, rat = 1 }", "rat"),
            ("[limits.rules]\n\"a*\" = { concurrent = 1 }", "limits.rules"),
            ("[limits]\nmax_keys = 1\n[limits.rules]\n\"/a\" = { concurrent = 1 }", "limits.max_keys"),
            ("[limits]\nbackend = \"redis\"\n[limits.rules]\n\"/a\" = { concurrent = 1 }", "[redis] url"),
            ("[limits]\nbackend = \"memcached\"", "backend"),
            ("[redis]\nurl = \"http://u:hunter2@h\"", "redis.url"),
            ("[limits]\nredis_url = \"redis://u:hunter2@h:notaport\"", "limits.redis_url"),
            ("[redis]\nurl = \"rediss://u:hunter2@h:6380\"", "not supported by this build"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(key), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
    }
}
