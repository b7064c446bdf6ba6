//! Local plugins as the engine sees them, and the actor that runs their handlers.
//!
//! A [`PluginSpec`] is plain data: metadata plus one [`LocalApi`] per HTTP route or
//! function API, each with an untyped handler over JSON arguments. The typed, ergonomic
//! layer that plugin authors use lives in the `framex` crate and produces these.

use std::fmt;
use std::sync::Arc;

use actix::prelude::*;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::Value;

use crate::api::{ApiSpec, Args};
use crate::call::{CallContext, CallRemote, Reply};
use crate::error::Error;
use crate::router::Router;
use crate::sse::{Emitter, Event};
use crate::stream::{bridge, ChunkStream};

/// A plugin's identity and declarations, as in FrameX's `PluginMetadata`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginMeta {
    /// Unique plugin name (`echo`); the first part of its function API names.
    pub name: String,
    /// Version string.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Author.
    pub author: String,
    /// Home page or repository.
    pub url: String,
    /// Every API this plugin calls through `call_remote_api`.
    pub required_remote_apis: Vec<String>,
    /// The plugin's own `[plugins.<name>]` table as JSON (`null` when absent), read
    /// by [`Ctx::config`].
    #[serde(skip)]
    pub config: Arc<Value>,
}

/// Handler of a non-streaming API: JSON arguments in, JSON value out.
pub type CallHandler =
    dyn Fn(Args, Ctx) -> LocalBoxFuture<'static, Result<Value, Error>> + Send + Sync;

/// Handler of a streaming API: pushes events into the [`Emitter`] until done.
pub type StreamHandler =
    dyn Fn(Args, Ctx, Emitter) -> LocalBoxFuture<'static, Result<(), Error>> + Send + Sync;

/// How an API's handler runs.
pub enum ApiHandler {
    /// Returns one value.
    Call(Box<CallHandler>),
    /// Emits a stream of SSE events, ended by `finish` (or `error`).
    Stream(Box<StreamHandler>),
}

impl fmt::Debug for ApiHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiHandler::Call(_) => "ApiHandler::Call",
            ApiHandler::Stream(_) => "ApiHandler::Stream",
        })
    }
}

/// One API of a local plugin.
#[derive(Debug)]
pub struct LocalApi {
    /// Key and signature.
    pub spec: Arc<ApiSpec>,
    /// What runs it.
    pub handler: ApiHandler,
}

/// A plugin's start hook (FrameX's `on_start`): runs once when the plugin starts,
/// before the server accepts requests; an error stops the start-up.
pub type StartHook = dyn Fn(Ctx) -> LocalBoxFuture<'static, Result<(), Error>> + Send + Sync;

/// A local plugin: metadata and APIs.
pub struct PluginSpec {
    /// Identity and declarations.
    pub meta: PluginMeta,
    /// HTTP routes and function APIs.
    pub apis: Vec<Arc<LocalApi>>,
    /// Runs once when the plugin starts (FrameX's `on_start`).
    pub on_start: Option<Arc<StartHook>>,
}

impl fmt::Debug for PluginSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginSpec")
            .field("meta", &self.meta)
            .field("apis", &self.apis)
            .field("on_start", &self.on_start.is_some())
            .finish()
    }
}

impl PluginSpec {
    /// The same plugin reading `config` as its own `[plugins.<name>]` table.
    pub fn with_config(&self, config: Value) -> Arc<PluginSpec> {
        let mut meta = self.meta.clone();
        meta.config = Arc::new(config);
        Arc::new(PluginSpec {
            meta,
            apis: self.apis.clone(),
            on_start: self.on_start.clone(),
        })
    }
}

/// What a handler gets besides its arguments: who it is, the call's context, and the
/// way to call other APIs.
#[derive(Clone)]
pub struct Ctx {
    plugin: Arc<str>,
    declared: Arc<[String]>,
    config: Arc<Value>,
    router: Addr<Router>,
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
    pub fn detached(router: Addr<Router>) -> Self {
        Ctx {
            plugin: Arc::from(""),
            declared: Arc::from(Vec::new()),
            config: Arc::new(Value::Null),
            router,
            call: CallContext::new(),
        }
    }

    /// The context `plugin`'s start hook runs in: its name, declarations and config.
    pub fn starting(plugin: &PluginSpec, router: Addr<Router>) -> Self {
        Ctx {
            plugin: plugin.meta.name.as_str().into(),
            declared: plugin.meta.required_remote_apis.clone().into(),
            config: plugin.meta.config.clone(),
            router,
            call: CallContext::new(),
        }
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
        Err(e) => Err(Error::Internal(format!("arguments do not serialize: {e}"))),
    }
}

/// Runs one API of this actor's plugin (sent by the [`Router`] on the same arbiter).
#[derive(Debug)]
pub struct Invoke {
    /// The API to run.
    pub api: Arc<LocalApi>,
    /// Its arguments, already bound by name.
    pub args: Args,
    /// The call's context.
    pub ctx: CallContext,
}

impl Message for Invoke {
    type Result = Result<Reply, Error>;
}

/// Hosts one plugin on one arbiter and runs its handlers.
///
/// The router replica of each worker arbiter starts its own `PluginActor` per plugin,
/// so a local call never leaves the thread that accepted the request.
pub struct PluginActor {
    declared: Arc<[String]>,
    config: Arc<Value>,
    name: Arc<str>,
    router: Addr<Router>,
}

impl PluginActor {
    /// An actor for `plugin` whose handlers call other APIs through `router`.
    pub fn new(plugin: Arc<PluginSpec>, router: Addr<Router>) -> Self {
        PluginActor {
            declared: plugin.meta.required_remote_apis.clone().into(),
            config: plugin.meta.config.clone(),
            name: plugin.meta.name.as_str().into(),
            router,
        }
    }
}

impl Actor for PluginActor {
    type Context = Context<Self>;
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

/// `handler` with a panic turned into [`Error::PluginPanic`]: the call fails as an
/// internal error and the actor (its other calls and streams) lives on. A stream
/// handler runs in the actor's own context, where an uncaught panic would end the
/// actor and every call to the plugin on that worker after it.
fn caught<T: 'static>(
    plugin: Arc<str>,
    handler: LocalBoxFuture<'static, Result<T, Error>>,
) -> impl std::future::Future<Output = Result<T, Error>> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(handler).catch_unwind().map(move |result| {
        result.unwrap_or_else(|payload| {
            Err(Error::PluginPanic {
                plugin: plugin.to_string(),
                message: Error::panic_message(&*payload),
            })
        })
    })
}

impl Handler<Invoke> for PluginActor {
    // The handler's future touches no actor state, so it runs beside other calls.
    type Result = ResponseFuture<Result<Reply, Error>>;

    fn handle(&mut self, msg: Invoke, ctx: &mut Context<Self>) -> Self::Result {
        let cx = Ctx {
            plugin: self.name.clone(),
            declared: self.declared.clone(),
            config: self.config.clone(),
            router: self.router.clone(),
            call: msg.ctx.clone(),
        };
        let api_name = msg.api.spec.key.to_string();
        let deadline = msg.ctx.deadline;
        match &msg.api.handler {
            ApiHandler::Call(handler) => {
                let fut = caught(self.name.clone(), handler(msg.args, cx));
                Box::pin(async move {
                    let value = match deadline {
                        Some(at) => tokio::time::timeout_at(at.into(), fut)
                            .await
                            .map_err(|_| Error::Deadline { api: api_name })??,
                        None => fut.await?,
                    };
                    Ok(Reply::Value(value))
                })
            }
            ApiHandler::Stream(handler) => {
                let (sender, rx) = bridge();
                let fut = caught(self.name.clone(), handler(msg.args, cx, Emitter::new(sender.clone())));
                // Stream handlers run in this actor's context: the actor pushes the
                // chunks into the bounded bridge (and outlives its address until its
                // streams end); the stream ends with `finish` or a failure.
                let produce = async move {
                    match fut.await {
                        Ok(()) => {
                            let _ = sender.send(Event::finish().to_bytes()).await;
                        }
                        Err(Error::StreamClosed) => {}
                        Err(e) => sender.fail(e).await,
                    }
                };
                ctx.spawn(produce.into_actor(self));
                Box::pin(async move { Ok(Reply::Stream(rx.started().await?)) })
            }
        }
    }
}
