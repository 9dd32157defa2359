//! Strict JSON reading (`API.md` §1.3): UTF-8, an object at the top,
//! no duplicate member names, at most 127 levels of nesting.
//!
//! serde_json silently keeps the last of two same-named members, so values
//! are built by our own visitor that refuses duplicates.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Why a body or file is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrictJsonError {
    /// Zero bytes or only white space.
    Empty,
    NotUtf8,
    /// Syntax error, duplicate member or nesting over the cap; the text says which.
    Invalid(String),
    /// Valid JSON whose top-level value is not an object.
    NotObject,
}

impl fmt::Display for StrictJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrictJsonError::Empty => f.write_str("request body is required"),
            StrictJsonError::NotUtf8 => f.write_str("body is not valid UTF-8"),
            StrictJsonError::Invalid(why) => write!(f, "body is not valid JSON: {why}"),
            StrictJsonError::NotObject => f.write_str("body must be a JSON object"),
        }
    }
}

/// A JSON value read with duplicate member names refused.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json reads the literal `-0` as the float -0.0; the spec
        // accepts `-0` as the integer 0 (API.md §1.3). (`-0.0` becomes 0 too:
        // the two cannot be told apart once parsed.)
        if v == 0.0 && v.is_sign_negative() {
            return Ok(Value::from(0i64));
        }
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "member name {:?} appears twice",
                    truncate(&key, 64)
                )));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Parses any strict JSON value (used for contract files and payload text).
pub fn parse_value(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| StrictJsonError::NotUtf8)?;
    if text.trim().is_empty() {
        return Err(StrictJsonError::Empty);
    }
    // serde_json's default recursion limit (128) refuses the 128th level,
    // which is exactly the cap of `API.md` §1.3.
    let mut de = serde_json::Deserializer::from_str(text);
    let StrictValue(v) =
        StrictValue::deserialize(&mut de).map_err(|e| StrictJsonError::Invalid(e.to_string()))?;
    de.end()
        .map_err(|e| StrictJsonError::Invalid(e.to_string()))?;
    Ok(v)
}

/// Parses a strict JSON object (request bodies, descriptor files).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    match parse_value(bytes)? {
        Value::Object(m) => Ok(m),
        _ => Err(StrictJsonError::NotObject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        // top-level object is level 1, then arrays.
        format!(
            "{{\"a\":{}{}}}",
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        assert!(matches!(
            parse_object(br#"{"a":1,"a":2}"#),
            Err(StrictJsonError::Invalid(_))
        ));
        assert!(matches!(
            parse_object(br#"{"x":[{"b":1,"b":1}]}"#),
            Err(StrictJsonError::Invalid(_))
        ));
    }

    #[test]
    fn caps_nesting_at_127_levels() {
        assert!(parse_object(nested(127).as_bytes()).is_ok());
        assert!(matches!(
            parse_object(nested(128).as_bytes()),
            Err(StrictJsonError::Invalid(_))
        ));
    }

    #[test]
    fn classifies_empty_non_utf8_and_non_objects() {
        assert_eq!(parse_object(b"  \n"), Err(StrictJsonError::Empty));
        assert_eq!(parse_object(&[0xff, 0xfe]), Err(StrictJsonError::NotUtf8));
        assert_eq!(parse_object(b"[1]"), Err(StrictJsonError::NotObject));
        assert!(matches!(
            parse_object(b"{"),
            Err(StrictJsonError::Invalid(_))
        ));
        assert!(matches!(
            parse_object(b"{} x"),
            Err(StrictJsonError::Invalid(_))
        ));
    }

    #[test]
    fn negative_zero_is_an_integer_zero() {
        let m = parse_object(br#"{"n":-0}"#).unwrap();
        assert_eq!(m["n"].as_i64(), Some(0));
    }
}
