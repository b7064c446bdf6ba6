//! The message-routing engine of framex-rs.
//!
//! It knows messages, routes, plugins and upstream pools; it knows no TOML, no
//! actix-web routing and no OpenAPI documents (the `framex` crate turns those into
//! the types here).
//!
//! # Layout
//! - [`Registry`] (`registry`): the single writer of the route table. Messages:
//!   [`RegisterPlugin`], [`UnregisterPlugin`], [`SetUpstreamRoutes`].
//! - [`RouteTable`] (`route_table`): the immutable snapshot every replica reads; local
//!   routes shadow upstream ones (transparent migration).
//! - [`Router`] (`router`): one replica per arbiter. Messages: [`CallRemote`] (by
//!   name), [`Dispatch`] (a matched route).
//! - [`PluginActor`] (`plugin`): runs a local plugin's handlers. Message: [`Invoke`].
//!   Handlers get a [`Ctx`] whose `call_remote_api` goes back through the router.
//! - [`UpstreamPool`] (`upstream`): one arbiter's replica of a pool and its
//!   connections. Message: [`Call`] (arguments mapped on a signature). Faithful
//!   forwarding of a matched HTTP request skips the mailboxes:
//!   [`upstream::forward_here`] runs it on the same replica state.
//! - `stream` / `sse`: the bounded chunk bridge and FrameX's event format.
//! - [`Engine`] (`engine`): the handle that starts the registry and replicas.
//!
//! Hot path rule: replicas run on the worker arbiter that accepted the request and
//! read the table through an atomic pointer, so no single thread carries every
//! request's messages or bytes.
#![warn(missing_docs)]

mod api;
mod call;
mod engine;
mod error;
mod escape;
mod plugin;
mod registry;
mod route_table;
mod router;
pub mod sse;
pub mod stream;
pub mod upstream;

pub use api::{ApiKey, ApiSpec, Args, BodySpec, FormField, Param, ParamLocation, ValueKind};
pub use call::{new_request_id, CallContext, CallRemote, Reply};
pub use engine::Engine;
pub use error::{ArgProblem, Error, Side};
pub use escape::Escaped;
pub use plugin::{ApiHandler, CallHandler, Ctx, Invoke, LocalApi, PluginActor, PluginMeta, PluginSpec, StreamHandler};
pub use registry::{describe as describe_skipped, RegisterPlugin, Registry, RouteReport, SetUpstreamRoutes, UnregisterPlugin, UpstreamRoute};
pub use route_table::{HttpMatch, Route, RouteTable, RouteTableBuilder, Skipped, Target};
pub use router::{Dispatch, Router};
pub use upstream::{Call, UpstreamPool};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
