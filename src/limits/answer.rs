//! Deciding one request against one rule (in process or in Redis), and what the
//! answer says: the refusal's status and `Retry-After`, the rate state for the
//! `RateLimit` headers, the status page's view of a rule.

use std::sync::Arc;

use super::table::Table;
use super::{Permit, Rule, Slot, Store};
use crate::redis_store::{LimitAsk, Outcome, RedisStore, StoreError};

/// How long a Redis slot lives when nobody gives it back (a safety net for
/// instances that die holding slots): an hour, however busy its key stays.
const SLOT_EXPIRY_MS: u64 = 3_600_000;

/// The rate state of a request: what the `RateLimit-Policy` and `RateLimit` headers
/// say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// Requests allowed at once (`q`).
    pub quota: u64,
    /// Seconds the quota takes to come back whole (`w`).
    pub window: u64,
    /// Requests left now (`r`).
    pub remaining: u64,
    /// Seconds until the quota is whole again (`t`).
    pub reset: u64,
}

/// A request refused: the status, when to retry, and the rate state (a rate
/// refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 429, or 503 when the rule says so (or its backend failed with `deny`).
    pub status: u16,
    /// Seconds to wait (`Retry-After`).
    pub retry_after: u64,
    /// The rate state, when the rate refused it.
    pub rate: Option<RateState>,
    /// What the envelope says.
    pub message: &'static str,
}

impl Refusal {
    fn new(rule: &Rule, retry_after: u64, rate: Option<RateState>, message: &'static str) -> Self {
        Refusal {
            status: rule.settings.status.unwrap_or(429),
            retry_after: retry_after.max(1),
            rate,
            message,
        }
    }

    /// The refusal of a request the backend could not decide (`deny`).
    pub fn unavailable(rule: &Rule) -> Self {
        Refusal::new(rule, 1, None, "Too Many Requests: the limit could not be checked")
    }
}

/// Seconds, rounded up, of `ns` nanoseconds.
fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

/// The rate state of `rule` with `remaining` left and `wait_ns` until whole.
fn rate_state(rule: &Rule, remaining: u64, wait_ns: u64) -> Option<RateState> {
    let (_, tolerance) = rule.gcra?;
    Some(RateState {
        quota: u64::from(rule.settings.burst()),
        window: ceil_secs(tolerance).max(1),
        remaining,
        reset: ceil_secs(wait_ns),
    })
}

/// Why the local table refused.
enum Refused {
    Rate(u64),
    Busy,
}

/// Decides a request of `key` against `rule`'s in-process `table`: the rate first,
/// then a slot; a refused request changes nothing.
pub(super) fn local(rule: &Arc<Rule>, table: &Arc<Table>, key: String) -> Result<Permit, Refusal> {
    let now = table.now();
    let slots = rule.settings.concurrent;
    let decided = table.with(&key, |entry| {
        let mut rate = None;
        let mut next = entry.tat;
        if let Some((interval, tolerance)) = rule.gcra {
            let new = entry.tat.max(now).saturating_add(interval);
            if new - now > tolerance {
                return Err(Refused::Rate(new - now - tolerance));
            }
            next = new;
            rate = Some(((tolerance - (new - now)) / interval.max(1), new - now));
        }
        if let Some(slots) = slots {
            if entry.held >= slots {
                return Err(Refused::Busy);
            }
            entry.held += 1;
        }
        entry.tat = next;
        Ok(rate)
    });
    match decided {
        Ok(Ok(rate)) => Ok(Permit {
            slot: slots.map(|_| Slot { rule: rule.clone(), key, member: 0 }),
            rate: rate.and_then(|(remaining, wait)| rate_state(rule, remaining, wait)),
        }),
        Ok(Err(Refused::Rate(wait))) => Err(Refusal::new(rule, ceil_secs(wait), rate_state(rule, 0, wait), "Too Many Requests")),
        Ok(Err(Refused::Busy)) | Err(_) => Err(Refusal::new(rule, 1, None, "Too Many Requests: too many requests open")),
    }
}

/// Decides a request of `key` against `rule` in Redis (one round trip).
pub(super) async fn redis(rule: &Arc<Rule>, store: &RedisStore, key: &str) -> Result<Result<Permit, Refusal>, StoreError> {
    // One hash tag, so that both keys live on one node of a cluster.
    let base = format!("framex:limits:{{{} {key}}}", rule.pattern);
    let (rate_key, slot_key) = (format!("{base}:rate"), format!("{base}:slots"));
    let member = framex_actors::new_request_number();
    let (interval, tolerance) = rule.gcra.unwrap_or((0, 0));
    let ask = LimitAsk {
        interval_us: if interval == 0 { 0 } else { (interval / 1000).max(1) },
        tolerance_us: tolerance / 1000,
        slots: rule.settings.concurrent.map_or(0, u64::from),
        expiry_ms: SLOT_EXPIRY_MS,
        member,
    };
    let reply = store.limit(&rate_key, &slot_key, ask).await?;
    let wait_ns = reply.wait_us.saturating_mul(1000);
    Ok(match reply.outcome {
        Outcome::Allowed => Ok(Permit {
            slot: rule.settings.concurrent.map(|_| Slot { rule: rule.clone(), key: slot_key, member }),
            rate: rate_state(rule, reply.remaining, wait_ns),
        }),
        Outcome::RateLimited => Err(Refusal::new(rule, ceil_secs(wait_ns), rate_state(rule, 0, wait_ns), "Too Many Requests")),
        Outcome::Busy => Err(Refusal::new(rule, 1, None, "Too Many Requests: too many requests open")),
    })
}

/// One rule on the status page: its settings and, in process, its most used keys
/// (identities, never keys).
pub(super) fn report(rule: &Rule, top: usize) -> serde_json::Value {
    let s = &rule.settings;
    let mut view = serde_json::json!({
        "pattern": rule.pattern,
        "per": s.per.as_str(),
        "rate": s.rate,
        "burst": s.rate.map(|_| s.burst()),
        "concurrent": s.concurrent,
        "status": s.status.unwrap_or(429),
        "on_backend_error": format!("{:?}", rule.on_error).to_lowercase(),
    });
    if let (Store::Local(table), Some(fields)) = (&rule.store, view.as_object_mut()) {
        let now = table.now();
        let keys: Vec<serde_json::Value> = table
            .top(top)
            .into_iter()
            .map(|(key, entry)| {
                let backlog = rule.gcra.map(|(interval, _)| entry.tat.saturating_sub(now) / interval.max(1));
                serde_json::json!({ "key": key, "open": entry.held, "used": backlog })
            })
            .collect();
        fields.insert("keys_tracked".to_owned(), table.len().into());
        fields.insert("max_keys".to_owned(), table.capacity().into());
        if top > 0 {
            fields.insert("top_keys".to_owned(), keys.into());
        }
    }
    view
}
