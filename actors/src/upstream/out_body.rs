//! A request body as the upstream clients send it: nothing, bytes held whole, or a
//! stream (also hyper's `Body`, for the clients still on hyper).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use http_body::{Frame, SizeHint};

use super::Body;
use crate::error::Error;

/// A request body: nothing, bytes held whole, or a stream.
pub(super) enum OutBody {
    /// No body.
    Empty,
    /// Bytes held whole (taken on the first poll).
    Full(Option<Bytes>),
    /// A stream of chunks; an error in it aborts the request.
    Stream(crate::stream::ChunkStream),
}

impl From<Body> for OutBody {
    fn from(body: Body) -> Self {
        match body {
            Body::Empty => OutBody::Empty,
            Body::Full(bytes) => OutBody::Full(Some(bytes)),
            Body::Stream(stream) => OutBody::Stream(stream),
        }
    }
}

impl From<OutBody> for Body {
    fn from(body: OutBody) -> Self {
        match body {
            OutBody::Empty | OutBody::Full(None) => Body::Empty,
            OutBody::Full(Some(bytes)) => Body::Full(bytes),
            OutBody::Stream(stream) => Body::Stream(stream),
        }
    }
}

impl http_body::Body for OutBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.get_mut() {
            OutBody::Empty => Poll::Ready(None),
            OutBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            OutBody::Stream(stream) => Pin::new(stream)
                .poll_next(cx)
                .map(|item| item.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Empty => true,
            OutBody::Full(bytes) => bytes.is_none(),
            OutBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Empty => SizeHint::with_exact(0),
            OutBody::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            OutBody::Stream(_) => SizeHint::default(),
        }
    }
}

