//! Observability end to end: the `/metrics` exposition after real traffic, W3C trace
//! context across hops and `CallRemote`, and the JSON access log.

mod access_log;
mod metrics;
mod otlp;
mod trace;
