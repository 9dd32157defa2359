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
    let records = deps
        .registry
        .list_releases(tenant, pipeline, after.as_ref(), page.limit + 1)
        .await?;
    let records = Page::from_overfetch(records, page.limit, |last| {
        cursor::encode(
            tenant,
            &filters,
            serde_json::to_value(last.list_key()).unwrap_or_default(),
        )
    });
    let latest = deps.registry.latest_event(tenant, pipeline).await?;
    Ok(records.map(|r| ReleaseView::derive(r, latest.as_ref())))
}
