//! Reading request bodies under the size limit, and turning engine streams into
//! response bodies.

use actix_web::body::SizedStream;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use bytes::{Bytes, BytesMut};
use framex_actors::sse::Event;
use framex_actors::stream::ChunkStream;
use framex_actors::Error;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

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
    // The first chunk is kept as it came: a body that comes in one chunk, as a small
    // one mostly does, is passed on without a copy. A second chunk starts the copy.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(payload_error)?;
        let held = first.as_ref().map_or(buf.len(), Bytes::len);
        if held + chunk.len() > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        match first.take() {
            None if buf.is_empty() => first = Some(chunk),
            earlier => {
                if let Some(earlier) = earlier {
                    buf.reserve(earlier.len() + chunk.len());
                    buf.extend_from_slice(&earlier);
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
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
fn response_stream(stream: ChunkStream, sse: bool, tap: Option<StreamTap>) -> EngineBody {
    // An open SSE stream is counted until the body ends or is dropped (abandoned).
    let open = sse.then(crate::metrics::sse_stream_open);
    EngineBody { stream: Some(stream), sse, open, tap }
}

/// [`response_stream`]'s body: a stream of its own rather than an `unfold`, whose
/// state moved out of and back into a new future for every chunk (a copy per event).
struct EngineBody {
    /// The engine's stream; `None` once it ended.
    stream: Option<ChunkStream>,
    sse: bool,
    open: Option<crate::metrics::SseOpen>,
    tap: Option<StreamTap>,
}

impl EngineBody {
    /// The last item: the stream, the open count and the tap go now.
    fn end(&mut self, last: Option<Result<Bytes, actix_web::Error>>) -> Poll<Option<Result<Bytes, actix_web::Error>>> {
        self.stream = None;
        self.open = None;
        self.tap = None;
        Poll::Ready(last)
    }
}

impl Stream for EngineBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(stream.poll_next_unpin(cx)) {
            None => self.end(None),
            Some(Ok(bytes)) => {
                crate::metrics::streamed(bytes.len());
                Poll::Ready(Some(Ok(bytes)))
            }
            Some(Err(e)) => {
                if let Some(tap) = &self.tap {
                    tap.broken(&e);
                }
                if self.sse {
                    log::warn!("stream ended by error: {}", framex_actors::Escaped(&e));
                    let event = Event::error(status_of(&e).as_u16(), e.external_message());
                    self.end(Some(Ok(event.to_bytes())))
                } else {
                    log::warn!("stream aborted: {}", framex_actors::Escaped(&e));
                    self.end(Some(Err(actix_web::error::ErrorBadGateway(e.external_message()))))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::FromRequest as _;

    /// [`read_all`] of a payload that comes as `chunks`.
    async fn read(chunks: &[&'static [u8]], limit: usize) -> Result<Bytes, Error> {
        let chunks: Vec<Result<Bytes, actix_web::error::PayloadError>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        let stream: Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::error::PayloadError>>>> = Box::pin(futures::stream::iter(chunks));
        let mut payload = actix_web::dev::Payload::Stream { payload: stream };
        let req = actix_web::test::TestRequest::default().to_http_request();
        let payload = web::Payload::from_request(&req, &mut payload).await.expect("a payload");
        read_all(payload, limit).await
    }

    /// A body is read whole and in order however it is cut, empty chunks included, and
    /// refused past the limit whether the excess comes in its first chunk or a later one.
    #[actix_rt::test]
    async fn a_body_is_read_whole_in_order_and_limited() {
        let cuts: [&[&[u8]]; 6] = [&[b"abcd"], &[b"", b"abcd"], &[b"ab", b"cd"], &[b"a", b"", b"bc", b"d"], &[b"abc", b"d", b""], &[b"a", b"b", b"c", b"d"]];
        for cut in cuts {
            assert_eq!(read(cut, 4).await.expect("within the limit"), &b"abcd"[..], "{cut:?}");
            assert!(matches!(read(cut, 3).await, Err(Error::PayloadTooLarge { limit: 3 })), "{cut:?} over 3 bytes");
        }
        assert_eq!(read(&[], 4).await.expect("empty"), &b""[..]);
    }
}
