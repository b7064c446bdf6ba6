//! The migration table in force (one per configuration load: a reload starts fresh
//! counts) and its counters, mismatches and canary rollbacks.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use framex_actors::call_policy::{ShadowGate, ShadowPermit};
use serde::Serialize;

use crate::config::{MigrateConfig, MigrateMode, MigrateRoute};

/// Mismatches kept per route for the status page.
pub const KEPT_MISMATCHES: usize = 20;
/// Local calls a canary needs before its error ratio can roll it back.
pub const ROLLBACK_MIN_CALLS: u64 = 20;
/// Shadow calls of one route under way at once, at most (HTTP and `CallRemote`
/// together): a call over the bound goes to the upstream alone and is counted
/// `not_compared` (see `decide`).
pub use framex_actors::call_policy::MAX_SHADOWS_IN_FLIGHT;

/// How one compared (or canary) call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both answers agree.
    Match,
    /// They differ.
    Mismatch,
    /// The local plugin failed (5xx, timeout).
    LocalError,
    /// The upstream failed: nothing to compare with.
    UpstreamError,
    /// Nothing compared: a stream, an answer over the size limit, a shadow call over
    /// the bound.
    NotCompared,
    /// A canary's local answer that did not fail (it went to the client; nothing was
    /// compared with it).
    LocalOnly,
    /// A shadowed route's call of an unsafe method (not GET, HEAD, OPTIONS) without
    /// `unsafe = true`: the upstream alone answered it, since a second call would
    /// repeat its side effect.
    SkippedUnsafe,
}

impl Outcome {
    /// The outcome as `/metrics` labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::LocalError => "local_error",
            Outcome::UpstreamError => "upstream_error",
            Outcome::NotCompared => "not_compared",
            Outcome::LocalOnly => "local_only",
            Outcome::SkippedUnsafe => "skipped_unsafe",
        }
    }
}

/// One mismatch, as the status page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// The call's request id.
    pub request_id: String,
    /// Its method.
    pub method: String,
    /// Its path, without the query.
    pub path: String,
    /// The first differing JSON pointer (or `(status)`, `(body)`).
    pub pointer: String,
    /// The upstream's value there (truncated).
    pub upstream: String,
    /// The local plugin's value there (truncated).
    pub local: String,
}

/// One route's migration: its settings and what happened to it.
#[derive(Debug)]
pub struct RouteMigration {
    /// The route template.
    pub template: String,
    /// Its settings.
    pub config: MigrateRoute,
    counts: [AtomicU64; 7],
    canary_calls: AtomicU64,
    canary_local: AtomicU64,
    canary_failures: AtomicU64,
    rolled_back: AtomicBool,
    mismatches: Mutex<VecDeque<Mismatch>>,
    /// Shadow calls under way (see [`MAX_SHADOWS_IN_FLIGHT`]).
    shadows: ShadowGate,
}

impl RouteMigration {
    fn new(template: &str, config: MigrateRoute) -> Self {
        RouteMigration {
            template: template.to_owned(),
            config,
            counts: Default::default(),
            canary_calls: AtomicU64::new(0),
            canary_local: AtomicU64::new(0),
            canary_failures: AtomicU64::new(0),
            rolled_back: AtomicBool::new(false),
            mismatches: Mutex::new(VecDeque::new()),
            shadows: ShadowGate::default(),
        }
    }

    /// Leave for one more shadow call, unless [`MAX_SHADOWS_IN_FLIGHT`] are under way
    /// (taken only by `decide`, the one migration decision).
    pub(super) fn shadow_permit(&self) -> Option<ShadowPermit> {
        self.shadows.permit()
    }

    /// The mode in force: a rolled-back canary is `upstream`.
    pub fn mode(&self) -> MigrateMode {
        if self.config.mode == MigrateMode::Canary && self.rolled_back.load(Ordering::Relaxed) {
            MigrateMode::Upstream
        } else {
            self.config.mode
        }
    }

    /// Counts a compared call, keeping its mismatch (the last [`KEPT_MISMATCHES`]).
    pub fn record(&self, outcome: Outcome, mismatch: Option<Mismatch>) {
        self.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
        crate::metrics::migration_call(&self.template, self.mode().as_str(), outcome.as_str());
        if let Some(mismatch) = mismatch {
            let mut kept = self.mismatches.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() == KEPT_MISMATCHES {
                kept.pop_front();
            }
            kept.push_back(mismatch);
        }
    }

    /// Whether this canary call goes to the local plugin: call `n` does when
    /// `⌊(n+1)·p/100⌋ > ⌊n·p/100⌋`, which spreads exactly `percent` of calls evenly
    /// (no random numbers, one atomic add).
    pub fn canary_picks_local(&self) -> bool {
        let n = self.canary_calls.fetch_add(1, Ordering::Relaxed) as f64;
        let p = self.config.percent / 100.0;
        let local = ((n + 1.0) * p).floor() > (n * p).floor();
        if local {
            self.canary_local.fetch_add(1, Ordering::Relaxed);
        }
        local
    }

    /// Counts a canary's local answer; rolls the route back to the upstream when the
    /// failures exceed `rollback_error_ratio` over at least [`ROLLBACK_MIN_CALLS`].
    pub fn canary_answered(&self, failed: bool) {
        self.record(if failed { Outcome::LocalError } else { Outcome::LocalOnly }, None);
        let failures = if failed {
            self.canary_failures.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.canary_failures.load(Ordering::Relaxed)
        };
        let calls = self.counts[Outcome::LocalOnly as usize].load(Ordering::Relaxed)
            + self.counts[Outcome::LocalError as usize].load(Ordering::Relaxed);
        if calls >= ROLLBACK_MIN_CALLS
            && failures as f64 > self.config.rollback_error_ratio * calls as f64
            && !self.rolled_back.swap(true, Ordering::Relaxed)
        {
            log::warn!(
                target: "framex::migrate",
                "canary of {:?} rolled back to the upstream: {failures} of {calls} local answers failed (rollback_error_ratio {})",
                self.template,
                self.config.rollback_error_ratio
            );
        }
    }

    pub(super) fn report(&self) -> RouteReport {
        let count = |o: Outcome| self.counts[o as usize].load(Ordering::Relaxed);
        RouteReport {
            route: self.template.clone(),
            active: false,
            configured: self.config.mode.as_str(),
            mode: self.mode().as_str(),
            percent: (self.config.mode == MigrateMode::Canary).then_some(self.config.percent),
            rolled_back: self.rolled_back.load(Ordering::Relaxed),
            counts: Counts {
                r#match: count(Outcome::Match),
                mismatch: count(Outcome::Mismatch),
                local_error: count(Outcome::LocalError),
                upstream_error: count(Outcome::UpstreamError),
                not_compared: count(Outcome::NotCompared),
                local_only: count(Outcome::LocalOnly),
                skipped_unsafe: count(Outcome::SkippedUnsafe),
            },
            canary_calls: self.canary_calls.load(Ordering::Relaxed),
            canary_local: self.canary_local.load(Ordering::Relaxed),
            mismatches: self.mismatches.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect(),
        }
    }
}

/// Every route's migration, by template (built from `[plugins.proxy.migrate]`).
#[derive(Debug, Default)]
pub struct Migration {
    routes: HashMap<String, Arc<RouteMigration>>,
}

impl Migration {
    /// The table for a configuration.
    pub fn from_config(config: &MigrateConfig) -> Self {
        Migration {
            routes: config
                .iter()
                .map(|(template, route)| (template.clone(), Arc::new(RouteMigration::new(template, route.clone()))))
                .collect(),
        }
    }

    /// Whether no route has an entry.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The migration of a route template, unless it is plain `local`.
    pub fn route(&self, template: &str) -> Option<&Arc<RouteMigration>> {
        if self.routes.is_empty() {
            return None;
        }
        self.routes.get(template).filter(|r| r.config.mode != MigrateMode::Local)
    }

    /// What `GET /api/v1/proxy/migration` shows, routes sorted by template; `active`
    /// says whether a template has an upstream route a local plugin shadows.
    pub fn report(&self, active: impl Fn(&str) -> bool) -> Vec<RouteReport> {
        let mut routes: Vec<RouteReport> = self
            .routes
            .values()
            .map(|r| RouteReport { active: active(&r.template), ..r.report() })
            .collect();
        routes.sort_by(|a, b| a.route.cmp(&b.route));
        routes
    }
}

/// One route on the migration status page.
#[derive(Debug, Serialize)]
pub struct RouteReport {
    /// The route template.
    pub route: String,
    /// Whether a local plugin serves the route and an upstream route is kept aside for
    /// it (else the entry changes nothing).
    pub active: bool,
    /// The mode in the config.
    pub configured: &'static str,
    /// The mode in force (`upstream` after a canary's rollback).
    pub mode: &'static str,
    /// A canary's share of local calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Whether a canary rolled back by itself.
    pub rolled_back: bool,
    /// Calls by outcome.
    pub counts: Counts,
    /// Canary calls so far.
    pub canary_calls: u64,
    /// Of which sent to the local plugin.
    pub canary_local: u64,
    /// The last mismatches, oldest first.
    pub mismatches: Vec<Mismatch>,
}

/// Calls by outcome.
#[derive(Debug, Serialize)]
pub struct Counts {
    /// Answers that agree.
    pub r#match: u64,
    /// Answers that differ.
    pub mismatch: u64,
    /// Local failures (5xx, timeouts).
    pub local_error: u64,
    /// Upstream failures.
    pub upstream_error: u64,
    /// Calls nothing was compared for: streams, answers over the size limit, shadow
    /// calls over the bound.
    pub not_compared: u64,
    /// A canary's local answers that did not fail (not compared with anything).
    pub local_only: u64,
    /// Unsafe methods of a shadowed route, answered by the upstream alone.
    pub skipped_unsafe: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(mode: MigrateMode, percent: f64) -> RouteMigration {
        let config = MigrateRoute { mode, percent, ..MigrateRoute::default() };
        RouteMigration::new("/r", config)
    }

    /// A canary sends exactly its share of calls to the local plugin, spread evenly.
    #[test]
    fn a_canary_sends_its_share_locally() {
        let canary = route(MigrateMode::Canary, 10.0);
        let picks: Vec<bool> = (0..400).map(|_| canary.canary_picks_local()).collect();
        assert_eq!(picks.iter().filter(|p| **p).count(), 40);
        assert!(picks[..20].iter().filter(|p| **p).count() == 2, "spread, not bunched");
        let none = route(MigrateMode::Canary, 0.0);
        assert!((0..100).all(|_| !none.canary_picks_local()));
    }

    /// Failures above the ratio roll a canary back, but only after 20 local calls.
    #[test]
    fn a_failing_canary_rolls_back_after_enough_calls() {
        let canary = route(MigrateMode::Canary, 50.0);
        for _ in 0..19 {
            canary.canary_answered(true);
        }
        assert_eq!(canary.mode(), MigrateMode::Canary, "19 calls are too few to judge");
        canary.canary_answered(true);
        assert_eq!(canary.mode(), MigrateMode::Upstream);
        let healthy = route(MigrateMode::Canary, 50.0);
        for i in 0..40 {
            healthy.canary_answered(i == 0);
        }
        assert_eq!(healthy.mode(), MigrateMode::Canary, "1 of 40 is under 5%");
        assert!(healthy.report().counts.local_error == 1);
    }

    /// Only the last 20 mismatches are kept.
    #[test]
    fn the_last_mismatches_are_kept() {
        let shadow = route(MigrateMode::Shadow, 0.0);
        for i in 0..25 {
            let m = Mismatch {
                request_id: i.to_string(),
                method: "GET".into(),
                path: "/r".into(),
                pointer: String::new(),
                upstream: String::new(),
                local: String::new(),
            };
            shadow.record(Outcome::Mismatch, Some(m));
        }
        let report = shadow.report();
        assert_eq!(report.counts.mismatch, 25);
        assert_eq!(report.mismatches.len(), KEPT_MISMATCHES);
        assert_eq!(report.mismatches[0].request_id, "5");
    }
}
