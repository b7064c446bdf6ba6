//! The pool's HTTP/1.1 connections, driven by the task that makes the request: the
//! request is written and its answer's head read on the caller's own task, and the
//! body by whoever reads it. No connection task, no channel between them, no wake-up
//! of another task per request (hyper's client connection API needs all three; see
//! the README's cost figures).
//!
//! An idle connection is a socket and a buffer in the pool's list: nothing runs for
//! it. Whether the upstream closed it meanwhile is read off the socket's readiness
//! when it is taken again (no system call unless the socket became readable).

mod answer;
mod body;
mod field_name;
mod fields;
mod head;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub(super) use body::WireBody;

pub use fields::AnswerFields;
pub(super) use head::Outbound;
use answer::{interim_head_len, is_interim, parse_answer_head};
use head::{says_empty_length, write_request_head, RequestFraming};

use super::endpoint::Endpoint;
use super::out_body::OutBody;
use crate::error::{ConnectFailure, Error};
use crate::wire_error::WireError;

/// How much is read from the socket at a time. The buffer stays with its connection
/// (an allocation per read of 16 KiB, jemalloc's first "large" size, cost more CPU in
/// page faults and purges than the whole exchange under load).
const READ_SIZE: usize = 8 * 1024;
/// A whole body up to this size goes out in the same write as the head (one vectored
/// write of both, nothing copied).
const COALESCE: usize = 16 * 1024;

/// An upstream's answer: its head, parsed, and its body, read from the connection.
pub(in crate::upstream) struct Answer {
    /// Its status.
    pub(in crate::upstream) status: http::StatusCode,
    /// Its end-to-end fields (the hop-by-hop ones stayed with the connection).
    pub(in crate::upstream) headers: AnswerFields,
    /// Its `Content-Length`, when one counts (see `answer::Head`).
    pub(in crate::upstream) content_length: Option<u64>,
    /// Whether it is a `text/event-stream`.
    pub(in crate::upstream) event_stream: bool,
    /// Its body.
    pub(in crate::upstream) body: WireBody,
}

impl Answer {
    /// Its status.
    pub(in crate::upstream) fn status(&self) -> http::StatusCode {
        self.status
    }

    /// Its body.
    #[cfg(test)]
    pub(in crate::upstream) fn into_body(self) -> WireBody {
        self.body
    }
}

/// The socket under a connection: plain TCP, or TLS over it.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One HTTP/1.1 connection to an endpoint, with what was read from it and not used.
pub(in crate::upstream) struct Conn {
    io: Io,
    buf: BytesMut,
}

/// Why an exchange on a connection gave no answer head.
pub(super) enum Failed {
    /// Nothing of the request was written (the upstream had closed the connection):
    /// its body comes back untouched.
    Unsent {
        /// The body, untouched.
        body: OutBody,
        /// What the socket said.
        cause: io::Error,
    },
    /// The request was (at least partly) written, or the answer could not be read.
    Exchange(WireError),
    /// Our own request body failed.
    Body(Error),
}

impl Conn {
    /// Opens a connection to `endpoint` (TLS for `https://`).
    pub(super) async fn open(endpoint: &Endpoint, tls: &Arc<ClientConfig>) -> Result<Conn, ConnectFailure> {
        let stream = TcpStream::connect(endpoint.address.as_str())
            .await
            .map_err(|e| ConnectFailure::Tcp(Arc::new(e)))?;
        let _ = stream.set_nodelay(true);
        let io = match &endpoint.tls {
            None => Io::Plain(stream),
            Some(name) => Io::Tls(Box::new(
                tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| ConnectFailure::Tls(Arc::new(e)))?,
            )),
        };
        Ok(Conn { io, buf: BytesMut::new() })
    }

    /// Whether an idle connection can take a request: the upstream has not closed it
    /// and sent nothing unasked. Looks at the socket only if it became readable.
    pub(super) fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut probe = [0u8; 1];
        match &mut self.io {
            Io::Plain(stream) => match stream.poll_read_ready(&mut cx) {
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                Poll::Ready(Ok(())) => matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            },
            // TLS may have records of its own to read (session tickets): read through
            // it, expecting nothing.
            Io::Tls(stream) => {
                let mut probe = ReadBuf::new(&mut probe);
                Pin::new(stream.as_mut()).poll_read(&mut cx, &mut probe).is_pending()
            }
        }
    }

    /// Sends `request` with `body` and reads its answer's head (1xx interim answers
    /// skipped); the answer's body is read from the connection, which moves into it.
    pub(super) async fn exchange(mut self, request: &Outbound<'_>, body: OutBody) -> Result<Answer, Failed> {
        let framing = match &body {
            OutBody::Empty | OutBody::Full(None) if says_empty_length(request.method) => RequestFraming::Length(0),
            OutBody::Empty | OutBody::Full(None) => RequestFraming::None,
            OutBody::Full(Some(bytes)) => RequestFraming::Length(bytes.len() as u64),
            OutBody::Stream(_) => RequestFraming::Chunked,
        };
        let mut out = BytesMut::new();
        write_request_head(&mut out, request, &framing);
        // A small whole body goes out in the same write as the head.
        let coalesced = matches!(&body, OutBody::Full(Some(b)) if b.len() <= COALESCE);
        let with_head: &[u8] = match &body {
            OutBody::Full(Some(bytes)) if coalesced => bytes,
            _ => &[],
        };
        match self.write_first(&out, with_head).await {
            Ok(()) => {}
            Err((cause, 0)) => return Err(Failed::Unsent { body, cause }),
            Err((cause, _)) => return Err(Failed::Exchange(WireError::Write(cause))),
        }
        let early = match body {
            OutBody::Empty | OutBody::Full(None) => false,
            OutBody::Full(Some(_)) if coalesced => false,
            body => self.write_body(body).await?,
        };
        if !early {
            self.io.flush().await.map_err(|e| Failed::Exchange(WireError::Write(e)))?;
        }
        let mut answer = self.read_head(request.method).await.map_err(Failed::Exchange)?;
        // Answered before its body was all sent: the rest of the request is still due
        // on the connection, which therefore cannot carry another one.
        if early {
            answer.body = answer.body.last_on_its_connection();
        }
        Ok(answer)
    }

    /// Writes `head` and then `body`, the first of the request ([`write_first`]).
    async fn write_first(&mut self, head: &[u8], body: &[u8]) -> Result<(), (io::Error, usize)> {
        write_first(&mut self.io, head, body).await
    }

    /// Writes a request body (too large to go with the head, or streamed) after its
    /// head, reading meanwhile: an upstream that answers before the body is all sent
    /// (a 413, a 401) and stops reading it has its answer taken rather than the
    /// writing stalled. Says whether the answer came early.
    async fn write_body(&mut self, body: OutBody) -> Result<bool, Failed> {
        let mut outgoing = Outgoing::new(body);
        // The answer is looked for only when writing cannot go on (the socket is full,
        // or the body's next chunk is not there yet); the body ends with a flush (TLS
        // may hold the last of it), watched alike.
        futures::future::poll_fn(|cx| loop {
            if outgoing.pending.is_empty() {
                match outgoing.poll_next(cx)? {
                    Poll::Ready(true) => {}
                    Poll::Ready(false) => match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(result) => return Poll::Ready(result.map(|()| false).map_err(|e| Failed::Exchange(WireError::Write(e)))),
                        Poll::Pending => return self.poll_early_answer(cx).map_ok(|()| true),
                    },
                    Poll::Pending => return self.poll_early_answer(cx).map_ok(|()| true),
                }
            }
            match Pin::new(&mut self.io).poll_write(cx, &outgoing.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(Failed::Exchange(WireError::Write(io::ErrorKind::WriteZero.into())))),
                Poll::Ready(Ok(n)) => outgoing.pending.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Failed::Exchange(WireError::Write(e)))),
                Poll::Pending => return self.poll_early_answer(cx).map_ok(|()| true),
            }
        })
        .await
    }

    /// Whether a final answer has begun while the request body is still going out
    /// (interim 1xx answers are consumed and writing goes on); the end of the
    /// connection counts as an answer (reading it tells what it was).
    fn poll_early_answer(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failed>> {
        // Read until the socket says Pending (which registers the task's waker): a
        // head still incomplete, or an interim answer consumed, reads on.
        loop {
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Failed::Exchange(WireError::Read(e)))),
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => self.buf.extend_from_slice(read.filled()),
            }
            // Interim heads are dropped here; a final one stays for `read_head`.
            loop {
                match interim_head_len(&self.buf) {
                    Ok(Some(n)) => self.buf.advance(n),
                    Ok(None) => break,
                    Err(()) => return Poll::Ready(Ok(())),
                }
            }
        }
    }

    /// Reads the answer's head (skipping 1xx interim answers but `101`).
    async fn read_head(mut self, method: &http::Method) -> Result<Answer, WireError> {
        // Whether the buffer may hold a whole head it did not at the last parse: a head
        // ends with a line feed, so bytes without one complete none (an upstream
        // trickling its head a byte at a time is not parsed again from the start for
        // every byte), unless the buffer outgrew the largest head (refused then).
        let mut worth_parsing = true;
        loop {
            // Nothing to parse before the first read; an interim head parsed is dropped.
            let parsed = match self.buf.is_empty() || !worth_parsing {
                true => None,
                false => parse_answer_head(&mut self.buf, method).map_err(WireError::Head)?,
            };
            match parsed {
                Some(head) if is_interim(head.status) => continue,
                Some(head) => {
                    return Ok(Answer {
                        status: head.status,
                        headers: head.headers,
                        content_length: head.content_length,
                        event_stream: head.event_stream,
                        body: WireBody::new(self, head.framing, head.keep_alive),
                    })
                }
                None => {
                    let before = self.buf.len();
                    if self.fill().await? == 0 {
                        return Err(WireError::ClosedBeforeHead);
                    }
                    worth_parsing = self.buf[before..].contains(&b'\n') || self.buf.len() > answer::MAX_HEAD;
                }
            }
        }
    }

    /// Reads what the socket has into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, WireError> {
        self.buf.reserve(READ_SIZE);
        self.io.read_buf(&mut self.buf).await.map_err(WireError::Read)
    }
}

/// Writes `head` and then `body` to `io`, in vectored writes (one, as a rule); on
/// failure, says how much went.
async fn write_first<W: AsyncWrite + Unpin>(io: &mut W, head: &[u8], body: &[u8]) -> Result<(), (io::Error, usize)> {
    let mut written = 0;
    while written < head.len() + body.len() {
        let wrote = match head.get(written..) {
            // No body with the head (most requests): a plain write.
            Some(rest) if body.is_empty() => io.write(rest).await,
            Some(rest) if !rest.is_empty() => io.write_vectored(&[io::IoSlice::new(rest), io::IoSlice::new(body)]).await,
            _ => io.write(&body[written - head.len()..]).await,
        };
        match wrote {
            Ok(0) => return Err((io::ErrorKind::WriteZero.into(), written)),
            Ok(n) => written += n,
            Err(e) => return Err((e, written)),
        }
    }
    Ok(())
}

/// A request body on its way out, a piece at a time (chunked when streamed).
struct Outgoing {
    /// Bytes due next.
    pending: Bytes,
    /// The rest of a streamed body, until its last chunk is framed.
    stream: Option<crate::stream::ChunkStream>,
}

impl Outgoing {
    fn new(body: OutBody) -> Self {
        match body {
            OutBody::Empty | OutBody::Full(None) => Outgoing { pending: Bytes::new(), stream: None },
            OutBody::Full(Some(bytes)) => Outgoing { pending: bytes, stream: None },
            OutBody::Stream(stream) => Outgoing { pending: Bytes::new(), stream: Some(stream) },
        }
    }

    /// The next piece framed into `pending`: `true` if there is one, `false` once all
    /// went (the last chunk included).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Failed>> {
        let Some(stream) = &mut self.stream else { return Poll::Ready(Ok(false)) };
        loop {
            match Pin::new(&mut *stream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Failed::Body(e))),
                Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => continue,
                Poll::Ready(Some(Ok(chunk))) => {
                    let mut framed = BytesMut::with_capacity(chunk.len() + 20);
                    let _ = write!(framed, "{:x}\r\n", chunk.len());
                    framed.extend_from_slice(&chunk);
                    framed.extend_from_slice(b"\r\n");
                    self.pending = framed.freeze();
                }
                Poll::Ready(None) => {
                    self.stream = None;
                    self.pending = Bytes::from_static(b"0\r\n\r\n");
                }
            }
            return Poll::Ready(Ok(true));
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

