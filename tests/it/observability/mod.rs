//! Observability end to end: the `/metrics` exposition after real traffic, W3C trace
//! context across hops and `CallRemote`, the JSON access log, and `[sentry]` events
//! and transactions.

mod access_log;
mod metrics;
mod otlp;
mod sentry;
mod sentry_upstream;
mod trace;
