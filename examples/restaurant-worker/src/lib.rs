//! An example TPF REST transition worker (`EXECUTION.md` §7) hosting the
//! restaurant-approval demo release written by `demo-release`.
//!
//! Routes:
//! - `GET /pipeline/worker/capabilities` — §7.8;
//! - `POST /pipeline/worker/transitions/execute` — §7.3/§7.4.
//!
//! Both authenticate the coordinator as §7.9 lists (rules 1–6, in order);
//! execute then parses the command (400 when it is not one) and answers 200
//! with a result envelope. [`router`] builds the service from a
//! [`WorkerConfig`] so tests can serve it on any listener.
//!
//! Logging never includes the secret, the signature, or payloads.

pub mod auth;
pub mod config;
pub mod pipeline;
pub mod time;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tpf_core::domain::worker_protocol::{
    TransitionCommand, WorkerCapabilities, CAPABILITIES_PATH, EXECUTE_PATH,
};

pub use config::{SecretSource, WorkerConfig, WorkerIdentity};

/// Largest request body accepted (a command carries the execution's input).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// `payloadEncodings` of the capabilities document.
pub const PAYLOAD_ENCODING: &str = "application/tpf-transition-envelope+json";

struct AppState {
    config: WorkerConfig,
    auth: auth::Authenticator,
}

/// The worker's HTTP service for `config`. Each router has its own nonce
/// memory.
pub fn router(config: WorkerConfig) -> Router {
    let auth = auth::Authenticator::new(config.secret.clone(), config.signature_tolerance_ms);
    let state = Arc::new(AppState { config, auth });
    Router::new()
        .route(CAPABILITIES_PATH, get(capabilities))
        .route(EXECUTE_PATH, post(execute))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The §7.8 document this worker answers.
pub fn capabilities_document(identity: &WorkerIdentity) -> WorkerCapabilities {
    WorkerCapabilities {
        protocol_version: "1".into(),
        provider_name: "rest".into(),
        pipeline_id: identity.pipeline_id.clone(),
        contract_version: identity.contract_version.clone(),
        release_version: identity.release_version.clone(),
        artifact_id: identity.artifact_id.clone(),
        artifact_digest: identity.artifact_digest.clone(),
        payload_encodings: vec![PAYLOAD_ENCODING.into()],
        worker_protocols: vec!["rest".into()],
    }
}

fn json_response(body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn authenticate(
    state: &AppState,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    match state
        .auth
        .check(method, path, headers, body, time::now_ms())
    {
        Ok(()) => None,
        Err(rejection) => {
            tracing::warn!(
                route = path,
                status = rejection.status.as_u16(),
                reason = rejection.reason,
                "request refused"
            );
            Some(rejection.status.into_response())
        }
    }
}

async fn capabilities(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = authenticate(&state, "GET", CAPABILITIES_PATH, &headers, &body) {
        return refused;
    }
    tracing::info!(
        route = CAPABILITIES_PATH,
        status = 200,
        "capabilities served"
    );
    json_response(&capabilities_document(&state.config.identity))
}

async fn execute(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = authenticate(&state, "POST", EXECUTE_PATH, &headers, &body) {
        return refused;
    }
    let command: TransitionCommand = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(_) => {
            tracing::warn!(
                route = EXECUTE_PATH,
                status = 400,
                reason = "body is not a command",
                "request refused"
            );
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let result = pipeline::execute(
        &state.config.identity,
        state.config.await_timeout_ms,
        &command,
        time::now_ms(),
    );
    tracing::info!(
        route = EXECUTE_PATH,
        status = 200,
        tenant_id = %command.tenant_id,
        execution_id = %command.execution_id,
        transition_key = %command.transition_key,
        step_index = command.current_step_index,
        outcome = result["outcome"].as_str().unwrap_or(""),
        failure_class = result["failure"]["failureClass"].as_str().unwrap_or(""),
        "transition executed"
    );
    json_response(&result)
}
