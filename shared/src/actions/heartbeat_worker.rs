//! `heartbeat` (`RELEASES.md` §6.2): move `lastHeartbeatAtEpochMs` forward
//! with one conditional update of the entry; never creates a worker, never
//! writes an event, and keeps a drained worker draining.

use super::register_worker::{concurrent, not_found};
use super::{WorkerDeps, MAX_WRITE_ATTEMPTS};
use crate::domain::worker::WorkerView;
use crate::error::ApiError;
use crate::ports::WorkerWrite;

/// Records a heartbeat of `worker`; 200 with the record.
pub async fn run(
    deps: &WorkerDeps,
    tenant: &str,
    pipeline: &str,
    worker: &str,
) -> Result<WorkerView, ApiError> {
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let current = deps
            .registry
            .get_worker(tenant, pipeline, worker)
            .await?
            .ok_or_else(|| not_found(worker))?;
        let now = deps.clock.now_ms();
        let mut entry = current.clone();
        entry.last_heartbeat_at_epoch_ms = current.last_heartbeat_at_epoch_ms.max(now);
        entry.state_version = current.state_version + 1;
        entry.updated_at_epoch_ms = now;
        if deps
            .registry
            .write_worker(&entry, Some(current.state_version), None)
            .await?
            == WorkerWrite::Written
        {
            return Ok(entry.view(now, deps.stale_after_ms));
        }
    }
    Err(concurrent())
}
