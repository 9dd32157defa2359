//! `list_workers` (`RELEASES.md` §6.4): entries filtered by versions,
//! ordered by `workerId`, each with its state at request time; every page
//! but the last holds exactly `limit` items.

use std::collections::BTreeMap;

use super::{Page, PageRequest, WorkerDeps};
use crate::domain::cursor;
use crate::domain::worker::WorkerView;
use crate::error::{ApiError, ErrorCode};

/// Optional exact-match filters.
#[derive(Debug, Clone, Default)]
pub struct WorkerFilters {
    pub contract_version: Option<String>,
    pub release_version: Option<String>,
}

/// One page of the pipeline's workers.
pub async fn run(
    deps: &WorkerDeps,
    tenant: &str,
    pipeline: &str,
    filters: &WorkerFilters,
    page: &PageRequest,
) -> Result<Page<WorkerView>, ApiError> {
    let mut bound = BTreeMap::from([("pipelineId".to_string(), pipeline.to_string())]);
    if let Some(c) = &filters.contract_version {
        bound.insert("contractVersion".into(), c.clone());
    }
    if let Some(r) = &filters.release_version {
        bound.insert("releaseVersion".into(), r.clone());
    }
    let mut after: Option<String> = match &page.cursor {
        Some(c) => Some(
            cursor::decode(c, tenant, &bound)?
                .as_str()
                .map(str::to_string)
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
    let mut items = Vec::new();
    let mut more = false;
    // Filter while paging: read batches until limit + 1 matches or the end.
    let batch = (page.limit + 1).max(100);
    'outer: loop {
        let entries = deps
            .registry
            .list_workers(tenant, pipeline, after.as_deref(), batch)
            .await?;
        let exhausted = entries.len() < batch;
        for e in entries {
            after = Some(e.worker_id.clone());
            let keep = filters
                .contract_version
                .as_ref()
                .is_none_or(|c| *c == e.contract_version)
                && filters
                    .release_version
                    .as_ref()
                    .is_none_or(|r| *r == e.release_version);
            if keep {
                if items.len() == page.limit {
                    more = true;
                    break 'outer;
                }
                items.push(e.view(now, deps.stale_after_ms));
            }
        }
        if exhausted {
            break;
        }
    }
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(cursor::encode(
            tenant,
            &bound,
            last.worker_id.clone().into(),
        )),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}
