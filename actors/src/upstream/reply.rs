//! How an upstream's answer becomes a call's reply (FrameX's post-call rules).
//!
//! - An error status becomes [`Error::UpstreamStatus`] with the upstream's message
//!   (`detail` for FastAPI, `message` for FrameX, else the text).
//! - A FrameX envelope (an object with an integer `status` and a `data` or `message`)
//!   is unwrapped to `data` when its status is in `legal_proxy_code`, else it is an
//!   error with the envelope's status and message.
//! - Other JSON is returned as it is; anything else as text.
//! - Streaming APIs and `text/event-stream` replies come back as streams.

use bytes::Bytes;
use serde_json::Value;

use super::{proxy_function, Body, ForwardResponse};
use crate::call::Reply;
use crate::error::{BrokenReply, Error, Fault};
use crate::peer::Peer;
use crate::stream::{bridge, ChunkStream};

/// Upstream messages quoted in errors are cut to this many characters.
const MESSAGE_LIMIT: usize = 512;

/// Most bytes a proxy function's result from an upstream may decode to.
const RESULT_DECODED_LIMIT: usize = 64 * 1024 * 1024;

/// What a call's reply is, per FrameX's rules; for a proxy function (`kwargs`), the
/// unwrapped `data` is decoded from FrameX's encoding.
pub(super) async fn interpret(
    upstream: &Peer,
    response: ForwardResponse,
    streaming: bool,
    kwargs: bool,
    legal_codes: &[u16],
) -> Result<Reply, Error> {
    if response.status.is_success() && (streaming || response.event_stream) {
        return Ok(Reply::Stream(into_stream(response.body)));
    }
    let bytes = match response.body {
        Body::Empty => Bytes::new(),
        Body::Full(bytes) => bytes,
        Body::Stream(stream) => stream.collect_bytes().await?,
    };
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    if !response.status.is_success() {
        return Err(Error::UpstreamStatus {
            upstream: upstream.clone(),
            status: response.status.as_u16(),
            message: message_of(json.as_ref(), &bytes),
        });
    }
    let value = match json {
        Some(Value::Object(mut map)) if is_envelope(&map) => {
            let status = map.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
            if legal_codes.contains(&status) {
                map.remove("data").unwrap_or(Value::Null)
            } else {
                return Err(Error::UpstreamStatus {
                    upstream: upstream.clone(),
                    status,
                    message: message_of(Some(&Value::Object(map)), &bytes),
                });
            }
        }
        Some(value) => value,
        None => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
    };
    match value {
        Value::String(encoded) if kwargs => {
            // Decompression is CPU work: off the event loop.
            let limits = proxy_function::DecodeLimits {
                max_decoded: RESULT_DECODED_LIMIT,
            };
            let decoded = actix_rt::task::spawn_blocking(move || proxy_function::decode(&encoded, limits))
                .await
                .map_err(|e| Error::Internal(Fault::DecodeTask(e)))?;
            decoded.map(Reply::Value).map_err(|e| Error::UpstreamReply {
                upstream: upstream.clone(),
                reason: BrokenReply::ProxyFunctionResult(Box::new(e)),
            })
        }
        value => Ok(Reply::Value(value)),
    }
}

fn is_envelope(map: &serde_json::Map<String, Value>) -> bool {
    map.get("status").is_some_and(Value::is_u64)
        && (map.contains_key("data") || map.contains_key("message"))
}

fn message_of(json: Option<&Value>, bytes: &[u8]) -> String {
    let text = match json.and_then(|j| j.get("detail").or_else(|| j.get("message"))) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    };
    if text.chars().count() > MESSAGE_LIMIT {
        text.chars().take(MESSAGE_LIMIT).collect::<String>() + "…"
    } else {
        text
    }
}

fn into_stream(body: Body) -> ChunkStream {
    match body {
        Body::Stream(stream) => stream,
        Body::Empty => bridge().1,
        Body::Full(bytes) => {
            let (sender, stream) = bridge();
            actix_rt::spawn(async move {
                let _ = sender.send(bytes).await;
            });
            stream
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::StatusCode;
    use serde_json::json;

    fn response(status: u16, body: &str) -> ForwardResponse {
        ForwardResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            content_length: Some(body.len() as u64),
            event_stream: false,
            body: Body::Full(Bytes::from(body.to_owned())),
            endpoint: 0,
            attempts: 1,
        }
    }

    async fn value(status: u16, body: &str) -> Result<Value, Error> {
        interpret(&Peer::pool("http://u"), response(status, body), false, false, &[200])
            .await?
            .into_value()
            .await
    }

    #[actix_rt::test]
    async fn envelopes_are_unwrapped_when_their_status_is_legal() {
        let got = value(200, r#"{"status":200,"message":"success","data":{"a":1}}"#).await;
        assert_eq!(got.unwrap(), json!({"a": 1}));
        let err = value(200, r#"{"status":500,"message":"exploded"}"#).await.unwrap_err();
        assert!(matches!(err, Error::UpstreamStatus { status: 500, ref message, .. } if message == "exploded"));
    }

    #[actix_rt::test]
    async fn other_json_and_text_pass_as_they_are() {
        assert_eq!(value(200, r#"{"status":"ok"}"#).await.unwrap(), json!({"status": "ok"}));
        assert_eq!(value(200, "plain").await.unwrap(), json!("plain"));
    }

    #[actix_rt::test]
    async fn error_statuses_carry_fastapis_detail() {
        let err = value(418, r#"{"detail":"I'm a teapot"}"#).await.unwrap_err();
        assert!(matches!(err, Error::UpstreamStatus { status: 418, ref message, .. } if message == "I'm a teapot"));
    }
}
