//! Escaping for log lines: text a client or an upstream chose (a path, a request id,
//! an error quoting a document) must not forge log lines or hide in the terminal.
//!
//! [`Escaped`] wraps any `Display` and writes it with control characters, non-ASCII
//! characters, `\` and `"` escaped (as `str::escape_default` does), so one logged
//! value is always one line of visible ASCII and a quoted field cannot be closed
//! early. It escapes as it writes: no intermediate `String`.

use std::fmt::{self, Write as _};

/// A `Display` wrapper that escapes what the inner value writes; see the module doc.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// Forwards runs of safe characters as they are and escapes the rest.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if is_plain(c) {
                continue;
            }
            self.0.write_str(&s[start..i])?;
            match c {
                '\\' => self.0.write_str("\\\\")?,
                '"' => self.0.write_str("\\\"")?,
                _ => {
                    for e in c.escape_default() {
                        self.0.write_char(e)?;
                    }
                }
            }
            start = i + c.len_utf8();
        }
        self.0.write_str(&s[start..])
    }
}

/// Printable ASCII other than the escape character and the quote.
fn is_plain(c: char) -> bool {
    matches!(c, ' '..='~') && c != '\\' && c != '"'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn line_breaks_controls_and_non_ascii_are_escaped() {
        let forged = "/a\r\n2026-01-01 INFO forged\u{1b}[31m é \"q\" \\";
        assert_eq!(
            Escaped(forged).to_string(),
            "/a\\r\\n2026-01-01 INFO forged\\u{1b}[31m \\u{e9} \\\"q\\\" \\\\"
        );
        assert_eq!(Escaped("/api/v1/items/7?x=1").to_string(), "/api/v1/items/7?x=1");
        assert_eq!(Escaped(format_args!("{}-{}", 1, "\n")).to_string(), "1-\\n");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever goes in, one line of printable ASCII comes out.
        #[test]
        fn output_is_one_line_of_visible_ascii(s in any::<String>()) {
            let out = Escaped(&s).to_string();
            prop_assert!(out.chars().all(|c| matches!(c, ' '..='~')), "{out:?}");
            if s.chars().all(is_plain) {
                prop_assert_eq!(out, s);
            }
        }
    }
}
