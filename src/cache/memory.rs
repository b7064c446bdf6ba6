//! Memory mode: entries in this process, oldest evicted first once there are more
//! than `max_size` entries or `max_bytes` bytes (as FrameX-kit evicts the oldest).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::Blob;

#[derive(Default)]
struct Inner {
    /// Key → (insertion number, bytes).
    map: HashMap<String, (u64, Blob)>,
    /// Insertion number → key, oldest first.
    order: BTreeMap<u64, String>,
    bytes: u64,
    next: u64,
}

/// The memory store.
pub struct Memory {
    inner: Mutex<Inner>,
    max_size: usize,
    max_bytes: u64,
}

impl Memory {
    /// An empty store with these bounds.
    pub fn new(max_size: usize, max_bytes: u64) -> Self {
        Memory { inner: Mutex::default(), max_size, max_bytes }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bytes under `key`.
    pub fn get(&self, key: &str) -> Option<Blob> {
        self.lock().map.get(key).map(|(_, b)| b.clone())
    }

    /// Stores `bytes` under `key`, then evicts the oldest entries over the bounds.
    pub fn set(&self, key: &str, bytes: Blob) {
        if bytes.len() as u64 > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        let seq = inner.next;
        inner.next += 1;
        inner.bytes += bytes.len() as u64;
        if let Some((old, old_bytes)) = inner.map.insert(key.to_owned(), (seq, bytes)) {
            inner.order.remove(&old);
            inner.bytes -= old_bytes.len() as u64;
        }
        inner.order.insert(seq, key.to_owned());
        while inner.map.len() > self.max_size || inner.bytes > self.max_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else { break };
            if let Some((_, b)) = inner.map.remove(&oldest) {
                inner.bytes -= b.len() as u64;
            }
        }
    }

    /// Entries and bytes held.
    #[cfg(test)]
    fn size(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.map.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_keys_stays_within_both_bounds() {
        let m = Memory::new(100, 10_000);
        for i in 0..10_000 {
            m.set(&format!("k{i}"), Blob::from(vec![b'x'; 50]));
        }
        assert_eq!(m.size(), (100, 5_000));
        assert!(m.get("k0").is_none() && m.get("k9999").is_some(), "oldest evicted first");
        for i in 0..1_000 {
            m.set(&format!("big{i}"), Blob::from(vec![b'x'; 3_000]));
        }
        let (n, bytes) = m.size();
        assert!(n <= 3 && bytes <= 10_000, "{n} entries, {bytes} bytes");
        m.set("huge", Blob::from(vec![b'x'; 20_000]));
        assert!(m.get("huge").is_none());
        m.set("k", Blob::from_static(b"a"));
        m.set("k", Blob::from_static(b"bb"));
        assert_eq!(m.get("k").as_deref(), Some(&b"bb"[..]));
    }
}
