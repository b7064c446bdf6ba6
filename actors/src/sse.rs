//! FrameX's server-sent events: encoding for producers, parsing for consumers.
//!
//! On the wire an event is `event: <type>\ndata: <json>\n\n`. FrameX uses the types
//! `message_chunk` (`{"content": "..."}`), `finish` (`{}`), `error`
//! (`{"status": .., "message": ..}`) and `debug`.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::error::Error;
use crate::stream::{ChunkSender, ChunkStream};

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The `event:` field (`message` when absent on the wire).
    pub event: String,
    /// The `data:` field, parsed as JSON when it is JSON, else a JSON string.
    pub data: Value,
}

impl Event {
    /// A `message_chunk` event carrying `content`.
    pub fn chunk(content: impl Into<String>) -> Self {
        Event {
            event: "message_chunk".to_owned(),
            data: json!({ "content": content.into() }),
        }
    }

    /// `Event::chunk(content).to_bytes()`, written straight from `content`: no JSON
    /// value, map or intermediate buffer is built (a streamed answer sends one such
    /// event per token; building them cost twice as much as sending them).
    pub fn chunk_bytes(content: &str) -> Bytes {
        const HEAD: &[u8] = b"event: message_chunk\ndata: {\"content\": ";
        let mut out = Vec::with_capacity(HEAD.len() + content.len() + 8);
        out.extend_from_slice(HEAD);
        // A string is escaped alike whatever the formatter's separators (Python's
        // `json.dumps` escapes the same characters, in the same forms).
        if serde_json::to_writer(&mut out, content).is_err() {
            return Event::chunk(content).to_bytes();
        }
        out.extend_from_slice(b"}\n\n");
        Bytes::from(out)
    }

    /// The `finish` event that ends a successful stream.
    pub fn finish() -> Self {
        Event {
            event: "finish".to_owned(),
            data: json!({}),
        }
    }

    /// An `error` event (sent when a stream fails after it started).
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Event {
            event: "error".to_owned(),
            data: json!({ "status": status, "message": message.into() }),
        }
    }

    /// Encodes the event as SSE bytes, the data written as Python's `json.dumps`
    /// writes it (`", "` and `": "` separators, non-ASCII kept), byte for byte what
    /// FrameX sends.
    pub fn to_bytes(&self) -> Bytes {
        let data = python_json(&self.data);
        let mut out = Vec::with_capacity(data.len() + self.event.len() + 16);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(self.event.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

/// `value` as Python's `json.dumps(value, ensure_ascii=False)` writes it.
pub(crate) fn python_json(value: &Value) -> Vec<u8> {
    let mut data = Vec::with_capacity(32);
    let mut ser = serde_json::Serializer::with_formatter(&mut data, PythonFormatter);
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return b"null".to_vec();
    }
    data
}

/// JSON the way Python's `json.dumps` separates items: `", "` and `": "`.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// What a plugin's streaming handler writes to: every call pushes one event into the
/// bounded bridge, waiting while the consumer is behind.
#[derive(Debug)]
pub struct Emitter {
    sender: ChunkSender,
}

impl Emitter {
    /// Wraps the producing end of a bridge.
    pub fn new(sender: ChunkSender) -> Self {
        Emitter { sender }
    }

    /// Sends a `message_chunk` event with `content`.
    ///
    /// # Errors
    /// [`Error::StreamClosed`] when the client went away: stop producing.
    pub async fn chunk(&self, content: impl Into<String>) -> Result<(), Error> {
        self.sender.send(Event::chunk_bytes(&content.into())).await
    }

    /// Sends any event.
    ///
    /// # Errors
    /// [`Error::StreamClosed`] when the client went away.
    pub async fn emit(&self, event: &Event) -> Result<(), Error> {
        self.sender.send(event.to_bytes()).await
    }

    /// Sends raw bytes (already encoded SSE, or a binary stream).
    ///
    /// # Errors
    /// [`Error::StreamClosed`] when the client went away.
    pub async fn bytes(&self, bytes: Bytes) -> Result<(), Error> {
        self.sender.send(bytes).await
    }

    /// Whether the client has gone away.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Incremental SSE parser: feed it bytes as they come, take whole events out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
}

impl SseParser {
    /// Appends bytes and returns every event they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_boundary(&self.buf) {
            let block = self.buf.split_to(end + sep);
            if let Some(event) = parse_block(&block[..end]) {
                events.push(event);
            }
        }
        events
    }
}

fn find_boundary(buf: &[u8]) -> Option<(usize, usize)> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\n\n") {
            Some((i, 2))
        } else if buf[i..].starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else {
            None
        }
    })
}

fn parse_block(block: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(block);
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if event.is_none() && data.is_empty() {
        return None;
    }
    let raw = data.join("\n");
    let data = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
    Some(Event {
        event: event.unwrap_or_else(|| "message".to_owned()),
        data,
    })
}

/// Whether a `Content-Type` value says server-sent events (`text/event-stream`,
/// parameters allowed; media types are case-insensitive).
pub fn is_event_stream(content_type: &[u8]) -> bool {
    content_type.get(..17).is_some_and(|media| media.eq_ignore_ascii_case(b"text/event-stream"))
}

/// Turns a byte stream of SSE into a stream of [`Event`]s.
pub fn events(stream: ChunkStream) -> impl Stream<Item = Result<Event, Error>> {
    futures::stream::unfold(
        (stream, SseParser::default(), std::collections::VecDeque::new()),
        |(mut stream, mut parser, mut ready)| async move {
            loop {
                if let Some(event) = ready.pop_front() {
                    return Some((Ok(event), (stream, parser, ready)));
                }
                match stream.next().await {
                    Some(Ok(bytes)) => ready.extend(parser.feed(&bytes)),
                    Some(Err(e)) => return Some((Err(e), (stream, parser, ready))),
                    None => return None,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Media types are case-insensitive: an upstream's `Text/Event-Stream` is an event
    /// stream (not buffered, not cached, not compared) as much as the lower-case one.
    #[test]
    fn event_streams_are_known_in_any_case() {
        for yes in [&b"text/event-stream"[..], b"Text/Event-Stream; charset=utf-8", b"TEXT/EVENT-STREAM"] {
            assert!(is_event_stream(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [&b"text/event"[..], b"text/plain", b"", b"application/json; x=text/event-stream"] {
            assert!(!is_event_stream(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn events_are_written_as_framex_writes_them() {
        assert_eq!(
            &Event::chunk("é").to_bytes()[..],
            "event: message_chunk\ndata: {\"content\": \"é\"}\n\n".as_bytes()
        );
        assert_eq!(&Event::finish().to_bytes()[..], b"event: finish\ndata: {}\n\n");
        assert_eq!(
            &Event::error(502, "x").to_bytes()[..],
            b"event: error\ndata: {\"status\": 502, \"message\": \"x\"}\n\n"
        );
    }

    proptest::proptest! {
        /// A chunk event written straight from its text is the event `to_bytes` writes
        /// (quotes, backslashes, control characters, non-ASCII), and parses back to it.
        #[test]
        fn a_chunk_written_straight_is_the_event(content in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}])*") {
            let wire = Event::chunk_bytes(&content);
            proptest::prop_assert_eq!(&wire[..], &Event::chunk(content.as_str()).to_bytes()[..]);
            proptest::prop_assert_eq!(SseParser::default().feed(&wire), vec![Event::chunk(content.as_str())]);
        }
    }

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let wire = Event::chunk("hé").to_bytes();
        let mut p = SseParser::default();
        let (a, b) = wire.split_at(7);
        assert!(p.feed(a).is_empty());
        let got = p.feed(b);
        assert_eq!(got, vec![Event::chunk("hé")]);
    }

    #[test]
    fn crlf_and_plain_data_are_understood() {
        let mut p = SseParser::default();
        let got = p.feed(b"data: hello\r\n\r\nevent: finish\ndata: {}\n\n");
        assert_eq!(got[0].event, "message");
        assert_eq!(got[0].data, Value::String("hello".into()));
        assert_eq!(got[1], Event::finish());
    }
}
