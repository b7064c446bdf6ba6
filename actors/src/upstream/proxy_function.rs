//! FrameX's proxy functions on the wire: a call is `POST /api/v1/proxy/remote` with
//! `{"func_name": E(name), "data": E(kwargs)}` and its answer is an envelope whose
//! `data` is `E(result)`, where `E(x)` is base64 of the zlib-compressed JSON of `x`,
//! XOR-ed with FrameX's fixed key (an encoding, not a secret).
//!
//! Decoding is bounded, because a payload arrives before anyone is authenticated
//! and each layer can multiply its size: at most [`MAX_LAYERS`] layers, and at most
//! [`DecodeLimits::max_decoded`] bytes decompressed across all of them. Decoding is
//! CPU work: callers on an event loop run it on the blocking pool.

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

/// Most layers undone (an `E` layer or a JSON string parsed), counting the first.
/// FrameX-kit's `cache_encode` produces one `E` layer; a value that is itself an
/// encoded string or a JSON text adds one or two; nothing legitimate nests deeper.
pub const MAX_LAYERS: usize = 4;

/// The bounds one decoding is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most bytes decompressed across all layers (the request's body limit,
    /// `server.max_body_size`, for calls we serve).
    pub max_decoded: usize,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not an encoding at all (or a broken one).
    #[error("not a FrameX proxy-function payload: {0}")]
    Malformed(String),
    /// Still encoded after [`MAX_LAYERS`] layers.
    #[error("more than {max} encoding layers")]
    TooDeep {
        /// The layer limit.
        max: usize,
    },
    /// Decompresses to more than the limit, counted across layers.
    #[error("decodes to more than {limit} bytes")]
    TooLarge {
        /// The byte limit.
        limit: usize,
    },
}

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

/// One layer of `E`, undone, decompressing at most `budget` bytes; returns the value
/// and the bytes decompressed.
fn decode_once(text: &str, budget: usize, limit: usize) -> Result<(Value, usize), DecodeError> {
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| DecodeError::Malformed(format!("base64: {e}")))?;
    xor(&mut bytes);
    let mut json = Vec::new();
    ZlibDecoder::new(bytes.as_slice())
        .take(budget as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| DecodeError::Malformed(format!("zlib: {e}")))?;
    if json.len() > budget {
        return Err(DecodeError::TooLarge { limit });
    }
    let value = serde_json::from_slice(&json).map_err(|e| DecodeError::Malformed(format!("JSON: {e}")))?;
    Ok((value, json.len()))
}

/// Undoes `E` as FrameX-kit's `cache_decode` does: layer after layer while the value
/// is an encoded string (a string holding JSON is parsed as one more layer), within
/// `limits` and [`MAX_LAYERS`].
///
/// # Errors
/// When `text` is not an encoding at all, nests deeper than [`MAX_LAYERS`], or
/// decompresses to more than `limits.max_decoded` bytes in total.
pub fn decode(text: &str, limits: DecodeLimits) -> Result<Value, DecodeError> {
    let limit = limits.max_decoded;
    let (mut current, used) = decode_once(text, limit, limit)?;
    let mut budget = limit - used;
    let mut layers = 1;
    while let Value::String(inner) = &current {
        let next = match decode_once(inner, budget, limit) {
            Ok((next, used)) => {
                budget -= used;
                next
            }
            Err(DecodeError::Malformed(_)) => match serde_json::from_str::<Value>(inner) {
                Ok(parsed) if parsed != current => parsed,
                _ => break,
            },
            Err(e) => return Err(e),
        };
        if layers == MAX_LAYERS {
            return Err(DecodeError::TooDeep { max: MAX_LAYERS });
        }
        layers += 1;
        current = next;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const LIMITS: DecodeLimits = DecodeLimits { max_decoded: 1024 * 1024 };

    /// `E` applied `layers` times to `value` (each outer layer encodes the string of
    /// the one inside).
    fn nested(value: &Value, layers: usize) -> String {
        let mut text = encode(value);
        for _ in 1..layers {
            text = encode(&Value::String(text));
        }
        text
    }

    /// A value and FrameX-kit's own payload survive the round trip; garbage is refused.
    #[test]
    fn values_survive_the_round_trip() {
        for value in [json!({"a": 1, "b": [true, null, "é"]}), json!("text"), json!(3.5)] {
            assert_eq!(decode(&encode(&value), LIMITS).unwrap(), value);
        }
        assert!(matches!(decode("not base64 at all!", LIMITS), Err(DecodeError::Malformed(_))));
    }

    /// What FrameX-kit 0.4.2 encodes decodes to the same value.
    #[test]
    fn decodes_what_framex_kit_encodes() {
        // FrameX-kit 0.4.2: cache_encode({"message": "hi", "n": 2})
        let from_python = "SK2ZZf54Gxl2dX800DE0r64zujg6oW9f4wVxFJx0bw==";
        assert_eq!(decode(from_python, LIMITS).unwrap(), json!({"message": "hi", "n": 2}));
    }

    /// Up to MAX_LAYERS nested layers decode; one more is refused as too deep, and
    /// so is the 60-layer payload of attack 5.
    #[test]
    fn layers_beyond_the_limit_are_refused() {
        let value = json!({"k": "v"});
        assert_eq!(decode(&nested(&value, MAX_LAYERS), LIMITS).unwrap(), value);
        assert_eq!(
            decode(&nested(&value, MAX_LAYERS + 1), LIMITS),
            Err(DecodeError::TooDeep { max: MAX_LAYERS })
        );
        assert_eq!(
            decode(&nested(&value, 60), DecodeLimits { max_decoded: 64 * 1024 * 1024 }),
            Err(DecodeError::TooDeep { max: MAX_LAYERS })
        );
    }

    /// A zlib bomb (a megabyte of zeros in a kilobyte) is refused past the limit,
    /// and the limit counts the bytes of every layer together.
    #[test]
    fn decoded_size_is_bounded_across_layers() {
        let bomb = json!("0".repeat(1024 * 1024));
        assert!(encode(&bomb).len() < 8 * 1024);
        let small = DecodeLimits { max_decoded: 64 * 1024 };
        assert_eq!(decode(&encode(&bomb), small), Err(DecodeError::TooLarge { limit: 64 * 1024 }));
        // Two layers (40 KB of hex digits inside, ~27 KB of base64 around it): each
        // fits in 60 KB, together they do not.
        let mut seed = 0x2545_f491_u32;
        let hex: String = (0..40 * 1024)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from_digit((seed >> 16) % 16, 16).unwrap_or('0')
            })
            .collect();
        let inner = json!(hex);
        let two = encode(&Value::String(encode(&inner)));
        assert!(decode(&two, DecodeLimits { max_decoded: 200 * 1024 }).is_ok());
        assert!(matches!(
            decode(&two, DecodeLimits { max_decoded: 60 * 1024 }),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary text never panics the decoder.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}") {
            let _ = decode(&text, LIMITS);
        }

        /// Arbitrary bytes that are valid base64 (so zlib and JSON see garbage) never
        /// panic it either.
        #[test]
        fn arbitrary_base64_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            let _ = decode(&text, LIMITS);
        }

        /// Adversarial nesting: any value under any number of layers either decodes
        /// to itself (within MAX_LAYERS) or is refused; what is decoded never
        /// serialises to more than the limit.
        #[test]
        fn nested_values_decode_or_are_refused(value in json_value(), layers in 1usize..12, limit in 16usize..4096) {
            let limits = DecodeLimits { max_decoded: limit };
            match decode(&nested(&value, layers), limits) {
                Ok(decoded) => {
                    prop_assert!(layers <= MAX_LAYERS);
                    prop_assert!(serde_json::to_vec(&decoded).unwrap().len() <= limit);
                }
                Err(DecodeError::TooDeep { max }) => prop_assert_eq!(max, MAX_LAYERS),
                Err(DecodeError::TooLarge { limit: l }) => prop_assert_eq!(l, limit),
                Err(DecodeError::Malformed(m)) => prop_assert!(false, "own encoding malformed: {}", m),
            }
        }
    }
}
