//! `register_worker` (`RELEASES.md` §6.1): create or replace a worker's
//! lifecycle record — `HEALTHY`, fresh times, drain cleared — with one
//! `REGISTER` event written atomically with the entry.
//!
//! With the capability check on, a `rest` worker's signed capabilities
//! endpoint is probed before anything is written (§6.1).

use serde_json::{Map, Value};

use super::{WorkerDeps, MAX_WRITE_ATTEMPTS};
use crate::domain::ids::check_id;
use crate::domain::values::{char_len, has_control, is_digest, is_text};
use crate::domain::worker::{WorkerEntry, WorkerEvent, WorkerEventType, WorkerView};
use crate::domain::worker_protocol::ExpectedIdentity;
use crate::error::{ApiError, ErrorCode};
use crate::ports::{ProbeError, WorkerWrite};

/// The validated members of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterWorker {
    pub worker_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub protocol: String,
    pub endpoint: String,
    pub artifact_id: String,
    pub artifact_digest: String,
}

/// A trimmed string member: `None` when absent, `null` or blank.
fn string_member(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(_) => Err(ApiError::invalid_field(name, "must be a string")),
    }
}

fn required_id(body: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    let v = string_member(body, name)?.ok_or_else(|| ApiError::missing(name))?;
    check_id(name, &v)?;
    Ok(v)
}

/// Checks the members in the order of §6.1's table.
pub fn parse_request(body: &Map<String, Value>) -> Result<RegisterWorker, ApiError> {
    let worker_id = required_id(body, "workerId")?;
    let contract_version = required_id(body, "contractVersion")?;
    let release_version = required_id(body, "releaseVersion")?;
    let protocol = string_member(body, "protocol")?
        .ok_or_else(|| ApiError::missing("protocol"))?
        .to_ascii_lowercase();
    if !is_protocol(&protocol) {
        return Err(ApiError::invalid_field(
            "protocol",
            "must match ^[a-z][a-z0-9-]{0,31}$",
        ));
    }
    let endpoint = string_member(body, "endpoint")?.unwrap_or_default();
    if char_len(&endpoint) > 2048 || has_control(&endpoint) {
        return Err(ApiError::invalid_field(
            "endpoint",
            "must be at most 2048 characters without control characters",
        ));
    }
    if protocol == "rest" && !is_rest_endpoint(&endpoint) {
        return Err(ApiError::invalid_field(
            "endpoint",
            "must be an absolute http or https URL with a host and no user info, query or fragment for protocol rest",
        ));
    }
    let artifact_id = string_member(body, "artifactId")?.unwrap_or_default();
    if !artifact_id.is_empty() && !is_text(&artifact_id, 256) {
        return Err(ApiError::invalid_field(
            "artifactId",
            "must be at most 256 characters without control characters",
        ));
    }
    let artifact_digest = string_member(body, "artifactDigest")?.unwrap_or_default();
    if !artifact_digest.is_empty() && !is_digest(&artifact_digest) {
        return Err(ApiError::invalid_field(
            "artifactDigest",
            "must be sha256: followed by 64 lowercase hex digits",
        ));
    }
    Ok(RegisterWorker {
        worker_id,
        contract_version,
        release_version,
        protocol,
        endpoint,
        artifact_id,
        artifact_digest,
    })
}

fn is_protocol(p: &str) -> bool {
    let b = p.as_bytes();
    (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_rest_endpoint(endpoint: &str) -> bool {
    match url::Url::parse(endpoint) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none()
        }
        Err(_) => false,
    }
}

/// §6.1 capability check: the worker at `endpoint` must serve the
/// registered identity; nothing is written when it fails.
async fn probe(deps: &WorkerDeps, pipeline: &str, req: &RegisterWorker) -> Result<(), ApiError> {
    let Some(transport) = deps.probe.as_ref().filter(|_| req.protocol == "rest") else {
        return Ok(());
    };
    let caps = transport
        .capabilities(&req.endpoint)
        .await
        .map_err(|e| match e {
            ProbeError::Unreachable(why) => ApiError::new(
                ErrorCode::WorkerUnreachable,
                format!("worker capabilities could not be read from its endpoint: {why}"),
            ),
            ProbeError::SecretUnavailable => ApiError::new(
                ErrorCode::DependencyUnavailable,
                "the worker shared secret cannot be resolved; retry later",
            ),
        })?;
    let expected = ExpectedIdentity {
        pipeline_id: pipeline,
        contract_version: &req.contract_version,
        release_version: &req.release_version,
        artifact_id: &req.artifact_id,
        artifact_digest: &req.artifact_digest,
    };
    caps.check(&expected).map_err(|why| {
        ApiError::new(
            ErrorCode::WorkerCapabilitiesMismatch,
            format!("worker serves another identity: {why}"),
        )
    })
}

/// Registers (or re-registers) a worker of `(tenant, pipeline)`.
pub async fn run(
    deps: &WorkerDeps,
    tenant: &str,
    pipeline: &str,
    req: RegisterWorker,
) -> Result<WorkerView, ApiError> {
    probe(deps, pipeline, &req).await?;
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let current = deps
            .registry
            .get_worker(tenant, pipeline, &req.worker_id)
            .await?;
        let now = deps.clock.now_ms();
        let entry = WorkerEntry {
            tenant_id: tenant.to_string(),
            pipeline_id: pipeline.to_string(),
            contract_version: req.contract_version.clone(),
            release_version: req.release_version.clone(),
            worker_id: req.worker_id.clone(),
            protocol: req.protocol.clone(),
            endpoint: req.endpoint.clone(),
            artifact_id: req.artifact_id.clone(),
            artifact_digest: req.artifact_digest.clone(),
            registered_at_epoch_ms: now,
            last_heartbeat_at_epoch_ms: now,
            draining_since_epoch_ms: 0,
            state_version: current.as_ref().map_or(1, |c| c.state_version + 1),
            updated_at_epoch_ms: now,
        };
        let event = WorkerEvent {
            event_type: WorkerEventType::Register,
            at_epoch_ms: now,
            state_version: entry.state_version,
            snapshot: entry.clone(),
        };
        let expected = current.as_ref().map(|c| c.state_version);
        if deps
            .registry
            .write_worker(&entry, expected, Some(&event))
            .await?
            == WorkerWrite::Written
        {
            tracing::info!(worker = %entry.worker_id, state_version = entry.state_version, "worker registered");
            return Ok(entry.view(now, deps.stale_after_ms));
        }
    }
    Err(concurrent())
}

/// 409 after three lost races (§6.6).
pub fn concurrent() -> ApiError {
    ApiError::new(
        ErrorCode::ConcurrentModification,
        "worker record changed concurrently three times; retry",
    )
}

/// 404 for an unknown worker.
pub fn not_found(worker: &str) -> ApiError {
    ApiError::new(
        ErrorCode::WorkerNotFound,
        format!("worker {worker} is not registered"),
    )
}
