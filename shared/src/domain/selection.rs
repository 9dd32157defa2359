//! Worker eligibility for a release (`EXECUTION.md` §6, `RELEASES.md` §7):
//! used by submit (any eligible worker?) and dispatch (pick one).

use crate::domain::release::ReleaseRecord;
use crate::domain::worker::{WorkerEntry, WorkerState};

/// Protocols this build dispatches to.
pub const DISPATCH_PROTOCOLS: [&str; 1] = ["rest"];

/// Why a `HEALTHY` record cannot serve, or `None` when it is eligible.
fn ineligible_reason(w: &WorkerEntry, release: &ReleaseRecord) -> Option<String> {
    let compatible = |a: &str, b: &str| a.trim().is_empty() || b.trim().is_empty() || a == b;
    if !compatible(&w.artifact_id, &release.primary_artifact_id) {
        return Some("artifactId mismatch".into());
    }
    if !compatible(&w.artifact_digest, &release.primary_artifact_digest) {
        return Some("artifactDigest mismatch".into());
    }
    let protocol = w.protocol.to_ascii_lowercase();
    if !DISPATCH_PROTOCOLS.contains(&protocol.as_str()) {
        return Some(format!("protocol {} not supported", w.protocol));
    }
    let http_url = url::Url::parse(&w.endpoint)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false);
    if !http_url {
        return Some("endpoint is not an http(s) URL".into());
    }
    None
}

/// The workers of `release` (same tenant, pipeline and versions).
fn of_release<'a>(
    workers: &'a [WorkerEntry],
    release: &'a ReleaseRecord,
) -> impl Iterator<Item = &'a WorkerEntry> {
    workers.iter().filter(move |w| {
        w.tenant_id == release.tenant_id
            && w.pipeline_id == release.pipeline_id
            && w.contract_version == release.contract_version
            && w.release_version == release.release_version
    })
}

/// Eligible records at `now` (§6 rules 1–5).
pub fn eligible<'a>(
    workers: &'a [WorkerEntry],
    release: &'a ReleaseRecord,
    now: i64,
    stale_after_ms: u64,
) -> Vec<&'a WorkerEntry> {
    of_release(workers, release)
        .filter(|w| {
            w.state_at(now, stale_after_ms) == WorkerState::Healthy
                && ineligible_reason(w, release).is_none()
        })
        .collect()
}

/// The `NO_HEALTHY_WORKER` message: every record of the release as
/// `workerId=STATE`, with the reason for `HEALTHY` but ineligible ones.
pub fn no_worker_message(
    workers: &[WorkerEntry],
    release: &ReleaseRecord,
    now: i64,
    stale_after_ms: u64,
) -> String {
    let states: Vec<String> = of_release(workers, release)
        .map(|w| {
            let state = w.state_at(now, stale_after_ms);
            match (state, ineligible_reason(w, release)) {
                (WorkerState::Healthy, Some(why)) => format!("{}=HEALTHY ({why})", w.worker_id),
                _ => format!("{}={}", w.worker_id, state.as_str()),
            }
        })
        .collect();
    let head = format!(
        "No healthy worker for release {} of pipeline {}",
        release.release_version, release.pipeline_id
    );
    if states.is_empty() {
        format!("{head}; no worker lifecycle record is registered for this release")
    } else {
        format!("{head}; current states: {}", states.join(", "))
    }
}
