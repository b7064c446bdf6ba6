//! Reading a handler's argument struct into an API signature, as FastAPI reads a
//! FrameX plugin's: basic fields are query (or path) parameters, one struct field is
//! the JSON body.

use framex_actors::{ApiKey, ApiSpec, BodySpec, Param, ParamLocation, ValueKind};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{Map, Value};

use super::PluginError;
use crate::schema::value_kind;

/// Schema settings for the documents we publish: JSON Schema 2020-12 as OpenAPI
/// 3.1 uses it, with named models under `#/components/schemas`.
pub(super) fn generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    settings.into_generator()
}

/// Reads an API's parameters off its argument struct's schema, the way FastAPI
/// reads a FrameX plugin's signature.
pub(super) fn read<A: JsonSchema>(generator: &mut SchemaGenerator, key: ApiKey) -> Result<ApiSpec, PluginError> {
    let root = generator.root_schema_for::<A>();
    let root = root.as_value();
    let definitions = generator.definitions().clone();
    let required: Vec<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let path_template = match &key {
        ApiKey::Http { path, .. } => path.clone(),
        ApiKey::Function(_) => String::new(),
    };
    let mut spec = ApiSpec::new(key);
    let Some(properties) = root.get("properties").and_then(Value::as_object) else {
        return Ok(spec);
    };
    for (name, schema) in properties {
        let resolved = resolve_local(schema, &definitions);
        let kind = value_kind(resolved);
        let is_required = required.contains(&name.as_str());
        if kind == ValueKind::Object {
            if let BodySpec::Json { arg, .. } = &spec.body {
                return Err(PluginError::TwoBodies {
                    api: spec.key.to_string(),
                    first: arg.clone(),
                    second: name.clone(),
                });
            }
            spec.body = BodySpec::Json {
                arg: name.clone(),
                required: is_required,
                schema: schema.clone(),
            };
            continue;
        }
        let location = if path_template.contains(&format!("{{{name}}}")) {
            ParamLocation::Path
        } else {
            ParamLocation::Query
        };
        let items = (kind == ValueKind::Array).then(|| {
            resolved
                .get("items")
                .map(value_kind)
                .unwrap_or(ValueKind::Any)
        });
        spec.params.push(Param {
            name: name.clone(),
            location,
            kind,
            items,
            required: is_required || location == ParamLocation::Path,
            schema: schema.clone(),
            canonical: (location == ParamLocation::Path)
                .then(|| crate::schema::canonical_form(schema, &|s| resolve_local(s, &definitions)))
                .flatten(),
        });
    }
    Ok(spec)
}

fn resolve_local<'a>(schema: &'a Value, definitions: &'a Map<String, Value>) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| definitions.get(name))
        .unwrap_or(schema)
}
