//! `drain_worker` (`RELEASES.md` §6.3): mark a worker `DRAINING` with one
//! `DRAIN` event; a repeated drain writes nothing.

use super::update_worker::update_existing;
use super::WorkerDeps;
use crate::domain::worker::{WorkerEvent, WorkerEventType, WorkerView};
use crate::error::ApiError;

/// Drains `worker`; 200 with the record, `DRAINING`.
pub async fn run(
    deps: &WorkerDeps,
    tenant: &str,
    pipeline: &str,
    worker: &str,
) -> Result<WorkerView, ApiError> {
    update_existing(deps, tenant, pipeline, worker, &|current, now| {
        if current.draining_since_epoch_ms > 0 {
            return None;
        }
        let mut entry = current.clone();
        entry.draining_since_epoch_ms = now.max(1);
        entry.state_version = current.state_version + 1;
        entry.updated_at_epoch_ms = now;
        let event = WorkerEvent {
            event_type: WorkerEventType::Drain,
            at_epoch_ms: now,
            state_version: entry.state_version,
            snapshot: entry.clone(),
        };
        Some((entry, Some(event)))
    })
    .await
}
