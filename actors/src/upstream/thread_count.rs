//! A count that many threads change on every request, kept as one share per thread,
//! each on a cache line of its own.
//!
//! An endpoint's in-flight and request counts change twice per request, from every
//! worker thread. As one atomic each, their cache line moved between the cores on
//! every change. Here a thread adds to its own share, on a line no other thread
//! writes, and a reader sums the shares: a pick that weighs in-flight counts
//! (`least_inflight`, `max_inflight`), the retry budget and the status page read; the
//! usual pick reads none. A share that one thread alone writes is changed with a plain
//! load and store, not an atomic add (a `lock`-prefixed instruction, whose cost showed
//! in a profile at 256 connections even on a line no other core wanted).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shares per count that a thread has to itself: the first threads to count take one
/// each; any later thread adds to a shared one (still exact, only slower).
const SHARES: usize = 8;

/// One thread's share, alone on its cache line (128 bytes: the adjacent-line
/// prefetcher pairs 64-byte lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Share(AtomicU64);

impl Share {
    /// Adds `n` (wrapping); `alone`: only this thread ever writes the share.
    fn add(&self, n: u64, alone: bool) {
        if alone {
            // One writer: no other change can come between the load and the store,
            // and a reader sees the value before or after it.
            self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Threads that have counted so far, each given the next share.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// A count summed from per-thread shares. A share may wrap below zero (a request
/// counted in on one thread, out on another): the sum, in wrapping arithmetic, is exact.
#[derive(Debug, Default)]
pub struct ThreadCount {
    /// The first [`SHARES`] threads' own shares.
    shares: [Share; SHARES],
    /// Every later thread's share, changed atomically: thread `n` (from 0) adds to
    /// `shared[n % SHARES]`, so that many workers still spread over several lines.
    shared: [Share; SHARES],
}

impl ThreadCount {
    /// Adds `n` to this thread's share.
    pub fn add(&self, n: u64) {
        self.share_add(n);
    }

    /// Takes `n` from this thread's share.
    pub fn sub(&self, n: u64) {
        self.share_add(n.wrapping_neg());
    }

    fn share_add(&self, n: u64) {
        match share_of_this_thread() {
            (index, true) => self.shares[index].add(n, true),
            (index, false) => self.shared[index].add(n, false),
        }
    }

    /// The count: the shares of the threads that counted, summed (0 rather than below:
    /// read while a count taken out on one thread is not yet seen put in on another,
    /// the sum can be short).
    pub fn get(&self) -> u64 {
        // Only the shares of threads that have counted: on two workers, two lines
        // rather than sixteen. (A thread counting for the first time as this is read
        // may be missed, as any change made while the shares are summed may be.)
        let threads = THREADS.load(Ordering::Relaxed);
        let (own, later) = (threads.min(SHARES), threads.saturating_sub(SHARES).min(SHARES));
        let sum = self.shares[..own].iter().chain(&self.shared[..later]).fold(0u64, |sum, share| sum.wrapping_add(share.0.load(Ordering::Relaxed)));
        // Read as signed: a sum "below zero" wrapped to the top of the range.
        (sum as i64).max(0) as u64
    }

    /// Sets the count to `n` (for tests: the shares are not changed as one, and a
    /// share's own thread counting meanwhile may undo it).
    #[cfg(test)]
    pub fn set(&self, n: u64) {
        // Some thread has counted, so that `get` reads the first share.
        let _ = share_of_this_thread();
        for share in self.shares[1..].iter().chain(&self.shared) {
            share.0.store(0, Ordering::Relaxed);
        }
        self.shares[0].0.store(n, Ordering::Relaxed);
    }
}

/// This thread's share: its own (`true`) if it is among the first [`SHARES`] threads
/// to count, else one of those the later threads share.
fn share_of_this_thread() -> (usize, bool) {
    thread_local! {
        static SHARE: (usize, bool) = {
            let n = THREADS.fetch_add(1, Ordering::Relaxed);
            (n % SHARES, n < SHARES)
        };
    }
    SHARE.with(|share| *share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_sum_exactly() {
        let count = std::sync::Arc::new(ThreadCount::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let count = count.clone();
                // Ins and outs at once from every thread: a thread's own share and
                // the one later threads share both stay exact.
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        count.add(2);
                        count.sub(1);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        // (The first eight threads of the whole test process to count have shares of
        // their own: this test's threads may all be later ones.)
        assert_eq!(count.get(), 1_200_000);
    }

    #[test]
    fn a_count_taken_out_on_another_thread_than_it_came_in_on_sums_to_zero() {
        let count = std::sync::Arc::new(ThreadCount::default());
        count.add(3);
        let other = count.clone();
        std::thread::spawn(move || other.sub(3)).join().unwrap();
        assert_eq!(count.get(), 0);
        // Out on one thread before it is seen in on another: 0, never the top of the range.
        let early = std::sync::Arc::new(ThreadCount::default());
        let other = early.clone();
        std::thread::spawn(move || other.sub(1)).join().unwrap();
        assert_eq!(early.get(), 0);
        count.set(5);
        assert_eq!(count.get(), 5);
    }
}
