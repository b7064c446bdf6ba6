//! framex-rs: a FrameX-compatible server whose centre is the System Proxy Plugin.
//!
//! One HTTP API serves local plugins and forwards everything not yet migrated to
//! legacy FastAPI services or other FrameX instances; a local implementation takes
//! over a route the moment it is registered, with no change at any call site.
//!
//! # Layout
//! - [`config`]: FrameX's `config.toml`, strictly validated, with env overrides.
//! - [`config_view`]: a plugin's config as the docs show it (secrets hidden,
//!   whitelisted files).
//! - [`discovery`]: upstream OpenAPI documents → engine route specs.
//! - [`proxy`]: the system proxy plugin: upstream pools and their discovery.
//! - [`plugin`]: writing plugins in Rust (typed handlers, `call_remote_api`).
//! - [`plugins`]: built-in plugins (`echo`).
//! - [`http`]: the actix-web surface (built-ins, local routes, faithful forwarding).
//! - [`openapi`]: the merged `/api/v1/openapi.json`.
//! - [`schema`]: what is read off JSON schemas (a parameter's basic kind).
//! - [`server`]: [`Framex`] starts a server on a listener; [`Running`] reloads and stops it.
//! - [`pid_file`]: `server.pid_file`, for `framex reload`.
//! - [`cli`]: `framex run | check | routes`.
//! - [`tls`]: the HTTPS listener's certificate and key (`server.tls_cert`, `tls_key`).
//! - [`builtin_paths`]: the paths framex-rs answers itself.
//! - [`builtin_plugins`]: the names of the built-in plugins.
//! - [`canonical_path`]: the one canonical form of a request path (a leaf: the
//!   config's rules, discovery and the HTTP surface all use it).
//! - [`conn_timeouts`]: the HTTP server's connection timeouts (a leaf).
//! - [`open_files`]: the open-file limit that bounds `server.max_connections`.
//! - [`repository`]: a plugin's repository on GitHub or GitLab (latest release,
//!   access), for the docs.
//! - [`lookup_cache`]: slow lookups' answers kept per key, one lookup of a key at a
//!   time (the docs' repository questions).
//! - [`sentry_events`]: `[sentry]`: 5xx answers (and transactions) sent to Sentry.
//! - [`sentry_logs`]: `[sentry] enable_logs`: log records sent to Sentry as logs.
//!
//! The engine itself (registry, router replicas, plugin and upstream actors, the
//! streaming bridge) is the `framex-actors` crate, re-exported as [`actors`].
#![warn(missing_docs)]

pub mod builtin_paths;
pub mod builtin_plugins;
pub mod cache;
pub mod canonical_path;
pub mod cli;
pub mod config;
pub mod config_view;
pub mod conn_timeouts;
pub mod discovery;
pub mod http;
pub mod limits;
pub mod lookup_cache;
pub mod metrics;
pub mod open_files;
pub mod openapi;
pub mod otel;
pub mod pid_file;
pub mod plugin;
pub mod plugins;
pub mod proxy;
pub mod redis_store;
pub mod repository;
pub mod schema;
pub mod sentry_events;
pub mod sentry_logs;
pub mod sentry_transport;
pub mod server;
pub mod tls;

pub use framex_actors as actors;
pub use server::{Framex, Running, StartError};

/// The version of framex-rs, as `/version` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Result of plugin handlers and engine calls.
pub type Result<T, E = framex_actors::Error> = std::result::Result<T, E>;
