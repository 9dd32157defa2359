//! I-JSON number checks (RFC 7493) on raw JSON text, as the JCS hash of
//! `RELEASES.md` §2.3 needs: serde_json turns an over-long integer literal
//! into a float silently, so the literal text is inspected instead.

/// Largest magnitude of an integer literal: 2^53 − 1.
const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

/// Checks every number token of `json` (valid JSON text): each must be a
/// finite IEEE-754 double, and one written without fraction or exponent
/// must lie within ±(2^53 − 1). Err names the offending literal (cut to 40 chars).
pub fn check_numbers(json: &str) -> Result<(), String> {
    let bytes = json.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i + 1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                check_literal(&json[start..i])?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index just past the closing quote of a string whose content starts at `i`.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn check_literal(literal: &str) -> Result<(), String> {
    let is_integer = !literal.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    let ok = if is_integer {
        let digits = literal.strip_prefix('-').unwrap_or(literal);
        let digits = digits.trim_start_matches('0');
        digits.is_empty()
            || (digits.len() <= 16 && digits.parse::<u64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER))
    } else {
        literal.parse::<f64>().is_ok_and(f64::is_finite)
    };
    if ok {
        Ok(())
    } else {
        let shown: String = literal.chars().take(40).collect();
        let why = if is_integer {
            "is an integer outside ±(2^53 − 1)"
        } else {
            "is not a finite IEEE-754 double"
        };
        Err(format!("number {shown} {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_safe_integers_fractions_and_negative_zero() {
        for ok in [
            r#"{"a":9007199254740991}"#,
            r#"{"a":-9007199254740991}"#,
            r#"{"a":-0,"b":0,"c":[1,2.5,-3e2,1E-400]}"#,
            r#"{"a":1e308,"b":9007199254740993.0}"#,
            r#"{"a":"9007199254740993 1e400"}"#,
            r#"{"a\"1e400":"x\\","b":true,"c":null,"d":false}"#,
        ] {
            assert_eq!(check_numbers(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_unsafe_integers_and_infinite_doubles() {
        for bad in [
            r#"{"a":9007199254740992}"#,
            r#"{"a":9007199254740993}"#,
            r#"{"a":-9007199254740993}"#,
            r#"{"a":[123456789012345678901234567890]}"#,
            r#"{"a":1e400}"#,
            r#"{"a":-1.5E309}"#,
        ] {
            assert!(check_numbers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_names_the_literal_cut_to_40_characters() {
        let err = check_numbers(r#"{"a":9007199254740993}"#).unwrap_err();
        assert!(err.contains("9007199254740993"), "{err}");
        let long = "1".repeat(60);
        let err = check_numbers(&format!("[{long}]")).unwrap_err();
        assert!(
            err.contains(&"1".repeat(40)) && !err.contains(&"1".repeat(41)),
            "{err}"
        );
    }
}
