//! The one message for "call API X with these arguments", and what comes back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Message;
use serde_json::Value;

use crate::api::Args;
use crate::error::Error;
use crate::stream::ChunkStream;

/// Where a call stands: its deadline, its request id and how many proxies it crossed.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// When the caller stops waiting; `None` waits for ever.
    pub deadline: Option<Instant>,
    /// Identifies the request across hops (sent upstream as `X-Request-Id`).
    pub request_id: Arc<str>,
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
            request_id: Arc::from(request_id_text(&request_id_digits())),
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

/// A process-unique request id (16 hex digits), spread over the whole range.
pub fn new_request_id() -> String {
    request_id_text(&request_id_digits()).to_owned()
}

/// A process-unique number spread over the whole range: what a request id spells in
/// hex. Not a secret (the mix can be undone): ids name requests, they admit nothing.
///
/// Each thread takes numbers a block at a time (2^32 of them, its block's number in the
/// top bits) and counts within it, so that worker threads never write one shared
/// counter: a counter both cores increment moves its cache line between them on every
/// request. Numbers repeat only after 2^32 blocks, as a shared counter's after 2^64.
pub fn new_request_number() -> u64 {
    /// Blocks handed out so far.
    static BLOCKS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        /// The thread's next number (0, a block's first, before its first).
        static NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ (std::process::id() as u64).rotate_left(32)
    });
    let n = NEXT.with(|next| {
        let n = take_number(next.get(), &BLOCKS);
        next.set(n.wrapping_add(1));
        n
    });
    // splitmix64: spreads consecutive numbers over the whole range; every step is a
    // bijection, so distinct numbers give distinct ids.
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Low bits a thread counts in within its block of request numbers.
const BLOCK_BITS: u32 = 32;
/// The part of a request number that counts within its block.
const IN_BLOCK: u64 = (1 << BLOCK_BITS) - 1;

/// A thread's next request number, `next` being the one after its last: `next` while
/// within the thread's block, else the first of a new block taken from `blocks` (the
/// block after a used-up one belongs to another thread). A block's first number is
/// only ever taken with the block, so 0 stands for "no block yet".
fn take_number(next: u64, blocks: &AtomicU64) -> u64 {
    if next & IN_BLOCK != 0 {
        next
    } else {
        blocks.fetch_add(1, Ordering::Relaxed) << BLOCK_BITS
    }
}

/// [`new_request_id`]'s digits, written by hand: `format!` would cost more than the
/// rest of a request id.
fn request_id_digits() -> [u8; 16] {
    crate::trace::hex_digits(new_request_number())
}

/// Request id digits as text, not checked again (checking 16 of them as UTF-8 cost
/// 120 instructions, a third of a call context).
fn request_id_text(digits: &[u8; 16]) -> &str {
    debug_assert!(digits.iter().all(u8::is_ascii_hexdigit), "{digits:?}");
    // SAFETY: `hex_digits` writes only `0-9a-f` (see its proof and proptest), which
    // are ASCII and so UTF-8.
    unsafe { std::str::from_utf8_unchecked(digits) }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Request ids are 16 lower-case hex digits, and no two are alike.
    #[test]
    fn request_ids_are_sixteen_hex_digits_and_distinct() {
        let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
        let contexts: Vec<CallContext> = (0..1000).map(|_| CallContext::new()).collect();
        for id in ids.iter().map(String::as_str).chain(contexts.iter().map(|c| &*c.request_id)) {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
        }
        let mut all: Vec<&str> = ids.iter().map(String::as_str).chain(contexts.iter().map(|c| &*c.request_id)).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2000);
    }

    /// Threads number requests from blocks of their own: no two threads, nor two
    /// requests of one, get the same number.
    #[test]
    fn request_numbers_of_several_threads_are_distinct() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..5000).map(|_| new_request_number()).collect::<Vec<u64>>()))
            .collect();
        let mut all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 20_000);
    }

    /// A thread counts within its block, and takes a new block from the shared
    /// counter when its block is used up (never the next block, another thread's).
    #[test]
    fn a_used_up_block_is_followed_by_a_new_one() {
        let blocks = AtomicU64::new(7);
        assert_eq!(take_number(0, &blocks), 7 << BLOCK_BITS, "a first number takes a block");
        assert_eq!(take_number((3 << BLOCK_BITS) + 5, &blocks), (3 << BLOCK_BITS) + 5);
        let after_last_of_block_3 = ((3 << BLOCK_BITS) | IN_BLOCK) + 1;
        assert_eq!(take_number(after_last_of_block_3, &blocks), 8 << BLOCK_BITS);
        assert_eq!(blocks.load(Ordering::Relaxed), 9);
    }
}
