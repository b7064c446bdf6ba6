//! What went wrong on an upstream's HTTP/1.1 connection once a request was on its
//! way: the cause carried by [`BrokenReply`](crate::error::BrokenReply) and
//! [`BodyError`](crate::error::BodyError). The pool's own client
//! (`upstream::h1`) says it in these terms; the WebSocket tunnel and one-off
//! fetches, still on hyper, pass hyper's error through [`WireError::Hyper`].
//!
//! A leaf: both the error module and the upstream client name it.

use std::io;

/// A failure on an upstream connection after the request was handed to it.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Writing the request (head or body) failed.
    #[error("error writing the request: {0}")]
    Write(#[source] io::Error),
    /// Reading the answer failed.
    #[error("error reading the answer: {0}")]
    Read(#[source] io::Error),
    /// The connection closed before a complete answer head (none at all, or a
    /// cut-off one).
    #[error("connection closed before a complete answer")]
    ClosedBeforeHead,
    /// The connection closed before the body's declared end (its `Content-Length`,
    /// or chunked without the last chunk).
    #[error("connection closed before the end of the body")]
    ClosedInBody,
    /// The answer's head is not HTTP/1.1 we accept.
    #[error("invalid answer head: {0}")]
    Head(#[source] HeadError),
    /// A chunked body broke the chunked coding (RFC 9112 §7.1).
    #[error("invalid chunked body: {0}")]
    Chunk(&'static str),
    /// hyper's error, from the clients still on hyper (the WebSocket tunnel, one-off
    /// fetches).
    #[error("{0}")]
    Hyper(#[source] hyper::Error),
}

impl WireError {
    /// Whether the answer's head could not be read (as opposed to the connection
    /// failing).
    pub fn is_head(&self) -> bool {
        match self {
            WireError::Head(_) => true,
            WireError::Hyper(e) => e.is_parse(),
            _ => false,
        }
    }

    /// Whether the connection ended before the message did (head or body).
    pub fn is_incomplete(&self) -> bool {
        match self {
            WireError::ClosedBeforeHead | WireError::ClosedInBody => true,
            WireError::Hyper(e) => e.is_incomplete_message(),
            _ => false,
        }
    }
}

/// Why an answer head was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The status line or a header field is malformed (httparse's words).
    #[error("{0}")]
    Syntax(#[source] httparse::Error),
    /// The head is longer than we read.
    #[error("head larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A status code outside 100–999.
    #[error("status code out of range")]
    Status,
    /// A header name or value the `http` crate refuses.
    #[error("invalid header field")]
    Field,
    /// `Content-Length` is not one number, or several that differ.
    #[error("invalid Content-Length")]
    ContentLength,
}
