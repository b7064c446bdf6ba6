//! `[limits]`: rate (GCRA) and concurrency limits per client key, client address or
//! route, in process ([`table`]) or fleet-wide in Redis ([`crate::redis_store`]).
//!
//! Built once per configuration ([`Limiter::build`]); a reload keeps the state of
//! every rule whose pattern and settings did not change. With no rules the server
//! holds no limiter at all, so a request pays one `Option` check.

mod answer;
mod identity;
pub mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::{LimitBackend, LimitPer, LimitRule, OnBackendError, RuleSet};
use crate::redis_store::RedisStore;

pub use answer::{Refusal, RateState};
pub use identity::{client_ip, Identity};
use table::Table;

/// Where a rule keeps its state.
enum Store {
    /// In this process.
    Local(Arc<Table>),
    /// In Redis.
    Redis(Arc<RedisStore>),
}

/// One rule, ready to apply.
pub struct Rule {
    /// The pattern as written (the metric label).
    pub pattern: String,
    /// The settings.
    pub settings: LimitRule,
    /// GCRA emission interval and tolerance, in ns (when the rule has a rate).
    gcra: Option<(u64, u64)>,
    store: Store,
    on_error: OnBackendError,
    /// When this rule last logged a backend failure (seconds since the epoch).
    last_logged: AtomicU64,
}

/// Every rule of a configuration.
pub struct Limiter {
    rules: RuleSet<Arc<Rule>>,
    backend: LimitBackend,
}

/// What an admitted request carries to the end of its response: the concurrency slot
/// (given back on drop) and the rate state for the `RateLimit` headers.
pub struct Permit {
    /// The slot held, if the rule limits concurrency.
    pub slot: Option<Slot>,
    /// The rate state, if the rule has a rate.
    pub rate: Option<RateState>,
}

/// A concurrency slot, given back when dropped (with the response body).
pub struct Slot {
    rule: Arc<Rule>,
    key: String,
    /// Its id in Redis's set of the key's slots (unused in process).
    member: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        match &self.rule.store {
            Store::Local(table) => table.release(&self.key),
            Store::Redis(store) => {
                let (store, key, member) = (store.clone(), std::mem::take(&mut self.key), self.member);
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move { store.release(&key, member).await });
                }
            }
        }
    }
}

impl Limiter {
    /// The limiter of `config`, or `None` when it has no rules; the state of rules
    /// `previous` has with the same pattern, settings and backend is kept.
    pub fn build(config: &crate::config::Config, previous: Option<&Limiter>) -> Option<Arc<Limiter>> {
        let limits = &config.limits;
        if limits.rules.0.is_empty() {
            return None;
        }
        let redis = match limits.backend {
            LimitBackend::Local => None,
            // The URL was checked at load; a store that cannot be made keeps the rules
            // in process rather than dropping them.
            LimitBackend::Redis => match crate::config::redis_url(limits, &config.redis).map(RedisStore::new) {
                Some(Ok(store)) => Some(Arc::new(store)),
                _ => {
                    log::error!("limits: no usable Redis URL; the rules are kept in process");
                    None
                }
            },
        };
        let rules = limits.rules.0.iter().map(|(pattern, settings)| {
            let kept = previous.and_then(|p| p.kept(pattern, settings, limits.backend, limits.max_keys));
            let store = match (kept, &redis) {
                (Some(store), _) => store,
                (None, Some(redis)) => Store::Redis(redis.clone()),
                (None, None) => Store::Local(Arc::new(Table::new(limits.max_keys))),
            };
            let gcra = settings.rate.map(|rate| {
                let interval = (1e9 / rate).round() as u64;
                (interval, interval.saturating_mul(u64::from(settings.burst())))
            });
            let rule = Rule {
                pattern: pattern.to_owned(),
                settings: settings.clone(),
                gcra,
                store,
                on_error: settings.on_backend_error.unwrap_or(limits.on_backend_error),
                last_logged: AtomicU64::new(0),
            };
            (pattern.to_owned(), Arc::new(rule))
        });
        let rules = RuleSet::new(rules).ok()?;
        Some(Arc::new(Limiter {
            rules,
            backend: limits.backend,
        }))
    }

    /// The store of this limiter's rule `pattern`, when its settings are the same.
    fn kept(&self, pattern: &str, settings: &LimitRule, backend: LimitBackend, max_keys: usize) -> Option<Store> {
        let (_, rule) = self.rules.iter().find(|(p, _)| *p == pattern)?;
        if rule.settings != *settings || self.backend != backend {
            return None;
        }
        match &rule.store {
            Store::Local(table) if table.max_keys() == max_keys => Some(Store::Local(table.clone())),
            Store::Local(_) => None,
            Store::Redis(store) => Some(Store::Redis(store.clone())),
        }
    }

    /// The rule covering the canonical `path`, if any.
    pub fn rule_for(&self, path: &str) -> Option<&Arc<Rule>> {
        self.rules.lookup(path)
    }

    /// The rules, most specific first.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.rules.iter().map(|(_, rule)| rule)
    }

    /// Applies `rule` to a request of `identity`: a permit, or the refusal to answer.
    pub async fn admit(&self, rule: &Arc<Rule>, identity: &Identity<'_>) -> Result<Permit, Refusal> {
        let key = identity.key(rule.settings.per);
        match &rule.store {
            Store::Local(table) => counted(rule, answer::local(rule, table, key)),
            // Boxed: the Redis client's future is large; rules kept in process do not pay for it.
            Store::Redis(store) => Box::pin(decide_in_redis(rule, store, key)).await,
        }
    }

    /// The status page: each rule with its settings and its `top` most used keys
    /// (`top = 0`: counts only, no key or address named).
    pub fn report(&self, top: usize) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self.rules().map(|rule| answer::report(rule, top)).collect();
        serde_json::json!({ "backend": self.backend, "rules": rules })
    }
}

/// Counts a decision on the metric of `rule`.
fn counted(rule: &Rule, answer: Result<Permit, Refusal>) -> Result<Permit, Refusal> {
    let outcome = if answer.is_ok() { "allowed" } else { "limited" };
    crate::metrics::limit_decision(&rule.pattern, outcome);
    answer
}

/// Decides a request of `key` against `rule` in Redis; when Redis cannot decide, the
/// rule's `on_backend_error` does.
async fn decide_in_redis(rule: &Arc<Rule>, store: &RedisStore, key: String) -> Result<Permit, Refusal> {
    match answer::redis(rule, store, &key).await {
        Ok(answer) => counted(rule, answer),
        Err(e) => backend_failed(rule, &e),
    }
}

/// Applies `on_backend_error` to a request Redis could not decide, logging at most
/// one line in 10 s per rule.
fn backend_failed(rule: &Rule, error: &crate::redis_store::StoreError) -> Result<Permit, Refusal> {
    let now = std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_secs());
    let last = rule.last_logged.load(Ordering::Relaxed);
    if now >= last + 10 && rule.last_logged.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        let cause = std::error::Error::source(error).map(ToString::to_string).unwrap_or_default();
        log::warn!(
            "limits: {error} ({}); rule '{}' {} requests (on_backend_error)",
            framex_actors::Escaped(&cause),
            framex_actors::Escaped(&rule.pattern),
            match rule.on_error {
                OnBackendError::Allow => "allows",
                OnBackendError::Deny => "refuses",
            }
        );
    }
    match rule.on_error {
        OnBackendError::Allow => {
            crate::metrics::limit_decision(&rule.pattern, "backend_error_allowed");
            Ok(Permit { slot: None, rate: None })
        }
        OnBackendError::Deny => {
            crate::metrics::limit_decision(&rule.pattern, "backend_error_denied");
            Err(Refusal::unavailable(rule))
        }
    }
}

/// `CallRemote`s from plugins count too: a call to an HTTP operation a rule covers
/// (its path parameters filled in) is counted as `plugin:<name>` of the calling
/// plugin under `per = "key"` or `"address"`, and as its route under `per = "route"`
/// (shared with HTTP requests to that route). A refused call fails with
/// [`framex_actors::Error::Limited`] (429, or 503 as the rule says); an admitted one
/// holds its slot until its reply, or its stream, ends.
impl framex_actors::CallGate for Limiter {
    fn admit(&self, route: &framex_actors::Route, path: Option<&str>, caller: Option<&str>) -> Option<framex_actors::Admission> {
        use framex_actors::Admission;
        // As the HTTP edge looks a request's path up (an encoded `/` it would refuse
        // stays as it is: the rule sees the segment it is in).
        let path = path?;
        let canonical = crate::canonical_path::canonicalize(path).unwrap_or(std::borrow::Cow::Borrowed(path));
        let rule = self.rule_for(&canonical)?.clone();
        let identity = Identity::of_plugin(caller, route.spec.key.template());
        let key = identity.key(rule.settings.per);
        Some(match &rule.store {
            Store::Local(table) => Admission::Now(held(counted(&rule, answer::local(&rule, table, key)))),
            Store::Redis(store) => {
                let store = store.clone();
                Admission::Later(Box::pin(async move { held(decide_in_redis(&rule, &store, key).await) }))
            }
        })
    }
}

/// What an admitted call holds (its slot), or why it was refused.
fn held(answer: Result<Permit, Refusal>) -> Result<Option<framex_actors::Held>, framex_actors::Refused> {
    match answer {
        Ok(permit) => Ok(permit.slot.map(|slot| framex_actors::Held(Box::new(slot)))),
        Err(refusal) => Err(framex_actors::Refused {
            retry_after: refusal.retry_after,
            unavailable: refusal.status == 503,
        }),
    }
}

impl LimitPer {
    /// The name of the setting, as the config writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitPer::Key => "key",
            LimitPer::Address => "address",
            LimitPer::Route => "route",
        }
    }
}
