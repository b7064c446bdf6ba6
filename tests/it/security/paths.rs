//! One canonical path, rules as FrameX writes them, filters at request time,
//! upstream templates taken literally, built-ins under the rules (issue 15, attacks
//! 1–4 and "built-ins under the rules").

use std::sync::{Arc, Mutex};

use actix_web::{web, HttpRequest, HttpResponse};
use framex::config::{AuthRules, PathFilter};
use framex::canonical_path::canonicalize;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::common::python::legacy_app;
use crate::common::{config, get, get_with, raw_http, spawn_upstream, start};

/// What the stand-in upstream received: request targets, as sent.
type Seen = Arc<Mutex<Vec<String>>>;

fn get_op(params: &[&str]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    json!({"get": {"parameters": parameters, "responses": {"200": {"description": "ok"}}}})
}

/// An upstream publishing a hand-written OpenAPI document (with a router catch-all
/// template in it) and answering every other request with the target it received.
fn document_upstream() -> (String, actix_web::dev::ServerHandle, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let (url, handle) = spawn_upstream(move |cfg| {
        let record = record.clone();
        cfg.route(
            "/openapi.json",
            web::get().to(|| async {
                HttpResponse::Ok().json(json!({
                    "openapi": "3.1.0",
                    "info": {"title": "files", "version": "1"},
                    "paths": {
                        "/api/v1/files/{name}": get_op(&["name"]),
                        "/api/v1/files/internal": get_op(&[]),
                        "/raw/{*rest}": get_op(&["rest"]),
                        "/raw/{{x}}": get_op(&[]),
                    }
                }))
            }),
        )
        .default_service(web::to(move |req: HttpRequest| {
            let target = req.uri().to_string();
            record.lock().unwrap().push(target.clone());
            async move { HttpResponse::Ok().json(json!({"target": target})) }
        }));
    });
    (url, handle, seen)
}

fn proxy_config(upstream: &str, rules: &str) -> String {
    format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[auth]
rules = {{ {rules} }}
[plugins.proxy]
discovery_interval = 0
[plugins.proxy.proxy_urls."{upstream}"]
docs_path = "/openapi.json"
disable = ["/api/v1/files/internal"]
"#
    )
}

fn raw_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

fn status_of(raw: &str) -> u16 {
    raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Attack 1: `disable = ["/api/v1/files/internal"]` while the upstream also
/// publishes `/api/v1/files/{name}`. The concrete disabled path, and every encoded or
/// slash-doubled spelling of it, is 404 and never reaches the upstream; its siblings
/// under the template are still served.
#[actix_rt::test]
async fn disabled_concrete_path_under_a_template_is_404() {
    let (upstream, handle, seen) = document_upstream();
    let server = start(config(&proxy_config(&upstream, "")), vec![]).await;
    for path in [
        "/api/v1/files/internal",
        "/api/v1/files/intern%61l",
        "/api/v1/files/%69%6E%74%65%72%6e%61%6c",
        "/api/v1//files/internal",
        "/api/v1/%66iles/internal",
    ] {
        let r = get(&server.url(path)).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json()["message"], "Not Found", "{path}");
    }
    assert!(seen.lock().unwrap().is_empty(), "the upstream got {:?}", seen.lock().unwrap());
    let r = get(&server.url("/api/v1/files/public")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/api/v1/files/public");
    server.stop(true).await;
    handle.stop(true).await;
}

/// What goes upstream is the canonical path (escapes of characters allowed literally
/// decoded, slashes merged, other escapes upper-cased) with the query string as the client sent it.
#[actix_rt::test]
async fn the_upstream_receives_the_canonical_path() {
    let (upstream, handle, seen) = document_upstream();
    let server = start(config(&proxy_config(&upstream, "")), vec![]).await;
    let r = get(&server.url("/api//v1/files/p%75b%6cic?q=a%2Fb&x=%2e")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/api/v1/files/public?q=a%2Fb&x=%2e");
    let r = get(&server.url("/api/v1/files/a%3fb%20c")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/api/v1/files/a%3Fb%20c");
    assert_eq!(seen.lock().unwrap().len(), 2);
    server.stop(true).await;
    handle.stop(true).await;
}

/// A character that may stand literally in a path (`:`, `@`, sub-delims) means the
/// same to the upstream escaped or not (FastAPI decodes `%3A` to `:`): a rule or a
/// filter naming `/api/v1/files/a:b` holds for `/api/v1/files/a%3Ab` too, and the
/// upstream gets the decoded form.
#[actix_rt::test]
async fn escaped_sub_delims_do_not_dodge_rules_or_filters() {
    let (upstream, handle, seen) = document_upstream();
    let toml = format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[auth]
rules = {{ "/api/v1/files/a:b" = ["k"], "/api/v1/files/x%2Cy" = ["k"] }}
[plugins.proxy]
discovery_interval = 0
[plugins.proxy.proxy_urls."{upstream}"]
docs_path = "/openapi.json"
disable = ["/api/v1/files/intern@l", "/api/v1/files/a+b"]
"#
    );
    let server = start(config(&toml), vec![]).await;
    for path in ["/api/v1/files/a:b", "/api/v1/files/a%3Ab", "/api/v1/files/a%3ab", "/api/v1/files/x,y", "/api/v1/files/x%2cy"] {
        let r = get(&server.url(path)).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text());
    }
    for path in ["/api/v1/files/intern@l", "/api/v1/files/intern%40l", "/api/v1/files/a+b", "/api/v1/files/a%2Bb"] {
        let r = get(&server.url(path)).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    assert!(seen.lock().unwrap().is_empty(), "the upstream got {:?}", seen.lock().unwrap());
    let r = get_with(&server.url("/api/v1/files/a%3Ab"), &[("Authorization", "k")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/api/v1/files/a:b");
    server.stop(true).await;
    handle.stop(true).await;
}

/// Paths that an upstream could read differently from us are refused with 400
/// before any rule, route or upstream sees them.
#[actix_rt::test]
async fn ambiguous_paths_are_400() {
    let (upstream, handle, seen) = document_upstream();
    let server = start(config(&proxy_config(&upstream, r#""/raw/admin/*" = ["ka"]"#)), vec![]).await;
    for path in [
        "/api/v1/files/a%2Fb",
        "/api/v1/files/a%2fb",
        "/api/v1/files/a%5Cb",
        "/api/v1/files/a\\b",
        "/api/v1/files/a%00",
        "/api/v1/files/a%0d%0aX:%20y",
        "/api/v1/files/%zz",
        "/api/v1/files/%",
        "/api/v1/files/%ff",
        "/api/v1/files/./public",
        "/api/v1/files/x/../internal",
        "/api/v1/files/x/%2e%2E/internal",
        "/raw/x/../admin/panel",
    ] {
        let answer = raw_http(server.local_addr(), &raw_get(path)).await;
        assert_eq!(status_of(&answer), 400, "{path}: {answer}");
        assert!(answer.contains("\"status\":400"), "{path}: the envelope: {answer}");
    }
    assert!(seen.lock().unwrap().is_empty(), "the upstream got {:?}", seen.lock().unwrap());
    server.stop(true).await;
    handle.stop(true).await;
}

/// Attack 4: an upstream document publishing `/raw/{*rest}` (and `/raw/{{x}}`)
/// installs no catch-all: the operations are skipped, absent from our merged
/// document, and `/raw/...` is unknown; `/raw/adm%69n/panel` falls under a
/// `/raw/admin/*` rule (401 without its key).
#[actix_rt::test]
async fn upstream_router_syntax_installs_no_catch_all() {
    let (upstream, handle, seen) = document_upstream();
    let server = start(config(&proxy_config(&upstream, r#""/raw/admin/*" = ["ka"]"#)), vec![]).await;
    let doc = get(&server.url("/api/v1/openapi.json")).await.json();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert!(paths.iter().all(|p| !p.starts_with("/raw")), "{paths:?}");
    assert!(paths.iter().any(|p| *p == "/api/v1/files/{name}"), "{paths:?}");

    assert_eq!(get(&server.url("/raw/anything/at/all")).await.status, 404);
    let r = get(&server.url("/raw/adm%69n/panel")).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = get_with(&server.url("/raw/adm%69n/panel"), &[("Authorization", "ka")]).await;
    assert_eq!(r.status, 404, "no route serves it: {}", r.text());
    assert!(seen.lock().unwrap().is_empty(), "the upstream got {:?}", seen.lock().unwrap());
    server.stop(true).await;
    handle.stop(true).await;
}

/// Attacks 2 and 3 against the FastAPI app: a route-template rule protects every
/// concrete path of `/api/v1/items/{item_id}`; an exact rule on `/api/v1/items/7`
/// beats it (most specific wins) and cannot be dodged by writing `7` as `%37`.
#[actix_rt::test]
async fn template_and_exact_rules_hold_whatever_the_spelling() {
    let legacy = legacy_app().await;
    let toml = format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[auth]
rules = {{ "/api/v1/items/{{item_id}}" = ["k"], "/api/v1/items/7" = ["k7"] }}
[plugins.proxy]
discovery_interval = 0
proxy_urls = ["{}"]
"#,
        legacy.url
    );
    let server = start(config(&toml), vec![]).await;
    for path in ["/api/v1/items/8", "/api/v1/items/%38", "/api/v1//items/8"] {
        assert_eq!(get(&server.url(path)).await.status, 401, "{path}");
        let r = get_with(&server.url(path), &[("Authorization", "k")]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["item_id"], 8, "{path}: {}", r.text());
    }
    for path in ["/api/v1/items/7", "/api/v1/items/%37", "/api/v1/%69tems/%37?q=x"] {
        assert_eq!(get(&server.url(path)).await.status, 401, "{path}");
        let r = get_with(&server.url(path), &[("Authorization", "k")]).await;
        assert_eq!(r.status, 401, "{path}: the exact rule wins over the template");
        let r = get_with(&server.url(path), &[("Authorization", "k7")]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // Other paths stay open.
    assert_eq!(get(&server.url("/api/v1/base/version")).await.status, 200);
    server.stop(true).await;
}

/// Built-ins under `*`: the documents, metrics, the proxy's and the migration status need the key;
/// `/health`, `/ping` and `/version` stay open for probes.
#[actix_rt::test]
async fn builtins_fall_under_a_star_rule() {
    let (upstream, handle, _seen) = document_upstream();
    let toml = proxy_config(&upstream, r#""*" = ["k"]"#);
    let server = start(config(&toml), vec![]).await;
    for path in ["/health", "/ping", "/version"] {
        assert_eq!(get(&server.url(path)).await.status, 200, "{path}");
    }
    for path in ["/api/v1/openapi.json", "/docs", "/metrics", "/api/v1/proxy/upstreams", "/api/v1/proxy/migration", "/api/v1/%6fpenapi.json"] {
        assert_eq!(get(&server.url(path)).await.status, 401, "{path}");
        let r = get_with(&server.url(path), &[("Authorization", "k")]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    server.stop(true).await;
    handle.stop(true).await;
}

/// Built-ins under exact rules: a rule naming `/api/v1/openapi.json` or `/docs`
/// protects just that document; the others stay as they were.
#[actix_rt::test]
async fn builtins_fall_under_exact_rules() {
    let toml = r#"
load_builtin_plugins = ["echo"]
[auth]
rules = { "/api/v1/openapi.json" = ["d"], "/docs" = ["d"] }
"#;
    let server = start(config(toml), vec![]).await;
    for path in ["/api/v1/openapi.json", "/docs"] {
        assert_eq!(get(&server.url(path)).await.status, 401, "{path}");
        assert_eq!(get_with(&server.url(path), &[("Authorization", "d")]).await.status, 200, "{path}");
    }
    for path in ["/metrics", "/health", "/ping", "/version"] {
        assert_eq!(get(&server.url(path)).await.status, 200, "{path}");
    }
    server.stop(true).await;
}

/// Every spelling of a protected or disabled path sent to a real server (each byte
/// percent-encoded in lower and upper case, doubled slashes, dot segments, encoded
/// slashes) is refused (400), unauthorised (401) or unknown (404) — never served
/// without the key, and the disabled path never reaches the upstream.
#[actix_rt::test]
async fn no_spelling_of_a_protected_path_is_served_without_its_key() {
    let (upstream, handle, seen) = document_upstream();
    let rules = r#""/api/v1/files/{name}" = ["k"]"#;
    let server = start(config(&proxy_config(&upstream, rules)), vec![]).await;
    let mut tried = 0;
    for target in ["/api/v1/files/internal", "/api/v1/files/secret"] {
        for variant in spellings(target) {
            let answer = raw_http(server.local_addr(), &raw_get(&variant)).await;
            let status = status_of(&answer);
            assert!(matches!(status, 400 | 401 | 404), "{variant}: {answer}");
            tried += 1;
        }
        let with_key = format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: k\r\nConnection: close\r\n\r\n");
        let status = status_of(&raw_http(server.local_addr(), &with_key).await);
        assert_eq!(status, if target.ends_with("internal") { 404 } else { 200 }, "{target}");
    }
    assert!(tried > 100, "{tried} spellings tried");
    let received = seen.lock().unwrap().clone();
    assert_eq!(received, vec!["/api/v1/files/secret".to_owned()], "only the keyed request went upstream");
    server.stop(true).await;
    handle.stop(true).await;
}

/// Spellings of `path`: each byte percent-encoded (lower and upper hex), each slash
/// doubled, replaced by `%2F`, or followed by `./` or `x/../`.
fn spellings(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, b) in path.bytes().enumerate() {
        let (head, tail) = (&path[..i], &path[i + 1..]);
        out.push(format!("{head}%{b:02x}{tail}"));
        out.push(format!("{head}%{b:02X}{tail}"));
        if b == b'/' {
            out.push(format!("{head}//{tail}"));
            out.push(format!("{head}/./{tail}"));
            out.push(format!("{head}/x/../{tail}"));
            out.push(format!("{head}/%2e/{tail}"));
        }
    }
    out
}

/// One byte of a generated spelling of a path.
fn spell_byte(b: u8) -> BoxedStrategy<String> {
    let literal = (b as char).to_string();
    let mut choices = vec![
        Just(literal.clone()).boxed(),
        Just(format!("%{b:02x}")).boxed(),
        Just(format!("%{b:02X}")).boxed(),
    ];
    if b == b'/' {
        for s in ["//", "/./", "/../", "/%2e/", "/.%2E/", "///", "/x/../"] {
            choices.push(Just(s.to_owned()).boxed());
        }
    }
    proptest::strategy::Union::new(choices).boxed()
}

/// A random spelling of `path`.
fn spelling(path: &'static str) -> impl Strategy<Value = String> {
    path.bytes().map(spell_byte).collect::<Vec<_>>().prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// No generated spelling of a protected or disabled path gets past the canonical
    /// path and the rules: it is refused (400), or it canonicalises to a path the
    /// rules protect with the right key and the filter disables.
    #[test]
    fn generated_spellings_never_slip_past_the_rules(
        protected in spelling("/api/v1/items/7"),
        templated in spelling("/api/v1/items/8"),
        disabled in spelling("/api/v1/files/internal"),
        delimited in spelling("/api/v1/files/a:b@c+d"),
    ) {
        let rules = AuthRules::new([
            ("/api/v1/files/a:b@c+d", vec!["kd".to_owned()]),
            ("/api/v1/items/7", vec!["k7".to_owned()]),
            ("/api/v1/items/{item_id}", vec!["k".to_owned()]),
        ]).unwrap();
        let filter = PathFilter::new(&["*".to_owned()], &["/api/v1/files/internal".to_owned()]).unwrap();
        if let Ok(path) = canonicalize(&protected) {
            prop_assert_eq!(rules.keys_for(&path), Some(&["k7".to_owned()][..]), "{} -> {}", protected, path);
        }
        if let Ok(path) = canonicalize(&templated) {
            prop_assert_eq!(rules.keys_for(&path), Some(&["k".to_owned()][..]), "{} -> {}", templated, path);
        }
        if let Ok(path) = canonicalize(&delimited) {
            prop_assert_eq!(rules.keys_for(&path), Some(&["kd".to_owned()][..]), "{} -> {}", delimited, path);
        }
        if let Ok(path) = canonicalize(&disabled) {
            prop_assert!(!filter.allows_path(&path), "{} -> {}", disabled, path);
        }
    }
}
