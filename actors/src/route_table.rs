//! The route table: an immutable snapshot of every API the engine can serve.
//!
//! Invariants (enforced by [`RouteTableBuilder`]):
//! - one route per `(method, path template)` and per function name;
//! - a local plugin's route shadows an upstream route with the same key (transparent
//!   migration), and the first upstream source to claim a key keeps it; the shadowed
//!   upstream route is kept aside ([`RouteTable::shadowed`]) for migration modes, never
//!   matched;
//! - path templates that the matcher cannot hold together (`/a/{x}` beside `/a/{y}`)
//!   are refused with the reason, never silently merged.
//!
//! Snapshots are built by the `Registry` (the single writer) and read lock-free by
//! every `Router` replica. (Over 400 lines: about half is the table's unit tests.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::Method;

use crate::api::{ApiKey, ApiSpec, Args, ParamLocation};
use crate::canonical_form::CanonicalForm;
use crate::plugin_spec::{LocalApi, PluginSpec};
use crate::upstream::{PoolId, UpstreamTarget};

/// Who serves a route.
#[derive(Clone)]
pub enum Target {
    /// A local plugin's handler.
    Local {
        /// The plugin.
        plugin: Arc<PluginSpec>,
        /// The API within it.
        api: Arc<LocalApi>,
    },
    /// An upstream pool.
    Upstream(Arc<UpstreamTarget>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Target {
    /// `plugin:<name>` or `upstream:<url>`, for listings and logs.
    pub fn describe(&self) -> String {
        match self {
            Target::Local { plugin, .. } => format!("plugin:{}", plugin.meta.name),
            Target::Upstream(t) => format!("upstream:{}", t.pool.name()),
        }
    }

    /// Whether a local plugin serves the route.
    pub fn is_local(&self) -> bool {
        matches!(self, Target::Local { .. })
    }
}

/// One entry of the table.
#[derive(Debug, Clone)]
pub struct Route {
    /// Signature and key.
    pub spec: Arc<ApiSpec>,
    /// Who serves it.
    pub target: Target,
}

/// The result of matching an HTTP request against the table (the route lent by it:
/// a reference count taken per request is an atomic update on a line every worker
/// shares).
#[derive(Debug)]
pub enum HttpMatch<'t> {
    /// A route matched; `params` are the raw (still percent-encoded) path parameters.
    Found {
        /// The route.
        route: &'t Arc<Route>,
        /// Path parameters by name.
        params: Vec<(String, String)>,
    },
    /// The path exists but not for this method.
    MethodNotAllowed {
        /// Methods the path does accept.
        allowed: Vec<Method>,
    },
    /// Nothing serves this path.
    NotFound,
}

/// A route's typed path parameters by name, with the spelling each accepts.
type TypedParams = Box<[(Box<str>, CanonicalForm)]>;

/// An immutable snapshot of all routes.
#[derive(Default)]
pub struct RouteTable {
    by_method: HashMap<Method, matchit::Router<usize>, foldhash::fast::RandomState>,
    by_key: BTreeMap<ApiKey, usize>,
    routes: Vec<Arc<Route>>,
    /// By route index: its typed path parameters and the one spelling each accepts
    /// (computed when the route is added; empty for most routes).
    typed: Vec<TypedParams>,
    /// The pools the routes lead to (replicas of other pools are retired).
    pools: HashSet<PoolId, foldhash::fast::RandomState>,
    /// Which snapshot this is: every built table has a new one (0: the empty default).
    generation: u64,
    /// Upstream routes a local plugin shadows, by key (the first upstream to offer a
    /// key keeps it): what a migration mode other than `local` sends calls to.
    shadowed: HashMap<ApiKey, Arc<Route>>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_key.keys()).finish()
    }
}

impl RouteTable {
    /// Matches a concrete request path. `HEAD` falls back to the `GET` route of the
    /// path (as HTTP defines it, and as FastAPI answers it): the request goes on as
    /// `HEAD`, and no body comes back. A typed path parameter spelled otherwise than
    /// canonically ([`CanonicalForm`]: `/users/00` for `/users/{id}` of an integer)
    /// matches nothing, so no rule or filter ever sees another spelling of a value.
    pub fn match_http(&self, method: &Method, path: &str) -> HttpMatch<'_> {
        let found = self.find(method, path).or_else(|| {
            (method == Method::HEAD)
                .then(|| self.find(&Method::GET, path))
                .flatten()
        });
        if let Some(found) = found {
            return HttpMatch::Found {
                route: &self.routes[*found.value],
                params: found
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            };
        }
        let mut allowed: Vec<Method> = self
            .by_method
            .keys()
            .filter(|m| self.find(m, path).is_some())
            .cloned()
            .collect();
        if allowed.is_empty() {
            HttpMatch::NotFound
        } else {
            if allowed.contains(&Method::GET) && !allowed.contains(&Method::HEAD) {
                allowed.push(Method::HEAD);
            }
            allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            HttpMatch::MethodNotAllowed { allowed }
        }
    }

    /// The route of `method` matching `path` whose typed path parameters are all
    /// spelled canonically.
    fn find<'t, 'p>(&'t self, method: &Method, path: &'p str) -> Option<matchit::Match<'t, 'p, &'t usize>> {
        let found = self.by_method.get(method)?.at(path).ok()?;
        let typed = &self.typed[*found.value];
        let canonical = typed.is_empty()
            || typed
                .iter()
                .all(|(name, form)| found.params.get(name).is_some_and(|raw| form.accepts(raw)));
        canonical.then_some(found)
    }

    /// Finds the route a `call_remote_api` name refers to:
    /// - a function API name (`plugin.Struct.func`);
    /// - `"METHOD /path/template"`;
    /// - `"/path/template"`: the only operation on that path, or, when there are
    ///   several, the first whose signature accepts `args` (GET before POST).
    pub fn by_name(&self, name: &str, args: &Args) -> Option<Arc<Route>> {
        if !name.starts_with('/') {
            if let Some((method, path)) = name.split_once(' ') {
                let method = Method::from_bytes(method.as_bytes()).ok()?;
                let key = ApiKey::Http {
                    method,
                    path: path.trim().to_owned(),
                };
                return self.by_key.get(&key).map(|&i| self.routes[i].clone());
            }
            return self
                .by_key
                .get(&ApiKey::Function(name.to_owned()))
                .map(|&i| self.routes[i].clone());
        }
        let candidates: Vec<&Arc<Route>> = self
            .routes
            .iter()
            .filter(|r| matches!(&r.spec.key, ApiKey::Http { path, .. } if path == name))
            .collect();
        match candidates.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            many => {
                let mut ordered = many.to_vec();
                ordered.sort_by_key(|r| match &r.spec.key {
                    ApiKey::Http { method, .. } if method == Method::GET => 0,
                    ApiKey::Http { method, .. } if method == Method::POST => 1,
                    _ => 2,
                });
                ordered
                    .iter()
                    .find(|r| r.spec.check_args(args).is_ok())
                    .or(ordered.first())
                    .map(|r| (*r).clone())
            }
        }
    }

    /// Which snapshot this is; a later table has a larger generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a route of this table leads to the pool `id`.
    pub fn serves_pool(&self, id: PoolId) -> bool {
        self.pools.contains(&id)
    }

    /// The upstream route a local plugin shadows under `key`, if an upstream offers
    /// one (never returned by [`Self::match_http`]; migration modes use it).
    pub fn shadowed(&self, key: &ApiKey) -> Option<&Arc<Route>> {
        self.shadowed.get(key)
    }

    /// The keys whose upstream route a local plugin shadows.
    pub fn shadowed_keys(&self) -> impl Iterator<Item = &ApiKey> {
        self.shadowed.keys()
    }

    /// Whether anything is registered under this exact key.
    pub fn contains(&self, key: &ApiKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// Every route, sorted by key.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.by_key.values().map(|&i| &self.routes[i])
    }

    /// How many routes the table holds.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// How many HTTP operations and how many function APIs the table holds.
    pub fn counts(&self) -> (usize, usize) {
        let functions = self
            .routes
            .iter()
            .filter(|r| matches!(r.spec.key, ApiKey::Function(_)))
            .count();
        (self.routes.len() - functions, functions)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Why a route was not added to a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// A local plugin already serves this key (expected during migration).
    ShadowedByLocal,
    /// Another source already serves this key.
    TakenBy(String),
    /// The path template clashes with another one.
    Conflict(String),
}

/// Builds a [`RouteTable`], enforcing its invariants.
#[derive(Default)]
pub struct RouteTableBuilder {
    table: RouteTable,
}

impl RouteTableBuilder {
    /// Adds a route.
    ///
    /// # Errors
    /// Why it was skipped; the matched routes are unchanged then. An upstream route
    /// shadowed by a local one is kept aside ([`RouteTable::shadowed`]; the first
    /// upstream to offer the key keeps it) and its pool counts as served.
    pub fn add(&mut self, route: Route) -> Result<(), Skipped> {
        let key = route.spec.key.clone();
        if let Some(&existing) = self.table.by_key.get(&key) {
            let holder = &self.table.routes[existing].target;
            return Err(if holder.is_local() && !route.target.is_local() {
                if let (Target::Upstream(target), false) =
                    (&route.target, self.table.shadowed.contains_key(&key))
                {
                    self.table.pools.insert(target.pool.id());
                    self.table.shadowed.insert(key, Arc::new(route));
                }
                Skipped::ShadowedByLocal
            } else {
                Skipped::TakenBy(holder.describe())
            });
        }
        let index = self.table.routes.len();
        if let ApiKey::Http { method, path } = &key {
            let router = self.table.by_method.entry(method.clone()).or_default();
            router
                .insert(path.clone(), index)
                .map_err(|e| Skipped::Conflict(e.to_string()))?;
        }
        if let Target::Upstream(target) = &route.target {
            self.table.pools.insert(target.pool.id());
        }
        let typed: TypedParams = route
            .spec
            .params
            .iter()
            .filter(|p| p.location == ParamLocation::Path)
            .filter_map(|p| Some((p.name.as_str().into(), p.canonical.clone()?)))
            .collect();
        self.table.typed.push(typed);
        self.table.by_key.insert(key, index);
        self.table.routes.push(Arc::new(route));
        Ok(())
    }

    /// Finishes the snapshot, with a generation of its own.
    pub fn build(mut self) -> RouteTable {
        static GENERATION: AtomicU64 = AtomicU64::new(1);
        self.table.generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        self.table
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{BodySpec, Param, ParamLocation, ValueKind};
    use crate::plugin_spec::{ApiHandler, LocalApi, PluginMeta};
    use crate::upstream::{PoolConfig, PoolShared};
    use serde_json::{json, Value};

    /// A local plugin named `name` serving `keys` (handlers answer `null`).
    pub(crate) fn plugin(name: &str, keys: &[ApiKey]) -> Arc<PluginSpec> {
        let apis = keys
            .iter()
            .map(|key| {
                Arc::new(LocalApi::new(
                    Arc::new(ApiSpec::new(key.clone())),
                    ApiHandler::Call(Box::new(|_, _| Box::pin(async { Ok(Value::Null) }))),
                ))
            })
            .collect();
        Arc::new(PluginSpec {
            meta: PluginMeta {
                name: name.to_owned(),
                ..PluginMeta::default()
            },
            apis,
            on_start: None,
        })
    }

    /// An upstream route for `spec` on a fresh one-endpoint pool.
    pub(crate) fn upstream(spec: ApiSpec) -> Route {
        Route {
            spec: Arc::new(spec),
            target: Target::Upstream(Arc::new(UpstreamTarget {
                pool: PoolShared::new(PoolConfig::single("http://127.0.0.1:9".parse().unwrap())),
                auth: Default::default(),
                filter: None,
            })),
        }
    }

    fn local(plugin: &Arc<PluginSpec>, index: usize) -> Route {
        let api = plugin.apis[index].clone();
        Route {
            spec: api.spec.clone(),
            target: Target::Local {
                plugin: plugin.clone(),
                api,
            },
        }
    }

    fn get(path: &str) -> ApiKey {
        ApiKey::http(Method::GET, path)
    }

    #[test]
    fn a_local_route_shadows_the_upstream_one_whichever_comes_first() {
        let items = plugin("items", &[get("/api/v1/items/{id}")]);
        let mut builder = RouteTableBuilder::default();
        builder.add(local(&items, 0)).unwrap();
        let shadowed = builder.add(upstream(ApiSpec::new(get("/api/v1/items/{id}"))));
        assert_eq!(shadowed, Err(Skipped::ShadowedByLocal));
        let table = builder.build();
        let HttpMatch::Found { route, params } = table.match_http(&Method::GET, "/api/v1/items/7") else {
            panic!("the route matches");
        };
        assert!(route.target.is_local());
        assert_eq!(params, vec![("id".to_owned(), "7".to_owned())]);
        assert!(!table.serves_pool(PoolShared::new(PoolConfig::single("http://127.0.0.1:9".parse().unwrap())).id()));
    }

    /// The upstream route a local plugin shadows stays on the side, for migration
    /// modes: the first upstream to offer the key keeps it, its pool stays served, and
    /// matching still finds the local route.
    #[test]
    fn the_shadowed_upstream_route_is_kept_aside() {
        let items = plugin("items", &[get("/api/v1/items/{id}")]);
        let mut builder = RouteTableBuilder::default();
        builder.add(local(&items, 0)).unwrap();
        let first = upstream(ApiSpec::new(get("/api/v1/items/{id}")));
        let Target::Upstream(first_target) = first.target.clone() else { unreachable!() };
        assert_eq!(builder.add(first), Err(Skipped::ShadowedByLocal));
        let second = upstream(ApiSpec::new(get("/api/v1/items/{id}")));
        let Target::Upstream(second_target) = second.target.clone() else { unreachable!() };
        assert_eq!(builder.add(second), Err(Skipped::ShadowedByLocal));
        let table = builder.build();
        let shadowed = table.shadowed(&get("/api/v1/items/{id}")).expect("kept aside");
        let Target::Upstream(kept) = &shadowed.target else { panic!("an upstream route") };
        assert_eq!(kept.pool.id(), first_target.pool.id(), "the first upstream keeps the key");
        assert!(table.serves_pool(first_target.pool.id()));
        assert!(!table.serves_pool(second_target.pool.id()));
        assert!(table.shadowed(&get("/api/v1/other")).is_none());
        assert_eq!(table.shadowed_keys().collect::<Vec<_>>(), vec![&get("/api/v1/items/{id}")]);
        let HttpMatch::Found { route, .. } = table.match_http(&Method::GET, "/api/v1/items/7") else {
            panic!("the route matches");
        };
        assert!(route.target.is_local(), "matching is unchanged");
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn the_first_upstream_keeps_a_key_and_clashing_templates_are_refused() {
        let mut builder = RouteTableBuilder::default();
        let first = upstream(ApiSpec::new(get("/a/{x}")));
        let Target::Upstream(first_target) = first.target.clone() else { unreachable!() };
        builder.add(first).unwrap();
        assert!(matches!(
            builder.add(upstream(ApiSpec::new(get("/a/{x}")))),
            Err(Skipped::TakenBy(holder)) if holder.starts_with("upstream:")
        ));
        assert!(matches!(builder.add(upstream(ApiSpec::new(get("/a/{y}")))), Err(Skipped::Conflict(_))));
        let table = builder.build();
        assert_eq!(table.len(), 1, "refused routes leave the table unchanged");
        assert!(table.serves_pool(first_target.pool.id()));
    }

    #[test]
    fn head_falls_back_to_get_and_405_lists_the_methods() {
        let mut builder = RouteTableBuilder::default();
        builder.add(upstream(ApiSpec::new(get("/r")))).unwrap();
        builder.add(upstream(ApiSpec::new(ApiKey::http(Method::POST, "/r")))).unwrap();
        let table = builder.build();
        let HttpMatch::Found { route, .. } = table.match_http(&Method::HEAD, "/r") else {
            panic!("HEAD is served by the GET route");
        };
        assert_eq!(route.spec.key, get("/r"));
        let HttpMatch::MethodNotAllowed { allowed } = table.match_http(&Method::DELETE, "/r") else {
            panic!("the path exists for other methods");
        };
        assert_eq!(allowed, vec![Method::GET, Method::HEAD, Method::POST]);
        assert!(matches!(table.match_http(&Method::GET, "/nothing"), HttpMatch::NotFound));
    }

    #[test]
    fn names_are_looked_up_by_function_method_and_path_then_by_arguments() {
        let mut post = ApiSpec::new(ApiKey::http(Method::POST, "/m"));
        post.body = BodySpec::Json {
            arg: "model".to_owned(),
            required: true,
            schema: Value::Null,
        };
        let mut query = ApiSpec::new(get("/m"));
        query.params.push(Param {
            name: "q".to_owned(),
            location: ParamLocation::Query,
            kind: ValueKind::String,
            items: None,
            required: true,
            schema: Value::Null,
            canonical: None,
        });
        let funcs = plugin("f", &[ApiKey::Function("f.FPlugin.run".to_owned())]);
        let mut builder = RouteTableBuilder::default();
        builder.add(upstream(post)).unwrap();
        builder.add(upstream(query)).unwrap();
        builder.add(local(&funcs, 0)).unwrap();
        let table = builder.build();
        let key = |name: &str, args: Value| {
            let args = args.as_object().cloned().unwrap_or_default();
            table.by_name(name, &args).map(|r| r.spec.key.clone())
        };
        assert_eq!(key("f.FPlugin.run", json!({})), Some(ApiKey::Function("f.FPlugin.run".into())));
        assert_eq!(key("POST /m", json!({})), Some(ApiKey::http(Method::POST, "/m")));
        assert_eq!(key("/m", json!({"q": "x"})), Some(get("/m")), "GET first when its arguments fit");
        assert_eq!(key("/m", json!({"model": {}})), Some(ApiKey::http(Method::POST, "/m")));
        assert_eq!(key("/m", json!({"nothing": 1})), Some(get("/m")), "else GET before POST");
        assert_eq!(key("/missing", json!({})), None);
        assert_eq!(key("g.GPlugin.run", json!({})), None);
    }

    /// A typed path parameter matches only in its canonical spelling, for every
    /// method (HEAD and the 405 listing too); untyped parameters take anything.
    #[test]
    fn typed_path_parameters_match_only_canonical_spellings() {
        let mut typed = ApiSpec::new(get("/users/{uid}"));
        typed.params.push(Param {
            name: "uid".to_owned(),
            location: ParamLocation::Path,
            kind: ValueKind::Integer,
            items: None,
            required: true,
            schema: json!({"type": "integer"}),
            canonical: Some(CanonicalForm::Integer),
        });
        let mut builder = RouteTableBuilder::default();
        builder.add(upstream(typed)).unwrap();
        builder.add(upstream(ApiSpec::new(get("/names/{name}")))).unwrap();
        let table = builder.build();
        assert!(matches!(table.match_http(&Method::GET, "/users/0"), HttpMatch::Found { .. }));
        assert!(matches!(table.match_http(&Method::HEAD, "/users/10"), HttpMatch::Found { .. }));
        for spelling in ["00", "+0", "0%20", "1.0", "0_1", "-0"] {
            let path = format!("/users/{spelling}");
            assert!(matches!(table.match_http(&Method::GET, &path), HttpMatch::NotFound), "{path}");
            assert!(matches!(table.match_http(&Method::DELETE, &path), HttpMatch::NotFound), "{path}");
        }
        assert!(matches!(table.match_http(&Method::GET, "/names/00"), HttpMatch::Found { .. }));
    }

    #[test]
    fn every_table_has_a_new_generation() {
        let a = RouteTableBuilder::default().build();
        let b = RouteTableBuilder::default().build();
        assert!(b.generation() > a.generation());
        assert_eq!(RouteTable::default().generation(), 0);
    }
}
