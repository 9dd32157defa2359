//! Bearer authentication (`API.md` §1.5): one `Authorization` header,
//! case-insensitive `Bearer` scheme, SHA-256 of both tokens compared in
//! constant time. Tokens never reach logs or messages.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorCode};
use crate::providers::secrets::CachedSecret;

fn unauthorized() -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, "missing or invalid bearer token")
}

/// The presented token, or 401 when the header is missing, repeated, of
/// another scheme, or blank.
pub fn presented_token(headers: &HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(unauthorized());
    };
    let text = value.to_str().map_err(|_| unauthorized())?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized());
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(unauthorized());
    }
    Ok(token.to_string())
}

/// Constant-time equality of the SHA-256 digests of two tokens.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// Authenticates a request against the route's token: 401 `UNAUTHORIZED`
/// or 503 `AUTH_UNAVAILABLE` (reference not resolvable now).
pub async fn check(headers: &HeaderMap, expected: Option<&CachedSecret>) -> Result<(), ApiError> {
    let presented = presented_token(headers)?;
    let expected = match expected {
        Some(secret) => secret.get().await,
        None => None,
    };
    let Some(expected) = expected else {
        tracing::warn!("authentication token could not be resolved");
        return Err(ApiError::new(
            ErrorCode::AuthUnavailable,
            "the configured token cannot be resolved; retry later",
        ));
    };
    if tokens_match(&presented, &expected) {
        Ok(())
    } else {
        tracing::info!("authentication failed");
        Err(unauthorized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn scheme_is_case_insensitive_and_token_trimmed() {
        assert_eq!(
            presented_token(&headers(&["bearer   tok "])).unwrap(),
            "tok"
        );
        assert_eq!(presented_token(&headers(&["BEARER tok"])).unwrap(), "tok");
    }

    #[test]
    fn missing_repeated_other_scheme_or_blank_is_unauthorized() {
        for h in [
            headers(&[]),
            headers(&["Bearer a", "Bearer a"]),
            headers(&["Basic abc"]),
            headers(&["Bearer   "]),
            headers(&["Bearer"]),
        ] {
            assert_eq!(
                presented_token(&h).unwrap_err().code,
                ErrorCode::Unauthorized
            );
        }
    }

    #[test]
    fn auth10_digests_compare_equal_only_for_equal_tokens() {
        assert!(tokens_match("local-admin-token", "local-admin-token"));
        assert!(!tokens_match("local-admin-token", "local-admin-tokeN"));
        assert!(!tokens_match("short", "a-much-longer-token"));
    }
}
