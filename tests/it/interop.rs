//! Interop with real Python services: a FastAPI app (uvicorn) and FrameX-kit 0.4.2,
//! in both directions and chained.

use framex::actors::{Ctx, Error};
use framex::plugin::PluginBuilder;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::python::{framex_kit, legacy_app};
use crate::common::{config, get, get_with, post_json, request, sse_events, start, Reply};

fn legacy_proxy_config(legacy: &str) -> String {
    format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[plugins.proxy]
timeout = 30
discovery_interval = 0
force_stream_apis = ["/api/v1/stream/sse"]
[plugins.proxy.proxy_urls."{legacy}"]
disable = ["/api/v1/hidden"]
[plugins.proxy.auth]
rules = {{ "/api/v1/secret" = ["legacy-key"] }}
"#
    )
}

/// Asserts two answers are the same to a client: status, content type, body.
fn same(direct: &Reply, proxied: &Reply, what: &str) {
    assert_eq!(direct.status, proxied.status, "{what}: status\n{}\n{}", direct.text(), proxied.text());
    assert_eq!(direct.content_type, proxied.content_type, "{what}: content type");
    assert_eq!(direct.body, proxied.body, "{what}: body");
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "test-boundary-4f1c";
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Every kind of call to a real FastAPI app gives through framex-rs exactly what the
/// app gives directly; the disabled route is 404; `framex routes` lists exactly the
/// enabled routes.
#[actix_rt::test]
async fn fastapi_app_answers_the_same_through_framex_rs() {
    let legacy = legacy_app().await;
    let server = start(config(&legacy_proxy_config(&legacy.url)), vec![]).await;
    let (d, p) = (legacy.url.as_str(), server.url(""));

    for path in [
        "/api/v1/base/version",
        "/api/v1/items/7?q=x%20y",
        "/api/v1/search?q=a&limit=3&flag=true",
        "/api/v1/search",
        "/api/v1/teapot",
        "/api/v1/base/envelope?value=5",
    ] {
        same(&get(&format!("{d}{path}")).await, &get(&format!("{p}{path}")).await, path);
    }
    // A typed path parameter that is not the canonical spelling of a value is an
    // unknown route here (README, Security: typed path parameters), where FastAPI
    // answers 422: the one place the answers differ on purpose.
    assert_eq!(get(&format!("{d}/api/v1/items/seven")).await.status, 422);
    let r = get(&format!("{p}/api/v1/items/seven")).await;
    assert_eq!((r.status, r.json()["message"].clone()), (404, json!("Not Found")), "{}", r.text());
    // HEAD of a GET route, as FastAPI answers it: same status and length, no body.
    let direct = request("HEAD", &format!("{d}/api/v1/base/version"), &[], Vec::new()).await;
    let proxied = request("HEAD", &format!("{p}/api/v1/base/version"), &[], Vec::new()).await;
    same(&direct, &proxied, "HEAD of a GET route");
    assert_eq!(direct.headers.get("content-length"), proxied.headers.get("content-length"));
    assert!(proxied.body.is_empty());

    let item = json!({"name": "widget", "tags": ["a", "b"], "owner": {"id": 1}});
    same(
        &post_json(&format!("{d}/api/v1/items"), &item).await,
        &post_json(&format!("{p}/api/v1/items"), &item).await,
        "nested $ref model with defaults",
    );
    let bad = json!({"name": "widget"});
    same(
        &post_json(&format!("{d}/api/v1/items"), &bad).await,
        &post_json(&format!("{p}/api/v1/items"), &bad).await,
        "FastAPI's own 422",
    );

    let file_b: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (ct, body) = multipart(&[("file_a", Some("a.txt"), b"hello a"), ("file_b", Some("b.bin"), &file_b), ("label", None, b"two files")]);
    let direct = request("POST", &format!("{d}/api/v1/upload"), &[("content-type", &ct)], body.clone()).await;
    let proxied = request("POST", &format!("{p}/api/v1/upload"), &[("content-type", &ct)], body).await;
    same(&direct, &proxied, "multipart with two files and a field");
    assert_eq!(proxied.json()["file_b"]["size"], 200_000);

    let form = b"name=ada&age=36".to_vec();
    let hdr = [("content-type", "application/x-www-form-urlencoded")];
    same(
        &request("POST", &format!("{d}/api/v1/form"), &hdr, form.clone()).await,
        &request("POST", &format!("{p}/api/v1/form"), &hdr, form).await,
        "urlencoded form",
    );

    let binary: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let hdr = [("content-type", "application/x-custom")];
    same(
        &request("POST", &format!("{d}/api/v1/binary"), &hdr, binary.clone()).await,
        &request("POST", &format!("{p}/api/v1/binary"), &hdr, binary).await,
        "3 MB binary body, streamed",
    );

    assert_eq!(get(&format!("{d}/api/v1/secret")).await.status, 401);
    same(
        &get_with(&format!("{d}/api/v1/secret"), &[("authorization", "legacy-key")]).await,
        &get(&format!("{p}/api/v1/secret")).await,
        "upstream key injected by auth.rules",
    );

    assert_eq!(get(&format!("{d}/api/v1/hidden")).await.status, 200);
    let hidden = get(&format!("{p}/api/v1/hidden")).await;
    assert_eq!(hidden.status, 404, "disabled routes are not proxied");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, legacy_proxy_config(&legacy.url)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["routes", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    let doc = get(&format!("{d}/api/v1/openapi.json")).await.json();
    let mut expected = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let line = listing
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(path.as_str()) && l.starts_with(&method.to_uppercase()));
            if path == "/api/v1/hidden" {
                assert!(line.is_none(), "{listing}");
            } else {
                assert!(line.is_some(), "{method} {path} missing:\n{listing}");
                expected += 1;
            }
        }
    }
    assert_eq!(listing.lines().count(), expected + 1, "exactly the enabled routes:\n{listing}");
    server.stop(true).await;
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

async fn seed_calls(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    let version = cx.call_remote_api("/api/v1/base/version", ()).await?;
    let matched = cx
        .call_remote_api("/api/v1/base/match", json!({"model": {"name": "test"}}))
        .await?;
    let unwrapped = cx.call_remote_api("/api/v1/base/envelope", json!({"value": 3})).await?;
    Ok(json!({"version": version, "matched": matched, "unwrapped": unwrapped}))
}

/// The seed's examples work as written, in Rust, against a real FastAPI app.
#[actix_rt::test]
async fn seed_call_remote_api_examples_work_against_fastapi() {
    let legacy = legacy_app().await;
    let invoker = PluginBuilder::new("invoker")
        .requires(["/api/v1/base/version", "/api/v1/base/match", "/api/v1/base/envelope"])
        .get("/api/v1/invoker/run", seed_calls)
        .build().expect("plugin declarations are valid");
    let server = start(config(&legacy_proxy_config(&legacy.url)), vec![invoker]).await;
    let r = get(&server.url("/api/v1/invoker/run")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["data"],
        json!({"version": {"version": "1.2.3"}, "matched": {"matched": "test"}, "unwrapped": {"value": 3}})
    );
    server.stop(true).await;
}

/// A label that, with the fixed boundary framex-rs used to write, closed its part and
/// added a second `label` field (the upstream's parser then saw `admin`).
const INJECTED_LABEL: &str = "hi\r\n--framex-rs-boundary-7d3f9a1c5e\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\nadmin";

async fn upload_calls(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    let sent = cx
        .call_remote_api(
            "/api/v1/upload",
            json!({
                "file_a": {"content": "hello a", "filename": "a.txt"},
                "file_b": {"content": "b", "filename": "b\r\nX-Injected: 1\".txt"},
                "label": INJECTED_LABEL,
            }),
        )
        .await?;
    let refused = cx
        .call_remote_api(
            "/api/v1/upload",
            json!({
                "file_a": {"content": "a", "content_type": "text/plain\r\nContent-Disposition: form-data; name=\"label\""},
                "file_b": "b",
                "label": "x",
            }),
        )
        .await;
    Ok(json!({"sent": sent, "refused": refused.map_err(|e| e.to_string()).err()}))
}

/// `call_remote_api` to a multipart operation of a real FastAPI app: what a plugin
/// passes on from its client cannot end a part or add one (the boundary is new for
/// each body and occurs in none of its parts), a file name's CR and LF are
/// percent-encoded, and a content type with a line break is refused.
#[actix_rt::test]
async fn multipart_arguments_cannot_add_fields() {
    let legacy = legacy_app().await;
    let invoker = PluginBuilder::new("uploader")
        .requires(["/api/v1/upload"])
        .get("/api/v1/uploader/run", upload_calls)
        .build()
        .expect("plugin declarations are valid");
    let server = start(config(&legacy_proxy_config(&legacy.url)), vec![invoker]).await;
    let r = get(&server.url("/api/v1/uploader/run")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = &r.json()["data"];
    assert_eq!(data["sent"]["label"], INJECTED_LABEL, "the label arrives whole, as one field: {data}");
    assert_eq!(data["sent"]["file_a"]["size"], 7);
    assert_eq!(data["sent"]["file_b"]["filename"], "b%0D%0AX-Injected: 1%22.txt", "{data}");
    let refused = data["refused"].as_str().unwrap_or_default();
    assert!(refused.contains("content_type"), "a content type with a line break is refused: {data}");
    server.stop(true).await;
}

/// A real FrameX-kit instance with `proxy_urls` pointing at framex-rs discovers our
/// echo routes, and its clients get our answers through it, streams included.
#[actix_rt::test]
async fn framex_kit_proxies_framex_rs() {
    let server = start(config(r#"load_builtin_plugins = ["echo"]"#), vec![]).await;
    let (kit, _dir) = framex_kit(
        &format!(
            r#"
load_builtin_plugins = ["proxy"]
[plugins.proxy]
force_stream_apis = ["/api/v1/echo_stream"]
[plugins.proxy.proxy_urls."{}"]
enable = ["/api/v1/echo", "/api/v1/echo_model", "/api/v1/echo_stream"]
"#,
            server.url("")
        ),
        &["/api/v1/echo", "/api/v1/echo_model", "/api/v1/echo_stream"],
    )
    .await;

    let ours = get(&server.url("/api/v1/echo?message=hi")).await.json();
    let via_kit = get(&format!("{}/api/v1/echo?message=hi", kit.url)).await;
    assert_eq!(via_kit.status, 200, "{}", via_kit.text());
    assert_eq!(via_kit.json()["data"], ours["data"]);

    let body = json!({"id": 1, "name": "x"});
    let via_kit = post_json(&format!("{}/api/v1/echo_model?message=hi", kit.url), &body).await;
    assert_eq!(via_kit.json()["data"], "hi,{'id': 1, 'name': 'x'}", "{}", via_kit.text());

    let direct = get(&server.url("/api/v1/echo_stream?message=ab")).await;
    let via_kit = get(&format!("{}/api/v1/echo_stream?message=ab", kit.url)).await;
    assert_eq!(sse_events(&via_kit.text()), sse_events(&direct.text()));
    server.stop(true).await;
}

async fn kit_echo(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    cx.call_remote_api("/api/v1/echo", json!({"message": "through"})).await
}

/// framex-rs proxies a real FrameX-kit instance: HTTP routes pass through, streams
/// stream, and `call_remote_api` unwraps FrameX-kit's envelope.
#[actix_rt::test]
async fn framex_rs_proxies_framex_kit() {
    let (kit, _dir) = framex_kit(r#"load_builtin_plugins = ["echo"]"#, &["/api/v1/echo"]).await;
    let caller = PluginBuilder::new("caller")
        .requires(["/api/v1/echo"])
        .get("/api/v1/caller/echo", kit_echo)
        .build().expect("plugin declarations are valid");
    let cfg = format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[plugins.proxy]
proxy_urls = ["{}"]
discovery_interval = 0
"#,
        kit.url
    );
    let server = start(config(&cfg), vec![caller]).await;
    let direct = get(&format!("{}/api/v1/echo?message=hi", kit.url)).await.json();
    let proxied = get(&server.url("/api/v1/echo?message=hi")).await.json();
    assert_eq!(proxied["data"], direct["data"]);
    assert_eq!(proxied["status"], 200);

    let r = get(&server.url("/api/v1/caller/echo")).await;
    assert_eq!(r.json()["data"], "through", "{}", r.text());

    let streamed = get(&server.url("/api/v1/echo_stream?message=z")).await;
    assert!(streamed.content_type.starts_with("text/event-stream"));
    let events = sse_events(&streamed.text());
    assert_eq!(events.last().unwrap().0, "finish");
    let text: String = events.iter().filter_map(|(_, d)| d["content"].as_str()).collect();
    assert_eq!(text, "This message is being streamed., z");
    server.stop(true).await;
}

/// FrameX-kit → framex-rs → FastAPI: a chain of three hops answers correctly.
#[actix_rt::test]
async fn three_hops_from_framex_kit_through_framex_rs_to_fastapi() {
    let legacy = legacy_app().await;
    let server = start(config(&legacy_proxy_config(&legacy.url)), vec![]).await;
    let (kit, _dir) = framex_kit(
        &format!(
            r#"
load_builtin_plugins = ["proxy"]
[plugins.proxy.proxy_urls."{}"]
enable = ["/api/v1/base/*", "/api/v1/items/*"]
"#,
            server.url("")
        ),
        &["/api/v1/base/version", "/api/v1/base/match"],
    )
    .await;
    let direct = get(&format!("{}/api/v1/base/version", legacy.url)).await.json();
    let chained = get(&format!("{}/api/v1/base/version", kit.url)).await;
    assert_eq!(chained.status, 200, "{}", chained.text());
    assert_eq!(chained.json(), direct);
    let body = json!({"name": "chain"});
    let chained = post_json(&format!("{}/api/v1/base/match", kit.url), &body).await;
    assert_eq!(chained.json(), json!({"matched": "chain"}), "{}", chained.text());
    server.stop(true).await;
}

/// Validation errors of local routes read as FrameX-kit's (FastAPI's) do, field by
/// field: `type`, `loc`, `msg` and `input` of each problem, for a body field of the
/// wrong type, a missing body field, a missing body, invalid JSON and a missing query
/// parameter; and a string spelling a number, or a whole float, is taken as FrameX-kit
/// takes it.
#[actix_rt::test]
async fn validation_errors_match_framex_kit() {
    let (kit, _dir) = framex_kit(r#"load_builtin_plugins = ["echo"]"#, &["/api/v1/echo_model"]).await;
    let ours = start(config(r#"load_builtin_plugins = ["echo"]"#), vec![]).await;
    let json_type = [("content-type", "application/json")];
    let cases: [(&str, &str, &[u8]); 8] = [
        ("POST", "/api/v1/echo_model?message=m", br#"{"id":"x"}"#),
        ("POST", "/api/v1/echo_model?message=m", br#"{"name":"n"}"#),
        ("POST", "/api/v1/echo_model?message=m", b""),
        ("POST", "/api/v1/echo_model?message=m", b"{bad"),
        ("GET", "/api/v1/echo", b""),
        ("POST", "/api/v1/echo_model?message=m", br#"{"id":"5"}"#),
        ("POST", "/api/v1/echo_model?message=m", br#"{"id":5.0}"#),
        ("POST", "/api/v1/echo_model?message=m", br#"{"id":5.5}"#),
    ];
    for (method, path, body) in cases {
        let theirs = request(method, &format!("{}{path}", kit.url), &json_type, body.to_vec()).await;
        let mine = request(method, &ours.url(path), &json_type, body.to_vec()).await;
        assert_eq!(mine.status, theirs.status, "{method} {path} {body:?}: {}", mine.text());
        let strip = |reply: &Reply| {
            let mut detail = reply.json()["data"]["detail"].clone();
            for problem in detail.as_array_mut().into_iter().flatten() {
                problem.as_object_mut().unwrap().remove("ctx");
            }
            detail
        };
        if theirs.status == 422 {
            assert_eq!(strip(&mine), strip(&theirs), "{method} {path} {body:?}");
        } else {
            assert_eq!(mine.json()["data"], theirs.json()["data"], "{method} {path} {body:?}");
        }
    }
    ours.stop(true).await;
}
