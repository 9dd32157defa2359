//! `list_activations` (`RELEASES.md` §3.5, Extension): the append-only
//! activation log, oldest first, paged by cursor.

use std::collections::BTreeMap;

use super::{Page, PageRequest, ReleaseDeps};
use crate::domain::cursor;
use crate::domain::release::ActivationEvent;
use crate::error::{ApiError, ErrorCode};

/// One page of activation events.
pub async fn run(
    deps: &ReleaseDeps,
    tenant: &str,
    pipeline: &str,
    page: &PageRequest,
) -> Result<Page<ActivationEvent>, ApiError> {
    let filters = BTreeMap::from([("pipelineId".to_string(), pipeline.to_string())]);
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
    let events = deps
        .registry
        .list_events(tenant, pipeline, after, page.limit + 1)
        .await?;
    Ok(Page::from_overfetch(events, page.limit, |last| {
        cursor::encode(tenant, &filters, last.seq.into())
    }))
}
