//! `activate_release` (`RELEASES.md` §3.4): verify the stored artifacts,
//! then append an activation event unless the latest one already says the
//! same thing. A retried activation is a no-op.

use super::{get_release, ReleaseDeps, MAX_WRITE_ATTEMPTS};
use crate::domain::release::{ActivationEvent, ActivationType, ReleaseRecord, ReleaseView};
use crate::error::{ApiError, ErrorCode};
use crate::ports::{AppendOutcome, Verification};

/// Activates `version` of `(tenant, pipeline)`; 200 with the record, `ACTIVE`.
pub async fn run(
    deps: &ReleaseDeps,
    tenant: &str,
    pipeline: &str,
    version: &str,
) -> Result<ReleaseView, ApiError> {
    // 1. the release
    let record = deps
        .registry
        .get_release(tenant, pipeline, version)
        .await?
        .ok_or_else(|| get_release::not_found(version))?;
    // 2. verification (an outage is a 503 with nothing written)
    let failure = verify_stored_artifacts(deps, &record).await?;
    // 3-4. decide against the latest event and append, retrying lost races
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let latest = deps.registry.latest_event(tenant, pipeline).await?;
        let now = deps.clock.now_ms();
        let current = latest.as_ref().filter(|e| e.release_version == version);
        let event = match (current, &failure) {
            (None, Some(detail)) => return Err(unverified(detail)),
            (None, None) => ActivationEvent {
                seq: next_seq(latest.as_ref()),
                event_type: ActivationType::Activated,
                release_version: version.to_string(),
                previous_release_version: latest.as_ref().map(|e| e.release_version.clone()),
                artifact_verified: true,
                activated_at_epoch_ms: now,
                at_epoch_ms: now,
                detail: None,
            },
            (Some(e), None) if e.artifact_verified => {
                return Ok(ReleaseView::derive(record, latest.as_ref()))
            }
            (Some(e), Some(detail)) if !e.artifact_verified => return Err(unverified(detail)),
            (Some(e), failure) => ActivationEvent {
                seq: e.seq + 1,
                event_type: if failure.is_some() {
                    ActivationType::ArtifactUnverified
                } else {
                    ActivationType::ArtifactReverified
                },
                release_version: version.to_string(),
                previous_release_version: Some(version.to_string()),
                artifact_verified: failure.is_none(),
                activated_at_epoch_ms: e.activated_at_epoch_ms,
                at_epoch_ms: now,
                detail: failure.clone(),
            },
        };
        match deps.registry.append_event(tenant, pipeline, &event).await? {
            AppendOutcome::Appended => {
                tracing::info!(seq = event.seq, event = ?event.event_type, "activation event appended");
                return match failure {
                    Some(detail) => Err(unverified(&detail)),
                    None => Ok(ReleaseView::derive(record, Some(&event))),
                };
            }
            AppendOutcome::SeqTaken => continue,
            AppendOutcome::ReleaseMissing => return Err(get_release::not_found(version)),
        }
    }
    Err(ApiError::new(
        ErrorCode::ConcurrentModification,
        "activation lost three races with concurrent activations; retry",
    ))
}

fn next_seq(latest: Option<&ActivationEvent>) -> u64 {
    latest.map_or(1, |e| e.seq + 1)
}

fn unverified(detail: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ReleaseArtifactUnverified,
        format!("stored artifact failed verification: {detail}"),
    )
}

/// Checks every stored artifact in order (§4.3); `Some(detail)` names the
/// first that fails, e.g. `app: checksum differs`.
async fn verify_stored_artifacts(
    deps: &ReleaseDeps,
    record: &ReleaseRecord,
) -> Result<Option<String>, ApiError> {
    for a in &record.stored_artifacts {
        if let Verification::Failed(reason) =
            deps.store.verify(&a.uri, a.size_bytes, &a.checksum).await?
        {
            return Ok(Some(format!("{}: {reason}", a.artifact_id)));
        }
    }
    Ok(None)
}
