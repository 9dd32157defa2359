//! `submit_execution` (`API.md` §2.1, `EXECUTION.md` §5.1): validate, apply
//! the idempotency policy, pin the active release, check its recorded
//! verification and the worker registry, create the execution (T1) and
//! enqueue it. No outbound call, no artifact read.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{all_workers, EngineDeps};
use crate::config::IdempotencyPolicy;
use crate::domain::envelope::{
    input_hash, input_snapshot, server_key, validate_envelope, InputShape,
};
use crate::domain::execution::{
    execution_key, first_input_type, keyless_execution_key, ExecutionRecord, ExecutionStatus,
    KeyEntry, ResultShape,
};
use crate::domain::ids::check_id;
use crate::domain::release::ReleaseRecord;
use crate::domain::selection::{eligible, no_worker_message};
use crate::domain::values::{char_len, has_control};
use crate::error::{ApiError, ErrorCode};
use crate::ports::{CreateExecution, WorkItem};

/// A validated submit request.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub pipeline_id: String,
    pub input_shape: InputShape,
    pub input_payload: Value,
    pub idempotency_key: Option<String>,
}

/// Response 200 of submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResponse {
    pub execution_id: String,
    pub duplicate: bool,
    pub status_url: String,
    pub submitted_at_epoch_ms: i64,
}

fn trimmed(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(_) => Err(ApiError::invalid_field(name, "must be a string")),
    }
}

/// Checks the members in the order of the table of §2.1.
pub fn parse_request(body: &Map<String, Value>) -> Result<SubmitRequest, ApiError> {
    let pipeline_id =
        trimmed(body, "pipelineId")?.ok_or_else(|| ApiError::missing("pipelineId"))?;
    check_id("pipelineId", &pipeline_id)?;
    let input_shape = match body.get("inputShape") {
        None | Some(Value::Null) => return Err(ApiError::missing("inputShape")),
        Some(Value::String(s)) => match s.as_str() {
            "UNI" => InputShape::Uni,
            "MULTI" => InputShape::Multi,
            "RAW" => InputShape::Raw,
            _ => {
                return Err(ApiError::invalid_field(
                    "inputShape",
                    "must be UNI, MULTI or RAW",
                ))
            }
        },
        Some(_) => return Err(ApiError::invalid_field("inputShape", "must be a string")),
    };
    let input_payload = match body.get("inputPayload") {
        None | Some(Value::Null) => return Err(ApiError::missing("inputPayload")),
        Some(v) => {
            validate_envelope("inputPayload", v)?;
            v.clone()
        }
    };
    let idempotency_key = trimmed(body, "idempotencyKey")?;
    if let Some(k) = &idempotency_key {
        if char_len(k) > 256 || has_control(k) {
            return Err(ApiError::invalid_field(
                "idempotencyKey",
                "must be 1-256 characters without control characters",
            ));
        }
    }
    match body.get("outputStreaming") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(ApiError::new(
                ErrorCode::OutputStreamingUnsupported,
                "outputStreaming is not supported",
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "outputStreaming",
                "must be a boolean",
            ))
        }
    }
    Ok(SubmitRequest {
        pipeline_id,
        input_shape,
        input_payload,
        idempotency_key,
    })
}

/// The status path of an execution.
pub fn status_url(tenant: &str, execution_id: &str) -> String {
    format!("/tpf/control-plane/tenants/{tenant}/executions/{execution_id}")
}

/// Runs steps 2–9 of §2.1.
pub async fn run(
    deps: &EngineDeps,
    tenant: &str,
    req: SubmitRequest,
) -> Result<SubmitResponse, ApiError> {
    // 2. idempotency policy
    let raw_key = match deps.settings.idempotency_policy {
        IdempotencyPolicy::OptionalClientKey => req.idempotency_key.clone(),
        IdempotencyPolicy::ClientKeyRequired => {
            Some(req.idempotency_key.clone().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::IdempotencyKeyRequired,
                    "idempotencyKey is required by the idempotency policy",
                )
            })?)
        }
        IdempotencyPolicy::ServerKeyOnly => {
            Some(server_key(tenant, &req.input_payload, req.input_shape))
        }
    };
    // 3. the active release
    let no_active = || {
        ApiError::new(
            ErrorCode::NoActiveRelease,
            "No active release is registered for the requested pipeline",
        )
    };
    let latest = deps
        .releases
        .latest_event(tenant, &req.pipeline_id)
        .await?
        .ok_or_else(no_active)?;
    let release = deps
        .releases
        .get_release(tenant, &req.pipeline_id, &latest.release_version)
        .await?
        .ok_or_else(no_active)?;
    let hash = input_hash(&req.input_payload, req.input_shape);
    let key = raw_key.map(|k| execution_key(&req.pipeline_id, &release.release_version, &k));
    // 4. an existing execution with this key
    if let Some(k) = &key {
        if let Some(found) = duplicate(deps, tenant, k, &hash).await? {
            return Ok(found);
        }
    }
    // 5. recorded artifact verification
    if !latest.artifact_verified {
        return Err(ApiError::new(
            ErrorCode::ReleaseArtifactUnverified,
            format!(
                "the stored artifact of release {} is not verified; re-activate it",
                release.release_version
            ),
        ));
    }
    // 6. an eligible worker
    let now = deps.clock.now_ms();
    let workers = all_workers(deps.workers.as_ref(), tenant, &req.pipeline_id).await?;
    if eligible(&workers, &release, now, deps.stale_after_ms).is_empty() {
        return Err(ApiError::new(
            ErrorCode::NoHealthyWorker,
            no_worker_message(&workers, &release, now, deps.stale_after_ms),
        ));
    }
    // 7. shape the input and create (T1)
    let snapshot = input_snapshot(
        req.input_shape,
        &req.input_payload,
        first_input_type(release.contract.as_ref()).as_deref(),
    )?;
    let snapshot = RawValue::from_string(snapshot).map_err(|e| {
        ApiError::new(
            ErrorCode::InternalError,
            format!("snapshot is not JSON: {e}"),
        )
    })?;
    for _ in 0..3 {
        let record = new_record(
            deps,
            tenant,
            &release,
            key.as_deref(),
            &hash,
            snapshot.clone(),
        );
        let entry = key.as_ref().map(|k| KeyEntry {
            tenant_id: tenant.to_string(),
            execution_key: k.clone(),
            execution_id: record.execution_id.clone(),
            input_hash: hash.clone(),
            created_at_epoch_ms: record.created_at_epoch_ms,
            ttl_epoch_s: record.ttl_epoch_s,
        });
        match deps
            .executions
            .create(
                &record,
                &record.submitted_event(),
                entry.as_ref(),
                record.created_at_epoch_ms,
            )
            .await?
        {
            CreateExecution::Created => {
                tracing::info!(execution_id = %record.execution_id, "execution submitted");
                enqueue_now(deps, tenant, &record.execution_id).await;
                return Ok(SubmitResponse {
                    status_url: status_url(tenant, &record.execution_id),
                    execution_id: record.execution_id,
                    duplicate: false,
                    submitted_at_epoch_ms: record.created_at_epoch_ms,
                });
            }
            CreateExecution::KeyTaken(_) => {
                // Lost the race on the key: continue at step 4 with the winner.
                if let Some(found) =
                    duplicate(deps, tenant, key.as_deref().unwrap_or_default(), &hash).await?
                {
                    return Ok(found);
                }
            }
            CreateExecution::IdTaken => {}
        }
    }
    Err(ApiError::new(
        ErrorCode::ConcurrentModification,
        "the execution key changed concurrently; retry",
    ))
}

/// Step 4: the live execution holding `key`, as a duplicate, or 409 for
/// another input; `None` when the key is free.
async fn duplicate(
    deps: &EngineDeps,
    tenant: &str,
    key: &str,
    hash: &str,
) -> Result<Option<SubmitResponse>, ApiError> {
    let now = deps.clock.now_ms();
    let Some(entry) = deps.executions.get_key(tenant, key, now).await? else {
        return Ok(None);
    };
    if entry.input_hash != hash {
        return Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            format!(
                "idempotencyKey was already used with a different input by execution {}",
                entry.execution_id
            ),
        ));
    }
    let Some(existing) = deps
        .executions
        .get(tenant, &entry.execution_id, now)
        .await?
    else {
        return Ok(None);
    };
    // Heal a crash between create and enqueue.
    if existing.status == ExecutionStatus::Queued && existing.is_claimable(now) {
        enqueue_now(deps, tenant, &existing.execution_id).await;
    }
    Ok(Some(SubmitResponse {
        status_url: status_url(tenant, &existing.execution_id),
        execution_id: existing.execution_id,
        duplicate: true,
        submitted_at_epoch_ms: existing.created_at_epoch_ms,
    }))
}

/// Enqueues an execution now; a failure is logged only (the sweep recovers).
pub(crate) async fn enqueue_now(deps: &EngineDeps, tenant: &str, execution_id: &str) {
    let item = WorkItem {
        tenant_id: tenant.to_string(),
        execution_id: execution_id.to_string(),
    };
    if let Err(e) = deps.queue.enqueue(&item, 0).await {
        tracing::warn!(execution_id, error = %e, "enqueue failed; the sweep will dispatch it");
    }
}

fn new_record(
    deps: &EngineDeps,
    tenant: &str,
    release: &ReleaseRecord,
    key: Option<&str>,
    hash: &str,
    snapshot: Box<RawValue>,
) -> ExecutionRecord {
    let now = deps.clock.now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    ExecutionRecord {
        tenant_id: tenant.to_string(),
        execution_key: key.map(str::to_string).unwrap_or_else(|| {
            keyless_execution_key(&release.pipeline_id, &release.release_version, &id)
        }),
        execution_id: id,
        input_hash: hash.to_string(),
        pipeline_id: release.pipeline_id.clone(),
        contract_version: release.contract_version.clone(),
        release_version: release.release_version.clone(),
        result_shape: ResultShape::from_contract(release.contract.as_ref()),
        status: ExecutionStatus::Queued,
        version: 0,
        current_step_index: 0,
        attempt: 0,
        lease_owner: None,
        lease_expires_epoch_ms: 0,
        next_due_epoch_ms: Some(now),
        last_transition_key: None,
        input_payload: snapshot,
        await_unit_id: None,
        result_payload: None,
        error_code: None,
        error_message: None,
        created_at_epoch_ms: now,
        updated_at_epoch_ms: now,
        ttl_epoch_s: now.div_euclid(1000) + deps.settings.ttl_days * 86_400,
    }
}
