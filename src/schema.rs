//! What the framex crate reads off JSON schemas (the engine knows none): the basic
//! kind of a parameter, and the canonical spelling a typed path parameter must have.

use framex_actors::{CanonicalForm, ValueKind};
use serde_json::Value;

/// How deep [`canonical_form`] looks through `$ref`s and combinators.
const MAX_DEPTH: usize = 8;

/// The canonical form of a path parameter whose schema FastAPI coerces: `integer`,
/// `number`, `boolean`, strings of `format` `uuid` (and `uuid1`…`uuid5`), `date`,
/// `date-time`, `enum` / `const` values, also as the one non-null branch of an
/// `anyOf` / `oneOf` (FastAPI's optionals) or the one branch of an `allOf`. `None`
/// for anything else (plain strings: any spelling). `follow` resolves `$ref`s.
pub fn canonical_form<'a>(schema: &'a Value, follow: &dyn Fn(&'a Value) -> &'a Value) -> Option<CanonicalForm> {
    canonical_at(schema, follow, 0)
}

fn canonical_at<'a>(schema: &'a Value, follow: &dyn Fn(&'a Value) -> &'a Value, depth: usize) -> Option<CanonicalForm> {
    if depth > MAX_DEPTH {
        return None;
    }
    let schema = follow(schema);
    let listed = match (schema.get("enum"), schema.get("const")) {
        (Some(Value::Array(values)), _) => Some(values.iter().collect::<Vec<_>>()),
        (None, Some(value)) => Some(vec![value]),
        _ => None,
    };
    if let Some(values) = listed {
        let texts: Vec<String> = values.into_iter().filter_map(value_text).collect();
        return Some(CanonicalForm::OneOf(texts.into()));
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = schema.get(combinator) {
            let typed: Vec<&Value> = branches
                .iter()
                .filter(|b| follow(b).get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            return match typed.as_slice() {
                [one] => canonical_at(one, follow, depth + 1),
                _ => None,
            };
        }
    }
    let type_name = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => match types.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect::<Vec<_>>()[..] {
            [one] => one,
            _ => return None,
        },
        _ => return None,
    };
    match type_name {
        "integer" => Some(CanonicalForm::Integer),
        "number" => Some(CanonicalForm::Number),
        "boolean" => Some(CanonicalForm::Boolean),
        "string" => match schema.get("format").and_then(Value::as_str)? {
            "uuid" | "uuid1" | "uuid3" | "uuid4" | "uuid5" => Some(CanonicalForm::Uuid),
            "date" => Some(CanonicalForm::Date),
            "date-time" => Some(CanonicalForm::DateTime),
            _ => None,
        },
        _ => None,
    }
}

/// How an `enum` / `const` value is spelled in a path (`null` is never one).
fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => f.to_string(),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

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
    #[test]
    fn typed_schemas_have_a_canonical_form() {
        let same = |v: &Value| -> Option<CanonicalForm> { canonical_form(v, &|s| s) };
        assert_eq!(same(&json!({"type": "integer"})), Some(CanonicalForm::Integer));
        assert_eq!(
            same(&json!({"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]})),
            Some(CanonicalForm::Uuid)
        );
        assert_eq!(same(&json!({"type": ["boolean", "null"]})), Some(CanonicalForm::Boolean));
        assert_eq!(same(&json!({"type": "string", "format": "date-time"})), Some(CanonicalForm::DateTime));
        assert_eq!(
            same(&json!({"type": "integer", "enum": [1, 2]})),
            Some(CanonicalForm::OneOf(vec!["1".to_owned(), "2".to_owned()].into()))
        );
        assert_eq!(same(&json!({"type": "string"})), None);
        assert_eq!(same(&json!({"type": "string", "format": "email"})), None);
        let doc = json!({"C": {"type": "string", "enum": ["red"], "title": "C"}});
        let reffed = json!({"$ref": "C"});
        let resolve = |v: &Value| -> Option<CanonicalForm> {
            canonical_form(v, &|s| s.get("$ref").and_then(Value::as_str).and_then(|r| doc.get(r)).unwrap_or(s))
        };
        assert_eq!(resolve(&reffed), Some(CanonicalForm::OneOf(vec!["red".to_owned()].into())));
    }

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
