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
//! let plugin = PluginBuilder::new("hello")
//!     .version("1.0.0")
//!     .get("/api/v1/hello", hello)
//!     .build()
//!     .expect("a well-formed plugin");
//! ```
//!
//! (The file is long for its unit tests; the code is about 400 lines.)

use std::future::Future;
use std::sync::Arc;

use framex_actors::Method;
use framex_actors::{
    ApiHandler, ApiKey, ApiSpec, Args, Error, LocalApi, PluginMeta, PluginSpec,
    StartHook,
};
use schemars::generate::SchemaGenerator;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::openapi::operation_for;

mod arg_error;
mod signature;

/// FrameX's API prefix, put in front of route paths unless `api_prefix(false)`.
const API_STR: &str = "/api/v1";

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

/// Why [`PluginBuilder::build`] refused a plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// Two arguments of one API are structs; only one can be the JSON body.
    #[error("{api}: only one argument may be the JSON body, found '{first}' and '{second}'")]
    TwoBodies {
        /// The API.
        api: String,
        /// The first struct-typed argument.
        first: String,
        /// The second one.
        second: String,
    },
    /// Two APIs of the plugin have the same key.
    #[error("'{api}' is declared twice")]
    Duplicate {
        /// The API key.
        api: String,
    },
    /// An HTTP route's path cannot be served.
    #[error("'{api}': {reason}")]
    BadPath {
        /// The API key.
        api: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Builds a plugin: metadata, HTTP routes and function APIs. Mistakes in the
/// declarations are collected and reported by [`PluginBuilder::build`].
pub struct PluginBuilder {
    meta: PluginMeta,
    struct_name: String,
    generator: SchemaGenerator,
    apis: Vec<Arc<LocalApi>>,
    /// Whether routes declared from now on get `/api/v1` in front (FrameX's
    /// `api_prefix`, on by default).
    api_prefix: bool,
    on_start: Option<Arc<StartHook>>,
    /// The first mistake found, reported by `build`.
    error: Option<PluginError>,
}

impl std::fmt::Debug for PluginBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginBuilder").field("meta", &self.meta).finish()
    }
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
            generator: signature::generator(),
            apis: Vec::new(),
            api_prefix: true,
            on_start: None,
            error: None,
        }
    }

    /// Whether the routes declared after this call get FrameX's `/api/v1` in front of
    /// a path that does not start with it (FrameX's `api_prefix`; default `true`:
    /// `.get("/echo", ..)` serves `/api/v1/echo`). `false` serves paths as written.
    pub fn api_prefix(mut self, on: bool) -> Self {
        self.api_prefix = on;
        self
    }

    /// The route declared just before answers its value as is, without FrameX's
    /// `{status, message, timestamp, data}` envelope (FrameX's `raw_response`).
    pub fn raw_response(mut self) -> Self {
        if let Some(spec) = self.last_spec() {
            spec.raw_response = true;
        }
        self
    }

    /// The OpenAPI tags of the route declared just before (FrameX's `tags`; default:
    /// the plugin's name).
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tags: Vec<Value> = tags.into_iter().map(|t| Value::String(t.into())).collect();
        if let Some(operation) = self.last_spec().and_then(|spec| spec.operation.as_mut()) {
            if let Some(op) = Arc::make_mut(operation).as_object_mut() {
                op.insert("tags".to_owned(), Value::Array(tags));
            }
        }
        self
    }

    /// Runs `hook` once when the plugin starts, before the server accepts requests
    /// (FrameX's `on_start`); an error stops the start-up, naming the plugin. The
    /// hook's [`Ctx`] reads the plugin's config ([`Ctx::config`]) and may call the
    /// APIs it declared.
    pub fn on_start<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + 'static,
    {
        self.on_start = Some(Arc::new(move |cx| Box::pin(hook(cx))));
        self
    }

    /// The spec of the API declared last, while the builder still owns it alone.
    fn last_spec(&mut self) -> Option<&mut ApiSpec> {
        let api = Arc::get_mut(self.apis.last_mut()?)?;
        Some(Arc::make_mut(&mut api.spec))
    }

    /// `path` with FrameX's `/api/v1` in front when `api_prefix` asks for it.
    fn full_path(&self, path: &str) -> String {
        if !self.api_prefix || path.starts_with(API_STR) {
            path.to_owned()
        } else if path.starts_with('/') {
            format!("{API_STR}{path}")
        } else {
            format!("{API_STR}/{path}")
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
        let path = self.full_path(path);
        let Some(mut spec) = self.signature::<A>(ApiKey::http(method, &path)) else {
            return self;
        };
        let result_schema = self.generator.subschema_for::<R>();
        spec.operation = Some(Arc::new(operation_for(&spec, Some(result_schema.to_value()), &[&self.meta.name])));
        let handler = call_handler(spec.key.to_string(), handler);
        self.push(spec, handler);
        self
    }

    /// Caches the answers of the route added last (FrameX-kit's
    /// `@on_request(..., cache={"ttl": ...})`) when `[cache] enabled` is true: `None`
    /// keeps them `[cache] ttl` seconds, `Some(n)` `n` seconds, `Some(-1)` until
    /// evicted. Refused (at `build`) after a streaming route, a function API, no route
    /// at all, or with a TTL neither -1 nor positive.
    pub fn cache(mut self, ttl: Option<i64>) -> Self {
        let last = self.apis.last_mut().and_then(Arc::get_mut).and_then(|api| Arc::get_mut(&mut api.spec));
        let problem = match (last, ttl) {
            (_, Some(t)) if t != -1 && t <= 0 => Some("cache ttl must be -1 or a positive integer"),
            (Some(spec), _) if matches!(spec.key, ApiKey::Http { .. }) && !spec.streaming => {
                spec.cache = Some(ttl);
                None
            }
            (Some(_), _) => Some("only a non-streaming HTTP route can be cached"),
            (None, _) => Some("cache() follows the route it applies to"),
        };
        if let Some(reason) = problem {
            let api = self.apis.last().map(|a| a.spec.key.to_string()).unwrap_or_default();
            self.refuse(PluginError::BadPath { api, reason: reason.to_owned() });
        }
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
        let path = self.full_path(path);
        let Some(mut spec) = self.signature::<A>(ApiKey::http(Method::GET, &path)) else {
            return self;
        };
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
        let Some(mut spec) = self.signature::<A>(ApiKey::Function(full.clone())) else {
            return self;
        };
        spec.proxy_function = proxy;
        self.push(spec, call_handler(full, handler));
        self
    }

    /// Finishes the plugin.
    ///
    /// # Errors
    /// The first mistake in the declarations: two JSON bodies in one API, an API
    /// declared twice, a path that is not a `/`-rooted template.
    pub fn build(mut self) -> Result<Arc<PluginSpec>, PluginError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
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
                Arc::new(LocalApi::new(Arc::new(spec), api.handler))
            })
            .collect();
        Ok(Arc::new(PluginSpec {
            meta: self.meta,
            apis,
            on_start: self.on_start,
        }))
    }

    /// Keeps the first mistake for `build`.
    fn refuse(&mut self, error: PluginError) {
        self.error.get_or_insert(error);
    }

    fn push(&mut self, spec: ApiSpec, handler: ApiHandler) {
        if self.apis.iter().any(|api| api.spec.key == spec.key) {
            self.refuse(PluginError::Duplicate {
                api: spec.key.to_string(),
            });
            return;
        }
        if let ApiKey::Http { path, .. } = &spec.key {
            if !path.starts_with('/') {
                self.refuse(PluginError::BadPath {
                    api: spec.key.to_string(),
                    reason: "a path starts with '/'".to_owned(),
                });
                return;
            }
        }
        self.apis.push(Arc::new(LocalApi::new(Arc::new(spec), handler)));
    }

    /// The signature of an API whose arguments are `A`; a mistake is kept for
    /// `build` and gives `None`.
    fn signature<A: JsonSchema>(&mut self, key: ApiKey) -> Option<ApiSpec> {
        signature::read::<A>(&mut self.generator, key)
            .map_err(|e| self.refuse(e))
            .ok()
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

/// Deserializes bound arguments into the handler's argument type; a mismatch is a
/// 422 naming where it is, in FastAPI's words (see [`arg_error`]).
/// As pydantic's lax mode does, a string that spells a number or a boolean where one
/// is expected (`{"id": "5"}`) is taken as that value (at most 16 such per call).
fn bind<A: DeserializeOwned>(api: &str, args: Args) -> Result<A, Error> {
    let mut args = Value::Object(args);
    let mut coerced = 0;
    loop {
        // The plain deserializer first: tracking the path allocates for every key, so
        // only a failure is run again to find where it is.
        if let Ok(bound) = <A as serde::Deserialize>::deserialize(&args) {
            return Ok(bound);
        }
        let error = match serde_path_to_error::deserialize(&args) {
            Ok(bound) => return Ok(bound),
            Err(error) => error,
        };
        if coerced < 16 && arg_error::coerce(&mut args, error.path(), error.inner()) {
            coerced += 1;
            continue;
        }
        return Err(Error::BadArguments {
            api: api.to_owned(),
            problems: vec![arg_error::problem(error.path(), error.inner(), &args)],
        });
    }
}

fn call_handler<A, R, F>(api: String, handler: F) -> ApiHandler
where
    A: Arguments,
    R: Answer,
    F: Handler<A, R>,
{
    let handler = Arc::new(handler);
    // Shared, not copied, by every call (it names the API in argument errors).
    let api: Arc<str> = api.into();
    ApiHandler::Call(Box::new(move |args, cx| {
        let handler = handler.clone();
        let api = api.clone();
        Box::pin(async move {
            let args = bind(&api, args)?;
            let result = handler.call(args, cx).await?;
            serde_json::to_value(result)
                .map_err(|e| Error::Internal(framex_actors::Fault::ResultNotJson(e)))
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use framex_actors::{BodySpec, ParamLocation, ValueKind};
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

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct TwoModels {
        a: Model,
        b: Model,
    }

    async fn two(_: TwoModels, _: Ctx) -> Result<String, Error> {
        Ok(String::new())
    }

    #[test]
    fn mistakes_are_errors_from_build_not_panics() {
        let two_bodies = PluginBuilder::new("t").post("/api/v1/t", two).build();
        assert!(matches!(two_bodies, Err(PluginError::TwoBodies { ref first, ref second, .. }) if first == "a" && second == "b"));
        let twice = PluginBuilder::new("t").get("/api/v1/t", h).get("/api/v1/t", h).build();
        assert!(matches!(twice, Err(PluginError::Duplicate { .. })));
        let relative = PluginBuilder::new("t").api_prefix(false).get("api/v1/t", h).build();
        assert!(matches!(relative, Err(PluginError::BadPath { .. })));
        for bad in [
            PluginBuilder::new("t").cache(None).build(),
            PluginBuilder::new("t").get("/api/v1/t", h).cache(Some(0)).build(),
            PluginBuilder::new("t").get("/api/v1/t", h).cache(Some(-2)).build(),
            PluginBuilder::new("t").function("f", h).cache(None).build(),
        ] {
            assert!(matches!(bad, Err(PluginError::BadPath { .. })), "{bad:?}");
        }
        let cached = PluginBuilder::new("t").get("/api/v1/t", h).cache(Some(-1)).get("/api/v1/u", h).build().unwrap();
        let caches: Vec<_> = cached.apis.iter().map(|a| a.spec.cache).collect();
        assert_eq!(caches, [Some(Some(-1)), None]);
    }

    /// FrameX's `api_prefix`: `/api/v1` in front of a path without it, `/` added to a
    /// relative one (`f"{API_STR}/{path}"`); off, paths are served as written.
    #[test]
    fn api_prefix_maps_paths_like_framex() {
        let plugin = PluginBuilder::new("t")
            .get("echo", h)
            .get("/x", h)
            .get("/api/v1/y", h)
            .api_prefix(false)
            .get("/z", h)
            .build()
            .expect("plugin declarations are valid");
        let paths: Vec<String> = plugin.apis.iter().map(|a| a.spec.key.to_string()).collect();
        assert_eq!(paths, ["GET /api/v1/echo", "GET /api/v1/x", "GET /api/v1/y", "GET /z"]);
    }

    #[test]
    fn fields_become_query_path_and_body_like_fastapi() {
        let plugin = PluginBuilder::new("t").post("/api/v1/t/{id}", h).build().expect("plugin declarations are valid");
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
        let plugin = PluginBuilder::new("echo").function("confess", h).build().expect("plugin declarations are valid");
        assert_eq!(plugin.apis[0].spec.key, ApiKey::Function("echo.EchoPlugin.confess".into()));
    }
}
