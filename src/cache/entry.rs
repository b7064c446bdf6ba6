//! One cached answer as stored: status, the headers kept, body, expiry.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Bytes an entry's framing may add to its body (headers are few and short).
pub const OVERHEAD: usize = 16 * 1024;

const MAGIC: &[u8] = b"FXC1\n";

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// HTTP status.
    #[serde(rename = "s")]
    pub status: u16,
    /// Headers replayed on a hit (names lower-case, values visible ASCII).
    #[serde(rename = "h")]
    pub headers: Vec<(String, String)>,
    /// Unix millisecond after which the entry is dead (`None`: never). Entries
    /// stored by earlier versions counted seconds here: read as milliseconds, they
    /// are long dead (a miss, never an entry kept too long).
    #[serde(rename = "e")]
    pub expires_at: Option<u64>,
    /// The body (for a local route: the JSON of the handler's result).
    #[serde(skip)]
    pub body: Bytes,
}

impl Entry {
    /// A 200 with `body` and no headers (a local route's result).
    pub fn value(body: Bytes) -> Entry {
        Entry { status: 200, headers: Vec::new(), expires_at: None, body }
    }

    /// Whether the entry is dead at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// `FXC1\n`, the metadata as one JSON line, the body.
    pub fn encode(&self) -> Bytes {
        let meta = serde_json::to_vec(self).unwrap_or_default();
        let mut out = BytesMut::with_capacity(MAGIC.len() + meta.len() + 1 + self.body.len());
        out.put_slice(MAGIC);
        out.put_slice(&meta);
        out.put_u8(b'\n');
        out.put_slice(&self.body);
        out.freeze()
    }

    /// The entry `encode` made, or `None` for anything else (a damaged or foreign
    /// file reads as a miss).
    pub fn decode(bytes: &Bytes) -> Option<Entry> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let newline = rest.iter().position(|b| *b == b'\n')?;
        let mut entry: Entry = serde_json::from_slice(&rest[..newline]).ok()?;
        let start = MAGIC.len() + newline + 1;
        entry.body = bytes.slice(start..);
        let visible = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t');
        entry.headers.iter().all(|(k, v)| visible(k) && visible(v)).then_some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut e = Entry::value(Bytes::from_static(b"{\"a\":\n1}"));
        e.headers.push(("content-type".into(), "application/json".into()));
        e.expires_at = Some(5);
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes), Some(e.clone()));
        assert!(e.expired(5) && !e.expired(4));
        assert_eq!(Entry::decode(&Bytes::from_static(b"FXC1\n{garbage")), None);
        assert_eq!(Entry::decode(&Bytes::from_static(b"not an entry")), None);
        let bad = Bytes::from_static(b"FXC1\n{\"s\":200,\"h\":[[\"x\",\"a\\r\\nb\"]],\"e\":null}\n");
        assert_eq!(Entry::decode(&bad), None, "header injection through a stored value");
    }
}
