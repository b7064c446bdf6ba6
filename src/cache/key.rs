//! Cache keys. A local route's key is FrameX-kit's: the compact, key-sorted JSON of
//! `{"kwargs": <bound arguments>, "method": …, "path": <route template>}`, and
//! `X-FrameX-Cache-Key` is its SHA-256 hex digest. framex-rs adds `"auth"`: the
//! SHA-256 of the `Authorization` header when the request has one (never the key
//! itself), so two keys never share an entry; without that header the key is
//! FrameX-kit's, byte for byte.
//!
//! A proxied route's key holds the method, the canonical path, the raw query, the
//! `Accept`, `Accept-Encoding` and `Content-Type` headers, the `Authorization` digest,
//! and the host and scheme the upstream is told the request came for (the
//! `X-Forwarded-Host` and `X-Forwarded-Proto` framex-rs sends: a client's own `Host`
//! when it is not a trusted proxy). An upstream that builds its links from those gets
//! one entry per host, so a client naming another host cannot plant its links in the
//! answers others get. Nothing else of the request varies the key: cookies, the client
//! address and the rest are not in it, so answers that depend on them must not be
//! cached (and answers that say so with `Vary`, `Set-Cookie` or
//! `Cache-Control: private/no-store` are not stored).

use actix_web::http::header::{self, HeaderMap};
use serde_json::{Map, Value};

use super::sha256_hex;

/// Headers of a proxied request that are part of its key.
pub const VARY_HEADERS: &[&str] = &["accept", "accept-encoding", "authorization", "content-type"];

/// The forwarding fields a proxied request's key holds (their values as sent upstream).
pub const FORWARDED_IN_KEY: &[&str] = &["x-forwarded-host", "x-forwarded-proto"];

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
/// forwarding fields it goes upstream with, of which those in [`FORWARDED_IN_KEY`]
/// count).
pub fn proxied<'a>(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    forwarded: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
) -> String {
    let mut key = Map::new();
    key.insert("method".to_owned(), Value::String(method.to_ascii_uppercase()));
    key.insert("path".to_owned(), Value::String(path.to_owned()));
    key.insert("query".to_owned(), Value::String(query.to_owned()));
    key.insert("body".to_owned(), Value::String(sha256_hex(body)));
    for name in VARY_HEADERS {
        let values: Vec<Value> = headers
            .get_all(*name)
            .map(|v| Value::String(sha256_hex(v.as_bytes())))
            .collect();
        key.insert((*name).to_owned(), Value::Array(values));
    }
    for name in FORWARDED_IN_KEY {
        let values: Vec<Value> = forwarded
            .clone()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| Value::String(sha256_hex(v)))
            .collect();
        key.insert((*name).to_owned(), Value::Array(values));
    }
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
        let base = key("GET", "", &h, b"");
        assert_ne!(base, proxied("GET", "/p", "", &h, b"", sent("evil.example", "https")), "another host");
        assert_ne!(base, proxied("GET", "/p", "", &h, b"", sent("a.example", "http")), "another scheme");
        let other_client = [("x-forwarded-for", &b"5.6.7.8"[..]), ("x-forwarded-host", b"a.example"), ("x-forwarded-proto", b"https")];
        assert_eq!(base, proxied("GET", "/p", "", &h, b"", other_client.into_iter()), "the client address is not");
    }
}
