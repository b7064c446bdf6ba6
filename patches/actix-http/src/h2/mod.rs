//! HTTP/2 protocol.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use actix_codec::{AsyncRead, AsyncWrite};
use bytes::Bytes;
use futures_core::{ready, Stream};
use h2::{
    server::{Builder, Connection, Handshake},
    RecvStream,
};
use tokio::time::{sleep_until, Sleep};

use crate::{
    config::ServiceConfig,
    error::{DispatchError, PayloadError},
};

mod dispatcher;
mod service;

pub use self::{dispatcher::Dispatcher, service::H2Service};

/// HTTP/2 peer stream.
pub struct Payload {
    stream: RecvStream,
}

impl Payload {
    pub(crate) fn new(stream: RecvStream) -> Self {
        Self { stream }
    }
}

impl Stream for Payload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();

        match ready!(Pin::new(&mut this.stream).poll_data(cx)) {
            Some(Ok(chunk)) => {
                let len = chunk.len();

                match this.stream.flow_control().release_capacity(len) {
                    Ok(()) => Poll::Ready(Some(Ok(chunk))),
                    Err(err) => Poll::Ready(Some(Err(err.into()))),
                }
            }
            Some(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            None => Poll::Ready(None),
        }
    }
}

/// framex-rs patch: streams one HTTP/2 connection may have open at once
/// (`SETTINGS_MAX_CONCURRENT_STREAMS`); more are refused by the h2 codec.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// framex-rs patch: largest header list accepted on HTTP/2
/// (`SETTINGS_MAX_HEADER_LIST_SIZE`, HPACK-decoded size); a larger one gets 431, and a
/// header block over it arriving in CONTINUATION frames closes the connection.
pub const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;

/// framex-rs patch: most header fields one HTTP/2 request may carry, as HTTP/1.1's
/// parser allows (`h1::MAX_HEADERS`); more get 431.
pub const MAX_HEADERS: usize = crate::h1::MAX_HEADERS;

thread_local! {
    /// framex-rs patch: HTTP/2 streams open on this thread, all connections together.
    pub(crate) static THREAD_STREAMS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// framex-rs patch: most streams [`THREAD_STREAMS`] may reach; 0 = no limit.
    pub(crate) static THREAD_STREAM_LIMIT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// framex-rs patch: limits the HTTP/2 streams open at once on the calling thread (a
/// server worker), all its connections together, to `limit` (0 = no limit): a stream
/// beyond it is refused with `REFUSED_STREAM`, which tells the client the request was
/// not processed. A server sets it on each worker thread, as it sets the connection
/// limit per worker, so that streams are counted against the same bound as connections.
pub fn set_thread_stream_limit(limit: usize) {
    THREAD_STREAM_LIMIT.with(|l| l.set(limit));
}

pub(crate) fn handshake_with_timeout<T>(io: T, config: &ServiceConfig) -> HandshakeWithTimeout<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut builder = Builder::new();
    builder
        .initial_window_size(config.h2_initial_window_size())
        .initial_connection_window_size(config.h2_initial_connection_window_size())
        // framex-rs patch: advertise and enforce stream and header limits (h2's defaults
        // are no stream limit and a 16 MiB header list, buffered whole).
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE);

    HandshakeWithTimeout {
        handshake: builder.handshake(io),
        timer: config
            .client_request_deadline()
            .map(|deadline| Box::pin(sleep_until(deadline.into()))),
    }
}

pub(crate) struct HandshakeWithTimeout<T: AsyncRead + AsyncWrite + Unpin> {
    handshake: Handshake<T>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Future for HandshakeWithTimeout<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    type Output = Result<(Connection<T, Bytes>, Option<Pin<Box<Sleep>>>), DispatchError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();

        match Pin::new(&mut this.handshake).poll(cx)? {
            // return the timer on success handshake; its slot can be re-used for h2 ping-pong
            Poll::Ready(conn) => Poll::Ready(Ok((conn, this.timer.take()))),
            Poll::Pending => match this.timer.as_mut() {
                Some(timer) => {
                    ready!(timer.as_mut().poll(cx));
                    Poll::Ready(Err(DispatchError::SlowRequestTimeout))
                }
                None => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use static_assertions::assert_impl_all;

    use super::*;

    assert_impl_all!(Payload: Unpin, Send, Sync);
}
