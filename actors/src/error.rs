//! The engine's error type: what went wrong, with two messages — the one the caller
//! may see ([`Error::external_message`]) and the detailed one for the log (its
//! `Display`, which may hold what a client library or TLS said).
//!
//! The engine knows nothing of HTTP responses; the `framex` crate maps each variant to a
//! status code in exactly one place (`http::error`). Whether an upstream failure may be
//! retried is decided where it is classified, in `upstream::exchange`.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::peer::Peer;
use crate::wire_error::WireError;

/// Why no connection to an upstream endpoint could be made (nothing was sent).
///
/// The causes are the libraries' own errors, reachable through `source()` (shared,
/// so that the failure can be cloned into each attempt's record); the `Display` also
/// says what they said, for the log line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectFailure {
    /// The request could not be built for this endpoint (its path under the
    /// endpoint's prefix is not a valid URI). Endpoint URLs themselves are parsed
    /// when the config is loaded ([`UpstreamUrl`](crate::upstream::UpstreamUrl)), so
    /// none reaches a request unusable.
    #[error("request could not be built: {0}")]
    Request(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Opening the TCP connection failed (refused, unreachable, reset).
    #[error("TCP connect failed: {0}")]
    Tcp(#[source] Arc<std::io::Error>),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] Arc<std::io::Error>),
    /// The HTTP/1.1 connection could not be set up (hyper's client: the WebSocket
    /// tunnel, one-off fetches).
    #[error("connection unusable: {0}")]
    Http(#[source] Arc<hyper::Error>),
    /// The connection was closed before taking the request (none of it was written).
    #[error("connection closed before taking the request: {0}")]
    Closed(#[source] Arc<std::io::Error>),
    /// Given up while connecting: another request's failure ejected the endpoint
    /// meanwhile (the request goes to a healthy one instead).
    #[error("endpoint ejected while connecting")]
    Ejected,
    /// No connection within the connect timeout.
    #[error("no connection within {seconds:.3}s")]
    Timeout {
        /// The connect timeout, in seconds.
        seconds: f64,
    },
}

impl ConnectFailure {
    /// The failure in a few words of our own, without what the libraries said.
    pub fn summary(&self) -> String {
        match self {
            ConnectFailure::Request(_) => "request could not be built".to_owned(),
            ConnectFailure::Tcp(_) => "connection failed".to_owned(),
            ConnectFailure::Tls(_) => "TLS handshake failed".to_owned(),
            ConnectFailure::Http(_) | ConnectFailure::Closed(_) => "connection unusable".to_owned(),
            ConnectFailure::Ejected => "endpoint ejected".to_owned(),
            timeout @ ConnectFailure::Timeout { .. } => timeout.to_string(),
        }
    }
}

/// What was wrong with an upstream's reply, or with its connection once the request
/// had gone: the `reason` of [`Error::UpstreamReply`]. Where a library said why, its
/// error is the `source()`; the `Display` says it too, for the log line.
#[derive(Debug, thiserror::Error)]
pub enum BrokenReply {
    /// The connection was reset as the request was written: the upstream had closed
    /// it before reading the whole request.
    #[error("reset the connection as the request was written")]
    ResetOnWrite(#[source] WireError),
    /// The connection closed (or was reset) before a complete answer head: no answer,
    /// or a cut-off one.
    #[error("closed the connection without answering")]
    ClosedBeforeAnswer(#[source] WireError),
    /// The answer's head could not be read: its status line, a header, its framing
    /// (`Content-Length`, `Transfer-Encoding`), or a head too large.
    #[error("{0}")]
    Head(#[source] WireError),
    /// The connection failed some other way while the answer was awaited.
    #[error("{0}")]
    Connection(#[source] WireError),
    /// A body read whole could not be read (cut off before its `Content-Length`).
    #[error("body could not be read: {0}")]
    Body(#[source] BodyError),
    /// A streamed body broke off before its end (cut off, or a broken chunk).
    #[error("the stream broke off{}", StreamCut(.0))]
    StreamCut(#[source] WireError),
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    #[error("switched protocols (101) without being asked to")]
    UnsolicitedSwitch,
    /// An upgrade was answered `101`, but the connection could not be taken over.
    #[error("upgrade failed: {0}")]
    Upgrade(#[source] hyper::Error),
    /// A proxy function's result is not in FrameX's encoding (or decodes past the
    /// limit); the source is the decoder's error.
    #[error("{0}")]
    ProxyFunctionResult(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BrokenReply {
    /// A failed exchange: the head could not be parsed, or the connection failed.
    pub fn of_exchange(error: WireError) -> Self {
        if error.is_head() {
            BrokenReply::Head(error)
        } else {
            BrokenReply::Connection(error)
        }
    }
}

/// How a cut-off stream is told: the cause's words unless it merely ended early.
struct StreamCut<'a>(&'a WireError);

impl fmt::Display for StreamCut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_incomplete() {
            f.write_str(" before its end")
        } else {
            write!(f, ": {}", self.0)
        }
    }
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection broke, or the body ended before its declared length.
    #[error("{0}")]
    Broken(#[source] WireError),
    /// The body is longer than allowed.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// What went wrong on our own side: the cause of [`Error::Internal`], with the
/// library's error as its `source()` when there is one. The caller is told only
/// "internal error"; this goes to the log.
///
/// There is no catch-all: a plugin failing on its own terms answers with
/// [`Error::plugin`] (its status, its message).
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// A `call_remote_api`'s arguments could not be made JSON (their `Serialize`
    /// failed).
    #[error("arguments do not serialize: {0}")]
    ArgumentsNotJson(#[source] serde_json::Error),
    /// A plugin handler's result could not be made JSON (its `Serialize` failed).
    #[error("result does not serialize: {0}")]
    ResultNotJson(#[source] serde_json::Error),
    /// An upstream call by function name without FrameX's keyword-arguments body:
    /// it has no HTTP method or path to be sent with.
    #[error("'{api}' is not an HTTP operation")]
    NotHttp {
        /// The API called.
        api: String,
    },
    /// A call reached a pool actor that had already let go of its replica.
    #[error("the upstream pool has stopped")]
    PoolStopped,
    /// The blocking task decoding a proxy function's result did not finish (it
    /// panicked, or the runtime was shutting down).
    #[error("decoding a proxy-function result: {0}")]
    DecodeTask(#[source] tokio::task::JoinError),
    /// Our request body to the upstream failed with an error of ours that is not the
    /// client's doing nor a limit (say, a streamed reply of another upstream forwarded
    /// as the body, failing).
    #[error("request body broke off: {0}")]
    RequestBody(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One problem with a call's arguments, reported with a 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgProblem {
    /// What kind of problem: `missing`, `unknown`, `type_error` or `invalid`
    /// (FastAPI's `type` field).
    pub kind: &'static str,
    /// The argument concerned.
    pub name: String,
    /// Where it was expected (`query`, `path`, `header`, `body`, `form`).
    pub location: String,
    /// What is wrong, in words.
    pub message: String,
    /// The value that was given (FastAPI's `input`; `null` when absent).
    pub input: Value,
}

impl ArgProblem {
    /// A problem in FastAPI's (pydantic's) own words: `kind` is pydantic's error type
    /// (`missing`, `int_parsing`, `string_type`…), `message` its `msg`, `input` what
    /// was given. An empty `name` stands for the whole `location` (a missing body).
    pub fn pydantic(
        kind: &'static str,
        location: impl Into<String>,
        name: &str,
        message: impl Into<String>,
        input: Value,
    ) -> Self {
        ArgProblem {
            kind,
            name: name.to_owned(),
            location: location.into(),
            message: message.into(),
            input,
        }
    }

    /// A required argument is absent.
    pub fn missing(name: &str, location: impl Into<String>) -> Self {
        ArgProblem {
            kind: "missing",
            name: name.to_owned(),
            location: location.into(),
            message: format!("missing required argument '{name}'"),
            input: Value::Null,
        }
    }

    /// An argument the API does not take.
    pub fn unknown(name: &str, allowed: Vec<String>) -> Self {
        ArgProblem {
            kind: "unknown",
            name: name.to_owned(),
            location: "args".to_owned(),
            message: format!(
                "unknown argument '{name}' (allowed: {})",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ),
            input: Value::Null,
        }
    }

    /// A basic value of the wrong JSON type.
    pub fn wrong_type(name: &str, expected: &str, got: &Value) -> Self {
        ArgProblem {
            kind: "type_error",
            name: name.to_owned(),
            location: "args".to_owned(),
            message: format!(
                "argument '{name}' must be {} {expected}, got {}",
                article(expected),
                json_type(got)
            ),
            input: got.clone(),
        }
    }

    /// Any other problem with one argument.
    pub fn invalid(name: &str, location: impl Into<String>, message: impl Into<String>) -> Self {
        ArgProblem {
            kind: "invalid",
            name: name.to_owned(),
            location: location.into(),
            message: message.into(),
            input: Value::Null,
        }
    }
}

fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Problems<'a>(&'a [ArgProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            // pydantic's words do not name the argument; say where it is.
            match (p.name.is_empty(), p.message.contains(&format!("'{}'", p.name))) {
                (_, true) => f.write_str(&p.message)?,
                (true, false) => write!(f, "{}: {}", p.location, p.message)?,
                (false, false) => write!(f, "{} '{}': {}", p.location, p.name, p.message)?,
            }
        }
        Ok(())
    }
}

/// Everything that can go wrong routing or serving a call.
///
/// Not `#[non_exhaustive]`: the `framex` crate maps every variant to a status with no
/// catch-all, so a new variant does not compile until it has one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No local plugin or upstream serves this API.
    #[error("no route for '{api}'")]
    NoRoute {
        /// The API name or `METHOD /path` asked for.
        api: String,
    },
    /// A plugin called an API it did not declare in `required_remote_apis`.
    #[error("plugin '{plugin}' calls '{api}' but does not declare it: add \"{api}\" to its required_remote_apis")]
    NotDeclared {
        /// The calling plugin.
        plugin: String,
        /// The API it tried to call.
        api: String,
    },
    /// The arguments do not fit the API's signature.
    #[error("invalid arguments for '{api}': {}", Problems(.problems))]
    BadArguments {
        /// The API called.
        api: String,
        /// Every problem found.
        problems: Vec<ArgProblem>,
    },
    /// A plugin's `[plugins.<name>]` table does not fit the type it reads it as.
    #[error("[plugins.{plugin}]: {reason}")]
    PluginConfig {
        /// The plugin.
        plugin: String,
        /// What does not fit.
        reason: String,
    },
    /// A plugin handler answered with an error of its own.
    #[error("{message}")]
    Plugin {
        /// HTTP-like status chosen by the plugin (4xx or 5xx).
        status: u16,
        /// Message for the caller.
        message: String,
    },
    /// The upstream could not be reached (refused, reset, DNS, TLS).
    #[error("upstream {upstream} is unreachable: {cause}")]
    UpstreamConnect {
        /// The endpoint (its URL never holds credentials).
        upstream: Peer,
        /// Why (the error's `source()`).
        #[source]
        cause: ConnectFailure,
    },
    /// The upstream did not answer within the deadline.
    #[error("upstream {upstream} did not answer within {seconds:.3}s")]
    UpstreamTimeout {
        /// The endpoint that did not answer.
        upstream: Peer,
        /// The deadline that passed, in seconds.
        seconds: f64,
    },
    /// The upstream answered something we cannot use.
    #[error("upstream {upstream} sent a broken reply: {reason}")]
    UpstreamReply {
        /// The endpoint that answered.
        upstream: Peer,
        /// What was wrong with it (the error's `source()`).
        #[source]
        reason: BrokenReply,
    },
    /// The upstream answered with an error status (or an envelope whose status is not
    /// in `legal_proxy_code`). The status and message are passed on to the caller.
    #[error("upstream {upstream} answered {status}: {message}")]
    UpstreamStatus {
        /// The endpoint that answered.
        upstream: Peer,
        /// The status it gave.
        status: u16,
        /// Its message or body text.
        message: String,
    },
    /// Every endpoint is saturated; try again later.
    #[error("overloaded: every endpoint of {upstream} is at its in-flight limit")]
    Overloaded {
        /// The pool concerned.
        upstream: Peer,
        /// Suggested `Retry-After`, in seconds.
        retry_after: u32,
    },
    /// A limit refused the call (a `CallRemote` counted per calling plugin).
    #[error("limited: calls to '{api}' are over their limit; retry in {retry_after} s")]
    Limited {
        /// The API called.
        api: String,
        /// Suggested `Retry-After`, in seconds.
        retry_after: u64,
        /// The limit could not be checked and its rule refuses then, or the rule
        /// answers with 503: a 503 rather than a 429.
        unavailable: bool,
    },
    /// The request has been forwarded too many times: a proxy loop.
    #[error("proxy loop: the request passed through {hops} proxies (limit {limit})")]
    Loop {
        /// Hops counted so far.
        hops: u32,
        /// The configured limit.
        limit: u32,
    },
    /// The request body is larger than allowed.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client broke off its request body (closed the connection, sent a broken
    /// chunk): its own doing, not ours.
    #[error("the client broke off its request body: {reason}")]
    ClientAbort {
        /// What the HTTP layer said.
        reason: String,
    },
    /// The client sent its request body too slowly (`server.client_body_timeout`,
    /// `server.min_body_rate`).
    #[error("the request body arrived too slowly: {reason}")]
    BodyTimeout {
        /// Which limit it broke.
        reason: String,
    },
    /// The call's deadline passed before it finished.
    #[error("deadline exceeded while calling '{api}'")]
    Deadline {
        /// The API called.
        api: String,
    },
    /// The consumer of a stream went away.
    #[error("the stream's consumer is gone")]
    StreamClosed,
    /// An actor's mailbox closed or timed out.
    #[error("engine mailbox error: {0}")]
    Mailbox(#[from] actix::MailboxError),
    /// A plugin of this name is loaded already.
    #[error("a plugin named '{name}' is already loaded")]
    DuplicatePlugin {
        /// The name.
        name: String,
    },
    /// A local plugin's route cannot be added to the table.
    #[error("plugin '{plugin}' cannot serve '{api}': {reason}")]
    RouteConflict {
        /// The plugin.
        plugin: String,
        /// The API key (`METHOD /path` or function name).
        api: String,
        /// Why, in words (who holds it, or the path clash).
        reason: String,
    },
    /// Our own fault, of a known kind (the error's `source()`).
    #[error("internal error: {0}")]
    Internal(#[source] Fault),
    /// A plugin's handler panicked; the call is answered as an internal error and the
    /// plugin goes on serving other calls.
    #[error("plugin '{plugin}' panicked: {message}")]
    PluginPanic {
        /// The plugin.
        plugin: String,
        /// What the panic said.
        message: String,
    },
}

impl Error {
    /// What the caller is told: the display text, except that an upstream failure is
    /// a fixed text per kind — no URL, address or timeout value, which go to the log
    /// (the `Display`) and the proxy's status page — and our own internals stay in the
    /// log.
    pub fn external_message(&self) -> String {
        match self {
            Error::UpstreamConnect { .. } => "Bad Gateway: upstream unreachable".to_owned(),
            Error::UpstreamReply { .. } => "Bad Gateway: upstream sent a broken reply".to_owned(),
            Error::UpstreamTimeout { .. } => "Gateway Timeout: upstream did not answer in time".to_owned(),
            Error::Overloaded { .. } => "Service Unavailable: every upstream endpoint is busy".to_owned(),
            Error::UpstreamStatus { status, message, .. } => format!("upstream answered {status}: {message}"),
            Error::Mailbox(_) | Error::Internal(_) | Error::PluginConfig { .. } | Error::PluginPanic { .. } => {
                "internal error".to_owned()
            }
            Error::NoRoute { .. }
            | Error::NotDeclared { .. }
            | Error::BadArguments { .. }
            | Error::Plugin { .. }
            | Error::Loop { .. }
            | Error::Limited { .. }
            | Error::PayloadTooLarge { .. }
            | Error::ClientAbort { .. }
            | Error::BodyTimeout { .. }
            | Error::Deadline { .. }
            | Error::StreamClosed
            | Error::DuplicatePlugin { .. }
            | Error::RouteConflict { .. } => self.to_string(),
        }
    }

    /// Whether the caller's message is best given with the request id, to find the
    /// detail in the log: failures of an upstream or of ours.
    pub fn wants_request_id(&self) -> bool {
        matches!(
            self,
            Error::UpstreamConnect { .. }
                | Error::UpstreamReply { .. }
                | Error::UpstreamTimeout { .. }
                | Error::Overloaded { .. }
                | Error::Deadline { .. }
                | Error::Mailbox(_)
                | Error::Internal(_)
                | Error::PluginConfig { .. }
                | Error::PluginPanic { .. }
        )
    }

    /// The problems with a call's arguments, when that is what failed (a 422 carries
    /// them as details).
    pub fn arg_problems(&self) -> Option<&[ArgProblem]> {
        match self {
            Error::BadArguments { problems, .. } => Some(problems),
            _ => None,
        }
    }

    /// What a caught panic's payload says (its `&str` or `String`), for
    /// [`Error::PluginPanic`].
    pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
        match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
            (Some(text), _) => (*text).to_owned(),
            (_, Some(text)) => text.clone(),
            _ => "(no message)".to_owned(),
        }
    }

    /// A plugin error with a status and message.
    pub fn plugin(status: u16, message: impl Into<String>) -> Self {
        Error::Plugin {
            status,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn endpoint() -> Peer {
        Peer::endpoint("http://10.0.0.1:80".parse().unwrap(), None)
    }

    /// The first error of type `T` in `error`'s `source()` chain (itself excluded).
    fn cause<T: std::error::Error + 'static>(error: &dyn std::error::Error) -> Option<&T> {
        let mut source = error.source();
        while let Some(inner) = source {
            if let Some(found) = inner.downcast_ref::<T>() {
                return Some(found);
            }
            source = inner.source();
        }
        None
    }

    /// What a real upstream on 127.0.0.1 makes hyper say when it answers `answer` (and
    /// closes) to a request whose body is `body`: the error of the exchange, or of
    /// reading the body when the head was fine.
    async fn hyper_error<B>(answer: &'static [u8], body: B) -> hyper::Error
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        actix_rt::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = socket.read(&mut head).await;
            let _ = socket.write_all(answer).await;
        });
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        actix_rt::spawn(connection);
        let request = http1::Request::post("/x")
            .header("host", "u")
            .body(body)
            .unwrap();
        match sender.send_request(request).await {
            Err(error) => error,
            Ok(response) => response
                .into_body()
                .collect()
                .await
                .expect_err("the body breaks off"),
        }
    }

    fn empty() -> http_body_util::Empty<Bytes> {
        http_body_util::Empty::new()
    }

    #[test]
    fn upstream_details_stay_in_the_log() {
        let error = Error::UpstreamConnect {
            upstream: endpoint(),
            cause: ConnectFailure::Tls(Arc::new(std::io::Error::other(
                "invalid peer certificate: UnknownIssuer",
            ))),
        };
        assert!(
            error.to_string().contains("UnknownIssuer"),
            "the log gets the detail"
        );
        let cause = std::error::Error::source(&error).expect("the connect failure");
        let io = cause.source().expect("what TLS said");
        assert!(
            io.to_string().contains("UnknownIssuer"),
            "the chain reaches the library's error: {io}"
        );
        assert_eq!(
            error.external_message(),
            "Bad Gateway: upstream unreachable"
        );
        let timeout = Error::UpstreamTimeout {
            upstream: endpoint(),
            seconds: 600.0,
        };
        assert_eq!(
            timeout.to_string(),
            "upstream http://10.0.0.1:80 did not answer within 600.000s"
        );
        assert_eq!(
            timeout.external_message(),
            "Gateway Timeout: upstream did not answer in time"
        );
        assert_eq!(
            Error::Internal(Fault::PoolStopped).external_message(),
            "internal error"
        );
        let status = Error::UpstreamStatus {
            upstream: endpoint(),
            status: 418,
            message: "teapot".into(),
        };
        assert_eq!(
            status.to_string(),
            "upstream http://10.0.0.1:80 answered 418: teapot"
        );
        assert_eq!(
            status.external_message(),
            "upstream answered 418: teapot",
            "its status and message, not its URL"
        );
        let broken = Error::UpstreamReply {
            upstream: endpoint(),
            reason: BrokenReply::UnsolicitedSwitch,
        };
        assert_eq!(
            broken.to_string(),
            "upstream http://10.0.0.1:80 sent a broken reply: switched protocols (101) without being asked to"
        );
        assert_eq!(
            broken.external_message(),
            "Bad Gateway: upstream sent a broken reply"
        );
        let resolved = Peer::endpoint(
            "https://api.internal:8443/v1".parse().unwrap(),
            Some("10.0.0.7:8443".parse().unwrap()),
        );
        let overloaded = Error::Overloaded {
            upstream: Peer::pool("http://a:1,http://b:2"),
            retry_after: 1,
        };
        assert_eq!(
            overloaded.to_string(),
            "overloaded: every endpoint of http://a:1,http://b:2 is at its in-flight limit"
        );
        for error in [
            Error::UpstreamTimeout {
                upstream: resolved.clone(),
                seconds: 1.0,
            },
            overloaded,
        ] {
            let told = error.external_message();
            assert!(
                !told.contains("http") && !told.contains("10.0.0"),
                "no URL or address told: {told}"
            );
        }
    }

    /// Our own faults say what failed, and reach the library's error.
    #[test]
    fn faults_name_what_failed_and_keep_the_cause() {
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let text = json.to_string();
        let error = Error::Internal(Fault::ArgumentsNotJson(json));
        assert_eq!(
            error.to_string(),
            format!("internal error: arguments do not serialize: {text}")
        );
        assert!(
            cause::<serde_json::Error>(&error).is_some(),
            "the chain reaches serde's error"
        );
        assert_eq!(error.external_message(), "internal error");
        assert!(error.wants_request_id());
        let not_http = Error::Internal(Fault::NotHttp { api: "add".into() });
        assert_eq!(
            not_http.to_string(),
            "internal error: 'add' is not an HTTP operation"
        );
        assert_eq!(
            Error::Internal(Fault::PoolStopped).to_string(),
            "internal error: the upstream pool has stopped"
        );
        let too_large = BrokenReply::Body(BodyError::TooLarge { limit: 64 });
        assert_eq!(
            too_large.to_string(),
            "body could not be read: body larger than 64 bytes"
        );
    }

    /// A status line hyper cannot parse is a broken head; hyper's words are the log's,
    /// and its error is in the chain.
    #[actix_rt::test]
    async fn a_broken_head_keeps_hypers_error() {
        let hyper = hyper_error(b"HTTP/1.1 2x0 OK\r\n\r\n", empty()).await;
        let said = hyper.to_string();
        let reason = BrokenReply::of_exchange(WireError::Hyper(hyper));
        assert!(matches!(reason, BrokenReply::Head(_)), "{reason:?}");
        let error = Error::UpstreamReply {
            upstream: endpoint(),
            reason,
        };
        assert_eq!(
            error.to_string(),
            format!("upstream http://10.0.0.1:80 sent a broken reply: {said}")
        );
        let found = cause::<hyper::Error>(&error).expect("the chain reaches hyper's error");
        assert!(found.is_parse());
    }

    /// A body cut off before its `Content-Length`: read whole or streamed, the reason
    /// says so, and the chain reaches hyper's error and the socket's under it.
    #[actix_rt::test]
    async fn a_cut_off_body_says_so() {
        const CUT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        let streamed = Error::UpstreamReply {
            upstream: endpoint(),
            reason: BrokenReply::StreamCut(WireError::Hyper(hyper_error(CUT, empty()).await)),
        };
        assert_eq!(
            streamed.to_string(),
            "upstream http://10.0.0.1:80 sent a broken reply: the stream broke off: error reading a body from connection"
        );
        assert!(cause::<hyper::Error>(&streamed).is_some());
        let io = cause::<std::io::Error>(&streamed).expect("the chain reaches the socket's error");
        assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
        let whole = BrokenReply::Body(BodyError::Broken(WireError::Hyper(hyper_error(CUT, empty()).await)));
        assert_eq!(
            whole.to_string(),
            "body could not be read: error reading a body from connection"
        );
        assert!(cause::<std::io::Error>(&whole)
            .is_some_and(|e| e.kind() == std::io::ErrorKind::UnexpectedEof));
        let closed = BrokenReply::ClosedBeforeAnswer(WireError::Hyper(hyper_error(b"", empty()).await));
        assert_eq!(
            closed.to_string(),
            "closed the connection without answering"
        );
        assert!(cause::<hyper::Error>(&closed).is_some_and(hyper::Error::is_incomplete_message));
    }

    /// Our request body failing with an error of ours: the log tells ours, and the
    /// chain reaches it.
    #[test]
    fn our_failing_body_is_told_as_ours() {
        let error = Error::Internal(Fault::RequestBody(Box::new(Error::StreamClosed)));
        assert_eq!(
            error.to_string(),
            "internal error: request body broke off: the stream's consumer is gone"
        );
        assert!(
            matches!(cause::<Error>(&error), Some(Error::StreamClosed)),
            "ours is at the end of the chain"
        );
    }

    /// The pool's own client's causes read as hyper's did: a stream cut off says
    /// "before its end", and the socket's error is in the chain.
    #[test]
    fn the_wire_errors_read_naturally() {
        let cut = Error::UpstreamReply {
            upstream: endpoint(),
            reason: BrokenReply::StreamCut(WireError::ClosedInBody),
        };
        assert_eq!(
            cut.to_string(),
            "upstream http://10.0.0.1:80 sent a broken reply: the stream broke off before its end"
        );
        let reset = BrokenReply::of_exchange(WireError::Read(std::io::ErrorKind::ConnectionReset.into()));
        assert!(matches!(reset, BrokenReply::Connection(_)));
        assert!(cause::<std::io::Error>(&reset).is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset));
        let head = BrokenReply::of_exchange(WireError::Head(crate::wire_error::HeadError::ContentLength));
        assert!(matches!(head, BrokenReply::Head(_)));
        assert_eq!(head.to_string(), "invalid answer head: invalid Content-Length");
    }

    #[test]
    fn wrong_type_reads_naturally() {
        let p = ArgProblem::wrong_type("id", "integer", &Value::String("x".into()));
        assert_eq!(p.message, "argument 'id' must be an integer, got a string");
    }
}
