//! The `echo` plugin, answering like FrameX's built-in one.

use std::sync::Arc;

use framex_actors::{Error, PluginSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plugin::{Ctx, Emitter, PluginBuilder};

/// Text every `echo_stream` reply starts with.
pub const STREAM_PREFIX: &str = "This message is being streamed., ";

/// Query arguments of the echo routes.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Message {
    /// The text to echo.
    pub message: String,
}

/// The body of `echo_model`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct EchoModel {
    /// An identifier.
    pub id: i64,
    /// A name.
    #[serde(default = "default_name")]
    pub name: String,
}

fn default_name() -> String {
    "echo".to_owned()
}

/// Arguments of `echo_model`: a query `message` and the JSON body `model`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoModelArgs {
    /// The text to echo.
    pub message: String,
    /// The body.
    pub model: EchoModel,
}

async fn echo(args: Message, _: Ctx) -> Result<String, Error> {
    Ok(args.message)
}

async fn echo_model(args: EchoModelArgs, _: Ctx) -> Result<String, Error> {
    Ok(format!("{},{},{}", args.message, args.model.id, args.model.name))
}

async fn echo_stream(args: Message, _: Ctx, out: Emitter) -> Result<(), Error> {
    for c in STREAM_PREFIX.chars().chain(args.message.chars()) {
        out.chunk(c.to_string()).await?;
    }
    Ok(())
}

async fn confess(args: Message, _: Ctx) -> Result<String, Error> {
    Ok(format!("I confess: {}", args.message))
}

/// Builds the plugin.
pub fn plugin() -> Arc<PluginSpec> {
    PluginBuilder::new("echo")
        .version(crate::VERSION)
        .description("Echoes messages back: plain, with a model, streamed, and as a function API")
        .author("framex-rs")
        .struct_name("EchoPlugin")
        .get("/api/v1/echo", echo)
        .post("/api/v1/echo_model", echo_model)
        .stream("/api/v1/echo_stream", echo_stream)
        .function("confess", confess)
        .build()
}
