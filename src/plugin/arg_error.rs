//! A local handler's arguments that do not deserialize, told the way FastAPI (pydantic)
//! tells them: `loc` from where the value came (`["body", "id"]` for a field of the
//! JSON body, `["query", "n"]` for a query parameter), pydantic's `type` and `msg` for
//! the common cases, and the `input` that was given.

use framex_actors::ArgProblem;
use serde_json::Value;

/// The problem `error` (at `path` within `args`, the bound arguments by name) is.
/// An argument that holds an object is the JSON body (FrameX's `model`): what is
/// inside it is located in `body`; any other argument in `query`.
pub(super) fn problem(path: &serde_path_to_error::Path, error: &serde_json::Error, args: &Value) -> ArgProblem {
    let segments: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let in_body = segments
        .first()
        .is_some_and(|arg| args.get(arg).is_some_and(Value::is_object));
    let message = error.to_string();
    if let Some(field) = missing_field(&message) {
        // serde reports a missing field at its parent's path.
        let parent = lookup(args, &segments);
        let (location, name) = locate(in_body, &segments, Some(field));
        return ArgProblem::pydantic("missing", location, &name, "Field required", parent.clone());
    }
    let input = lookup(args, &segments).clone();
    let (kind, msg) = classify(&message, &input);
    let (location, name) = locate(in_body, &segments, None);
    ArgProblem::pydantic(kind, location, &name, msg.unwrap_or(&message), input)
}

/// Replaces the value at `path` with what pydantic's lax mode takes it for when `error`
/// says another type was expected there: the number or boolean a string spells (`"5"`
/// for an integer, `" 2.5"` for a number, `"yes"` for a boolean), the integer a whole
/// float is (`5.0`; JSON Schema's `integer` allows it too). Whether it did.
pub(super) fn coerce(args: &mut Value, path: &serde_path_to_error::Path, error: &serde_json::Error) -> bool {
    let message = error.to_string();
    let expected = message.rsplit("expected ").next().unwrap_or("");
    let segments: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let Some(slot) = lookup_mut(args, &segments) else { return false };
    let value = match &*slot {
        Value::String(text) => from_text(expected, text.trim()),
        Value::Number(n) if is_integer(expected) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15)
            .map(|f| Value::from(f as i64)),
        _ => None,
    };
    value.map(|value| *slot = value).is_some()
}

/// The number or boolean `text` spells, when `expected` names that type.
fn from_text(expected: &str, text: &str) -> Option<Value> {
    if is_integer(expected) {
        text.parse::<i64>().ok().map(Value::from)
    } else if expected.starts_with("f32") || expected.starts_with("f64") {
        text.parse::<f64>().ok().filter(|n| n.is_finite()).map(Value::from)
    } else if expected.starts_with("a boolean") {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Some(Value::Bool(true)),
            "false" | "0" | "no" | "off" | "f" | "n" => Some(Value::Bool(false)),
            _ => None,
        }
    } else {
        None
    }
}

fn lookup_mut<'a>(args: &'a mut Value, segments: &[String]) -> Option<&'a mut Value> {
    segments.iter().try_fold(args, |value, segment| match value {
        Value::Object(map) => map.get_mut(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(move |i| items.get_mut(i)),
        _ => None,
    })
}

fn is_integer(expected: &str) -> bool {
    ["i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize"]
        .iter()
        .any(|t| expected.starts_with(t))
}

/// `missing field `id`` → `id`.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Where the value is: `("body", "id")` for a field of the body (`model.id`), `("body",
/// "")` for the body itself, `("query", "n")` for an argument.
fn locate(in_body: bool, segments: &[String], field: Option<&str>) -> (&'static str, String) {
    let mut inner: Vec<&str> = segments.iter().map(String::as_str).collect();
    inner.extend(field);
    match in_body {
        true => ("body", inner[1..].join(".")),
        false => ("query", inner.join(".")),
    }
}

/// The value at `segments` within `args` (`null` when there is none).
fn lookup<'a>(args: &'a Value, segments: &[String]) -> &'a Value {
    segments.iter().try_fold(args, |value, segment| match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
    .unwrap_or(&Value::Null)
}

/// pydantic's `type` and `msg` for a serde type error, from what was expected and the
/// value given; `None` keeps serde's words.
fn classify(message: &str, input: &Value) -> (&'static str, Option<&'static str>) {
    let expected = message.rsplit("expected ").next().unwrap_or("");
    let string = input.is_string();
    let integer = is_integer(expected);
    match () {
        _ if integer && string => ("int_parsing", Some("Input should be a valid integer, unable to parse string as an integer")),
        _ if integer && input.is_f64() => ("int_from_float", Some("Input should be a valid integer, got a number with a fractional part")),
        _ if integer => ("int_type", Some("Input should be a valid integer")),
        _ if expected.starts_with("f32") || expected.starts_with("f64") => match string {
            true => ("float_parsing", Some("Input should be a valid number, unable to parse string as a number")),
            false => ("float_type", Some("Input should be a valid number")),
        },
        _ if expected.starts_with("a boolean") => match string {
            true => ("bool_parsing", Some("Input should be a valid boolean, unable to interpret input")),
            false => ("bool_type", Some("Input should be a valid boolean")),
        },
        _ if expected.starts_with("a string") => ("string_type", Some("Input should be a valid string")),
        _ if expected.starts_with("a sequence") => ("list_type", Some("Input should be a valid list")),
        _ if expected.starts_with("struct") || expected.starts_with("a map") => {
            ("model_attributes_type", Some("Input should be a valid dictionary or object to extract fields from"))
        }
        _ => ("value_error", None),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Model {
        id: i64,
        name: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Args {
        message: String,
        model: Model,
    }

    fn problem_of(args: Value) -> ArgProblem {
        let err = serde_path_to_error::deserialize::<_, Args>(&args).unwrap_err();
        problem(err.path(), err.inner(), &args)
    }

    /// A body field that does not parse: `["body", "id"]`, `int_parsing`, the input.
    #[test]
    fn body_field_of_the_wrong_type() {
        let p = problem_of(json!({"message": "m", "model": {"id": "x", "name": "n"}}));
        assert_eq!((p.kind, p.location.as_str(), p.name.as_str()), ("int_parsing", "body", "id"));
        assert_eq!(p.input, json!("x"));
        let p = problem_of(json!({"message": "m", "model": {"id": 1, "name": 5}}));
        assert_eq!((p.kind, p.name.as_str(), p.message.as_str()), ("string_type", "name", "Input should be a valid string"));
    }

    /// A missing body field: `["body", "id"]`, `missing`, the body as input.
    #[test]
    fn missing_body_field() {
        let p = problem_of(json!({"message": "m", "model": {"name": "n"}}));
        assert_eq!((p.kind, p.location.as_str(), p.name.as_str()), ("missing", "body", "id"));
        assert_eq!((p.message.as_str(), p.input.clone()), ("Field required", json!({"name": "n"})));
    }
}
