//! The streaming bridge: chunks pushed by the producing actor, consumed as a `Stream`.
//!
//! A producer (a plugin's streaming handler, or an upstream pool reading a response
//! body) holds a [`ChunkSender`]; the consumer (the HTTP response, or a plugin that
//! called a streaming API) holds the matching [`ChunkStream`]. The channel between them
//! is bounded ([`CHUNK_CHANNEL_CAPACITY`]), so a slow consumer makes `send` wait and the
//! producer slows down with it: memory stays flat however long the stream is.
//!
//! Semantics:
//! - end of stream: the sender is dropped after its last chunk;
//! - failure: the producer calls [`ChunkSender::fail`]; the consumer sees one `Err`
//!   item and then the end;
//! - cancellation: the consumer drops the stream; the producer's next `send` returns
//!   [`Error::StreamClosed`] and [`ChunkSender::closed`] resolves, so it can stop reading
//!   its own source at once.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use crate::error::Error;

/// How many chunks may wait between producer and consumer.
pub const CHUNK_CHANNEL_CAPACITY: usize = 8;

/// Creates a bounded bridge of [`CHUNK_CHANNEL_CAPACITY`] chunks.
pub fn bridge() -> (ChunkSender, ChunkStream) {
    let (tx, rx) = mpsc::channel(CHUNK_CHANNEL_CAPACITY);
    (ChunkSender { tx }, ChunkStream { rx, head: None, held: None })
}

/// The producing end of a bridge.
#[derive(Debug, Clone)]
pub struct ChunkSender {
    tx: mpsc::Sender<Result<Bytes, Error>>,
}

impl ChunkSender {
    /// Sends one chunk, waiting while the bridge is full (backpressure).
    ///
    /// # Errors
    /// [`Error::StreamClosed`] when the consumer is gone: stop producing.
    pub async fn send(&self, chunk: Bytes) -> Result<(), Error> {
        // Room in the bridge (nearly always): no waiting future to build and poll.
        match self.tx.try_send(Ok(chunk)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::StreamClosed),
            Err(mpsc::error::TrySendError::Full(item)) => self.tx.send(item).await.map_err(|_| Error::StreamClosed),
        }
    }

    /// Ends the stream with an error the consumer will see as its last item.
    pub async fn fail(self, error: Error) {
        let _ = self.tx.send(Err(error)).await;
    }

    /// Whether the consumer has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the consumer has gone away (for cancelling the source).
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The consuming end of a bridge: a `Stream` of byte chunks.
#[derive(Debug)]
pub struct ChunkStream {
    rx: mpsc::Receiver<Result<Bytes, Error>>,
    /// A chunk already taken off the channel by [`ChunkStream::started`].
    head: Option<Bytes>,
    /// What the stream holds while it lives (a limit's concurrency slot).
    held: Option<Held>,
}

/// Something held while a call's reply lives, given back when dropped (a limit's
/// concurrency slot): for a stream, until it ends or its reader drops it.
pub struct Held(pub Box<dyn Send>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

impl ChunkStream {
    /// The same stream, holding `held` until it ends or is dropped.
    pub fn holding(mut self, held: Held) -> Self {
        self.held = Some(held);
        self
    }

    /// Waits for the stream to start: its first chunk, its end, or its failure.
    ///
    /// A stream that fails before its first chunk should be answered with a normal
    /// error response rather than a started stream; this is where that is decided.
    ///
    /// # Errors
    /// The error the producer failed with before sending anything.
    pub async fn started(mut self) -> Result<Self, Error> {
        if self.head.is_none() {
            match self.rx.recv().await {
                Some(Ok(first)) => self.head = Some(first),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok(self)
    }

    /// Reads the whole stream into one buffer (for callers that want a value).
    ///
    /// # Errors
    /// The error the producer ended the stream with.
    pub async fn collect_bytes(mut self) -> Result<Bytes, Error> {
        let mut buf = bytes::BytesMut::new();
        if let Some(head) = self.head.take() {
            buf.extend_from_slice(&head);
        }
        while let Some(chunk) = self.rx.recv().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

impl Stream for ChunkStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(head)));
        }
        let next = self.rx.poll_recv(cx);
        if let Poll::Ready(None) = next {
            // Ended: what it held goes back now, not when the reader drops it.
            self.held = None;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[actix_rt::test]
    async fn chunks_arrive_in_order_then_the_end() {
        let (tx, mut rx) = bridge();
        actix_rt::spawn(async move {
            for i in 0..20u8 {
                tx.send(Bytes::from(vec![i])).await.unwrap();
            }
        });
        let mut seen = Vec::new();
        while let Some(chunk) = rx.next().await {
            seen.push(chunk.unwrap()[0]);
        }
        assert_eq!(seen, (0..20).collect::<Vec<u8>>());
    }

    #[actix_rt::test]
    async fn a_full_bridge_holds_the_producer_back() {
        let (tx, rx) = bridge();
        for _ in 0..CHUNK_CHANNEL_CAPACITY {
            tx.send(Bytes::from_static(b"x")).await.unwrap();
        }
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            tx.send(Bytes::from_static(b"x")),
        )
        .await;
        assert!(blocked.is_err(), "send must wait while the consumer is behind");
        drop(rx);
        assert!(matches!(
            tx.send(Bytes::from_static(b"x")).await,
            Err(Error::StreamClosed)
        ));
    }

    #[actix_rt::test]
    async fn failure_is_the_last_item() {
        let (tx, mut rx) = bridge();
        actix_rt::spawn(async move {
            tx.send(Bytes::from_static(b"a")).await.unwrap();
            tx.fail(Error::Internal(crate::error::Fault::PoolStopped)).await;
        });
        assert!(rx.next().await.unwrap().is_ok());
        assert!(rx.next().await.unwrap().is_err());
        assert!(rx.next().await.is_none());
    }
}
