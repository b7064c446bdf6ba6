//! Cache keys. A local route's key is FrameX-kit's: the compact, key-sorted JSON of
//! `{"kwargs": <bound arguments>, "method": …, "path": <route template>}`, and
//! `X-FrameX-Cache-Key` is its SHA-256 hex digest. framex-rs adds `"auth"`: the
//! SHA-256 of the `Authorization` header when the request has one (never the key
//! itself), so two keys never share an entry; without that header the key is
//! FrameX-kit's, byte for byte.
//!
//! A proxied route's key holds the method, the canonical path, the raw query, the
//! `Accept`, `Accept-Encoding` and `Authorization` headers, `Content-Type` when there
//! is a body, and every forwarding field the upstream is told but the client's
//! address (`X-Forwarded-For`, `X-Real-IP`): the host (lower case) and scheme
//! framex-rs sends, and from a trusted proxy its `Forwarded` and other `X-Forwarded-*`
//! claims (`-Prefix`, `-Port`…). An upstream that builds its links from those gets one
//! entry per host (and prefix…), so a client naming another cannot plant its links in
//! the answers others get. Nothing else of the request varies the key: cookies, the
//! client address and the rest are not in it, so answers that depend on them must not
//! be cached (and answers that say so with `Vary`, `Set-Cookie` or
//! `Cache-Control: private/no-store` are not stored).

use actix_web::http::header::{self, HeaderMap};
use serde_json::{Map, Value};

use super::sha256_hex;

/// Headers of a proxied request that are part of its key.
pub const VARY_HEADERS: &[&str] = &["accept", "accept-encoding", "authorization", "content-type"];

/// Whether a forwarding field sent upstream is in a proxied request's key: all but
/// the client's address (one entry per client would be no cache).
pub fn forwarding_in_key(name: &str) -> bool {
    name != "x-forwarded-for" && name != "x-real-ip"
}

/// The key of a local route call and its digest (the store key).
pub fn local(method: &str, template: &str, args: &Map<String, Value>, headers: &HeaderMap) -> (String, String) {
    let mut key = Map::new();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        key.insert("auth".to_owned(), Value::String(sha256_hex(auth.as_bytes())));
    }
    key.insert("kwargs".to_owned(), sorted(&Value::Object(args.clone())));
    key.insert("method".to_owned(), Value::String(method.to_ascii_uppercase()));
    key.insert("path".to_owned(), Value::String(template.to_owned()));
    let text = serde_json::to_string(&Value::Object(key)).unwrap_or_default();
    let digest = sha256_hex(text.as_bytes());
    (text, digest)
}

/// The store key of a proxied request (`body`: its bytes, for POST; `forwarded`: the
/// forwarding fields it goes upstream with, of which those [`forwarding_in_key`]
/// count, in the order given; a host's letters in either case count as one).
pub fn proxied<'a>(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    forwarded: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> String {
    let mut key = Map::new();
    key.insert("method".to_owned(), Value::String(method.to_ascii_uppercase()));
    key.insert("path".to_owned(), Value::String(path.to_owned()));
    key.insert("query".to_owned(), Value::String(query.to_owned()));
    key.insert("body".to_owned(), Value::String(sha256_hex(body)));
    for name in VARY_HEADERS {
        if *name == "content-type" && body.is_empty() {
            continue;
        }
        let values: Vec<Value> = headers
            .get_all(*name)
            .map(|v| Value::String(sha256_hex(v.as_bytes())))
            .collect();
        key.insert((*name).to_owned(), Value::Array(values));
    }
    let sent: Vec<Value> = forwarded
        .filter(|(name, _)| forwarding_in_key(name))
        .map(|(name, value)| {
            let value = if name == "x-forwarded-host" { value.to_ascii_lowercase() } else { value.to_vec() };
            Value::String(format!("{name}:{}", sha256_hex(&value)))
        })
        .collect();
    key.insert("forwarded".to_owned(), Value::Array(sent));
    sha256_hex(serde_json::to_string(&Value::Object(key)).unwrap_or_default().as_bytes())
}

/// `value` with every object's keys sorted (Python's `sort_keys=True`).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn framex_kit_text_and_auth_isolation() {
        let mut args = Map::new();
        args.insert("b".into(), Value::from(2));
        args.insert("a".into(), serde_json::json!({"z": 1, "y": "é"}));
        let mut headers = HeaderMap::new();
        let (text, digest) = local("get", "/api/v1/x", &args, &headers);
        assert_eq!(text, r#"{"kwargs":{"a":{"y":"é","z":1},"b":2},"method":"GET","path":"/api/v1/x"}"#);
        assert_eq!(digest.len(), 64);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("secret-one"));
        let (one, d1) = local("GET", "/api/v1/x", &args, &headers);
        assert!(!one.contains("secret-one"), "the key never holds the credential");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("secret-two"));
        let (_, d2) = local("GET", "/api/v1/x", &args, &headers);
        assert!(d1 != d2 && d1 != digest);
        let h = HeaderMap::new();
        let sent = |host: &'static str, proto: &'static str| {
            [("x-forwarded-for", &b"1.2.3.4"[..]), ("x-forwarded-host", host.as_bytes()), ("x-forwarded-proto", proto.as_bytes())].into_iter()
        };
        let key = |method, query, headers: &HeaderMap, body: &[u8]| proxied(method, "/p", query, headers, body, sent("a.example", "https"));
        let mut claimed = HeaderMap::new();
        claimed.insert(HeaderName::from_static("x-forwarded-host"), HeaderValue::from_static("evil"));
        assert_eq!(key("GET", "a=1", &h, b""), key("GET", "a=1", &claimed, b""), "only the fields sent upstream count");
        assert_ne!(key("GET", "a=1", &h, b""), key("GET", "a=2", &h, b""));
        assert_ne!(key("POST", "", &h, b"1"), key("POST", "", &h, b"2"));
        let mut typed = HeaderMap::new();
        typed.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_ne!(key("POST", "", &h, b"{}"), key("POST", "", &typed, b"{}"), "the body's type is in the key");
        assert_eq!(key("GET", "", &h, b""), key("GET", "", &typed, b""), "without a body, no type counts");
        assert_eq!(
            proxied("GET", "/p", "", &h, b"", sent("A.Example", "https")),
            proxied("GET", "/p", "", &h, b"", sent("a.example", "https")),
            "a host in either case"
        );
        let prefixed = [("x-forwarded-host", &b"a.example"[..]), ("x-forwarded-proto", b"https"), ("x-forwarded-prefix", b"//evil")];
        assert_ne!(key("GET", "", &h, b""), proxied("GET", "/p", "", &h, b"", prefixed.into_iter()), "a trusted proxy's other claims");
        let base = key("GET", "", &h, b"");
        assert_ne!(base, proxied("GET", "/p", "", &h, b"", sent("evil.example", "https")), "another host");
        assert_ne!(base, proxied("GET", "/p", "", &h, b"", sent("a.example", "http")), "another scheme");
        let other_client = [("x-forwarded-for", &b"5.6.7.8"[..]), ("x-forwarded-host", b"a.example"), ("x-forwarded-proto", b"https")];
        assert_eq!(base, proxied("GET", "/p", "", &h, b"", other_client.into_iter()), "the client address is not");
    }
}
