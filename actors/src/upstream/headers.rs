//! Header policy of both edges: which headers describe one connection rather than the
//! message (RFC 9110 §7.6.1), never forwarded in either direction (used by the HTTP
//! edge for requests and by the relay for replies), and how a reply is framed.

use http::header::{self, HeaderMap, HeaderName};

/// Whether `name` (lower case, as header names are stored) is one of the headers that
/// describe one connection rather than the message (RFC 9110 §7.6.1), never forwarded
/// in either direction.
fn is_hop_by_hop_name(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// RFC 9110's hop-by-hop header names, lower case (as [`is_hop_by_hop_name`] knows them).
const HOP_BY_HOP_NAMES: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a header named `name` (lower case) is hop-by-hop: one of RFC 9110's, or one
/// that the message's `Connection` header (`connection`, its value) names.
pub fn is_hop_by_hop(name: &str, connection: Option<&str>) -> bool {
    is_hop_by_hop_name(name)
        || connection.is_some_and(|named| {
            named
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case(name))
        })
}

/// Removes the hop-by-hop headers from `headers` (see [`is_hop_by_hop`]).
///
/// Most replies carry `Connection: keep-alive` and nothing else hop-by-hop: the
/// `Connection` values are read first, and only a token that is not already one of
/// RFC 9110's names (or `close`) is looked up as a header of its own, without
/// allocating a name for it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut hop_by_hop = 0usize;
    let mut named_other = false;
    for (name, value) in headers.iter() {
        if !is_hop_by_hop_name(name.as_str()) {
            continue;
        }
        hop_by_hop += 1;
        if name == header::CONNECTION {
            named_other |= value
                .to_str()
                .map_or(true, |v| v.split(',').any(|t| names_another_header(t.trim())));
        }
    }
    if hop_by_hop == 0 {
        return;
    }
    if named_other {
        let doomed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter(|t| names_another_header(t.trim()))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in doomed {
            headers.remove(name);
        }
    }
    for name in &STANDARD_HOP_BY_HOP {
        if hop_by_hop == 0 {
            break;
        }
        if let http::header::Entry::Occupied(entry) = headers.entry(name) {
            hop_by_hop -= entry.iter().count();
            entry.remove_entry_mult().1.for_each(drop);
        }
    }
}

/// RFC 9110's hop-by-hop names as `http`'s constants, the most frequent first
/// (`Keep-Alive` and `Proxy-Connection` have no constant: built from their text once).
static STANDARD_HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    HeaderName::from_static("keep-alive"),
    header::UPGRADE,
    header::TE,
    header::TRAILER,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
];

/// Whether a `Connection` token names a header beyond RFC 9110's own hop-by-hop ones
/// (which go anyway) and the `close` and `keep-alive` options.
fn names_another_header(token: &str) -> bool {
    !token.is_empty()
        && !token.eq_ignore_ascii_case("close")
        && !HOP_BY_HOP_NAMES.iter().any(|name| token.eq_ignore_ascii_case(name))
}

/// A reply framed by `Transfer-Encoding` is framed by it alone (RFC 9112 §6.3): its
/// `Content-Length`, if it also sent one, says nothing about the body and is dropped,
/// so that no consumer sizes the body from it.
pub fn frame_by_transfer_encoding(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// A chunked reply's Content-Length goes; without Transfer-Encoding it stays.
    #[test]
    fn content_length_goes_when_the_reply_is_chunked() {
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999999"));
        frame_by_transfer_encoding(&mut h);
        assert!(!h.contains_key(header::CONTENT_LENGTH));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        frame_by_transfer_encoding(&mut h);
        assert_eq!(h[header::CONTENT_LENGTH], "12");
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert(HeaderName::from_static("x-secret-hop"), HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive, close"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-other"));
        h.insert(HeaderName::from_static("keep-alive"), HeaderValue::from_static("timeout=5"));
        h.insert(HeaderName::from_static("x-other"), HeaderValue::from_static("1"));
        h.insert(header::TRAILER, HeaderValue::from_static("x-sum"));
        h.insert(header::SERVER, HeaderValue::from_static("nginx"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["server"]);
        assert!(is_hop_by_hop("keep-alive", None));
        assert!(is_hop_by_hop("x-secret-hop", Some("close, X-Secret-Hop")));
        assert!(!is_hop_by_hop("content-type", Some("close")));
    }
}
