//! `get_release` (`RELEASES.md` §3.3): one release with its derived members.

use super::ReleaseDeps;
use crate::domain::release::ReleaseView;
use crate::error::{ApiError, ErrorCode};

/// The release `version` of `(tenant, pipeline)`, or 404 `RELEASE_NOT_FOUND`.
pub async fn run(
    deps: &ReleaseDeps,
    tenant: &str,
    pipeline: &str,
    version: &str,
) -> Result<ReleaseView, ApiError> {
    let record = deps
        .registry
        .get_release(tenant, pipeline, version)
        .await?
        .ok_or_else(|| not_found(version))?;
    let latest = deps.registry.latest_event(tenant, pipeline).await?;
    Ok(ReleaseView::derive(record, latest.as_ref()))
}

/// 404 for an unknown release version.
pub fn not_found(version: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ReleaseNotFound,
        format!("release {version} is not registered"),
    )
}
