//! `heartbeat` (`RELEASES.md` §6.2): move `lastHeartbeatAtEpochMs` forward
//! with one conditional update of the entry; never creates a worker, never
//! writes an event, and keeps a drained worker draining.

use super::update_worker::update_existing;
use super::WorkerDeps;
use crate::domain::worker::WorkerView;
use crate::error::ApiError;

/// Records a heartbeat of `worker`; 200 with the record.
pub async fn run(
    deps: &WorkerDeps,
    tenant: &str,
    pipeline: &str,
    worker: &str,
) -> Result<WorkerView, ApiError> {
    update_existing(deps, tenant, pipeline, worker, &|current, now| {
        let mut entry = current.clone();
        entry.last_heartbeat_at_epoch_ms = current.last_heartbeat_at_epoch_ms.max(now);
        entry.state_version = current.state_version + 1;
        entry.updated_at_epoch_ms = now;
        Some((entry, None))
    })
    .await
}
