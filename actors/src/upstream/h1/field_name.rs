//! An answer field's name, and what it is to the answer's parse: the names upstreams
//! send most are matched by length and bytes, in any case, without `http`'s general
//! name lookup (which lower-cases every name into a buffer first); the rest go
//! through it.

use http::header::{self, HeaderName, InvalidHeaderName};

use crate::upstream::headers::is_hop_by_hop_name;

/// What a field is to the answer parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// `Connection`: read for keep-alive and the names it lists; not kept.
    Connection,
    /// `Transfer-Encoding`: read for framing; not kept.
    TransferEncoding,
    /// Another hop-by-hop field (RFC 9110 §7.6.1): not kept.
    Hop,
    /// `Content-Length`: read for framing, and kept.
    ContentLength,
    /// `Content-Type`: read for event streams, and kept.
    ContentType,
    /// Any other field: kept as sent.
    Kept,
}

/// The name `raw` spells (lower case, as names are stored), and its role.
///
/// # Errors
/// `raw` is no header name.
pub(super) fn classify(raw: &[u8]) -> Result<(HeaderName, Role), InvalidHeaderName> {
    if let Some(known) = common(raw) {
        return Ok(known);
    }
    let name = HeaderName::from_bytes(raw)?;
    let role = role_of(&name);
    Ok((name, role))
}

/// The role of a name found by the general lookup.
fn role_of(name: &HeaderName) -> Role {
    if name == header::CONNECTION {
        Role::Connection
    } else if name == header::TRANSFER_ENCODING {
        Role::TransferEncoding
    } else if is_hop_by_hop_name(name.as_str()) {
        Role::Hop
    } else if name == header::CONTENT_LENGTH {
        Role::ContentLength
    } else if name == header::CONTENT_TYPE {
        Role::ContentType
    } else {
        Role::Kept
    }
}

/// The names most answers carry (nginx's, uvicorn's, caches'), in any case.
fn common(raw: &[u8]) -> Option<(HeaderName, Role)> {
    let is = |name: &[u8]| same_name(raw, name);
    let found = match raw.len() {
        4 if is(b"date") => (header::DATE, Role::Kept),
        4 if is(b"etag") => (header::ETAG, Role::Kept),
        4 if is(b"vary") => (header::VARY, Role::Kept),
        6 if is(b"server") => (header::SERVER, Role::Kept),
        7 if is(b"expires") => (header::EXPIRES, Role::Kept),
        8 if is(b"location") => (header::LOCATION, Role::Kept),
        10 if is(b"connection") => (header::CONNECTION, Role::Connection),
        10 if is(b"set-cookie") => (header::SET_COOKIE, Role::Kept),
        12 if is(b"content-type") => (header::CONTENT_TYPE, Role::ContentType),
        13 if is(b"last-modified") => (header::LAST_MODIFIED, Role::Kept),
        13 if is(b"accept-ranges") => (header::ACCEPT_RANGES, Role::Kept),
        13 if is(b"cache-control") => (header::CACHE_CONTROL, Role::Kept),
        14 if is(b"content-length") => (header::CONTENT_LENGTH, Role::ContentLength),
        16 if is(b"content-encoding") => (header::CONTENT_ENCODING, Role::Kept),
        17 if is(b"transfer-encoding") => (header::TRANSFER_ENCODING, Role::TransferEncoding),
        _ => return None,
    };
    Some(found)
}

/// Whether `raw` spells `lower` (lower-case letters and `-` only, as long as `raw`) in
/// any case: compared a word at a time, a letter with its case bit set, any other byte
/// exactly (a byte-wise case-blind compare was a sixth of an answer head's parse).
#[inline(always)]
fn same_name(raw: &[u8], lower: &[u8]) -> bool {
    debug_assert!(raw.len() == lower.len() && raw.len() >= 4);
    debug_assert!(lower.iter().all(|&b| b.is_ascii_lowercase() || b == b'-'), "{lower:?}");
    /// The case bit (0x20) of each byte of `lower` that is a letter (has 0x40 set).
    fn same(raw: u64, lower: u64) -> bool {
        raw | ((lower & 0x4040_4040_4040_4040) >> 1) == lower
    }
    let n = raw.len();
    if n < 8 {
        let word = |b: &[u8], at: usize| u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]));
        return same(word(raw, 0), word(lower, 0)) && same(word(raw, n - 4), word(lower, n - 4));
    }
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let mut at = 0;
    while at + 8 < n {
        if !same(word(raw, at), word(lower, at)) {
            return false;
        }
        at += 8;
    }
    same(word(raw, n - 8), word(lower, n - 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const COMMON: [&str; 15] = [
        "date",
        "etag",
        "vary",
        "server",
        "expires",
        "location",
        "connection",
        "set-cookie",
        "content-type",
        "last-modified",
        "accept-ranges",
        "cache-control",
        "content-length",
        "content-encoding",
        "transfer-encoding",
    ];

    /// The general lookup and the role a name has there.
    fn general(raw: &[u8]) -> Result<(HeaderName, Role), InvalidHeaderName> {
        HeaderName::from_bytes(raw).map(|name| {
            let role = role_of(&name);
            (name, role)
        })
    }

    #[test]
    fn roles_follow_rfc_9110() {
        let role = |raw: &str| classify(raw.as_bytes()).unwrap().1;
        assert_eq!(role("Connection"), Role::Connection);
        assert_eq!(role("TRANSFER-ENCODING"), Role::TransferEncoding);
        for hop in ["keep-alive", "Proxy-Connection", "te", "Trailer", "upgrade", "proxy-authenticate"] {
            assert_eq!(role(hop), Role::Hop, "{hop}");
        }
        assert_eq!(role("Content-Length"), Role::ContentLength);
        assert_eq!(role("content-TYPE"), Role::ContentType);
        assert_eq!(role("X-Connection"), Role::Kept);
        assert!(classify(b"bad name").is_err());
        assert!(classify(b"").is_err());
    }

    /// The word-wise compare agrees with a byte-wise case-blind one for every common
    /// name with any one byte changed to any value (a carriage return where `-` stands
    /// is no match, although its case bit makes it one).
    #[test]
    fn names_compare_as_bytes_do_ignoring_case() {
        for name in COMMON {
            for at in 0..name.len() {
                for byte in 0u8..=255 {
                    let mut raw = name.as_bytes().to_vec();
                    raw[at] = byte;
                    assert_eq!(same_name(&raw, name.as_bytes()), raw.eq_ignore_ascii_case(name.as_bytes()), "{raw:?}");
                }
            }
        }
        assert!(common(b"content\rlength").is_none());
    }

    proptest! {
        /// A common name, in any case, is the name and role the general lookup gives.
        #[test]
        fn common_names_are_what_the_general_lookup_says(
            which in 0..COMMON.len(),
            upper in proptest::collection::vec(any::<bool>(), 17),
        ) {
            let raw: Vec<u8> = COMMON[which]
                .bytes()
                .zip(&upper)
                .map(|(b, &up)| if up { b.to_ascii_uppercase() } else { b })
                .collect();
            prop_assert!(common(&raw).is_some());
            prop_assert_eq!(classify(&raw).unwrap(), general(&raw).unwrap());
        }

        /// Any other bytes (a common name with one byte changed among them) get what
        /// the general lookup gives, an error included.
        #[test]
        fn other_names_go_through_the_general_lookup(
            which in 0..COMMON.len(),
            at in 0usize..17,
            byte in any::<u8>(),
        ) {
            let mut raw = COMMON[which].as_bytes().to_vec();
            let at = at % raw.len();
            raw[at] = byte;
            prop_assert_eq!(classify(&raw).ok(), general(&raw).ok());
        }
    }
}
