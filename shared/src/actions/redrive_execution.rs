//! `redrive_execution` (`API.md` §2.6, `EXECUTION.md` §5.5): put a
//! terminally failed execution back in the queue with one version-guarded
//! write (T9); a retried request with the same `expectedVersion` replays.

use serde::Serialize;
use serde_json::{Map, Value};

use super::get_execution::not_found;
use super::submit_execution::enqueue_now;
use super::EngineDeps;
use crate::domain::execution::{ExecutionStatus, HistoryEvent, AWAIT_FAILURE_CODES};
use crate::domain::values::{char_len, has_control};
use crate::error::{ApiError, ErrorCode};
use crate::ports::Write;

/// A validated re-drive request (defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveRequest {
    pub expected_version: Option<u64>,
    pub reason: String,
    pub allow_failed: bool,
    pub actor: String,
}

/// Response 200 (`ExecutionRedriveResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveResult {
    pub tenant_id: String,
    pub execution_id: String,
    pub previous_status: ExecutionStatus,
    pub status: ExecutionStatus,
    pub version: u64,
    pub current_step_index: u64,
    pub attempt: u64,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub updated_at_epoch_ms: i64,
    pub reason: String,
    pub actor: String,
}

/// A JSON integer within the signed 64-bit range (`API.md` §1.3) that is
/// ≥ 0; `None` otherwise (a fraction, an exponent, or an integer above
/// `i64::MAX`).
fn non_negative(n: &serde_json::Number) -> Option<u64> {
    n.as_i64().and_then(|v| u64::try_from(v).ok())
}

/// Checks the members (§2.6 table order). `None` = no body, `{}` or `null`.
pub fn parse_request(body: Option<&Map<String, Value>>) -> Result<RedriveRequest, ApiError> {
    let empty = Map::new();
    let body = body.unwrap_or(&empty);
    let expected_version =
        match body.get("expectedVersion") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(non_negative(n).ok_or_else(|| {
                ApiError::invalid_field("expectedVersion", "must be an integer ≥ 0")
            })?),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "expectedVersion",
                    "must be an integer ≥ 0",
                ))
            }
        };
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Some(_) => Err(ApiError::invalid_field(name, "must be a string")),
        }
    };
    let reason = text("reason")?
        .map(|r| r.chars().take(80).collect())
        .unwrap_or_else(|| "operator".to_string());
    let allow_failed = match body.get("allowFailed") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid_field("allowFailed", "must be a boolean")),
    };
    let actor = text("actor")?.unwrap_or_else(|| "admin".to_string());
    if char_len(&actor) > 128 || has_control(&actor) {
        return Err(ApiError::invalid_field(
            "actor",
            "must be 1-128 characters without control characters",
        ));
    }
    Ok(RedriveRequest {
        expected_version,
        reason,
        allow_failed,
        actor,
    })
}

fn rebuilt(
    deps_tenant: &str,
    r: &crate::domain::execution::ExecutionRecord,
    e: &HistoryEvent,
) -> RedriveResult {
    RedriveResult {
        tenant_id: deps_tenant.to_string(),
        execution_id: r.execution_id.clone(),
        previous_status: e.previous_status.unwrap_or(ExecutionStatus::Failed),
        status: e.status,
        version: e.version,
        current_step_index: e.step_index,
        attempt: e.attempt,
        pipeline_id: r.pipeline_id.clone(),
        contract_version: r.contract_version.clone(),
        release_version: r.release_version.clone(),
        updated_at_epoch_ms: e.at_epoch_ms,
        reason: e.reason.clone().unwrap_or_default(),
        actor: e.actor.clone().unwrap_or_default(),
    }
}

/// Re-drives `execution_id` of `tenant`.
pub async fn run(
    deps: &EngineDeps,
    tenant: &str,
    execution_id: &str,
    req: RedriveRequest,
) -> Result<RedriveResult, ApiError> {
    let now = deps.clock.now_ms();
    // 1. read
    let record = deps
        .executions
        .get(tenant, execution_id, now)
        .await?
        .ok_or_else(|| not_found(execution_id))?;
    // 2. replay
    if let Some(n) = req.expected_version {
        let events = deps
            .executions
            .history(tenant, execution_id, Some(n), 1, now)
            .await?
            .unwrap_or_default();
        if let Some(e) = events.first().filter(|e| {
            e.version == n + 1 && e.event_type == crate::domain::execution::EventType::Redriven
        }) {
            return Ok(rebuilt(tenant, &record, e));
        }
    }
    // 3. status and await failures
    let redrivable = record.status == ExecutionStatus::Dlq
        || (record.status == ExecutionStatus::Failed && req.allow_failed);
    if !redrivable {
        return Err(ApiError::new(
            ErrorCode::ExecutionNotRedrivable,
            format!(
                "Execution {execution_id} cannot be re-driven from status {}",
                record.status.as_str()
            ),
        ));
    }
    if record
        .error_code
        .as_deref()
        .is_some_and(|c| AWAIT_FAILURE_CODES.contains(&c))
    {
        return Err(ApiError::new(
            ErrorCode::ExecutionNotRedrivable,
            format!("Execution {execution_id} failed at an await and cannot be re-driven; submit a new execution"),
        ));
    }
    // 4. expected version
    if let Some(n) = req.expected_version {
        if n != record.version {
            return Err(ApiError::new(
                ErrorCode::VersionMismatch,
                format!(
                    "Execution {execution_id} version mismatch: expected {n} but current version is {}",
                    record.version
                ),
            ));
        }
    }
    // 5. T9
    let expected = req.expected_version.unwrap_or(record.version);
    let (next, event) = record.redrive(now, expected, &req.reason, &req.actor);
    if deps.executions.update(&next, expected, &event, now).await? == Write::Lost {
        return Err(ApiError::new(
            ErrorCode::ConcurrentModification,
            format!("Execution {execution_id} changed before re-drive could be admitted"),
        ));
    }
    tracing::info!(execution_id, version = next.version, "execution re-driven");
    // 6. enqueue (failure logged only)
    enqueue_now(deps, tenant, execution_id).await;
    Ok(rebuilt(tenant, &next, &event))
}
