//! Where the engine's HTTP types (`http` 0.2, actix-web's) meet hyper's (`http` 1.x):
//! the WebSocket tunnel and one-off fetches, off the request path. Names, values and
//! statuses cross by their bytes, checked again by the other crate.

use http::{HeaderMap, Method, StatusCode};

use super::out_body::OutBody;

/// A hyper request: `method` to `uri` (path and query) with `headers` and `body`.
///
/// # Errors
/// hyper's `http` refused the method, the URI or a field (they check alike, so only
/// for what the 0.2 types let through and 1.x does not).
pub(super) fn request(method: &Method, uri: String, headers: &HeaderMap, body: OutBody) -> Result<http1::Request<OutBody>, http1::Error> {
    let mut builder = http1::Request::builder()
        .method(http1::Method::from_bytes(method.as_str().as_bytes())?)
        .uri(uri);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    builder.body(body)
}

/// hyper's status as the engine's (a 1.x status is always a valid 0.2 one).
pub(super) fn status(status: http1::StatusCode) -> StatusCode {
    StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// hyper's fields as the engine's (a field 1.x took, 0.2 takes too).
pub(super) fn headers(fields: &http1::HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's method, URI and every field (repeated ones too) reach hyper as they
    /// were, and an answer's status and fields come back unchanged.
    #[test]
    fn heads_cross_unchanged() {
        let mut fields = HeaderMap::new();
        fields.append("x-a", "1".parse().unwrap());
        fields.append("x-a", "2".parse().unwrap());
        fields.insert(http::header::HOST, "up.example:8080".parse().unwrap());
        let request = request(&Method::PATCH, "/p?q=1".into(), &fields, OutBody::Empty).unwrap();
        assert_eq!(request.method(), http1::Method::PATCH);
        assert_eq!(request.uri(), "/p?q=1");
        let got: Vec<_> = request.headers().get_all("x-a").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(got, ["1", "2"]);
        assert_eq!(headers(request.headers()), fields);
        assert_eq!(status(http1::StatusCode::SWITCHING_PROTOCOLS), StatusCode::SWITCHING_PROTOCOLS);
    }
}
