//! FrameX's proxy functions on the wire: a call is `POST /api/v1/proxy/remote` with
//! `{"func_name": E(name), "data": E(kwargs)}` and its answer is an envelope whose
//! `data` is `E(result)`, where `E(x)` is base64 of the zlib-compressed JSON of `x`,
//! XOR-ed with FrameX's fixed key (an encoding, not a secret).

use std::io::{Read, Write};

use base64::Engine as _;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde_json::Value;

use crate::sse::python_json;

/// Where FrameX instances answer proxy-function calls.
pub const PATH: &str = "/api/v1/proxy/remote";

/// The key FrameX XORs compressed payloads with.
const KEY: &[u8] = b"01234567890abcdefghijklmnopqrstuvwxyz";

/// Largest payload decoded (decompressed), against zlib bombs.
const DECODED_LIMIT: u64 = 64 * 1024 * 1024;

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("not a FrameX proxy-function payload: {0}")]
pub struct DecodeError(String);

fn xor(bytes: &mut [u8]) {
    for (byte, key) in bytes.iter_mut().zip(KEY.iter().cycle()) {
        *byte ^= key;
    }
}

/// `E(value)`: JSON as Python writes it, zlib, XOR, base64.
pub fn encode(value: &Value) -> String {
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = zlib.write_all(&python_json(value));
    let mut bytes = zlib.finish().unwrap_or_default();
    xor(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One layer of `E`, undone.
fn decode_once(text: &str) -> Result<Value, DecodeError> {
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| DecodeError(format!("base64: {e}")))?;
    xor(&mut bytes);
    let mut json = Vec::new();
    ZlibDecoder::new(bytes.as_slice())
        .take(DECODED_LIMIT)
        .read_to_end(&mut json)
        .map_err(|e| DecodeError(format!("zlib: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| DecodeError(format!("JSON: {e}")))
}

/// Undoes `E` as FrameX does: layer after layer while the value is an encoded string,
/// then a string holding JSON is parsed.
///
/// # Errors
/// When `text` is not an encoding at all.
pub fn decode(text: &str) -> Result<Value, DecodeError> {
    let mut current = decode_once(text)?;
    while let Value::String(inner) = &current {
        match decode_once(inner) {
            Ok(next) => current = next,
            Err(_) => match serde_json::from_str::<Value>(inner) {
                Ok(parsed) if parsed != current => current = parsed,
                _ => break,
            },
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_survive_the_round_trip() {
        for value in [json!({"a": 1, "b": [true, null, "é"]}), json!("text"), json!(3.5)] {
            assert_eq!(decode(&encode(&value)).unwrap(), value);
        }
        assert!(decode("not base64 at all!").is_err());
    }

    #[test]
    fn decodes_what_framex_kit_encodes() {
        // FrameX-kit 0.4.2: cache_encode({"message": "hi", "n": 2})
        let from_python = "SK2ZZf54Gxl2dX800DE0r64zujg6oW9f4wVxFJx0bw==";
        assert_eq!(decode(from_python).unwrap(), json!({"message": "hi", "n": 2}));
    }
}
