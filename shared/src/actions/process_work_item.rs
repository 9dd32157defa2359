//! `process_work_item` (`EXECUTION.md` §5.2): claim, build the input, call
//! the chosen worker, and commit the outcome with a conditional write. Safe
//! to run twice for the same message: the lease and the version make the
//! second run a no-op.
//!
//! A record whose stored input or result cannot be read (a missing or
//! altered payload of the `dynamo` store, `EXECUTION.md` §10.5) is still
//! claimed; its transition then fails with the retryable
//! `PAYLOAD_UNAVAILABLE` (§3.7) before any worker is called. An interaction
//! payload that cannot be read on resume fails it the same way.

use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::Instrument;

use super::follow_up::{parent_follow_up, publish};
use super::{all_workers, EngineDeps};
use crate::domain::awaits::validate_suspension;
use crate::domain::dead_letter::DeadLetter;
use crate::domain::envelope::{compact, resume_envelope, SNAPSHOT_TYPE, TRANSITION_ENCODING};
use crate::domain::execution::{
    contract_steps, retry_delay_ms, ExecutionRecord, ExecutionStatus, ResultShape,
};
use crate::domain::ids::is_valid_id;
use crate::domain::release::ReleaseRecord;
use crate::domain::selection::{eligible, no_worker_message};
use crate::domain::worker_protocol::{Outcome, TransitionCommand, TransitionFailure};
use crate::error::StoreError;
use crate::ports::{ImportOutcome, WorkItem, Write};

/// What one run did (logged; asserted by tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Malformed message: acknowledged and dropped.
    Dropped,
    /// Nothing to do (not claimable, or the claim was lost).
    NotClaimed,
    /// Came early: enqueued again with the remaining delay.
    Requeued(u64),
    /// A commit was written; the record now has this status.
    Committed(ExecutionStatus),
    /// The commit lost its condition; nothing further was written.
    Lost,
}

/// The stored input snapshot.
#[derive(Deserialize)]
struct Snapshot {
    shape: String,
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    items: Vec<Box<RawValue>>,
}

/// Handles one queue message body. `Err` = store or queue outage: the
/// message must not be acknowledged.
pub async fn run(deps: &EngineDeps, message: &str) -> Result<Processed, StoreError> {
    // 1. parse
    let Some(item) = serde_json::from_str::<WorkItem>(message)
        .ok()
        .filter(|i| is_valid_id(&i.tenant_id) && is_valid_id(&i.execution_id))
    else {
        tracing::warn!("malformed work item dropped");
        return Ok(Processed::Dropped);
    };
    let span = tracing::info_span!("dispatch", tenant = %item.tenant_id, execution_id = %item.execution_id);
    dispatch(deps, item).instrument(span).await
}

async fn dispatch(deps: &EngineDeps, item: WorkItem) -> Result<Processed, StoreError> {
    // 2. claim (T2)
    let owner = format!("dispatch-{}", uuid::Uuid::new_v4());
    let now = deps.clock.now_ms();
    let Some(read) = deps
        .executions
        .get_for_dispatch(&item.tenant_id, &item.execution_id, now)
        .await?
    else {
        return Ok(Processed::NotClaimed);
    };
    let (record, unreadable_payload) = (read.record, read.unreadable_payload);
    if !record.is_claimable(now) {
        return lost_claim(deps, &item, &record, now).await;
    }
    let (claimed, event) = record.claim(now, &owner, deps.settings.lease_ms);
    if deps
        .executions
        .update(&claimed, record.version, &event, now)
        .await?
        == Write::Lost
    {
        let now = deps.clock.now_ms();
        return match deps
            .executions
            .get_for_dispatch(&item.tenant_id, &item.execution_id, now)
            .await?
        {
            Some(r) => lost_claim(deps, &item, &r.record, now).await,
            None => Ok(Processed::NotClaimed),
        };
    }
    // 3. an expired lease means the previous dispatcher died
    if record.status == ExecutionStatus::Running {
        let f = TransitionFailure::new("LEASE_EXPIRED", "previous dispatcher lease expired", true);
        return handle_failure(deps, &claimed, None, f, None).await;
    }
    // 4. the pinned release
    let release = deps
        .releases
        .get_release(
            &claimed.tenant_id,
            &claimed.pipeline_id,
            &claimed.release_version,
        )
        .await?;
    let Some(release) = release else {
        let f = TransitionFailure::new(
            "RELEASE_UNAVAILABLE",
            "pinned release record not found",
            true,
        );
        return handle_failure(deps, &claimed, None, f, None).await;
    };
    // 5. the transition input
    if let Some(why) = unreadable_payload {
        let f = TransitionFailure::new("PAYLOAD_UNAVAILABLE", why, true);
        return handle_failure(deps, &claimed, Some(&release), f, None).await;
    }
    let (payload_type, payload, input_items) = match transition_input(deps, &claimed).await? {
        Ok(input) => input,
        Err(f) => return handle_failure(deps, &claimed, Some(&release), f, None).await,
    };
    // 6. terminal pass-through
    let steps = contract_steps(release.contract.as_ref()).len() as u64;
    if steps > 0 && claimed.current_step_index >= steps {
        return commit_success(deps, &claimed, &release, input_items, None).await;
    }
    // 7. choose a worker
    let workers = all_workers(
        deps.workers.as_ref(),
        &claimed.tenant_id,
        &claimed.pipeline_id,
    )
    .await?;
    let now = deps.clock.now_ms();
    let candidates = eligible(&workers, &release, now, deps.stale_after_ms);
    if candidates.is_empty() {
        let f = TransitionFailure::new(
            "NO_HEALTHY_WORKER",
            no_worker_message(&workers, &release, now, deps.stale_after_ms),
            true,
        );
        return handle_failure(deps, &claimed, Some(&release), f, None).await;
    }
    let worker = candidates[(uuid::Uuid::new_v4().as_u128() % candidates.len() as u128) as usize];
    let worker_id = worker.worker_id.clone();
    // 8. call
    let key = claimed.transition_key();
    let command = TransitionCommand {
        tenant_id: claimed.tenant_id.clone(),
        execution_id: claimed.execution_id.clone(),
        pipeline_id: claimed.pipeline_id.clone(),
        contract_version: claimed.contract_version.clone(),
        release_version: claimed.release_version.clone(),
        current_step_index: claimed.current_step_index,
        stop_before_step_index: -1,
        attempt: claimed.attempt,
        result_shape: claimed.result_shape.as_str().to_string(),
        execution_version: claimed.version,
        transition_key: key.clone(),
        trace_id: key,
        payload_type_id: payload_type,
        payload_encoding: TRANSITION_ENCODING.to_string(),
        payload,
    };
    let result = match deps.transport.execute(&worker.endpoint, &command).await {
        Ok(r) => r,
        Err(f) => return handle_failure(deps, &claimed, Some(&release), f, Some(&worker_id)).await,
    };
    // 9. commit by outcome
    match result.outcome {
        Outcome::Completed => {
            let outputs = if result.terminal_input_passthrough {
                input_items
            } else {
                result.output_payloads
            };
            commit_success(deps, &claimed, &release, outputs, Some(&worker_id)).await
        }
        Outcome::Failed => {
            let failure = result
                .failure
                .as_ref()
                .map(|f| TransitionFailure::from_worker(f, &deps.settings.non_retryable_classes));
            let f = failure.unwrap_or_else(|| {
                TransitionFailure::new("WORKER_RESPONSE_INVALID", "FAILED without failure", true)
            });
            handle_failure(deps, &claimed, Some(&release), f, Some(&worker_id)).await
        }
        Outcome::WaitingExternal => {
            let Some(text) = result.await_suspension.as_deref() else {
                let f = TransitionFailure::new(
                    "AWAIT_SUSPENSION_INVALID",
                    "awaitSuspension is missing",
                    false,
                );
                return handle_failure(deps, &claimed, Some(&release), f, Some(&worker_id)).await;
            };
            suspend(deps, &claimed, &release, text, &worker_id).await
        }
    }
}

/// §5.2 step 2, lost: re-enqueue an early message, otherwise do nothing.
async fn lost_claim(
    deps: &EngineDeps,
    item: &WorkItem,
    r: &ExecutionRecord,
    now: i64,
) -> Result<Processed, StoreError> {
    let lease_free = r.lease_owner.is_none() || r.lease_expires_epoch_ms <= now;
    let early = matches!(
        r.status,
        ExecutionStatus::Queued | ExecutionStatus::WaitRetry
    ) && lease_free
        && r.next_due_epoch_ms.is_some_and(|d| d > now);
    if early {
        let delay = (r.next_due_epoch_ms.unwrap_or(now) - now) as u64;
        deps.queue.enqueue(item, delay).await?;
        return Ok(Processed::Requeued(delay));
    }
    Ok(Processed::NotClaimed)
}

type Input = (String, String, Vec<Box<RawValue>>);

/// Step 5: (command payload type, command payload, input items).
async fn transition_input(
    deps: &EngineDeps,
    r: &ExecutionRecord,
) -> Result<Result<Input, TransitionFailure>, StoreError> {
    let unavailable = |why: &str| {
        Ok(Err(TransitionFailure::new(
            "AWAIT_RESUME_UNAVAILABLE",
            why,
            false,
        )))
    };
    if let (Some(unit_id), true) = (&r.await_unit_id, r.current_step_index > 0) {
        let now = deps.clock.now_ms();
        let Some(unit) = deps.awaits.get_unit(&r.tenant_id, unit_id, now).await? else {
            return unavailable("await unit is missing");
        };
        let Some(primary) = unit.primary_interaction_id.as_deref() else {
            return unavailable("await unit has no primary interaction");
        };
        let i = match deps
            .awaits
            .get_interaction(&r.tenant_id, primary, now)
            .await
        {
            Ok(i) => i,
            Err(StoreError::PayloadUnavailable(why)) => {
                return Ok(Err(TransitionFailure::new(
                    "PAYLOAD_UNAVAILABLE",
                    why,
                    true,
                )))
            }
            Err(e) => return Err(e),
        };
        let Some(i) = i else {
            return unavailable("await interaction is missing");
        };
        if i.status != "COMPLETED" {
            return unavailable("await interaction is not completed");
        }
        let envelope = match resume_envelope(
            i.response_payload.as_deref().map(RawValue::get),
            &i.output_type,
        ) {
            Ok(e) => e,
            Err(why) => return unavailable(&why),
        };
        let text = envelope.to_string();
        let item =
            RawValue::from_string(text).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let type_id = envelope
            .get("payloadTypeId")
            .and_then(|v| v.as_str())
            .unwrap_or("null")
            .to_string();
        let payload = envelope
            .get("payload")
            .and_then(|v| v.as_str())
            .unwrap_or("null")
            .to_string();
        return Ok(Ok((type_id, payload, vec![item])));
    }
    let snapshot: Snapshot = match serde_json::from_str(r.input_payload.get()) {
        Ok(s) => s,
        Err(_) => {
            return Ok(Err(TransitionFailure::new(
                "PAYLOAD_UNAVAILABLE",
                "stored input is unreadable",
                true,
            )))
        }
    };
    let items = if snapshot.shape == "MULTI" {
        snapshot.items
    } else {
        snapshot.payload.into_iter().collect()
    };
    let text = compact(r.input_payload.get()).unwrap_or_else(|_| r.input_payload.get().to_string());
    Ok(Ok((SNAPSHOT_TYPE.to_string(), text, items)))
}

/// T3, after the result-shape check.
async fn commit_success(
    deps: &EngineDeps,
    claimed: &ExecutionRecord,
    release: &ReleaseRecord,
    outputs: Vec<Box<RawValue>>,
    worker_id: Option<&str>,
) -> Result<Processed, StoreError> {
    if claimed.result_shape == ResultShape::Single && outputs.len() > 1 {
        let f = TransitionFailure::new(
            "RESULT_SHAPE_VIOLATION",
            format!(
                "produced {} terminal items for SINGLE result shape",
                outputs.len()
            ),
            false,
        );
        return handle_failure(deps, claimed, Some(release), f, worker_id).await;
    }
    let now = deps.clock.now_ms();
    let (next, event) = claimed.succeed(now, outputs, worker_id);
    commit(deps, claimed, &next, &event, now).await
}

async fn commit(
    deps: &EngineDeps,
    claimed: &ExecutionRecord,
    next: &ExecutionRecord,
    event: &crate::domain::execution::HistoryEvent,
    now: i64,
) -> Result<Processed, StoreError> {
    match deps
        .executions
        .update(next, claimed.version, event, now)
        .await?
    {
        Write::Written => {
            tracing::info!(
                status = next.status.as_str(),
                version = next.version,
                "transition committed"
            );
            Ok(Processed::Committed(next.status))
        }
        Write::Lost => Ok(Processed::Lost),
    }
}

/// `WAITING_EXTERNAL`: validate and import the suspension, T4, then the
/// post-commit check of a completion that raced ahead.
async fn suspend(
    deps: &EngineDeps,
    claimed: &ExecutionRecord,
    release: &ReleaseRecord,
    text: &RawValue,
    worker_id: &str,
) -> Result<Processed, StoreError> {
    let now = deps.clock.now_ms();
    let valid = match validate_suspension(
        text,
        &claimed.tenant_id,
        &claimed.execution_id,
        claimed.current_step_index,
        now,
    ) {
        Ok(v) => v,
        Err(f) => return handle_failure(deps, claimed, Some(release), f, Some(worker_id)).await,
    };
    let (unit, interaction) = match deps
        .awaits
        .import(&valid.unit, &valid.interaction, now)
        .await?
    {
        ImportOutcome::Imported => (valid.unit, valid.interaction),
        ImportOutcome::Existing(unit, interaction) => (unit, *interaction),
        ImportOutcome::Conflict(why) => {
            let f = TransitionFailure::new("AWAIT_SUSPENSION_INVALID", why, false);
            return handle_failure(deps, claimed, Some(release), f, Some(worker_id)).await;
        }
    };
    let now = deps.clock.now_ms();
    let (next, event) = claimed.wait(
        now,
        unit.step_index,
        &unit.unit_id,
        &interaction.interaction_id,
        interaction.ttl_epoch_s,
        Some(worker_id),
    );
    let outcome = commit(deps, claimed, &next, &event, now).await?;
    if outcome == Processed::Committed(ExecutionStatus::WaitingExternal) {
        let now = deps.clock.now_ms();
        if let Some(i) = deps
            .awaits
            .get_interaction(&claimed.tenant_id, &interaction.interaction_id, now)
            .await?
        {
            if !i.is_open() {
                parent_follow_up(deps, &i).await?;
            }
        }
    }
    Ok(outcome)
}

/// §3.6: T5 with a delayed enqueue, or T6 and a dead letter.
async fn handle_failure(
    deps: &EngineDeps,
    claimed: &ExecutionRecord,
    release: Option<&ReleaseRecord>,
    failure: TransitionFailure,
    worker_id: Option<&str>,
) -> Result<Processed, StoreError> {
    tracing::info!(code = %failure.code, retryable = failure.retryable, "transition failed");
    let now = deps.clock.now_ms();
    let next_attempt = claimed.attempt + 1;
    if failure.retryable && next_attempt <= deps.settings.max_retries {
        let delay = retry_delay_ms(
            deps.settings.retry_delay_ms,
            deps.settings.retry_multiplier,
            next_attempt,
        );
        let (next, event) = claimed.schedule_retry(
            now,
            next_attempt,
            now + delay as i64,
            &failure.code,
            &failure.message,
            worker_id,
        );
        let outcome = commit(deps, claimed, &next, &event, now).await?;
        if outcome != Processed::Lost {
            let item = WorkItem {
                tenant_id: claimed.tenant_id.clone(),
                execution_id: claimed.execution_id.clone(),
            };
            deps.queue.enqueue(&item, delay).await?;
        }
        return Ok(outcome);
    }
    let reason = if failure.retryable {
        "retry_exhausted"
    } else {
        "non_retryable"
    };
    let (next, event) = claimed.fail(now, &failure.code, &failure.message, reason, worker_id);
    let outcome = commit(deps, claimed, &next, &event, now).await?;
    if outcome != Processed::Lost {
        let release = match release {
            Some(r) => Some(r.clone()),
            None => {
                deps.releases
                    .get_release(
                        &claimed.tenant_id,
                        &claimed.pipeline_id,
                        &claimed.release_version,
                    )
                    .await?
            }
        };
        let letter = DeadLetter::of(
            &next,
            release.as_ref().and_then(|r| r.contract.as_ref()),
            reason,
            failure.retryable,
            now,
        );
        publish(deps, &letter).await;
    }
    Ok(outcome)
}
