//! An answer's body, read from its connection by whoever polls it (the request's own
//! task, or the pool's pump for a stream): by its length, the chunked coding, or until
//! the upstream closes. Once read to its end, the connection goes back to the pool.

use bytes::{Buf, Bytes};

use super::answer::Framing;
use super::head::is_field_value;
use super::Conn;
use crate::wire_error::WireError;

/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted (they are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Where a body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes left.
    Length(u64),
    /// Chunked: the next chunk-size line is due.
    ChunkSize,
    /// Chunked: this many bytes left of the current chunk.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data is due.
    ChunkEnd,
    /// Chunked: the trailer section (dropped), this many bytes of it seen.
    Trailers(usize),
    /// Until the connection closes.
    UntilClose,
    /// Read to its end (or given up after an error).
    Done,
}

/// An answer's body on its connection.
pub(in crate::upstream) struct WireBody {
    conn: Conn,
    state: State,
    /// Whether the connection may carry another request once the body has ended.
    keep_alive: bool,
}

impl WireBody {
    /// The body framed by `framing`, read from `conn`.
    pub(super) fn new(conn: Conn, framing: Framing, keep_alive: bool) -> Self {
        let state = match framing {
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        WireBody { conn, state, keep_alive }
    }

    /// This body, its connection closed once it ends (the request was answered before
    /// all of it was sent).
    pub(super) fn last_on_its_connection(mut self) -> Self {
        self.keep_alive = false;
        self
    }

    /// The connection, if the body was read to its end and nothing followed it.
    pub(in crate::upstream) fn into_idle(self) -> Option<Conn> {
        let ended = self.state == State::Done || self.state == State::Length(0);
        (ended && self.keep_alive && self.conn.buf.is_empty()).then_some(self.conn)
    }

    /// The whole body, if it has a length and all of it was read with the head (a
    /// small answer mostly is): taken at once, with no wait to bound.
    pub(in crate::upstream) fn take_if_buffered(&mut self) -> Option<Bytes> {
        let State::Length(left) = self.state else { return None };
        let left = usize::try_from(left).ok().filter(|&n| n <= self.conn.buf.len())?;
        self.state = State::Done;
        Some(self.conn.buf.split_to(left).freeze())
    }

    /// The next piece of the body; `None` at its end.
    pub(in crate::upstream) async fn frame(&mut self) -> Option<Result<Bytes, WireError>> {
        match self.next().await {
            Ok(Some(bytes)) => Some(Ok(bytes)),
            Ok(None) => {
                self.state = State::Done;
                None
            }
            Err(error) => {
                self.state = State::Done;
                self.keep_alive = false;
                Some(Err(error))
            }
        }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, WireError> {
        loop {
            match self.state {
                State::Done | State::Length(0) => return Ok(None),
                State::Length(left) => {
                    let bytes = self.take_up_to(left).await?;
                    self.state = State::Length(left - bytes.len() as u64);
                    return Ok(Some(bytes));
                }
                State::ChunkData(left) => {
                    let bytes = self.take_up_to(left).await?;
                    let left = left - bytes.len() as u64;
                    self.state = if left == 0 { State::ChunkEnd } else { State::ChunkData(left) };
                    return Ok(Some(bytes));
                }
                State::UntilClose => {
                    if self.conn.buf.is_empty() && self.conn.fill().await? == 0 {
                        self.keep_alive = false;
                        return Ok(None);
                    }
                    return Ok(Some(self.conn.buf.split().freeze()));
                }
                State::ChunkSize => {
                    let line = self.line(MAX_CHUNK_LINE, "chunk-size line too long").await?;
                    let size = chunk_size(&line).ok_or(WireError::Chunk("malformed chunk-size line"))?;
                    self.state = if size == 0 { State::Trailers(0) } else { State::ChunkData(size) };
                }
                State::ChunkEnd => {
                    while self.conn.buf.len() < 2 {
                        if self.conn.fill().await? == 0 {
                            return Err(WireError::ClosedInBody);
                        }
                    }
                    if &self.conn.buf[..2] != b"\r\n" {
                        return Err(WireError::Chunk("chunk data not followed by CRLF"));
                    }
                    self.conn.buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let line = self.line(MAX_TRAILERS.saturating_sub(seen), "trailer section too large").await?;
                    self.state = if line.is_empty() { State::Done } else { State::Trailers(seen + line.len() + 2) };
                }
            }
        }
    }

    /// Up to `left` bytes (at least one), reading when nothing is buffered.
    async fn take_up_to(&mut self, left: u64) -> Result<Bytes, WireError> {
        if self.conn.buf.is_empty() && self.conn.fill().await? == 0 {
            return Err(WireError::ClosedInBody);
        }
        let take = usize::try_from(left).unwrap_or(usize::MAX).min(self.conn.buf.len());
        Ok(self.conn.buf.split_to(take).freeze())
    }

    /// The next CRLF-ended line, without its CRLF; `too_long` once `limit` bytes
    /// have come without one.
    async fn line(&mut self, limit: usize, too_long: &'static str) -> Result<Bytes, WireError> {
        let mut searched: usize = 0;
        loop {
            let buf = &self.conn.buf;
            if let Some(at) = buf[searched.saturating_sub(1)..].windows(2).position(|w| w == b"\r\n") {
                let at = searched.saturating_sub(1) + at;
                if at > limit {
                    return Err(WireError::Chunk(too_long));
                }
                let line = self.conn.buf.split_to(at + 2).freeze();
                return Ok(line.slice(..at));
            }
            searched = buf.len();
            if searched > limit {
                return Err(WireError::Chunk(too_long));
            }
            if self.conn.fill().await? == 0 {
                return Err(WireError::ClosedInBody);
            }
        }
    }
}

/// A chunk-size line's size (RFC 9112 §7.1: hex digits, then optional extensions
/// after `;`, which are dropped).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits_end = line.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
    let (digits, rest) = line.split_at(digits_end);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    // Optional blanks, then extensions after `;` of visible characters (dropped).
    let blanks = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let rest = &rest[blanks..];
    let extensions_ok = rest.is_empty() || (rest[0] == b';' && is_field_value(rest));
    if !extensions_ok {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |n, &d| Some(n * 16 + u64::from((d as char).to_digit(16)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"A ; name=value"), Some(10));
        assert_eq!(chunk_size(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(chunk_size(b"5\t;x"), Some(5));
        for bad in [&b""[..], b"x", b"-1", b"1 2", b"11111111111111111", b"0x10", b" 1", b"5\n;x", b"5;a\rb", b"5 \x0b;"] {
            assert_eq!(chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
