//! Reading request bodies under the size limit, and turning engine streams into
//! response bodies.

use actix_web::body::SizedStream;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use bytes::{Bytes, BytesMut};
use framex_actors::sse::Event;
use framex_actors::stream::ChunkStream;
use framex_actors::Error;
use futures::{Stream, StreamExt};

use super::body_deadline::{payload_error, BodyDeadlines};
use super::error::status_of;
use crate::sentry_events::StreamTap;

/// Reads a whole request body, refusing more than `limit` bytes or a body that takes
/// longer than `within` to arrive.
///
/// # Errors
/// [`Error::PayloadTooLarge`], [`Error::BodyTimeout`] past `within`, or
/// [`Error::ClientAbort`] when the client broke off.
pub async fn read_limited(payload: web::Payload, limit: usize, within: &BodyDeadlines) -> Result<Bytes, Error> {
    tokio::time::timeout(within.total, read_all(payload, limit))
        .await
        .unwrap_or_else(|_| Err(within.total_exceeded()))
}

async fn read_all(mut payload: web::Payload, limit: usize) -> Result<Bytes, Error> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(payload_error)?;
        if buf.len() + chunk.len() > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The streamed answer of `builder`: `stream` as its body (declared `length` bytes
/// long when known and not SSE), and, with `sentry` on, the [`StreamTap`] the body
/// tells of a break in the response's extensions, for the dispatcher to arm. The one
/// place both local and proxied streams are answered.
pub(super) fn streamed(
    mut builder: HttpResponseBuilder,
    stream: ChunkStream,
    sse: bool,
    length: Option<u64>,
    sentry: bool,
) -> HttpResponse {
    let tap = sentry.then(StreamTap::default);
    let body = response_stream(stream, sse, tap.clone());
    let mut response = match length {
        Some(n) if !sse => builder.body(SizedStream::new(n, body)),
        _ => builder.streaming(body),
    };
    if let Some(tap) = tap {
        response.extensions_mut().insert(tap);
    }
    response
}

/// A response body from an engine stream.
///
/// For server-sent events a failure after the stream started becomes one `error`
/// event and a clean end, as FrameX clients expect; for other bodies it aborts the
/// response, so the client sees a truncated transfer rather than a silent success.
/// Either way `tap` (given when `[sentry]` is on) is told of it.
fn response_stream(
    stream: ChunkStream,
    sse: bool,
    tap: Option<StreamTap>,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    // An open SSE stream is counted until the body is dropped (ended or abandoned).
    let open = sse.then(crate::metrics::sse_stream_open);
    futures::stream::unfold(Some((stream, open, tap)), move |state| async move {
        let (mut stream, open, tap) = state?;
        match stream.next().await {
            None => None,
            Some(Ok(bytes)) => {
                crate::metrics::streamed(bytes.len());
                Some((Ok(bytes), Some((stream, open, tap))))
            }
            Some(Err(e)) if sse => {
                log::warn!("stream ended by error: {}", framex_actors::Escaped(&e));
                if let Some(tap) = &tap {
                    tap.broken(&e);
                }
                let event = Event::error(status_of(&e).as_u16(), e.external_message());
                Some((Ok(event.to_bytes()), None))
            }
            Some(Err(e)) => {
                log::warn!("stream aborted: {}", framex_actors::Escaped(&e));
                if let Some(tap) = &tap {
                    tap.broken(&e);
                }
                Some((
                    Err(actix_web::error::ErrorBadGateway(e.external_message())),
                    None,
                ))
            }
        }
    })
}
