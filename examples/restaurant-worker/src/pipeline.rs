//! The restaurant-approval pipeline as a transition worker runs it.
//!
//! Contract steps: 0 Validate Order Request, 1 Create Pending Approval,
//! 2 Await Restaurant Decision (`await`, `interaction-api`), 3 Finalize
//! Restaurant Decision. A fresh execution (step 0) runs steps 0–1 and
//! suspends at step 2 (`WAITING_EXTERNAL`, `EXECUTION.md` §7.5); the resumed
//! execution (step 3) turns the restaurant's decision into the terminal
//! order state (`COMPLETED`). Everything that goes wrong while running steps
//! is a `FAILED` envelope (§7.6).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tpf_core::domain::worker_protocol::{FailureEnvelope, Outcome, TransitionCommand};

use crate::config::WorkerIdentity;
use crate::time::format_rfc3339_ms;

/// The transition codec encoding (`EXECUTION.md` §4.1).
pub const TRANSITION_ENCODING: &str = "application/tpf-transition+json";
/// Type id of a fresh run's command payload (§4.2).
pub const SNAPSHOT_TYPE: &str = "org.pipelineframework.orchestrator.ExecutionInputSnapshot";
/// The await step.
pub const AWAIT_STEP_INDEX: u64 = 2;
/// The step a resumed execution starts at.
pub const FINALIZE_STEP_INDEX: u64 = 3;
/// `stepId` of the await unit and interaction.
pub const AWAIT_STEP_ID: &str = "ProcessAwaitRestaurantDecisionService";
/// `outputType` and `transportOutputType` of the await.
pub const DECISION_TYPE: &str =
    "org.pipelineframework.restaurantapproval.common.domain.RestaurantDecision";
/// `payloadTypeId` of the terminal output.
pub const TERMINAL_TYPE: &str =
    "org.pipelineframework.restaurantapproval.common.dto.TerminalOrderStateDto";
/// Await interaction transport.
pub const AWAIT_TRANSPORT: &str = "interaction-api";
/// Group the kitchen's pending list filters on.
pub const AWAIT_GROUP: &str = "kitchen";

pub const NON_RETRYABLE: &str = "org.pipelineframework.step.NonRetryableException";
pub const ILLEGAL_ARGUMENT: &str = "java.lang.IllegalArgumentException";
pub const ILLEGAL_STATE: &str = "java.lang.IllegalStateException";

/// One day, added to the deadline for the records' TTL (as the §7.5 example).
const TTL_GRACE_S: i64 = 86_400;

/// A step error: the failure class and message of the `FAILED` envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub failure_class: &'static str,
    pub message: String,
}

impl StepError {
    fn non_retryable(message: impl Into<String>) -> Self {
        StepError {
            failure_class: NON_RETRYABLE,
            message: message.into(),
        }
    }
}

/// Runs one transition; `now_ms` is the worker's clock.
pub fn execute(
    identity: &WorkerIdentity,
    await_timeout_ms: u64,
    command: &TransitionCommand,
    now_ms: i64,
) -> Value {
    let result = check_identity(identity, command).and_then(|()| match command.current_step_index {
        0 => start(command, await_timeout_ms, now_ms),
        FINALIZE_STEP_INDEX => finalize(command, now_ms),
        other => Err(StepError {
            failure_class: ILLEGAL_STATE,
            message: format!(
                "restaurant-approval cannot start a transition at step {other} (expected 0 or {FINALIZE_STEP_INDEX})"
            ),
        }),
    });
    result.unwrap_or_else(failed)
}

/// §7.3: the pinned identity must be what this worker hosts.
fn check_identity(identity: &WorkerIdentity, c: &TransitionCommand) -> Result<(), StepError> {
    let members = [
        ("pipelineId", &c.pipeline_id, &identity.pipeline_id),
        (
            "contractVersion",
            &c.contract_version,
            &identity.contract_version,
        ),
        (
            "releaseVersion",
            &c.release_version,
            &identity.release_version,
        ),
    ];
    for (name, got, hosted) in members {
        if got != hosted {
            return Err(StepError {
                failure_class: ILLEGAL_ARGUMENT,
                message: format!("{name} mismatch: command pins {got}, worker hosts {hosted}"),
            });
        }
    }
    Ok(())
}

/// A `FAILED` result envelope (§7.4 rule 3).
pub fn failed(error: StepError) -> Value {
    let failure = FailureEnvelope {
        failure_class: error.failure_class.to_string(),
        message: Some(error.message),
        retryable: None,
    };
    envelope(Outcome::Failed, json!([]), Value::Null, json!(failure))
}

fn envelope(outcome: Outcome, outputs: Value, suspension: Value, failure: Value) -> Value {
    json!({
        "outcome": outcome,
        "outputPayloads": outputs,
        "awaitSuspension": suspension,
        "failure": failure,
        "terminalOutputPublished": false,
        "terminalInputPassthrough": false,
    })
}

/// A UUID-formatted id derived from SHA-256 of `label` and `execution_id`:
/// the same for every retry of the same execution, distinct per label.
pub fn derived_id(label: &str, execution_id: &str) -> String {
    let digest = Sha256::digest(format!("tpf-restaurant-worker/{label}/{execution_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50; // version 5 (name-based)
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// True for the hyphenated 8-4-4-4-12 hex form (either case).
pub fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn parse_json(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// A JSON object from payload text; a JSON string holding an object's text
/// is accepted too (some producers send the value's JSON as a string).
fn object_from_text(text: &str) -> Option<Map<String, Value>> {
    match parse_json(text)? {
        Value::Object(m) => Some(m),
        Value::String(inner) if inner.trim_start().starts_with('{') => {
            match parse_json(inner.trim())? {
                Value::Object(m) => Some(m),
                _ => None,
            }
        }
        _ => None,
    }
}

fn non_blank_str<'a>(order: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    order
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn check_encoding(command: &TransitionCommand) -> Result<(), StepError> {
    if command.payload_encoding != TRANSITION_ENCODING {
        return Err(StepError::non_retryable(format!(
            "payloadEncoding must be {TRANSITION_ENCODING}"
        )));
    }
    Ok(())
}

/// Step 0 input: the order inside the snapshot's UNI envelope.
fn order_from_snapshot(command: &TransitionCommand) -> Result<Map<String, Value>, StepError> {
    check_encoding(command)?;
    if command.payload_type_id != SNAPSHOT_TYPE {
        return Err(StepError::non_retryable(format!(
            "step 0 expects a {SNAPSHOT_TYPE} payload"
        )));
    }
    let snapshot = object_from_text(&command.payload)
        .ok_or_else(|| StepError::non_retryable("input snapshot is not a JSON object"))?;
    let shape = snapshot.get("shape").and_then(Value::as_str).unwrap_or("");
    if shape != "UNI" && shape != "RAW" {
        return Err(StepError::non_retryable(
            "input snapshot must have shape UNI (one order per execution)",
        ));
    }
    let envelope = snapshot
        .get("payload")
        .and_then(Value::as_object)
        .ok_or_else(|| StepError::non_retryable("input snapshot has no payload envelope"))?;
    let text = envelope
        .get("payload")
        .and_then(Value::as_str)
        .ok_or_else(|| StepError::non_retryable("input envelope has no payload text"))?;
    object_from_text(text).ok_or_else(|| StepError::non_retryable("order is not a JSON object"))
}

/// Steps 0–1, then the suspension at step 2.
fn start(
    command: &TransitionCommand,
    await_timeout_ms: u64,
    now_ms: i64,
) -> Result<Value, StepError> {
    // Step 0: Validate Order Request.
    let order = order_from_snapshot(command)?;
    let customer = non_blank_str(&order, "customerName")
        .ok_or_else(|| StepError::non_retryable("order is missing customerName"))?;
    let restaurant = non_blank_str(&order, "restaurantName")
        .ok_or_else(|| StepError::non_retryable("order is missing restaurantName"))?;

    // Step 1: Create Pending Approval.
    let execution_id = command.execution_id.as_str();
    let order_id = match order.get("requestId").and_then(Value::as_str) {
        Some(id) if is_uuid(id) => id.to_ascii_lowercase(),
        _ => derived_id("order", execution_id),
    };

    // Step 2: Await Restaurant Decision.
    let step = AWAIT_STEP_INDEX;
    let unit_id = derived_id(&format!("await-unit/{step}"), execution_id);
    let interaction_id = derived_id(&format!("await-interaction/{step}"), execution_id);
    let correlation_id = derived_id(&format!("await-correlation/{step}"), execution_id);
    let timeout = i64::try_from(await_timeout_ms).unwrap_or(i64::MAX);
    let deadline = now_ms.saturating_add(timeout);
    let ttl = deadline / 1000 + TTL_GRACE_S;
    let tenant = command.tenant_id.as_str();

    let unit = json!({
        "tenantId": tenant,
        "unitId": unit_id,
        "executionId": execution_id,
        "stepId": AWAIT_STEP_ID,
        "stepIndex": step,
        "cardinality": "ONE_TO_ONE",
        "version": 1,
        "status": "WAITING_EXTERNAL",
        "primaryInteractionId": interaction_id,
        "expectedItemCount": null,
        "completedItemCount": 0,
        "completedItemKeys": [],
        "dispatchComplete": false,
        "createdAtEpochMs": now_ms,
        "updatedAtEpochMs": now_ms,
        "ttlEpochS": ttl,
    });
    let interaction = json!({
        "tenantId": tenant,
        "executionId": execution_id,
        "stepId": AWAIT_STEP_ID,
        "stepIndex": step,
        "outputType": DECISION_TYPE,
        "interactionId": interaction_id,
        "correlationId": correlation_id,
        "causationId": null,
        "idempotencyKey": format!("{execution_id}:{AWAIT_STEP_ID}"),
        // WAITING (1) → DISPATCHED (2): the request is listed by the
        // coordinator's interaction API once imported.
        "version": 2,
        "status": "DISPATCHED",
        "requestPayload": {
            "orderId": order_id,
            "customerName": customer,
            "restaurantName": restaurant,
        },
        "responsePayload": null,
        "unitId": unit_id,
        "itemIndex": null,
        "actor": null,
        "assignee": null,
        "group": AWAIT_GROUP,
        "transportType": AWAIT_TRANSPORT,
        "transportMetadata": {},
        "deadlineEpochMs": deadline,
        "createdAtEpochMs": now_ms,
        "updatedAtEpochMs": now_ms,
        "ttlEpochS": ttl,
        "transportOutputType": DECISION_TYPE,
    });
    let suspension = json!({
        "tenantId": tenant,
        "executionId": execution_id,
        "unitId": unit_id,
        "stepIndex": step,
        "unit": unit,
        "interactions": [interaction],
    });
    Ok(envelope(
        Outcome::WaitingExternal,
        json!([]),
        suspension,
        Value::Null,
    ))
}

/// Step 3: Finalize Restaurant Decision, from the resume envelope's payload.
fn finalize(command: &TransitionCommand, now_ms: i64) -> Result<Value, StepError> {
    check_encoding(command)?;
    let outer = object_from_text(&command.payload)
        .ok_or_else(|| StepError::non_retryable("decision is not a JSON object"))?;
    // TPF's demo client answers `{"accepted": {...}}` or `{"declined": {...}}`
    // (the RestaurantDecision variants); the flat `{"orderId", "approved"}`
    // form is accepted too.
    let variant = ["accepted", "declined"].into_iter().find_map(|k| {
        outer
            .get(k)
            .and_then(Value::as_object)
            .map(|v| (k == "accepted", v.clone()))
    });
    let decision = match &variant {
        Some((_, inner)) => inner.clone(),
        None => outer.clone(),
    };
    let order_id = decision
        .get("orderId")
        .and_then(Value::as_str)
        .filter(|id| is_uuid(id))
        .ok_or_else(|| StepError::non_retryable("decision orderId is not a UUID"))?;
    let approved = match &variant {
        Some((accepted, _)) => *accepted,
        None => decision
            .get("approved")
            .and_then(Value::as_bool)
            .ok_or_else(|| StepError::non_retryable("decision approved must be a boolean"))?,
    };

    let (outcome, restaurant_status, verb) = if approved {
        ("APPROVED", "ACCEPTED", "Approved")
    } else {
        ("DECLINED", "REJECTED", "Declined")
    };
    let summary = match non_blank_str(&decision, "note") {
        Some(note) => note.to_string(),
        None => match non_blank_str(&decision, "restaurantName") {
            Some(name) => format!("{verb} by {name}"),
            None => format!("{verb} by the restaurant"),
        },
    };
    let state = json!({
        "orderId": order_id.to_ascii_lowercase(),
        "outcome": outcome,
        "restaurantStatus": restaurant_status,
        "summary": summary,
        "resolvedAt": format_rfc3339_ms(now_ms),
    });
    let output = json!({
        "payloadTypeId": TERMINAL_TYPE,
        "payloadEncoding": TRANSITION_ENCODING,
        "payload": state.to_string(),
    });
    Ok(envelope(
        Outcome::Completed,
        json!([output]),
        Value::Null,
        Value::Null,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_736_937_600_000;
    const EXEC: &str = "7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34";

    fn command(step: u64, type_id: &str, payload: &str) -> TransitionCommand {
        let id = WorkerIdentity::demo();
        TransitionCommand {
            tenant_id: "acme".into(),
            execution_id: EXEC.into(),
            pipeline_id: id.pipeline_id,
            contract_version: id.contract_version,
            release_version: id.release_version,
            current_step_index: step,
            stop_before_step_index: -1,
            attempt: 0,
            result_shape: "SINGLE".into(),
            execution_version: 1,
            transition_key: format!("{EXEC}:{step}:0"),
            trace_id: format!("{EXEC}:{step}:0"),
            payload_type_id: type_id.into(),
            payload_encoding: TRANSITION_ENCODING.into(),
            payload: payload.into(),
        }
    }

    fn order_snapshot(order: Value) -> String {
        json!({
            "shape": "UNI",
            "payload": {
                "payloadTypeId": "org.example.OrderRequest",
                "payloadEncoding": TRANSITION_ENCODING,
                "payload": order.to_string(),
            },
            "items": [],
        })
        .to_string()
    }

    fn run(c: &TransitionCommand) -> Value {
        execute(&WorkerIdentity::demo(), 1_800_000, c, NOW)
    }

    #[test]
    fn derived_ids_look_like_uuids_and_are_stable() {
        let a = derived_id("await-unit/2", EXEC);
        assert!(is_uuid(&a));
        assert_eq!(a, a.to_ascii_lowercase());
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(a, derived_id("await-unit/2", EXEC));
        assert_ne!(a, derived_id("await-interaction/2", EXEC));
        assert_ne!(a, derived_id("await-unit/2", "other"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn fresh_order_suspends_like_the_spec_example() {
        let order = json!({"requestId": "9E2D4C6A-1B3F-4A5D-8C7E-0F1A2B3C4D5E", "customerName": "Ada Lovelace",
            "restaurantName": "Cafe TPF", "items": ["soup"], "totalAmount": 27.50, "currency": "EUR"});
        let r = run(&command(0, SNAPSHOT_TYPE, &order_snapshot(order)));
        assert_eq!(r["outcome"], "WAITING_EXTERNAL");
        assert_eq!(r["failure"], Value::Null);
        assert_eq!(r["outputPayloads"], json!([]));
        let s = &r["awaitSuspension"];
        let unit = &s["unit"];
        let i = &s["interactions"][0];
        assert_eq!(s["interactions"].as_array().unwrap().len(), 1);
        assert_eq!(unit["unitId"], s["unitId"]);
        assert_eq!(i["unitId"], s["unitId"]);
        assert_eq!(unit["primaryInteractionId"], i["interactionId"]);
        assert_eq!(
            i["requestPayload"]["orderId"],
            "9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e"
        );
        assert_eq!(i["deadlineEpochMs"], NOW + 1_800_000);
        assert_eq!(i["ttlEpochS"], (NOW + 1_800_000) / 1000 + 86_400);
        assert_eq!(unit["ttlEpochS"], 1_737_025_800);
        assert_eq!(i["idempotencyKey"], format!("{EXEC}:{AWAIT_STEP_ID}"));
        // Every member of the §7.5 example, in its order.
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(s),
            [
                "tenantId",
                "executionId",
                "unitId",
                "stepIndex",
                "unit",
                "interactions"
            ]
        );
        assert_eq!(
            keys(unit),
            [
                "tenantId",
                "unitId",
                "executionId",
                "stepId",
                "stepIndex",
                "cardinality",
                "version",
                "status",
                "primaryInteractionId",
                "expectedItemCount",
                "completedItemCount",
                "completedItemKeys",
                "dispatchComplete",
                "createdAtEpochMs",
                "updatedAtEpochMs",
                "ttlEpochS"
            ]
        );
        assert_eq!(
            keys(i),
            [
                "tenantId",
                "executionId",
                "stepId",
                "stepIndex",
                "outputType",
                "interactionId",
                "correlationId",
                "causationId",
                "idempotencyKey",
                "version",
                "status",
                "requestPayload",
                "responsePayload",
                "unitId",
                "itemIndex",
                "actor",
                "assignee",
                "group",
                "transportType",
                "transportMetadata",
                "deadlineEpochMs",
                "createdAtEpochMs",
                "updatedAtEpochMs",
                "ttlEpochS",
                "transportOutputType"
            ]
        );
        assert_eq!(
            keys(&r),
            [
                "outcome",
                "outputPayloads",
                "awaitSuspension",
                "failure",
                "terminalOutputPublished",
                "terminalInputPassthrough"
            ]
        );
    }

    #[test]
    fn order_without_uuid_request_id_gets_a_derived_order_id() {
        let order =
            json!({"requestId": "order-1", "customerName": "Ada", "restaurantName": "Cafe"});
        let r = run(&command(0, SNAPSHOT_TYPE, &order_snapshot(order)));
        let id = r["awaitSuspension"]["interactions"][0]["requestPayload"]["orderId"]
            .as_str()
            .unwrap();
        assert_eq!(id, derived_id("order", EXEC));
    }

    #[test]
    fn bad_orders_fail_non_retryably() {
        for (order, message) in [
            (
                json!({"restaurantName": "Cafe"}),
                "order is missing customerName",
            ),
            (
                json!({"customerName": " ", "restaurantName": "Cafe"}),
                "order is missing customerName",
            ),
            (
                json!({"customerName": "Ada"}),
                "order is missing restaurantName",
            ),
            (json!(["not", "an", "object"]), "order is not a JSON object"),
        ] {
            let r = run(&command(0, SNAPSHOT_TYPE, &order_snapshot(order)));
            assert_eq!(r["outcome"], "FAILED");
            assert_eq!(r["failure"]["failureClass"], NON_RETRYABLE);
            assert_eq!(r["failure"]["message"], message);
            assert_eq!(r["awaitSuspension"], Value::Null);
            assert_eq!(r["outputPayloads"], json!([]));
            assert!(r["failure"].get("retryable").is_none());
        }
        let r = run(&command(0, "java.lang.String", "\"x\""));
        assert_eq!(r["failure"]["failureClass"], NON_RETRYABLE);
    }

    #[test]
    fn resume_completes_with_the_terminal_state() {
        let decision = r#"{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e","approved":true,"note":"Looks good"}"#;
        let r = run(&command(3, DECISION_TYPE, decision));
        assert_eq!(r["outcome"], "COMPLETED");
        let outputs = r["outputPayloads"].as_array().unwrap();
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0]["payloadTypeId"], TERMINAL_TYPE);
        assert_eq!(outputs[0]["payloadEncoding"], TRANSITION_ENCODING);
        let text = outputs[0]["payload"].as_str().unwrap();
        assert_eq!(
            text,
            r#"{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e","outcome":"APPROVED","restaurantStatus":"ACCEPTED","summary":"Looks good","resolvedAt":"2025-01-15T10:40:00.000Z"}"#
        );

        let declined = r#"{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e","approved":false}"#;
        let r = run(&command(3, DECISION_TYPE, declined));
        let state: Value =
            serde_json::from_str(r["outputPayloads"][0]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(state["outcome"], "DECLINED");
        assert_eq!(state["restaurantStatus"], "REJECTED");
        assert_eq!(state["summary"], "Declined by the restaurant");
    }

    #[test]
    fn tpf_demo_client_decision_variants_are_understood() {
        let accepted = r#"{"accepted":{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e","decidedAt":"2025-01-15T10:50:15Z","note":"Approved by Cafe TPF"}}"#;
        let r = run(&command(3, DECISION_TYPE, accepted));
        let state: Value =
            serde_json::from_str(r["outputPayloads"][0]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(state["outcome"], "APPROVED");
        assert_eq!(state["summary"], "Approved by Cafe TPF");
        let declined = r#"{"declined":{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e","declineReason":"overloaded"}}"#;
        let r = run(&command(3, DECISION_TYPE, declined));
        let state: Value =
            serde_json::from_str(r["outputPayloads"][0]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(state["outcome"], "DECLINED");
        let invalid = r#"{"accepted":{"orderId":"not-a-uuid"}}"#;
        let r = run(&command(3, DECISION_TYPE, invalid));
        assert_eq!(r["outcome"], "FAILED");
        assert_eq!(r["failure"]["message"], "decision orderId is not a UUID");
    }

    #[test]
    fn bad_decisions_fail_non_retryably() {
        for (decision, message) in [
            (
                r#"{"orderId":"not-a-uuid","approved":true}"#,
                "decision orderId is not a UUID",
            ),
            (r#"{"approved":true}"#, "decision orderId is not a UUID"),
            (
                r#"{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e","approved":"yes"}"#,
                "decision approved must be a boolean",
            ),
            (
                r#"{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e"}"#,
                "decision approved must be a boolean",
            ),
            ("null", "decision is not a JSON object"),
        ] {
            let r = run(&command(3, DECISION_TYPE, decision));
            assert_eq!(r["outcome"], "FAILED", "{decision}");
            assert_eq!(r["failure"]["failureClass"], NON_RETRYABLE);
            assert_eq!(r["failure"]["message"], message);
        }
    }

    #[test]
    fn other_steps_and_identities_fail() {
        for step in [1, 2, 4] {
            let r = run(&command(step, DECISION_TYPE, "{}"));
            assert_eq!(r["failure"]["failureClass"], ILLEGAL_STATE);
        }
        let mut c = command(0, SNAPSHOT_TYPE, "{}");
        c.release_version = "1999.01.0".into();
        let r = run(&c);
        assert_eq!(r["outcome"], "FAILED");
        assert_eq!(r["failure"]["failureClass"], ILLEGAL_ARGUMENT);
    }
}
