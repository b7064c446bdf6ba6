//! Local plugins as the engine sees them: plain data.
//!
//! A [`PluginSpec`] is metadata plus one [`LocalApi`] per HTTP route or function API,
//! each with an untyped handler over JSON arguments. The typed, ergonomic layer that
//! plugin authors use lives in the `framex` crate and produces these. Data only: the
//! route table holds these, the [`PluginActor`](crate::PluginActor) runs them.

use std::fmt;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::Value;

use crate::api::{ApiSpec, Args, ParamLocation};
use crate::ctx::Ctx;
use crate::error::Error;
use crate::sse::Emitter;

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
    /// Per parameter of `spec`, in order: the header a header parameter is read from
    /// (see [`LocalApi::header`]), made once by [`LocalApi::new`]; empty when `spec`
    /// has no header parameter.
    headers: Box<[Option<http::HeaderName>]>,
}

impl LocalApi {
    /// The API of `spec`, run by `handler`.
    pub fn new(spec: Arc<ApiSpec>, handler: ApiHandler) -> Self {
        let is_header = |p: &crate::api::Param| p.location == ParamLocation::Header;
        let headers = if spec.params.iter().any(is_header) {
            spec.params
                .iter()
                .map(|p| is_header(p).then(|| header_name(&p.name)).flatten())
                .collect()
        } else {
            Box::default()
        };
        LocalApi { spec, handler, headers }
    }

    /// The header parameter `index` of `spec` is read from: its name with `_` read as
    /// `-`, as FastAPI reads it (`x_token` from `X-Token`); `None` for another kind of
    /// parameter, or a name no header can have.
    pub fn header(&self, index: usize) -> Option<&http::HeaderName> {
        self.headers.get(index)?.as_ref()
    }
}

/// The header a parameter named `name` is read from (see [`LocalApi::header`]).
fn header_name(name: &str) -> Option<http::HeaderName> {
    http::HeaderName::from_bytes(name.replace('_', "-").as_bytes()).ok()
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
