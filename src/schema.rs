//! What the framex crate reads off JSON schemas (the engine knows none): the basic
//! kind of a parameter.

use framex_actors::ValueKind;
use serde_json::Value;

/// Reads the kind from a JSON schema, looking through `anyOf`/`oneOf` with a
/// `{"type": "null"}` branch (FastAPI's way to write `Optional[T]`) and through
/// 3.1 type arrays (`["string", "null"]`). A `$ref` is an object.
pub fn value_kind(schema: &Value) -> ValueKind {
    if schema.get("$ref").is_some() {
        return ValueKind::Object;
    }
    match schema.get("type") {
        Some(Value::String(t)) => return from_type_name(t),
        Some(Value::Array(types)) => {
            let named: Vec<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            if let [one] = named.as_slice() {
                return from_type_name(one);
            }
            return ValueKind::Any;
        }
        _ => {}
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = schema.get(combinator) {
            let kinds: Vec<ValueKind> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .map(value_kind)
                .collect();
            return match kinds.as_slice() {
                [one] => one.clone(),
                _ => ValueKind::Any,
            };
        }
    }
    if schema.get("properties").is_some() {
        return ValueKind::Object;
    }
    ValueKind::Any
}

fn from_type_name(name: &str) -> ValueKind {
    match name {
        "string" => ValueKind::String,
        "integer" => ValueKind::Integer,
        "number" => ValueKind::Number,
        "boolean" => ValueKind::Boolean,
        "array" => ValueKind::Array,
        "object" => ValueKind::Object,
        _ => ValueKind::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn optional_schemas_read_their_inner_type() {
        let optional = json!({"anyOf": [{"type": "integer"}, {"type": "null"}]});
        assert_eq!(value_kind(&optional), ValueKind::Integer);
        assert_eq!(
            value_kind(&json!({"type": ["boolean", "null"]})),
            ValueKind::Boolean
        );
        assert_eq!(
            value_kind(&json!({"$ref": "#/components/schemas/X"})),
            ValueKind::Object
        );
    }
}
