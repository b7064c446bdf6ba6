//! Attack 18.5: a key meant for one upstream reached another. With two upstreams, a
//! hostile one records every `Authorization` header it receives (documents and
//! routes): another URL's key never reaches it — not at start-up, not on
//! re-discovery, not on routed requests, not in a pool of both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::common::{config, get, spawn_upstream, start};

/// What an upstream received: `(path, Authorization or "")`, in order.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// An upstream publishing `/api/v1/shared` and `extra` that records every request.
fn recording_upstream(extra: &'static str) -> (String, actix_web::dev::ServerHandle, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let (url, handle) = spawn_upstream(move |cfg: &mut web::ServiceConfig| {
        let log = log.clone();
        let mut paths = serde_json::Map::new();
        for path in ["/api/v1/shared", extra] {
            paths.insert(path.to_owned(), json!({"get": {"responses": {"200": {"description": "ok"}}}}));
        }
        let doc = json!({"openapi": "3.1.0", "info": {"title": "rec", "version": "1"}, "paths": paths});
        cfg.default_service(web::to(move |req: HttpRequest| {
            let auth = req.headers().get("authorization").map_or(String::new(), |v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            log.lock().unwrap().push((req.path().to_owned(), auth));
            let doc = doc.clone();
            async move {
                if req.path() == "/api/v1/openapi.json" {
                    HttpResponse::Ok().json(doc)
                } else {
                    HttpResponse::Ok().json(json!({"path": req.path()}))
                }
            }
        }));
    });
    (url, handle, seen)
}

/// The keys `seen` received on `path` (`""`: none).
fn keys_on(seen: &Seen, path: &str) -> Vec<String> {
    seen.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, k)| k.clone()).collect()
}

/// Waits (bounded) until `seen` holds at least `n` document requests.
async fn until_documents(seen: &Seen, n: usize) {
    for _ in 0..100 {
        if keys_on(seen, "/api/v1/openapi.json").len() >= n {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} document requests: {:?}", seen.lock().unwrap());
}

/// Per-URL keys go only to their URL, its document included; a URL's own rule beats
/// the global one; a global rule's key goes only to the URLs serving the route; in a
/// pool of both, each URL gets its own key.
#[actix_rt::test]
async fn keys_reach_only_their_upstream() {
    let (a, a_handle, a_seen) = recording_upstream("/api/v1/a-only");
    let (hostile, b_handle, b_seen) = recording_upstream("/api/v1/b-only");
    let toml = format!(
        "load_builtin_plugins = [\"proxy\"]\n\
         [plugins.proxy]\ndiscovery_interval = 0.2\n\
         [plugins.proxy.auth]\nrules = {{ \"/api/v1/a-only\" = [\"key-global\"], \"/api/v1/shared\" = [\"key-global-shared\"] }}\n\
         [plugins.proxy.proxy_urls.\"{a}\"]\nauth = {{ \"/api/v1/openapi.json\" = [\"key-a-docs\"], \"/api/v1/shared\" = [\"key-a\", \"key-a-old\"] }}\n\
         [plugins.proxy.proxy_urls.\"{hostile}\"]\n"
    );
    let server = start(config(&toml), vec![]).await;
    for _ in 0..4 {
        assert_eq!(get(&server.url("/api/v1/shared")).await.status, 200, "pool of both");
    }
    assert_eq!(get(&server.url("/api/v1/a-only")).await.status, 200);
    assert_eq!(get(&server.url("/api/v1/b-only")).await.status, 200);
    until_documents(&b_seen, 3).await;
    until_documents(&a_seen, 3).await;

    let b_keys: Vec<String> = b_seen.lock().unwrap().iter().map(|(_, k)| k.clone()).collect();
    for secret in ["key-a", "key-a-docs", "key-a-old", "key-global"] {
        assert!(!b_keys.contains(&secret.to_owned()), "the hostile upstream got {secret}: {b_keys:?}");
    }
    assert!(keys_on(&b_seen, "/api/v1/openapi.json").iter().all(String::is_empty), "no key with its document");
    assert_eq!(keys_on(&b_seen, "/api/v1/shared"), ["key-global-shared"; 2], "the global rule of a route it serves");
    assert_eq!(keys_on(&b_seen, "/api/v1/b-only"), [""]);

    assert!(keys_on(&a_seen, "/api/v1/openapi.json").iter().all(|k| k == "key-a-docs"), "{a_seen:?}");
    assert_eq!(keys_on(&a_seen, "/api/v1/shared"), ["key-a"; 2], "its own first key beats the global rule");
    assert_eq!(keys_on(&a_seen, "/api/v1/a-only"), ["key-global"]);
    server.stop(true).await;
    a_handle.stop(false).await;
    b_handle.stop(false).await;
}

/// The FrameX form (`[plugins.proxy.auth]` only): a rule covering the document path
/// gives its key to no document when two URLs are configured, and keeps working
/// with one.
#[actix_rt::test]
async fn a_global_document_key_needs_a_single_upstream() {
    let (a, a_handle, a_seen) = recording_upstream("/api/v1/a-only");
    let (hostile, b_handle, b_seen) = recording_upstream("/api/v1/b-only");
    let rules = "[plugins.proxy.auth]\nrules = { \"/api/v1/openapi.json\" = [\"key-docs\"], \"/api/v1/a-only\" = [\"key-a\"] }\n";
    let two = format!("load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{a}\", \"{hostile}\"]\ndiscovery_interval = 0\n{rules}");
    let server = start(config(&two), vec![]).await;
    assert_eq!(get(&server.url("/api/v1/a-only")).await.status, 200);
    assert_eq!(get(&server.url("/api/v1/b-only")).await.status, 200);
    assert_eq!(keys_on(&b_seen, "/api/v1/openapi.json"), [""], "the hostile document request got no key");
    assert_eq!(keys_on(&b_seen, "/api/v1/b-only"), [""]);
    assert_eq!(keys_on(&a_seen, "/api/v1/openapi.json"), [""], "nor the other: the key is for one URL");
    assert_eq!(keys_on(&a_seen, "/api/v1/a-only"), ["key-a"], "a route's key goes to the URL serving it");
    server.stop(true).await;
    b_handle.stop(false).await;

    let one = format!("load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{a}\"]\ndiscovery_interval = 0\n{rules}");
    let server = start(config(&one), vec![]).await;
    assert_eq!(get(&server.url("/api/v1/a-only")).await.status, 200);
    assert_eq!(keys_on(&a_seen, "/api/v1/openapi.json"), ["", "key-docs"], "one URL: the global key goes");
    assert_eq!(keys_on(&a_seen, "/api/v1/a-only"), ["key-a", "key-a"]);
    server.stop(true).await;
    a_handle.stop(false).await;
}
