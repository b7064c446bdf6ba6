//! One cached answer as stored: status, the headers kept, body, expiry.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Bytes an entry's framing may add to its body (headers are few and short).
pub const OVERHEAD: usize = 16 * 1024;

const MAGIC: &[u8] = b"FXC1\n";

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// HTTP status.
    pub status: u16,
    /// Headers replayed on a hit (names lower-case, values visible ASCII).
    pub headers: Vec<(String, String)>,
    /// Unix millisecond after which the entry is dead (`None`: never).
    pub expires_at: Option<u64>,
    /// The body (for a local route: the JSON of the handler's result).
    pub body: Bytes,
}

/// An entry's metadata as stored (one JSON line). The expiry goes twice: `m` in
/// milliseconds, and `e` in Unix seconds, rounded up, for the versions before `m`
/// (instances of two versions may share a file store during an upgrade, and an older
/// one would read milliseconds as seconds: an entry alive for ever). An entry an
/// older version stored has `e` alone.
#[derive(Serialize)]
struct MetaOut<'a> {
    s: u16,
    h: &'a [(String, String)],
    e: Option<u64>,
    m: Option<u64>,
}

/// [`MetaOut`], read back (`m` absent in entries older versions stored).
#[derive(Deserialize)]
struct MetaIn {
    s: u16,
    h: Vec<(String, String)>,
    e: Option<u64>,
    m: Option<u64>,
}

/// An `e` this large is milliseconds, not seconds: builds of 2026-12-07 before `m`
/// wrote milliseconds there (as seconds, 10^11 is the year 5138; as milliseconds,
/// 1973 — an expiry so far ahead, in seconds, reads as dead: a miss).
const E_IN_MILLIS_FROM: u64 = 100_000_000_000;

/// The expiry in milliseconds that an `e` alone says.
fn expiry_of_e(e: u64) -> u64 {
    if e >= E_IN_MILLIS_FROM {
        e
    } else {
        e * 1000
    }
}

impl Entry {
    /// A 200 with `body` and no headers (a local route's result).
    pub fn value(body: Bytes) -> Entry {
        Entry { status: 200, headers: Vec::new(), expires_at: None, body }
    }

    /// Whether the entry is dead at `now` (Unix milliseconds).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// `FXC1\n`, the metadata as one JSON line, the body.
    pub fn encode(&self) -> Bytes {
        let meta = MetaOut {
            s: self.status,
            h: &self.headers,
            e: self.expires_at.map(|ms| ms.div_ceil(1000)),
            m: self.expires_at,
        };
        let meta = serde_json::to_vec(&meta).unwrap_or_default();
        let mut out = BytesMut::with_capacity(MAGIC.len() + meta.len() + 1 + self.body.len());
        out.put_slice(MAGIC);
        out.put_slice(&meta);
        out.put_u8(b'\n');
        out.put_slice(&self.body);
        out.freeze()
    }

    /// The entry `encode` made (or an older version's), or `None` for anything else (a
    /// damaged or foreign file reads as a miss).
    pub fn decode(bytes: &Bytes) -> Option<Entry> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let newline = rest.iter().position(|b| *b == b'\n')?;
        let meta: MetaIn = serde_json::from_slice(&rest[..newline]).ok()?;
        let visible = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t');
        if !meta.h.iter().all(|(k, v)| visible(k) && visible(v)) {
            return None;
        }
        Some(Entry {
            status: meta.s,
            headers: meta.h,
            expires_at: meta.m.or(meta.e.map(expiry_of_e)),
            body: bytes.slice(MAGIC.len() + newline + 1..),
        })
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

    /// The expiry is stored for both readers: in milliseconds, and in seconds rounded
    /// up for versions that read seconds; an entry such a version stored (seconds
    /// alone) reads with its expiry in milliseconds, and so does one whose `e` was
    /// milliseconds already (builds before `m`); one that is no whole number is a miss.
    #[test]
    fn the_expiry_reads_the_same_in_either_version() {
        let mut e = Entry::value(Bytes::from_static(b"1"));
        e.expires_at = Some(1_700_000_000_001);
        let bytes = e.encode();
        let line = std::str::from_utf8(&bytes[MAGIC.len()..]).unwrap().lines().next().unwrap();
        let meta: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!((meta["e"].as_u64(), meta["m"].as_u64()), (Some(1_700_000_001), Some(1_700_000_000_001)));
        assert_eq!(Entry::decode(&bytes), Some(e));
        let old = Bytes::from_static(b"FXC1\n{\"s\":200,\"h\":[],\"e\":1700000001}\nbody");
        let read = Entry::decode(&old).unwrap();
        assert_eq!((read.expires_at, &read.body[..]), (Some(1_700_000_001_000), &b"body"[..]));
        let milliseconds = Bytes::from_static(b"FXC1\n{\"s\":200,\"h\":[],\"e\":1796626269869}\n");
        assert_eq!(Entry::decode(&milliseconds).unwrap().expires_at, Some(1_796_626_269_869), "e in milliseconds, no m");
        let never = Bytes::from_static(b"FXC1\n{\"s\":200,\"h\":[],\"e\":null}\n");
        assert_eq!(Entry::decode(&never).unwrap().expires_at, None);
        let huge = Bytes::from_static(b"FXC1\n{\"s\":200,\"h\":[],\"e\":18446744073709551615}\n");
        assert_eq!(Entry::decode(&huge).unwrap().expires_at, Some(u64::MAX));
        for odd in [&b"\"m\":-1"[..], b"\"m\":1.5", b"\"m\":\"1\"", b"\"e\":1e30"] {
            let mut bytes = b"FXC1\n{\"s\":200,\"h\":[],".to_vec();
            bytes.extend_from_slice(odd);
            bytes.extend_from_slice(b"}\n");
            assert_eq!(Entry::decode(&Bytes::from(bytes)), None, "{}: a miss", String::from_utf8_lossy(odd));
        }
    }
}
