//! The non-HTTP Lambda entry points: the dispatcher (SQS event source →
//! `process_work_item` per message, partial batch failure response so one
//! bad message never redrives a whole batch) and the sweeper (scheduled
//! `sweep_once`). No business logic here beyond the response mapping.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::actions::{process_work_item, sweep_once, EngineDeps};

/// Handles one SQS batch: every message is processed; those whose action
/// failed with an outage are reported as item failures (redelivered).
pub async fn dispatch_batch(deps: &EngineDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.unwrap_or_default();
        match process_work_item::run(deps, &body).await {
            Ok(outcome) => tracing::info!(message_id = %id, ?outcome, "work item processed"),
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "work item failed; reported for redelivery");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

/// One schedule tick: `sweep_once(now, TPF_SWEEP_LIMIT)`.
pub async fn sweep_tick(deps: &EngineDeps) -> sweep_once::SweepSummary {
    sweep_once::run(deps, deps.settings.sweep_limit).await
}
