//! Header policy of both edges: which headers describe one connection rather than the
//! message (RFC 9110 §7.6.1), never forwarded in either direction (used by the HTTP
//! edge for requests, and by the pool's connections for answers: `h1::answer`).

/// Whether `name` (lower case, as header names are stored) is one of the headers that
/// describe one connection rather than the message (RFC 9110 §7.6.1), never forwarded
/// in either direction.
pub(crate) fn is_hop_by_hop_name(name: &str) -> bool {
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
/// that a `Connection` line of the message names (`connection`: every such line's
/// value, as sent; read as bytes, so a line that is not text still names its fields).
pub fn is_hop_by_hop(name: &str, connection: &[&[u8]]) -> bool {
    is_hop_by_hop_name(name)
        || connection
            .iter()
            .any(|line| line.split(|&b| b == b',').any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes())))
}

/// Whether a `Connection` token names a header beyond RFC 9110's own hop-by-hop ones
/// (which go anyway) and the `close` and `keep-alive` options.
pub(crate) fn names_another_header(token: &[u8]) -> bool {
    !token.is_empty()
        && !token.eq_ignore_ascii_case(b"close")
        && !HOP_BY_HOP_NAMES.iter().any(|name| token.eq_ignore_ascii_case(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_names_are_rfc_9110s_and_those_connection_names() {
        assert!(is_hop_by_hop("keep-alive", &[]));
        assert!(is_hop_by_hop("x-secret-hop", &[b"close, X-Secret-Hop"]));
        assert!(is_hop_by_hop("x-secret-hop", &[b"keep-alive", b"X-Secret-Hop , \xff"]), "any line, any bytes");
        assert!(!is_hop_by_hop("content-type", &[b"close"]));
        assert!(names_another_header(b"x-other") && !names_another_header(b"Keep-Alive") && !names_another_header(b"close"));
    }
}
