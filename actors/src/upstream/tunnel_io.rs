//! An upgraded connection's raw bytes, split into its two directions.
//!
//! hyper hands an upgraded connection back as `Upgraded`, a boxed stream behind a
//! rewind buffer; each read or write through it goes through three wrappers, and
//! tokio's `split` puts a lock in front of both halves. A tunnel moves every byte of
//! a WebSocket that way, so a plain TCP connection is taken back out of hyper: its
//! halves are tokio's owned halves (no lock, no wrapper), and the bytes hyper read
//! past the `101` are handed over beside them. Any other stream (TLS) keeps hyper's
//! wrappers, split by tokio.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The raw bytes of an upgraded connection to an endpoint.
#[derive(Debug)]
pub struct TunnelIo {
    stream: Stream,
    /// Bytes the endpoint sent after its `101`, read with it: the first to relay.
    early: Bytes,
}

#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Wrapped(TokioIo<Upgraded>),
}

impl TunnelIo {
    /// The connection hyper upgraded: a plain TCP stream taken out of it, anything
    /// else kept as it is.
    pub(super) fn new(upgraded: Upgraded) -> TunnelIo {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => TunnelIo {
                stream: Stream::Plain(parts.io.into_inner()),
                early: parts.read_buf,
            },
            Err(upgraded) => TunnelIo {
                stream: Stream::Wrapped(TokioIo::new(upgraded)),
                early: Bytes::new(),
            },
        }
    }

    /// The two directions, and the bytes already read from the endpoint (empty when
    /// none were, or when the read half still holds them).
    pub fn split(self) -> (TunnelRead, TunnelWrite, Bytes) {
        match self.stream {
            Stream::Plain(stream) => {
                let (read, write) = stream.into_split();
                (TunnelRead::Plain(read), TunnelWrite::Plain(write), self.early)
            }
            Stream::Wrapped(io) => {
                let (read, write) = tokio::io::split(io);
                (TunnelRead::Wrapped(read), TunnelWrite::Wrapped(write), self.early)
            }
        }
    }
}

/// The endpoint → client direction of a tunnel.
#[derive(Debug)]
pub enum TunnelRead {
    /// A TCP stream's read half.
    Plain(OwnedReadHalf),
    /// Any other stream's, behind tokio's lock.
    Wrapped(tokio::io::ReadHalf<TokioIo<Upgraded>>),
}

/// The client → endpoint direction of a tunnel. Dropping it shuts a TCP stream's
/// write side.
#[derive(Debug)]
pub enum TunnelWrite {
    /// A TCP stream's write half.
    Plain(OwnedWriteHalf),
    /// Any other stream's, behind tokio's lock.
    Wrapped(tokio::io::WriteHalf<TokioIo<Upgraded>>),
}

impl AsyncRead for TunnelRead {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelRead::Plain(read) => Pin::new(read).poll_read(cx, buf),
            TunnelRead::Wrapped(read) => Pin::new(read).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TunnelWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TunnelWrite::Plain(write) => Pin::new(write).poll_write(cx, buf),
            TunnelWrite::Wrapped(write) => Pin::new(write).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelWrite::Plain(write) => Pin::new(write).poll_flush(cx),
            TunnelWrite::Wrapped(write) => Pin::new(write).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelWrite::Plain(write) => Pin::new(write).poll_shutdown(cx),
            TunnelWrite::Wrapped(write) => Pin::new(write).poll_shutdown(cx),
        }
    }
}
