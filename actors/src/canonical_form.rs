//! The one spelling of a typed path parameter that is let through.
//!
//! FastAPI (pydantic v2, lax mode) reads `/users/00`, `/users/+0`, `/users/0%20`,
//! `/users/0.0` and `/users/0_0` as the same integer as `/users/0`; path rules
//! compare bytes. So for every path parameter whose type FastAPI coerces, only the
//! canonical spelling of a value passes (checked when the route is matched, before
//! any rule or filter looks at the path); every other spelling is an unknown route.
//!
//! `raw` values are segments of the canonical request path (unreserved characters
//! decoded, other bytes percent-encoded): the canonical spellings of integers,
//! numbers, booleans, UUIDs, dates and date-times are plain ASCII, so a `%` in them
//! is always refused.

use std::sync::Arc;

use percent_encoding::percent_decode_str;

/// Which spelling of a path parameter's value is the only one accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanonicalForm {
    /// `0|-?[1-9][0-9]*`, within `i64` or `u64`.
    Integer,
    /// The shortest decimal that reads back as the same finite `f64`: no exponent, no
    /// `+`, no leading zeros, no trailing zeros in the fraction, integral values
    /// without a fraction, no `-0`.
    Number,
    /// `true` or `false`.
    Boolean,
    /// Lower-case hyphenated `8-4-4-4-12` hex.
    Uuid,
    /// `YYYY-MM-DD`, a real date (year 0001–9999).
    Date,
    /// RFC 3339 `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`: upper-case `T` and `Z`, UTC
    /// written `Z`, a fraction of 1–6 digits without trailing zeros. Equal instants
    /// written in other zones are not unified.
    DateTime,
    /// One of the listed values, exactly (integer enums: as written by
    /// [`CanonicalForm::Integer`]).
    OneOf(Arc<[String]>),
}

impl CanonicalForm {
    /// Whether `raw` (a segment of the canonical path) is the canonical spelling of a
    /// value of this form.
    pub fn accepts(&self, raw: &str) -> bool {
        match self {
            CanonicalForm::Integer => integer(raw),
            CanonicalForm::Number => number(raw),
            CanonicalForm::Boolean => raw == "true" || raw == "false",
            CanonicalForm::Uuid => uuid(raw.as_bytes()),
            CanonicalForm::Date => date(raw.as_bytes()),
            CanonicalForm::DateTime => date_time(raw.as_bytes()),
            CanonicalForm::OneOf(values) => {
                if raw.contains('%') {
                    let decoded = percent_decode_str(raw).decode_utf8_lossy();
                    values.iter().any(|v| *v == decoded)
                } else {
                    values.iter().any(|v| v == raw)
                }
            }
        }
    }

    /// A short name for messages (`integer`, `uuid`, `enum`, …).
    pub fn name(&self) -> &'static str {
        match self {
            CanonicalForm::Integer => "integer",
            CanonicalForm::Number => "number",
            CanonicalForm::Boolean => "boolean",
            CanonicalForm::Uuid => "uuid",
            CanonicalForm::Date => "date",
            CanonicalForm::DateTime => "date-time",
            CanonicalForm::OneOf(_) => "enum",
        }
    }
}

fn integer(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw).as_bytes();
    let shape = match digits {
        [b'0'] => raw == "0",
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    };
    shape && (raw.parse::<i64>().is_ok() || raw.parse::<u64>().is_ok())
}

fn number(raw: &str) -> bool {
    let plain = raw
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    if !plain || raw.is_empty() || raw == "-0" {
        return false;
    }
    match raw.parse::<f64>() {
        Ok(value) if value.is_finite() => value.to_string() == raw,
        _ => false,
    }
}

fn hex_lower(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn uuid(raw: &[u8]) -> bool {
    raw.len() == 36
        && raw.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => hex_lower(b),
        })
}

/// The number written by the ASCII digits `raw` (all digits), if any.
fn digits(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(raw.iter().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
}

fn date(raw: &[u8]) -> bool {
    if raw.len() != 10 || raw[4] != b'-' || raw[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (digits(&raw[..4]), digits(&raw[5..7]), digits(&raw[8..])) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day)
}

/// `HH:MM` with hours below `hours` and minutes below 60.
fn clock(raw: &[u8], hours: u32) -> bool {
    raw.len() == 5
        && raw[2] == b':'
        && digits(&raw[..2]).is_some_and(|h| h < hours)
        && digits(&raw[3..]).is_some_and(|m| m < 60)
}

fn date_time(raw: &[u8]) -> bool {
    if raw.len() < 20 || raw[10] != b'T' || !date(&raw[..10]) || !clock(&raw[11..16], 24) {
        return false;
    }
    if raw[16] != b':' || digits(&raw[17..19]).is_none_or(|s| s >= 60) {
        return false;
    }
    let mut rest = &raw[19..];
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let n = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 6 || after_dot[n - 1] == b'0' {
            return false;
        }
        rest = &after_dot[n..];
    }
    match rest {
        b"Z" => true,
        [sign, offset @ ..] if *sign == b'+' || *sign == b'-' => {
            clock(offset, 24) && offset != b"00:00"
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
