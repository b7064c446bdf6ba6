//! The message-routing engine of framex-rs.
//!
//! It knows messages, routes, plugins and upstream pools; it knows no TOML, no
//! actix-web routing and no OpenAPI documents (the `framex` crate turns those into
//! the types here).
//!
//! # Layout
//! Plugins, upstream connections and the route registry are actors; each one's
//! messages:
//! - [`Registry`] (`registry`): the single writer of the route table. Accepts
//!   [`RegisterPlugin`], [`UnregisterPlugin`], [`SetUpstreamRoutes`].
//! - [`RouteTable`] (`route_table`): the immutable snapshot every replica reads; local
//!   routes shadow upstream ones (transparent migration).
//! - [`Router`] (`router`): one replica per worker arbiter. Accepts [`CallRemote`] (by
//!   name) and [`Dispatch`] (a matched route), and passes each on as a message: to a
//!   [`PluginActor`] or to an [`UpstreamPool`](upstream::UpstreamPool); a migrating
//!   route asks the installed [`CallPolicy`] first, and a call a limit covers waits
//!   for the installed [`CallGate`] (`call_gate`) to admit it.
//! - [`PluginSpec`] (`plugin_spec`): a local plugin as plain data (metadata, one
//!   [`LocalApi`] per API, its handlers); the table holds it, the actor runs it.
//! - [`PluginActor`] (`plugin`): one per plugin per worker arbiter; runs the plugin's
//!   handlers. Accepts [`Invoke`]. Handlers get a [`Ctx`] (`ctx`) whose
//!   `call_remote_api` goes back through the router, reached as a
//!   `Recipient<CallRemote>`; a streaming handler runs in the actor's context.
//! - [`UpstreamPool`](upstream::UpstreamPool) (`upstream::pool`): one per pool per
//!   worker arbiter, owning that arbiter's [`PoolReplica`](upstream::PoolReplica) (its
//!   keep-alive connections); started when the arbiter first reaches a pool the table
//!   names, stopped when a table no longer names it. Accepts
//!   [`CallUpstream`](upstream::CallUpstream) (from the Router) and
//!   [`Retire`](upstream::Retire) (from the arbiter's [`PoolReplicas`]
//!   (`pool_replicas`), which follows the table); pumps streamed bodies in its own
//!   context. Faithful forwarding of a matched HTTP request borrows the replica it
//!   owns through [`PoolReplicas::replica`]: no mailbox hop (the hop costs a
//!   `CallRemote` about 5,700 instructions, measured by `examples/hop_cost.rs`).
//! - `stream` / `sse`: the bounded chunk bridge (pushed by the producing actor,
//!   consumed as a `Stream`) and FrameX's event format.
//! - [`Engine`] (`engine`): the handle that starts the registry and each worker's
//!   router and pool actors.
//! - `test_util`: a real HTTP/1.1 upstream on 127.0.0.1 for tests and examples.
//!
//! Hot path rule: replicas run on the worker arbiter that accepted the request and
//! read the table through an atomic pointer, so no single thread carries every
//! request's messages or bytes.
//!
//! # Glossary
//! One name per concept, in both crates:
//! - **downstream**: the client's side (the caller of our HTTP surface or of
//!   `call_remote_api`); **upstream**: the services we forward to. An *upstream* is
//!   one configured base URL (`proxy_urls` entry: `framex::config::UpstreamConfig`,
//!   and with its counters `framex::proxy::Upstream`; what its discovery found is
//!   owned by the proxy's control plane).
//! - **endpoint**: an upstream URL as the engine sees it, a member of pools: its
//!   counters and health ([`upstream::EndpointStats`], one per URL whatever the number
//!   of pools) and its connections.
//! - **pool** ([`upstream::PoolShared`], known by its [`upstream::PoolId`]): the
//!   endpoints publishing one operation alike, balanced, health-checked and retried as
//!   one; **replica** ([`upstream::PoolReplica`]): a pool on one arbiter, with that
//!   arbiter's connections, owned by that arbiter's [`upstream::UpstreamPool`] actor.
//! - **route** ([`Route`]): an API key and its **target** ([`Target`]: a local plugin or
//!   an upstream pool); a **source** is who registered upstream routes (the proxy).
//! - **exchange**: one forwarded request with its **attempts** (one per endpoint tried).
//! - **peer** ([`Peer`], `peer`): whom an upstream [`Error`] is about, typed: the
//!   endpoint that failed (its [`upstream::UpstreamUrl`], parsed in `upstream_url`,
//!   and its resolved address), or the pool when none was picked. Causes are typed
//!   too ([`ConnectFailure`], [`BrokenReply`], [`Fault`]), reachable by `source()`.
//! - Messages are commands: [`CallRemote`] (an API by name), [`Dispatch`] (a matched
//!   route), [`Invoke`] (a plugin's handler), [`upstream::CallUpstream`] (an upstream
//!   API), [`upstream::Retire`], and the registry's `Register…`/`Set…`.
#![warn(missing_docs)]

mod api;
mod call;
mod canonical_form;
mod ctx;
pub mod call_gate;
pub mod call_policy;
mod engine;
mod error;
mod escape;
pub mod metrics;
pub mod metric_buffers;
mod plugin;
mod plugin_spec;
mod pool_replicas;
mod registry;
mod request_id;
mod route_table;
mod router;
pub mod sse;
pub mod stream;
pub mod test_util;
pub mod trace;
pub mod upstream;
mod upstream_url;
mod wire_error;
mod peer;

pub use api::{ApiKey, ApiSpec, Args, BodySpec, FormField, Param, ParamLocation, ValueKind};
pub use canonical_form::CanonicalForm;
pub use call::{CallContext, CallRemote, Reply};
pub use request_id::{new_request_number, RequestId};
pub use call_gate::{Admission, CallGate, Held, Refused};
pub use call_policy::{CallPolicy, Pick};
pub use engine::{Engine, WorkerEngine};
pub use error::{ArgProblem, BodyError, BrokenReply, ConnectFailure, Error, Fault};
pub use peer::{EndpointPeer, Peer};
pub use wire_error::{HeadError, WireError};
pub use escape::Escaped;
pub use trace::TraceContext;
pub use ctx::Ctx;
pub use plugin::{in_plugin, Invoke, PluginActor};
pub use plugin_spec::{ApiHandler, CallHandler, LocalApi, PluginMeta, PluginSpec, StartHook, StreamHandler};
pub use registry::{describe as describe_skipped, RegisterPlugin, Registry, RouteReport, SetUpstreamRoutes, UnregisterPlugin, UpstreamRoute};
pub use route_table::{HttpMatch, Route, RouteTable, RouteTableBuilder, Skipped, Target};
pub use pool_replicas::PoolReplicas;
pub use router::{Dispatch, Router};
/// The HTTP method type of the engine (actix-web's, `http` 0.2).
pub use http::Method;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
