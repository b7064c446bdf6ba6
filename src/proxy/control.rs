//! The proxy's control plane: one actor, [`ProxyControl`], the one owner of what
//! changes while the proxy runs — what each upstream URL last published and the
//! addresses of its name ([`Known`]), the pools by members and the warnings already
//! given ([`Publisher`]) — and of the work that changes it: discovery (with backoff
//! while an upstream is down), active health checks and DNS re-resolution run on its
//! timers as futures of its own context, and their results come back to it to be
//! applied. It publishes to the engine's registry one publication at a time (a
//! change while one is under way is published right after it). It runs on the
//! arbiter that started the proxy, off the request path: requests never message it;
//! the status page and `/ready` read the snapshot of [`Known`] it stores after each
//! change (an `arc-swap`, no lock). Stopping it drops its timers and the futures in
//! flight, so `stop` stops everything at once.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use framex_actors::upstream::UpstreamUrl;
use framex_actors::{ApiSpec, Escaped};
use futures::channel::oneshot;
use futures::future::join_all;

use super::dns::Resolver;
use super::publish::Publisher;
use super::tasks;
use super::upstream::{DiscoverError, Known};
use super::Shared;

/// The registry source under which the proxy publishes its routes.
const SOURCE: &str = "proxy";

/// What a discovery of one upstream gives.
type Discovered = Result<Vec<Arc<ApiSpec>>, DiscoverError>;

/// The control plane of one proxy (see the module doc).
pub(super) struct ProxyControl {
    shared: Arc<Shared>,
    /// Per upstream (in config order), what is known of it; stored as a snapshot in
    /// `shared.known` after every change.
    known: Vec<Arc<Known>>,
    resolver: Arc<Resolver>,
    publisher: Publisher,
    publication: Publication,
    /// Per upstream, where its re-discovery stands.
    discovery: Vec<Discovery>,
    /// `discovery_interval` (`None`: an upstream that answered is not asked again).
    interval: Option<Duration>,
}

/// Where the re-discovery of one upstream stands.
struct Discovery {
    /// Whether its last discovery worked.
    healthy: bool,
    /// The wait before the next attempt while it does not.
    backoff: Duration,
}

/// Publications, one at a time.
#[derive(Default)]
struct Publication {
    /// Whether one is under way.
    running: bool,
    /// Whether something changed since the one under way took its routes.
    again: bool,
    /// Who waits for the next publication to be done.
    waiting: Vec<oneshot::Sender<()>>,
}

impl ProxyControl {
    /// The control plane of `shared`, knowing `known` of its upstreams at first.
    pub(super) fn new(shared: Arc<Shared>, resolver: Resolver, publisher: Publisher) -> Self {
        let known = shared.known.load().as_ref().clone();
        let discovery = known.iter().map(|_| Discovery { healthy: true, backoff: tasks::FIRST_BACKOFF }).collect();
        ProxyControl {
            shared,
            known,
            resolver: Arc::new(resolver),
            publisher,
            publication: Publication::default(),
            discovery,
            interval: None,
        }
    }

    /// Changes what is known of upstream `i` with `change`, and stores the snapshot.
    fn change_known<R>(&mut self, i: usize, change: impl FnOnce(&mut Known) -> R) -> R {
        let result = change(Arc::make_mut(&mut self.known[i]));
        self.store_known();
        result
    }

    /// Stores the snapshot of what is known now, for the status page and `/ready`.
    fn store_known(&self) {
        self.shared.known.store(Arc::new(self.known.clone()));
    }

    /// Publishes the routes of what is known now, after the publication under way if
    /// there is one; `done` hears when they are in the registry.
    fn publish(&mut self, ctx: &mut Context<Self>, done: Option<oneshot::Sender<()>>) {
        self.publication.waiting.extend(done);
        if self.publication.running {
            self.publication.again = true;
            return;
        }
        self.publication.running = true;
        let waiting = std::mem::take(&mut self.publication.waiting);
        let routes = self.publisher.routes(&self.shared.upstreams, &self.known);
        let engine = self.shared.engine.clone();
        let set = async move { engine.set_upstream_routes(SOURCE, routes).await };
        ctx.spawn(set.into_actor(self).map(move |report, act, ctx| {
            act.publisher.log_report(&act.shared.engine, report);
            for done in waiting {
                let _ = done.send(());
            }
            act.publication.running = false;
            if std::mem::take(&mut act.publication.again) {
                act.publish(ctx, None);
            }
        }));
    }

    /// One discovery of upstream `i`, from what is known of it now.
    fn attempt(&self, i: usize) -> impl std::future::Future<Output = Discovered> + 'static {
        let upstream = self.shared.upstreams[i].clone();
        let known = &self.known[i];
        let address = known.addresses.first().map(|(a, _)| *a);
        let first_time = known.operations.is_none();
        async move { upstream.discover(address, first_time).await }
    }

    /// Keeps what a discovery of upstream `i` found; returns why it failed.
    fn discovered(&mut self, i: usize, result: Discovered) -> Result<(), DiscoverError> {
        let state = &mut self.discovery[i];
        match result {
            Ok(operations) => {
                state.healthy = true;
                state.backoff = tasks::FIRST_BACKOFF;
                self.change_known(i, |known| known.operations = Some(operations));
                Ok(())
            }
            Err(e) => {
                state.healthy = false;
                Err(e)
            }
        }
    }

    /// Discovers upstream `i` again after its wait: `interval` while it answers,
    /// backoff from 1 s to 30 s while it does not; publishes after each success.
    fn keep_discovering(&mut self, i: usize, ctx: &mut Context<Self>) {
        let state = &self.discovery[i];
        let wait = match (state.healthy, self.interval) {
            (true, Some(every)) => every,
            (true, None) => return,
            (false, _) => state.backoff,
        };
        ctx.run_later(wait, move |act, ctx| {
            let was_healthy = act.discovery[i].healthy;
            ctx.spawn(act.attempt(i).into_actor(act).map(move |result, act, ctx| {
                let url = act.shared.upstreams[i].config.url.clone();
                match act.discovered(i, result) {
                    Ok(()) => {
                        if !was_healthy {
                            log::info!("proxy {url}: discovered after retrying");
                        }
                        act.publish(ctx, None);
                    }
                    Err(e) => {
                        if was_healthy {
                            log::warn!("proxy {url}: re-discovery failed, keeping its routes: {}", Escaped(&e));
                        } else {
                            log::debug!("proxy {url}: still unreachable: {}", Escaped(&e));
                        }
                        let state = &mut act.discovery[i];
                        state.backoff = tasks::next_backoff(state.backoff);
                    }
                }
                act.keep_discovering(i, ctx);
            }));
        });
    }

    /// Probes every endpoint (every upstream URL, every address of a named one) with
    /// `GET {url}{path}` each `every` (counted from the end of the previous round).
    fn keep_checking(&mut self, path: Arc<str>, every: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(every, move |act, ctx| {
            let patience = every.max(Duration::from_secs(1));
            let probes: Vec<_> = act
                .shared
                .upstreams
                .iter()
                .zip(&act.known)
                .flat_map(|(upstream, known)| {
                    let path = &path;
                    upstream
                        .endpoints(known)
                        .into_iter()
                        .map(move |(addr, stats)| tasks::probe(upstream.clone(), addr, stats, path.clone(), patience))
                })
                .collect();
            ctx.spawn(join_all(probes).into_actor(act).map(move |_, act, ctx| act.keep_checking(path, every, ctx)));
        });
    }

    /// Resolves every named upstream again and keeps the answers; gives whether any
    /// address set changed, and the shortest TTL the answers gave. What is known of an
    /// upstream is copied (and the snapshot stored, once) only when an answer changes
    /// it: a round that finds every name as it was touches nothing.
    fn resolve_all(&mut self) -> impl ActorFuture<Self, Output = (bool, Option<Duration>)> + 'static {
        let lookups = self.shared.upstreams.iter().enumerate().filter_map(|(i, upstream)| {
            let (host, port) = upstream.named.clone()?;
            let resolver = self.resolver.clone();
            Some(async move { (i, resolver.resolve(&host, port).await) })
        });
        join_all(lookups).into_actor(self).map(|answers, act, _| {
            let (mut moved, mut changed) = (false, false);
            let mut ttl: Option<Duration> = None;
            for (i, answer) in answers {
                let (change, valid) = act.shared.upstreams[i].resolved(&act.known[i], answer);
                if let Some(change) = change {
                    moved |= change.apply(Arc::make_mut(&mut act.known[i]));
                    changed = true;
                }
                ttl = match (ttl, valid) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            if changed {
                act.store_known();
            }
            (moved, ttl)
        })
    }

    /// Resolves the names again after `wait`; when an address set changed, the
    /// routes are published again: new addresses join their pools, removed ones get
    /// no new requests and finish those in flight.
    fn keep_resolving(&mut self, every: Duration, wait: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(wait, move |act, ctx| {
            ctx.spawn(act.resolve_all().map(move |(changed, ttl), act, ctx| {
                if changed {
                    act.publish(ctx, None);
                }
                act.keep_resolving(every, tasks::dns_wait(ttl, every), ctx);
            }));
        });
    }
}

impl Actor for ProxyControl {
    type Context = Context<Self>;
}

/// Discover every upstream once (side by side) and publish; answers the upstreams
/// that failed, with why, once the routes are in the registry.
pub(super) struct DiscoverAll;

impl Message for DiscoverAll {
    type Result = Vec<(UpstreamUrl, DiscoverError)>;
}

impl Handler<DiscoverAll> for ProxyControl {
    type Result = ResponseActFuture<Self, Vec<(UpstreamUrl, DiscoverError)>>;

    fn handle(&mut self, _: DiscoverAll, _: &mut Context<Self>) -> Self::Result {
        let attempts: Vec<_> = (0..self.known.len()).map(|i| self.attempt(i)).collect();
        Box::pin(join_all(attempts).into_actor(self).then(|results, act, ctx| {
            let failed: Vec<_> = results
                .into_iter()
                .enumerate()
                .filter_map(|(i, result)| {
                    let e = act.discovered(i, result).err()?;
                    Some((act.shared.upstreams[i].config.url.clone(), e))
                })
                .collect();
            let (done, published) = oneshot::channel();
            act.publish(ctx, Some(done));
            async move {
                let _ = published.await;
                failed
            }
            .into_actor(act)
        }))
    }
}

/// Resolve every named upstream once (no publication); answers once the addresses
/// are kept.
pub(super) struct ResolveAll;

impl Message for ResolveAll {
    type Result = ();
}

impl Handler<ResolveAll> for ProxyControl {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: ResolveAll, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.resolve_all().map(|_, _, _| ()))
    }
}

/// Background work to keep doing until the proxy stops.
pub(super) enum Keep {
    /// Re-discover every upstream every `interval` while it answers (never when
    /// `None`), with backoff while it does not (as its last discovery left it).
    Discovering(Option<Duration>),
    /// Probe every endpoint with `GET {url}{path}` every `every`.
    Checking(String, Duration),
    /// Resolve the names again every `every` (sooner when a TTL is shorter).
    Resolving(Duration),
}

impl Message for Keep {
    type Result = ();
}

impl Handler<Keep> for ProxyControl {
    type Result = ();

    fn handle(&mut self, keep: Keep, ctx: &mut Context<Self>) {
        match keep {
            Keep::Discovering(interval) => {
                self.interval = interval;
                for i in 0..self.known.len() {
                    self.keep_discovering(i, ctx);
                }
            }
            Keep::Checking(path, every) => self.keep_checking(path.into(), every, ctx),
            Keep::Resolving(every) => self.keep_resolving(every, every, ctx),
        }
    }
}

/// Stop now: timers and the work in flight are dropped.
pub(super) struct Stop;

impl Message for Stop {
    type Result = ();
}

impl Handler<Stop> for ProxyControl {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DNS round that finds every name as it was copies nothing and stores no new
    /// snapshot (the status page and `/ready` keep reading the one they have); the
    /// first round, which learns the addresses, does store one.
    #[actix_rt::test]
    async fn a_dns_round_that_changes_nothing_stores_nothing() {
        let toml = "load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"http://localhost:9\"]\n";
        let config = crate::config::Config::from_toml_str(toml, "test config").unwrap();
        let proxy = super::super::Proxy::new(&framex_actors::Engine::start(), &config);
        let before = proxy.shared.known.load_full();
        proxy.control.send(ResolveAll).await.unwrap();
        let first = proxy.shared.known.load_full();
        assert!(!Arc::ptr_eq(&before, &first), "the first round learns the addresses");
        assert!(!first[0].addresses.is_empty() && first[0].dns_error.is_none(), "localhost resolves");
        for _ in 0..3 {
            proxy.control.send(ResolveAll).await.unwrap();
        }
        let after = proxy.shared.known.load_full();
        assert!(Arc::ptr_eq(&first, &after), "rounds finding the same addresses store no new snapshot");
        assert!(Arc::ptr_eq(&first[0], &after[0]), "nor copy what is known of the upstream");
        proxy.stop().await;
    }
}
