//! One upstream operation → the engine's [`ApiSpec`]: its parameters (path-level ones
//! merged in), body (JSON, form, multipart with files, raw) and whether it streams.

use framex_actors::Method;
use framex_actors::{ApiKey, ApiSpec, BodySpec, FormField, Param, ParamLocation, ValueKind};
use serde_json::Value;

use super::{merged_parameters, refs, DiscoveryOptions};

/// Reads one operation's spec (its published object is
/// [`published_operation`](super::published_operation)).
pub(super) fn read(
    doc: &Value,
    path: &str,
    method: &str,
    item: &Value,
    op: &Value,
    opts: &DiscoveryOptions<'_>,
) -> Result<ApiSpec, String> {
    if !op.is_object() {
        return Err("the operation is not an object".to_owned());
    }
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).map_err(|e| e.to_string())?;
    let mut spec = ApiSpec::new(ApiKey::Http {
        method,
        path: path.to_owned(),
    });

    // Path-level parameters apply unless the operation redefines them.
    let raw_params = merged_parameters(doc, item, op);

    for raw in &raw_params {
        let p = refs::follow(doc, raw);
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| "a parameter has no name (or an unresolvable $ref)".to_owned())?;
        let location = match p.get("in").and_then(Value::as_str) {
            Some("path") => ParamLocation::Path,
            Some("query") => ParamLocation::Query,
            Some("header") => ParamLocation::Header,
            Some("cookie") => continue,
            other => return Err(format!("parameter '{name}' has location {other:?}")),
        };
        let schema = p.get("schema").cloned().unwrap_or(Value::Null);
        let resolved = refs::follow(doc, &schema);
        let kind = kind_of(doc, resolved);
        let items = (kind == ValueKind::Array).then(|| {
            resolved
                .get("items")
                .map(|i| kind_of(doc, refs::follow(doc, i)))
                .unwrap_or(ValueKind::Any)
        });
        spec.params.push(Param {
            name: name.to_owned(),
            location,
            kind,
            items,
            required: location == ParamLocation::Path
                || p.get("required").and_then(Value::as_bool).unwrap_or(false),
            canonical: (location == ParamLocation::Path)
                .then(|| crate::schema::canonical_form(&schema, &|s| refs::follow(doc, s)))
                .flatten(),
            schema,
        });
    }

    if let Some(body) = op.get("requestBody") {
        spec.body = request_body(doc, refs::follow(doc, body))?;
    }

    let force = opts.force_stream_apis.iter().any(|p| p == path);
    spec.streaming = force || declares_event_stream(doc, op);
    spec.summary = op
        .get("summary")
        .or_else(|| op.get("operationId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(spec)
}

/// The kind of a schema, looking through `$ref`s inside `anyOf`/`oneOf` branches.
fn kind_of(doc: &Value, schema: &Value) -> ValueKind {
    let kind = crate::schema::value_kind(schema);
    if kind != ValueKind::Any {
        return kind;
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            let kinds: Vec<ValueKind> = branches
                .iter()
                .map(|b| refs::follow(doc, b))
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .map(crate::schema::value_kind)
                .collect();
            if let [one] = kinds.as_slice() {
                return one.clone();
            }
        }
    }
    kind
}

fn request_body(doc: &Value, body: &Value) -> Result<BodySpec, String> {
    let required = body.get("required").and_then(Value::as_bool).unwrap_or(false);
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return Ok(BodySpec::None);
    };
    let media = |prefix: &str| {
        content
            .iter()
            .find(|(k, _)| k.split(';').next().unwrap_or("").trim() == prefix)
            .map(|(_, v)| v)
    };
    if let Some(json) = media("application/json") {
        return Ok(BodySpec::Json {
            arg: "model".to_owned(),
            required,
            schema: json.get("schema").cloned().unwrap_or(Value::Null),
        });
    }
    if let Some(form) = media("multipart/form-data") {
        return Ok(BodySpec::Multipart {
            fields: form_fields(doc, form.get("schema").unwrap_or(&Value::Null))?,
        });
    }
    if let Some(form) = media("application/x-www-form-urlencoded") {
        return Ok(BodySpec::Form {
            fields: form_fields(doc, form.get("schema").unwrap_or(&Value::Null))?,
        });
    }
    Ok(content
        .keys()
        .next()
        .map_or(BodySpec::None, |ct| BodySpec::Raw {
            content_type: ct.clone(),
        }))
}

fn form_fields(doc: &Value, schema: &Value) -> Result<Vec<FormField>, String> {
    let schema = refs::follow(doc, schema);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| "a form body without properties".to_owned())?;
    Ok(properties
        .iter()
        .map(|(name, prop)| FormField {
            name: name.clone(),
            file: is_file(doc, prop, 0),
            required: required.contains(&name.as_str()),
        })
        .collect())
}

/// Whether a schema describes a file (or a list of files, or an optional file).
fn is_file(doc: &Value, schema: &Value, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    let schema = refs::follow(doc, schema);
    if schema.get("format").and_then(Value::as_str) == Some("binary")
        || schema
            .get("contentMediaType")
            .and_then(Value::as_str)
            .is_some_and(|m| m == "application/octet-stream")
    {
        return true;
    }
    if let Some(items) = schema.get("items") {
        if is_file(doc, items, depth + 1) {
            return true;
        }
    }
    ["anyOf", "oneOf"].iter().any(|c| {
        schema
            .get(*c)
            .and_then(Value::as_array)
            .is_some_and(|bs| bs.iter().any(|b| is_file(doc, b, depth + 1)))
    })
}

fn declares_event_stream(doc: &Value, op: &Value) -> bool {
    let Some(responses) = op.get("responses").and_then(Value::as_object) else {
        return false;
    };
    responses
        .iter()
        .filter(|(code, _)| code.starts_with('2'))
        .any(|(_, response)| {
            refs::follow(doc, response)
                .get("content")
                .and_then(Value::as_object)
                .is_some_and(|c| c.keys().any(|k| k.starts_with("text/event-stream")))
        })
}
