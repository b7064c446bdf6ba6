//! FrameX-kit's request cache: keys, the `X-FrameX-Cache` request header, the
//! `X-FrameX-Cache-Status` / `X-FrameX-Cache-Key` answers, and the stores (memory,
//! file, Redis). Built once per config; `None` in [`crate::http::Shared`] when off.
//!
//! A store that fails is bypassed: the request is served uncached, a log line (at
//! most one every 10 seconds) and `framex_cache_failures_total` say so.

mod entry;
mod file;
pub mod key;
mod memory;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::{CacheConfig, CacheMode, ProxyCacheRule, RuleSet};
pub use entry::Entry;

/// The request header choosing what the cache does (`use`, `bypass`, `refresh`).
pub const REQUEST_HEADER: &str = "x-framex-cache";
/// The answer header saying what the cache did.
pub const STATUS_HEADER: &str = "x-framex-cache-status";
/// The answer header naming the entry (a SHA-256 hex digest).
pub const KEY_HEADER: &str = "x-framex-cache-key";

/// What the cache did with a request (FrameX-kit's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The route caches but `[cache] enabled` is false.
    Disabled,
    /// Not cached: the route does not cache, the method is not GET/POST, the client
    /// asked `bypass`, or the store failed.
    Bypass,
    /// Answered from the cache.
    Hit,
    /// Computed and stored.
    Miss,
    /// Computed and stored because the client asked `refresh`.
    Refresh,
}

impl Status {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Disabled => "DISABLED",
            Status::Bypass => "BYPASS",
            Status::Hit => "HIT",
            Status::Miss => "MISS",
            Status::Refresh => "REFRESH",
        }
    }

    /// The metric label.
    fn label(self) -> &'static str {
        match self {
            Status::Disabled => "disabled",
            Status::Bypass => "bypass",
            Status::Hit => "hit",
            Status::Miss => "miss",
            Status::Refresh => "refresh",
        }
    }

    /// Counts this outcome in `framex_cache_requests_total`.
    pub fn count(self) {
        crate::metrics::cache_request(self.label());
    }
}

/// What the client asked through `X-FrameX-Cache` (anything unknown is `Use`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Serve from the cache when there, else compute and store.
    Use,
    /// Compute, store nothing, read nothing.
    Bypass,
    /// Compute and store, ignoring what is there.
    Refresh,
}

impl Action {
    /// FrameX-kit's reading: trimmed, case-insensitive; unknown values mean `use`.
    pub fn of(headers: &actix_web::http::header::HeaderMap) -> Action {
        let value = headers.get(REQUEST_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        match value.trim().to_ascii_lowercase().as_str() {
            "bypass" => Action::Bypass,
            "refresh" => Action::Refresh,
            _ => Action::Use,
        }
    }
}

/// A store that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file-mode I/O error.
    #[error("cache file: {0}")]
    Io(#[from] std::io::Error),
    /// Redis did not answer (unavailable, failing, too slow).
    #[error("cache redis: {0}")]
    Redis(#[from] crate::redis_store::StoreError),
}

enum Store {
    Memory(memory::Memory),
    File(file::FileStore),
    Redis(crate::redis_store::RedisStore),
}

/// The request cache of one config.
pub struct Cache {
    store: Store,
    /// `[cache] ttl`.
    pub default_ttl: i64,
    /// Largest request body hashed and answer stored.
    pub max_entry_bytes: usize,
    /// `[plugins.proxy.cache]`.
    rules: RuleSet<ProxyCacheRule>,
    /// Unix second of the last failure logged.
    last_logged: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("default_ttl", &self.default_ttl).finish_non_exhaustive()
    }
}

impl Cache {
    /// The cache `[cache]` describes, or `None` when it is off.
    ///
    /// # Errors
    /// A `redis_url` that does not parse or a bad rule (both refused at load already).
    pub fn from_config(config: &CacheConfig, rules: &crate::config::ProxyCacheRules) -> Result<Option<Cache>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let store = match config.mode {
            CacheMode::Memory => Store::Memory(memory::Memory::new(config.max_size, config.max_bytes)),
            CacheMode::File => Store::File(file::FileStore::new(&config.file_dir, config.max_size, config.max_bytes)),
            CacheMode::Redis => {
                let url = config.redis_url.as_deref().unwrap_or_default();
                Store::Redis(crate::redis_store::RedisStore::new(url).map_err(|e| format!("cache.redis_url: {e}"))?)
            }
        };
        let rules = RuleSet::new(rules.iter().map(|(k, v)| (k.clone(), v.clone())))
            .map_err(|e| format!("plugins.proxy.cache: {e}"))?;
        Ok(Some(Cache {
            store,
            default_ttl: config.ttl,
            max_entry_bytes: config.max_entry_bytes,
            rules,
            last_logged: AtomicU64::new(0),
        }))
    }

    /// The TTL of the proxied path's rule, when one covers it.
    pub fn rule_ttl(&self, path: &str) -> Option<i64> {
        self.rules.lookup(path).map(|r| r.ttl.unwrap_or(self.default_ttl))
    }

    /// The live entry stored under `key`; a failing store is logged and counted, and
    /// reads as `Err`.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, ()> {
        let found = match &self.store {
            Store::Memory(m) => Ok(m.get(key)),
            Store::File(f) => f.get(key, self.max_entry_bytes).await,
            Store::Redis(r) => r.get(&redis_key(key)).await.map(|found| found.map(Blob::from)).map_err(CacheError::from),
        };
        match found {
            Ok(bytes) => Ok(bytes.and_then(|b| Entry::decode(&b)).filter(|e| !e.expired(now_millis()))),
            Err(e) => {
                self.failed("read", &e);
                Err(())
            }
        }
    }

    /// Stores `entry` under `key` for `ttl` seconds (-1: for ever); a failure is
    /// logged and counted, never returned.
    pub async fn set(&self, key: &str, mut entry: Entry, ttl: i64) {
        // In milliseconds: a TTL of 1 s counted in whole seconds would end at the next
        // second's turn, anywhere from 0 to 1 s after the store.
        entry.expires_at = (ttl > 0).then(|| now_millis().saturating_add(ttl.unsigned_abs().saturating_mul(1000)));
        let bytes = entry.encode();
        if bytes.len() > self.max_entry_bytes.saturating_add(entry::OVERHEAD) {
            return;
        }
        let ttl = u64::try_from(ttl).ok();
        let done = match &self.store {
            Store::Memory(m) => {
                m.set(key, bytes);
                Ok(())
            }
            Store::File(f) => f.set(key, bytes).await,
            Store::Redis(r) => r.set(&redis_key(key), &bytes, ttl).await.map_err(CacheError::from),
        };
        if let Err(e) = done {
            self.failed("write", &e);
        }
    }

    fn failed(&self, op: &'static str, error: &CacheError) {
        crate::metrics::cache_failure(op);
        let now = now_millis() / 1000;
        let last = self.last_logged.load(Ordering::Relaxed);
        if now >= last.saturating_add(10)
            && self.last_logged.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            log::warn!("request cache {op} failed, serving uncached: {}", framex_actors::Escaped(&error.to_string()));
        }
    }
}

/// Where entry `key` lives in Redis (expiring through Redis: `SET … EX`).
fn redis_key(key: &str) -> String {
    format!("framex:cache:{key}")
}

/// Milliseconds since the Unix epoch (an entry's expiry; the failure log's pace).
fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Hex of the SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of an entry, for stores.
pub(crate) type Blob = Bytes;

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry stored for 1 s just before a second's turn is still there just after
    /// it (counted in whole seconds, it died at the turn: a TTL of 1 s lived anywhere
    /// from 0 to 1 s, where FrameX-kit's lives 1 s).
    #[actix_rt::test]
    async fn a_one_second_entry_outlives_the_turn_of_the_second() {
        let config = CacheConfig { enabled: true, ..CacheConfig::default() };
        let cache = Cache::from_config(&config, &Default::default()).unwrap().expect("enabled");
        // 900 ms into a second (waits at most a second).
        let into = now_millis() % 1000;
        let wait = 900_u64.saturating_sub(into);
        actix_rt::time::sleep(std::time::Duration::from_millis(wait)).await;
        cache.set("k", Entry::value(Bytes::from_static(b"1")), 1).await;
        actix_rt::time::sleep(std::time::Duration::from_millis(200)).await;
        let found = cache.get("k").await.expect("the memory store does not fail");
        assert!(found.is_some(), "stored 200 ms ago for 1 s");
        actix_rt::time::sleep(std::time::Duration::from_millis(900)).await;
        assert!(cache.get("k").await.unwrap().is_none(), "dead 1.1 s after");
    }

    /// An entry an earlier version stored (its expiry in Unix seconds alone) lives
    /// until that second, as it did there: an hour ahead it is alive, a second ago dead.
    #[test]
    fn an_entry_counted_in_seconds_keeps_its_time() {
        let stored = |expiry: u64| Bytes::from(format!("FXC1\n{{\"s\":200,\"h\":[],\"e\":{expiry}}}\n1"));
        let seconds = now_millis() / 1000;
        let ahead = Entry::decode(&stored(seconds + 3600)).expect("an older version's entry");
        assert!(!ahead.expired(now_millis()));
        let behind = Entry::decode(&stored(seconds - 1)).unwrap();
        assert!(behind.expired(now_millis()));
    }
}
