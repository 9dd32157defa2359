//! `list_executions` (`API.md` §3.1, Extension): the tenant's executions,
//! newest first, filtered by status and pipeline, paged by cursor.

use serde::Serialize;
use std::collections::BTreeMap;

use super::{EngineDeps, Page, PageRequest};
use crate::domain::cursor;
use crate::domain::execution::{ExecutionRecord, ExecutionStatus, ExecutionStatusDto};
use crate::error::{ApiError, ErrorCode};
use crate::ports::ExecutionFilter;

/// One list item: the status DTO plus pinned identity and creation time.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    pub execution_id: String,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub status: ExecutionStatus,
    pub step_index: u64,
    pub attempt: u64,
    pub version: u64,
    pub next_due_at_epoch_ms: Option<i64>,
    pub created_at_epoch_ms: i64,
    pub updated_at_epoch_ms: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl From<&ExecutionRecord> for ExecutionSummary {
    fn from(r: &ExecutionRecord) -> Self {
        let dto = ExecutionStatusDto::from(r);
        ExecutionSummary {
            execution_id: dto.execution_id,
            pipeline_id: r.pipeline_id.clone(),
            contract_version: r.contract_version.clone(),
            release_version: r.release_version.clone(),
            status: dto.status,
            step_index: dto.step_index,
            attempt: dto.attempt,
            version: dto.version,
            next_due_at_epoch_ms: dto.next_due_at_epoch_ms,
            created_at_epoch_ms: r.created_at_epoch_ms,
            updated_at_epoch_ms: dto.updated_at_epoch_ms,
            error_code: dto.error_code,
            error_message: dto.error_message,
        }
    }
}

/// One page of the list.
pub async fn run(
    deps: &EngineDeps,
    tenant: &str,
    filter: &ExecutionFilter,
    page: &PageRequest,
) -> Result<Page<ExecutionSummary>, ApiError> {
    let mut bound = BTreeMap::new();
    if let Some(s) = filter.status {
        bound.insert("status".to_string(), s.as_str().to_string());
    }
    if let Some(p) = &filter.pipeline_id {
        bound.insert("pipelineId".to_string(), p.clone());
    }
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidCursor,
            "cursor is not one this list handed out",
        )
    };
    let after = match &page.cursor {
        Some(c) => {
            let k = cursor::decode(c, tenant, &bound)?;
            let created = k.get(0).and_then(|v| v.as_i64()).ok_or_else(invalid)?;
            let id = k
                .get(1)
                .and_then(|v| v.as_str())
                .ok_or_else(invalid)?
                .to_string();
            Some((created, id))
        }
        None => None,
    };
    let now = deps.clock.now_ms();
    let records = deps
        .executions
        .list(tenant, filter, after, page.limit + 1, now)
        .await?;
    let page = Page::from_overfetch(records, page.limit, |last| {
        cursor::encode(
            tenant,
            &bound,
            serde_json::json!([last.created_at_epoch_ms, last.execution_id]),
        )
    });
    Ok(page.map(|r| ExecutionSummary::from(&r)))
}
