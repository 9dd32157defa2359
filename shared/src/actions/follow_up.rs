//! The parent follow-up of a terminal interaction (`EXECUTION.md` §8.6) and
//! the timeout procedure (§8.7), shared by completion, dispatch and sweep.

use super::submit_execution::enqueue_now;
use super::EngineDeps;
use crate::domain::awaits::AwaitInteraction;
use crate::domain::dead_letter::DeadLetter;
use crate::domain::execution::ExecutionStatus;
use crate::error::StoreError;
use crate::ports::Write;

/// How long "re-check later" waits.
pub const RECHECK_MS: i64 = 60_000;

/// What the follow-up did (for logs and the sweep summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    Released,
    FailedParent,
    Settled,
    RecheckLater,
}

/// §8.6 for the terminal interaction `i`.
pub async fn parent_follow_up(
    deps: &EngineDeps,
    i: &AwaitInteraction,
) -> Result<FollowUp, StoreError> {
    for _ in 0..3 {
        let now = deps.clock.now_ms();
        // The state only: T7/T8 write no payload (no `input` read).
        let parent = deps
            .executions
            .get_state(&i.tenant_id, &i.execution_id, now)
            .await?;
        let Some(p) = parent else {
            return settle(deps, i, None).await;
        };
        let waits_on_unit = p.await_unit_id.as_deref() == Some(i.unit_id.as_str());
        match p.status {
            s if s.is_terminal() => return settle(deps, i, None).await,
            ExecutionStatus::WaitingExternal if !waits_on_unit => {
                return settle(deps, i, None).await
            }
            ExecutionStatus::WaitingExternal => {
                let (next, event, failure) = if i.status == "COMPLETED" {
                    let (n, e) =
                        p.release_await(now, i.step_index, &i.interaction_id, i.actor.as_deref());
                    (n, e, None)
                } else {
                    let (code, message, reason) = match i.status.as_str() {
                        "TIMED_OUT" => (
                            "AWAIT_TIMEOUT",
                            format!("Await interaction timed out: {}", i.interaction_id),
                            "await_timeout",
                        ),
                        other => (
                            match other {
                                "CANCELLED" => "AWAIT_CANCELLED",
                                "EXPIRED" => "AWAIT_EXPIRED",
                                _ => "AWAIT_FAILED",
                            },
                            format!("Await interaction {other}: {}", i.interaction_id),
                            "await_aborted",
                        ),
                    };
                    let (n, e) = p.fail_await(now, code, &message, reason, &i.interaction_id);
                    (n, e, Some(reason))
                };
                if deps
                    .executions
                    .update(&next, p.version, &event, now)
                    .await?
                    == Write::Written
                {
                    match failure {
                        None => {
                            enqueue_now(deps, &i.tenant_id, &i.execution_id).await;
                            settle(deps, i, None).await?;
                            return Ok(FollowUp::Released);
                        }
                        Some(reason) => {
                            let release = deps
                                .releases
                                .get_release(&p.tenant_id, &p.pipeline_id, &p.release_version)
                                .await?;
                            let letter = DeadLetter::of(
                                &next,
                                release.as_ref().and_then(|r| r.contract.as_ref()),
                                reason,
                                false,
                                now,
                            );
                            publish(deps, &letter).await;
                            settle(deps, i, None).await?;
                            return Ok(FollowUp::FailedParent);
                        }
                    }
                }
                // Lost: read the parent again.
            }
            _ if p.current_step_index > i.step_index => {
                if i.status == "COMPLETED" && p.status == ExecutionStatus::Queued && waits_on_unit {
                    enqueue_now(deps, &i.tenant_id, &i.execution_id).await; // re-kick, as TPF
                }
                return settle(deps, i, None).await;
            }
            _ => return settle(deps, i, Some(now + RECHECK_MS)).await,
        }
    }
    settle(deps, i, Some(deps.clock.now_ms() + RECHECK_MS)).await
}

/// Settle (`None`) or re-check later; a lost condition is left to the sweep.
async fn settle(
    deps: &EngineDeps,
    i: &AwaitInteraction,
    due: Option<i64>,
) -> Result<FollowUp, StoreError> {
    let now = deps.clock.now_ms();
    deps.awaits
        .set_settle_due(&i.tenant_id, &i.interaction_id, &i.status, due, now)
        .await?;
    Ok(if due.is_some() {
        FollowUp::RecheckLater
    } else {
        FollowUp::Settled
    })
}

/// Publishes a dead letter; a failure is logged at error level, not retried.
pub(crate) async fn publish(deps: &EngineDeps, letter: &DeadLetter) {
    if let Err(e) = deps.dead_letters.publish(letter).await {
        tracing::error!(execution_id = %letter.execution_id, error = %e, "dead-letter publication failed");
    }
}

/// §8.7 for an open interaction past its deadline; returns the follow-up
/// outcome of whatever the interaction ended as.
pub async fn time_out(deps: &EngineDeps, open: &AwaitInteraction) -> Result<FollowUp, StoreError> {
    let mut current = open.clone();
    for _ in 0..2 {
        if !current.is_open() {
            break;
        }
        let now = deps.clock.now_ms();
        let mut next = current.clone();
        next.status = "TIMED_OUT".into();
        next.version = current.version + 1;
        next.updated_at_epoch_ms = now;
        next.settle_due_epoch_ms = Some(now);
        if deps
            .awaits
            .update_interaction(&next, current.version, now)
            .await?
            == Write::Written
        {
            current = next;
            deps.awaits
                .finish_unit(&current.tenant_id, &current.unit_id, "TIMED_OUT", now)
                .await?;
            break;
        }
        match deps
            .awaits
            .get_interaction(&open.tenant_id, &open.interaction_id, now)
            .await?
        {
            Some(re) => current = re,
            None => return Ok(FollowUp::Settled),
        }
    }
    if current.is_open() {
        return Ok(FollowUp::RecheckLater);
    }
    parent_follow_up(deps, &current).await
}

/// Unit status after a completion (`WAITING_EXTERNAL` → `COMPLETED`):
/// `finish_unit`'s own condition (the unit still waiting, live) decides, so
/// no read precedes it; `Lost` (a unit already terminal, missing or
/// expired) leaves it as it is.
pub(crate) async fn complete_unit(
    deps: &EngineDeps,
    i: &AwaitInteraction,
) -> Result<(), StoreError> {
    let now = deps.clock.now_ms();
    deps.awaits
        .finish_unit(&i.tenant_id, &i.unit_id, "COMPLETED", now)
        .await?;
    Ok(())
}
