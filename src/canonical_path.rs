//! The one canonical form of a request path, computed once before anything looks at
//! the path (built-ins, `[auth]` rules, proxy filters, the route table, forwarding).
//!
//! From the raw path the client sent (`req.uri().path()`, not actix-router's
//! re-quoted form):
//! - percent-escapes of characters that may stand literally in a path (unreserved
//!   `A-Z a-z 0-9 - . _ ~`, sub-delims `! $ & ' ( ) * + , ; =`, `:` and `@`) are
//!   decoded, as the upstream decodes them (`/a%3Ab` is `/a:b` to FastAPI, so it must be
//!   to the rules too); other escapes are kept, their hex upper-cased;
//! - bytes that may not appear literally in a path (non-ASCII, `"`, `<`, `{`, …) are
//!   percent-encoded, so the canonical path is plain ASCII;
//! - repeated slashes are merged (Envoy's `merge_slashes`): `/a//b` is `/a/b`;
//! - refused (400): a path that does not start with `/`, invalid percent-encoding, an
//!   encoded `/` or `\` (`%2F`, `%5C`), a literal `\`, control characters (`%00`–`%1F`,
//!   `%7F`), dot segments (`.` and `..`, also encoded such as `%2e%2E`), and a path
//!   whose fully decoded bytes are not UTF-8.
//!
//! Two paths that an upstream decodes to the same bytes have the same canonical form,
//! and the canonical path is what goes upstream: the upstream never reads something
//! other than what the rules were checked against.

use std::borrow::Cow;

/// Why a request path is refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding in the path")]
    BadEscape,
    /// `%2F` or `%5C`: a separator hidden from the router.
    #[error("an encoded '/' or '\\' is not allowed in the path")]
    EncodedSeparator,
    /// A literal backslash, which some servers read as `/`.
    #[error("'\\' is not allowed in the path")]
    Backslash,
    /// NUL or another control character.
    #[error("control characters are not allowed in the path")]
    ControlCharacter,
    /// A `.` or `..` segment.
    #[error("dot segments are not allowed in the path")]
    DotSegment,
    /// The decoded path is not UTF-8.
    #[error("the decoded path is not valid UTF-8")]
    InvalidUtf8,
}

/// Whether `b` is an RFC 3986 unreserved character (decoded when percent-encoded).
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether `b` may stand literally in a canonical path: unreserved, sub-delims, `:`,
/// `@` and `/`.
fn is_literal(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/'
        )
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `raw` is canonical as it is (the common case: nothing to allocate): only
/// literal bytes, no dot segment and no empty segment but a trailing slash's.
fn is_canonical(raw: &[u8]) -> bool {
    let mut segment_start = 1;
    for (i, &b) in raw.iter().enumerate() {
        if b == b'/' {
            // An empty segment here is a `//` (`str::contains` ran a substring
            // search per request for it: 390 instructions on a proxied GET).
            if i > 0 && (segment_start == i || !segment_ok(&raw[segment_start..i])) {
                return false;
            }
            segment_start = i + 1;
        } else if !is_literal(b) {
            return false;
        }
    }
    segment_ok(&raw[segment_start.min(raw.len())..])
}

/// A segment that can stay as it is: not a dot segment.
fn segment_ok(segment: &[u8]) -> bool {
    !matches!(segment, b"." | b"..")
}

/// The canonical form of the raw request path `raw`.
///
/// # Errors
/// [`PathError`] when the path is refused.
pub fn canonicalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(bytes) {
        return Ok(Cow::Borrowed(raw));
    }
    // Pass 1: escapes decoded or normalised, odd bytes encoded; the fully decoded
    // bytes kept for the UTF-8 check.
    let mut out = Vec::with_capacity(bytes.len() + 8);
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let value = match (bytes.get(i + 1).copied().and_then(hex_value), bytes.get(i + 2).copied().and_then(hex_value)) {
                    (Some(h), Some(l)) => h << 4 | l,
                    _ => return Err(PathError::BadEscape),
                };
                if value == b'/' || value == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                if value < 0x20 || value == 0x7f {
                    return Err(PathError::ControlCharacter);
                }
                decoded.push(value);
                // (`/` was refused above: every other literal byte means the same
                // escaped or not, to the upstream and so to us.)
                if is_literal(value) {
                    out.push(value);
                } else {
                    out.extend_from_slice(&[b'%', HEX[usize::from(value >> 4)], HEX[usize::from(value & 15)]]);
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            _ if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            _ if is_literal(b) => out.push(b),
            _ => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
        decoded.push(b);
        i += 1;
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    // Pass 2: slashes merged, dot segments refused.
    let mut path = String::with_capacity(out.len());
    let text = std::str::from_utf8(&out).map_err(|_| PathError::InvalidUtf8)?;
    let trailing = text.len() > 1 && text.ends_with('/');
    for segment in text.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || trailing {
        path.push('/');
    }
    Ok(Cow::Owned(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        canonicalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}")).into_owned()
    }

    #[test]
    fn plain_paths_are_kept_without_copying() {
        for raw in ["/", "/api/v1/items/7", "/a/b/", "/a:b@c/!$&'()*+,;=", "/.well-known/x", "/a/.b/..c"] {
            assert!(matches!(canonicalize(raw), Ok(Cow::Borrowed(p)) if p == raw), "{raw}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_upper_cased() {
        assert_eq!(ok("/api/v1/items/%37"), "/api/v1/items/7");
        assert_eq!(ok("/api/v1/files/intern%61l"), "/api/v1/files/internal");
        assert_eq!(ok("/a%7eb%2D"), "/a~b-");
        assert_eq!(ok("/a%3fb%3A"), "/a%3Fb:");
        assert_eq!(ok("/files/a%3ab%40c%2B%3B%3d%21%24%26%27%28%29%2A%2C"), "/files/a:b@c+;=!$&'()*,");
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(ok("/café"), "/caf%C3%A9");
        assert_eq!(ok("/a{b}"), "/a%7Bb%7D");
    }

    #[test]
    fn slashes_are_merged() {
        assert_eq!(ok("//a///b"), "/a/b");
        assert_eq!(ok("/a//"), "/a/");
        assert_eq!(ok("//"), "/");
    }

    /// The fast path keeps a path only when it needs no rewriting: a doubled slash at
    /// any place, a run of thousands, or one hiding a dot segment is never kept as it
    /// came, and a long plain path is kept in one pass.
    #[test]
    fn a_doubled_slash_anywhere_is_never_kept_as_it_came() {
        let plain = "/api/v1/items/7/";
        for (at, _) in plain.match_indices('/') {
            let doubled = format!("{}/{}", &plain[..at], &plain[at..]);
            assert!(matches!(canonicalize(&doubled), Ok(Cow::Owned(p)) if p == plain), "{doubled}");
        }
        let run = format!("{}a", "/".repeat(10_000));
        assert_eq!(ok(&run), "/a");
        assert_eq!(canonicalize("//.."), Err(PathError::DotSegment));
        assert_eq!(canonicalize("/a//./b"), Err(PathError::DotSegment));
        assert_eq!(canonicalize("/a/.//b"), Err(PathError::DotSegment));
        let long = "/a".repeat(32 * 1024);
        assert!(matches!(canonicalize(&long), Ok(Cow::Borrowed(p)) if p == long));
    }

    #[test]
    fn hostile_paths_are_refused() {
        let cases = [
            ("", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("a/b", PathError::NotAbsolute),
            ("/a/%", PathError::BadEscape),
            ("/a/%4", PathError::BadEscape),
            ("/a/%zz", PathError::BadEscape),
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::Backslash),
            ("/a%00", PathError::ControlCharacter),
            ("/a%0d%0a", PathError::ControlCharacter),
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/a/..", PathError::DotSegment),
            ("/a/%2e%2E/b", PathError::DotSegment),
            ("/a/.%2e", PathError::DotSegment),
            ("/a/%2e/", PathError::DotSegment),
            ("/a%ff", PathError::InvalidUtf8),
            ("/a%c3", PathError::InvalidUtf8),
        ];
        for (raw, want) in cases {
            assert_eq!(canonicalize(raw), Err(want), "{raw}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// Canonicalising never panics, and a canonical path is its own canonical form,
        /// with no empty or dot segment whichever way it was found (kept as it came, or
        /// rewritten).
        #[test]
        fn canonical_is_a_fixed_point(raw in "/[a-zA-Z0-9%./\\\\~_:@{}é-]{0,24}") {
            if let Ok(once) = canonicalize(&raw) {
                let once = once.into_owned();
                proptest::prop_assert_eq!(canonicalize(&once).map(Cow::into_owned), Ok(once.clone()));
                proptest::prop_assert!(once.is_ascii());
                proptest::prop_assert!(!once.contains("//"), "{}", once);
                proptest::prop_assert!(once.split('/').all(|s| s != "." && s != ".."), "{}", once);
            }
        }
    }
}
