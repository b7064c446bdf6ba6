//! HTTP/1.1 request heads on the pool's connections (RFC 9112 §3), framed by us alone.

use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;

use crate::trace::{TRACEPARENT, TRACESTATE};
use crate::upstream::{HOPS_HEADER, REQUEST_ID_HEADER};

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
    /// Fields the edge added to them (none of the same names), written as they are.
    pub(in crate::upstream) added: &'a [(HeaderName, HeaderValue)],
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
    out.reserve(head_len(request));
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
    for (name, value) in request.added {
        field(out, name.as_str(), value.as_bytes());
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

/// Room for the whole head of `request`, so that it is written without growing: each
/// field's `name: value\r\n`, and what our own fields and the framing may take.
fn head_len(request: &Outbound<'_>) -> usize {
    let line = |name: &HeaderName, value: &HeaderValue| name.as_str().len() + value.len() + 4;
    let theirs: usize = request.headers.iter().map(|(n, v)| line(n, v)).sum();
    let added: usize = request.added.iter().map(|(n, v)| line(n, v)).sum();
    // The request line's and our fields' fixed parts (about 210 bytes at most: names,
    // separators, the traceparent, a 10-digit hop count, a 20-digit length).
    const OURS: usize = 256;
    let ours = request.host.len()
        + request.authorization.map_or(0, HeaderValue::len)
        + request.request_id.map_or(0, str::len)
        + request.tracestate.map_or(0, str::len);
    OURS + request.method.as_str().len() + request.path.len() + theirs + added + ours
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

/// Whether `value` may be sent as a field value (or chunk extension): visible ASCII,
/// spaces and tabs — no line break, no other control character.
pub(super) fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            added: &[],
            host: &host,
            authorization: Some(&key),
            hops: 1,
            request_id: None,
            traceparent: [b'0'; 55],
            tracestate: Some("bad\r\nx-injected: 1"),
        };
        let mut out = BytesMut::new();
        write_request_head(&mut out, &request, &RequestFraming::Length(2));
        assert!(out.len() <= head_len(&request), "written without growing");
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

    /// The room reserved holds the largest head of our own fields: no growing (and no
    /// copy) while it is written.
    #[test]
    fn the_head_fits_the_room_reserved_for_it() {
        let headers = HeaderMap::new();
        let host = HeaderValue::from_static("h");
        let id = "i".repeat(128);
        let added = [(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("127.0.0.1"))];
        let request = Outbound {
            method: &Method::OPTIONS,
            path: "/",
            headers: &headers,
            added: &added,
            host: &host,
            authorization: Some(&host),
            hops: u32::MAX,
            request_id: Some(&id),
            traceparent: [b'0'; 55],
            tracestate: Some("k=v"),
        };
        for framing in [RequestFraming::Length(u64::MAX), RequestFraming::Chunked] {
            let mut out = BytesMut::new();
            write_request_head(&mut out, &request, &framing);
            assert!(out.len() <= head_len(&request), "{} > {}", out.len(), head_len(&request));
        }
    }
}
