//! The id rule of `API.md` §1.4: values that become storage keys.

use crate::error::{ApiError, ErrorCode};

/// Maximum length of an identifier, in characters.
pub const MAX_ID_LEN: usize = 128;

/// True when `value` satisfies the id rule:
/// `^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$` and no `..`.
pub fn is_valid_id(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_ID_LEN || !bytes[0].is_ascii_alphanumeric() {
        return false;
    }
    bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
        && !value.contains("..")
}

/// Checks the id rule, naming `field` in the 400 `INVALID_ID` message.
pub fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    if is_valid_id(value) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidId,
            format!(
                "{field} must be 1-128 characters of A-Z a-z 0-9 . _ : @ -, start with a letter or digit and not contain '..'"
            ),
        ))
    }
}

/// Release versions that collide with literal route segments (`RELEASES.md` §1.1).
pub const RESERVED_RELEASE_VERSIONS: [&str; 3] = ["active", "activations", "register"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_versions_and_contract_hashes() {
        for ok in [
            "acme",
            "7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34",
            "2025.01.0",
            "sha256:4be1f0c27a9d",
            "a@b_c",
            &"a".repeat(128),
        ] {
            assert!(is_valid_id(ok), "{ok}");
        }
    }

    #[test]
    fn refuses_separators_traversal_length_and_bad_first_character() {
        for bad in [
            "",
            "a#b",
            "a/b",
            "a..b",
            ".a",
            "-a",
            "é",
            "a b",
            &"a".repeat(129),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
