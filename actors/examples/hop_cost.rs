//! What the mailbox hop to an `UpstreamPool` costs a `CallRemote`: `n` calls of an
//! upstream route against an HTTP/1.1 server in this process, made
//! - `router`: as a plugin does, `CallRemote` → Router → `CallUpstream` → UpstreamPool;
//! - `pool`: `CallUpstream` sent to the pool's actor (one mailbox round trip);
//! - `direct`: on the replica the actor owns (no mailbox, as HTTP forwarding does).
//!
//! Run under callgrind with two values of `n` per mode; (count(1200) − count(200)) /
//! 1000 is a mode's instructions per call, and `pool − direct` the hop's:
//! `valgrind --tool=callgrind target/release/examples/hop_cost pool 1200`.

use std::sync::Arc;

use framex_actors::upstream::{CallUpstream, PoolConfig, PoolShared, UpstreamTarget};
use framex_actors::{ApiKey, ApiSpec, Args, CallContext, Ctx, Engine, Method, UpstreamRoute};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().unwrap_or_else(|| "actor".to_owned());
    let n: u32 = argv.next().as_deref().unwrap_or("1000").parse()?;
    actix_rt::System::new().block_on(async move {
        let url = framex_actors::test_util::envelope_server(1.into(), Default::default()).await?;
        let engine = Engine::start();
        let worker = engine.start_worker();
        let pool = PoolShared::new(PoolConfig::single(url.parse()?));
        let spec = Arc::new(ApiSpec::new(ApiKey::http(Method::GET, "/one")));
        let target = Arc::new(UpstreamTarget { pool: pool.clone(), auth: Default::default(), filter: None });
        let route = UpstreamRoute { spec: spec.clone(), target: target.clone() };
        engine.set_upstream_routes("bench", vec![route]).await?;
        let caller = Ctx::detached(worker.router.clone());
        for _ in 0..n {
            match mode.as_str() {
                "direct" => {
                    let replica = worker.pools.replica(&pool);
                    replica.call(&target, &spec, &Args::new(), CallContext::new()).await?;
                }
                "pool" => {
                    let call = CallUpstream { spec: spec.clone(), target: target.clone(), args: Args::new(), ctx: CallContext::new() };
                    worker.pools.actor(&pool).send(call).await??;
                }
                _ => {
                    caller.call_remote("/one", ()).await?;
                }
            }
        }
        Ok(())
    })
}
