//! The one migration decision: where a call to a migrating route goes, the same for
//! the HTTP edge (`serve`) and for `CallRemote` (the engine's [`CallPolicy`], `policy`).
//!
//! It reads the mode in force (a rolled-back canary is `upstream`), draws the canary's
//! share, refuses to shadow unsafe methods unless the route allows it, and owns the
//! shadow bound: a shadow call takes a permit of the route's gate
//! ([`MAX_SHADOWS_IN_FLIGHT`] per route, both paths together) and holds it until its
//! local call ends; over the bound the call goes to the upstream alone, counted
//! `not_compared`.
//!
//! [`CallPolicy`]: framex_actors::CallPolicy
//! [`MAX_SHADOWS_IN_FLIGHT`]: super::state::MAX_SHADOWS_IN_FLIGHT

use framex_actors::call_policy::ShadowPermit;
use framex_actors::Pick;

use super::state::{Outcome, RouteMigration};
use crate::config::MigrateMode;

/// Where one call to a migrating route goes.
#[derive(Debug)]
pub enum Decision {
    /// The local plugin, as if the route were not migrating (mode `local`).
    AsUsual,
    /// The upstream alone: mode `upstream`, a canary's upstream share or a rolled-back
    /// canary, a shadowed unsafe method, or a shadow call over the bound.
    Upstream,
    /// The local plugin, its answer counted towards the canary's rollback.
    CanaryLocal,
    /// The upstream answers; the local plugin's answer is compared off the caller's
    /// path, under this permit.
    Shadow(ShadowPermit),
}

/// Decides where a `method` call to `migration`'s route goes (see the module doc).
pub fn decide(migration: &RouteMigration, method: &str) -> Decision {
    match migration.mode() {
        MigrateMode::Local => Decision::AsUsual,
        MigrateMode::Upstream => Decision::Upstream,
        MigrateMode::Canary if migration.canary_picks_local() => Decision::CanaryLocal,
        MigrateMode::Canary => Decision::Upstream,
        MigrateMode::Shadow => {
            let safe = matches!(method, "GET" | "HEAD" | "OPTIONS");
            if !safe && !migration.config.unsafe_methods {
                migration.record(Outcome::SkippedUnsafe, None);
                return Decision::Upstream;
            }
            match migration.shadow_permit() {
                Some(permit) => Decision::Shadow(permit),
                None => {
                    migration.record(Outcome::NotCompared, None);
                    Decision::Upstream
                }
            }
        }
    }
}

impl From<Decision> for Option<Pick> {
    fn from(decision: Decision) -> Self {
        match decision {
            Decision::AsUsual => None,
            Decision::Upstream => Some(Pick::Upstream),
            Decision::CanaryLocal => Some(Pick::Local),
            Decision::Shadow(permit) => Some(Pick::Shadow(permit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MigrateConfig, MigrateRoute};
    use crate::http::migrate::state::{Migration, MAX_SHADOWS_IN_FLIGHT};

    fn migration(route: MigrateRoute) -> std::sync::Arc<RouteMigration> {
        let mut config = MigrateConfig::default();
        config.insert("/r".to_owned(), route);
        Migration::from_config(&config).route("/r").cloned().expect("the route is configured")
    }

    fn mode(mode: MigrateMode) -> MigrateRoute {
        MigrateRoute { mode, ..MigrateRoute::default() }
    }

    #[test]
    fn local_and_upstream_modes_pick_as_named() {
        let mut config = MigrateConfig::default();
        config.insert("/r".to_owned(), mode(MigrateMode::Local));
        assert!(Migration::from_config(&config).route("/r").is_none(), "mode local: the route is not migrating");
        assert!(matches!(decide(&migration(mode(MigrateMode::Upstream)), "GET"), Decision::Upstream));
        assert!(matches!(decide(&migration(mode(MigrateMode::Upstream)), "POST"), Decision::Upstream));
    }

    #[test]
    fn a_canary_splits_by_its_percent() {
        let canary = migration(MigrateRoute { mode: MigrateMode::Canary, percent: 50.0, ..MigrateRoute::default() });
        let local = (0..10).filter(|_| matches!(decide(&canary, "GET"), Decision::CanaryLocal)).count();
        assert_eq!(local, 5);
    }

    #[test]
    fn a_rolled_back_canary_goes_upstream() {
        let canary = migration(MigrateRoute { mode: MigrateMode::Canary, percent: 100.0, ..MigrateRoute::default() });
        for _ in 0..crate::http::migrate::state::ROLLBACK_MIN_CALLS {
            assert!(matches!(decide(&canary, "GET"), Decision::CanaryLocal));
            canary.canary_answered(true);
        }
        assert!(matches!(decide(&canary, "GET"), Decision::Upstream), "rolled back");
    }

    #[test]
    fn shadows_are_bounded_and_unsafe_methods_are_not_shadowed_by_default() {
        let shadow = migration(mode(MigrateMode::Shadow));
        assert!(matches!(decide(&shadow, "POST"), Decision::Upstream));
        assert_eq!(shadow.report().counts.skipped_unsafe, 1, "counted, not silently dropped");
        let held: Vec<_> = (0..MAX_SHADOWS_IN_FLIGHT)
            .map(|_| match decide(&shadow, "GET") {
                Decision::Shadow(permit) => permit,
                other => panic!("a shadow within the bound, got {other:?}"),
            })
            .collect();
        assert!(matches!(decide(&shadow, "GET"), Decision::Upstream), "over the bound: upstream alone");
        drop(held);
        assert!(matches!(decide(&shadow, "GET"), Decision::Shadow(_)), "permits come back");
        let unsafe_ok = migration(MigrateRoute { mode: MigrateMode::Shadow, unsafe_methods: true, ..MigrateRoute::default() });
        assert!(matches!(decide(&unsafe_ok, "POST"), Decision::Shadow(_)));
    }
}
