//! `drain_worker` (`RELEASES.md` §6.3): mark a worker `DRAINING` with one
//! `DRAIN` event; a repeated drain writes nothing.

use super::register_worker::{concurrent, not_found};
use super::{WorkerDeps, MAX_WRITE_ATTEMPTS};
use crate::domain::worker::{WorkerEvent, WorkerEventType, WorkerView};
use crate::error::ApiError;
use crate::ports::WorkerWrite;

/// Drains `worker`; 200 with the record, `DRAINING`.
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
        if current.draining_since_epoch_ms > 0 {
            return Ok(current.view(now, deps.stale_after_ms));
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
        if deps
            .registry
            .write_worker(&entry, Some(current.state_version), Some(&event))
            .await?
            == WorkerWrite::Written
        {
            tracing::info!(worker = %worker, "worker draining");
            return Ok(entry.view(now, deps.stale_after_ms));
        }
    }
    Err(concurrent())
}
