//! Re-drive conformance (EXECUTION.md §11 RED-01..RED-14; API.md §2.6,
//! EXECUTION.md §3.3 T9, §5.5): answers, the stored record (read back
//! through the `ExecutionStore` trait), history and queue. States the flow
//! cannot reach (`DLQ`, leftovers to clear) are written through the store.

use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tpf_core::domain::execution::{EventType, ExecutionRecord, ExecutionStatus};
use tpf_core::ports::WorkItem;
use tpf_tests::*;

const NON_RETRYABLE: &str = "org.pipelineframework.step.NonRetryableException";

fn item(id: &str) -> WorkItem {
    WorkItem {
        tenant_id: TENANT.into(),
        execution_id: id.into(),
    }
}

fn redrive_path(tenant: &str, id: &str) -> String {
    format!("/tpf/admin/tenants/{tenant}/executions/{id}/redrive")
}

/// A harness whose only worker is a scripted one serving the demo release.
async fn scripted() -> (Harness, ScriptedWorker) {
    let h = Harness::new(Options {
        env: vec![],
        restaurant_worker: false,
    })
    .await;
    let w = ScriptedWorker::default();
    let url = w.start().await;
    let entry = h.worker_entry_for("scripted", &url, &DemoSpec::default());
    h.put_worker_entry(&entry).await;
    (h, w)
}

async fn submit_id(h: &Harness) -> String {
    let r = h.submit(submit_body("Ada Lovelace", None)).await;
    let id = r.ok()["executionId"].as_str().unwrap().to_string();
    h.queue.drain();
    id
}

/// A new execution failed non-retryably at step 0 (version 2).
async fn failed(h: &Harness, w: &ScriptedWorker) -> String {
    let id = submit_id(h).await;
    w.answer(200, failed_answer(NON_RETRYABLE, "bad order"));
    h.process(&item(&id)).await;
    let r = h.record(&id).await.unwrap();
    assert_eq!((r.status, r.version), (ExecutionStatus::Failed, 2));
    id
}

/// Moves the stored record of `id` to `DLQ` (no action writes it).
async fn to_dlq(h: &Harness, id: &str) -> ExecutionRecord {
    let mut next = h.record(id).await.unwrap();
    next.version += 1;
    next.status = ExecutionStatus::Dlq;
    next.updated_at_epoch_ms = h.now();
    h.force_write(&next, EventType::Failed).await;
    next
}

/// A new `DLQ` execution (version 3).
async fn dlq(h: &Harness, w: &ScriptedWorker) -> String {
    let id = failed(h, w).await;
    to_dlq(h, &id).await;
    id
}

/// Nothing was written or enqueued for `id` since `before`.
async fn assert_unchanged(h: &Harness, id: &str, before: &ExecutionRecord) {
    let now = h.record(id).await.unwrap();
    assert_eq!((now.status, now.version), (before.status, before.version));
    assert_eq!(h.history_of(id).await.len() as u64, before.version + 1);
    assert!(h.queue.is_empty(), "something was enqueued");
}

/// A scripted execution that suspended at step 1 (unit `unit-r`), was
/// completed with `"yes"`, resumed at step 2 and failed there.
async fn failed_after_resume(h: &Harness, w: &ScriptedWorker) -> String {
    let id = submit_id(h).await;
    let now = h.now();
    let (unit, interaction) = await_records(
        TENANT,
        &id,
        1,
        "unit-r",
        "int-r",
        "corr-r",
        now,
        now + 600_000,
    );
    w.answer(200, waiting_answer(&unit, &interaction));
    h.process(&item(&id)).await;
    let done = h
        .complete_body(json!({"interactionId": "int-r", "responsePayload": payload_envelope("java.lang.String", "\"yes\""), "actor": "kitchen"}))
        .await;
    assert_eq!(done.ok()["duplicate"], false);
    h.queue.drain();
    w.answer(200, failed_answer(NON_RETRYABLE, "cannot finalize"));
    h.process(&item(&id)).await;
    let r = h.record(&id).await.unwrap();
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.current_step_index, 2);
    assert_eq!(r.await_unit_id.as_deref(), Some("unit-r"));
    id
}

#[tokio::test]
async fn red_01_redrive_of_dlq_without_expected_version_uses_the_current_version() {
    let (h, w) = scripted().await;
    let id = dlq(&h, &w).await;
    let before = h.record(&id).await.unwrap();
    assert_eq!(before.version, 3);
    h.clock.advance(1_000);
    let now = h.now();
    let r = h.redrive(&id, None).await;
    let v = r.ok();
    let names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "tenantId",
            "executionId",
            "previousStatus",
            "status",
            "version",
            "currentStepIndex",
            "attempt",
            "pipelineId",
            "contractVersion",
            "releaseVersion",
            "updatedAtEpochMs",
            "reason",
            "actor"
        ]
    );
    assert_eq!(
        *v,
        json!({
            "tenantId": "acme", "executionId": id, "previousStatus": "DLQ", "status": "QUEUED",
            "version": 4, "currentStepIndex": 0, "attempt": 1,
            "pipelineId": "restaurant-approval", "contractVersion": "sha256:4be1f0c27a9d",
            "releaseVersion": "2025.01.0", "updatedAtEpochMs": now,
            "reason": "operator", "actor": "admin"
        })
    );
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Queued);
    assert_eq!(
        (rec.version, rec.attempt),
        (before.version + 1, before.attempt + 1)
    );
    assert_eq!(
        rec.last_transition_key.as_deref(),
        Some(format!("redrive:{id}:3").as_str())
    );
    assert_eq!(rec.next_due_epoch_ms, Some(now));
    let events = h.history(&id).await;
    assert_eq!(events.len(), 5);
    let e = &events[4];
    assert_eq!(
        (
            &e["version"],
            &e["type"],
            &e["previousStatus"],
            &e["status"]
        ),
        (
            &json!(4),
            &json!("REDRIVEN"),
            &json!("DLQ"),
            &json!("QUEUED")
        )
    );
    assert_eq!(e["transitionKey"], format!("redrive:{id}:3"));
    assert_eq!(
        (&e["reason"], &e["actor"]),
        (&json!("operator"), &json!("admin"))
    );
    assert_eq!(e["attempt"], 1);
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    // The re-driven execution runs again with the new attempt.
    w.answer(200, completed_answer(json!([])));
    h.process(&item(&id)).await;
    let sent = w.requests.lock().unwrap().last().unwrap().clone();
    assert_eq!(sent["transitionKey"], format!("{id}:0:1"));
    assert_eq!(
        h.record(&id).await.unwrap().status,
        ExecutionStatus::Succeeded
    );
}

#[tokio::test]
async fn red_02_failed_needs_allow_failed() {
    let (h, w) = scripted().await;
    let id = failed(&h, &w).await;
    let before = h.record(&id).await.unwrap();
    for body in [
        None,
        Some(json!({"allowFailed": false})),
        Some(json!({"expectedVersion": 2})),
    ] {
        let r = h.redrive(&id, body).await;
        r.err(409, "EXECUTION_NOT_REDRIVABLE");
        assert_eq!(
            r.body["message"],
            format!("Execution {id} cannot be re-driven from status FAILED")
        );
    }
    assert_unchanged(&h, &id, &before).await;
    let r = h.redrive(&id, Some(json!({"allowFailed": true}))).await;
    assert_eq!(r.ok()["previousStatus"], "FAILED");
    assert_eq!(
        (&r.body["version"], &r.body["attempt"]),
        (&json!(3), &json!(1))
    );
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Queued);
    assert_eq!(
        rec.last_transition_key.as_deref(),
        Some(format!("redrive:{id}:2").as_str())
    );
    assert_eq!(h.history(&id).await.last().unwrap()["type"], "REDRIVEN");
    assert_eq!(h.drain_queue(), vec![(id, 0)]);
}

#[tokio::test]
async fn red_03_non_terminal_status_is_not_redrivable() {
    let (h, w) = scripted().await;
    // QUEUED
    let queued = submit_id(&h).await;
    // RUNNING (a live lease)
    let running = submit_id(&h).await;
    let r = h.record(&running).await.unwrap();
    let (claimed, _) = r.claim(h.now(), "dispatch-x", 60_000);
    h.force_write(&claimed, EventType::Claimed).await;
    // WAIT_RETRY
    let retry = submit_id(&h).await;
    w.answer(503, json!({}));
    h.process(&item(&retry)).await;
    h.queue.drain();
    // WAITING_EXTERNAL
    let waiting = submit_id(&h).await;
    let now = h.now();
    let (u, i) = await_records(
        TENANT,
        &waiting,
        1,
        "unit-w",
        "int-w",
        "corr-w",
        now,
        now + 600_000,
    );
    w.answer(200, waiting_answer(&u, &i));
    h.process(&item(&waiting)).await;
    // SUCCEEDED (terminal, but not a failure)
    let done = submit_id(&h).await;
    w.answer(200, completed_answer(json!([])));
    h.process(&item(&done)).await;
    h.queue.drain();
    for (id, status) in [
        (&queued, "QUEUED"),
        (&running, "RUNNING"),
        (&retry, "WAIT_RETRY"),
        (&waiting, "WAITING_EXTERNAL"),
        (&done, "SUCCEEDED"),
    ] {
        let before = h.record(id).await.unwrap();
        assert_eq!(before.status.as_str(), status);
        for body in [
            None,
            Some(json!({"allowFailed": true, "expectedVersion": before.version})),
        ] {
            let r = h.redrive(id, body).await;
            r.err(409, "EXECUTION_NOT_REDRIVABLE");
            assert_eq!(
                r.body["message"],
                format!("Execution {id} cannot be re-driven from status {status}")
            );
        }
        assert_unchanged(&h, id, &before).await;
    }
}

#[tokio::test]
async fn red_04_stale_expected_version_is_version_mismatch() {
    let (h, w) = scripted().await;
    let id = submit_id(&h).await;
    // Two retries, then a non-retryable failure: FAILED at version 6.
    w.answer(503, json!({}));
    w.answer(503, json!({}));
    w.answer(200, failed_answer(NON_RETRYABLE, "bad order"));
    h.process(&item(&id)).await;
    h.clock.advance(10_000);
    h.process(&item(&id)).await;
    h.clock.advance(20_000);
    h.process(&item(&id)).await;
    h.queue.drain();
    let rec = h.record(&id).await.unwrap();
    assert_eq!(
        (rec.status, rec.version, rec.attempt),
        (ExecutionStatus::Failed, 6, 2)
    );
    to_dlq(&h, &id).await; // version 7
    let before = h.record(&id).await.unwrap();
    for stale in [6, 8, 0] {
        let r = h
            .redrive(&id, Some(json!({"expectedVersion": stale})))
            .await;
        r.err(409, "VERSION_MISMATCH");
        assert_eq!(
            r.body["message"],
            format!("Execution {id} version mismatch: expected {stale} but current version is 7")
        );
    }
    assert_unchanged(&h, &id, &before).await;
    let r = h.redrive(&id, Some(json!({"expectedVersion": 7}))).await;
    assert_eq!(
        (&r.ok()["version"], &r.body["attempt"]),
        (&json!(8), &json!(3))
    );
    assert_eq!(
        h.record(&id).await.unwrap().last_transition_key.as_deref(),
        Some(format!("redrive:{id}:7").as_str())
    );
}

#[tokio::test]
async fn red_05_a_lost_conditional_write_is_concurrent_modification() {
    let (h, w) = scripted().await;
    let spy = Arc::new(SpyExecutionStore::new(h.executions.clone()));
    let mut deps = h.deps.clone();
    deps.executions = spy.clone();
    let router = h.router_with(deps);
    let id = dlq(&h, &w).await;
    let before = h.record(&id).await.unwrap();
    for body in [None, Some(json!({"expectedVersion": 3}))] {
        spy.lose_updates.store(1, Ordering::SeqCst);
        let r = call_on(&router, "POST", &redrive_path(TENANT, &id), ADMIN, body).await;
        r.err(409, "CONCURRENT_MODIFICATION");
        assert_eq!(
            r.body["message"],
            format!("Execution {id} changed before re-drive could be admitted")
        );
        assert_eq!(
            spy.lose_updates.load(Ordering::SeqCst),
            0,
            "no write attempted"
        );
    }
    assert_unchanged(&h, &id, &before).await;
}

#[tokio::test]
async fn red_06_missing_execution_is_404_and_writes_nothing() {
    let (h, w) = scripted().await;
    let id = dlq(&h, &w).await;
    let before = h.record(&id).await.unwrap();
    let unknown = "00000000-0000-4000-8000-000000000000";
    let r = h.redrive(unknown, Some(json!({"allowFailed": true}))).await;
    r.err(404, "EXECUTION_NOT_FOUND");
    assert_eq!(r.body["message"], format!("Execution not found: {unknown}"));
    // Another tenant's execution.
    let r = h
        .call("POST", &redrive_path("globex", &id), ADMIN, None)
        .await;
    r.err(404, "EXECUTION_NOT_FOUND");
    assert_unchanged(&h, &id, &before).await;
    assert!(h
        .all_records()
        .await
        .iter()
        .all(|r| r.execution_id != unknown));
    // An expired one.
    h.clock.set(before.ttl_epoch_s * 1000);
    h.redrive(&id, None).await.err(404, "EXECUTION_NOT_FOUND");
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn red_07_step_await_input_and_identity_are_kept_result_error_and_lease_cleared() {
    let (h, w) = scripted().await;
    let id = failed_after_resume(&h, &w).await;
    // A DLQ record with leftovers the re-drive must clear.
    let mut dirty = h.record(&id).await.unwrap();
    dirty.version += 1;
    dirty.status = ExecutionStatus::Dlq;
    dirty.lease_owner = Some("dispatch-stale".into());
    dirty.lease_expires_epoch_ms = h.now() + 5_000;
    dirty.result_payload = Some(vec![RawValue::from_string(
        payload_envelope("java.lang.String", "\"old\"").to_string(),
    )
    .unwrap()]);
    dirty.next_due_epoch_ms = Some(h.now() - 50_000);
    h.force_write(&dirty, EventType::Failed).await;
    let before = h.record(&id).await.unwrap();
    assert!(before.error_code.is_some());
    h.clock.advance(2_000);
    let now = h.now();
    let r = h.redrive(&id, None).await;
    assert_eq!(r.ok()["currentStepIndex"], 2);
    let after = h.record(&id).await.unwrap();
    // Kept.
    assert_eq!(after.current_step_index, 2);
    assert_eq!(after.await_unit_id.as_deref(), Some("unit-r"));
    assert_eq!(after.input_payload.get(), before.input_payload.get());
    assert_eq!(
        (
            &after.pipeline_id,
            &after.contract_version,
            &after.release_version
        ),
        (
            &before.pipeline_id,
            &before.contract_version,
            &before.release_version
        )
    );
    assert_eq!(after.execution_key, before.execution_key);
    assert_eq!(after.input_hash, before.input_hash);
    assert_eq!(after.result_shape, before.result_shape);
    assert_eq!(after.created_at_epoch_ms, before.created_at_epoch_ms);
    assert_eq!(after.ttl_epoch_s, before.ttl_epoch_s);
    // Cleared; due now.
    assert!(after.result_payload.is_none());
    assert_eq!(
        (after.error_code.as_deref(), after.error_message.as_deref()),
        (None, None)
    );
    assert_eq!(
        (after.lease_owner.as_deref(), after.lease_expires_epoch_ms),
        (None, 0)
    );
    assert_eq!(after.next_due_epoch_ms, Some(now));
    assert_eq!(after.updated_at_epoch_ms, now);
    assert_eq!(after.attempt, before.attempt + 1);
    let st = h.status(&id).await;
    assert_eq!(
        (&st["errorCode"], &st["nextDueAtEpochMs"]),
        (&Value::Null, &json!(now))
    );
}

#[tokio::test]
async fn red_08_reason_and_actor_are_trimmed_cut_defaulted_and_recorded() {
    let (h, w) = scripted().await;
    let smile = "😀";
    let cases: Vec<(Value, String, String)> = vec![
        (
            json!({"reason": "  disk full  ", "actor": "  oncall-alice  "}),
            "disk full".into(),
            "oncall-alice".into(),
        ),
        (
            json!({"reason": smile.repeat(81)}),
            smile.repeat(80),
            "admin".into(),
        ),
        (
            json!({"reason": "x".repeat(100)}),
            "x".repeat(80),
            "admin".into(),
        ),
        (
            json!({"reason": format!("{}{smile}{smile}", "é".repeat(79))}),
            format!("{}{smile}", "é".repeat(79)),
            "admin".into(),
        ),
        (
            json!({"reason": "   ", "actor": " "}),
            "operator".into(),
            "admin".into(),
        ),
        (
            json!({"reason": null, "actor": null}),
            "operator".into(),
            "admin".into(),
        ),
        (
            json!({"actor": "é".repeat(128)}),
            "operator".into(),
            "é".repeat(128),
        ),
    ];
    for (body, reason, actor) in cases {
        let id = dlq(&h, &w).await;
        let r = h.redrive(&id, Some(body.clone())).await;
        let v = r.ok();
        assert_eq!(
            (&v["reason"], &v["actor"]),
            (&json!(reason), &json!(actor)),
            "{body}"
        );
        let e = h.history(&id).await.last().unwrap().clone();
        assert_eq!(e["type"], "REDRIVEN");
        assert_eq!((&e["reason"], &e["actor"]), (&json!(reason), &json!(actor)));
        // The transition key does not depend on the reason.
        assert_eq!(e["transitionKey"], format!("redrive:{id}:3"));
        assert_eq!(
            h.record(&id).await.unwrap().last_transition_key.as_deref(),
            Some(format!("redrive:{id}:3").as_str())
        );
        h.queue.drain();
    }
    // An over-long actor is refused, with nothing written.
    let id = dlq(&h, &w).await;
    let before = h.record(&id).await.unwrap();
    h.redrive(&id, Some(json!({"actor": "é".repeat(129)})))
        .await
        .err(400, "INVALID_FIELD");
    assert_unchanged(&h, &id, &before).await;
}

#[tokio::test]
async fn red_09_no_body_empty_body_empty_object_and_null_mean_defaults() {
    let (h, w) = scripted().await;
    let cases: [(Option<&str>, Option<&str>); 6] = [
        (None, None),
        (None, Some("application/json")),
        (Some(""), Some("application/json")),
        (Some("{}"), Some("application/json")),
        (Some("null"), Some("application/json")),
        (Some("null"), None),
    ];
    for (body, ct) in cases {
        let id = dlq(&h, &w).await;
        let r = h
            .call_raw("POST", &redrive_path(TENANT, &id), ADMIN, body, ct)
            .await;
        assert_eq!(r.status, 200, "{body:?} {ct:?}: {}", r.text);
        let v: Value = serde_json::from_str(&r.text).unwrap();
        assert_eq!(
            (
                &v["previousStatus"],
                &v["reason"],
                &v["actor"],
                &v["version"]
            ),
            (
                &json!("DLQ"),
                &json!("operator"),
                &json!("admin"),
                &json!(4)
            )
        );
        assert_eq!(h.history(&id).await.last().unwrap()["reason"], "operator");
        assert_eq!(h.drain_queue(), vec![(id, 0)]);
    }
    // Defaults include allowFailed: false.
    let id = failed(&h, &w).await;
    let r = h
        .call_raw(
            "POST",
            &redrive_path(TENANT, &id),
            ADMIN,
            Some("null"),
            Some("application/json"),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("EXECUTION_NOT_REDRIVABLE"));
}

#[tokio::test]
async fn red_10_an_enqueue_failure_after_the_write_still_answers_200() {
    let (h, w) = scripted().await;
    let failing = Arc::new(FailingQueue::default());
    let mut deps = h.deps.clone();
    deps.queue = failing.clone();
    let router = h.router_with(deps);
    let id = dlq(&h, &w).await;
    let r = call_on(&router, "POST", &redrive_path(TENANT, &id), ADMIN, None).await;
    assert_eq!(r.ok()["status"], "QUEUED");
    assert_eq!(failing.attempts.load(Ordering::SeqCst), 1);
    let rec = h.record(&id).await.unwrap();
    assert_eq!((rec.status, rec.version), (ExecutionStatus::Queued, 4));
    assert_eq!(h.history(&id).await.last().unwrap()["type"], "REDRIVEN");
    assert!(h.queue.is_empty());
    // The sweep recovers the lost work item.
    let s = tpf_core::actions::sweep_once::run(&h.deps, 100).await;
    assert_eq!(s.enqueued, 1);
    assert_eq!(h.drain_queue(), vec![(id, 0)]);
}

#[tokio::test]
async fn red_11_a_repeated_redrive_with_the_same_expected_version_replays() {
    let (h, w) = scripted().await;
    let id = dlq(&h, &w).await;
    let body = json!({"expectedVersion": 3, "reason": "incident 42", "actor": "oncall-alice"});
    let first = h.redrive(&id, Some(body.clone())).await.ok().clone();
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    let after = h.record(&id).await.unwrap();
    h.clock.advance(5_000);
    // Same request, and even another reason: the stored result, no write.
    for b in [
        body.clone(),
        json!({"expectedVersion": 3, "reason": "other", "allowFailed": true}),
    ] {
        let again = h.redrive(&id, Some(b)).await;
        assert_eq!(*again.ok(), first);
        assert_unchanged(&h, &id, &after).await;
    }
    // Without expectedVersion a retry gets the 409 of the current state.
    h.redrive(&id, None)
        .await
        .err(409, "EXECUTION_NOT_REDRIVABLE");
    // Still a replay after the execution moved on.
    w.answer(200, failed_answer(NON_RETRYABLE, "again"));
    h.process(&item(&id)).await;
    let moved = h.record(&id).await.unwrap();
    assert_eq!(moved.status, ExecutionStatus::Failed);
    assert_eq!(*h.redrive(&id, Some(body)).await.ok(), first);
    assert_unchanged(&h, &id, &moved).await;
}

#[tokio::test]
async fn red_12_an_await_failure_is_not_redrivable() {
    let (h, w) = scripted().await;
    // FAILED with AWAIT_TIMEOUT: a completion after the deadline.
    let id = submit_id(&h).await;
    let now = h.now();
    let (u, i) = await_records(
        TENANT,
        &id,
        1,
        "unit-t",
        "int-t",
        "corr-t",
        now,
        now + 60_000,
    );
    w.answer(200, waiting_answer(&u, &i));
    h.process(&item(&id)).await;
    h.clock.advance(60_000);
    h.complete_body(
        json!({"interactionId": "int-t", "responsePayload": payload_envelope("null", "null")}),
    )
    .await
    .err(409, "INTERACTION_TIMED_OUT");
    let before = h.record(&id).await.unwrap();
    assert_eq!(
        (before.status, before.error_code.as_deref()),
        (ExecutionStatus::Failed, Some("AWAIT_TIMEOUT"))
    );
    for body in [
        json!({"allowFailed": true}),
        json!({"allowFailed": true, "expectedVersion": before.version}),
    ] {
        let r = h.redrive(&id, Some(body)).await;
        r.err(409, "EXECUTION_NOT_REDRIVABLE");
        assert!(r.body["message"].as_str().unwrap().contains("await"));
    }
    assert_unchanged(&h, &id, &before).await;
    // DLQ records carrying the other await-failure codes.
    for code in [
        "AWAIT_FAILED",
        "AWAIT_CANCELLED",
        "AWAIT_EXPIRED",
        "AWAIT_TIMEOUT",
    ] {
        let id = failed(&h, &w).await;
        let mut next = h.record(&id).await.unwrap();
        next.version += 1;
        next.status = ExecutionStatus::Dlq;
        next.error_code = Some(code.into());
        h.force_write(&next, EventType::Failed).await;
        h.redrive(&id, None)
            .await
            .err(409, "EXECUTION_NOT_REDRIVABLE");
        assert_unchanged(&h, &id, &next).await;
    }
}

#[tokio::test]
async fn red_13_redrive_after_a_resumed_failure_reruns_the_step_after_the_await_with_the_same_input(
) {
    let (h, w) = scripted().await;
    let id = failed_after_resume(&h, &w).await;
    let r = h.redrive(&id, Some(json!({"allowFailed": true}))).await;
    assert_eq!(r.ok()["currentStepIndex"], 2);
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    w.answer(
        200,
        completed_answer(json!([payload_envelope("java.lang.String", "\"done\"")])),
    );
    h.process(&item(&id)).await;
    let sent = w.requests.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    let (failed_run, rerun) = (&sent[1], &sent[2]);
    for s in [failed_run, rerun] {
        assert_eq!(s["currentStepIndex"], 2);
        assert_eq!(s["payloadTypeId"], "org.example.Decision");
        assert_eq!(s["payload"], "\"yes\"");
    }
    assert_eq!(failed_run["transitionKey"], format!("{id}:2:0"));
    assert_eq!(rerun["transitionKey"], format!("{id}:2:1"));
    assert_eq!(rerun["attempt"], 1);
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Succeeded);
    let types: Vec<String> = h
        .history(&id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "SUBMITTED",
            "CLAIMED",
            "WAITING_EXTERNAL",
            "RESUMED",
            "CLAIMED",
            "FAILED",
            "REDRIVEN",
            "CLAIMED",
            "SUCCEEDED"
        ]
    );
}

#[tokio::test]
async fn red_14_the_control_plane_token_is_refused_on_the_redrive_route() {
    let (h, w) = scripted().await;
    let id = dlq(&h, &w).await;
    let before = h.record(&id).await.unwrap();
    for token in [CONTROL, "wrong"] {
        let r = h
            .call(
                "POST",
                &redrive_path(TENANT, &id),
                token,
                Some(json!({"allowFailed": true})),
            )
            .await;
        r.err(401, "UNAUTHORIZED");
        assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"tpf\"");
    }
    assert_unchanged(&h, &id, &before).await;
    // The admin token is accepted.
    assert_eq!(h.redrive(&id, None).await.ok()["status"], "QUEUED");
}

/// A `FAILED` execution at version 0, written straight into the store (no
/// flow reaches it: every failure is at least one write after the submit).
async fn failed_at_version_zero(h: &Harness) -> ExecutionRecord {
    let id = submit_id(h).await;
    let mut r = h.record(&id).await.unwrap();
    r.execution_id = uuid::Uuid::new_v4().to_string();
    r.execution_key = format!(
        "19:restaurant-approval:9:2025.01.0:execution:{}",
        r.execution_id
    );
    r.status = ExecutionStatus::Failed;
    r.next_due_epoch_ms = None;
    r.error_code = Some("NonRetryableException".into());
    r.error_message = Some("bad order".into());
    let created = tpf_core::ports::ExecutionStore::create(
        h.executions.as_ref(),
        &r,
        &r.submitted_event(),
        None,
        h.now(),
    )
    .await
    .unwrap();
    assert_eq!(created, tpf_core::ports::CreateExecution::Created);
    r
}

#[tokio::test]
async fn com_06_expected_version_minus_zero_is_zero_unknown_members_ignored_null_absent() {
    let (h, w) = scripted().await;
    let path = |id: &str| redrive_path(TENANT, id);
    let raw = |id: String, text: &'static str| {
        let h = &h;
        async move {
            h.call_raw(
                "POST",
                &path(&id),
                ADMIN,
                Some(text),
                Some("application/json"),
            )
            .await
        }
    };

    // Against version 2, `-0` is the expected version 0.
    let id = failed(&h, &w).await;
    let before = h.record(&id).await.unwrap();
    let r = raw(id.clone(), r#"{"expectedVersion":-0,"allowFailed":true}"#).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let v: Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(v["code"], "VERSION_MISMATCH");
    assert_eq!(
        v["message"],
        format!("Execution {id} version mismatch: expected 0 but current version is 2")
    );
    assert_unchanged(&h, &id, &before).await;
    // A negative, fractional or string version is refused.
    for text in [
        r#"{"expectedVersion":-1,"allowFailed":true}"#,
        r#"{"expectedVersion":0.5,"allowFailed":true}"#,
        r#"{"expectedVersion":"0","allowFailed":true}"#,
    ] {
        let r = raw(id.clone(), text).await;
        assert_eq!(r.status, 400, "{text}: {}", r.text);
        let v: Value = serde_json::from_str(&r.text).unwrap();
        assert_eq!(v["code"], "INVALID_FIELD", "{text}");
        assert!(v["message"].as_str().unwrap().contains("expectedVersion"));
    }
    assert_unchanged(&h, &id, &before).await;

    // Against version 0, `-0` matches; unknown members (at any depth) are
    // ignored and `null` members take their defaults.
    let rec = failed_at_version_zero(&h).await;
    let id0 = rec.execution_id.clone();
    let r = raw(
        id0.clone(),
        r#"{"expectedVersion":-0,"allowFailed":true,"reason":null,"actor":null,"note":{"deep":[1,{"x":null}]},"priority":7}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first: Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(
        (
            &first["previousStatus"],
            &first["status"],
            &first["version"],
            &first["reason"],
            &first["actor"]
        ),
        (
            &json!("FAILED"),
            &json!("QUEUED"),
            &json!(1),
            &json!("operator"),
            &json!("admin")
        )
    );
    let after = h.record(&id0).await.unwrap();
    assert_eq!((after.status, after.version), (ExecutionStatus::Queued, 1));
    assert_eq!(
        after.last_transition_key.as_deref(),
        Some(format!("redrive:{id0}:0").as_str())
    );
    let events = h.history_of(&id0).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event_type, EventType::Redriven);
    assert_eq!(h.drain_queue(), vec![(id0.clone(), 0)]);
    // A retry with `-0` (and no allowFailed) is the replay of version 0.
    let r = raw(id0.clone(), r#"{"expectedVersion":-0}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(serde_json::from_str::<Value>(&r.text).unwrap(), first);
    assert_unchanged(&h, &id0, &after).await;
}

#[tokio::test]
async fn com_09_an_actor_of_128_astral_characters_is_accepted_129_refused() {
    let (h, w) = scripted().await;
    let smile = "😀";
    // 128 U+1F600 are 512 UTF-8 bytes and 256 UTF-16 units: still 128.
    for actor in [smile.repeat(128), format!("  {}\t", smile.repeat(128))] {
        let id = dlq(&h, &w).await;
        let r = h.redrive(&id, Some(json!({"actor": actor}))).await;
        assert_eq!(r.ok()["actor"], json!(smile.repeat(128)));
        let e = h.history_of(&id).await.last().unwrap().clone();
        assert_eq!(e.event_type, EventType::Redriven);
        assert_eq!(e.actor.as_deref(), Some(smile.repeat(128).as_str()));
        assert_eq!(
            h.history(&id).await.last().unwrap()["actor"],
            json!(smile.repeat(128))
        );
        h.queue.drain();
    }
    let id = dlq(&h, &w).await;
    let before = h.record(&id).await.unwrap();
    for actor in [smile.repeat(129), format!("{}é", smile.repeat(128))] {
        let r = h.redrive(&id, Some(json!({"actor": actor}))).await;
        r.err(400, "INVALID_FIELD");
        assert!(r.body["message"].as_str().unwrap().contains("actor"));
    }
    assert_unchanged(&h, &id, &before).await;
}
