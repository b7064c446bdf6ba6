//! Integration tests, compiled into one binary (faster to link than one per file).
//!
//! Every test starts real HTTP servers on 127.0.0.1 with ephemeral ports: framex-rs
//! itself, in-process actix-web upstreams, and, for interop, FastAPI and FrameX-kit
//! child processes from a Python venv the tests create and cache under `target/`.

mod common;

mod deploy;
mod cache;
mod control;
mod dns;
mod docs_login;
mod docs_release;
mod docs_tools;
mod faults;
mod idle_memory;
mod interop;
mod limits;
mod kit_compat;
mod local;
mod migration;
mod observability;
mod openapi_doc;
mod operations;
mod pools;
mod proxy_functions;
mod protocols;
mod proxy;
mod rolling;
mod security;
mod streaming;
