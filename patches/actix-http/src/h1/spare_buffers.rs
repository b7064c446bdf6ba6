//! framex-rs patch: the read and write buffers idle HTTP/1 connections gave up, kept
//! on each thread for the next connection that reads.
//!
//! A connection that waits for its next request with nothing buffered gives up its
//! 8 KiB read and 8 KiB write buffers (`Dispatcher`'s `release_idle_buffers`), so that
//! an idle keep-alive connection holds none. Under load many connections wait at once
//! between two requests: the pairs they give up are kept here, up to [`MAX_KEPT`], and
//! taken back by the next reads, so a busy connection allocates nothing more than it
//! did before (with 16 kept, the others were freed and allocated again, more at once
//! than jemalloc's per-thread cache holds: its slow paths). [`trim`], called every
//! second on each worker, lets go of the pairs that lay unused since its last call,
//! down to [`ALWAYS_KEPT`]: after a burst, a thread keeps at most `ALWAYS_KEPT` pairs
//! within two calls.

use std::cell::RefCell;

use bytes::BytesMut;

/// The most pairs a thread keeps: 4 MiB of the usual pairs (8 KiB each buffer), 10 MiB
/// at most (a connection whose buffers grew past their usual size frees them: a kept
/// read buffer is at most 32 KiB, a write buffer 8 KiB).
const MAX_KEPT: usize = 256;

/// The pairs a thread keeps however long they lie unused (the fewest a trim leaves:
/// 256 KiB of the usual pairs, 640 KiB at most). A thread that never calls [`trim`]
/// keeps up to `MAX_KEPT`.
const ALWAYS_KEPT: usize = 16;

/// A thread's spare pairs, the most recently given up last (taken first: the ones
/// most likely still in the CPU's caches).
struct Spares {
    pairs: Vec<(BytesMut, BytesMut)>,
    /// The fewest pairs held since the last trim: the first `untouched` of `pairs`
    /// lay unused all that time.
    untouched: usize,
}

thread_local! {
    static SPARES: RefCell<Spares> = const {
        RefCell::new(Spares { pairs: Vec::new(), untouched: 0 })
    };
}

/// Keeps a read and a write buffer given up by an idle connection (dropped when the
/// thread keeps `MAX_KEPT` already).
pub(crate) fn keep(read_buf: BytesMut, write_buf: BytesMut) {
    SPARES.with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.pairs.len() < MAX_KEPT {
            spares.pairs.push((read_buf, write_buf));
        }
    });
}

/// The pair given up last, if the thread keeps any.
pub(crate) fn take() -> Option<(BytesMut, BytesMut)> {
    SPARES.with(|spares| {
        let mut spares = spares.borrow_mut();
        let pair = spares.pairs.pop();
        spares.untouched = spares.untouched.min(spares.pairs.len());
        pair
    })
}

/// Lets go of the calling thread's spare pairs that lay unused since the last call,
/// keeping `ALWAYS_KEPT` at least. A server calls it on each worker thread every
/// second or so.
pub fn trim() {
    SPARES.with(|spares| {
        let mut spares = spares.borrow_mut();
        let unused = spares.untouched.min(spares.pairs.len().saturating_sub(ALWAYS_KEPT));
        spares.pairs.drain(..unused);
        let kept = spares.pairs.len();
        spares.pairs.shrink_to(kept.max(ALWAYS_KEPT));
        spares.untouched = kept;
    });
}

/// How many pairs the calling thread keeps.
pub fn kept() -> usize {
    SPARES.with(|spares| spares.borrow().pairs.len())
}
