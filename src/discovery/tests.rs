use framex_actors::{ApiKey, BodySpec, Method, Param, ParamLocation, ValueKind};
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

fn parse_with(doc: &Value, limits: DiscoveryLimits) -> Result<Discovered, DiscoveryError> {
    let allows = |_: &str| Ok(());
    let opts = DiscoveryOptions {
        upstream: "http://hostile".into(),
        allows: &allows,
        force_stream_apis: vec![],
        component_prefix: "U1_".into(),
        limits,
    };
    parse_document(doc, &opts)
}

/// A document whose one large path item is `$ref`'d from `refs` paths (attack 6).
fn fan_out(refs: usize, item_bytes: usize) -> Value {
    let mut paths = Map::new();
    paths.insert(
        "/big".into(),
        json!({"get": {"summary": "x".repeat(item_bytes), "responses": {"200": {"description": "ok"}}}}),
    );
    for i in 0..refs {
        paths.insert(format!("/p{i}"), json!({"$ref": "#/paths/~1big"}));
    }
    json!({"openapi": "3.1.0", "paths": paths})
}

/// The operations of a path item that many paths reference are one shared object.
#[test]
fn referenced_path_items_are_shared_not_copied() {
    let found = parse_with(&fan_out(100, 1000), DiscoveryLimits::default()).unwrap();
    assert_eq!(found.operations.len(), 101);
    let first = found.operations[0].operation.clone().unwrap();
    for spec in &found.operations {
        assert!(Arc::ptr_eq(&first, spec.operation.as_ref().unwrap()), "{} has its own copy", spec.key);
    }
}

/// Attack 6: what the fan-out would publish is counted per path, and past
/// max_published the document is refused, naming the upstream, limit and key.
#[test]
fn fan_out_past_the_published_bound_is_refused() {
    let limits = DiscoveryLimits { max_published: 1024 * 1024, ..DiscoveryLimits::default() };
    assert!(parse_with(&fan_out(500, 1000), limits).is_ok(), "~0.5 MB published fits");
    let err = parse_with(&fan_out(500, 10_000), limits).unwrap_err();
    assert!(matches!(err, DiscoveryError::TooLarge { limit: 1_048_576, .. }));
    let text = err.to_string();
    assert!(text.contains("http://hostile") && text.contains("plugins.proxy.max_document_size"), "{text}");
}

/// 10,000 operations are read; 10,001 are refused.
#[test]
fn more_than_max_operations_is_refused() {
    let doc = |n: usize| {
        let paths: Map<String, Value> = (0..n)
            .map(|i| (format!("/o{i}"), json!({"get": {"responses": {}}})))
            .collect();
        json!({"openapi": "3.0.3", "paths": paths})
    };
    assert_eq!(parse_with(&doc(MAX_OPERATIONS), DiscoveryLimits::default()).unwrap().operations.len(), MAX_OPERATIONS);
    let err = parse_with(&doc(MAX_OPERATIONS + 1), DiscoveryLimits::default()).unwrap_err();
    assert!(matches!(err, DiscoveryError::TooManyOperations { limit: MAX_OPERATIONS, .. }), "{err}");
}

mod generated {
    use proptest::prelude::*;

    use super::*;

    /// JSON shapes that look like OpenAPI: paths whose items are operations, path
    /// `$ref`s (to other paths, to themselves, to nothing) or random JSON, and
    /// components whose schemas reference each other (cycles included).
    fn document() -> impl Strategy<Value = Value> {
        let reference = (0usize..6, 0usize..3).prop_map(|(i, kind)| match kind {
            0 => json!({"$ref": format!("#/paths/~1p{i}")}),
            1 => json!({"$ref": format!("#/components/schemas/S{i}")}),
            _ => json!({"$ref": format!("#/nowhere/{i}")}),
        });
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z$/#{}~]{0,12}".prop_map(Value::String),
            reference.clone(),
        ];
        let any_json = leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("get".to_owned()),
                        Just("post".to_owned()),
                        Just("parameters".to_owned()),
                        Just("requestBody".to_owned()),
                        Just("schema".to_owned()),
                        Just("$ref".to_owned()),
                        Just("in".to_owned()),
                        Just("name".to_owned()),
                        "[a-z]{1,5}",
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let item = prop_oneof![
            reference,
            any_json.clone(),
            any_json.clone().prop_map(|op| json!({"get": op.clone(), "post": {"requestBody": op}})),
        ];
        (
            prop::collection::vec(item, 0..8),
            prop::collection::vec(any_json, 0..6),
        )
            .prop_map(|(items, schemas)| {
                let paths: Map<String, Value> =
                    items.into_iter().enumerate().map(|(i, v)| (format!("/p{i}"), v)).collect();
                let schemas: Map<String, Value> =
                    schemas.into_iter().enumerate().map(|(i, v)| (format!("S{i}"), v)).collect();
                json!({"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}})
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Generated documents never panic discovery, and what is kept stays within
        /// the bounds: at most max_operations operations, and the published
        /// operations (once per path) with their components within max_published.
        #[test]
        fn discovery_never_panics_and_stays_bounded(doc in document(), max_published in 64usize..20_000) {
            let limits = DiscoveryLimits { max_operations: 10, max_published };
            if let Ok(found) = parse_with(&doc, limits) {
                prop_assert!(found.operations.len() <= 10);
                let published: usize = found
                    .operations
                    .iter()
                    .map(|s| serde_json::to_vec(s.operation.as_deref().unwrap()).unwrap().len())
                    .sum::<usize>()
                    + found.components.values().map(|c| serde_json::to_vec(c).unwrap().len()).sum::<usize>();
                prop_assert!(published <= max_published, "{} > {}", published, max_published);
            }
        }
    }
}

/// A 3.0.3 document: its schemas arrive in 3.1 form, and every component its
/// operations name (responses, headers, examples, security schemes, tags) comes
/// along, renamed; security requirements name the renamed schemes, and operations
/// without their own requirements get the document's.
#[test]
fn openapi_30_components_security_and_tags_come_along_in_31_form() {
    let found = discover(&fixture("openapi-3.0.json"), "U2_");
    let c = &found.components;
    assert_eq!(c["schemas"]["U2_Thing"]["properties"]["name"]["type"], json!(["string", "null"]));
    let size = &c["schemas"]["U2_Thing"]["properties"]["size"];
    assert_eq!(size, &json!({"type": ["number", "null"], "exclusiveMaximum": 10}));
    assert!(c["responses"]["U2_ThingFound"]["headers"]["X-Rate"]["$ref"] == "#/components/headers/U2_Rate");
    assert!(c["headers"]["U2_Rate"].is_object() && c["examples"]["U2_OneThing"].is_object());
    let schemes = c["securitySchemes"].as_object().unwrap();
    let mut names: Vec<&str> = schemes.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["U2_ApiKey", "U2_Bearer"], "the schemes used, renamed; not the unused one");
    assert_eq!(c[TAGS_SECTION]["things"]["description"], "Things, kept by the older service.");
    assert!(c[TAGS_SECTION].get("unused").is_none());

    let published = |method: &str, path: &str| op(&found, method, path).operation.clone().unwrap();
    let get = published("GET", "/v2/things/{id}");
    assert_eq!(get["security"], json!([{"U2_ApiKey": []}]), "the document's requirement, renamed");
    let limit = get["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"], json!({"type": "integer", "exclusiveMinimum": 0, "example": 5}));
    assert_eq!(published("PUT", "/v2/things/{id}")["security"], json!([{"U2_Bearer": []}, {}]));
    assert_eq!(published("POST", "/v2/files")["security"], json!([]), "an explicit 'no security' stays");
}
