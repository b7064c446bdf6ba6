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
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: look before removing (each removal hashes a name).
    if !headers.keys().any(|name| is_hop_by_hop_name(name.as_str())) {
        return;
    }
    let mut doomed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    doomed.extend(headers.keys().filter(|n| is_hop_by_hop_name(n.as_str())).cloned());
    for name in doomed {
        headers.remove(name);
    }
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
        assert!(is_hop_by_hop("keep-alive", None));
        assert!(is_hop_by_hop("x-secret-hop", Some("close, X-Secret-Hop")));
        assert!(!is_hop_by_hop("content-type", Some("close")));
    }
}
