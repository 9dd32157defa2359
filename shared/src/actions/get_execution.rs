//! `get_status`, `get_result`, `get_history` (`API.md` §2.2, §2.3, §3.2):
//! strongly consistent reads of one execution.

use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::{EngineDeps, Page, PageRequest};
use crate::domain::cursor;
use crate::domain::envelope::{null_envelope, TRANSITION_ENCODING};
use crate::domain::execution::{
    ExecutionRecord, ExecutionStatus, ExecutionStatusDto, HistoryEvent, ResultShape,
};
use crate::error::{ApiError, ErrorCode};

/// 404 `EXECUTION_NOT_FOUND`.
pub fn not_found(execution_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ExecutionNotFound,
        format!("Execution not found: {execution_id}"),
    )
}

/// The live record, or 404.
pub async fn record(
    deps: &EngineDeps,
    tenant: &str,
    execution_id: &str,
) -> Result<ExecutionRecord, ApiError> {
    let now = deps.clock.now_ms();
    deps.executions
        .get(tenant, execution_id, now)
        .await?
        .ok_or_else(|| not_found(execution_id))
}

/// `ExecutionStatusDto`.
pub async fn status(
    deps: &EngineDeps,
    tenant: &str,
    execution_id: &str,
) -> Result<ExecutionStatusDto, ApiError> {
    Ok(ExecutionStatusDto::from(
        &record(deps, tenant, execution_id).await?,
    ))
}

/// The result endpoint's body (§2.3).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResult {
    pub status: ExecutionStatusDto,
    pub result_payload: Option<Box<RawValue>>,
}

/// `{status, resultPayload}` (§2.3).
pub async fn result(
    deps: &EngineDeps,
    tenant: &str,
    execution_id: &str,
) -> Result<ExecutionResult, ApiError> {
    let r = record(deps, tenant, execution_id).await?;
    let result_payload = if r.status == ExecutionStatus::Succeeded {
        Some(result_envelope(&r)?)
    } else {
        None
    };
    Ok(ExecutionResult {
        status: ExecutionStatusDto::from(&r),
        result_payload,
    })
}

/// The result envelope of a `SUCCEEDED` record by its result shape.
fn result_envelope(r: &ExecutionRecord) -> Result<Box<RawValue>, ApiError> {
    let outputs = r.result_payload.clone().unwrap_or_default();
    let bad = |e: serde_json::Error| {
        ApiError::new(
            ErrorCode::InternalError,
            format!("stored output is not JSON: {e}"),
        )
    };
    match r.result_shape {
        ResultShape::Single => match outputs.into_iter().next() {
            // Exactly as the worker returned it.
            Some(o) => Ok(o),
            None => RawValue::from_string(null_envelope().to_string()).map_err(bad),
        },
        ResultShape::MaterializedMulti => {
            let mut items = Vec::new();
            for o in &outputs {
                let v: Value = serde_json::from_str(o.get()).map_err(bad)?;
                let member = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
                let mut three = serde_json::Map::new();
                three.insert("payloadTypeId".into(), member("payloadTypeId"));
                three.insert("payloadEncoding".into(), member("payloadEncoding"));
                three.insert("payload".into(), member("payload"));
                items.push(Value::Object(three));
            }
            let payload = serde_json::to_string(&json!({"items": items})).map_err(bad)?;
            let envelope = json!({"payloadTypeId": "java.util.List", "payloadEncoding": TRANSITION_ENCODING, "payload": payload});
            RawValue::from_string(envelope.to_string()).map_err(bad)
        }
    }
}

/// One page of history, oldest first, paged by version.
pub async fn history(
    deps: &EngineDeps,
    tenant: &str,
    execution_id: &str,
    page: &PageRequest,
) -> Result<Page<HistoryEvent>, ApiError> {
    let filters = BTreeMap::from([("executionId".to_string(), execution_id.to_string())]);
    let after = match &page.cursor {
        Some(c) => Some(
            cursor::decode(c, tenant, &filters)?
                .as_u64()
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidCursor,
                        "cursor is not one this list handed out",
                    )
                })?,
        ),
        None => None,
    };
    let now = deps.clock.now_ms();
    let events = deps
        .executions
        .history(tenant, execution_id, after, page.limit + 1, now)
        .await?
        .ok_or_else(|| not_found(execution_id))?;
    Ok(Page::from_overfetch(events, page.limit, |last| {
        cursor::encode(tenant, &filters, last.version.into())
    }))
}
