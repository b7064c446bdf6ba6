//! The merged OpenAPI document: local routes and proxied routes, one surface.
//!
//! Each route's spec carries its operation object and the components it refers to;
//! the document is assembled from the current route table and cached until the table
//! changes. Components are merged by name (discovery namespaces upstream ones, so
//! names from different sources do not collide).

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use framex_actors::{ApiKey, ApiSpec, BodySpec, RouteTable};
use serde_json::{json, Map, Value};

/// Builds the document for `table`.
pub fn document(table: &RouteTable) -> Value {
    let mut paths = Map::new();
    let mut components = Map::new();
    for route in table.routes() {
        let ApiKey::Http { method, path } = &route.spec.key else {
            continue;
        };
        let operation = route
            .spec
            .operation
            .as_deref()
            .cloned()
            .unwrap_or_else(|| operation_for(&route.spec, None, &[]));
        let item = paths
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        item[method.as_str().to_lowercase()] = operation;
        if let Some(extra) = &route.spec.components {
            merge_components(&mut components, extra);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "FrameX", "version": crate::VERSION },
        "paths": paths,
        "components": components,
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

/// An operation object for a spec, as FastAPI would publish it: its parameters with
/// their schemas, the JSON body, and the result schema when known.
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
    let content = if spec.streaming {
        json!({ "text/event-stream": { "schema": { "type": "string" } } })
    } else {
        json!({ "application/json": { "schema": result.unwrap_or_else(|| json!({})) } })
    };
    let mut op = json!({
        "tags": tags,
        "summary": spec.summary.clone().unwrap_or_else(|| spec.key.to_string()),
        "operationId": operation_id(&spec.key),
        "parameters": parameters,
        "responses": {
            "200": { "description": "Successful Response", "content": content },
            "422": { "description": "Validation Error" }
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
    /// The document of `table`, from cache when the table is the same snapshot.
    pub fn get(&self, table: &Arc<RouteTable>) -> Bytes {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((weak, bytes)) = cached.as_ref() {
            if weak.as_ptr() == Arc::as_ptr(table) && weak.strong_count() > 0 {
                return bytes.clone();
            }
        }
        let bytes = Bytes::from(document(table).to_string());
        *cached = Some((Arc::downgrade(table), bytes.clone()));
        bytes
    }
}
