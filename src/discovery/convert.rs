//! OpenAPI 3.0.x → 3.1 on the way in: our merged document is 3.1, so the schemas of
//! an upstream that speaks 3.0 are rewritten before anything is copied from it.
//!
//! Hand-written (no maintained Rust crate converts between the two): the three
//! schema keywords whose meaning changed between 3.0 and 3.1 (JSON Schema 2020-12):
//! - `nullable: true` → `null` added to `type` (or, without a `type`, the schema
//!   becomes `anyOf: [<schema>, {"type": "null"}]`), and `null` added to an `enum`;
//! - boolean `exclusiveMinimum`/`exclusiveMaximum` → the number itself (taken from
//!   `minimum`/`maximum`), `false` dropped;
//! - `example` is kept (still valid in 3.1, only deprecated).
//!
//! The walk visits every object of the document; the keywords are rewritten only
//! where their values have the 3.0 shapes (a boolean `nullable`, a boolean
//! `exclusiveMinimum`), so a property *named* `nullable` (whose value is a schema
//! object) is left alone. Depth is bounded by the JSON parser's own nesting limit.

use serde_json::{json, Map, Value};

/// Whether `doc` declares OpenAPI 3.0.x.
pub fn is_30(doc: &Value) -> bool {
    doc.get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("3.0"))
}

/// Rewrites every 3.0 schema keyword of `value` (a whole document or a part) in place.
pub fn to_31(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                to_31(child);
            }
            exclusive_bound(map, "exclusiveMinimum", "minimum");
            exclusive_bound(map, "exclusiveMaximum", "maximum");
            if let Some(Value::Bool(nullable)) = map.get("nullable") {
                let nullable = *nullable;
                map.remove("nullable");
                if nullable {
                    make_nullable(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_31),
        _ => {}
    }
}

/// `{"minimum": 5, "exclusiveMinimum": true}` → `{"exclusiveMinimum": 5}`.
fn exclusive_bound(map: &mut Map<String, Value>, exclusive: &str, bound: &str) {
    match map.get(exclusive) {
        Some(Value::Bool(true)) => match map.remove(bound) {
            Some(number @ Value::Number(_)) => {
                map.insert(exclusive.to_owned(), number);
            }
            Some(other) => {
                // Not a number: nothing to make exclusive; keep the bound as it was.
                map.insert(bound.to_owned(), other);
                map.remove(exclusive);
            }
            None => {
                map.remove(exclusive);
            }
        },
        Some(Value::Bool(false)) => {
            map.remove(exclusive);
        }
        _ => {}
    }
}

/// Lets `schema` (an object whose `nullable` was `true`) also accept `null`.
fn make_nullable(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    }
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            map.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) => {
            if !types.iter().any(|t| t == "null") {
                types.push(json!("null"));
            }
        }
        _ => {
            // No type (a `$ref`, `allOf`, …): null or the schema as it was.
            let rest = std::mem::take(map);
            map.insert("anyOf".into(), json!([Value::Object(rest), {"type": "null"}]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 3.0 keywords become their 3.1 forms; a property named `nullable` and
    /// `example` are kept.
    #[test]
    fn schemas_become_31() {
        let mut doc = json!({
            "a": {"type": "string", "nullable": true, "example": "x"},
            "b": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false},
            "c": {"allOf": [{"$ref": "#/components/schemas/T"}], "nullable": true},
            "d": {"type": "string", "enum": ["x"], "nullable": true},
            "e": {"type": "object", "properties": {"nullable": {"type": "boolean"}}, "nullable": false},
        });
        to_31(&mut doc);
        assert_eq!(doc["a"], json!({"type": ["string", "null"], "example": "x"}));
        assert_eq!(doc["b"], json!({"type": "integer", "exclusiveMinimum": 1, "maximum": 9}));
        assert_eq!(
            doc["c"],
            json!({"anyOf": [{"allOf": [{"$ref": "#/components/schemas/T"}]}, {"type": "null"}]})
        );
        assert_eq!(doc["d"], json!({"type": ["string", "null"], "enum": ["x", null]}));
        assert_eq!(doc["e"], json!({"type": "object", "properties": {"nullable": {"type": "boolean"}}}));
    }
}
