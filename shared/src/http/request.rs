//! Reading a request the way `API.md` §1.1–§1.3 and §1.9 say: path
//! parameters decoded once, query parameters, and strict JSON bodies.

use axum::body::Body;
use axum::http::{header, Request};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::domain::cursor::MAX_CURSOR_LEN;
use crate::domain::ids::check_id;
use crate::domain::strict_json::{parse_object, StrictJsonError};
use crate::error::{ApiError, ErrorCode};

/// Request body limit for POST routes that read a body, in bytes.
pub const MAX_BODY_BYTES: usize = 262_144;

/// What an action receives after the common checks.
#[derive(Debug)]
pub struct RequestParts {
    /// Path parameters, percent-decoded once and id-checked.
    pub params: BTreeMap<&'static str, String>,
    pub query: Query,
    /// The JSON object body, for routes that read one.
    pub body: Option<Map<String, Value>>,
    /// The body's bytes, for routes that read one (empty otherwise).
    pub raw_body: Vec<u8>,
    pub request_id: String,
}

impl RequestParts {
    /// A path parameter the route table guarantees.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// The request id: the Lambda request id, else a fresh UUID (local servers).
pub fn request_id<B>(req: &Request<B>) -> String {
    req.extensions()
        .get::<lambda_http::Context>()
        .map(|c| c.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Extracts the `{name}` segments of `pattern` from the raw `path` (which
/// axum already matched), decodes each once and checks the id rule.
pub fn path_params(
    pattern: &'static str,
    path: &str,
) -> Result<BTreeMap<&'static str, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (pat, raw) in pattern.split('/').zip(path.split('/')) {
        if let Some(name) = pat.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidId,
                    format!("{name} is not valid UTF-8 once decoded"),
                )
            })?;
            check_id(name, &decoded)?;
            out.insert(name, decoded.into_owned());
        }
    }
    Ok(out)
}

/// The listed query parameters of a request; empty values count as absent.
#[derive(Debug, Default)]
pub struct Query {
    values: BTreeMap<&'static str, String>,
}

impl Query {
    /// Parses `raw`, keeping only `listed` names. A listed name given more
    /// than once → 400 `INVALID_PARAMETER` naming it, whatever the values.
    pub fn parse(raw: Option<&str>, listed: &[&'static str]) -> Result<Self, ApiError> {
        let mut seen: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode_component(k);
            let Some(name) = listed.iter().find(|n| Some(**n) == key.as_deref()) else {
                continue;
            };
            let value = decode_component(v).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("{name} is not valid UTF-8 once decoded"),
                )
            })?;
            seen.entry(name).or_default().push(value);
        }
        let mut values = BTreeMap::new();
        for (name, vs) in seen {
            if vs.len() > 1 {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("{name} is given more than once"),
                ));
            }
            let v = vs.into_iter().next().unwrap_or_default();
            if !v.is_empty() {
                values.insert(name, v);
            }
        }
        Ok(Query { values })
    }

    /// The value of a listed parameter, if given and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `limit` (`API.md` §1.9): absent → 100; 1..=1000 as given; above is
    /// clamped to 1000; anything else → 400 `INVALID_PARAMETER`.
    pub fn limit(&self) -> Result<usize, ApiError> {
        let Some(raw) = self.get("limit") else {
            return Ok(100);
        };
        let bad = || {
            ApiError::new(
                ErrorCode::InvalidParameter,
                "limit must be an integer from 1 to 2147483647",
            )
        };
        let digits = raw.strip_prefix('-').unwrap_or(raw);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i32 = raw.parse().map_err(|_| bad())?;
        if n < 1 {
            return Err(bad());
        }
        Ok((n as usize).min(1000))
    }

    /// `cursor`, length-checked (decoding happens in the action, which knows
    /// the tenant and filters it must match).
    pub fn cursor(&self) -> Result<Option<&str>, ApiError> {
        match self.get("cursor") {
            Some(c) if c.chars().count() > MAX_CURSOR_LEN => Err(ApiError::new(
                ErrorCode::InvalidCursor,
                "cursor is longer than 2048 characters",
            )),
            other => Ok(other),
        }
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn decode_component(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Reads a JSON object body: media type (415), size (413, before parsing),
/// then strict JSON (400 `INVALID_JSON`).
/// With `optional` (re-drive), an empty body or `null` is `None`.
pub async fn json_body(
    req: Request<Body>,
    optional: bool,
) -> Result<(Option<Map<String, Value>>, Vec<u8>), ApiError> {
    let content_types: Vec<_> = req.headers().get_all(header::CONTENT_TYPE).iter().collect();
    if let Some(ct) = content_types.first() {
        let media = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if content_types.len() > 1 || !(media == "application/json" || media.ends_with("+json")) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "Content-Type must be application/json",
            ));
        }
    }
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "request body is larger than 262144 bytes",
            )
        })?;
    if optional {
        let text = std::str::from_utf8(&bytes).unwrap_or("x").trim();
        if text.is_empty() || text == "null" {
            return Ok((None, bytes.to_vec()));
        }
    }
    let object = parse_object(&bytes).map_err(|e| match e {
        StrictJsonError::Empty => ApiError::new(ErrorCode::InvalidJson, "request body is required"),
        other => ApiError::new(ErrorCode::InvalidJson, other.to_string()),
    })?;
    Ok((Some(object), bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_once_then_id_checked() {
        let p = path_params("/t/{tenantId}/x", "/t/ac%6De/x").unwrap();
        assert_eq!(p["tenantId"], "acme");
        for bad in [
            "/t/a%2Fb/x",
            "/t/a%23b/x",
            "/t/a..b/x",
            "/t/%ZZ/x",
            "/t/%FF/x",
            "/t/a%252Fb/x",
        ] {
            assert_eq!(
                path_params("/t/{tenantId}/x", bad).unwrap_err().code,
                ErrorCode::InvalidId,
                "{bad}"
            );
        }
    }

    #[test]
    fn query_rules() {
        let q = Query::parse(
            Some("limit=5&other=1&other=2&cursor="),
            &["limit", "cursor"],
        )
        .unwrap();
        assert_eq!(q.limit().unwrap(), 5);
        assert_eq!(q.get("cursor"), None);
        let e = Query::parse(Some("limit=1&limit=1"), &["limit"]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameter);
        assert!(e.message.contains("limit"));
        for (raw, want) in [
            ("limit=1001", Ok(1000)),
            ("limit=2147483647", Ok(1000)),
            ("limit", Ok(100)),
        ] {
            assert_eq!(
                Query::parse(Some(raw), &["limit"])
                    .unwrap()
                    .limit()
                    .map_err(|e| e.code),
                want
            );
        }
        for raw in [
            "limit=0",
            "limit=-1",
            "limit=abc",
            "limit=2147483648",
            "limit=1.5",
            "limit=+1",
        ] {
            let q = Query::parse(Some(raw), &["limit"]).unwrap();
            assert_eq!(
                q.limit().unwrap_err().code,
                ErrorCode::InvalidParameter,
                "{raw}"
            );
        }
    }
}
