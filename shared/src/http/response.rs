//! Building responses: JSON bodies, `X-Request-Id`, the error object of
//! `API.md` §1.8 with `WWW-Authenticate` (401), `Allow` (405) and
//! `Retry-After` (503).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};

/// A successful action result: the JSON text of its body (serialised from
/// typed values, so raw payload text is sent verbatim).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    /// `X-TPF-Next-Cursor` for bare-array lists with more items.
    pub next_cursor: Option<String>,
}

impl Reply {
    /// 200 with `body` serialised as JSON.
    pub fn ok<T: serde::Serialize + ?Sized>(body: &T) -> Result<Self, ApiError> {
        let body = serde_json::to_string(body)
            .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
        Ok(Reply {
            status: StatusCode::OK,
            body,
            next_cursor: None,
        })
    }

    /// The same reply with `X-TPF-Next-Cursor`.
    pub fn with_cursor(mut self, cursor: Option<String>) -> Self {
        self.next_cursor = cursor;
        self
    }
}

/// 405 for a path that exists without this method, with its `Allow` header.
pub fn method_not_allowed(rid: &str, allow: &[&str]) -> Response {
    let allow = allow.join(", ");
    let e = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed; allowed: {allow}"),
    );
    let mut resp = error(rid, &e);
    if let Ok(v) = HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

fn json_response(rid: &str, status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-request-id", v);
    }
    resp
}

/// The response of a successful action.
pub fn reply(rid: &str, reply: Reply) -> Response {
    let mut resp = json_response(rid, reply.status, reply.body);
    if let Some(c) = reply
        .next_cursor
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        resp.headers_mut().insert("x-tpf-next-cursor", c);
    }
    resp
}

/// The response of an error: exactly `{"code","message"}`.
pub fn error(rid: &str, e: &ApiError) -> Response {
    let message = if e.code == ErrorCode::InternalError {
        format!("internal error; request id {rid}")
    } else {
        e.message.clone()
    };
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(
        rid,
        status,
        json!({"code": e.code.as_str(), "message": message}).to_string(),
    );
    let h = resp.headers_mut();
    match e.code.status() {
        401 => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tpf\""),
            );
        }
        503 => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        _ => {}
    }
    resp
}
