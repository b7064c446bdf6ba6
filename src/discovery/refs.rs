//! `$ref` resolution and renaming of an upstream's components.

use std::collections::{BTreeSet, VecDeque};

use serde_json::{Map, Value};

/// How many `$ref` hops are followed before giving up (guards against cycles).
const MAX_HOPS: usize = 32;

/// Resolves a local reference (`#/components/schemas/X`, with `~1`/`~0` escapes).
pub fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// Follows `$ref`s from `value` until a non-reference (or the hop limit); an
/// unresolvable reference leaves the reference object itself.
pub fn follow<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut current = value;
    for _ in 0..MAX_HOPS {
        match current.get("$ref").and_then(Value::as_str).and_then(|r| resolve(doc, r)) {
            Some(next) => current = next,
            None => return current,
        }
    }
    current
}

/// Renames `#/components/<section>/<name>` references with a prefix and collects the
/// components they need, transitively.
pub struct Renamer<'a> {
    doc: &'a Value,
    prefix: String,
    needed: VecDeque<(String, String)>,
    seen: BTreeSet<(String, String)>,
}

impl<'a> Renamer<'a> {
    pub fn new(doc: &'a Value, prefix: &str) -> Self {
        Renamer {
            doc,
            prefix: prefix.to_owned(),
            needed: VecDeque::new(),
            seen: BTreeSet::new(),
        }
    }

    /// A copy of `value` with its component references renamed (and noted).
    pub fn rewrite(&mut self, value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    let v = match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => Value::String(self.rename(r)),
                        _ => self.rewrite(v),
                    };
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.rewrite(v)).collect()),
            other => other.clone(),
        }
    }

    fn rename(&mut self, reference: &str) -> String {
        let Some(rest) = reference.strip_prefix("#/components/") else {
            return reference.to_owned();
        };
        let Some((section, name)) = rest.split_once('/') else {
            return reference.to_owned();
        };
        let name = unescape(name);
        let renamed = escape(&self.need(section, &name));
        format!("#/components/{section}/{renamed}")
    }

    /// Notes that component `section`/`name` (unescaped) is needed; its new name.
    fn need(&mut self, section: &str, name: &str) -> String {
        let key = (section.to_owned(), name.to_owned());
        if self.seen.insert(key.clone()) {
            self.needed.push_back(key);
        }
        format!("{}{name}", self.prefix)
    }

    /// Renames the scheme names of an operation's `security` requirements (a list of
    /// `{scheme name: [scopes]}`) in place, and notes the schemes as needed.
    pub fn rename_security(&mut self, operation: &mut Value) {
        let Some(requirements) = operation.get_mut("security").and_then(Value::as_array_mut) else {
            return;
        };
        for requirement in requirements {
            let Some(schemes) = requirement.as_object_mut() else { continue };
            let renamed: Map<String, Value> = std::mem::take(schemes)
                .into_iter()
                .map(|(name, scopes)| (self.need("securitySchemes", &name), scopes))
                .collect();
            *schemes = renamed;
        }
    }

    /// Copies every needed component (and those they need), renamed.
    pub fn finish(mut self) -> Map<String, Value> {
        let mut components = Map::new();
        while let Some((section, name)) = self.needed.pop_front() {
            let pointer = format!("/components/{}/{}", escape(&section), escape(&name));
            let Some(original) = self.doc.pointer(&pointer) else {
                continue;
            };
            let renamed = self.rewrite(original);
            let entry = components
                .entry(section)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(entry) = entry.as_object_mut() {
                entry.insert(format!("{}{name}", self.prefix), renamed);
            }
        }
        components
    }
}

/// A JSON-pointer token for `name` (`~` → `~0`, `/` → `~1`).
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// The name a JSON-pointer token stands for.
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}
