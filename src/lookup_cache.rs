//! Answers of slow lookups (a repository provider's, for the docs page), kept for a
//! while per key, with at most one lookup of a key under way: whoever asks for a key
//! while it is being looked up waits for that lookup and shares its answer (a "single
//! flight"), so N views of the docs page at once cost the provider one request.
//!
//! Each key has a slot holding a `tokio` once-cell: the first asker runs the lookup
//! inside the cell's `get_or_init`, in its own task (the lookup need not be `Send`);
//! the others wait on the cell. If that asker goes away mid-lookup (its client left),
//! a waiting one runs its own lookup in its place. An answer older than the time the
//! caller allows it (per answer: a failure may be kept for less time than a success)
//! gets a fresh slot, so the next asker looks the key up again.
//!
//! Keys are kept until the cache is dropped (a reload builds new ones): callers use
//! keys from the configuration only (a plugin's repository URL), never from a request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// Answers per key, each looked up once at a time (see the module's documentation).
pub struct LookupCache<V> {
    slots: Mutex<HashMap<String, Arc<Slot<V>>>>,
}

/// One key's answer: set once, by the one lookup that ran, with when it ended.
struct Slot<V> {
    answer: OnceCell<(Instant, V)>,
}

impl<V> Default for LookupCache<V> {
    fn default() -> Self {
        LookupCache { slots: Mutex::default() }
    }
}

impl<V> LookupCache<V> {
    /// How many keys are kept (answered or under way).
    fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl<V> std::fmt::Debug for LookupCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupCache").field("keys", &self.len()).finish()
    }
}

impl<V: Clone> LookupCache<V> {
    /// The answer for `key`: the one kept, while younger than `keep(answer)`; else
    /// that of the lookup under way for `key`, or of `lookup` run now.
    pub async fn get<Fut>(&self, key: &str, keep: impl Fn(&V) -> Duration, lookup: impl FnOnce() -> Fut) -> V
    where
        Fut: Future<Output = V>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            match slots.get_mut(key) {
                Some(slot) => {
                    if let Some((ended, answer)) = slot.answer.get() {
                        if ended.elapsed() < keep(answer) {
                            return answer.clone();
                        }
                        // Stale: the next lookup fills a fresh slot, which anyone
                        // asking meanwhile waits on.
                        *slot = Arc::new(Slot { answer: OnceCell::new() });
                    }
                    slot.clone()
                }
                None => {
                    let slot = Arc::new(Slot { answer: OnceCell::new() });
                    slots.insert(key.to_owned(), slot.clone());
                    slot
                }
            }
        };
        let (_, answer) = slot
            .answer
            .get_or_init(|| async {
                let answer = lookup().await;
                (Instant::now(), answer)
            })
            .await;
        answer.clone()
    }

}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const LONG: Duration = Duration::from_secs(600);

    /// Ten askers at once: one lookup, one answer for all; asked again, kept.
    #[actix_rt::test]
    async fn one_lookup_per_key_at_a_time() {
        let cache = LookupCache::<u32>::default();
        let runs = AtomicUsize::new(0);
        let lookup = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            actix_rt::time::sleep(Duration::from_millis(50)).await;
            7
        };
        let askers = (0..10).map(|_| cache.get("k", |_| LONG, lookup));
        assert_eq!(futures::future::join_all(askers).await, vec![7; 10]);
        assert_eq!(cache.get("k", |_| LONG, lookup).await, 7);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get("other", |_| LONG, || async { 8 }).await, 8, "keys apart");
        assert_eq!(cache.len(), 2);
    }

    /// An answer past its time is looked up again; each answer has its own time.
    #[actix_rt::test]
    async fn stale_answers_are_looked_up_again() {
        let cache = LookupCache::<Result<u32, ()>>::default();
        let keep = |answer: &Result<u32, ()>| if answer.is_ok() { LONG } else { Duration::ZERO };
        assert_eq!(cache.get("k", keep, || async { Err(()) }).await, Err(()));
        assert_eq!(cache.get("k", keep, || async { Ok(1) }).await, Ok(1), "a failure is not kept");
        assert_eq!(cache.get("k", keep, || async { Ok(2) }).await, Ok(1), "a success is");
    }

    /// The asker running the lookup goes away: one waiting runs it in its place.
    #[actix_rt::test]
    async fn a_dropped_asker_leaves_no_one_waiting_forever() {
        let cache = LookupCache::<u32>::default();
        let first = cache.get("k", |_| LONG, std::future::pending::<u32>);
        // Polled once (the lookup starts), then dropped.
        assert!(futures::poll!(Box::pin(first)).is_pending());
        let second = cache.get("k", |_| LONG, || async { 3 });
        assert_eq!(actix_rt::time::timeout(Duration::from_secs(5), second).await, Ok(3));
    }
}
