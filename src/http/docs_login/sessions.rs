//! The docs login's memory: open sessions (so that logging out ends one for good, as
//! in FrameX-kit) and the `state`s already used (so that a callback cannot be
//! replayed). Both bounded; both kept across a reload, not across a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Most sessions kept; past it, the one expiring first is dropped.
const MAX_SESSIONS: usize = 100_000;
/// Most used `state`s remembered; past it, the one expiring first is forgotten (its
/// state cookie expires with it, so a replay then fails on the cookie).
const MAX_USED_STATES: usize = 100_000;

/// Open sessions and used states, with their expiry (seconds since the epoch).
#[derive(Default)]
pub(super) struct Sessions {
    open: Mutex<HashMap<String, Open>>,
    used_states: Mutex<HashMap<String, i64>>,
}

/// An open session: when it expires, and the provider's access token of its user
/// (kept here, never in the cookie; used to ask the provider whether the user may
/// read a plugin's repository).
#[derive(Clone)]
pub(super) struct Open {
    /// Expires at (seconds since the epoch).
    pub expires: i64,
    /// The provider's access token.
    pub access_token: Arc<str>,
}

impl Expiring for Open {
    fn expires(&self) -> i64 {
        self.expires
    }
}

impl Expiring for i64 {
    fn expires(&self) -> i64 {
        *self
    }
}

/// What the bounded maps hold: something that expires.
trait Expiring {
    fn expires(&self) -> i64;
}

impl Sessions {
    /// Opens session `id`, valid until `expires`, for the user of `access_token`.
    pub fn open(&self, id: String, expires: i64, access_token: Arc<str>, now: i64) {
        insert_bounded(&self.open, id, Open { expires, access_token }, now, MAX_SESSIONS);
    }

    /// Session `id`, when it is open at `now`.
    pub fn get(&self, id: &str, now: i64) -> Option<Open> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(id).filter(|s| s.expires > now).cloned()
    }

    /// Whether session `id` is open at `now`.
    #[cfg(test)]
    pub fn is_open(&self, id: &str, now: i64) -> bool {
        self.get(id, now).is_some()
    }

    /// Ends session `id`.
    pub fn close(&self, id: &str) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    /// Marks `state` used (it expires at `expires`); `false` when it already was.
    /// One lock for the check and the mark: two replays at once cannot both pass.
    pub fn use_state(&self, state: &str, expires: i64, now: i64) -> bool {
        let mut used = self.used_states.lock().unwrap_or_else(PoisonError::into_inner);
        if used.get(state).is_some_and(|&until| until > now) {
            return false;
        }
        insert_into(&mut used, state.to_owned(), expires, now, MAX_USED_STATES);
        true
    }
}

/// Inserts `key` into `map` (see [`insert_into`]).
fn insert_bounded<V: Expiring>(map: &Mutex<HashMap<String, V>>, key: String, value: V, now: i64, max: usize) {
    insert_into(&mut map.lock().unwrap_or_else(PoisonError::into_inner), key, value, now, max);
}

/// Inserts `key` into `map`; when it is full, drops what has expired, then (still
/// full) the entry expiring first.
fn insert_into<V: Expiring>(map: &mut HashMap<String, V>, key: String, value: V, now: i64, max: usize) {
    if map.len() >= max {
        map.retain(|_, v| v.expires() > now);
        if map.len() >= max {
            if let Some(first) = map.iter().min_by_key(|(_, v)| v.expires()).map(|(k, _)| k.clone()) {
                map.remove(&first);
            }
        }
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session is open until it expires or is closed; a state is used once.
    #[test]
    fn sessions_end_and_states_are_used_once() {
        let sessions = Sessions::default();
        sessions.open("a".into(), 100, "t".into(), 0);
        assert!(sessions.is_open("a", 99) && !sessions.is_open("a", 100) && !sessions.is_open("b", 0));
        sessions.close("a");
        assert!(!sessions.is_open("a", 0));
        assert!(sessions.use_state("s", 100, 0));
        assert!(!sessions.use_state("s", 100, 50), "a replayed state");
    }

    /// A full map drops the expired entries first, then the one expiring first.
    #[test]
    fn bounded() {
        let map = Mutex::new(HashMap::new());
        insert_bounded(&map, "old".into(), 5i64, 0, 2);
        insert_bounded(&map, "new".into(), 50i64, 0, 2);
        insert_bounded(&map, "third".into(), 60i64, 1, 2);
        let keys = map.lock().unwrap();
        assert!(keys.contains_key("new") && keys.contains_key("third") && !keys.contains_key("old"));
    }
}
