//! Request ids: ours, held inline, or a trusted caller's, shared.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Identifies a request across hops (sent upstream as `X-Request-Id`): 16 hex digits
/// of our own, or the id a trusted proxy gave it.
///
/// Our own ids are held inline, so that a request's id costs no allocation and its
/// copies no reference count; a caller's id (up to 128 characters) is shared.
#[derive(Clone)]
pub struct RequestId(Repr);

#[derive(Clone)]
enum Repr {
    Own(HexDigits),
    Given(Arc<str>),
}

/// 16 lower-case hex digits, made only by [`HexDigits::of`], which checks that they
/// are ASCII.
#[derive(Clone, Copy)]
struct HexDigits([u8; 16]);

impl HexDigits {
    fn of(x: u64) -> Self {
        let digits = crate::trace::hex_digits(x);
        // `hex_digits` writes only `0-9a-f` (see its proof and proptest); checked here
        // on every build (a few instructions: no byte has its top bit set), so that
        // `as_str` rests on this type alone.
        assert!(digits.is_ascii(), "{digits:?}");
        HexDigits(digits)
    }

    fn as_str(&self) -> &str {
        // SAFETY: made only by `of`, which checked that the bytes are ASCII, so UTF-8.
        // Checking them again as UTF-8 cost 120 instructions, a third of a call
        // context.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl RequestId {
    /// A new process-unique id: 16 hex digits spread over the whole range
    /// ([`new_request_number`]'s), written by hand (`format!` would cost more than
    /// the rest of a request id).
    pub fn new() -> Self {
        RequestId(Repr::Own(HexDigits::of(new_request_number())))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Own(digits) => digits.as_str(),
            Repr::Given(id) => id,
        }
    }

    /// Whether the id can go as a header value as it is (1 or more visible ASCII
    /// characters). Ours always can.
    pub fn is_header_safe(&self) -> bool {
        match &self.0 {
            Repr::Own(_) => true,
            Repr::Given(id) => !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()),
        }
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

/// A caller's id, as given.
impl From<&str> for RequestId {
    fn from(id: &str) -> Self {
        RequestId(Repr::Given(id.into()))
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Request ids are 16 lower-case hex digits, and no two are alike.
    #[test]
    fn request_ids_are_sixteen_hex_digits_and_distinct() {
        let ids: Vec<RequestId> = (0..2000).map(|_| RequestId::new()).collect();
        for id in ids.iter().map(RequestId::as_str) {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
        }
        let mut all: Vec<&str> = ids.iter().map(RequestId::as_str).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2000);
    }

    /// A caller's id is kept as given, and goes upstream only if it is visible ASCII;
    /// ours always goes.
    #[test]
    fn a_given_id_goes_upstream_only_when_header_safe() {
        let given = RequestId::from("caller-7f3a");
        assert_eq!(given.as_str(), "caller-7f3a");
        assert_eq!(given.to_string(), "caller-7f3a");
        assert_eq!(format!("{given:?}"), "\"caller-7f3a\"");
        assert!(given.is_header_safe());
        for unsafe_id in ["", "a b", "tab\t", "caf\u{e9}", "nl\n"] {
            assert!(!RequestId::from(unsafe_id).is_header_safe(), "{unsafe_id:?}");
        }
        assert!(RequestId::new().is_header_safe());
        assert_eq!(serde_json::to_string(&given).unwrap(), "\"caller-7f3a\"");
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
