//! `get_active_release` (`RELEASES.md` §3.3): the release the latest
//! activation event names.

use super::ReleaseDeps;
use crate::domain::release::ReleaseView;
use crate::error::{ApiError, ErrorCode};

/// The active release, or 404 `RELEASE_NOT_FOUND` when none was activated.
pub async fn run(
    deps: &ReleaseDeps,
    tenant: &str,
    pipeline: &str,
) -> Result<ReleaseView, ApiError> {
    let none = || {
        ApiError::new(
            ErrorCode::ReleaseNotFound,
            "no release of this pipeline is active",
        )
    };
    let latest = deps
        .registry
        .latest_event(tenant, pipeline)
        .await?
        .ok_or_else(none)?;
    let record = deps
        .registry
        .get_release(tenant, pipeline, &latest.release_version)
        .await?
        .ok_or_else(none)?;
    Ok(ReleaseView::derive(record, Some(&latest)))
}
