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
    // FrameX answers `f"{message},{model.model_dump()}"`: Python's dict repr.
    Ok(format!(
        "{},{{'id': {}, 'name': {}}}",
        args.message,
        args.model.id,
        python_str_repr(&args.model.name)
    ))
}

/// Python's `repr()` of a string: single quotes unless the text holds one and no
/// double quote; backslashes, the chosen quote and control characters escaped.
fn python_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

async fn echo_stream(args: Message, _: Ctx, out: Emitter) -> Result<(), Error> {
    for c in STREAM_PREFIX.chars().chain(args.message.chars()) {
        out.chunk(c.to_string()).await?;
    }
    Ok(())
}

async fn confess(args: Message, _: Ctx) -> Result<String, Error> {
    Ok(format!("I am calling with message={}", args.message))
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
        .expect("the echo plugin's declarations are fixed (its unit test builds them)")
}

#[cfg(test)]
mod tests {
    use super::python_str_repr;

    #[test]
    fn the_plugin_builds() {
        assert_eq!(super::plugin().apis.len(), 4);
    }

    #[test]
    fn strings_are_quoted_like_python_repr() {
        assert_eq!(python_str_repr("echo"), "'echo'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
        assert_eq!(python_str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(python_str_repr("tab\there"), "'tab\\there'");
    }
}
