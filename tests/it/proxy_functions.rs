//! FrameX proxy functions (`POST /api/v1/proxy/remote`): framex-rs serving the proxy
//! functions its plugins offer, calling a remote one from a plugin, and the encoding
//! checked against FrameX-kit's own `cache_encode` / `cache_decode`.

use framex::actors::{Ctx, Error};
use framex::plugin::PluginBuilder;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::python::python;
use crate::common::{config, get, post_json, start};

#[derive(Deserialize, JsonSchema)]
struct Terms {
    a: i64,
    b: i64,
}

async fn add(terms: Terms, _: Ctx) -> Result<Value, Error> {
    Ok(json!({"sum": terms.a + terms.b, "note": "computed in Rust ✓"}))
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

async fn sum_remotely(_: NoArgs, cx: Ctx) -> Result<Value, Error> {
    cx.call_remote_api("calc.Calc.add", json!({"a": 2, "b": 3})).await
}

/// Runs Python with FrameX-kit importable; returns its stdout.
fn framex_kit_python(script: &str, arg: &str) -> String {
    let out = std::process::Command::new(python())
        .args(["-c", script, arg])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A call encoded by FrameX-kit is answered, and FrameX-kit decodes the answer; a
/// second instance reaches the function through `proxy_functions` from a plugin.
#[actix_rt::test]
async fn function_apis_are_served_and_called_as_proxy_functions() {
    let calc = PluginBuilder::new("calc")
        .proxy_function("calc.Calc.add", add)
        .function("private_add", add)
        .build().expect("plugin declarations are valid");
    let a = start(config(""), vec![calc]).await;
    let remote = a.url("/api/v1/proxy/remote");

    // FrameX-kit encodes the call ...
    let body = framex_kit_python(
        "import json, sys; from framex.utils.cache import cache_encode as e; \
         print(json.dumps({'func_name': e(sys.argv[1]), 'data': e(data={'a': 40, 'b': 2})}))",
        "calc.Calc.add",
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    let r = post_json(&remote, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], 200);
    // ... and decodes our answer.
    let decoded = framex_kit_python(
        "import json, sys; from framex.utils.cache import cache_decode as d; \
         print(json.dumps(d(sys.argv[1]), ensure_ascii=False))",
        r.json()["data"].as_str().unwrap(),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&decoded).unwrap(),
        json!({"sum": 42, "note": "computed in Rust ✓"})
    );

    // Unknown functions, function APIs not offered as proxy functions, and HTTP
    // routes are not callable here.
    let encode = |v: Value| framex::actors::upstream::proxy_function::encode(&v);
    for name in ["calc.Calc.nope", "calc.CalcPlugin.private_add"] {
        let r = post_json(&remote, &json!({"func_name": encode(json!(name)), "data": encode(json!({"a": 1, "b": 1}))})).await;
        assert_eq!(r.status, 404, "{name}: {}", r.text());
    }
    let r = post_json(&remote, &json!({"func_name": encode(json!("GET /api/v1/echo")), "data": encode(json!({}))})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = post_json(&remote, &json!({"func_name": "plain text", "data": "x"})).await;
    assert_eq!(r.status, 422, "{}", r.text());

    // Instance B calls A's function from a plugin, through its proxy_functions.
    let caller = PluginBuilder::new("caller")
        .requires(["calc.Calc.add"])
        .get("/api/v1/sum", sum_remotely)
        .build().expect("plugin declarations are valid");
    let b_toml = format!(
        "load_builtin_plugins = [\"proxy\"]\n[server]\nenable_proxy = true\n[plugins.proxy]\nproxy_urls = [\"{0}\"]\nproxy_functions = {{ \"{0}\" = [\"calc.Calc.add\"] }}\n",
        a.url("")
    );
    let b_config = config(&b_toml);
    let b = start(b_config, vec![caller]).await;
    let r = get(&b.url("/api/v1/sum")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"], json!({"sum": 5, "note": "computed in Rust ✓"}));
    let listing = framex::cli::route_listing(&config(&b_toml)).await.unwrap().table;
    assert!(listing.lines().any(|l| l.starts_with("FUNC") && l.contains("calc.Calc.add")), "{listing}");
    b.stop(true).await;
    a.stop(true).await;
}
