//! The conditional-write loop shared by the changes of an existing worker
//! (heartbeat, drain): read, apply, write on the `stateVersion` read; a
//! lost race re-reads and re-applies, at most three times (`RELEASES.md` §6.6).

use super::register_worker::{concurrent, not_found};
use super::{WorkerDeps, MAX_WRITE_ATTEMPTS};
use crate::domain::worker::{WorkerEntry, WorkerEvent, WorkerView};
use crate::error::ApiError;
use crate::ports::WorkerWrite;

/// A change: from the current entry and `now`, the new entry and its
/// event, or `None` when nothing needs writing.
pub(crate) type Change =
    dyn Fn(&WorkerEntry, i64) -> Option<(WorkerEntry, Option<WorkerEvent>)> + Send + Sync;

/// Applies `change` to `worker`; 404 `WORKER_NOT_FOUND` when it does not exist.
pub(crate) async fn update_existing(
    deps: &WorkerDeps,
    tenant: &str,
    pipeline: &str,
    worker: &str,
    change: &Change,
) -> Result<WorkerView, ApiError> {
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let current = deps
            .registry
            .get_worker(tenant, pipeline, worker)
            .await?
            .ok_or_else(|| not_found(worker))?;
        let now = deps.clock.now_ms();
        let Some((entry, event)) = change(&current, now) else {
            return Ok(current.view(now, deps.stale_after_ms));
        };
        if deps
            .registry
            .write_worker(&entry, Some(current.state_version), event.as_ref())
            .await?
            == WorkerWrite::Written
        {
            return Ok(entry.view(now, deps.stale_after_ms));
        }
    }
    Err(concurrent())
}
