//! `[cache]`: FrameX-kit's request cache (`enabled`, `mode`, `ttl`, `max_size`,
//! `file_dir`), with framex-rs's extensions (`mode = "redis"`, `redis_url`,
//! `max_bytes`, `max_entry_bytes`), and `[plugins.proxy.cache]` rules for proxied
//! routes.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where cached answers are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// In this process, bounded by `max_size` entries and `max_bytes`.
    #[default]
    Memory,
    /// One file per entry under `file_dir`, bounded the same way.
    File,
    /// *Extension.* A Redis server shared by a fleet (`redis_url`).
    Redis,
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Whether routes that ask for caching get it. Default: `false`.
    pub enabled: bool,
    /// `memory`, `file` or `redis`. Default: `memory`.
    pub mode: CacheMode,
    /// Seconds an entry lives, or `-1` for ever (until evicted). Default: 60.
    pub ttl: i64,
    /// Most entries kept (memory and file modes). Default: 1000.
    pub max_size: usize,
    /// Directory of file mode. Default: `.framex/cache`.
    pub file_dir: String,
    /// *Extension.* Most bytes kept (memory and file modes). Default: 64 MiB.
    pub max_bytes: u64,
    /// *Extension.* Largest request body hashed and largest answer stored, in bytes;
    /// larger ones are served uncached. Default: 1 MiB.
    pub max_entry_bytes: usize,
    /// *Extension.* `redis://host:port/db` of `mode = "redis"`.
    pub redis_url: Option<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            mode: CacheMode::Memory,
            ttl: 60,
            max_size: 1000,
            file_dir: ".framex/cache".to_owned(),
            max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            redis_url: None,
        }
    }
}

/// One `[plugins.proxy.cache]` rule: `"/api/v1/things/*" = { ttl = 30 }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyCacheRule {
    /// Seconds (or `-1`); absent: `[cache] ttl`.
    pub ttl: Option<i64>,
}

/// `[plugins.proxy.cache]`: path pattern → rule.
pub type ProxyCacheRules = BTreeMap<String, ProxyCacheRule>;

/// Checks `[cache]` and `[plugins.proxy.cache]`, naming the key at fault.
///
/// # Errors
/// A TTL that is neither -1 nor positive, a zero bound, a missing or unusable
/// `redis_url`, an empty `file_dir`, a bad rule pattern.
pub fn check(cache: &CacheConfig, rules: &ProxyCacheRules) -> Result<(), String> {
    check_ttl("cache.ttl", cache.ttl)?;
    if cache.max_size == 0 {
        return Err("cache.max_size must be greater than 0".to_owned());
    }
    if cache.max_bytes == 0 || cache.max_entry_bytes == 0 {
        return Err("cache.max_bytes and cache.max_entry_bytes must be greater than 0".to_owned());
    }
    if cache.mode == CacheMode::File && (cache.file_dir.trim().is_empty() || cache.file_dir.chars().any(char::is_control)) {
        return Err("cache.file_dir must be a directory path (no control characters)".to_owned());
    }
    match (&cache.redis_url, cache.mode) {
        (None, CacheMode::Redis) => return Err("cache.redis_url is required with cache.mode = \"redis\"".to_owned()),
        (Some(url), _) => {
            if !url.starts_with("redis://") || redis::Client::open(url.as_str()).is_err() {
                return Err("cache.redis_url must be a redis://host:port/db URL".to_owned());
            }
        }
        (None, _) => {}
    }
    for (pattern, rule) in rules {
        if let Some(ttl) = rule.ttl {
            check_ttl(&format!("plugins.proxy.cache.\"{}\".ttl", pattern.escape_default()), ttl)?;
        }
    }
    super::RuleSet::new(rules.iter().map(|(k, v)| (k.clone(), v.clone())))
        .map_err(|e| format!("plugins.proxy.cache: {e}"))?;
    Ok(())
}

/// FrameX-kit's rule: `-1` (for ever) or a positive number of seconds.
pub fn check_ttl(key: &str, ttl: i64) -> Result<(), String> {
    if ttl == -1 || ttl > 0 {
        Ok(())
    } else {
        Err(format!("{key} must be -1 or a positive integer"))
    }
}
