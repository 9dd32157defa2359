//! `sweep_once(now, limit)` (`EXECUTION.md` §5.4): phase 1 finishes await
//! follow-ups (timeouts, interrupted releases), phase 2 enqueues due
//! executions. A failing item is logged and counted; the sweep goes on.

use serde::Serialize;

use super::follow_up::{parent_follow_up, time_out, FollowUp};
use super::EngineDeps;
use crate::ports::WorkItem;

/// The summary a sweep logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepSummary {
    pub follow_ups: u64,
    pub timed_out: u64,
    pub released: u64,
    pub failed_parents: u64,
    pub enqueued: u64,
    pub errors: u64,
}

/// One sweep at the clock's now, with at most `limit` items per phase.
pub async fn run(deps: &EngineDeps, limit: usize) -> SweepSummary {
    let mut s = SweepSummary::default();
    if limit == 0 {
        return s;
    }
    // Phase 1: await follow-ups.
    let now = deps.clock.now_ms();
    match deps.awaits.settle_due(now, limit).await {
        Ok(items) => {
            for (tenant, id) in items {
                let now = deps.clock.now_ms();
                let outcome = match deps.awaits.get_interaction(&tenant, &id, now).await {
                    Ok(Some(i)) if i.is_open() && i.deadline_epoch_ms <= now => {
                        s.timed_out += 1;
                        time_out(deps, &i).await
                    }
                    Ok(Some(i)) if i.is_open() => continue,
                    Ok(Some(i)) => {
                        s.follow_ups += 1;
                        parent_follow_up(deps, &i).await
                    }
                    Ok(None) => continue,
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(FollowUp::Released) => s.released += 1,
                    Ok(FollowUp::FailedParent) => s.failed_parents += 1,
                    Ok(_) => {}
                    Err(e) => {
                        s.errors += 1;
                        tracing::warn!(interaction_id = %id, error = %e, "sweep follow-up failed");
                    }
                }
            }
        }
        Err(e) => {
            s.errors += 1;
            tracing::warn!(error = %e, "sweep phase 1 query failed");
        }
    }
    // Phase 2: due executions (runs even if phase 1 failed).
    let now = deps.clock.now_ms();
    match deps.executions.due(now, limit).await {
        Ok(items) => {
            for (tenant_id, execution_id) in items {
                match deps
                    .queue
                    .enqueue(
                        &WorkItem {
                            tenant_id,
                            execution_id,
                        },
                        0,
                    )
                    .await
                {
                    Ok(()) => s.enqueued += 1,
                    Err(e) => {
                        s.errors += 1;
                        tracing::warn!(error = %e, "sweep enqueue failed");
                    }
                }
            }
        }
        Err(e) => {
            s.errors += 1;
            tracing::warn!(error = %e, "sweep phase 2 query failed");
        }
    }
    tracing::info!(
        follow_ups = s.follow_ups,
        timed_out = s.timed_out,
        released = s.released,
        failed_parents = s.failed_parents,
        enqueued = s.enqueued,
        errors = s.errors,
        "sweep finished"
    );
    s
}
