//! HTTP/1.1 message heads on the pool's connections: the request head written
//! (RFC 9112 §3, framed by us alone), and the answer head parsed with `httparse` into
//! the `http` crate's types, with how its body is framed (§6.3).

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

use crate::trace::{TRACEPARENT, TRACESTATE};
use crate::upstream::{HOPS_HEADER, REQUEST_ID_HEADER};
use crate::wire_error::HeadError;

/// Most header fields an answer may carry (as actix-http's own parser; hyper's 100).
pub(super) const MAX_HEADERS: usize = 100;
/// Largest answer head read (status line and fields).
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// How a request body is framed on the wire.
pub(super) enum RequestFraming {
    /// None, and none expected by the method.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request as a pool connection writes it. What stays the same across attempts is
/// borrowed from the exchange; what the endpoint or the attempt sets is given apart,
/// and the caller's own fields of those names are not written.
pub(in crate::upstream) struct Outbound<'a> {
    /// The method.
    pub(in crate::upstream) method: &'a Method,
    /// The path and query, under the endpoint's prefix.
    pub(in crate::upstream) path: &'a str,
    /// The caller's fields.
    pub(in crate::upstream) headers: &'a HeaderMap,
    /// `Host`: the endpoint's authority.
    pub(in crate::upstream) host: &'a HeaderValue,
    /// `Authorization`: the route's key for this endpoint, replacing the caller's.
    pub(in crate::upstream) authorization: Option<&'a HeaderValue>,
    /// `X-FrameX-Hops`.
    pub(in crate::upstream) hops: u32,
    /// `X-Request-Id`, replacing the caller's: visible ASCII only (the exchange gives
    /// none otherwise, and the caller's stays).
    pub(in crate::upstream) request_id: Option<&'a str>,
    /// `traceparent`: the attempt's place in the trace.
    pub(in crate::upstream) traceparent: [u8; 55],
    /// `tracestate`, with a trace we continue (written only if a valid field value).
    pub(in crate::upstream) tracestate: Option<&'a str>,
}

impl Outbound<'_> {
    /// Whether the caller's field `name` gives way to one we set (or to our framing).
    fn replaces(&self, name: &HeaderName) -> bool {
        if name == header::HOST || name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            return true;
        }
        if name == header::AUTHORIZATION {
            return self.authorization.is_some();
        }
        match name.as_str() {
            TRACEPARENT | TRACESTATE | HOPS_HEADER => true,
            REQUEST_ID_HEADER => self.request_id.is_some(),
            _ => false,
        }
    }
}

/// Writes the head of `request` into `out`: the request line, our fields, the
/// caller's but those ours replace, then `framing`'s (ours alone frame the body).
pub(super) fn write_request_head(out: &mut BytesMut, request: &Outbound<'_>, framing: &RequestFraming) {
    out.reserve(256 + request.path.len() + request.headers.len() * 32);
    out.put_slice(request.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(request.path.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    field(out, "host", request.host.as_bytes());
    for (name, value) in request.headers {
        if !request.replaces(name) {
            field(out, name.as_str(), value.as_bytes());
        }
    }
    if let Some(key) = request.authorization {
        field(out, "authorization", key.as_bytes());
    }
    field(out, HOPS_HEADER, itoa::Buffer::new().format(request.hops).as_bytes());
    if let Some(id) = request.request_id {
        debug_assert!(id.bytes().all(|b| b.is_ascii_graphic()), "{id:?}");
        field(out, REQUEST_ID_HEADER, id.as_bytes());
    }
    field(out, TRACEPARENT, &request.traceparent);
    if let Some(state) = request.tracestate.filter(|s| is_field_value(s.as_bytes())) {
        field(out, TRACESTATE, state.as_bytes());
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => field(out, "content-length", itoa::Buffer::new().format(*n).as_bytes()),
        RequestFraming::Chunked => field(out, "transfer-encoding", b"chunked"),
    }
    out.put_slice(b"\r\n");
}

/// One `name: value` line.
fn field(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Whether a request with `method` and no body still says `Content-Length: 0` (the
/// methods whose requests carry content by definition; others send no framing).
pub(super) fn says_empty_length(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE | Method::CONNECT
    )
}

/// How an answer's body is framed (RFC 9112 §6.3).
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
    /// Its version (HTTP/1.0 or 1.1).
    pub(super) version: Version,
    /// Its fields, as sent (hop-by-hop ones included: the relay strips them).
    pub(super) headers: HeaderMap,
    /// How its body is framed.
    pub(super) framing: Framing,
    /// Whether the connection may carry another request once this body is read.
    pub(super) keep_alive: bool,
}

/// Parses an answer head at the start of `buf` (the request was `method`): `None`
/// while it is incomplete, else the head and how many bytes it took. The fields'
/// values share `buf`'s memory (no copy).
///
/// # Errors
/// The head is malformed, too large, or frames its body ambiguously.
pub(super) fn parse_answer_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, HeadError> {
    // Left uninitialised: httparse writes the fields it finds (zeroing 100 of them
    // cost more than parsing a head).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut []);
    let taken = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut answer, buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(HeadError::TooLarge { limit: MAX_HEAD }),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Syntax(e)),
    };
    let code = answer.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Status)?;
    let version = if answer.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    // Offsets into `buf`, taken before it is split (the field slices borrow it).
    let base = buf.as_ptr() as usize;
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let count = answer.headers.len();
    for (span, field) in spans.iter_mut().zip(answer.headers.iter()) {
        let name = field.name.as_ptr() as usize - base;
        let value = field.value.as_ptr() as usize - base;
        *span = (name as u32, field.name.len() as u32, value as u32, field.value.len() as u32);
    }
    let bytes = buf.split_to(taken).freeze();
    let headers = fields_of(&bytes, &spans[..count])?;
    let (framing, clean) = framing_of(&headers, version, status, method)?;
    // A `101` hands the connection over: never reused as HTTP.
    let keep_alive = clean
        && framing != Framing::UntilClose
        && status != StatusCode::SWITCHING_PROTOCOLS
        && keeps_alive(&headers, version);
    Ok(Some(Head {
        status,
        version,
        headers,
        framing,
        keep_alive,
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

/// Whether `value` may be sent as a field value (or chunk extension): visible ASCII,
/// spaces and tabs — no line break, no other control character.
pub(super) fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// The header map of a head held in `bytes`, its fields at `spans` (name offset and
/// length, value offset and length).
fn fields_of(bytes: &Bytes, spans: &[(u32, u32, u32, u32)]) -> Result<HeaderMap, HeadError> {
    let mut headers = HeaderMap::with_capacity(spans.len());
    for &(name, name_len, value, value_len) in spans {
        let name = &bytes[name as usize..(name + name_len) as usize];
        let name = HeaderName::from_bytes(name).map_err(|_| HeadError::Field)?;
        let value = bytes.slice(value as usize..(value + value_len) as usize);
        // SAFETY: httparse took this value only if each of its bytes is a tab or in
        // 0x20..=0x7e or 0x80..=0xff (its `HEADER_VALUE_MAP`, obsolete line folding
        // off), which is exactly what `HeaderValue` allows (as actix-http's own
        // request parser relies on); checking again cost 130 instructions a field.
        debug_assert!(value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)));
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(value) };
        headers.append(name, value);
    }
    Ok(headers)
}

/// How the answer's body is framed, and whether the framing was unambiguous (an
/// answer with both `Transfer-Encoding` and `Content-Length` is read by the former,
/// and its connection is not used again).
fn framing_of(headers: &HeaderMap, version: Version, status: StatusCode, method: &Method) -> Result<(Framing, bool), HeadError> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Length(0), true));
    }
    let lengths = headers.get_all(header::CONTENT_LENGTH);
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let chunked_last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        // Framed both ways, or chunked over HTTP/1.0 (which has no chunking, RFC 9112
        // §6.1): read as chunked, and the connection closed after.
        let clean = lengths.iter().next().is_none() && version == Version::HTTP_11;
        return Ok((if chunked_last { Framing::Chunked } else { Framing::UntilClose }, clean && chunked_last));
    }
    let mut length: Option<u64> = None;
    for value in lengths {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = parse_length(part.trim_ascii()).ok_or(HeadError::ContentLength)?;
            if length.is_some_and(|seen| seen != n) {
                return Err(HeadError::ContentLength);
            }
            length = Some(n);
        }
    }
    Ok((length.map_or(Framing::UntilClose, Framing::Length), true))
}

/// A `Content-Length` value: digits only, no sign, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Whether the connection stays open after this answer: HTTP/1.1 unless it says
/// `Connection: close`, HTTP/1.0 only if it says `keep-alive`.
fn keeps_alive(headers: &HeaderMap, version: Version) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (version == Version::HTTP_11 || keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    assert_eq!(answer.headers["x-a"].as_bytes(), value(byte));
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
        assert_eq!(head.headers["x-a"], "b");
        assert_eq!(&buf[..], b"hi", "the body stays in the buffer");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let chunked = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &Method::GET).unwrap().unwrap();
        assert_eq!((chunked.framing, chunked.keep_alive), (Framing::Chunked, true));
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

    #[test]
    fn the_request_head_is_framed_and_stamped_by_us_alone() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "client"),
            ("content-length", "999"),
            ("transfer-encoding", "chunked"),
            ("traceparent", "00-forged"),
            ("tracestate", "forged"),
            ("x-framex-hops", "0"),
            ("x-request-id", "client-id"),
            ("authorization", "client-key"),
            ("accept", "*/*"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let host = HeaderValue::from_static("u");
        let key = HeaderValue::from_static("route-key");
        let mut request = Outbound {
            method: &Method::POST,
            path: "/a?b=c",
            headers: &headers,
            host: &host,
            authorization: Some(&key),
            hops: 1,
            request_id: None,
            traceparent: [b'0'; 55],
            tracestate: Some("bad\r\nx-injected: 1"),
        };
        let mut out = BytesMut::new();
        write_request_head(&mut out, &request, &RequestFraming::Length(2));
        let text = String::from_utf8(out.to_vec()).unwrap();
        let zeros = "0".repeat(55);
        assert_eq!(
            text,
            format!(
                "POST /a?b=c HTTP/1.1\r\nhost: u\r\nx-request-id: client-id\r\naccept: */*\r\n\
                 authorization: route-key\r\nx-framex-hops: 1\r\ntraceparent: {zeros}\r\ncontent-length: 2\r\n\r\n"
            ),
            "the client's id stays when none is set; an invalid tracestate is not written"
        );
        request.authorization = None;
        let mut out = BytesMut::new();
        write_request_head(&mut out, &request, &RequestFraming::None);
        assert!(String::from_utf8(out.to_vec()).unwrap().contains("authorization: client-key\r\n"));
        assert!(says_empty_length(&Method::POST) && !says_empty_length(&Method::GET));
    }
}
