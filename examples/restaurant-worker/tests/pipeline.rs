//! The restaurant-approval pipeline over real HTTP: suspension at the await
//! step (`EXECUTION.md` §7.5, checked as §8.3 would), resume to the terminal
//! state, and the failures E2E-01/E2E-02/E2E-03 rely on.

mod common;

use common::*;
use restaurant_worker::{WorkerConfig, WorkerIdentity};
use serde_json::{json, Value};
use tpf_core::domain::worker_protocol::CAPABILITIES_PATH;

fn new_execution_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// The §8.3 checks the coordinator applies to a suspension.
fn assert_importable(envelope: &Value, command: &Value) {
    assert_eq!(envelope["outcome"], "WAITING_EXTERNAL");
    assert_eq!(envelope["outputPayloads"], json!([]));
    assert_eq!(envelope["failure"], Value::Null);
    assert_eq!(envelope["terminalOutputPublished"], false);
    assert_eq!(envelope["terminalInputPassthrough"], false);
    let s = &envelope["awaitSuspension"];
    let unit = &s["unit"];
    let interactions = s["interactions"].as_array().expect("interactions");
    assert_eq!(interactions.len(), 1);
    let i = &interactions[0];
    for v in [s, unit, i] {
        assert_eq!(v["tenantId"], command["tenantId"]);
        assert_eq!(v["executionId"], command["executionId"]);
    }
    assert!(is_uuid(s["unitId"].as_str().unwrap()));
    assert_eq!(unit["unitId"], s["unitId"]);
    assert_eq!(unit["stepIndex"], s["stepIndex"]);
    assert_eq!(s["stepIndex"], 2);
    assert!(s["stepIndex"].as_u64() >= command["currentStepIndex"].as_u64());
    assert_eq!(unit["status"], "WAITING_EXTERNAL");
    assert_eq!(unit["cardinality"], "ONE_TO_ONE");
    assert_eq!(unit["version"], 1);
    assert_eq!(unit["expectedItemCount"], Value::Null);
    assert_eq!(unit["completedItemCount"], 0);
    assert_eq!(unit["completedItemKeys"], json!([]));
    assert_eq!(unit["dispatchComplete"], false);
    assert_eq!(unit["stepId"], "ProcessAwaitRestaurantDecisionService");
    assert_eq!(i["interactionId"], unit["primaryInteractionId"]);
    assert!(is_uuid(i["interactionId"].as_str().unwrap()));
    assert!(is_uuid(i["correlationId"].as_str().unwrap()));
    assert_eq!(i["unitId"], unit["unitId"]);
    assert_eq!(i["stepId"], unit["stepId"]);
    assert_eq!(i["stepIndex"], unit["stepIndex"]);
    assert_eq!(i["itemIndex"], Value::Null);
    assert_eq!(i["outputType"], DECISION_TYPE);
    assert_eq!(i["transportOutputType"], i["outputType"]);
    assert_eq!(i["transportType"], "interaction-api");
    assert_eq!(i["transportMetadata"], json!({}));
    assert_eq!(i["status"], "DISPATCHED");
    assert_eq!(i["group"], "kitchen");
    assert_eq!(i["assignee"], Value::Null);
    assert_eq!(i["responsePayload"], Value::Null);
    assert_eq!(
        i["idempotencyKey"],
        format!(
            "{}:ProcessAwaitRestaurantDecisionService",
            command["executionId"].as_str().unwrap()
        )
    );
    let created = i["createdAtEpochMs"].as_i64().unwrap();
    let deadline = i["deadlineEpochMs"].as_i64().unwrap();
    assert!(deadline > created);
    assert_eq!(deadline - created, 30 * 60 * 1000);
    assert_eq!(i["ttlEpochS"], deadline / 1000 + 86_400);
    assert_eq!(unit["ttlEpochS"], i["ttlEpochS"]);
    let ids = [&s["unitId"], &i["interactionId"], &i["correlationId"]];
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[2]);
}

fn ids(envelope: &Value) -> (Value, Value, Value, Value) {
    let s = &envelope["awaitSuspension"];
    let i = &s["interactions"][0];
    (
        s["unitId"].clone(),
        i["interactionId"].clone(),
        i["correlationId"].clone(),
        i["requestPayload"]["orderId"].clone(),
    )
}

#[tokio::test]
async fn fresh_order_suspends_with_consistent_and_stable_ids() {
    let w = spawn(config()).await;
    let exec = new_execution_id();
    let order = sample_order();
    let cmd = order_command(&exec, &order);
    let first = w.execute(&cmd).await;
    assert_importable(&first, &cmd);
    let i = &first["awaitSuspension"]["interactions"][0];
    assert_eq!(
        i["requestPayload"],
        json!({"orderId": order["requestId"], "customerName": "Ada Lovelace", "restaurantName": "Cafe TPF"})
    );

    // A retried transition (next attempt) re-suspends on the same unit.
    let mut retry = cmd.clone();
    retry["attempt"] = json!(1);
    retry["transitionKey"] = json!(format!("{exec}:0:1"));
    retry["traceId"] = retry["transitionKey"].clone();
    let second = w.execute(&retry).await;
    assert_importable(&second, &retry);
    assert_eq!(ids(&first), ids(&second));

    // Another execution gets other ids.
    let other_cmd = order_command(&new_execution_id(), &order);
    let other = w.execute(&other_cmd).await;
    let (u1, i1, c1, _) = ids(&first);
    let (u2, i2, c2, _) = ids(&other);
    assert_ne!(u1, u2);
    assert_ne!(i1, i2);
    assert_ne!(c1, c2);
}

#[tokio::test]
async fn order_id_is_derived_when_request_id_is_not_a_uuid() {
    let w = spawn(config()).await;
    let exec = new_execution_id();
    let mut order = sample_order();
    order["requestId"] = json!("order-5b0e2c1a");
    let a = w.execute(&order_command(&exec, &order)).await;
    let b = w.execute(&order_command(&exec, &order)).await;
    let (.., order_a) = ids(&a);
    let (.., order_b) = ids(&b);
    assert!(is_uuid(order_a.as_str().unwrap()));
    assert_eq!(order_a, order_b);
}

#[tokio::test]
async fn order_without_customer_fails_non_retryably() {
    let w = spawn(config()).await;
    let mut order = sample_order();
    order.as_object_mut().unwrap().remove("customerName");
    let r = w.execute(&order_command(&new_execution_id(), &order)).await;
    assert_eq!(r["outcome"], "FAILED");
    assert_eq!(r["failure"]["failureClass"], NON_RETRYABLE);
    assert_eq!(r["failure"]["message"], "order is missing customerName");
    assert_eq!(r["outputPayloads"], json!([]));
    assert_eq!(r["awaitSuspension"], Value::Null);
    assert_eq!(r["terminalOutputPublished"], false);
    assert_eq!(r["terminalInputPassthrough"], false);
}

async fn resume(w: &Worker, decision: Value) -> Value {
    w.execute(&decision_command(&new_execution_id(), &decision))
        .await
}

fn terminal_state(envelope: &Value) -> Value {
    assert_eq!(envelope["outcome"], "COMPLETED", "{envelope}");
    assert_eq!(envelope["awaitSuspension"], Value::Null);
    assert_eq!(envelope["failure"], Value::Null);
    assert_eq!(envelope["terminalOutputPublished"], false);
    assert_eq!(envelope["terminalInputPassthrough"], false);
    let outputs = envelope["outputPayloads"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(
        outputs[0]["payloadTypeId"],
        "org.pipelineframework.restaurantapproval.common.dto.TerminalOrderStateDto"
    );
    assert_eq!(outputs[0]["payloadEncoding"], ENCODING);
    let text = outputs[0]["payload"].as_str().unwrap();
    let state: Value = serde_json::from_str(text).unwrap();
    assert_eq!(text, state.to_string(), "payload text is compact");
    let resolved = state["resolvedAt"].as_str().unwrap();
    assert!(restaurant_worker::time::parse_rfc3339_ms(resolved).is_some());
    state
}

#[tokio::test]
async fn resume_approved_completes_approved() {
    let w = spawn(config()).await;
    let order_id = uuid::Uuid::new_v4().to_string();
    let r = resume(
        &w,
        json!({"orderId": order_id, "approved": true, "note": "Kitchen confirmed"}),
    )
    .await;
    let state = terminal_state(&r);
    assert_eq!(state["orderId"], order_id.as_str());
    assert_eq!(state["outcome"], "APPROVED");
    assert_eq!(state["restaurantStatus"], "ACCEPTED");
    assert_eq!(state["summary"], "Kitchen confirmed");
}

#[tokio::test]
async fn resume_declined_completes_declined() {
    let w = spawn(config()).await;
    let r = resume(
        &w,
        json!({"orderId": uuid::Uuid::new_v4().to_string(), "approved": false}),
    )
    .await;
    let state = terminal_state(&r);
    assert_eq!(state["outcome"], "DECLINED");
    assert_eq!(state["restaurantStatus"], "REJECTED");
    assert!(!state["summary"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn resume_with_invalid_decision_fails_non_retryably() {
    let w = spawn(config()).await;
    for (decision, message) in [
        (
            json!({"orderId": "not-a-uuid", "approved": true}),
            "decision orderId is not a UUID",
        ),
        (
            json!({"orderId": uuid::Uuid::new_v4().to_string(), "approved": "yes"}),
            "decision approved must be a boolean",
        ),
    ] {
        let r = resume(&w, decision).await;
        assert_eq!(r["outcome"], "FAILED");
        assert_eq!(r["failure"]["failureClass"], NON_RETRYABLE);
        assert_eq!(r["failure"]["message"], message);
        assert_eq!(r["outputPayloads"], json!([]));
        assert_eq!(r["awaitSuspension"], Value::Null);
    }
}

#[tokio::test]
async fn unexpected_step_index_fails_illegal_state() {
    let w = spawn(config()).await;
    let exec = new_execution_id();
    let r = w
        .execute(&command(&exec, 1, "org.example.ValidatedOrder", "{}"))
        .await;
    assert_eq!(r["outcome"], "FAILED");
    assert_eq!(
        r["failure"]["failureClass"],
        "java.lang.IllegalStateException"
    );
}

#[tokio::test]
async fn identity_mismatch_fails_illegal_argument() {
    let w = spawn(config()).await;
    for (member, value) in [
        ("pipelineId", "other-pipeline"),
        ("contractVersion", "sha256:000000000000"),
        ("releaseVersion", "2099.01.0"),
    ] {
        let mut cmd = order_command(&new_execution_id(), &sample_order());
        cmd[member] = json!(value);
        let r = w.execute(&cmd).await;
        assert_eq!(r["outcome"], "FAILED", "{member}");
        assert_eq!(
            r["failure"]["failureClass"],
            "java.lang.IllegalArgumentException"
        );
        // Retryable by class: the worker does not send the `retryable` extension.
        assert!(r["failure"].get("retryable").is_none());
        assert_eq!(r["outputPayloads"], json!([]));
        assert_eq!(r["awaitSuspension"], Value::Null);
    }
}

#[tokio::test]
async fn worker_hosting_another_release_refuses_the_pinned_one() {
    // E2E-02: a worker started with RESTAURANT_RELEASE_VERSION=2025.02.0.
    let config = WorkerConfig::from_lookup(|name| match name {
        "TPF_WORKER_SHARED_SECRET" => Some(SECRET.to_string()),
        "RESTAURANT_RELEASE_VERSION" => Some("2025.02.0".to_string()),
        _ => None,
    })
    .unwrap();
    let w = spawn(config).await;
    let headers = signed_headers(
        SECRET,
        "GET",
        CAPABILITIES_PATH,
        &now_timestamp(),
        &fresh_nonce(),
        b"",
    );
    let caps: Value = w.get_raw(&headers).await.json().await.unwrap();
    assert_eq!(caps["releaseVersion"], "2025.02.0");
    assert_eq!(
        caps["contractVersion"],
        WorkerIdentity::demo().contract_version
    );

    let r = w
        .execute(&order_command(&new_execution_id(), &sample_order()))
        .await;
    assert_eq!(r["outcome"], "FAILED");
    assert_eq!(
        r["failure"]["failureClass"],
        "java.lang.IllegalArgumentException"
    );
}

#[tokio::test]
async fn invalid_json_body_is_400() {
    let w = spawn(config()).await;
    let res = w.post_signed(b"{\"tenantId\":").await;
    assert_eq!(res.status(), 400);
}
