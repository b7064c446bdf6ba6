//! Comparing the upstream's answer with the local plugin's (pure functions).
//!
//! Status first; then, when both bodies are JSON, the values after unwrapping a FrameX
//! envelope on either side (`{"status","message","data",…}` → `data`) and leaving out
//! the `ignore` pointers (removed before and after unwrapping, so `/timestamp` and
//! `/updated_at` both work); other bodies byte for byte. A difference is reported at
//! its first JSON pointer (keys in sorted order, then array indexes).

use serde_json::Value;

/// One side of a comparison: the status and the body as the client would see them.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: &'a [u8],
}

/// Where two answers first differ, with both values (truncated to [`SHOWN`] chars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `(status)`, `(body)` for non-JSON bodies, else the JSON pointer (`""` = the
    /// whole value).
    pub pointer: String,
    /// The upstream's value there.
    pub upstream: String,
    /// The local plugin's value there.
    pub local: String,
}

/// Longest value shown in a [`Difference`], in characters.
pub const SHOWN: usize = 200;

/// Compares two answers: `None` when they match.
pub fn compare(upstream: Answer<'_>, local: Answer<'_>, ignore: &[String]) -> Option<Difference> {
    if upstream.status != local.status {
        return Some(Difference {
            pointer: "(status)".to_owned(),
            upstream: upstream.status.to_string(),
            local: local.status.to_string(),
        });
    }
    match (
        serde_json::from_slice::<Value>(upstream.body),
        serde_json::from_slice::<Value>(local.body),
    ) {
        (Ok(a), Ok(b)) => {
            let (a, b) = (normalize(a, ignore), normalize(b, ignore));
            first_difference(&a, &b, &mut String::new())
        }
        _ if upstream.body == local.body => None,
        _ => Some(Difference {
            pointer: "(body)".to_owned(),
            upstream: shown_bytes(upstream.body),
            local: shown_bytes(local.body),
        }),
    }
}

/// The value compared: ignored pointers removed, the envelope unwrapped, ignored
/// pointers removed again.
fn normalize(value: Value, ignore: &[String]) -> Value {
    let mut value = value;
    remove_pointers(&mut value, ignore);
    let mut value = unwrap_envelope(value);
    remove_pointers(&mut value, ignore);
    value
}

/// `data` of a FrameX envelope (an object with `status`, `message` and `data`), or
/// the value itself.
pub fn unwrap_envelope(value: Value) -> Value {
    match value {
        Value::Object(mut map)
            if map.get("status").is_some_and(Value::is_number)
                && map.get("message").is_some_and(Value::is_string)
                && map.contains_key("data") =>
        {
            map.remove("data").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Removes each pointer's target (an array item becomes `null`, so indexes stay).
fn remove_pointers(value: &mut Value, pointers: &[String]) {
    for pointer in pointers {
        let Some((parent, last)) = pointer.rsplit_once('/') else { continue };
        let last = last.replace("~1", "/").replace("~0", "~");
        match value.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.remove(&last);
            }
            Some(Value::Array(items)) => {
                if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    *item = Value::Null;
                }
            }
            _ => {}
        }
    }
}

/// The first pointer (under `at`) where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, at: &mut String) -> Option<Difference> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let segment = key.replace('~', "~0").replace('/', "~1");
                member_difference(&segment, x.get(key), y.get(key), at)
            })
        }
        (Value::Array(x), Value::Array(y)) => (0..x.len().max(y.len()))
            .find_map(|i| member_difference(&i.to_string(), x.get(i), y.get(i), at)),
        _ if a == b => None,
        _ => Some(difference(at, Some(a), Some(b))),
    }
}

/// The first difference at member `segment` below `at` (a member present on one side
/// only differs there).
fn member_difference(segment: &str, a: Option<&Value>, b: Option<&Value>, at: &mut String) -> Option<Difference> {
    let len = at.len();
    at.push('/');
    at.push_str(segment);
    let found = match (a, b) {
        (Some(a), Some(b)) => first_difference(a, b, at),
        (a, b) => Some(difference(at, a, b)),
    };
    at.truncate(len);
    found
}

/// The difference at `at`: both values shown (truncated), `(absent)` for a missing one.
fn difference(at: &str, a: Option<&Value>, b: Option<&Value>) -> Difference {
    Difference {
        pointer: at.to_owned(),
        upstream: a.map_or_else(|| "(absent)".to_owned(), shown_value),
        local: b.map_or_else(|| "(absent)".to_owned(), shown_value),
    }
}

/// A JSON value as text, at most [`SHOWN`] characters.
fn shown_value(value: &Value) -> String {
    truncate(value.to_string())
}

/// A body as (lossy) text, at most [`SHOWN`] characters.
fn shown_bytes(body: &[u8]) -> String {
    truncate(String::from_utf8_lossy(&body[..body.len().min(SHOWN * 4)]).into_owned())
}

fn truncate(text: String) -> String {
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(body: &[u8]) -> Answer<'_> {
        Answer { status: 200, body }
    }

    fn json_compare(upstream: Value, local: Value, ignore: &[&str]) -> Option<Difference> {
        let (u, l) = (upstream.to_string(), local.to_string());
        let ignore: Vec<String> = ignore.iter().map(|s| (*s).to_owned()).collect();
        compare(answer(u.as_bytes()), answer(l.as_bytes()), &ignore)
    }

    /// A FrameX envelope on either side matches the bare value it wraps.
    #[test]
    fn an_envelope_matches_the_bare_value() {
        let wrapped = json!({"status": 200, "message": "success", "timestamp": "t", "data": {"id": 1}});
        assert_eq!(json_compare(json!({"id": 1}), wrapped.clone(), &[]), None);
        assert_eq!(json_compare(wrapped, json!({"id": 1}), &[]), None);
    }

    /// The status is compared first, and named as `(status)`.
    #[test]
    fn a_different_status_is_reported_first() {
        let d = compare(Answer { status: 200, body: b"{}" }, Answer { status: 500, body: b"[]" }, &[]).unwrap();
        assert_eq!((d.pointer.as_str(), d.upstream.as_str(), d.local.as_str()), ("(status)", "200", "500"));
    }

    /// The first differing pointer is reported, with both values; absent keys say so.
    #[test]
    fn the_first_differing_pointer_is_reported() {
        let d = json_compare(json!({"a": [1, {"b/c": 2}], "z": 0}), json!({"a": [1, {"b/c": 3}], "z": 1}), &[]).unwrap();
        assert_eq!(d.pointer, "/a/1/b~1c");
        assert_eq!((d.upstream.as_str(), d.local.as_str()), ("2", "3"));
        let d = json_compare(json!({"a": 1}), json!({"a": 1, "b": true}), &[]).unwrap();
        assert_eq!((d.pointer.as_str(), d.upstream.as_str(), d.local.as_str()), ("/b", "(absent)", "true"));
        let d = json_compare(json!([1]), json!([1, 2]), &[]).unwrap();
        assert_eq!(d.pointer, "/1");
        let d = json_compare(json!(1), json!("1"), &[]).unwrap();
        assert_eq!(d.pointer, "");
    }

    /// Ignored pointers are left out, whether they point into the envelope or the data.
    #[test]
    fn ignored_pointers_are_left_out() {
        let local = json!({"status": 200, "message": "success", "timestamp": "x", "data": {"id": 1, "at": 5}});
        assert!(json_compare(json!({"id": 1, "at": 6}), local.clone(), &[]).is_some());
        assert_eq!(json_compare(json!({"id": 1, "at": 6}), local, &["/at"]), None);
        assert_eq!(json_compare(json!({"v": 1, "timestamp": "a"}), json!({"v": 1, "timestamp": "b"}), &["/timestamp"]), None);
        assert_eq!(json_compare(json!([1, 2]), json!([1, 3]), &["/1"]), None);
    }

    /// Bodies that are not JSON are compared byte for byte; long values are truncated.
    #[test]
    fn other_bodies_are_compared_byte_for_byte() {
        assert_eq!(compare(answer(b"hello"), answer(b"hello"), &[]), None);
        let d = compare(answer(b"hello"), answer(b"hellO"), &[]).unwrap();
        assert_eq!((d.pointer.as_str(), d.upstream.as_str(), d.local.as_str()), ("(body)", "hello", "hellO"));
        let long = "x".repeat(1000);
        let d = json_compare(json!(long), json!("y"), &[]).unwrap();
        assert_eq!(d.upstream.chars().count(), SHOWN + 1, "{SHOWN} characters and an ellipsis");
    }
}
