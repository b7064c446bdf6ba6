//! What an API looks like to the engine: its key, its parameters and its body.
//!
//! Both local plugin routes and discovered upstream operations are described by an
//! [`ApiSpec`]. The engine uses it to map arguments onto a call (path, query, header,
//! JSON `model` body, form fields) and to check them *before* any I/O.
//!
//! (The file is long for its unit tests; the code is under 400 lines.)

use std::fmt;

use http::Method;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::canonical_form::CanonicalForm;
use crate::error::{ArgProblem, Error};

/// Arguments of a call, by name (FrameX passes keyword arguments).
pub type Args = Map<String, Value>;

/// How an API is addressed: an HTTP operation or a function API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApiKey {
    /// An HTTP operation: method and OpenAPI path template (`/api/v1/items/{id}`).
    Http {
        /// Upper-case HTTP method.
        method: Method,
        /// Path template with `{param}` segments.
        path: String,
    },
    /// A function API named `plugin.Struct.func`, callable only through `CallRemote`.
    Function(String),
}

impl ApiKey {
    /// The path template of an HTTP operation, or a function API's name: what
    /// `[limits]` count a route by.
    pub fn template(&self) -> &str {
        match self {
            ApiKey::Http { path, .. } => path,
            ApiKey::Function(name) => name,
        }
    }

    /// A key for an HTTP operation.
    pub fn http(method: Method, path: impl Into<String>) -> Self {
        ApiKey::Http {
            method,
            path: path.into(),
        }
    }

    fn sort_key(&self) -> (u8, &str, &str) {
        match self {
            ApiKey::Http { method, path } => (0, path, method.as_str()),
            ApiKey::Function(name) => (1, name, ""),
        }
    }
}

/// Sorted by path, then method; function APIs after HTTP operations.
impl Ord for ApiKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for ApiKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKey::Http { method, path } => write!(f, "{method} {path}"),
            ApiKey::Function(name) => f.write_str(name),
        }
    }
}

/// Where a parameter travels in an HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    /// A `{name}` segment of the path template.
    Path,
    /// A query-string pair.
    Query,
    /// A request header.
    Header,
}

impl fmt::Display for ParamLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamLocation::Path => "path",
            ParamLocation::Query => "query",
            ParamLocation::Header => "header",
        })
    }
}

/// The basic JSON type a parameter accepts (the `framex` crate reads it off a JSON
/// schema; the engine only checks and converts values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// `type: string`
    String,
    /// `type: integer`
    Integer,
    /// `type: number`
    Number,
    /// `type: boolean`
    Boolean,
    /// `type: array` (repeated query keys on the wire).
    Array,
    /// `type: object`
    Object,
    /// No usable type information: anything goes.
    Any,
}

impl ValueKind {
    /// Whether `value` is acceptable for this kind (`null` is checked by the caller).
    pub fn accepts(&self, value: &Value) -> bool {
        match self {
            ValueKind::String => value.is_string(),
            ValueKind::Integer => value.is_i64() || value.is_u64(),
            ValueKind::Number => value.is_number(),
            ValueKind::Boolean => value.is_boolean(),
            ValueKind::Array => value.is_array(),
            ValueKind::Object => value.is_object(),
            ValueKind::Any => true,
        }
    }

    /// Converts one textual value (query string, path segment, header) into JSON of
    /// this kind, the way FastAPI does. `None` when the text does not fit.
    pub fn parse_text(&self, text: &str) -> Option<Value> {
        match self {
            ValueKind::String | ValueKind::Any => Some(Value::String(text.to_owned())),
            ValueKind::Integer => text.trim().parse::<i64>().ok().map(Value::from),
            ValueKind::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            ValueKind::Boolean => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(Value::Bool(true)),
                "false" | "0" | "no" | "off" => Some(Value::Bool(false)),
                _ => None,
            },
            ValueKind::Array => Some(Value::Array(vec![Value::String(text.to_owned())])),
            ValueKind::Object => serde_json::from_str(text).ok().filter(Value::is_object),
        }
    }

    /// The kind's name as OpenAPI writes it.
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Integer => "integer",
            ValueKind::Number => "number",
            ValueKind::Boolean => "boolean",
            ValueKind::Array => "array",
            ValueKind::Object => "object",
            ValueKind::Any => "any",
        }
    }
}

/// One path, query or header parameter of an API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    /// Name on the wire and argument name.
    pub name: String,
    /// Where it travels.
    pub location: ParamLocation,
    /// Basic type accepted.
    pub kind: ValueKind,
    /// Items' kind when `kind` is `Array`.
    pub items: Option<ValueKind>,
    /// Whether a call without it is rejected.
    pub required: bool,
    /// The JSON schema as published (kept for the merged OpenAPI document).
    #[serde(skip)]
    pub schema: Value,
    /// For a path parameter whose type FastAPI coerces (integer, number, boolean,
    /// uuid, date, date-time, enum): the only spelling of a value let through (see
    /// [`CanonicalForm`]); `None`: any spelling.
    #[serde(skip)]
    pub canonical: Option<CanonicalForm>,
}

/// One field of a form or multipart body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormField {
    /// Field name.
    pub name: String,
    /// `true` for a file part (`format: binary`).
    pub file: bool,
    /// Whether the field must be present.
    pub required: bool,
}

/// The request body an API takes.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BodySpec {
    /// No body.
    #[default]
    None,
    /// `application/json`: passed as argument `arg` (FrameX calls it `model`).
    Json {
        /// Argument name carrying the body (FrameX: `model`).
        arg: String,
        /// Whether a body is required.
        required: bool,
        /// The schema as published (often a `$ref`).
        #[serde(skip)]
        schema: Value,
    },
    /// `application/x-www-form-urlencoded`: each field is an argument.
    Form {
        /// The fields.
        fields: Vec<FormField>,
    },
    /// `multipart/form-data`: each field (or file) is an argument.
    Multipart {
        /// The fields and files.
        fields: Vec<FormField>,
    },
    /// Any other media type, passed through as bytes.
    Raw {
        /// Declared media type.
        content_type: String,
    },
    /// Keyword arguments of any names, sent the way FrameX sends proxy-function calls
    /// (see [`crate::upstream::proxy_function`]).
    Kwargs,
}

/// Everything the engine knows about one API: its key, signature and manners.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiSpec {
    /// How it is addressed.
    #[serde(skip)]
    pub key: ApiKey,
    /// Path, query and header parameters.
    pub params: Vec<Param>,
    /// Request body.
    pub body: BodySpec,
    /// Whether the reply is a stream (SSE or chunked bytes).
    pub streaming: bool,
    /// Whether other FrameX instances may call this function API as a proxy function
    /// (`POST /api/v1/proxy/remote`). Off unless a plugin opts in.
    #[serde(skip)]
    pub proxy_function: bool,
    /// Whether a local route answers its value as is, without FrameX's envelope
    /// (FrameX's `raw_response`).
    #[serde(skip)]
    pub raw_response: bool,
    /// One-line summary for listings and documents.
    pub summary: Option<String>,
    /// The OpenAPI operation object to publish, when one is known; the merged
    /// document uses it verbatim. Shared: the operations of an upstream path item
    /// that many paths `$ref` are one object, not a copy per path.
    #[serde(skip)]
    pub operation: Option<std::sync::Arc<Value>>,
    /// The OpenAPI `components` the operation refers to (`{"schemas": {...}}`),
    /// usually shared by every API of one plugin or upstream.
    #[serde(skip)]
    pub components: Option<std::sync::Arc<Map<String, Value>>>,
    /// FrameX-kit's `@on_request(cache=...)`: the route's answers go through the
    /// request cache; `Some(None)` uses `[cache] ttl`, `Some(Some(n))` keeps them
    /// `n` seconds (`-1`: for ever). `None`: not cached.
    #[serde(skip)]
    pub cache: Option<Option<i64>>,
}

impl ApiSpec {
    /// A spec with no parameters and no body.
    pub fn new(key: ApiKey) -> Self {
        ApiSpec {
            key,
            params: Vec::new(),
            body: BodySpec::None,
            streaming: false,
            proxy_function: false,
            raw_response: false,
            summary: None,
            operation: None,
            components: None,
            cache: None,
        }
    }

    /// Whether `other` takes the same arguments the same way: same key, parameters
    /// (name, location, type, required), body kind and fields, and streaming flag.
    /// Schemas are not compared (their `$ref` names differ between documents), so two
    /// services publishing one operation count as interchangeable.
    pub fn same_signature(&self, other: &ApiSpec) -> bool {
        let params = |spec: &ApiSpec| {
            let mut p: Vec<_> = spec
                .params
                .iter()
                .map(|p| (p.name.clone(), p.location, p.kind.clone(), p.items.clone(), p.required))
                .collect();
            p.sort_by(|a, b| a.0.cmp(&b.0));
            p
        };
        let body_shape = |body: &BodySpec| match body {
            BodySpec::Json { arg, required, .. } => BodySpec::Json {
                arg: arg.clone(),
                required: *required,
                schema: Value::Null,
            },
            other => other.clone(),
        };
        self.key == other.key
            && self.streaming == other.streaming
            && params(self) == params(other)
            && body_shape(&self.body) == body_shape(&other.body)
    }

    /// Checks `args` against the signature before any I/O: every required argument
    /// present, no unknown argument, basic values of the right type.
    ///
    /// # Errors
    /// [`Error::BadArguments`] listing every problem found.
    pub fn check_args(&self, args: &Args) -> Result<(), Error> {
        let mut problems = Vec::new();
        for param in &self.params {
            match args.get(&param.name) {
                None | Some(Value::Null) if param.required => {
                    problems.push(ArgProblem::missing(&param.name, param.location.to_string()))
                }
                Some(v) if !v.is_null() && !param.kind.accepts(v) => problems.push(
                    ArgProblem::wrong_type(&param.name, param.kind.type_name(), v),
                ),
                _ => {}
            }
        }
        match &self.body {
            BodySpec::Json { arg, required, .. } => match args.get(arg) {
                None | Some(Value::Null) if *required => {
                    problems.push(ArgProblem::missing(arg, "body"))
                }
                _ => {}
            },
            BodySpec::Form { fields } | BodySpec::Multipart { fields } => {
                for field in fields {
                    if field.required && !args.contains_key(&field.name) {
                        problems.push(ArgProblem::missing(&field.name, "form"));
                    }
                }
            }
            BodySpec::None | BodySpec::Raw { .. } | BodySpec::Kwargs => {}
        }
        for name in args.keys() {
            if !self.accepts_arg(name) {
                problems.push(ArgProblem::unknown(name, self.arg_names()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::BadArguments {
                api: self.key.to_string(),
                problems,
            })
        }
    }

    /// Whether `name` is one of this API's arguments.
    pub fn accepts_arg(&self, name: &str) -> bool {
        self.params.iter().any(|p| p.name == name)
            || match &self.body {
                BodySpec::Json { arg, .. } => arg == name,
                BodySpec::Form { fields } | BodySpec::Multipart { fields } => {
                    fields.iter().any(|f| f.name == name)
                }
                BodySpec::Raw { .. } => name == "body",
                BodySpec::Kwargs => true,
                BodySpec::None => false,
            }
    }

    /// All argument names, in declaration order.
    pub fn arg_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.params.iter().map(|p| p.name.clone()).collect();
        match &self.body {
            BodySpec::Json { arg, .. } => names.push(arg.clone()),
            BodySpec::Form { fields } | BodySpec::Multipart { fields } => {
                names.extend(fields.iter().map(|f| f.name.clone()))
            }
            BodySpec::Raw { .. } => names.push("body".to_owned()),
            BodySpec::None | BodySpec::Kwargs => {}
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> ApiSpec {
        let mut s = ApiSpec::new(ApiKey::Http {
            method: Method::POST,
            path: "/api/v1/items/{id}".into(),
        });
        s.params.push(Param {
            name: "id".into(),
            location: ParamLocation::Path,
            kind: ValueKind::Integer,
            items: None,
            required: true,
            schema: json!({"type": "integer"}),
            canonical: Some(CanonicalForm::Integer),
        });
        s.params.push(Param {
            name: "q".into(),
            location: ParamLocation::Query,
            kind: ValueKind::String,
            items: None,
            required: false,
            schema: json!({"type": "string"}),
            canonical: None,
        });
        s.body = BodySpec::Json {
            arg: "model".into(),
            required: true,
            schema: json!({"$ref": "#/components/schemas/Item"}),
        };
        s
    }


    #[test]
    fn text_is_parsed_like_fastapi_does() {
        assert_eq!(ValueKind::Integer.parse_text("42"), Some(json!(42)));
        assert_eq!(ValueKind::Integer.parse_text("4.2"), None);
        assert_eq!(ValueKind::Boolean.parse_text("on"), Some(json!(true)));
        assert_eq!(ValueKind::Number.parse_text("2.5"), Some(json!(2.5)));
    }

    #[test]
    fn check_args_names_every_problem() {
        let args: Args = json!({"id": "seven", "colour": "red"})
            .as_object()
            .cloned()
            .unwrap();
        let err = spec().check_args(&args).unwrap_err().to_string();
        assert!(err.contains("'id'") && err.contains("integer"), "{err}");
        assert!(err.contains("missing") && err.contains("'model'"), "{err}");
        assert!(err.contains("unknown") && err.contains("'colour'"), "{err}");
    }

    #[test]
    fn check_args_accepts_a_fitting_call() {
        let args: Args = json!({"id": 7, "model": {"name": "x"}})
            .as_object()
            .cloned()
            .unwrap();
        spec().check_args(&args).unwrap();
    }
}
