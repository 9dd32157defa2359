//! Plain list cursors (`EXECUTION.md` §10.7, `API.md` §1.9): base64url of
//! compact JSON holding the last returned key, the tenant and the filters.
//! Unsigned; a cursor that does not decode or was issued for another tenant
//! or other filters is 400 `INVALID_CURSOR`.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::error::{ApiError, ErrorCode};

/// Longest cursor accepted, in characters.
pub const MAX_CURSOR_LEN: usize = 2048;

#[derive(Debug, Serialize, Deserialize)]
struct CursorBody {
    t: String,
    f: BTreeMap<String, String>,
    k: Value,
}

/// Encodes a cursor after `key` for `tenant` and `filters`.
pub fn encode(tenant: &str, filters: &BTreeMap<String, String>, key: Value) -> String {
    let body = CursorBody {
        t: tenant.to_owned(),
        f: filters.clone(),
        k: key,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn invalid() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCursor,
        "cursor is not one this list handed out for these filters",
    )
}

/// Decodes a cursor and checks it was issued for `tenant` and `filters`.
pub fn decode(
    cursor: &str,
    tenant: &str,
    filters: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    if cursor.chars().count() > MAX_CURSOR_LEN {
        return Err(ApiError::new(
            ErrorCode::InvalidCursor,
            "cursor is longer than 2048 characters",
        ));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.t != tenant || &body.f != filters {
        return Err(invalid());
    }
    Ok(body.k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_tenant_and_filters() {
        let mut f = BTreeMap::new();
        f.insert("pipelineId".to_string(), "p".to_string());
        let c = encode("acme", &f, Value::from("w-1"));
        assert_eq!(decode(&c, "acme", &f).unwrap(), Value::from("w-1"));
        assert_eq!(
            decode(&c, "other", &f).unwrap_err().code,
            ErrorCode::InvalidCursor
        );
        assert_eq!(
            decode(&c, "acme", &BTreeMap::new()).unwrap_err().code,
            ErrorCode::InvalidCursor
        );
        assert_eq!(
            decode("!!!", "acme", &f).unwrap_err().code,
            ErrorCode::InvalidCursor
        );
        assert_eq!(
            decode("e30", "acme", &f).unwrap_err().code,
            ErrorCode::InvalidCursor
        );
    }
}
