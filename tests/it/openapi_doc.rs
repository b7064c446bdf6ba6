//! The merged OpenAPI document checked with third-party tools (openapi-spec-validator
//! from the test venv), upstream operations round-tripping through it, local routes
//! documented as they answer, the docs pages, and `HEAD`/`OPTIONS` answered the same
//! way.

use std::collections::BTreeSet;
use std::process::Command;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use crate::common::python::{legacy_app, python};
use crate::common::{config, get, request, spawn_upstream, start};

/// The 3.0.3 document served by the in-process "older" upstream.
fn older_doc() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openapi/openapi-3.0.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn configure_older(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(|| async { HttpResponse::Ok().json(older_doc()) }));
}

/// Local echo plugin, the FastAPI app (3.1) and the older upstream (3.0.3), `[auth]`
/// rules on a local route and on a proxied one.
fn three_sources(legacy: &str, older: &str) -> String {
    format!(
        r#"
load_builtin_plugins = ["echo", "proxy"]
[server]
enable_proxy = true
[plugins.proxy]
timeout = 30
discovery_interval = 0
[plugins.proxy.proxy_urls."{legacy}"]
disable = ["/api/v1/hidden"]
[plugins.proxy.proxy_urls."{older}"]
docs_path = "/openapi.json"
[auth]
rules = {{ "/api/v1/echo" = ["k-1"], "/api/v1/keyed" = ["k-2"] }}
"#
    )
}

/// `openapi-spec-validator`'s verdict on `doc`: `Err(its message)` when invalid.
fn spec_validator(doc: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  validate(json.load(open(sys.argv[1])))\n";
    let out = Command::new(python()).args(["-c", script, file.to_str().unwrap()]).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `value` with every local `$ref` replaced by what it points to (cycles cut at a
/// fixed depth, the same on both sides of a comparison).
fn resolved(doc: &Value, value: &Value, depth: usize) -> Value {
    if depth > 12 {
        return Value::Null;
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let target = doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {r}"));
                return resolved(doc, target, depth + 1);
            }
            map.iter().map(|(k, v)| (k.clone(), resolved(doc, v, depth + 1))).collect::<serde_json::Map<_, _>>().into()
        }
        Value::Array(items) => items.iter().map(|v| resolved(doc, v, depth + 1)).collect(),
        other => other.clone(),
    }
}

/// An operation's security requirements with each scheme name replaced by the scheme
/// itself (names differ by prefix between the upstream's document and ours).
fn security(doc: &Value, op: &Value) -> Value {
    let requirements = op.get("security").or_else(|| doc.get("security")).cloned().unwrap_or(json!([]));
    requirements
        .as_array()
        .unwrap()
        .iter()
        .map(|req| {
            req.as_object()
                .unwrap()
                .iter()
                .map(|(name, scopes)| {
                    let scheme = &doc["components"]["securitySchemes"][name];
                    assert!(scheme.is_object(), "security names '{name}', which the document does not define");
                    json!([scheme, scopes])
                })
                .collect::<Value>()
        })
        .collect()
}

/// The merged document of a FastAPI (3.1) upstream, a 3.0.3 upstream and local
/// plugins is valid OpenAPI 3.1 to openapi-spec-validator; every upstream operation
/// comes through with its parameters, body, responses and security intact once `$ref`s
/// are resolved (3.0 schemas in their 3.1 form), tags keep their descriptions, and
/// local routes declare FrameX's envelope, error envelopes, the event stream and the
/// `[auth]` key scheme.
#[actix_rt::test]
async fn merged_document_validates_and_keeps_every_upstream_operation() {
    let legacy = legacy_app().await;
    let (older, older_handle) = spawn_upstream(configure_older);
    let server = start(config(&three_sources(&legacy.url, &older)), vec![]).await;
    let merged = get(&server.url("/api/v1/openapi.json")).await.json();
    if let Err(e) = spec_validator(&merged) {
        panic!("the merged document is invalid:\n{e}");
    }

    // The 3.1 FastAPI app: every operation round-trips exactly.
    let direct = get(&format!("{}/api/v1/openapi.json", legacy.url)).await.json();
    let mut compared = 0;
    for (path, item) in direct["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let ours = &merged["paths"][path][method];
            if path == "/api/v1/hidden" {
                assert!(ours.is_null(), "disabled routes are not published");
                continue;
            }
            assert!(ours.is_object(), "{method} {path} missing");
            let covered = path == "/api/v1/keyed"; // by our [auth] rule: see below
            for part in ["parameters", "requestBody", "responses", "tags", "operationId"] {
                let mut ours = resolved(&merged, &ours[part], 0);
                if covered && part == "responses" {
                    ours.as_object_mut().unwrap().remove("401");
                }
                assert_eq!(
                    ours,
                    resolved(&direct, &op[part], 0),
                    "{method} {path}: {part}"
                );
            }
            if !covered {
                assert_eq!(security(&merged, ours), security(&direct, op), "{method} {path}: security");
            }
            compared += 1;
        }
    }
    assert!(compared >= 15, "only {compared} operations compared");
    // Covered by an `[auth]` rule: our key and the upstream's own, both required.
    let keyed = &merged["paths"]["/api/v1/keyed"]["get"];
    let both = security(&merged, keyed);
    let requirement = both[0].as_array().unwrap();
    assert_eq!((both.as_array().unwrap().len(), requirement.len()), (1, 2), "{both}");
    assert!(requirement.contains(&json!([{"type": "apiKey", "in": "header", "name": "X-API-Key"}, []])), "{both}");
    assert!(requirement.iter().any(|s| s[0]["name"] == "Authorization"), "{both}");
    let refused = resolved(&merged, &keyed["responses"]["401"], 0);
    assert_eq!(refused["content"]["application/json"]["schema"]["required"], json!(["status", "message", "timestamp"]));
    let tags = merged["tags"].as_array().expect("tags published");
    assert!(tags.contains(&json!({"name": "keyed", "description": "Routes that want the X-API-Key header."})));

    // The 3.0.3 upstream: same operations, parameters, bodies, responses, security.
    let older_direct = older_doc();
    for (path, item) in older_direct["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap().iter().filter(|(m, _)| *m != "parameters") {
            let ours = &merged["paths"][path][method];
            assert!(ours.is_object(), "{method} {path} missing");
            let names = |doc: &Value, op: &Value, with_item: bool| {
                let mut params: Vec<&Value> = op["parameters"].as_array().into_iter().flatten().collect();
                if with_item {
                    params.extend(doc["paths"][path]["parameters"].as_array().into_iter().flatten());
                }
                params
                    .into_iter()
                    .map(|p| {
                        let p = resolved(doc, p, 0);
                        (p["name"].to_string(), p["in"].to_string(), p["required"].to_string())
                    })
                    .collect::<BTreeSet<_>>()
            };
            assert_eq!(names(&merged, ours, false), names(&older_direct, op, true), "{method} {path}: parameters");
            let shape = |doc: &Value, op: &Value| {
                let responses = resolved(doc, &op["responses"], 0);
                let body = resolved(doc, &op["requestBody"], 0);
                let codes: Vec<(String, Value, Vec<String>)> = responses
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(code, r)| {
                        let headers = r["headers"].as_object().map(|h| h.keys().cloned().collect()).unwrap_or_default();
                        (code.clone(), r["description"].clone(), headers)
                    })
                    .collect();
                let media: Vec<String> = body["content"].as_object().map(|c| c.keys().cloned().collect()).unwrap_or_default();
                (codes, media, body["required"].clone())
            };
            assert_eq!(shape(&merged, ours), shape(&older_direct, op), "{method} {path}: body and responses");
            assert_eq!(security(&merged, ours), security(&older_direct, op), "{method} {path}: security");
        }
    }
    let thing = resolved(&merged, &merged["paths"]["/v2/things/{id}"]["get"]["responses"]["200"], 0);
    assert_eq!(
        thing["content"]["application/json"]["schema"]["properties"]["size"],
        json!({"type": ["number", "null"], "exclusiveMaximum": 10}),
        "3.0 schema keywords in their 3.1 form"
    );
    assert!(tags.iter().any(|t| t["name"] == "things" && t["description"] == "Things, kept by the older service."));

    // Local routes: what they answer.
    let echo = &merged["paths"]["/api/v1/echo"]["get"];
    let ok = resolved(&merged, &echo["responses"]["200"]["content"]["application/json"]["schema"], 0);
    assert_eq!(ok["properties"]["data"], json!({"type": "string"}), "data of the handler's type");
    assert_eq!(ok["required"], json!(["status", "message", "timestamp", "data"]));
    for code in ["401", "404", "422", "500"] {
        let error = resolved(&merged, &echo["responses"][code]["content"]["application/json"]["schema"], 0);
        assert_eq!(error["required"], json!(["status", "message", "timestamp"]), "{code}");
    }
    assert_eq!(
        security(&merged, echo),
        json!([[[{"type": "apiKey", "in": "header", "name": "Authorization",
                  "description": "A key of the `[auth]` rule covering the path, sent as it is (no scheme word)."}, []]]])
    );
    let stream = &merged["paths"]["/api/v1/echo_stream"]["get"]["responses"]["200"]["content"];
    assert!(stream["text/event-stream"].is_object() && stream.get("application/json").is_none(), "{stream}");

    server.stop(true).await;
    older_handle.stop(true).await;
}

/// The validator used above rejects what a careless merge produces: a 3.0 boolean
/// `exclusiveMinimum` in a 3.1 document, a `$ref` to a component left behind (it does
/// not check security requirement names: `security()` above does).
#[test]
fn the_validator_rejects_the_old_defects() {
    let base = |op: Value| {
        json!({"openapi": "3.1.0", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": op}}})
    };
    let ok = json!({"responses": {"200": {"description": "ok"}}});
    assert!(spec_validator(&base(ok)).is_ok());
    let bad_bound = json!({"parameters": [{"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 1, "exclusiveMinimum": true}}],
                           "responses": {"200": {"description": "ok"}}});
    assert!(spec_validator(&base(bad_bound)).is_err());
    let dangling = json!({"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Gone"}}}}}});
    assert!(spec_validator(&base(dangling)).is_err());
}

/// An upstream with one `GET` route that answers `OPTIONS` itself (with its own
/// `Allow`) and refuses `HEAD`, the way a FastAPI app does.
fn configure_methods(cfg: &mut web::ServiceConfig) {
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "methods", "version": "1"},
        "paths": {"/api/v1/thing": {"get": {"responses": {"200": {"description": "ok"}}}}}
    });
    cfg.route("/api/v1/openapi.json", web::get().to(move || {
        let doc = doc.clone();
        async move { HttpResponse::Ok().json(doc) }
    }))
    .service(
        web::resource("/api/v1/thing")
            .route(web::get().to(|| async { HttpResponse::Ok().json(json!({"thing": 1})) }))
            .route(web::route().method(actix_web::http::Method::OPTIONS).to(|| async {
                HttpResponse::Ok().insert_header(("allow", "GET, OPTIONS")).insert_header(("x-answered-by", "upstream")).finish()
            }))
            .route(web::head().to(|| async {
                HttpResponse::MethodNotAllowed().insert_header(("allow", "GET")).insert_header(("x-answered-by", "upstream")).finish()
            })),
    );
}

/// `HEAD` and `OPTIONS` of a proxied route both get the upstream's answers (as they
/// would directly); on a local route both are ours: `HEAD` as `GET` without a body,
/// `OPTIONS` a 405 naming the methods.
#[actix_rt::test]
async fn head_and_options_are_answered_where_the_route_is() {
    let (upstream, handle) = spawn_upstream(configure_methods);
    let toml = format!(
        r#"
load_builtin_plugins = ["echo", "proxy"]
[server]
enable_proxy = true
[plugins.proxy]
discovery_interval = 0
proxy_urls = ["{upstream}"]
"#
    );
    let server = start(config(&toml), vec![]).await;
    for method in ["OPTIONS", "HEAD"] {
        let direct = request(method, &format!("{upstream}/api/v1/thing"), &[], vec![]).await;
        let proxied = request(method, &server.url("/api/v1/thing"), &[], vec![]).await;
        assert_eq!(proxied.status, direct.status, "{method}");
        assert_eq!(proxied.headers.get("allow"), direct.headers.get("allow"), "{method}");
        assert_eq!(proxied.headers.get("x-answered-by").unwrap(), "upstream", "{method}");
    }

    let local = server.url("/api/v1/echo?message=x");
    let head = request("HEAD", &local, &[], vec![]).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    let options = request("OPTIONS", &local, &[], vec![]).await;
    assert_eq!(options.status, 405);
    assert_eq!(options.headers.get("allow").unwrap(), "GET, HEAD");
    server.stop(true).await;
    handle.stop(true).await;
}

/// `/docs` is Swagger UI and `/redoc` ReDoc, on our document, from files served by
/// framex-rs itself (the vendored npm packages, byte for byte; no other origin named).
#[actix_rt::test]
async fn docs_pages_and_their_files_are_served_from_the_binary() {
    let server = start(config(r#"load_builtin_plugins = ["echo"]"#), vec![]).await;
    let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
    for (page, files) in [
        ("/docs", &[("/docs/swagger-ui-bundle.js", "swagger-ui/swagger-ui-bundle.js"), ("/docs/swagger-ui.css", "swagger-ui/swagger-ui.css")][..]),
        ("/redoc", &[("/redoc/redoc.standalone.js", "redoc/redoc.standalone.js")][..]),
    ] {
        let html = get(&server.url(page)).await;
        assert_eq!(html.status, 200);
        assert!(html.content_type.starts_with("text/html"));
        let text = html.text();
        assert!(text.contains("/api/v1/openapi.json") && !text.contains("http"), "{text}");
        for (url, file) in files {
            assert!(text.contains(url), "{page} loads {url}");
            let served = get(&server.url(url)).await;
            assert_eq!(served.status, 200, "{url}");
            assert!(served.content_type.starts_with(if url.ends_with(".css") { "text/css" } else { "text/javascript" }));
            assert!(served.body == std::fs::read(format!("{assets}/{file}")).unwrap(), "{url} is the vendored file");
        }
    }
    server.stop(true).await;
}

/// Whether a program is on `PATH`.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// In headless Chromium (Debian's `chromium` with `chromium-driver`, driven by
/// `tests/python/docs_ui.py`): Swagger UI at `/docs`, with our `[auth]` key entered in
/// its "Authorize" dialog, tries a proxied form operation (under an `[auth]` rule, so
/// the key must reach us as `Authorization: <key>`) and a multipart one with two
/// files, and shows the FastAPI app's answers (the same as sent directly); `/redoc`
/// renders our document with no console error.
#[actix_rt::test]
async fn docs_pages_work_in_a_browser() {
    if !(on_path("chromium") && on_path("chromedriver")) {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver (.ci/run)");
        eprintln!("skipped: chromium or chromedriver is not installed (apt-get install chromium chromium-driver)");
        return;
    }
    let legacy = legacy_app().await;
    let toml = format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[plugins.proxy]
timeout = 30
discovery_interval = 0
proxy_urls = ["{}"]
[auth]
rules = {{ "/api/v1/form" = ["k-docs"] }}
"#,
        legacy.url
    );
    let server = start(config(&toml), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("upload.bin");
    let content: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&upload, &content).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/docs_ui.py");
    let base = server.url("");
    let base = base.trim_end_matches('/').to_owned();
    let upload_arg = upload.to_str().unwrap().to_owned();
    // The browser works in another process; this test's runtime keeps serving.
    let out = actix_rt::task::spawn_blocking(move || {
        Command::new(python()).args([script, &base, &upload_arg, "k-docs"]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "docs_ui.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    let direct_form = request(
        "POST",
        &format!("{}/api/v1/form", legacy.url),
        &[("content-type", "application/x-www-form-urlencoded")],
        b"name=Ada&age=36".to_vec(),
    )
    .await;
    assert_eq!(seen["form"]["status"], "200");
    assert_eq!(seen["form"]["body"], direct_form.json(), "the form operation's answer");

    let boundary = "docs-ui-boundary";
    let mut body = Vec::new();
    for (name, file) in [("file_a", true), ("file_b", true), ("label", false)] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
        if file {
            body.extend_from_slice(b"; filename=\"upload.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n");
            body.extend_from_slice(&content);
        } else {
            body.extend_from_slice(b"\r\n\r\ntwo files");
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let direct_upload =
        request("POST", &format!("{}/api/v1/upload", legacy.url), &[("content-type", &content_type)], body).await;
    assert_eq!(direct_upload.status, 200, "{}", direct_upload.text());
    assert_eq!(seen["upload"]["status"], "200");
    assert_eq!(seen["upload"]["body"], direct_upload.json(), "the multipart operation's answer");

    assert_eq!(seen["redoc"]["title"], format!("FrameX ({})", framex::VERSION));
    assert_eq!(seen["redoc"]["errors"], json!([]), "ReDoc's console errors");
    server.stop(true).await;
}

/// Two upstreams that use the same `operationId` (FastAPI derives it from the function
/// name, so `read_item` is common) still make a valid merged document: the second gets
/// `read_item_2`, and the validator accepts the result.
#[actix_rt::test]
async fn repeated_operation_ids_are_renamed() {
    let upstream = |path: &'static str| {
        spawn_upstream(move |cfg| {
            cfg.route(
                "/api/v1/openapi.json",
                web::get().to(move || async move {
                    HttpResponse::Ok().json(json!({
                        "openapi": "3.1.0", "info": {"title": "up", "version": "1"},
                        "paths": {path: {"get": {"operationId": "read_item", "responses": {"200": {"description": "ok"}}}}}
                    }))
                }),
            );
        })
    };
    let ((a, a_handle), (b, b_handle)) = (upstream("/api/v1/a/item"), upstream("/api/v1/b/item"));
    let toml = format!("load_builtin_plugins = [\"proxy\"]\n[plugins.proxy]\nproxy_urls = [\"{a}\", \"{b}\"]\ndiscovery_interval = 0\n");
    let server = start(config(&toml), vec![]).await;
    let doc = get(&server.url("/api/v1/openapi.json")).await.json();
    let ids: BTreeSet<&str> = ["/api/v1/a/item", "/api/v1/b/item"]
        .iter()
        .map(|p| doc["paths"][p]["get"]["operationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from(["read_item", "read_item_2"]));
    spec_validator(&doc).expect("the merged document validates");
    server.stop(true).await;
    a_handle.stop(false).await;
    b_handle.stop(false).await;
}

/// The docs page tells the truth about who serves what: an upstream's description of
/// a tag a local plugin serves under (`echo`) is not shown as the plugin's, and the
/// `FrameXKey` scheme is offered only when an `[auth]` rule exists.
#[actix_rt::test]
async fn tags_and_key_scheme_describe_what_serves() {
    let (up, handle) = spawn_upstream(|cfg| {
        cfg.route(
            "/api/v1/openapi.json",
            web::get().to(|| async {
                HttpResponse::Ok().json(json!({
                    "openapi": "3.1.0", "info": {"title": "up", "version": "1"},
                    "tags": [{"name": "echo", "description": "the legacy echo service"}],
                    "paths": {"/api/v1/echo_legacy": {"get": {"tags": ["echo"], "responses": {"200": {"description": "ok"}}}}}
                }))
            }),
        );
    });
    let toml = |auth: &str| {
        format!("load_builtin_plugins = [\"echo\", \"proxy\"]\n{auth}[plugins.proxy]\nproxy_urls = [\"{up}\"]\ndiscovery_interval = 0\n")
    };
    let open = start(config(&toml("")), vec![]).await;
    let doc = get(&open.url("/api/v1/openapi.json")).await.json();
    assert!(doc["components"]["securitySchemes"].get("FrameXKey").is_none(), "{}", doc["components"]);
    let echo = doc["tags"].as_array().unwrap().iter().find(|t| t["name"] == "echo").cloned().unwrap();
    assert_ne!(echo["description"], json!("the legacy echo service"), "{echo}");
    open.stop(true).await;

    let guarded = start(config(&toml("[auth]\nrules = { \"/api/v1/echo\" = [\"k\"] }\n")), vec![]).await;
    let doc = get(&guarded.url("/api/v1/openapi.json")).await.json();
    assert!(doc["components"]["securitySchemes"]["FrameXKey"].is_object());
    guarded.stop(true).await;
    handle.stop(false).await;
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Countdown {
    /// Chunks to send before the stream ends; above 3 it fails after them.
    from: u8,
}

/// A local stream that ends with `finish`, or with an `error` event once started.
fn countdown_plugin() -> std::sync::Arc<framex::actors::PluginSpec> {
    use framex::plugin::{Ctx, Emitter, PluginBuilder};
    PluginBuilder::new("countdown")
        .stream("/api/v1/countdown", |args: Countdown, _: Ctx, out: Emitter| async move {
            for n in (0..args.from.min(5)).rev() {
                out.chunk(n.to_string()).await?;
            }
            match args.from {
                0..=3 => Ok(()),
                _ => Err(framex::actors::Error::Plugin { status: 500, message: "counted too far".into() }),
            }
        })
        .build()
        .expect("plugin declarations are valid")
}

/// Schemathesis (from the test venv) finds nothing wrong with the local routes'
/// document: every answer — envelopes, 422s in FastAPI's shape, and each server-sent
/// event of a stream (`message_chunk`, `finish`, `error`) — is what the document says.
/// Bounded: 25 examples per operation, one worker, killed after 120 s (schemathesis's
/// own `--max-time` would fuzz until it is spent).
#[actix_rt::test]
async fn schemathesis_finds_the_local_document_true() {
    let server = start(config("load_builtin_plugins = [\"echo\"]\n"), vec![countdown_plugin()]).await;
    let schema = server.url("/api/v1/openapi.json");
    let program = crate::common::python::venv().join("bin/schemathesis");
    let report = tempfile::tempdir().unwrap();
    let junit = report.path().join("junit.xml");
    let args = [
        "120", program.to_str().unwrap(), "run", &schema, "--checks", "all", "--seed", "1", "--max-examples", "25",
        "--workers", "1", "--request-timeout", "10", "--report", "junit", "--report-junit-path", junit.to_str().unwrap(),
    ]
    .map(str::to_owned);
    // Run in the temporary directory: schemathesis keeps a `.schemathesis/` cache in the
    // one it starts in.
    let dir = report.path().to_owned();
    let run = actix_web::rt::task::spawn_blocking(move || {
        Command::new("timeout").args(args).current_dir(dir).env("NO_COLOR", "1").output()
    });
    let out = run.await.unwrap().expect("schemathesis runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found failures (or ran out of time):\n{text}");
    assert!(text.contains("Tested: 4"), "every operation of the echo and countdown plugins was tested:\n{text}");
    server.stop(true).await;
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

async fn hello(_: NoArgs, _cx: framex::plugin::Ctx) -> framex::Result<String> {
    Ok("hello".to_owned())
}

/// In headless Chromium, the `/docs` header (driven by `tests/python/docs_header.py`):
/// the runtime version, the start time and "N loaded · 0 failed"; a card per plugin
/// with author, version and repository link, a description holding `<script>` shown as
/// text and never run; a button per `[docs]` action, a password button run from the
/// page (its form, then the server's request to its target, whose answer the page
/// shows); with the popup blocker on and requests slower than the browser's user
/// activation lasts, the window of the URL its answer names, and those of `LINK`
/// buttons (one plain, one behind a password), open and reach their URL without a
/// `Referer`; each
/// upstream's health (a live one healthy, a dead one not discovered); a migrating
/// route's mode; Swagger UI still renders below, with no console error.
#[actix_rt::test]
async fn docs_header_shows_runtime_plugins_upstreams_and_buttons() {
    if !(on_path("chromium") && on_path("chromedriver")) {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver (.ci/run)");
        eprintln!("skipped: chromium or chromedriver is not installed (apt-get install chromium chromium-driver)");
        return;
    }
    let (live, live_handle) = spawn_upstream(configure_older);
    let pressed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kept = pressed.clone();
    let opened = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Option<String>)>::new()));
    let seen_open = opened.clone();
    let (target, target_handle) = spawn_upstream(move |cfg| {
        let kept = kept.clone();
        cfg.route("/redeploy", actix_web::web::post().to(move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
            kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            let log = format!("http://{}/deploy-log", req.connection_info().host());
            async move { actix_web::HttpResponse::Ok().json(json!({"deployed": "v7", "log": log})) }
        }));
        let seen_open = seen_open.clone();
        cfg.route("/{page}", actix_web::web::get().to(move |req: actix_web::HttpRequest| {
            let referer = req.headers().get("referer").and_then(|v| v.to_str().ok()).map(str::to_owned);
            seen_open.lock().unwrap().push((req.path().to_owned(), referer));
            async { actix_web::HttpResponse::Ok().content_type("text/html").body("<!doctype html><title>linked</title><link rel=\"icon\" href=\"data:,\">linked") }
        }));
    });
    let dead = format!("http://127.0.0.1:{}", crate::common::python::free_port());
    let evil = "<script>window.__fx_pwned = true</script><img src=x onerror=\"window.__fx_pwned = true\">";
    let plugin = framex::plugin::PluginBuilder::new("greeter")
        .version("1.2.3")
        .author("Ada <ada@example.org>")
        .description(evil)
        .url("https://example.org/greeter")
        .get("/hello", hello)
        .build()
        .unwrap();
    let toml = format!(
        r#"
load_builtin_plugins = ["echo", "proxy"]
load_plugins = ["greeter"]
[server]
enable_proxy = true
reversion = "9.9.9"
[plugins.proxy]
timeout = 30
discovery_interval = 0
connect_timeout = 1
[plugins.proxy.proxy_urls."{live}"]
docs_path = "/openapi.json"
[plugins.proxy.proxy_urls."{dead}"]
[plugins.proxy.migrate]
"/api/v1/hello" = {{ mode = "shadow" }}
[[docs.action_buttons]]
title = "Runbook"
method = "LINK"
url = "{target}/runbook"
[[docs.action_buttons]]
title = "Redeploy"
variant = "danger"
url = "{target}/redeploy"
body = {{ service = "api" }}
auth = {{ type = "password", password = "pw-never-shown" }}
response_open_url = "log"
[[docs.action_buttons]]
title = "Vault"
method = "LINK"
url = "{target}/vault"
auth = {{ type = "password", password = "pw-never-shown" }}
"#
    );
    let server = start(config(&toml), vec![plugin]).await;
    let html = get(&server.url("/docs")).await;
    assert!(!html.text().contains("<script>window") && !html.text().contains("pw-never-shown"), "{}", html.text());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/docs_header.py");
    let base = server.url("");
    let base = base.trim_end_matches('/').to_owned();
    let out = actix_rt::task::spawn_blocking(move || Command::new(python()).args([script, &base, "pw-never-shown"]).output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "docs_header.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(seen["runtime"], json!(["Runtime v9.9.9"]));
    assert!(seen["started"][0].as_str().unwrap().starts_with("Started at 20"), "{seen}");
    assert_eq!((&seen["loaded"], &seen["failed"]), (&json!(["2 loaded"]), &json!(["0 failed"])), "{seen}");
    let cards = seen["cards"].as_array().unwrap();
    assert_eq!(cards.iter().map(|c| c["name"].as_str().unwrap()).collect::<Vec<_>>(), ["echo", "greeter"]);
    let greeter = &cards[1];
    assert_eq!(greeter["description"], evil, "the description is shown as text");
    assert_eq!((&greeter["author"], &greeter["version"]), (&json!("Ada <ada@example.org>"), &json!("1.2.3")));
    assert_eq!(greeter["repo"], json!(["https://example.org/greeter"]));
    assert_eq!(seen["pwned"], false, "no injected script ran");
    assert_eq!(seen["injected_elements"], 0);
    assert_eq!(seen["buttons"][0], json!({"title": "Runbook", "tag": "button", "href": null, "disabled": false}));
    assert_eq!(seen["buttons"][1], json!({"title": "Redeploy", "tag": "button", "href": null, "disabled": false}));
    let log = format!("{target}/deploy-log");
    let answer = json!({"deployed": "v7", "log": log}).to_string();
    assert_eq!(seen["action"], json!({"status": "Redeploy: status 200", "body": [answer], "opened": [log]}), "{seen}");
    assert_eq!(*pressed.lock().unwrap(), ["{\"service\":\"api\"}"], "the target got the button's body once");
    assert_eq!(
        seen["links"],
        json!({"Runbook": format!("{target}/runbook"), "Vault": format!("{target}/vault")}),
        "each LINK opened its window, past the popup blocker: {seen}"
    );
    let referers: Vec<_> = opened.lock().unwrap().iter().map(|(path, referer)| (path.clone(), referer.clone())).collect();
    let expected = ["/deploy-log", "/runbook", "/vault"].map(|path| (path.to_owned(), None));
    assert_eq!(referers, expected, "no Referer reaches the link");
    let health: std::collections::BTreeMap<String, String> = seen["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["url"].as_str().unwrap().to_owned(), u["health"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(health.get(&live).map(String::as_str), Some("healthy"), "{seen}");
    assert_eq!(health.get(&dead).map(String::as_str), Some("not discovered"), "{seen}");
    assert_eq!(seen["migration"], json!([{"route": "/api/v1/hello", "mode": "shadow"}]));
    assert!(seen["swagger_title"].as_str().unwrap().starts_with("FrameX"), "{seen}");
    assert_eq!(seen["errors"], json!([]), "console errors");
    server.stop(true).await;
    live_handle.stop(true).await;
    target_handle.stop(true).await;
}
