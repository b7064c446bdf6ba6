//! HTTP/1.1 answer heads on the pool's connections, parsed with `httparse` into the
//! `http` crate's types: the message's own fields, and, read from the hop-by-hop
//! ones (which are not kept), how its body is framed (RFC 9112 §6.3) and whether the
//! connection may carry another request.

use std::collections::HashSet;
use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::HeaderName;
use http::{Method, StatusCode, Version};

use super::field_name::{classify, Role};
use super::fields::{AnswerFields, Writer};
use crate::upstream::headers::names_another_header;
use crate::wire_error::HeadError;

/// Most header fields an answer may carry (as actix-http's own parser; hyper's 100).
pub(super) const MAX_HEADERS: usize = 100;
/// Largest answer head read (status line and fields).
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// How an answer's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// An answer head, parsed.
pub(super) struct Head {
    /// Its status.
    pub(super) status: StatusCode,
    /// Its end-to-end fields, as sent, written out as lines: without the hop-by-hop
    /// ones (RFC 9110 §7.6.1, and those its `Connection` names), and without
    /// `Content-Length`, which frames the body: `content_length` says it where it counts
    /// (the edge writes the length of the body it sends, and under
    /// `Transfer-Encoding` no consumer may size the body from it, §6.3).
    pub(super) headers: AnswerFields,
    /// How its body is framed.
    pub(super) framing: Framing,
    /// Whether the connection may carry another request once this body is read.
    pub(super) keep_alive: bool,
    /// Its `Content-Length` when it has one that counts (not under
    /// `Transfer-Encoding`); for a `HEAD` or a `304`, the length the `GET` would have.
    pub(super) content_length: Option<u64>,
    /// Whether its (first) `Content-Type` is `text/event-stream` (not if its
    /// `Connection` names `Content-Type`, which then is not kept).
    pub(super) event_stream: bool,
}

/// Parses an answer head at the start of `buf` (the request was `method`): `None`
/// while it is incomplete, else the head, whose bytes are taken from `buf` (its
/// fields written out as lines).
///
/// # Errors
/// The head is malformed, too large, or frames its body ambiguously.
pub(super) fn parse_answer_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, HeadError> {
    // Left uninitialised: httparse writes the fields it finds (zeroing 100 of them
    // cost more than parsing a head).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut []);
    let taken = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut answer, buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => return Err(HeadError::TooLarge { limit: MAX_HEAD }),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(HeadError::TooLarge { limit: MAX_HEAD }),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Syntax(e)),
    };
    let code = answer.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Status)?;
    let version = if answer.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    // Read from the fields httparse found, which borrow `buf` until it is split.
    let (headers, hops) = fields_of(taken, answer.headers)?;
    buf.advance(taken);
    let (framing, clean) = hops.framing(version, status, method)?;
    // A `101` hands the connection over: never reused as HTTP.
    let keep_alive = clean
        && framing != Framing::UntilClose
        && status != StatusCode::SWITCHING_PROTOCOLS
        && !hops.close
        && (version == Version::HTTP_11 || hops.keep_alive);
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
        content_length: hops.length.filter(|_| !hops.transfer_encoded),
        event_stream: hops.event_stream,
    }))
}

/// Whether `status` is an interim answer, which a final one follows (every 1xx but
/// `101`, which ends the exchange).
pub(super) fn is_interim(status: StatusCode) -> bool {
    status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS
}

/// What the start of `buf` holds, looked at without taking it (while a request body
/// is still going out): `Some(n)` for a complete interim head of `n` bytes, `None`
/// while a head is incomplete; `Err(())` for anything else — a final head, or one
/// that will not parse — which the exchange then reads as the answer.
pub(super) fn interim_head_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut answer, buf, &mut fields) {
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => Ok(None),
        Ok(httparse::Status::Complete(n)) if answer.code.and_then(|c| StatusCode::from_u16(c).ok()).is_some_and(is_interim) => Ok(Some(n)),
        _ => Err(()),
    }
}

/// What a head's framing fields said, read as they pass (none of them is kept).
#[derive(Default)]
struct Hops {
    /// `Connection: close`.
    close: bool,
    /// `Connection: keep-alive`.
    keep_alive: bool,
    /// `Connection` names a field beyond RFC 9110's own hop-by-hop ones.
    names_other: bool,
    /// Whether a `Transfer-Encoding` came.
    transfer_encoded: bool,
    /// Whether the last `Transfer-Encoding` ends with `chunked`.
    chunked_last: bool,
    /// Whether a `Content-Length` came.
    length_seen: bool,
    /// The length they all said; `None` if they disagree or one is no number.
    length: Option<u64>,
    /// Whether a `Content-Type` came.
    content_typed: bool,
    /// Whether the first `Content-Type` is `text/event-stream`.
    event_stream: bool,
}

impl Hops {
    /// Notes a `Connection` value.
    fn connection(&mut self, value: &[u8]) {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            self.close |= token.eq_ignore_ascii_case(b"close");
            self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            self.names_other |= names_another_header(token);
        }
    }

    /// Notes a `Transfer-Encoding` value: the last coding named decides (empty list
    /// elements, and so an empty line, name none: RFC 9110 §5.6.1).
    fn transfer_encoding(&mut self, value: &[u8]) {
        self.transfer_encoded = true;
        if let Some(last) = value.rsplit(|&b| b == b',').map(<[u8]>::trim_ascii).find(|coding| !coding.is_empty()) {
            self.chunked_last = last.eq_ignore_ascii_case(b"chunked");
        }
    }

    /// Notes a `Content-Length` value (`n` or `n, n, …`).
    fn content_length(&mut self, value: &[u8]) {
        for part in value.split(|&b| b == b',') {
            self.length = match (self.length_seen, parse_length(part.trim_ascii()), self.length) {
                (false, Some(n), _) => Some(n),
                (true, Some(n), Some(seen)) if n == seen => Some(n),
                _ => None,
            };
            self.length_seen = true;
        }
    }

    /// How the body is framed, and whether unambiguously (an answer with both
    /// `Transfer-Encoding` and `Content-Length` is read by the former, and its
    /// connection is not used again).
    fn framing(&self, version: Version, status: StatusCode, method: &Method) -> Result<(Framing, bool), HeadError> {
        if *method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok((Framing::Length(0), true));
        }
        if self.transfer_encoded {
            // Framed both ways, or chunked over HTTP/1.0 (which has no chunking, RFC
            // 9112 §6.1): read as chunked, and the connection closed after.
            let clean = !self.length_seen && version == Version::HTTP_11 && self.chunked_last;
            return Ok((if self.chunked_last { Framing::Chunked } else { Framing::UntilClose }, clean));
        }
        match (self.length_seen, self.length) {
            (false, _) => Ok((Framing::UntilClose, true)),
            (true, Some(n)) => Ok((Framing::Length(n), true)),
            (true, None) => Err(HeadError::ContentLength),
        }
    }
}

/// The end-to-end fields of a head of `head_len` bytes whose fields are `parsed`, and
/// what its hop-by-hop ones said.
fn fields_of(head_len: usize, parsed: &[httparse::Header<'_>]) -> Result<(AnswerFields, Hops), HeadError> {
    let mut fields = Writer::with_room(head_len, parsed.len());
    let mut hops = Hops::default();
    for field in parsed {
        let (name, role) = classify(field.name.as_bytes()).map_err(|_| HeadError::Field)?;
        let raw = field.value;
        match role {
            Role::Connection => hops.connection(raw),
            Role::TransferEncoding => hops.transfer_encoding(raw),
            Role::ContentLength => hops.content_length(raw),
            Role::ContentType if !hops.content_typed => {
                hops.content_typed = true;
                hops.event_stream = crate::sse::is_event_stream(raw);
            }
            Role::Hop | Role::ContentType | Role::Kept => {}
        }
        if kept(role) {
            fields.push(&name, raw);
        }
    }
    if !hops.names_other {
        return Ok((fields.finish(), hops));
    }
    // Rare: `Connection` names fields, which are written again without them. A
    // `Content-Type` it names is gone: no event stream then.
    let named = named_by_connection(parsed);
    let mut fields = Writer::with_room(head_len, parsed.len());
    let mut typed = false;
    for field in parsed {
        let (name, role) = classify(field.name.as_bytes()).map_err(|_| HeadError::Field)?;
        if kept(role) && !named.contains(&name) {
            typed |= role == Role::ContentType;
            fields.push(&name, field.value);
        }
    }
    hops.event_stream &= typed;
    Ok((fields.finish(), hops))
}

/// Whether a field of this role is passed on (the framing and hop-by-hop ones are not).
fn kept(role: Role) -> bool {
    !matches!(role, Role::Connection | Role::TransferEncoding | Role::ContentLength | Role::Hop)
}

/// The names the head's `Connection` fields list (tokens that are no header name
/// name nothing), as a set: a head may list thousands.
fn named_by_connection(parsed: &[httparse::Header<'_>]) -> HashSet<HeaderName> {
    let mut named = HashSet::new();
    for field in parsed {
        if !field.name.eq_ignore_ascii_case("connection") {
            continue;
        }
        for token in field.value.split(|&b| b == b',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim_ascii()) {
                named.insert(name);
            }
        }
    }
    named
}

/// A `Content-Length` value: digits only, no sign, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(text: &str, method: &Method) -> Result<Option<Head>, HeadError> {
        parse_answer_head(&mut BytesMut::from(text), method)
    }

    /// Field values are taken without a second check: every byte `HeaderValue` refuses
    /// must already be refused by the parse, and every byte it allows kept as sent.
    #[test]
    fn field_values_hold_only_what_header_values_allow() {
        // Long enough for httparse's vectored (SIMD) scan to see the byte.
        let value = |byte: u8| [&[b'a'; 40][..], &[byte], &[b'b'; 40][..]].concat();
        for byte in 0u8..=255 {
            let mut head = b"HTTP/1.1 200 OK\r\nX-A: ".to_vec();
            head.extend_from_slice(&value(byte));
            head.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            let allowed = HeaderValue::from_bytes(&value(byte)).is_ok();
            match parse_answer_head(&mut BytesMut::from(&head[..]), &Method::GET) {
                Ok(Some(answer)) => {
                    assert!(allowed, "byte {byte:#x} taken into a value");
                    assert_eq!(answer.headers.get("x-a").unwrap(), value(byte));
                    let map = answer.headers.into_map();
                    assert_eq!(map.get("x-a").unwrap().as_bytes(), value(byte), "and as a map");
                }
                Ok(None) => panic!("byte {byte:#x}: incomplete"),
                // CR and LF end the line: what follows is no field, and it is refused.
                Err(_) => assert!(!allowed || byte == b'\r' || byte == b'\n', "byte {byte:#x} refused"),
            }
        }
    }

    #[test]
    fn a_head_is_parsed_once_complete_and_its_body_framed() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n");
        assert!(parse_answer_head(&mut buf, &Method::GET).unwrap().is_none());
        buf.extend_from_slice(b"\r\nhi");
        let head = parse_answer_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert_eq!(head.headers.get("x-a").unwrap(), b"b");
        assert_eq!(&buf[..], b"hi", "the body stays in the buffer");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let chunked = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert_eq!((chunked.framing, chunked.keep_alive), (Framing::Chunked, true));
        for listed in ["chunked,", "gzip, chunked , ,", "chunked\r\nTransfer-Encoding: ", "gzip\r\nTransfer-Encoding: ,chunked,"] {
            let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {listed}\r\n\r\n");
            let parsed = parse(&head, &Method::GET).unwrap().unwrap();
            assert_eq!(parsed.framing, Framing::Chunked, "empty elements name no coding: {listed:?}");
        }
        let gzip_last = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip,\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert_eq!((gzip_last.framing, gzip_last.keep_alive), (Framing::UntilClose, false));
        let both = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!((both.framing, both.keep_alive), (Framing::Chunked, false), "ambiguous: not reused");
        let old_chunked = parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n", &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!((old_chunked.framing, old_chunked.keep_alive), (Framing::Chunked, false), "HTTP/1.0 has no chunking");
        let gzip_only = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert_eq!((gzip_only.framing, gzip_only.keep_alive), (Framing::UntilClose, false));
        let none = parse("HTTP/1.1 200 OK\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert_eq!((none.framing, none.keep_alive), (Framing::UntilClose, false));
        let head = parse("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", &Method::HEAD).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Length(0));
        let not_modified = parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert_eq!(not_modified.framing, Framing::Length(0));
        let same = parse("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert_eq!(same.framing, Framing::Length(3));
    }

    #[test]
    fn ambiguous_or_malformed_heads_are_refused() {
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3 4\r\n\r\n",
        ] {
            assert!(matches!(parse(bad, &Method::GET), Err(HeadError::ContentLength)), "{bad:?}");
        }
        assert!(matches!(parse("HTTP/1.1 2000 OK\r\n\r\n", &Method::GET), Err(HeadError::Syntax(_))));
        assert!(matches!(parse("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", &Method::GET), Err(HeadError::Syntax(_))));
        assert!(matches!(parse("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", &Method::GET), Err(HeadError::Syntax(_))));
        let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(parse(&endless, &Method::GET), Err(HeadError::TooLarge { .. })));
        // Complete in the read that crossed the limit: too large all the same.
        let over = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse(&over, &Method::GET), Err(HeadError::TooLarge { .. })), "a head over the limit");
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), &Method::GET).is_err());
    }

    #[test]
    fn interim_heads_are_seen_without_being_taken() {
        assert_eq!(interim_head_len(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413"), Ok(Some(25)));
        assert_eq!(interim_head_len(b"HTTP/1.1 100 Cont"), Ok(None));
        assert_eq!(interim_head_len(b"HTTP/1.1 413 Payload Too Large\r\n\r\n"), Err(()));
        assert_eq!(interim_head_len(b"HTTP/1.1 101 Switching\r\n\r\n"), Err(()), "a 101 is final");
        assert_eq!(interim_head_len(b"garbage\r\n\r\n"), Err(()));
        let endless = format!("HTTP/1.1 100 Continue\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(interim_head_len(endless.as_bytes()), Err(()), "an endless head is for read_head to refuse");
        let switched = parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", &Method::GET)
            .unwrap()
            .unwrap();
        assert!(!switched.keep_alive, "a 101 hands the connection over");
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        let close = parse("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert!(!close.keep_alive);
        let old = parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert!(!old.keep_alive);
        let old_kept = parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", &Method::GET)
            .unwrap()
            .unwrap();
        assert!(old_kept.keep_alive);
    }

    /// `Connection` tokens that are no header name (bytes beyond ASCII, empty tokens,
    /// a long list of them) name nothing and change nothing else.
    #[test]
    fn odd_connection_tokens_name_nothing() {
        let mut head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, \xff\xfe, , x y\r\nConnection: ".to_vec();
        head.extend_from_slice(&b"t,".repeat(5_000));
        head.extend_from_slice(b"\r\nT: 1\r\nX-Kept: 2\r\nContent-Length: 0\r\n\r\n");
        let answer = parse_answer_head(&mut BytesMut::from(&head[..]), &Method::GET).unwrap().unwrap();
        let mut names: Vec<_> = answer.headers.names();
        names.sort_unstable();
        assert_eq!(names, ["x-kept"], "`t`, which Connection names, goes; the rest stays");
        assert!(answer.keep_alive);
    }

    /// The fields come out as `name: value` lines, lower-case names, values as sent
    /// (bare line feeds too), saying whether one is `Date`; a `Date` that `Connection`
    /// names is gone, and so is the say. As a map they are the same fields.
    #[test]
    fn fields_are_written_as_lines_that_say_whether_a_date_came() {
        let dated = parse("HTTP/1.1 200 OK\r\nDate: d\r\nX-A:b\nContent-Length: 0\r\n\r\n", &Method::GET).unwrap().unwrap();
        let (lines, has_date) = dated.headers.clone().into_lines();
        assert_eq!((&lines[..], has_date), (&b"date: d\r\nx-a: b\r\n"[..], true));
        let map = dated.headers.into_map();
        assert_eq!((map.len(), map.get("x-a").unwrap().as_bytes()), (2, &b"b"[..]));
        let named = parse("HTTP/1.1 200 OK\r\nConnection: date\r\nDate: d\r\nX-A: b\r\nContent-Length: 0\r\n\r\n", &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(named.headers.names(), ["x-a"]);
        let (lines, has_date) = named.headers.into_lines();
        assert_eq!((&lines[..], has_date), (&b"x-a: b\r\n"[..], false));
    }

    /// An answer's hop-by-hop fields, and those its `Connection` names, are read for
    /// framing and never kept; a chunked answer's `Content-Length` goes too.
    #[test]
    fn hop_by_hop_fields_are_read_not_kept() {
        let answer = parse(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret-Hop\r\nKeep-Alive: timeout=5\r\n\
             X-Secret-Hop: 1\r\nProxy-Connection: x\r\nTrailer: x-t\r\nUpgrade: h2c\r\nTE: trailers\r\n\
             Proxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        let mut names: Vec<_> = answer.headers.names();
        names.sort_unstable();
        assert_eq!(names, ["x-kept"]);
        assert_eq!((answer.framing, answer.keep_alive, answer.content_length), (Framing::Length(2), true, Some(2)));
        let chunked = parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nX-Kept: 1\r\n\r\n", &Method::GET)
            .unwrap()
            .unwrap();
        let names: Vec<_> = chunked.headers.names();
        assert_eq!(names, ["x-kept"], "no consumer may size a chunked body by its Content-Length");
        assert_eq!(chunked.content_length, None, "nor from the head's length");
        let two = parse(
            "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, close\r\nConnection: x-other\r\nX-Other: 1\r\nServer: nginx\r\n\
             Content-Length: 0\r\n\r\n",
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        let mut names: Vec<_> = two.headers.names();
        names.sort_unstable();
        assert_eq!(names, ["server"], "every Connection field counts");
        assert!(!two.keep_alive, "close wins over keep-alive");
    }

}
