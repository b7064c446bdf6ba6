//! The one message for "call API X with these arguments", and what comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Message;
use serde_json::Value;

use crate::api::Args;
use crate::error::Error;
use crate::request_id::RequestId;
use crate::stream::ChunkStream;

/// Where a call stands: its deadline, its request id and how many proxies it crossed.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// When the caller stops waiting; `None` waits for ever.
    pub deadline: Option<Instant>,
    /// Identifies the request across hops (sent upstream as `X-Request-Id`).
    pub request_id: RequestId,
    /// How many proxies the request has passed through so far.
    pub hops: u32,
    /// Where the call stands in its trace (W3C trace context, sent upstream as
    /// `traceparent`).
    pub trace: crate::trace::TraceContext,
}

impl CallContext {
    /// A fresh context with a new request id, no deadline, no hops and a new trace.
    pub fn new() -> Self {
        CallContext {
            deadline: None,
            request_id: RequestId::new(),
            hops: 0,
            trace: crate::trace::TraceContext::start(),
        }
    }

    /// The same context with a deadline `timeout` from now (the earlier one wins).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with_deadline(Instant::now() + timeout)
    }

    /// The same context with the deadline `candidate` (the earlier one wins): for a
    /// caller that has read the clock already.
    pub fn with_deadline(mut self, candidate: Instant) -> Self {
        self.deadline = Some(match self.deadline {
            Some(d) if d < candidate => d,
            _ => candidate,
        });
        self
    }

    /// Time left before the deadline (`None` when there is none).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

impl Default for CallContext {
    fn default() -> Self {
        Self::new()
    }
}

/// The reply to a call: a value, or a stream of bytes (SSE or binary).
#[derive(Debug)]
pub enum Reply {
    /// A JSON value (an upstream envelope already unwrapped to its `data`).
    Value(Value),
    /// A stream; for SSE APIs, parse it with [`crate::sse::events`].
    Stream(ChunkStream),
}

impl Reply {
    /// The value, reading a stream to its end and parsing it as JSON (or text).
    ///
    /// # Errors
    /// The stream's own failure.
    pub async fn into_value(self) -> Result<Value, Error> {
        match self {
            Reply::Value(v) => Ok(v),
            Reply::Stream(s) => {
                let bytes = s.collect_bytes().await?;
                Ok(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }))
            }
        }
    }
}

/// Calls an API by name: `plugin.Struct.func`, `/path/template` or
/// `METHOD /path/template`.
///
/// Sent by a plugin (through [`crate::Ctx::call_remote_api`]) or an embedder to its
/// arbiter's [`crate::Router`], which finds the target (local plugin first, then
/// upstream) and passes the call on.
#[derive(Debug)]
pub struct CallRemote {
    /// The API's name.
    pub api: String,
    /// Arguments by name (`model` for a JSON body).
    pub args: Args,
    /// The calling plugin, if the call comes from one (for logs and declarations).
    pub caller: Option<Arc<str>>,
    /// Deadline, request id, hops.
    pub ctx: CallContext,
}

impl Message for CallRemote {
    type Result = Result<Reply, Error>;
}
