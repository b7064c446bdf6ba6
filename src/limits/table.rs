//! The in-process state of one rule: a fixed-capacity table of keys (each a GCRA
//! arrival time and a count of requests open), split into shards each behind its own
//! short lock.
//!
//! Memory is bounded: each shard keeps two generations of at most half its share of
//! `max_keys`; when the current one is full, the previous one (keys not seen for a
//! generation: the oldest idle) is dropped and the current one takes its place. A key
//! with requests open is carried over, never dropped (its slots are given back to
//! it); when open requests fill a whole generation, new keys are refused.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

const SHARDS: usize = 16;

/// What is known of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    /// GCRA theoretical arrival time, in ns since the table was made.
    pub tat: u64,
    /// Requests open now.
    pub held: u32,
}

#[derive(Default)]
struct Shard {
    current: HashMap<Box<str>, Entry>,
    previous: HashMap<Box<str>, Entry>,
}

/// The bounded table of a rule.
pub struct Table {
    shards: Box<[Mutex<Shard>]>,
    half: usize,
    max_keys: usize,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
}

/// The table cannot take a new key: open requests fill it.
#[derive(Debug)]
pub struct Full;

impl Table {
    /// A table for at most `max_keys` keys (at least 16).
    pub fn new(max_keys: usize) -> Self {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            half: (max_keys / SHARDS / 2).max(1),
            max_keys,
            hasher: std::collections::hash_map::RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the table was made.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        use std::hash::BuildHasher;
        let index = usize::try_from(self.hasher.hash_one(key)).unwrap_or(0) % SHARDS;
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on `key`'s entry (made if new), under its shard's lock.
    ///
    /// # Errors
    /// [`Full`] when the key is new and open requests fill the table.
    pub fn with<R>(&self, key: &str, f: impl FnOnce(&mut Entry) -> R) -> Result<R, Full> {
        let mut shard = self.shard(key);
        if let Some(entry) = shard.current.get_mut(key) {
            return Ok(f(entry));
        }
        let found = shard.previous.remove_entry(key);
        if shard.current.len() >= self.half {
            let shard = &mut *shard;
            let old = std::mem::replace(&mut shard.previous, std::mem::take(&mut shard.current));
            shard.current.extend(old.into_iter().filter(|(_, e)| e.held > 0));
            if shard.current.len() >= self.half {
                if let Some((k, e)) = found {
                    shard.previous.insert(k, e);
                }
                return Err(Full);
            }
        }
        let (key, mut entry) = found.unwrap_or_else(|| (key.into(), Entry::default()));
        let answer = f(&mut entry);
        shard.current.insert(key, entry);
        Ok(answer)
    }

    /// Gives back one open request of `key`.
    pub fn release(&self, key: &str) {
        let mut shard = self.shard(key);
        let shard = &mut *shard;
        if let Some(entry) = shard.current.get_mut(key).or_else(|| shard.previous.get_mut(key)) {
            entry.held = entry.held.saturating_sub(1);
        }
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(PoisonError::into_inner);
                s.current.len() + s.previous.len()
            })
            .sum()
    }

    /// The most used keys: most requests open, then the latest arrival time.
    pub fn top(&self, n: usize) -> Vec<(String, Entry)> {
        let mut all: Vec<(String, Entry)> = Vec::new();
        for shard in self.shards.iter() {
            let s = shard.lock().unwrap_or_else(PoisonError::into_inner);
            all.extend(s.current.iter().chain(s.previous.iter()).map(|(k, e)| (k.to_string(), *e)));
            all.sort_by_key(|(_, e)| std::cmp::Reverse((e.held, e.tat)));
            all.truncate(n);
        }
        all
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `max_keys` the table was made for.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The capacity (keys the table may hold at most).
    pub fn capacity(&self) -> usize {
        self.half * 2 * SHARDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A million distinct keys (a flood of addresses) never grow the table past its
    /// capacity; a key holding a slot survives the flood with its count.
    #[test]
    fn a_million_keys_stay_within_capacity() {
        let table = Table::new(1_000);
        table.with("holder", |e| e.held = 1).unwrap();
        let mut max = 0;
        for i in 0..1_000_000u32 {
            table.with(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255), |e| e.tat = 1).unwrap();
            if i % 1000 == 0 {
                max = max.max(table.len());
            }
        }
        max = max.max(table.len());
        assert!(max <= table.capacity() && table.capacity() <= 1_000, "{max} > {}", table.capacity());
        assert_eq!(table.with("holder", |e| e.held).unwrap(), 1, "a key with a request open is never evicted");
        table.release("holder");
        assert_eq!(table.with("holder", |e| e.held).unwrap(), 0);
    }

    /// When open requests fill the table, new keys are refused rather than counted
    /// from zero.
    #[test]
    fn open_requests_filling_the_table_refuse_new_keys() {
        let table = Table::new(16);
        let mut refused = 0;
        for i in 0..200 {
            if table.with(&format!("k{i}"), |e| e.held = 1).is_err() {
                refused += 1;
            }
        }
        assert!(refused > 0 && table.len() <= table.capacity());
    }
}
