use serde_json::json;

use super::*;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/openapi/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn discover(doc: &Value, prefix: &str) -> Discovered {
    let allows = |path: &str| {
        if path == "/api/v1/hidden" {
            Err("disabled by rule '/api/v1/hidden'".to_owned())
        } else {
            Ok(())
        }
    };
    let opts = DiscoveryOptions {
        upstream: "http://legacy".into(),
        allows: &allows,
        force_stream_apis: vec!["/api/v1/search".into()],
        component_prefix: prefix.into(),
        limits: DiscoveryLimits::default(),
    };
    parse_document(doc, &opts).unwrap()
}

fn op<'a>(found: &'a Discovered, method: &str, path: &str) -> &'a ApiSpec {
    found
        .operations
        .iter()
        .find(|s| s.key == ApiKey::Http { method: Method::from_bytes(method.as_bytes()).unwrap(), path: path.into() })
        .unwrap_or_else(|| panic!("{method} {path} not discovered"))
}

fn param<'a>(spec: &'a ApiSpec, name: &str) -> &'a Param {
    spec.params.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn fastapi_31_parameters_bodies_and_streams() {
    let found = discover(&fixture("fastapi-3.1.json"), "U1_");
    let item = op(&found, "GET", "/api/v1/items/{item_id}");
    let id = param(item, "item_id");
    assert_eq!((id.location, id.kind.clone(), id.required), (ParamLocation::Path, ValueKind::Integer, true));
    let q = param(item, "q");
    assert_eq!((q.location, q.kind.clone(), q.required), (ParamLocation::Query, ValueKind::String, false));

    let search = op(&found, "GET", "/api/v1/search");
    assert_eq!(param(search, "tags").items, Some(ValueKind::String));
    assert_eq!(param(search, "flag").kind, ValueKind::Boolean);
    assert!(search.streaming, "listed in force_stream_apis");
    assert!(op(&found, "GET", "/api/v1/stream/sse").streaming, "declares text/event-stream");
    assert!(!item.streaming);

    let create = op(&found, "POST", "/api/v1/items");
    assert!(matches!(&create.body, BodySpec::Json { arg, required: true, .. } if arg == "model"));

    let upload = op(&found, "POST", "/api/v1/upload");
    let BodySpec::Multipart { fields } = &upload.body else { panic!("multipart expected") };
    let files: Vec<(&str, bool, bool)> = fields.iter().map(|f| (f.name.as_str(), f.file, f.required)).collect();
    assert!(files.contains(&("file_a", true, true)));
    assert!(files.contains(&("file_b", true, true)));
    assert!(files.contains(&("label", false, true)));
    assert!(files.contains(&("note", false, false)));
}

#[test]
fn filtered_paths_are_skipped_with_the_reason() {
    let found = discover(&fixture("fastapi-3.1.json"), "U1_");
    assert_eq!(
        found.skipped,
        vec![Skip { method: "GET".into(), path: "/api/v1/hidden".into(), reason: "disabled by rule '/api/v1/hidden'".into() }]
    );
}

#[test]
fn component_references_are_renamed_and_all_resolve() {
    let found = discover(&fixture("fastapi-3.1.json"), "U1_");
    let schemas = found.components["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("U1_Item") && schemas.contains_key("U1_Owner"), "nested models come along");
    assert!(schemas.contains_key("U1_Node"), "recursive models are copied once");
    assert!(!schemas.contains_key("U1_Unused"), "only what is used");
    let doc = json!({ "components": found.components });
    let mut all = Vec::new();
    for spec in &found.operations {
        collect_refs(spec.operation.as_ref().unwrap(), &mut all);
    }
    collect_refs(&doc, &mut all);
    assert!(all.iter().any(|r| r == "#/components/schemas/U1_Item"));
    for r in all {
        assert!(resolve(&doc, &r).is_some(), "dangling {r}");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn openapi_30_refs_path_level_parameters_and_binary_files() {
    let found = discover(&fixture("openapi-3.0.json"), "");
    let get = op(&found, "GET", "/v2/things/{id}");
    assert_eq!(param(get, "id").location, ParamLocation::Path);
    assert_eq!(param(get, "x-trace").location, ParamLocation::Header, "$ref parameter at path level");
    assert_eq!(param(get, "verbose").kind, ValueKind::Boolean);
    assert_eq!(get.summary.as_deref(), Some("getThing"));
    let put = op(&found, "PUT", "/v2/things/{id}");
    assert!(matches!(&put.body, BodySpec::Json { required: true, .. }), "$ref requestBody");
    let files = op(&found, "POST", "/v2/files");
    let BodySpec::Multipart { fields } = &files.body else { panic!() };
    assert!(fields.iter().any(|f| f.name == "docs" && f.file && f.required));
    let raw = op(&found, "POST", "/v2/raw");
    assert!(matches!(&raw.body, BodySpec::Raw { content_type } if content_type == "application/octet-stream"));
    assert!(found.components["parameters"]["Trace"].is_object());
}

#[test]
fn documents_that_are_not_openapi_are_refused_naming_the_upstream() {
    let allows = |_: &str| Ok(());
    let opts = DiscoveryOptions {
        upstream: "http://legacy".into(),
        allows: &allows,
        force_stream_apis: vec![],
        component_prefix: String::new(),
        limits: DiscoveryLimits::default(),
    };
    let err = parse_document(&json!({"hello": "world"}), &opts).unwrap_err().to_string();
    assert!(err.contains("http://legacy") && err.contains("openapi"), "{err}");
    assert!(parse_document(&json!({"openapi": "2.0", "paths": {}}), &opts).is_err());
}
