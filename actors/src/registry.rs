//! The registry: the single writer of the route table.
//!
//! Local plugins and upstream route sets are registered here; every change rebuilds
//! the [`RouteTable`] (local routes first, so they shadow upstream ones) and publishes
//! it atomically. A change is visible to the next call on every arbiter as soon as the
//! message that made it has been answered.

use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::api::{ApiKey, ApiSpec};
use crate::error::Error;
use crate::plugin::PluginSpec;
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

/// What happened to a source's routes.
#[derive(Debug, Default)]
pub struct RouteReport {
    /// Keys now served by this source.
    pub added: Vec<ApiKey>,
    /// Keys not added, and why.
    pub skipped: Vec<(ApiKey, Skipped)>,
}

impl Message for SetUpstreamRoutes {
    type Result = RouteReport;
}

/// A key a source offered but the table did not take: source, key, why.
type SkippedKey = (String, ApiKey, Skipped);

/// The registry actor.
pub struct Registry {
    table: Arc<ArcSwap<RouteTable>>,
    plugins: Vec<Arc<PluginSpec>>,
    upstreams: Vec<(String, Vec<UpstreamRoute>)>,
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
        for (source, routes) in &self.upstreams {
            for route in routes {
                let added = builder.add(Route {
                    spec: route.spec.clone(),
                    target: Target::Upstream(route.target.clone()),
                });
                if let Err(why) = added {
                    skipped.push((source.clone(), route.spec.key.clone(), why));
                }
            }
        }
        Ok((builder.build(), skipped))
    }

    fn publish(&self, table: RouteTable) {
        self.table.store(Arc::new(table));
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
            Ok((table, _)) => {
                self.publish(table);
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
        if let Ok((table, _)) = self.build() {
            self.publish(table);
        }
        true
    }
}

impl Handler<SetUpstreamRoutes> for Registry {
    type Result = MessageResult<SetUpstreamRoutes>;

    fn handle(&mut self, msg: SetUpstreamRoutes, _: &mut Context<Self>) -> Self::Result {
        let keys: Vec<ApiKey> = msg.routes.iter().map(|r| r.spec.key.clone()).collect();
        match self.upstreams.iter_mut().find(|(s, _)| *s == msg.source) {
            Some(entry) => entry.1 = msg.routes,
            None => self.upstreams.push((msg.source.clone(), msg.routes)),
        }
        self.upstreams.retain(|(_, routes)| !routes.is_empty());
        let mut report = RouteReport::default();
        // Local routes were valid before and upstream ones never fail the build.
        if let Ok((table, skipped)) = self.build() {
            self.publish(table);
            report.skipped = skipped
                .into_iter()
                .filter(|(source, _, _)| *source == msg.source)
                .map(|(_, key, why)| (key, why))
                .collect();
        }
        report.added = keys
            .into_iter()
            .filter(|k| !report.skipped.iter().any(|(s, _)| s == k))
            .collect();
        MessageResult(report)
    }
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
        let report = engine
            .set_upstream_routes("u", vec![upstream_route("/a"), upstream_route("/b")])
            .await
            .unwrap();
        assert_eq!(report.added.len(), 2);
        assert!(engine.table().generation() > before);
        assert_eq!(served_by(&engine, "/a").as_deref(), Some("upstream:http://127.0.0.1:9"));

        engine.register_plugin(plugin("p", &[get("/a")])).await.unwrap();
        assert_eq!(served_by(&engine, "/a").as_deref(), Some("plugin:p"), "local wins");
        let again = engine
            .set_upstream_routes("u", vec![upstream_route("/a"), upstream_route("/b")])
            .await
            .unwrap();
        assert_eq!(again.skipped, vec![(get("/a"), Skipped::ShadowedByLocal)]);

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
