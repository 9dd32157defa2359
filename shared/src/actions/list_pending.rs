//! `list_pending_interactions` (`API.md` §2.4): the tenant's open await
//! interactions, ordered by deadline then id, filtered and paged.

use serde_json::Value;
use std::collections::BTreeMap;

use super::{EngineDeps, Page, PageRequest};
use crate::domain::awaits::AwaitInteraction;
use crate::domain::cursor;
use crate::error::{ApiError, ErrorCode};
use crate::ports::PendingFilter;

/// One page of pending interactions (serialise each with `dto()`).
pub async fn run(
    deps: &EngineDeps,
    tenant: &str,
    filter: &PendingFilter,
    page: &PageRequest,
) -> Result<Page<AwaitInteraction>, ApiError> {
    let mut bound = BTreeMap::new();
    for (k, v) in [
        ("stepId", &filter.step_id),
        ("assignee", &filter.assignee),
        ("group", &filter.group),
    ] {
        if let Some(v) = v {
            bound.insert(k.to_string(), v.clone());
        }
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
            let deadline = k.get(0).and_then(Value::as_i64).ok_or_else(invalid)?;
            let id = k
                .get(1)
                .and_then(Value::as_str)
                .ok_or_else(invalid)?
                .to_string();
            Some((deadline, id))
        }
        None => None,
    };
    let now = deps.clock.now_ms();
    let items = deps
        .awaits
        .pending(tenant, filter, after, page.limit + 1, now)
        .await?;
    Ok(Page::from_overfetch(items, page.limit, |last| {
        cursor::encode(
            tenant,
            &bound,
            serde_json::json!([last.deadline_epoch_ms, last.interaction_id]),
        )
    }))
}
