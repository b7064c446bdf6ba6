//! What a plugin's handler gets besides its arguments: [`Ctx`], who it is and the way
//! to call other APIs.
//!
//! A `Ctx` reaches the router as a `Recipient<CallRemote>`: it depends on the message,
//! not on the actor that routes it.

use std::fmt;
use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::api::Args;
use crate::call::{CallContext, CallRemote, Reply};
use crate::error::{Error, Fault};
use crate::stream::{bridge, ChunkStream};

/// What a handler gets besides its arguments: who it is, the call's context, and the
/// way to call other APIs.
#[derive(Clone)]
pub struct Ctx {
    plugin: Arc<str>,
    declared: Arc<[String]>,
    config: Arc<Value>,
    /// Where `call_remote` sends: the arbiter's router (shared, so a clone per call
    /// is a reference count, not an allocation).
    router: Arc<Recipient<CallRemote>>,
    call: CallContext,
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("plugin", &self.plugin)
            .field("request_id", &self.call.request_id)
            .finish()
    }
}

impl Ctx {
    /// A context for code running outside any plugin (embedders, tests), allowed to
    /// call every API.
    pub fn detached(router: impl Into<Recipient<CallRemote>>) -> Self {
        Ctx {
            plugin: Arc::from(""),
            declared: Arc::from(Vec::new()),
            config: Arc::new(Value::Null),
            router: Arc::new(router.into()),
            call: CallContext::new(),
        }
    }

    /// The context of one call of plugin `plugin` (its declarations and config).
    pub(crate) fn of_plugin(
        plugin: Arc<str>,
        declared: Arc<[String]>,
        config: Arc<Value>,
        router: Arc<Recipient<CallRemote>>,
        call: CallContext,
    ) -> Self {
        Ctx { plugin, declared, config, router, call }
    }

    /// The plugin's own `[plugins.<name>]` table read as `T` (FrameX's
    /// `get_plugin_config`); without a table, `T` from an empty one (its defaults).
    /// Derive `T` with `#[serde(deny_unknown_fields)]` to refuse unknown keys, as
    /// FrameX-kit does.
    ///
    /// # Errors
    /// [`Error::PluginConfig`] naming the table and what does not fit.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        let value = match &*self.config {
            Value::Null => Value::Object(serde_json::Map::new()),
            v => v.clone(),
        };
        serde_json::from_value(value).map_err(|e| Error::PluginConfig {
            plugin: self.plugin.to_string(),
            reason: without_values(&e.to_string()),
        })
    }

    /// The name of the plugin this handler belongs to.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The call's context (deadline, request id, hops).
    pub fn call_context(&self) -> &CallContext {
        &self.call
    }

    /// Calls another API, local or proxied, and returns its value (an upstream
    /// FrameX envelope is unwrapped to its `data`).
    ///
    /// `args` is anything that serializes to a JSON object (or `()` for none):
    /// `json!({"model": {"name": "test"}})`.
    ///
    /// # Errors
    /// [`Error::NotDeclared`] when the plugin did not list `api` in
    /// `required_remote_apis`; [`Error::BadArguments`] before any I/O when the
    /// arguments do not fit; the callee's own error otherwise.
    pub async fn call_remote_api(&self, api: &str, args: impl Serialize) -> Result<Value, Error> {
        self.call_remote(api, args).await?.into_value().await
    }

    /// Calls a streaming API and returns its byte stream (see [`crate::sse::events`]).
    ///
    /// # Errors
    /// As [`Ctx::call_remote_api`].
    pub async fn call_remote_stream(
        &self,
        api: &str,
        args: impl Serialize,
    ) -> Result<ChunkStream, Error> {
        match self.call_remote(api, args).await? {
            Reply::Stream(s) => Ok(s),
            Reply::Value(v) => {
                let (tx, rx) = bridge();
                actix_rt::spawn(async move {
                    let _ = tx.send(bytes::Bytes::from(v.to_string())).await;
                });
                Ok(rx)
            }
        }
    }

    /// Calls an API and returns its reply as it is (value or stream).
    ///
    /// # Errors
    /// As [`Ctx::call_remote_api`].
    pub async fn call_remote(&self, api: &str, args: impl Serialize) -> Result<Reply, Error> {
        if !self.plugin.is_empty() && !self.is_declared(api) {
            return Err(Error::NotDeclared {
                plugin: self.plugin.to_string(),
                api: api.to_owned(),
            });
        }
        let args = to_args(api, args)?;
        self.router
            .send(CallRemote {
                api: api.to_owned(),
                args,
                caller: (!self.plugin.is_empty()).then(|| self.plugin.clone()),
                ctx: self.call.clone(),
            })
            .await?
    }

    fn is_declared(&self, api: &str) -> bool {
        let bare_path = api.split_once(' ').map(|(_, p)| p.trim());
        self.declared
            .iter()
            .any(|d| d == api || Some(d.as_str()) == bare_path)
    }
}

fn to_args(api: &str, args: impl Serialize) -> Result<Args, Error> {
    match serde_json::to_value(args) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Args::new()),
        Ok(other) => Err(Error::BadArguments {
            api: api.to_owned(),
            problems: vec![crate::error::ArgProblem::invalid(
                "args",
                "args",
                format!("arguments must be an object of name → value, got {other}"),
            )],
        }),
        Err(e) => Err(Error::Internal(Fault::ArgumentsNotJson(e))),
    }
}

/// `message` with every quoted string value (`string "…"`) blanked: a config value
/// may be a secret. Key names (in backticks) stay.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}
