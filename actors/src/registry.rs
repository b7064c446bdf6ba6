//! The registry: the single writer of the route table.
//!
//! Local plugins and upstream route sets are registered here; every change rebuilds
//! the [`RouteTable`] (local routes first, so they shadow upstream ones) and publishes
//! it atomically. A change is visible to the next call on every arbiter as soon as the
//! message that made it has been answered. A source that sends the routes it already
//! has changes nothing; otherwise its [`RouteReport`] says what changed, so that no
//! one else needs to keep a copy of what was published.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::api::{ApiKey, ApiSpec};
use crate::error::Error;
use crate::plugin_spec::PluginSpec;
use crate::route_table::{Route, RouteTable, RouteTableBuilder, Skipped, Target};
use crate::upstream::UpstreamTarget;

/// One upstream operation to register.
#[derive(Debug, Clone)]
pub struct UpstreamRoute {
    /// Key (our method and path) and signature.
    pub spec: Arc<ApiSpec>,
    /// The pool and key serving it.
    pub target: Arc<UpstreamTarget>,
}

impl UpstreamRoute {
    /// Whether `other` is the same route: same signature, same pool, same key sent.
    /// (Its request-path filter follows from the pool's members, fixed for a source's
    /// life, so it is not compared.)
    fn same_as(&self, other: &UpstreamRoute) -> bool {
        self.spec == other.spec
            && self.target.pool.id() == other.target.pool.id()
            && self.target.auth == other.target.auth
    }
}

/// Adds a local plugin; its routes take over any upstream route with the same key.
#[derive(Debug)]
pub struct RegisterPlugin(pub Arc<PluginSpec>);

impl Message for RegisterPlugin {
    type Result = Result<(), Error>;
}

/// Removes a local plugin by name; upstream routes it shadowed come back.
#[derive(Debug)]
pub struct UnregisterPlugin(pub String);

impl Message for UnregisterPlugin {
    type Result = bool;
}

/// Replaces every route of one upstream source (a discovery run's result).
#[derive(Debug)]
pub struct SetUpstreamRoutes {
    /// The source, usually the upstream's base URL.
    pub source: String,
    /// Its routes; an empty list removes the source.
    pub routes: Vec<UpstreamRoute>,
}

/// What a [`SetUpstreamRoutes`] changed for its source. Empty when the source sent
/// the routes it already had (nothing was rebuilt).
#[derive(Debug, Default, PartialEq)]
pub struct RouteReport {
    /// Keys the source serves now and did not before, with the pool serving each.
    pub added: Vec<(ApiKey, String)>,
    /// Keys the source serves still, now from another pool.
    pub moved: Vec<(ApiKey, String)>,
    /// Keys the source served and no longer offers.
    pub removed: Vec<ApiKey>,
    /// Keys the table did not take from the source, new or for a new reason.
    pub skipped: Vec<(ApiKey, Skipped)>,
}

impl Message for SetUpstreamRoutes {
    type Result = RouteReport;
}

/// A key a source offered but the table did not take: source, key, why.
type SkippedKey = (String, ApiKey, Skipped);

/// An upstream source's routes and those the table did not take.
struct Source {
    name: String,
    routes: Vec<UpstreamRoute>,
    skipped: BTreeMap<ApiKey, Skipped>,
}

impl Source {
    /// The keys it serves, with the pool serving each.
    fn live(&self) -> BTreeMap<&ApiKey, &UpstreamRoute> {
        self.routes
            .iter()
            .filter(|r| !self.skipped.contains_key(&r.spec.key))
            .map(|r| (&r.spec.key, r))
            .collect()
    }
}

/// The registry actor.
pub struct Registry {
    table: Arc<ArcSwap<RouteTable>>,
    plugins: Vec<Arc<PluginSpec>>,
    upstreams: Vec<Source>,
}

impl Registry {
    /// A registry publishing into `table`.
    pub fn new(table: Arc<ArcSwap<RouteTable>>) -> Self {
        Registry {
            table,
            plugins: Vec::new(),
            upstreams: Vec::new(),
        }
    }

    /// Builds a table from the current sources; returns it with the skipped keys of
    /// every source.
    fn build(&self) -> Result<(RouteTable, Vec<SkippedKey>), Error> {
        let mut builder = RouteTableBuilder::default();
        for plugin in &self.plugins {
            for api in &plugin.apis {
                builder
                    .add(Route {
                        spec: api.spec.clone(),
                        target: Target::Local {
                            plugin: plugin.clone(),
                            api: api.clone(),
                        },
                    })
                    .map_err(|why| Error::RouteConflict {
                        plugin: plugin.meta.name.clone(),
                        api: api.spec.key.to_string(),
                        reason: describe(&why),
                    })?;
            }
        }
        let mut skipped = Vec::new();
        for source in &self.upstreams {
            for route in &source.routes {
                let added = builder.add(Route {
                    spec: route.spec.clone(),
                    target: Target::Upstream(route.target.clone()),
                });
                if let Err(why) = added {
                    skipped.push((source.name.clone(), route.spec.key.clone(), why));
                }
            }
        }
        Ok((builder.build(), skipped))
    }

    /// Publishes `table` and notes, per source, the keys it did not take. After a
    /// plugin change (`plugins_changed`), logs the upstream routes a local plugin takes
    /// over or gives back (an upstream change is reported to its source instead).
    fn publish(&mut self, table: RouteTable, skipped: Vec<SkippedKey>, plugins_changed: bool) {
        self.table.store(Arc::new(table));
        let mut before: BTreeMap<(String, ApiKey), Skipped> = BTreeMap::new();
        for source in &mut self.upstreams {
            for (key, why) in std::mem::take(&mut source.skipped) {
                before.insert((source.name.clone(), key), why);
            }
        }
        for (name, key, why) in skipped {
            let was = before.remove(&(name.clone(), key.clone()));
            if plugins_changed && why == Skipped::ShadowedByLocal && was.is_none() {
                log::info!("{}: a local plugin takes over from {name}", crate::Escaped(&key));
            }
            if let Some(source) = self.upstreams.iter_mut().find(|s| s.name == name) {
                source.skipped.insert(key, why);
            }
        }
        for ((name, key), why) in before {
            let offered = self
                .upstreams
                .iter()
                .any(|s| s.name == name && s.routes.iter().any(|r| r.spec.key == key));
            if plugins_changed && why == Skipped::ShadowedByLocal && offered {
                log::info!("{}: served by {name} again (no local plugin serves it)", crate::Escaped(&key));
            }
        }
    }
}

/// Says why a route was skipped, in words.
pub fn describe(why: &Skipped) -> String {
    match why {
        Skipped::ShadowedByLocal => "served by a local plugin".to_owned(),
        Skipped::TakenBy(holder) => format!("already served by {holder}"),
        Skipped::Conflict(reason) => format!("path conflict: {reason}"),
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<RegisterPlugin> for Registry {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: RegisterPlugin, _: &mut Context<Self>) -> Self::Result {
        let name = &msg.0.meta.name;
        if self.plugins.iter().any(|p| &p.meta.name == name) {
            return Err(Error::DuplicatePlugin { name: name.clone() });
        }
        self.plugins.push(msg.0);
        match self.build() {
            Ok((table, skipped)) => {
                self.publish(table, skipped, true);
                Ok(())
            }
            Err(e) => {
                self.plugins.pop();
                Err(e)
            }
        }
    }
}

impl Handler<UnregisterPlugin> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: UnregisterPlugin, _: &mut Context<Self>) -> bool {
        let before = self.plugins.len();
        self.plugins.retain(|p| p.meta.name != msg.0);
        if before == self.plugins.len() {
            return false;
        }
        if let Ok((table, skipped)) = self.build() {
            self.publish(table, skipped, true);
        }
        true
    }
}

impl Handler<SetUpstreamRoutes> for Registry {
    type Result = MessageResult<SetUpstreamRoutes>;

    fn handle(&mut self, msg: SetUpstreamRoutes, _: &mut Context<Self>) -> Self::Result {
        let at = self.upstreams.iter().position(|s| s.name == msg.source);
        let old = at.map(|i| &self.upstreams[i]);
        let unchanged = old.map_or(msg.routes.is_empty(), |old| {
            old.routes.len() == msg.routes.len()
                && old.routes.iter().zip(&msg.routes).all(|(a, b)| a.same_as(b))
        });
        if unchanged {
            return MessageResult(RouteReport::default());
        }
        let before = old.map(|old| Source {
            name: old.name.clone(),
            routes: old.routes.clone(),
            skipped: old.skipped.clone(),
        });
        match at {
            Some(i) => self.upstreams[i].routes = msg.routes,
            None => self.upstreams.push(Source {
                name: msg.source.clone(),
                routes: msg.routes,
                skipped: BTreeMap::new(),
            }),
        }
        // Local routes were valid before and upstream ones never fail the build.
        if let Ok((table, skipped)) = self.build() {
            self.publish(table, skipped, false);
        }
        let after = self.upstreams.iter().find(|s| s.name == msg.source);
        let report = changes(before.as_ref(), after);
        self.upstreams.retain(|s| !s.routes.is_empty());
        MessageResult(report)
    }
}

/// What changed for one source between two publications.
fn changes(before: Option<&Source>, after: Option<&Source>) -> RouteReport {
    let empty = BTreeMap::new();
    let old = before.map_or_else(BTreeMap::new, Source::live);
    let new = after.map_or_else(BTreeMap::new, Source::live);
    let old_skipped = before.map_or(&empty, |s| &s.skipped);
    let new_skipped = after.map_or(&empty, |s| &s.skipped);
    let pool = |route: &UpstreamRoute| route.target.pool.name().to_owned();
    let mut report = RouteReport::default();
    for (key, route) in &new {
        match old.get(key) {
            None => report.added.push(((*key).clone(), pool(route))),
            Some(was) if was.target.pool.id() != route.target.pool.id() => {
                report.moved.push(((*key).clone(), pool(route)));
            }
            Some(_) => {}
        }
    }
    report.removed = old
        .keys()
        .filter(|key| !new.contains_key(*key) && !new_skipped.contains_key(**key))
        .map(|key| (*key).clone())
        .collect();
    report.skipped = new_skipped
        .iter()
        .filter(|(key, why)| old_skipped.get(*key) != Some(*why))
        .map(|(key, why)| (key.clone(), why.clone()))
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route_table::tests::{plugin, upstream};
    use crate::route_table::HttpMatch;
    use crate::Engine;
    use http::Method;

    fn get(path: &str) -> ApiKey {
        ApiKey::http(Method::GET, path)
    }

    fn upstream_route(path: &str) -> UpstreamRoute {
        let route = upstream(ApiSpec::new(get(path)));
        let Target::Upstream(target) = route.target else { unreachable!() };
        UpstreamRoute {
            spec: route.spec,
            target,
        }
    }

    fn served_by(engine: &Engine, path: &str) -> Option<String> {
        match engine.table().match_http(&Method::GET, path) {
            HttpMatch::Found { route, .. } => Some(route.target.describe()),
            _ => None,
        }
    }

    #[actix::test]
    async fn every_change_is_published_and_local_plugins_take_over_and_give_back() {
        let engine = Engine::start();
        let before = engine.table().generation();
        let routes = vec![upstream_route("/a"), upstream_route("/b")];
        let report = engine.set_upstream_routes("u", routes.clone()).await.unwrap();
        assert_eq!(report.added.len(), 2);
        assert!(engine.table().generation() > before);
        let generation = engine.table().generation();
        let same = engine.set_upstream_routes("u", routes.clone()).await.unwrap();
        assert_eq!(same, RouteReport::default(), "the same routes change nothing");
        assert_eq!(engine.table().generation(), generation, "and publish nothing");
        let moved = engine
            .set_upstream_routes("u", vec![routes[0].clone(), upstream_route("/b")])
            .await
            .unwrap();
        assert_eq!(moved.moved.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), vec![get("/b")]);
        assert!(moved.added.is_empty() && moved.removed.is_empty());
        assert_eq!(served_by(&engine, "/a").as_deref(), Some("upstream:http://127.0.0.1:9"));

        engine.register_plugin(plugin("p", &[get("/a")])).await.unwrap();
        assert_eq!(served_by(&engine, "/a").as_deref(), Some("plugin:p"), "local wins");
        let again = engine.set_upstream_routes("u", vec![upstream_route("/a")]).await.unwrap();
        assert!(again.skipped.is_empty(), "shadowed since the plugin came, not a new skip: {again:?}");
        assert_eq!(again.removed, vec![get("/b")], "a shadowed key is not reported removed");

        assert!(engine.unregister_plugin("p").await.unwrap());
        assert_eq!(served_by(&engine, "/a").as_deref(), Some("upstream:http://127.0.0.1:9"), "the upstream comes back");
        engine.set_upstream_routes("u", Vec::new()).await.unwrap();
        assert!(engine.table().is_empty(), "an empty list removes the source");
    }

    #[actix::test]
    async fn conflicts_are_typed_errors_and_change_nothing() {
        let engine = Engine::start();
        engine.register_plugin(plugin("p", &[get("/x")])).await.unwrap();
        let generation = engine.table().generation();
        let duplicate = engine.register_plugin(plugin("p", &[get("/y")])).await;
        assert!(matches!(duplicate, Err(Error::DuplicatePlugin { name }) if name == "p"));
        let clash = engine.register_plugin(plugin("q", &[get("/x")])).await;
        assert!(matches!(clash, Err(Error::RouteConflict { plugin, .. }) if plugin == "q"));
        assert_eq!(engine.table().generation(), generation, "nothing was published");
        assert_eq!(served_by(&engine, "/x").as_deref(), Some("plugin:p"));
    }
}
