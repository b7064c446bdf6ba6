//! Upstream OpenAPI documents → engine route specs.
//!
//! Pure functions, no network: the proxy fetches a document and hands it here. Works
//! with FastAPI's OpenAPI 3.1 (optionals as `anyOf` with `null`, nested `$ref`s,
//! `contentMediaType` files) and with 3.0 (`nullable`, `format: binary` files).
//!
//! Every path × method is one operation. Its published form (for our merged document)
//! is the upstream's operation with path-level parameters merged in and every
//! `#/components/...` reference renamed with the upstream's prefix, so that components
//! of several upstreams and of local plugins never collide.
//!
//! A document is hostile input and reading it is bounded ([`DiscoveryLimits`]): at
//! most [`MAX_OPERATIONS`] operations, and what it would add to our merged document
//! (each operation counted once per path that publishes it, plus its components)
//! at most `max_published` bytes. The operation objects of a path item that many
//! paths `$ref` are built once and shared, never copied per path.

mod convert;
mod operation;
mod refs;
mod template;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use framex_actors::ApiSpec;
use serde_json::{Map, Value};

pub use refs::resolve;

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

/// Most operations (path × method) read from one upstream's document.
pub const MAX_OPERATIONS: usize = 10_000;

/// Default of `max_published`: the default `plugins.proxy.max_document_size`.
pub const DEFAULT_MAX_PUBLISHED: usize = 16 * 1024 * 1024;

/// The bounds one document is read within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryLimits {
    /// Most operations (path × method), skipped ones included.
    pub max_operations: usize,
    /// Most bytes the kept operations (once per path) and their components would add
    /// to the merged document, serialized (`plugins.proxy.max_document_size`).
    pub max_published: usize,
}

impl Default for DiscoveryLimits {
    fn default() -> Self {
        DiscoveryLimits {
            max_operations: MAX_OPERATIONS,
            max_published: DEFAULT_MAX_PUBLISHED,
        }
    }
}

/// Why a document could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The document is not OpenAPI 3.x.
    #[error("{upstream} did not send an OpenAPI 3 document: {reason}")]
    NotOpenApi {
        /// The upstream's base URL.
        upstream: String,
        /// What is missing.
        reason: String,
    },
    /// The document has more operations than [`DiscoveryLimits::max_operations`].
    #[error("{upstream}'s document refused: more than {limit} operations")]
    TooManyOperations {
        /// The upstream's base URL.
        upstream: String,
        /// The limit.
        limit: usize,
    },
    /// Its operations (once per path) and components would add more than
    /// [`DiscoveryLimits::max_published`] bytes to the merged document.
    #[error(
        "{upstream}'s document refused: its operations would publish more than {limit} bytes \
         (plugins.proxy.max_document_size)"
    )]
    TooLarge {
        /// The upstream's base URL.
        upstream: String,
        /// The limit.
        limit: usize,
    },
}

/// How to read one upstream's document.
pub struct DiscoveryOptions<'a> {
    /// The upstream's base URL (for messages).
    pub upstream: String,
    /// Which paths to keep: `Err(reason)` skips a path.
    pub allows: &'a dyn Fn(&str) -> Result<(), String>,
    /// Paths whose replies are always streamed.
    pub force_stream_apis: Vec<String>,
    /// Prefix given to every component name taken from this upstream.
    pub component_prefix: String,
    /// How much of the document is read.
    pub limits: DiscoveryLimits,
}

/// An operation left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Upper-case method.
    pub method: String,
    /// Path template.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// The `components` entry (a specification extension, so the object stays valid)
/// that carries the document's tag objects (name → `{"name", "description", …}`) the
/// kept operations use; the merged document lifts them into its top-level `tags`.
pub const TAGS_SECTION: &str = "x-framex-tags";

/// The result of reading a document.
#[derive(Debug, Default)]
pub struct Discovered {
    /// One spec per kept operation, with its published operation object.
    pub operations: Vec<ApiSpec>,
    /// Operations left out.
    pub skipped: Vec<Skip>,
    /// The components the kept operations need, renamed: a `components` object
    /// (`{"schemas": {...}, "securitySchemes": {...}, ...}`), plus the tags they use
    /// under [`TAGS_SECTION`].
    pub components: Map<String, Value>,
}

/// Reads `doc` into route specs.
///
/// A 3.0.x document is converted to 3.1 first (see [`convert`]), so what is
/// published validates in our 3.1 document. Operations without their own `security`
/// get the document's; security scheme names are prefixed like every component.
///
/// # Errors
/// When `doc` is not an OpenAPI 3 document or exceeds `opts.limits`; single
/// operations that cannot be understood are skipped with their reason instead.
pub fn parse_document(doc: &Value, opts: &DiscoveryOptions<'_>) -> Result<Discovered, DiscoveryError> {
    let doc: Cow<'_, Value> = if convert::is_30(doc) {
        let mut converted = doc.clone();
        convert::to_31(&mut converted);
        Cow::Owned(converted)
    } else {
        Cow::Borrowed(doc)
    };
    let doc: &Value = &doc;
    let not_openapi = |reason: &str| DiscoveryError::NotOpenApi {
        upstream: opts.upstream.clone(),
        reason: reason.to_owned(),
    };
    match doc.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.") => {}
        Some(v) => return Err(not_openapi(&format!("unsupported version {v}"))),
        None => return Err(not_openapi("no 'openapi' version field")),
    }
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| not_openapi("no 'paths' object"))?;

    let limits = opts.limits;
    let too_large = || DiscoveryError::TooLarge {
        upstream: opts.upstream.clone(),
        limit: limits.max_published,
    };
    let mut renamer = refs::Renamer::new(doc, &opts.component_prefix);
    let mut found = Discovered::default();
    // Published operations by (path item, method): a path item `$ref`'d from many
    // paths yields one shared object per method, with its serialized size.
    let mut shared: HashMap<(*const Value, &str), (Arc<Value>, usize)> = HashMap::new();
    let mut seen = 0usize;
    let mut published_bytes = 0usize;
    let mut tags_used: BTreeSet<&str> = BTreeSet::new();
    for (path, item) in paths {
        let item = refs::follow(doc, item);
        for &method in METHODS {
            let Some(op) = item.get(method) else { continue };
            seen += 1;
            if seen > limits.max_operations {
                return Err(DiscoveryError::TooManyOperations {
                    upstream: opts.upstream.clone(),
                    limit: limits.max_operations,
                });
            }
            let skip = |reason: String| Skip {
                method: method.to_uppercase(),
                path: path.clone(),
                reason,
            };
            if let Err(reason) = template::check(path) {
                found.skipped.push(skip(reason));
                continue;
            }
            if let Err(reason) = (opts.allows)(path) {
                found.skipped.push(skip(reason));
                continue;
            }
            match operation::read(doc, path, method, item, op, opts) {
                Ok(mut spec) => {
                    let (published, size) = shared
                        .entry((std::ptr::from_ref(item), method))
                        .or_insert_with(|| {
                            let mut published = renamer.rewrite(&published_operation(doc, item, op));
                            renamer.rename_security(&mut published);
                            let size = serialized_len(&published);
                            (Arc::new(published), size)
                        })
                        .clone();
                    published_bytes = published_bytes.saturating_add(size + path.len());
                    if published_bytes > limits.max_published {
                        return Err(too_large());
                    }
                    spec.operation = Some(published);
                    found.operations.push(spec);
                    let tags = op.get("tags").and_then(Value::as_array);
                    tags_used.extend(tags.into_iter().flatten().filter_map(Value::as_str));
                }
                Err(reason) => found.skipped.push(skip(reason)),
            }
        }
    }
    found.components = renamer.finish();
    let tags = used_tags(doc, &tags_used);
    if !tags.is_empty() {
        found.components.insert(TAGS_SECTION.to_owned(), Value::Object(tags));
    }
    let components_bytes = found.components.values().map(serialized_len).sum::<usize>();
    if published_bytes.saturating_add(components_bytes) > limits.max_published {
        return Err(too_large());
    }
    Ok(found)
}

/// The document's tag objects named in `used` (by name; a tag used but not
/// described is not invented: operations may name tags the document never lists).
fn used_tags(doc: &Value, used: &BTreeSet<&str>) -> Map<String, Value> {
    let listed = doc.get("tags").and_then(Value::as_array);
    listed
        .into_iter()
        .flatten()
        .filter_map(|tag| {
            let name = tag.get("name")?.as_str()?;
            used.contains(name).then(|| (name.to_owned(), tag.clone()))
        })
        .collect()
}

/// The length of `value` serialized as JSON, without building the text.
fn serialized_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; a Value always serializes.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The parameters of an operation: its own, then the path item's it does not
/// redefine (by name and location).
fn merged_parameters(doc: &Value, item: &Value, op: &Value) -> Vec<Value> {
    let mut raw_params: Vec<Value> = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let op_keys: Vec<(String, String)> = raw_params
        .iter()
        .filter_map(|p| param_identity(doc, p))
        .collect();
    for p in item.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        if let Some(id) = param_identity(doc, p) {
            if !op_keys.contains(&id) {
                raw_params.push(p.clone());
            }
        }
    }
    raw_params
}

/// The name and location of a parameter (through its `$ref`).
fn param_identity(doc: &Value, p: &Value) -> Option<(String, String)> {
    let p = refs::follow(doc, p);
    Some((
        p.get("name")?.as_str()?.to_owned(),
        p.get("in")?.as_str()?.to_owned(),
    ))
}

/// The operation object to publish (still with the upstream's component names):
/// the upstream's, with the path-level parameters merged in, and the document's
/// `security` when the operation has none of its own.
fn published_operation(doc: &Value, item: &Value, op: &Value) -> Value {
    let mut published = op.clone();
    // (Not an object: `operation` refuses it; nothing to merge into.)
    let Some(object) = published.as_object_mut() else {
        return published;
    };
    let params = merged_parameters(doc, item, op);
    if !params.is_empty() {
        object.insert("parameters".into(), Value::Array(params));
    }
    if let Some(security) = doc.get("security") {
        object.entry("security").or_insert_with(|| security.clone());
    }
    published
}

#[cfg(test)]
mod tests;
