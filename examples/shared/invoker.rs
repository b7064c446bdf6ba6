//! The `invoker` plugin: FrameX's example of calling other APIs from a plugin.
//!
//! Its handlers call a legacy service's APIs through `call_remote_api` — served by the
//! proxy today, by a local plugin once one exists, with no change here.

use std::sync::Arc;

use framex::actors::{Error, PluginSpec};
use framex::plugin::{Ctx, PluginBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

/// No arguments.
#[derive(Deserialize, JsonSchema)]
pub struct NoArgs {}

/// `GET /api/v1/invoker/version`: the legacy service's version, through the engine.
async fn version(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    cx.call_remote_api("/api/v1/base/version", ()).await
}

/// `GET /api/v1/invoker/match`: a call with a JSON model argument.
async fn matched(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    cx.call_remote_api("/api/v1/base/match", json!({ "model": { "name": "test" } }))
        .await
}

/// Builds the plugin.
pub fn plugin() -> Arc<PluginSpec> {
    PluginBuilder::new("invoker")
        .version("0.1.0")
        .description("Calls a legacy service's APIs through call_remote_api")
        .requires(["/api/v1/base/version", "/api/v1/base/match"])
        .get("/api/v1/invoker/version", version)
        .get("/api/v1/invoker/match", matched)
        .build().expect("plugin declarations are valid")
}
