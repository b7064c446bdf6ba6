//! The security model (DESIGN §9) tried as an attacker would: each module reproduces
//! attacks that once got through and shows them refused, and keeps what held as
//! regression tests.

mod config;
mod decoders;
mod headers;
mod paths;
mod slow_clients;
mod upstream_answers;
mod upstream_keys;
mod typed_params;
