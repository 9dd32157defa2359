//! Value forms shared by descriptors, workers and configuration
//! (`RELEASES.md` §1.2): text(n), digest, duration, control characters.

/// U+0000–U+001F and U+007F–U+009F (`API.md` §1.4).
pub fn is_control(c: char) -> bool {
    matches!(c as u32, 0x00..=0x1F | 0x7F..=0x9F)
}

/// True when `s` has any control character.
pub fn has_control(s: &str) -> bool {
    s.chars().any(is_control)
}

/// Length in Unicode scalar values, the unit of every character bound.
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// text(n): already trimmed, 1–n characters, no control characters.
pub fn is_text(s: &str, max: usize) -> bool {
    let n = char_len(s);
    (1..=max).contains(&n) && !has_control(s)
}

/// `sha256:` followed by exactly 64 lower-case hex digits.
pub fn is_digest(s: &str) -> bool {
    match s.strip_prefix("sha256:") {
        Some(hex) => hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        None => false,
    }
}

/// Parses an ISO-8601 duration `P[nD][T[nH][nM][n[.f]S]]` into milliseconds.
///
/// Non-negative integers, at least one component, at most 9 fraction digits
/// on seconds. Sub-millisecond fractions are truncated.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return None;
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut total: u128 = 0;
    let mut components = 0;
    if !date.is_empty() {
        let days = date.strip_suffix('D')?;
        total += parse_uint(days)? * 86_400_000;
        components += 1;
    }
    if let Some(mut t) = time {
        for (unit, ms) in [('H', 3_600_000u128), ('M', 60_000)] {
            if let Some(pos) = t.find(unit) {
                let (num, after) = t.split_at(pos);
                total += parse_uint(num)? * ms;
                components += 1;
                t = &after[1..];
            }
        }
        if !t.is_empty() {
            let secs = t.strip_suffix('S')?;
            let (whole, frac) = match secs.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (secs, None),
            };
            total += parse_uint(whole)? * 1000;
            if let Some(f) = frac {
                if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let padded = format!("{f:0<9}");
                total += padded[..3].parse::<u128>().ok()?;
            }
            components += 1;
        }
    }
    if components == 0 {
        return None;
    }
    u64::try_from(total).ok()
}

fn parse_uint(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lower_case_sha256() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "a".repeat(63))));
        assert!(!is_digest(&format!("sha512:{}", "a".repeat(64))));
    }

    #[test]
    fn durations_follow_the_iso_subset() {
        assert_eq!(parse_duration_ms("PT2M"), Some(120_000));
        assert_eq!(parse_duration_ms("PT0S"), Some(0));
        assert_eq!(parse_duration_ms("P7D"), Some(7 * 86_400_000));
        assert_eq!(parse_duration_ms("PT1.5S"), Some(1_500));
        assert_eq!(parse_duration_ms("P1DT1H1M1.000000001S"), Some(90_061_000));
        for bad in [
            "",
            "P",
            "PT",
            "PT-1S",
            "2M",
            "PT1.S",
            "PT1.0000000001S",
            "PT1X",
            "P1H",
        ] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_counts_scalar_values_and_refuses_controls() {
        assert!(is_text(&"😀".repeat(256), 256));
        assert!(!is_text(&"😀".repeat(257), 256));
        assert!(!is_text("a\u{0085}b", 10));
        assert!(!is_text("", 10));
    }
}
