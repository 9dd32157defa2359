//! The load driver's API client: the control-plane calls one execution
//! needs (submit, status, history, complete), either through the router in
//! process (`tower::ServiceExt::oneshot`, no socket) or over HTTP to a base
//! URL (a stack served on loopback, or one already running).

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use super::LoadError;

/// How requests reach the control-plane.
#[derive(Clone)]
pub enum Api {
    /// Through the router in this process.
    InProcess { router: Router, token: String },
    /// Over HTTP to `base` (no trailing slash).
    Http {
        client: reqwest::Client,
        base: String,
        token: String,
    },
}

/// A response: status code and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Api {
    /// An HTTP client of `base` with bearer `token`; connections are kept
    /// alive and reused across the driver's clients.
    pub fn http(base: &str, token: &str) -> Result<Api, LoadError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| LoadError::Setup(format!("HTTP client: {e}")))?;
        Ok(Api::Http {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// Sends one request; a transport failure is an error, any HTTP status
    /// is a reply.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, LoadError> {
        match self {
            Api::InProcess { router, token } => {
                let mut b = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("authorization", format!("Bearer {token}"));
                let body = match body {
                    Some(v) => {
                        b = b.header("content-type", "application/json");
                        Body::from(v.to_string())
                    }
                    None => Body::empty(),
                };
                let request = b
                    .body(body)
                    .map_err(|e| LoadError::Transport(e.to_string()))?;
                let response = match router.clone().oneshot(request).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map_err(|e| LoadError::Transport(e.to_string()))?;
                Ok(Reply {
                    status,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                })
            }
            Api::Http {
                client,
                base,
                token,
            } => {
                let method = reqwest::Method::from_bytes(method.as_bytes())
                    .map_err(|e| LoadError::Transport(e.to_string()))?;
                let mut request = client
                    .request(method, format!("{base}{path}"))
                    .bearer_auth(token);
                if let Some(v) = body {
                    request = request
                        .header("content-type", "application/json")
                        .body(v.to_string());
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| LoadError::Transport(e.to_string()))?;
                let status = response.status().as_u16();
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| LoadError::Transport(e.to_string()))?;
                Ok(Reply {
                    status,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                })
            }
        }
    }

    /// Whether requests go through a socket.
    pub fn transport_name(&self) -> &'static str {
        match self {
            Api::InProcess { .. } => "in-process",
            Api::Http { .. } => "http",
        }
    }
}
