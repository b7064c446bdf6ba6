//! An upstream answer's end-to-end fields, written out once as the HTTP/1 edge sends
//! them: `name: value\r\n` lines (names in lower case, values as sent), with no
//! hop-by-hop field and no `Content-Length`. An answer passed on unread goes to the
//! client as these bytes (no map built, looked up or walked per field); a consumer
//! that reads or changes fields takes them as actix-web's map.

use bytes::{Bytes, BytesMut};
use actix_http::header::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use super::field_name::classify;

/// An answer's end-to-end fields as `name: value\r\n` lines.
#[derive(Debug, Clone, Default)]
pub struct AnswerFields {
    /// The lines. Each was parsed and checked as a field by `httparse` (a token name;
    /// a value of tab, visible ASCII or obs-text bytes, no CR, LF or NUL).
    lines: Bytes,
    /// Whether one of them is `Date`.
    has_date: bool,
    /// How many there are.
    count: usize,
}

impl AnswerFields {
    /// The lines, whether one of them is `Date`: what
    /// `ResponseHead::set_written_fields` takes.
    pub fn into_lines(self) -> (Bytes, bool) {
        (self.lines, self.has_date)
    }

    /// The fields in actix-web's map, for a consumer that reads or changes them (their
    /// values share the lines' memory).
    pub fn into_map(self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.count);
        let mut at = 0;
        while let Some(end) = self.lines[at..].iter().position(|&b| b == b'\n').map(|n| at + n) {
            let line = &self.lines[at..end - 1];
            // `name: value`: the name holds no colon (it is a token).
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                if let Ok((name, _)) = classify(&line[..colon]) {
                    let value = self.lines.slice(at + colon + 2..end - 1);
                    // SAFETY: the value was checked by httparse as one (see `lines`),
                    // which is what `HeaderValue` allows.
                    map.append(name, unsafe { HeaderValue::from_maybe_shared_unchecked(value) });
                }
            }
            at = end + 1;
        }
        map
    }

    /// The first value of `name`, if any (a scan of the lines, for tests).
    #[cfg(test)]
    pub(in crate::upstream) fn get(&self, name: &str) -> Option<&[u8]> {
        self.lines.split(|&b| b == b'\n').find_map(|line| {
            let line = line.strip_suffix(b"\r")?;
            let colon = line.iter().position(|&b| b == b':')?;
            line[..colon].eq_ignore_ascii_case(name.as_bytes()).then(|| &line[colon + 2..])
        })
    }

    /// The names, in order, lower case, with repeats (a scan, for tests).
    #[cfg(test)]
    pub(in crate::upstream) fn names(&self) -> Vec<&str> {
        self.lines
            .split(|&b| b == b'\n')
            .filter_map(|line| std::str::from_utf8(&line[..line.iter().position(|&b| b == b':')?]).ok())
            .collect()
    }
}

/// Writes [`AnswerFields`]: one line per field kept.
pub(super) struct Writer {
    lines: BytesMut,
    has_date: bool,
    count: usize,
}

impl Writer {
    /// A writer with room for a head of `head_len` bytes holding `fields` fields (a
    /// line is at most its field's bytes in the head plus two: `a:b\n` is written
    /// `a: b\r\n`).
    pub(super) fn with_room(head_len: usize, fields: usize) -> Self {
        Writer {
            lines: BytesMut::with_capacity(head_len + 2 * fields),
            has_date: false,
            count: 0,
        }
    }

    /// Adds `name: value`; `value` must be one `httparse` took.
    pub(super) fn push(&mut self, name: &HeaderName, value: &[u8]) {
        debug_assert!(value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)), "a value httparse refuses");
        self.has_date |= *name == header::DATE;
        self.count += 1;
        self.lines.extend_from_slice(name.as_str().as_bytes());
        self.lines.extend_from_slice(b": ");
        self.lines.extend_from_slice(value);
        self.lines.extend_from_slice(b"\r\n");
    }

    /// The fields written.
    pub(super) fn finish(self) -> AnswerFields {
        AnswerFields {
            lines: self.lines.freeze(),
            has_date: self.has_date,
            count: self.count,
        }
    }
}
