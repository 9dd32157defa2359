//! `list_releases` (`RELEASES.md` §3.3): releases ordered by
//! (`createdAtEpochMs`, `releaseVersion`), paged by cursor.

use std::collections::BTreeMap;

use super::{Page, PageRequest, ReleaseDeps};
use crate::domain::cursor;
use crate::domain::release::{ReleaseListKey, ReleaseView};
use crate::error::{ApiError, ErrorCode};

/// One page of the pipeline's releases with their derived members.
pub async fn run(
    deps: &ReleaseDeps,
    tenant: &str,
    pipeline: &str,
    page: &PageRequest,
) -> Result<Page<ReleaseView>, ApiError> {
    let filters = BTreeMap::from([("pipelineId".to_string(), pipeline.to_string())]);
    let after: Option<ReleaseListKey> = match &page.cursor {
        Some(c) => Some(
            serde_json::from_value(cursor::decode(c, tenant, &filters)?).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidCursor,
                    "cursor is not one this list handed out",
                )
            })?,
        ),
        None => None,
    };
    let mut records = deps
        .registry
        .list_releases(tenant, pipeline, after.as_ref(), page.limit + 1)
        .await?;
    let more = records.len() > page.limit;
    records.truncate(page.limit);
    let next_cursor = match (more, records.last()) {
        (true, Some(last)) => Some(cursor::encode(
            tenant,
            &filters,
            serde_json::to_value(last.list_key()).unwrap_or_default(),
        )),
        _ => None,
    };
    let latest = deps.registry.latest_event(tenant, pipeline).await?;
    let items = records
        .into_iter()
        .map(|r| ReleaseView::derive(r, latest.as_ref()))
        .collect();
    Ok(Page { items, next_cursor })
}
