//! Turning what the control plane knows into the proxied routes the registry
//! publishes: pools by members (kept so that a pool keeps its identity, and its
//! replicas on every worker, across re-discoveries), keys and path filters per route,
//! the warnings said once (signature conflicts, rules that do not cover what they
//! seem to), and the log of what a publication changed. Owned by the control plane
//! (`super::control`), which serializes publications; nothing here is locked.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use framex_actors::upstream::wire::header::HeaderValue;
use framex_actors::upstream::{proxy_function, EndpointKeys, PoolConfig, PoolShared, RequestPathFilter, UpstreamTarget};
use framex_actors::{describe_skipped, ApiKey, ApiSpec, Engine, Error, Escaped, RouteReport, UpstreamRoute};

use super::merge;
use super::report::answered_by;
use super::upstream::{Known, Upstream};
use crate::config::{rule_lint, AuthRules, MigrateConfig, PathFilter};

/// One endpoint of a pool: an upstream (index into the upstreams) and, when its host
/// is a name, one of its addresses.
type Member = (usize, Option<SocketAddr>);

/// The filters of every upstream of a pool, all of which must allow a path.
struct MembersFilter(Vec<Arc<PathFilter>>);

impl RequestPathFilter for MembersFilter {
    fn allows(&self, path: &str) -> bool {
        self.0.iter().all(|f| f.allows_path(path))
    }
}

/// What building the routes needs and remembers between publications.
pub(super) struct Publisher {
    /// Limits shared by every pool (its endpoints and policy are filled per pool).
    pub(super) template: PoolConfig,
    pub(super) auth: AuthRules,
    /// `proxy_functions`: each function API with the upstream (index) serving it.
    pub(super) functions: Vec<(usize, Arc<ApiSpec>)>,
    /// `[auth]` and `[plugins.proxy.auth]` rules, for the discovery-time warnings
    /// about rules that do not cover what they seem to (see `rule_lint`).
    pub(super) rule_groups: Vec<rule_lint::RuleGroup>,
    /// `[plugins.proxy.migrate]`, for the log to say who answers a route kept aside.
    pub(super) migrate: MigrateConfig,
    /// Pools by their members.
    pools: HashMap<Vec<Member>, Arc<PoolShared>>,
    /// Signature conflicts already warned about (upstream index, key), so that each
    /// is logged once.
    conflicts: BTreeSet<(usize, ApiKey)>,
    /// Rule warnings already logged, so that each is logged once per rule and
    /// upstream.
    rules_warned: HashSet<String>,
}

impl Publisher {
    /// A publisher with no pool made and nothing warned yet.
    pub(super) fn new(
        template: PoolConfig,
        auth: AuthRules,
        functions: Vec<(usize, Arc<ApiSpec>)>,
        rule_groups: Vec<rule_lint::RuleGroup>,
        migrate: MigrateConfig,
    ) -> Self {
        Publisher {
            template,
            auth,
            functions,
            rule_groups,
            migrate,
            pools: HashMap::new(),
            conflicts: BTreeSet::new(),
            rules_warned: HashSet::new(),
        }
    }

    /// The proxied routes of what every upstream last published (see `merge`), with
    /// their pools; warns about new conflicts and rules once, and forgets the pools
    /// no route leads to any more (requests in flight keep theirs).
    pub(super) fn routes(&mut self, upstreams: &[Arc<Upstream>], known: &[Arc<Known>]) -> Vec<UpstreamRoute> {
        let published: Vec<_> = known.iter().map(|k| k.operations.clone()).collect();
        self.warn_about_rules(upstreams, &published);
        let merged = merge::merge(&published, &self.functions);
        for (i, key) in merged.conflicts.difference(&self.conflicts) {
            let first = merged
                .routes
                .iter()
                .find(|(spec, _)| spec.key == *key)
                .map_or("another URL", |(_, members)| upstreams[members[0]].config.url.as_str());
            log::warn!(
                "proxy {}: {} differs in signature from {first}'s; not pooled with it",
                upstreams[*i].config.url,
                Escaped(key)
            );
        }
        self.conflicts = merged.conflicts;
        let endpoints: Vec<Vec<Option<SocketAddr>>> = upstreams
            .iter()
            .zip(known)
            .map(|(u, k)| u.endpoints(k).into_iter().map(|(addr, _)| addr).collect())
            .collect();
        let routes: Vec<UpstreamRoute> = merged
            .routes
            .iter()
            .map(|(spec, members_of)| {
                // Every address of every upstream publishing the operation.
                let members: Vec<Member> = members_of
                    .iter()
                    .flat_map(|&i| endpoints[i].iter().map(move |addr| (i, *addr)))
                    .collect();
                // A proxy function travels on FrameX's proxy-function path.
                let path = match &spec.key {
                    ApiKey::Http { path, .. } => path.as_str(),
                    ApiKey::Function(_) => proxy_function::PATH,
                };
                UpstreamRoute {
                    spec: spec.clone(),
                    target: Arc::new(UpstreamTarget {
                        pool: self.pool(upstreams, known, &members),
                        auth: self.keys(upstreams, &members, path),
                        filter: match &spec.key {
                            ApiKey::Http { .. } => request_filter(upstreams, members_of),
                            ApiKey::Function(_) => None,
                        },
                    }),
                }
            })
            .collect();
        let used: HashSet<_> = routes.iter().map(|r| r.target.pool.id()).collect();
        self.pools.retain(|_, pool| used.contains(&pool.id()));
        routes
    }

    /// Logs what a publication changed (or why it failed).
    pub(super) fn log_report(&self, engine: &Engine, report: Result<RouteReport, Error>) {
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                log::error!("proxy: routes could not be published: {}", Escaped(&e));
                return;
            }
        };
        for (key, pool) in &report.added {
            log::info!("proxy: registered {} -> {pool}", Escaped(key));
        }
        for (key, pool) in &report.moved {
            log::info!("proxy: {} now served by {pool}", Escaped(key));
        }
        for key in &report.removed {
            log::info!("proxy: removed {}", Escaped(key));
        }
        let table = (!self.migrate.is_empty() && !report.skipped.is_empty()).then(|| engine.table());
        for (key, why) in &report.skipped {
            // A route a local plugin serves but a migration entry sends upstream is not
            // "skipped": say who answers it.
            let local = table.as_ref().and_then(|t| t.routes().find(|r| r.spec.key == *key).map(|r| (t, r)));
            let migrating = local.map(|(t, r)| (answered_by(r, t, &self.migrate), r.target.describe()));
            match migrating.filter(|(who, plain)| who != plain) {
                Some((who, _)) => {
                    log::info!("proxy: {} kept for migration: {}", Escaped(key), Escaped(&who));
                }
                _ => log::info!("proxy: skipped {}: {}", Escaped(key), Escaped(&describe_skipped(why))),
            }
        }
    }

    /// The key each member of a pool is sent for route `path`: its URL's own rule,
    /// else the global one (which so reaches only the URLs serving the route).
    fn keys(&self, upstreams: &[Arc<Upstream>], members: &[Member], path: &str) -> EndpointKeys {
        EndpointKeys::new(
            members
                .iter()
                .map(|&(i, _)| {
                    upstreams[i]
                        .config
                        .auth
                        .key_or(&self.auth, path)
                        .and_then(|key| HeaderValue::from_str(key).ok())
                })
                .collect(),
        )
    }

    /// Logs, once per rule and upstream, the rules that do not cover what they seem
    /// to under the routes an upstream publishes (an exact path under a typed
    /// template, `"/x/*"` beside a route `/x`).
    fn warn_about_rules(&mut self, upstreams: &[Arc<Upstream>], published: &[Option<Vec<Arc<ApiSpec>>>]) {
        for (upstream, operations) in upstreams.iter().zip(published) {
            let Some(operations) = operations else { continue };
            let config = &upstream.config;
            let mut groups = self.rule_groups.clone();
            groups.extend(rule_lint::upstream_groups(config.url.as_str(), &config.enable, &config.disable));
            for warning in rule_lint::warnings(&groups, operations.iter().map(|spec| &**spec)) {
                let warning = format!("proxy {}: {warning}", config.url);
                if self.rules_warned.insert(warning.clone()) {
                    log::warn!("{warning}");
                }
            }
        }
    }

    /// The pool of `members`, made on first use.
    fn pool(&mut self, upstreams: &[Arc<Upstream>], known: &[Arc<Known>], members: &[Member]) -> Arc<PoolShared> {
        let template = &self.template;
        self.pools
            .entry(members.to_vec())
            .or_insert_with(|| {
                let lead = &upstreams[members[0].0].config;
                let mut config = template.clone();
                config.endpoints = members.iter().map(|&(i, _)| upstreams[i].config.url.clone()).collect();
                config.addresses = members.iter().map(|&(_, addr)| addr).collect();
                config.balance = lead.balance.into();
                let stats = members
                    .iter()
                    .map(|&(i, addr)| {
                        upstreams[i]
                            .endpoints(&known[i])
                            .into_iter()
                            .find(|(a, _)| *a == addr)
                            .map_or_else(|| upstreams[i].stats.clone(), |(_, s)| s)
                    })
                    .collect();
                PoolShared::with_stats(config, stats)
            })
            .clone()
    }
}

/// The per-request path filter of a route served by `members`: a concrete path is
/// forwarded only when every member's filters allow it (`None`: all allow all).
fn request_filter(upstreams: &[Arc<Upstream>], members: &[usize]) -> Option<Arc<dyn RequestPathFilter>> {
    let filters: Vec<Arc<PathFilter>> = members
        .iter()
        .map(|&i| upstreams[i].filter.clone())
        .filter(|f| !f.is_open())
        .collect();
    (!filters.is_empty()).then(|| Arc::new(MembersFilter(filters)) as Arc<dyn RequestPathFilter>)
}
