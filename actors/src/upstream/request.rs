//! How a call's arguments become an HTTP request on an API's signature.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;

use super::{proxy_function, Body, ForwardRequest};
use crate::api::{ApiKey, ApiSpec, Args, BodySpec, FormField, ParamLocation};
use crate::call::CallContext;
use crate::error::{ArgProblem, Error, Fault};

/// Characters escaped inside one path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `text` as one path segment: percent-encoded as the upstream receives it (a `/` in
/// it stays in its segment, as `%2F`); the `[limits]` gate counts calls on the same.
pub(crate) fn path_segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// How the boundary of multipart bodies we build starts; 128 random bits follow, new
/// for each body (see [`boundary_for`]).
const BOUNDARY: &str = "framex-rs-";

/// Maps `args` (already checked against `spec`) onto an HTTP request: the parameters
/// into the path, query and headers, then the body.
pub(super) fn build(spec: &ApiSpec, args: &Args, ctx: CallContext) -> Result<ForwardRequest, Error> {
    if let (ApiKey::Function(name), BodySpec::Kwargs) = (&spec.key, &spec.body) {
        return Ok(proxy_function_call(name, args, ctx));
    }
    let ApiKey::Http { method, path } = &spec.key else {
        return Err(Error::Internal(Fault::NotHttp { api: spec.key.to_string() }));
    };
    let (path_and_query, mut headers) = place_params(spec, args, path)?;
    let body = body_of(spec, args, &mut headers)?;
    Ok(ForwardRequest {
        method: method.clone(),
        path_and_query,
        headers,
        added: Vec::new(),
        body,
        ctx,
    })
}

/// The path of a call to the HTTP operation `template`: each path parameter's text
/// percent-encoded in its segment, as the upstream receives it (a `/` in it stays in
/// its segment, as `%2F`). The `[limits]` gate looks its rules up on the same path.
///
/// # Errors
/// A path argument `.` or `..`, which would climb out of the route at the upstream
/// (or at a proxy in front of it that normalises paths), as it would past a rule.
pub(crate) fn fill_path(spec: &ApiSpec, args: &Args, template: &str) -> Result<String, Error> {
    let mut path = template.to_owned();
    for param in spec.params.iter().filter(|p| p.location == ParamLocation::Path) {
        let Some(value) = args.get(&param.name).filter(|v| !v.is_null()) else {
            continue;
        };
        let text = text_of(value);
        if text == "." || text == ".." {
            return Err(bad(spec, &param.name, "path", "must not be '.' or '..'"));
        }
        path = path.replace(&format!("{{{}}}", param.name), &path_segment(&text));
    }
    Ok(path)
}

/// The path (`template` with its parameters filled in) and query, and the header
/// parameters, of a call.
fn place_params(spec: &ApiSpec, args: &Args, template: &str) -> Result<(String, HeaderMap), Error> {
    let path = fill_path(spec, args, template)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut headers = HeaderMap::new();
    for param in &spec.params {
        let Some(value) = args.get(&param.name).filter(|v| !v.is_null()) else {
            continue;
        };
        match param.location {
            ParamLocation::Path => {}
            ParamLocation::Query => match value {
                Value::Array(items) => {
                    for item in items {
                        query.append_pair(&param.name, &text_of(item));
                    }
                }
                other => {
                    query.append_pair(&param.name, &text_of(other));
                }
            },
            ParamLocation::Header => {
                let name = HeaderName::from_bytes(param.name.as_bytes());
                let value = HeaderValue::from_str(&text_of(value));
                match (name, value) {
                    (Ok(n), Ok(v)) => {
                        headers.insert(n, v);
                    }
                    _ => {
                        return Err(bad(spec, &param.name, "header", "not a valid header value"))
                    }
                }
            }
        }
    }
    let query = query.finish();
    let path_and_query = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    Ok((path_and_query, headers))
}

/// The body of a call as its signature says (JSON, form, multipart, raw), its
/// `Content-Type` added to `headers`.
fn body_of(spec: &ApiSpec, args: &Args, headers: &mut HeaderMap) -> Result<Body, Error> {
    Ok(match &spec.body {
        BodySpec::None => Body::Empty,
        BodySpec::Json { arg, .. } => match args.get(arg) {
            None => Body::Empty,
            Some(value) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Body::Full(Bytes::from(value.to_string()))
            }
        },
        BodySpec::Form { fields } => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for field in fields {
                if let Some(v) = args.get(&field.name).filter(|v| !v.is_null()) {
                    form.append_pair(&field.name, &text_of(v));
                }
            }
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            Body::Full(Bytes::from(form.finish()))
        }
        BodySpec::Multipart { fields } => {
            let (body, boundary) = multipart(spec, fields, args)?;
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}"))
                    .expect("the boundary is a token"),
            );
            Body::Full(body)
        }
        BodySpec::Kwargs => Body::Empty,
        BodySpec::Raw { content_type } => match args.get("body") {
            None => Body::Empty,
            Some(v) => {
                if let Ok(ct) = HeaderValue::from_str(content_type) {
                    headers.insert(header::CONTENT_TYPE, ct);
                }
                Body::Full(Bytes::from(text_of(v)))
            }
        },
    })
}

/// A FrameX proxy-function call: `POST /api/v1/proxy/remote` with the encoded name and
/// keyword arguments.
fn proxy_function_call(name: &str, args: &Args, ctx: CallContext) -> ForwardRequest {
    let body = serde_json::json!({
        "func_name": proxy_function::encode(&Value::String(name.to_owned())),
        "data": proxy_function::encode(&Value::Object(args.clone())),
    });
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    ForwardRequest {
        method: http::Method::POST,
        path_and_query: proxy_function::PATH.to_owned(),
        headers,
        added: Vec::new(),
        body: Body::Full(Bytes::from(body.to_string())),
        ctx,
    }
}

/// The text form of a basic value, as it travels in a query, path, header or form.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn bad(spec: &ApiSpec, name: &str, location: &str, message: &str) -> Error {
    Error::BadArguments {
        api: spec.key.to_string(),
        problems: vec![ArgProblem::invalid(
            name,
            location,
            format!("argument '{name}': {message}"),
        )],
    }
}

/// A file argument: a string (its content), or an object with `filename`,
/// `content_type` and `content` (text) or `content_base64`.
struct FilePart {
    filename: String,
    content_type: String,
    content: Vec<u8>,
}

fn file_part(spec: &ApiSpec, name: &str, value: &Value) -> Result<FilePart, Error> {
    match value {
        Value::String(s) => Ok(FilePart {
            filename: name.to_owned(),
            content_type: "application/octet-stream".to_owned(),
            content: s.clone().into_bytes(),
        }),
        Value::Object(o) => {
            let content = if let Some(b64) = o.get("content_base64").and_then(Value::as_str) {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| bad(spec, name, "form", &format!("content_base64 is not base64: {e}")))?
            } else if let Some(text) = o.get("content").and_then(Value::as_str) {
                text.as_bytes().to_vec()
            } else {
                return Err(bad(spec, name, "form", "a file needs 'content' or 'content_base64'"));
            };
            Ok(FilePart {
                filename: o
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or(name)
                    .to_owned(),
                content_type: o
                    .get("content_type")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                content,
            })
        }
        _ => Err(bad(spec, name, "form", "a file must be a string or an object")),
    }
}

/// A multipart body of the form fields in `args`, and its boundary. A part's name and
/// file name have `"`, CR and LF percent-encoded (as browsers send them); a file's
/// content type with a control character is refused; the boundary occurs in no part,
/// so no value can end its part early or add one.
fn multipart(spec: &ApiSpec, fields: &[FormField], args: &Args) -> Result<(Bytes, String), Error> {
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    for field in fields {
        let Some(value) = args.get(&field.name).filter(|v| !v.is_null()) else {
            continue;
        };
        let name = quoted(&field.name);
        let items: Vec<&Value> = match value {
            Value::Array(items) if field.file => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            if field.file {
                let file = file_part(spec, &field.name, item)?;
                if file.content_type.bytes().any(|b| b.is_ascii_control()) {
                    return Err(bad(spec, &field.name, "form", "a file's content_type may not hold control characters"));
                }
                let head = format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                    quoted(&file.filename),
                    file.content_type
                );
                parts.push((head, file.content));
            } else {
                let head = format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n");
                parts.push((head, text_of(item).into_bytes()));
            }
        }
    }
    let boundary = boundary_for(&parts);
    // Sized once; each part is let go as it is copied in, so the body and its parts
    // are not all held at once.
    let size = parts.iter().map(|(head, content)| boundary.len() + head.len() + content.len() + 6).sum::<usize>();
    let mut out = BytesMut::with_capacity(size + boundary.len() + 6);
    for (head, content) in parts {
        out.put_slice(format!("--{boundary}\r\n").as_bytes());
        out.put_slice(head.as_bytes());
        out.put_slice(&content);
        out.put_slice(b"\r\n");
    }
    out.put_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((out.freeze(), boundary))
}

/// A part's name or file name for its quoted header parameter: `"`, CR and LF
/// percent-encoded.
fn quoted(text: &str) -> String {
    text.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

/// A boundary that occurs in none of `parts`: [`BOUNDARY`] and 128 bits no client can
/// guess (SipHash under the process's random keys), drawn again in the unlikely case
/// that a part holds them. One scan of the parts, whatever they hold.
fn boundary_for(parts: &[(String, Vec<u8>)]) -> String {
    use std::hash::BuildHasher as _;
    loop {
        let random = std::collections::hash_map::RandomState::new();
        let boundary = format!("{BOUNDARY}{:016x}{:016x}", random.hash_one(0u8), random.hash_one(1u8));
        let finder = memchr::memmem::Finder::new(boundary.as_bytes());
        let occurs = parts.iter().any(|(head, content)| finder.find(head.as_bytes()).is_some() || finder.find(content).is_some());
        if !occurs {
            return boundary;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Param, ValueKind};
    use http::Method;
    use serde_json::json;

    fn spec() -> ApiSpec {
        let mut s = ApiSpec::new(ApiKey::Http {
            method: Method::GET,
            path: "/api/v1/items/{id}".into(),
        });
        for (name, location, kind) in [
            ("id", ParamLocation::Path, ValueKind::String),
            ("tags", ParamLocation::Query, ValueKind::Array),
            ("limit", ParamLocation::Query, ValueKind::Integer),
        ] {
            s.params.push(Param {
                name: name.into(),
                location,
                kind,
                items: None,
                required: false,
                schema: Value::Null,
                canonical: None,
            });
        }
        s
    }

    #[test]
    fn arguments_land_in_path_and_query() {
        let args = json!({"id": "a b/c", "tags": ["x", "y"], "limit": 3});
        let req = build(&spec(), args.as_object().unwrap(), CallContext::new()).unwrap();
        assert_eq!(req.path_and_query, "/api/v1/items/a%20b%2Fc?tags=x&tags=y&limit=3");
    }

    /// A path argument that is a dot segment would climb out of the route at the
    /// upstream (or a normalising proxy before it): refused before any I/O.
    #[test]
    fn dot_segments_are_refused_as_path_arguments() {
        for dots in [".", ".."] {
            let args = json!({"id": dots});
            let refused = build(&spec(), args.as_object().unwrap(), CallContext::new());
            assert!(matches!(refused, Err(Error::BadArguments { .. })), "{dots}: {:?}", refused.map(|r| r.path_and_query));
        }
        let args = json!({"id": "..."});
        assert_eq!(build(&spec(), args.as_object().unwrap(), CallContext::new()).unwrap().path_and_query, "/api/v1/items/...");
    }

    /// Path parameters fill their own segments as the upstream receives them (what
    /// the `[limits]` gate counts); arguments that are not path parameters do not.
    #[test]
    fn path_parameters_are_filled_in_their_segments() {
        let template = "/api/v1/items/{id}";
        for (id, path) in [(json!(42), "/api/v1/items/42"), (json!("a/b"), "/api/v1/items/a%2Fb"), (json!("café"), "/api/v1/items/caf%C3%A9")] {
            let args = json!({"id": id, "limit": 1});
            assert_eq!(fill_path(&spec(), args.as_object().unwrap(), template).unwrap(), path);
        }
        let args = json!({"limit": 1, "other": "x"});
        assert_eq!(fill_path(&spec(), args.as_object().unwrap(), template).unwrap(), template, "no argument, no filling");
        let args = json!({"id": ".."});
        assert!(fill_path(&spec(), args.as_object().unwrap(), template).is_err());
    }
}
