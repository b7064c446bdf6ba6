//! Writing plugins in Rust: typed handlers, declared like actix-web routes.
//!
//! A handler is an `async fn(args, cx) -> framex::Result<T>`. `args` is any struct
//! that derives `Deserialize` and `JsonSchema`; its fields are the API's parameters,
//! exactly as FastAPI reads a FrameX plugin's signature:
//! - a field of a basic type (string, number, boolean, list of those) is a query
//!   parameter (a path parameter when the path has `{field}`);
//! - a field whose type is a struct is the JSON body (FrameX calls it `model`).
//!
//! ```no_run
//! use framex::plugin::{PluginBuilder, Ctx};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Hello { name: String }
//!
//! async fn hello(args: Hello, _cx: Ctx) -> framex::Result<String> {
//!     Ok(format!("hello, {}", args.name))
//! }
//!
//! let plugin = PluginBuilder::new("hello").version("1.0.0").get("/api/v1/hello", hello).build();
//! ```

use std::future::Future;
use std::sync::Arc;

use awc::http::Method;
use framex_actors::{
    ApiHandler, ApiKey, ApiSpec, ArgProblem, Args, BodySpec, Error, LocalApi, Param,
    ParamLocation, PluginMeta, PluginSpec, ValueKind,
};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::openapi::operation_for;

/// A handler's arguments: read from the request or the call (`Deserialize`), and
/// described in the OpenAPI document (`JsonSchema`).
pub trait Arguments: DeserializeOwned + JsonSchema + 'static {}
impl<T: DeserializeOwned + JsonSchema + 'static> Arguments for T {}

/// A handler's answer: serialized into the reply (`Serialize`), and described in the
/// OpenAPI document (`JsonSchema`).
pub trait Answer: Serialize + JsonSchema + 'static {}
impl<T: Serialize + JsonSchema + 'static> Answer for T {}

/// A plugin handler: `async fn(args: A, cx: Ctx) -> Result<R, Error>` (any function or
/// closure of that shape).
pub trait Handler<A, R>: Send + Sync + 'static {
    /// The future the handler returns.
    type Future: Future<Output = Result<R, Error>> + 'static;
    /// Runs the handler.
    fn call(&self, args: A, cx: Ctx) -> Self::Future;
}

impl<A, R, F, Fut> Handler<A, R> for F
where
    F: Fn(A, Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + 'static,
{
    type Future = Fut;

    fn call(&self, args: A, cx: Ctx) -> Fut {
        self(args, cx)
    }
}

pub use framex_actors::sse::{Emitter, Event};
pub use framex_actors::Ctx;

/// Builds a plugin: metadata, HTTP routes and function APIs.
pub struct PluginBuilder {
    meta: PluginMeta,
    struct_name: String,
    generator: SchemaGenerator,
    apis: Vec<Arc<LocalApi>>,
}

impl std::fmt::Debug for PluginBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginBuilder").field("meta", &self.meta).finish()
    }
}

/// Schema settings for the documents we publish: JSON Schema 2020-12 as OpenAPI
/// 3.1 uses it, with named models under `#/components/schemas`.
fn schema_generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    settings.into_generator()
}

impl PluginBuilder {
    /// A plugin named `name` (its function APIs are `name.Struct.func`).
    pub fn new(name: &str) -> Self {
        PluginBuilder {
            meta: PluginMeta {
                name: name.to_owned(),
                version: "0.1.0".to_owned(),
                ..PluginMeta::default()
            },
            struct_name: format!("{}Plugin", capitalize(name)),
            generator: schema_generator(),
            apis: Vec::new(),
        }
    }

    /// Sets the version.
    pub fn version(mut self, version: &str) -> Self {
        self.meta.version = version.to_owned();
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.meta.description = text.to_owned();
        self
    }

    /// Sets the author.
    pub fn author(mut self, author: &str) -> Self {
        self.meta.author = author.to_owned();
        self
    }

    /// Sets the home page.
    pub fn url(mut self, url: &str) -> Self {
        self.meta.url = url.to_owned();
        self
    }

    /// Sets the struct part of function API names (default `<Name>Plugin`).
    pub fn struct_name(mut self, name: &str) -> Self {
        self.struct_name = name.to_owned();
        self
    }

    /// Declares the APIs this plugin calls (`/api/v1/...` paths, `METHOD /path`, or
    /// function names `plugin.Struct.func`).
    pub fn requires<I, S>(mut self, apis: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.meta
            .required_remote_apis
            .extend(apis.into_iter().map(Into::into));
        self
    }

    /// Adds a `GET` route.
    pub fn get<A, R, F>(self, path: &str, handler: F) -> Self
    where
        A: Arguments,
        R: Answer,
        F: Handler<A, R>,
    {
        self.route(Method::GET, path, handler)
    }

    /// Adds a `POST` route.
    pub fn post<A, R, F>(self, path: &str, handler: F) -> Self
    where
        A: Arguments,
        R: Answer,
        F: Handler<A, R>,
    {
        self.route(Method::POST, path, handler)
    }

    /// Adds a route for any method.
    pub fn route<A, R, F>(mut self, method: Method, path: &str, handler: F) -> Self
    where
        A: Arguments,
        R: Answer,
        F: Handler<A, R>,
    {
        let mut spec = self.signature::<A>(ApiKey::http(method, path));
        let result_schema = self.generator.subschema_for::<R>();
        spec.operation = Some(Arc::new(operation_for(&spec, Some(result_schema.to_value()), &[&self.meta.name])));
        let handler = call_handler(spec.key.to_string(), handler);
        self.push(spec, handler);
        self
    }

    /// Adds a streaming `GET` route answered with FrameX's server-sent events: the
    /// handler pushes `message_chunk`s through the [`Emitter`]; `finish` follows when
    /// it returns `Ok`, an `error` event when it fails.
    pub fn stream<A, F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        F: Fn(A, Ctx, Emitter) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + 'static,
    {
        let mut spec = self.signature::<A>(ApiKey::http(Method::GET, path));
        spec.streaming = true;
        spec.operation = Some(Arc::new(operation_for(&spec, None, &[&self.meta.name])));
        let handler = Arc::new(handler);
        let api = spec.key.to_string();
        self.push(
            spec,
            ApiHandler::Stream(Box::new(move |args, cx, out| {
                let handler = handler.clone();
                let api = api.clone();
                Box::pin(async move { handler(bind(&api, args)?, cx, out).await })
            })),
        );
        self
    }

    /// Adds a function API named `<plugin>.<Struct>.<name>`, callable only through
    /// `call_remote_api`, never over HTTP.
    pub fn function<A, R, F>(self, name: &str, handler: F) -> Self
    where
        A: Arguments,
        R: Answer,
        F: Handler<A, R>,
    {
        let full = format!("{}.{}.{}", self.meta.name, self.struct_name, name);
        self.add_function(full, false, handler)
    }

    /// Adds a FrameX proxy function: a function API named exactly `name` (FrameX names
    /// them by module path, `my_service.utils.compute`) that other FrameX instances
    /// listing it in their `proxy_functions` may call through
    /// `POST /api/v1/proxy/remote`. Plain [`PluginBuilder::function`]s are never
    /// callable that way.
    pub fn proxy_function<A, R, F>(self, name: &str, handler: F) -> Self
    where
        A: Arguments,
        R: Answer,
        F: Handler<A, R>,
    {
        self.add_function(name.to_owned(), true, handler)
    }

    fn add_function<A, R, F>(mut self, full: String, proxy: bool, handler: F) -> Self
    where
        A: Arguments,
        R: Answer,
        F: Handler<A, R>,
    {
        let mut spec = self.signature::<A>(ApiKey::Function(full.clone()));
        spec.proxy_function = proxy;
        self.push(spec, call_handler(full, handler));
        self
    }

    /// Finishes the plugin.
    pub fn build(mut self) -> Arc<PluginSpec> {
        let definitions = self.generator.take_definitions(true);
        let components = Arc::new(
            json!({ "schemas": Value::Object(definitions) })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let apis = self
            .apis
            .into_iter()
            .map(|api| {
                let api = Arc::try_unwrap(api).expect("apis are not shared before build");
                let mut spec = Arc::try_unwrap(api.spec).unwrap_or_else(|s| (*s).clone());
                spec.components = Some(components.clone());
                Arc::new(LocalApi {
                    spec: Arc::new(spec),
                    handler: api.handler,
                })
            })
            .collect();
        Arc::new(PluginSpec {
            meta: self.meta,
            apis,
        })
    }

    fn push(&mut self, spec: ApiSpec, handler: ApiHandler) {
        self.apis.push(Arc::new(LocalApi {
            spec: Arc::new(spec),
            handler,
        }));
    }

    /// Reads an API's parameters off its argument struct's schema.
    fn signature<A: JsonSchema>(&mut self, key: ApiKey) -> ApiSpec {
        let root = self.generator.root_schema_for::<A>();
        let root = root.as_value();
        let definitions = self.generator.definitions().clone();
        let required: Vec<&str> = root
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let path_template = match &key {
            ApiKey::Http { path, .. } => path.clone(),
            ApiKey::Function(_) => String::new(),
        };
        let mut spec = ApiSpec::new(key);
        let Some(properties) = root.get("properties").and_then(Value::as_object) else {
            return spec;
        };
        for (name, schema) in properties {
            let resolved = resolve_local(schema, &definitions);
            let kind = ValueKind::from_schema(resolved);
            let is_required = required.contains(&name.as_str());
            if kind == ValueKind::Object {
                assert!(
                    matches!(spec.body, BodySpec::None),
                    "{}: only one argument may be the JSON body, found another in '{name}'",
                    spec.key
                );
                spec.body = BodySpec::Json {
                    arg: name.clone(),
                    required: is_required,
                    schema: schema.clone(),
                };
                continue;
            }
            let location = if path_template.contains(&format!("{{{name}}}")) {
                ParamLocation::Path
            } else {
                ParamLocation::Query
            };
            let items = (kind == ValueKind::Array).then(|| {
                resolved
                    .get("items")
                    .map(ValueKind::from_schema)
                    .unwrap_or(ValueKind::Any)
            });
            spec.params.push(Param {
                name: name.clone(),
                location,
                kind,
                items,
                required: is_required || location == ParamLocation::Path,
                schema: schema.clone(),
            });
        }
        spec
    }
}

fn capitalize(name: &str) -> String {
    name.split(['_', '-'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn resolve_local<'a>(schema: &'a Value, definitions: &'a Map<String, Value>) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| definitions.get(name))
        .unwrap_or(schema)
}

/// Deserializes bound arguments into the handler's argument type; a mismatch is a
/// 422 naming the argument.
fn bind<A: DeserializeOwned>(api: &str, args: Args) -> Result<A, Error> {
    serde_json::from_value(Value::Object(args)).map_err(|e| {
        let message = e.to_string();
        let name = message
            .split('`')
            .nth(1)
            .unwrap_or("args")
            .to_owned();
        Error::BadArguments {
            api: api.to_owned(),
            problems: vec![ArgProblem::invalid(&name, "args", message)],
        }
    })
}

fn call_handler<A, R, F>(api: String, handler: F) -> ApiHandler
where
    A: Arguments,
    R: Answer,
    F: Handler<A, R>,
{
    let handler = Arc::new(handler);
    ApiHandler::Call(Box::new(move |args, cx| {
        let handler = handler.clone();
        let api = api.clone();
        Box::pin(async move {
            let args = bind(&api, args)?;
            let result = handler.call(args, cx).await?;
            serde_json::to_value(result)
                .map_err(|e| Error::Internal(format!("result does not serialize: {e}")))
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Model {
        id: i64,
        #[serde(default)]
        name: Option<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Args2 {
        id: i64,
        q: Option<String>,
        model: Model,
    }

    async fn h(_: Args2, _: Ctx) -> Result<String, Error> {
        Ok(String::new())
    }

    #[test]
    fn fields_become_query_path_and_body_like_fastapi() {
        let plugin = PluginBuilder::new("t").post("/api/v1/t/{id}", h).build();
        let spec = &plugin.apis[0].spec;
        let id = spec.params.iter().find(|p| p.name == "id").unwrap();
        assert_eq!((id.location, id.kind.clone(), id.required), (ParamLocation::Path, ValueKind::Integer, true));
        let q = spec.params.iter().find(|p| p.name == "q").unwrap();
        assert_eq!((q.location, q.kind.clone(), q.required), (ParamLocation::Query, ValueKind::String, false));
        assert!(matches!(&spec.body, BodySpec::Json { arg, required: true, schema }
            if arg == "model" && schema["$ref"] == "#/components/schemas/Model"));
        let components = spec.components.as_ref().unwrap();
        assert!(components["schemas"]["Model"]["properties"]["id"].is_object());
    }

    #[test]
    fn function_names_follow_framex() {
        let plugin = PluginBuilder::new("echo").function("confess", h).build();
        assert_eq!(plugin.apis[0].spec.key, ApiKey::Function("echo.EchoPlugin.confess".into()));
    }
}
