//! In-process `CallRemote` round trips through the engine, no HTTP:
//! - `detached → plugin`: caller outside any plugin → Router → PluginActor → back;
//! - `plugin → plugin`: the same into plugin A, whose handler calls plugin B through
//!   its own `call_remote_api` (Router → PluginActor B) before answering.
//!
//! Run with `cargo bench --bench call_remote`.

// criterion_group! generates a function with no doc comment.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use framex::actors::{Ctx, Engine, Error};
use framex::plugin::PluginBuilder;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, JsonSchema)]
struct Input {
    n: i64,
}

async fn double(args: Input, _: Ctx) -> Result<i64, Error> {
    Ok(args.n * 2)
}

async fn relay(args: Input, cx: Ctx) -> Result<Value, Error> {
    cx.call_remote_api("b.BPlugin.double", json!({ "n": args.n })).await
}

fn bench(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let cx = system.block_on(async {
        let engine = Engine::start();
        engine
            .register_plugin(PluginBuilder::new("b").function("double", double).build().expect("plugin declarations are valid"))
            .await
            .unwrap();
        engine
            .register_plugin(
                PluginBuilder::new("a")
                    .requires(["b.BPlugin.double"])
                    .function("relay", relay)
                    .build().expect("plugin declarations are valid"),
            )
            .await
            .unwrap();
        Ctx::detached(engine.start_router())
    });
    let mut group = c.benchmark_group("call_remote");
    group.measurement_time(Duration::from_secs(4));
    for (name, api) in [("detached_to_plugin", "b.BPlugin.double"), ("plugin_to_plugin", "a.APlugin.relay")] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        let v = cx.call_remote_api(api, json!({ "n": i as i64 })).await.unwrap();
                        assert_eq!(v, json!(i as i64 * 2));
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
