//! `complete_interaction` (`API.md` §2.5, `EXECUTION.md` §8.5): resolve the
//! interaction, check a resume token, apply the decision table, and on a
//! winning completion finish the unit and release the parent.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::follow_up::{complete_unit, parent_follow_up, time_out, RECHECK_MS};
use super::EngineDeps;
use crate::domain::awaits::AwaitInteraction;
use crate::domain::envelope::{flatten, payload_hash, validate_envelope};
use crate::domain::ids::check_id;
use crate::domain::resume_token;
use crate::domain::values::{char_len, has_control};
use crate::error::{ApiError, ErrorCode};
use crate::ports::Write;

/// A validated completion request.
#[derive(Debug, Clone)]
pub struct CompleteRequest {
    pub interaction_id: Option<String>,
    pub correlation_id: Option<String>,
    pub resume_token: Option<String>,
    pub response_payload: Value,
    pub idempotency_key: Option<String>,
    pub actor: Option<String>,
}

/// Response 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteResponse {
    pub interaction_id: String,
    pub execution_id: String,
    pub step_id: String,
    pub status: String,
    pub duplicate: bool,
}

fn text(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(_) => Err(ApiError::invalid_field(name, "must be a string")),
    }
}

/// Checks the members in the order of §2.5's table.
pub fn parse_request(body: &Map<String, Value>) -> Result<CompleteRequest, ApiError> {
    let interaction_id = text(body, "interactionId")?;
    if let Some(id) = &interaction_id {
        check_id("interactionId", id)?;
    }
    let correlation_id = text(body, "correlationId")?;
    if let Some(id) = &correlation_id {
        check_id("correlationId", id)?;
    }
    let resume_token = text(body, "resumeToken")?;
    if resume_token.as_ref().is_some_and(|t| char_len(t) > 4096) {
        return Err(ApiError::invalid_field(
            "resumeToken",
            "must be at most 4096 characters",
        ));
    }
    if interaction_id.is_none() && correlation_id.is_none() && resume_token.is_none() {
        return Err(ApiError::new(
            ErrorCode::MissingField,
            "interactionId, correlationId, or resumeToken is required",
        ));
    }
    let response_payload = match body.get("responsePayload") {
        None | Some(Value::Null) => return Err(ApiError::missing("responsePayload")),
        Some(v) => {
            validate_envelope("responsePayload", v)?;
            v.clone()
        }
    };
    let idempotency_key = text(body, "idempotencyKey")?;
    if idempotency_key
        .as_ref()
        .is_some_and(|k| char_len(k) > 256 || has_control(k))
    {
        return Err(ApiError::invalid_field(
            "idempotencyKey",
            "must be 1-256 characters without control characters",
        ));
    }
    let actor = text(body, "actor")?;
    if actor
        .as_ref()
        .is_some_and(|a| char_len(a) > 128 || has_control(a))
    {
        return Err(ApiError::invalid_field(
            "actor",
            "must be 1-128 characters without control characters",
        ));
    }
    Ok(CompleteRequest {
        interaction_id,
        correlation_id,
        resume_token,
        response_payload,
        idempotency_key,
        actor,
    })
}

fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::InteractionNotFound,
        "no interaction for the given handle in this tenant",
    )
}

fn token_unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::ResumeTokenUnavailable,
        "resume tokens cannot be checked: no resume-token secret is available",
    )
}

fn token_invalid() -> ApiError {
    ApiError::new(
        ErrorCode::ResumeTokenInvalid,
        "resumeToken does not match the interaction",
    )
}

/// Completes an interaction of `tenant`.
pub async fn run(
    deps: &EngineDeps,
    tenant: &str,
    req: CompleteRequest,
) -> Result<CompleteResponse, ApiError> {
    let now = deps.clock.now_ms();
    // 1. resolve (a sole token needs a secret before anything is parsed)
    let sole_token = req.interaction_id.is_none() && req.correlation_id.is_none();
    if sole_token && deps.resume_secret.is_none() {
        return Err(token_unavailable());
    }
    let found = if let Some(id) = &req.interaction_id {
        deps.awaits.get_interaction(tenant, id, now).await?
    } else if let Some(cid) = &req.correlation_id {
        deps.awaits.get_by_correlation(tenant, cid, now).await?
    } else {
        let token = req.resume_token.as_deref().unwrap_or_default();
        let hint = resume_token::interaction_hint(token).ok_or_else(token_invalid)?;
        if !crate::domain::ids::is_valid_id(&hint) {
            return Err(not_found());
        }
        deps.awaits.get_interaction(tenant, &hint, now).await?
    };
    let mut current = found.ok_or_else(not_found)?;
    // 2. resume token
    if let Some(token) = &req.resume_token {
        let secret = match &deps.resume_secret {
            Some(s) => s.get().await.ok_or_else(token_unavailable)?,
            None => return Err(token_unavailable()),
        };
        if !resume_token::validate(&secret, token, &current) {
            return Err(token_invalid());
        }
    }
    // 3. fingerprint
    let hash = payload_hash(&req.response_payload);
    let flattened = flatten(&req.response_payload).map_err(|why| {
        ApiError::new(ErrorCode::InvalidPayload, format!("responsePayload {why}"))
    })?;
    let response: Box<RawValue> = RawValue::from_string(flattened).map_err(|e| {
        ApiError::new(
            ErrorCode::InternalError,
            format!("flattened response is not JSON: {e}"),
        )
    })?;
    // 4. decision table
    for _ in 0..3 {
        let now = deps.clock.now_ms();
        let reply = |duplicate| CompleteResponse {
            interaction_id: current.interaction_id.clone(),
            execution_id: current.execution_id.clone(),
            step_id: current.step_id.clone(),
            status: "COMPLETED".into(),
            duplicate,
        };
        match current.status.as_str() {
            "COMPLETED" => {
                let same_key = req.idempotency_key.is_some()
                    && req.idempotency_key == current.completion_idempotency_key;
                if same_key || current.completion_payload_hash.as_deref() == Some(hash.as_str()) {
                    follow_up_logged(deps, &current).await;
                    return Ok(reply(true));
                }
                return Err(ApiError::new(
                    ErrorCode::InteractionAlreadyCompleted,
                    format!(
                        "Interaction {} was already completed with a different response",
                        current.interaction_id
                    ),
                ));
            }
            "TIMED_OUT" => {
                follow_up_logged(deps, &current).await;
                return Err(timed_out(&current));
            }
            s if !crate::domain::awaits::is_open(s) => {
                return Err(ApiError::new(
                    ErrorCode::InteractionTerminal,
                    format!("Interaction {} is {s}", current.interaction_id),
                ))
            }
            _ if current.deadline_epoch_ms <= now => {
                if let Err(e) = time_out(deps, &current).await {
                    tracing::warn!(error = %e, "timeout follow-up failed; the sweep retries it");
                }
                return Err(timed_out(&current));
            }
            _ => {
                let mut next: AwaitInteraction = current.clone();
                next.status = "COMPLETED".into();
                next.version = current.version + 1;
                next.updated_at_epoch_ms = now;
                next.response_payload = Some(response.clone());
                next.actor = req.actor.clone();
                next.completion_idempotency_key = req.idempotency_key.clone();
                next.completion_payload_hash = Some(hash.clone());
                next.completed_at_epoch_ms = Some(now);
                next.settle_due_epoch_ms = Some(now + RECHECK_MS);
                if deps
                    .awaits
                    .update_interaction(&next, current.version, now)
                    .await?
                    == Write::Written
                {
                    tracing::info!(interaction_id = %next.interaction_id, execution_id = %next.execution_id, "interaction completed");
                    if let Err(e) = complete_unit(deps, &next).await {
                        tracing::warn!(error = %e, "unit update failed; the sweep finishes it");
                    }
                    follow_up_logged(deps, &next).await;
                    return Ok(reply(false));
                }
                current = deps
                    .awaits
                    .get_interaction(tenant, &current.interaction_id, now)
                    .await?
                    .ok_or_else(not_found)?;
            }
        }
    }
    Err(ApiError::new(
        ErrorCode::ConcurrentModification,
        "interaction changed concurrently three times; retry",
    ))
}

fn timed_out(i: &AwaitInteraction) -> ApiError {
    ApiError::new(
        ErrorCode::InteractionTimedOut,
        format!("Interaction {} timed out", i.interaction_id),
    )
}

/// The follow-up after the interaction is durably terminal: failures are
/// logged only (`settleDueEpochMs` makes the sweep finish the job).
async fn follow_up_logged(deps: &EngineDeps, i: &AwaitInteraction) {
    if let Err(e) = parent_follow_up(deps, i).await {
        tracing::warn!(interaction_id = %i.interaction_id, error = %e, "parent follow-up failed; the sweep retries it");
    }
}
