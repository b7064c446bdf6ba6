//! Cache keys. A local route's key is FrameX-kit's: the compact, key-sorted JSON of
//! `{"kwargs": <bound arguments>, "method": …, "path": <route template>}`, and
//! `X-FrameX-Cache-Key` is its SHA-256 hex digest. framex-rs adds `"auth"`: the
//! SHA-256 of the `Authorization` header when the request has one (never the key
//! itself), so two keys never share an entry; without that header the key is
//! FrameX-kit's, byte for byte.
//!
//! A proxied route's key holds the method, the canonical path, the raw query, the
//! `Accept` and `Accept-Encoding` headers and the `Authorization` digest. Nothing
//! else of the request varies it: `Host`, `X-Forwarded-*`, cookies and the rest are
//! not in the key, so answers that depend on them must not be cached (and answers
//! that say so with `Vary`, `Set-Cookie` or `Cache-Control: private/no-store` are not
//! stored).

use actix_web::http::header::{self, HeaderMap};
use serde_json::{Map, Value};

use super::sha256_hex;

/// Headers of a proxied request that are part of its key.
pub const VARY_HEADERS: &[&str] = &["accept", "accept-encoding", "authorization"];

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

/// The store key of a proxied request (`body`: its bytes, for POST).
pub fn proxied(method: &str, path: &str, query: &str, headers: &HeaderMap, body: &[u8]) -> String {
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
        let mut forwarded = HeaderMap::new();
        forwarded.insert(HeaderName::from_static("x-forwarded-host"), HeaderValue::from_static("evil"));
        assert_eq!(proxied("GET", "/p", "a=1", &h, b""), proxied("GET", "/p", "a=1", &forwarded, b""));
        assert_ne!(proxied("GET", "/p", "a=1", &h, b""), proxied("GET", "/p", "a=2", &h, b""));
        assert_ne!(proxied("POST", "/p", "", &h, b"1"), proxied("POST", "/p", "", &h, b"2"));
    }
}
