//! The merged OpenAPI document: local routes and proxied routes, one surface.
//!
//! Each route's spec carries its operation object and the components it refers to;
//! the document is assembled from the current route table and cached until the table
//! changes. Components are merged by name (discovery namespaces upstream ones, so
//! names from different sources do not collide); the tags upstreams describe are
//! lifted from [`TAGS_SECTION`] into the top-level `tags`.
//!
//! Our own `[auth]` rules appear as the `apiKey` scheme [`AUTH_SCHEME`] (FrameX's raw
//! `Authorization: <key>` header): an operation whose path a rule covers requires it,
//! so Swagger UI's "Authorize" sends the key.

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use framex_actors::{ApiKey, ApiSpec, BodySpec, RouteTable};
use serde_json::{json, Map, Value};

use crate::config::AuthRules;
use crate::discovery::TAGS_SECTION;

/// The security scheme of our `[auth]` rules.
pub const AUTH_SCHEME: &str = "FrameXKey";

/// Builds the document for `table`; operations covered by `auth` rules require
/// [`AUTH_SCHEME`].
pub fn document(table: &RouteTable, auth: &AuthRules) -> Value {
    let mut paths = Map::new();
    let mut components = Map::new();
    let mut ids = OperationIds::default();
    merge_components(&mut components, &framex_components());
    for route in table.routes() {
        let ApiKey::Http { method, path } = &route.spec.key else {
            continue;
        };
        let mut operation = route
            .spec
            .operation
            .as_deref()
            .cloned()
            .unwrap_or_else(|| operation_for(&route.spec, None, &[]));
        if auth.keys_for(path).is_some() {
            require_our_key(&mut operation);
        }
        ids.make_unique(&mut operation);
        let item = paths
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        item[method.as_str().to_lowercase()] = operation;
        if let Some(extra) = &route.spec.components {
            merge_components(&mut components, extra);
        }
    }
    ids.log_renamed();
    if auth.is_empty() {
        // No `[auth]` rule: no operation requires our key, so the scheme is not offered.
        if let Some(schemes) = components.get_mut("securitySchemes").and_then(Value::as_object_mut) {
            schemes.remove(AUTH_SCHEME);
        }
    }
    let tags = document_tags(table, components.remove(TAGS_SECTION));
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "FrameX", "version": crate::VERSION },
        "paths": paths,
        "components": components,
    });
    if !tags.is_empty() {
        doc["tags"] = Value::Array(tags);
    }
    doc
}

/// The `operationId`s of a document being built: OpenAPI wants them unique, and two
/// upstreams (or an upstream and a local plugin) may use the same one.
#[derive(Default)]
struct OperationIds {
    taken: std::collections::HashSet<String>,
    renamed: Vec<(String, String)>,
}

impl OperationIds {
    /// Gives `operation` an `operationId` no earlier operation has: a repeated one gets
    /// the first free `_2`, `_3`… suffix (routes come sorted, so the same table always
    /// gets the same names).
    fn make_unique(&mut self, operation: &mut Value) {
        let Some(id) = operation.get("operationId").and_then(Value::as_str) else { return };
        if self.taken.insert(id.to_owned()) {
            return;
        }
        let unique = (2..)
            .map(|n| format!("{id}_{n}"))
            .find(|candidate| !self.taken.contains(candidate))
            .unwrap_or_default();
        self.taken.insert(unique.clone());
        self.renamed.push((id.to_owned(), unique.clone()));
        operation["operationId"] = Value::String(unique);
    }

    /// One log line for the document, naming every renamed id.
    fn log_renamed(&self) {
        if self.renamed.is_empty() {
            return;
        }
        let list: Vec<String> = self.renamed.iter().map(|(from, to)| format!("{from} → {to}")).collect();
        log::warn!(
            "openapi: operationIds used by more than one operation renamed in the merged document: {}",
            framex_actors::Escaped(&list.join(", "))
        );
    }
}

/// The document's tag objects: the ones upstreams describe, except where a local
/// plugin serves under a tag of the same name — then the plugin's own description (its
/// routes are what the tag groups on the docs page now).
fn document_tags(table: &RouteTable, described: Option<Value>) -> Vec<Value> {
    let mut tags = match described {
        Some(Value::Object(tags)) => tags,
        _ => Map::new(),
    };
    for route in table.routes() {
        let framex_actors::Target::Local { plugin, .. } = &route.target else { continue };
        let name = &plugin.meta.name;
        let ours = tags.get(name).and_then(|t| t.get("x-framex-local")).is_some();
        if tags.contains_key(name) && !ours {
            let mut tag = json!({ "name": name, "x-framex-local": true });
            if !plugin.meta.description.is_empty() {
                tag["description"] = json!(plugin.meta.description);
            }
            tags.insert(name.clone(), tag);
        }
    }
    tags.into_iter()
        .map(|(_, mut tag)| {
            if let Some(tag) = tag.as_object_mut() {
                tag.remove("x-framex-local");
            }
            tag
        })
        .collect()
}

/// Makes `operation` require [`AUTH_SCHEME`] as well as whatever it required (an
/// upstream's own scheme, in a header other than ours, still has to be sent), and
/// documents our 401 when it does not document one.
fn require_our_key(operation: &mut Value) {
    let Some(op) = operation.as_object_mut() else { return };
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        responses.entry("401").or_insert_with(|| error_response("Invalid API Key (an `[auth]` rule covers the path)"));
    }
    let ours = json!({ AUTH_SCHEME: [] });
    let requirements = match op.get_mut("security").and_then(Value::as_array_mut) {
        Some(requirements) if !requirements.is_empty() => requirements,
        _ => {
            op.insert("security".into(), json!([ours]));
            return;
        }
    };
    for requirement in requirements {
        if let Some(schemes) = requirement.as_object_mut() {
            schemes.insert(AUTH_SCHEME.to_owned(), json!([]));
        }
    }
}

/// What every document has: FrameX's error envelope and the `[auth]` key scheme.
fn framex_components() -> Map<String, Value> {
    let components = json!({
        "schemas": {
            "FrameXError": {
                "title": "FrameXError",
                "description": "FrameX's error envelope; `data` carries FastAPI's `detail` on 422.",
                "type": "object",
                "properties": {
                    "status": { "type": "integer" },
                    "message": { "type": "string" },
                    "timestamp": { "type": "string" },
                    "data": {}
                },
                "required": ["status", "message", "timestamp"]
            },
            "FrameXEvent": sse_event()
        },
        "securitySchemes": {
            AUTH_SCHEME: {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "A key of the `[auth]` rule covering the path, sent as it is (no scheme word)."
            }
        }
    });
    match components {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// One of FrameX's server-sent events, as the fields of the event (`event`, `data`;
/// the reading OpenAPI 3.1 tools such as schemathesis give `schema` under
/// `text/event-stream`, and 3.2's `itemSchema`): `data` is JSON text, whose shape the
/// event type fixes. A plugin may emit other types (`debug`), with any JSON.
fn sse_event() -> Value {
    let event = |name: &str, data: Value| {
        json!({
            "properties": {
                "event": { "const": name },
                "data": { "contentMediaType": "application/json", "contentSchema": data }
            }
        })
    };
    let known = ["message_chunk", "finish", "error"];
    json!({
        "title": "FrameXEvent",
        "description": "One server-sent event: `message_chunk`s, then `finish`, or an `error` after the stream started.",
        "type": "object",
        "properties": {
            "event": { "type": "string" },
            "data": { "type": "string", "contentMediaType": "application/json" }
        },
        "required": ["event", "data"],
        "oneOf": [
            event("message_chunk", json!({
                "type": "object",
                "properties": { "content": { "type": "string" } },
                "required": ["content"]
            })),
            event("finish", json!({ "type": "object", "maxProperties": 0 })),
            event("error", json!({
                "type": "object",
                "properties": { "status": { "type": "integer" }, "message": { "type": "string" } },
                "required": ["status", "message"]
            })),
            { "properties": { "event": { "not": { "enum": known } } } }
        ]
    })
}

/// FrameX's success envelope around `data`.
fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "status": { "type": "integer", "const": 200 },
            "message": { "type": "string" },
            "timestamp": { "type": "string" },
            "data": data
        },
        "required": ["status", "message", "timestamp", "data"]
    })
}

/// Merges `from` (a `components` object) into `into`, section by section; the first
/// definition of a name wins.
pub fn merge_components(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (section, entries) in from {
        let Some(entries) = entries.as_object() else {
            continue;
        };
        let target = into
            .entry(section.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(target) = target.as_object_mut() {
            for (name, value) in entries {
                target.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
    }
}

/// An operation object for a local spec, as it answers: its parameters with their
/// schemas, the JSON body, FrameX's envelope with `data` of the result schema (when
/// known), or for a stream `text/event-stream` of FrameX's events; errors (401, 404,
/// 422, 500) as FrameX's error envelope.
pub fn operation_for(spec: &ApiSpec, result: Option<Value>, tags: &[&str]) -> Value {
    let parameters: Vec<Value> = spec
        .params
        .iter()
        .map(|p| {
            let schema = if p.schema.is_null() {
                json!({ "type": p.kind.type_name() })
            } else {
                p.schema.clone()
            };
            json!({ "name": p.name, "in": p.location, "required": p.required, "schema": schema })
        })
        .collect();
    let (description, content) = if spec.streaming {
        (
            "FrameX's server-sent events: `message_chunk` (`{\"content\": …}`) events, then \
             `finish` (`{}`), or an `error` event (`{\"status\": …, \"message\": …}`)",
            json!({ "text/event-stream": { "schema": { "$ref": "#/components/schemas/FrameXEvent" } } }),
        )
    } else {
        (
            "Successful Response (FrameX's envelope)",
            json!({ "application/json": { "schema": envelope(result.unwrap_or_else(|| json!({}))) } }),
        )
    };
    let error = error_response;
    let mut op = json!({
        "tags": tags,
        "summary": spec.summary.clone().unwrap_or_else(|| spec.key.to_string()),
        "operationId": operation_id(&spec.key),
        "parameters": parameters,
        "responses": {
            "200": { "description": description, "content": content },
            "401": error("Invalid API Key (an `[auth]` rule covers the path)"),
            "404": error("Not Found"),
            "422": error("Validation Error"),
            "500": error("Internal Server Error")
        }
    });
    if let BodySpec::Json { schema, required, .. } = &spec.body {
        op["requestBody"] = json!({
            "required": required,
            "content": { "application/json": { "schema": schema } }
        });
    }
    op
}

/// A response of FrameX's error envelope.
fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/FrameXError" } } }
    })
}

fn operation_id(key: &ApiKey) -> String {
    key.to_string()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The serialized document for the latest table, rebuilt only when it changed.
#[derive(Debug, Default)]
pub struct DocumentCache {
    cached: Mutex<Option<(Weak<RouteTable>, Bytes)>>,
}

impl DocumentCache {
    /// The document of `table` (with `auth`'s rules, which do not change while the
    /// server runs), from cache when the table is the same snapshot.
    pub fn get(&self, table: &Arc<RouteTable>, auth: &AuthRules) -> Bytes {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((weak, bytes)) = cached.as_ref() {
            if weak.as_ptr() == Arc::as_ptr(table) && weak.strong_count() > 0 {
                return bytes.clone();
            }
        }
        let bytes = Bytes::from(document(table, auth).to_string());
        *cached = Some((Arc::downgrade(table), bytes.clone()));
        bytes
    }
}
