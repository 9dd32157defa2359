//! `process_work_item` (EXECUTION.md §5.2, §6, §7; checklist WORK-01..16):
//! the engine over memory stores, calling real HTTP workers (scripted,
//! closure-served or the example restaurant worker).

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tpf_core::actions::process_work_item;
use tpf_core::domain::execution::{EventType, ExecutionStatus};
use tpf_core::domain::worker_protocol::{verify_signature, EXECUTE_PATH};
use tpf_core::ports::{Clock, ExecutionStore};
use tpf_tests::*;

/// A `java.lang.String` output envelope.
fn out(text: &str) -> Value {
    envelope("java.lang.String", &json!(text).to_string())
}

/// The §4.6 / API.md §2.5 completion envelope (`approved`, `note`, `score`).
fn approval_map() -> Value {
    let item = |t: &str, p: &str| envelope(t, p);
    let items = json!({
        "approved": item("java.lang.Boolean", "true"),
        "note": item("java.lang.String", "\"Looks good\""),
        "score": item("java.lang.Long", "7"),
    });
    envelope("java.util.Map", &json!({ "items": items }).to_string())
}

const COMMAND_MEMBERS: [&str; 15] = [
    "tenantId",
    "executionId",
    "pipelineId",
    "contractVersion",
    "releaseVersion",
    "currentStepIndex",
    "stopBeforeStepIndex",
    "attempt",
    "resultShape",
    "executionVersion",
    "transitionKey",
    "traceId",
    "payloadTypeId",
    "payloadEncoding",
    "payload",
];

fn types(events: &[tpf_core::domain::execution::HistoryEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

#[tokio::test]
async fn work_01_claim_call_commit_success_with_events() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    w.answer(200, worker_completed(json!([out("done")])));
    let id = h.submit_new().await;
    let submitted = h.must_record(&id).await;
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::Succeeded)]
    );

    // One worker call with the command of §7.3.
    let calls = w.received();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    let key = format!("{id}:0:0");
    assert_eq!(c["transitionKey"], key.as_str());
    assert_eq!(c["traceId"], key.as_str());
    assert_eq!(c["tenantId"], TENANT);
    assert_eq!(c["executionId"], id.as_str());
    assert_eq!(c["pipelineId"], submitted.pipeline_id.as_str());
    assert_eq!(c["contractVersion"], submitted.contract_version.as_str());
    assert_eq!(c["releaseVersion"], submitted.release_version.as_str());
    assert_eq!(c["currentStepIndex"], 0);
    assert_eq!(c["stopBeforeStepIndex"], -1);
    assert_eq!(c["attempt"], 0);
    assert_eq!(c["resultShape"], "SINGLE");
    assert_eq!(c["executionVersion"], 1, "the version the claim returned");
    assert_eq!(c["payloadTypeId"], SNAPSHOT_TYPE);
    assert_eq!(c["payloadEncoding"], ENC);
    assert_eq!(
        c["payload"].as_str().unwrap(),
        submitted.input_payload.get(),
        "the stored snapshot, compact"
    );

    // History: SUBMITTED, CLAIMED, SUCCEEDED with gapless versions.
    let events = h.events(&id).await;
    assert_eq!(
        types(&events),
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::Succeeded
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let claimed = &events[1];
    assert_eq!(claimed.previous_status, Some(ExecutionStatus::Queued));
    assert_eq!(claimed.status, ExecutionStatus::Running);
    assert_eq!(claimed.transition_key.as_deref(), Some(key.as_str()));
    let owner = claimed.lease_owner.as_deref().unwrap();
    let uuid = owner.strip_prefix("dispatch-").expect("dispatch-<uuid>");
    assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 4);
    let done = &events[2];
    assert_eq!(done.previous_status, Some(ExecutionStatus::Running));
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.transition_key.as_deref(), Some(key.as_str()));
    assert_eq!(done.worker_id.as_deref(), Some(SCRIPTED_ID));

    // The record after T3.
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert_eq!(r.version, 2);
    assert_eq!(
        (r.lease_owner.as_deref(), r.lease_expires_epoch_ms),
        (None, 0)
    );
    assert_eq!(r.last_transition_key.as_deref(), Some(key.as_str()));
    assert_eq!(r.next_due_epoch_ms, Some(h.clock_ms()));
    assert_eq!(r.current_step_index, 0);
    assert_eq!(
        (r.error_code.as_deref(), r.await_unit_id.as_deref()),
        (None, None)
    );
    let result: Vec<String> = r
        .result_payload
        .unwrap()
        .iter()
        .map(|o| o.get().to_string())
        .collect();
    assert_eq!(result, [out("done").to_string()]);
    assert!(h.queue.is_empty());
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test]
async fn work_02_command_has_exactly_the_fifteen_members_in_order() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let id = h.submit_new().await;
    let a = AwaitSpec::new(&id, 1, h.clock_ms());
    w.answer(200, a.waiting());
    w.answer(200, worker_completed(json!([])));
    h.drive().await;
    h.complete_json(json!({"interactionId": a.interaction_id, "responsePayload": approval_map()}))
        .await
        .ok();
    h.drive().await;
    assert_eq!(h.must_record(&id).await.status, ExecutionStatus::Succeeded);
    let calls = w.received();
    assert_eq!(calls.len(), 2, "a fresh and a resumed transition");
    for c in &calls {
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, COMMAND_MEMBERS, "{c}");
        for m in COMMAND_MEMBERS {
            assert!(!c[m].is_null(), "{m} is always present");
        }
    }
}

#[tokio::test]
async fn work_03_second_delivery_while_leased_or_after_commit_does_nothing() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // While another dispatcher holds the lease.
    let id = h.submit_new().await;
    let item = work_item(&id);
    h.queue.drain();
    h.claim_as(&id, "dispatch-other").await;
    assert_eq!(h.process(&item).await, Processed::NotClaimed);
    assert!(w.received().is_empty());
    assert_eq!(h.events(&id).await.len(), 2);
    assert_eq!(
        h.must_record(&id).await.lease_owner.as_deref(),
        Some("dispatch-other")
    );
    // After that dispatcher committed.
    h.apply(&id, |r, now| r.succeed(now, vec![], Some("elsewhere")))
        .await;
    assert_eq!(h.process(&item).await, Processed::NotClaimed);
    assert!(w.received().is_empty());
    assert_eq!(h.events(&id).await.len(), 3);

    // The same message delivered twice around a normal run.
    w.answer(200, worker_completed(json!([out("x")])));
    let id2 = h.submit_new().await;
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::Succeeded)]
    );
    let before = h.must_record(&id2).await;
    assert_eq!(h.process(&work_item(&id2)).await, Processed::NotClaimed);
    assert_eq!(h.must_record(&id2).await.version, before.version);
    assert_eq!(h.events(&id2).await.len(), 3);
    assert_eq!(w.received().len(), 1);
    assert!(h.queue.is_empty());
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test]
async fn work_04_early_message_requeues_with_remaining_delay() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    w.answer(503, json!({}));
    let id = h.submit_new().await;
    let item = work_item(&id);
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::WaitRetry)]
    );
    assert_eq!(h.queue.drain(), vec![(item.clone(), 10_000)]);
    let r = h.must_record(&id).await;
    let events = h.events(&id).await.len();

    // Delivered at once (e.g. an SQS delay capped): re-enqueued, no claim.
    assert_eq!(h.process(&item).await, Processed::Requeued(10_000));
    assert_eq!(h.queue.drain(), vec![(item.clone(), 10_000)]);
    h.clock.advance(4_000);
    assert_eq!(h.process(&item).await, Processed::Requeued(6_000));
    assert_eq!(h.queue.drain(), vec![(item.clone(), 6_000)]);
    let after = h.must_record(&id).await;
    assert_eq!(
        (after.version, after.status, after.lease_owner.clone()),
        (r.version, ExecutionStatus::WaitRetry, None)
    );
    assert_eq!(h.events(&id).await.len(), events);
    assert_eq!(w.received().len(), 1, "no second worker call");

    // Once due it runs.
    h.clock.advance(6_000);
    w.answer(200, worker_completed(json!([])));
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::Succeeded)
    );
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn work_05_malformed_message_is_acknowledged_and_dropped() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let id = h.submit_new().await;
    h.queue.drain();
    let before = h.must_record(&id).await;
    for msg in [
        "",
        "not json",
        "null",
        "[1,2]",
        "{}",
        r#"{"tenantId":"acme"}"#,
        r#"{"executionId":"x"}"#,
        r#"{"tenantId":"acme","executionId":42}"#,
        r#"{"tenantId":"a#b","executionId":"x"}"#,
        r#"{"tenantId":"acme","executionId":"../x"}"#,
        r#"{"tenantId":"acme","executionId":""}"#,
    ] {
        let got = process_work_item::run(&h.deps, msg).await.unwrap();
        assert_eq!(got, Processed::Dropped, "{msg:?}");
    }
    // A well-formed item for a missing execution is not malformed.
    let missing = serde_json::to_string(&work_item("no-such-execution")).unwrap();
    assert_eq!(
        process_work_item::run(&h.deps, &missing).await.unwrap(),
        Processed::NotClaimed
    );
    let after = h.must_record(&id).await;
    assert_eq!(
        (after.version, after.status),
        (before.version, before.status)
    );
    assert!(w.received().is_empty());
    assert!(h.queue.is_empty());
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test]
async fn work_06_remote_outputs_are_persisted_verbatim() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // White space, member order, an unknown member and number spellings
    // that any decode/re-encode would change.
    let raw = r#"{ "payloadTypeId" : "java.math.BigDecimal",  "extra": {"x" : 1.0e2, "y": "\u00e9"}, "payloadEncoding":"application/tpf-transition+json","payload":"27.50" }"#;
    w.answer_raw(
        200,
        &format!(r#"{{"outcome":"COMPLETED","outputPayloads":[{raw}],"awaitSuspension":null,"failure":null}}"#),
    );
    let id = h.submit_new().await;
    h.drive().await;
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    let stored = r.result_payload.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].get(), raw);
}

#[tokio::test]
async fn work_07_single_result_shape_allows_at_most_one_output() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // 0 outputs.
    w.answer(200, worker_completed(json!([])));
    let none = h.submit_new().await;
    h.drive().await;
    let r = h.must_record(&none).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert_eq!(r.result_payload.map(|v| v.len()), Some(0));
    // 1 output.
    w.answer(200, worker_completed(json!([out("a")])));
    let one = h.submit_new().await;
    h.drive().await;
    let r = h.must_record(&one).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert_eq!(r.result_payload.map(|v| v.len()), Some(1));
    // 2 outputs: non-retryable RESULT_SHAPE_VIOLATION.
    w.answer(200, worker_completed(json!([out("a"), out("b")])));
    let two = h.submit_new().await;
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::Failed)]
    );
    let r = h.must_record(&two).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error_code.as_deref(), Some("RESULT_SHAPE_VIOLATION"));
    assert_eq!(
        r.error_message.as_deref(),
        Some("produced 2 terminal items for SINGLE result shape")
    );
    assert_eq!((r.attempt, r.result_payload.is_none()), (0, true));
    let last = h.events(&two).await.pop().unwrap();
    assert_eq!(last.event_type, EventType::Failed);
    assert_eq!(last.terminal_reason.as_deref(), Some("non_retryable"));
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].execution_id, two);
    assert_eq!(dl[0].terminal_reason, "non_retryable");
    assert!(!dl[0].retryable);
    assert!(h.queue.is_empty(), "no retry");
    assert_eq!(w.received().len(), 3);
}

/// Registers and activates a one-step `ONE_TO_MANY` release (result shape
/// `MATERIALIZED_MULTI`) served by a worker at `url`; returns its pipeline.
async fn multi_release(h: &Harness, url: &str) -> String {
    let spec = demo_release::DemoSpec {
        pipeline_id: "multi-pipe".into(),
        contract_version: "v1".into(),
        release_version: "1.0.0".into(),
    };
    let mut contract = demo_release::contract(&spec);
    contract["steps"] = json!([{"index": 0, "kind": "step", "cardinality": "ONE_TO_MANY",
        "inputTypeId": "org.example.In", "outputTypeId": "org.example.Out"}]);
    let (artifact_id, digest) = h.activate_contract(&spec, &contract).await;
    let mut entry = h.entry_for("multi-w", url, &spec);
    entry.artifact_id = artifact_id;
    entry.artifact_digest = digest;
    h.store_worker(&entry).await;
    spec.pipeline_id
}

#[tokio::test]
async fn work_08_terminal_input_passthrough_makes_the_input_items_the_result() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let passthrough = json!({"outcome": "COMPLETED", "outputPayloads": [],
        "terminalInputPassthrough": true});
    // UNI: the snapshot's payload.
    w.answer(200, passthrough.clone());
    let id = h.submit_new().await;
    h.drive().await;
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    let snapshot: Value = serde_json::from_str(r.input_payload.get()).unwrap();
    let result = r.result_payload.unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].get(), snapshot["payload"].to_string());

    // MULTI: the snapshot's items, in order.
    let pipeline = multi_release(&h, &w.start().await).await;
    w.answer(200, passthrough);
    let list = envelope(
        "java.util.List",
        &json!({"items": [out("x"), out("y")]}).to_string(),
    );
    let sub = h
        .submit(json!({"pipelineId": pipeline, "inputShape": "MULTI", "inputPayload": list}))
        .await;
    let id = sub.ok()["executionId"].as_str().unwrap().to_string();
    h.drive().await;
    let r = h.must_record(&id).await;
    assert_eq!(
        r.status,
        ExecutionStatus::Succeeded,
        "{:?}",
        r.error_message
    );
    let result: Vec<String> = r
        .result_payload
        .unwrap()
        .iter()
        .map(|o| o.get().to_string())
        .collect();
    assert_eq!(result, [out("x").to_string(), out("y").to_string()]);
    assert_eq!(w.received().len(), 2);
}

#[tokio::test]
async fn work_09_resume_past_the_last_step_needs_no_worker_call() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let id = h.submit_new().await;
    // The await is the last step (3 of 4).
    let mut a = AwaitSpec::new(&id, 3, h.clock_ms());
    a.output_type = "org.example.Decision".into();
    w.answer(200, a.waiting());
    h.drive().await;
    assert_eq!(h.must_record(&id).await.current_step_index, 3);
    h.complete_json(json!({"interactionId": a.interaction_id, "responsePayload": approval_map(), "actor": "chef"}))
        .await
        .ok();
    let r = h.must_record(&id).await;
    assert_eq!(
        (r.status, r.current_step_index),
        (ExecutionStatus::Queued, 4)
    );

    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::Succeeded)]
    );
    assert_eq!(w.received().len(), 1, "no call for the resumed transition");
    let r = h.must_record(&id).await;
    let result: Vec<String> = r
        .result_payload
        .unwrap()
        .iter()
        .map(|o| o.get().to_string())
        .collect();
    assert_eq!(
        result,
        [
            r#"{"payloadTypeId":"org.example.Decision","payloadEncoding":"application/tpf-transition+json","payload":"{\"approved\":true,\"note\":\"Looks good\",\"score\":7}"}"#
        ]
    );
    assert_eq!(r.await_unit_id, None);
    assert_eq!(r.current_step_index, 4);
    let events = h.events(&id).await;
    assert_eq!(
        types(&events),
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::WaitingExternal,
            EventType::Resumed,
            EventType::Claimed,
            EventType::Succeeded
        ]
    );
    let last = events.last().unwrap();
    assert_eq!(last.worker_id, None);
    assert_eq!(
        last.transition_key.as_deref(),
        Some(format!("{id}:4:0").as_str())
    );
}

#[tokio::test]
async fn work_10_resumed_transition_sends_the_resume_envelope_at_await_step_plus_one() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let id = h.submit_new().await;
    let mut a = AwaitSpec::new(&id, 1, h.clock_ms());
    a.output_type = "org.pipelineframework.example.ApprovalDecision".into();
    w.answer(200, a.waiting());
    w.answer(200, worker_completed(json!([out("ok")])));
    h.drive().await;
    h.complete_json(
        json!({"interactionId": a.interaction_id, "responsePayload": approval_map(),
                      "idempotencyKey": "complete-1", "actor": "kitchen-tablet-3"}),
    )
    .await
    .ok();
    h.drive().await;
    assert_eq!(h.must_record(&id).await.status, ExecutionStatus::Succeeded);
    let calls = w.received();
    let c = &calls[1];
    assert_eq!(c["currentStepIndex"], 2);
    assert_eq!(
        c["payloadTypeId"],
        "org.pipelineframework.example.ApprovalDecision"
    );
    assert_eq!(c["payloadEncoding"], ENC);
    assert_eq!(
        c["payload"].as_str().unwrap(),
        r#"{"approved":true,"note":"Looks good","score":7}"#
    );
    assert_eq!(c["transitionKey"], format!("{id}:2:0"));
    assert_eq!(c["attempt"], 0);
    // 0 SUBMITTED, 1 CLAIMED, 2 WAITING_EXTERNAL, 3 RESUMED, 4 CLAIMED.
    assert_eq!(c["executionVersion"], 4);
}

#[tokio::test]
async fn work_11_waiting_external_imports_then_commits_t4_without_enqueue() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let id = h.submit_new().await;
    let a = AwaitSpec::new(&id, 2, h.clock_ms());
    w.answer(200, a.waiting());
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::WaitingExternal)]
    );
    // Imported records.
    let unit = h.unit_rec(&a.unit_id).await.expect("unit imported");
    assert_eq!(unit.status, "WAITING_EXTERNAL");
    assert_eq!(
        unit.primary_interaction_id.as_deref(),
        Some(a.interaction_id.as_str())
    );
    let i = h
        .interaction_rec(&a.interaction_id)
        .await
        .expect("interaction imported");
    assert_eq!(i.status, "DISPATCHED");
    assert_eq!(i.settle_due_epoch_ms, Some(a.deadline));
    assert_eq!(
        (
            i.completion_idempotency_key.clone(),
            i.completed_at_epoch_ms
        ),
        (None, None)
    );
    // T4 with the claimed version.
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::WaitingExternal);
    assert_eq!(r.version, 2);
    assert_eq!(r.current_step_index, 2);
    assert_eq!(r.await_unit_id.as_deref(), Some(a.unit_id.as_str()));
    assert_eq!(r.next_due_epoch_ms, None);
    assert_eq!(
        (r.lease_owner.as_deref(), r.lease_expires_epoch_ms),
        (None, 0)
    );
    assert_eq!(r.last_transition_key, Some(format!("{id}:0:0")));
    assert_eq!(h.status(&id).await["nextDueAtEpochMs"], Value::Null);
    let e = h.events(&id).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::WaitingExternal);
    assert_eq!(e.version, 2);
    assert_eq!(e.previous_status, Some(ExecutionStatus::Running));
    assert_eq!(e.step_index, 2);
    assert_eq!(e.unit_id.as_deref(), Some(a.unit_id.as_str()));
    assert_eq!(e.interaction_id.as_deref(), Some(a.interaction_id.as_str()));
    assert_eq!(e.worker_id.as_deref(), Some(SCRIPTED_ID));
    assert!(h.queue.is_empty(), "no enqueue after T4");
    assert!(h.dead_letters.all().is_empty());
}

/// A worker that, during each call, lets the caller's lease expire and has
/// another dispatcher take the execution over, then answers the next
/// scripted (status, body).
async fn thief_worker(h: &Harness, answers: Vec<(u16, String)>) {
    let answers = Arc::new(Mutex::new(answers));
    let store = h.executions.clone();
    let clock = h.clock.clone();
    let lease = h.deps.settings.lease_ms;
    let url = serve_worker_fn(move |call| {
        let (store, clock, answers) = (store.clone(), clock.clone(), answers.clone());
        async move {
            let cmd: Value = serde_json::from_slice(&call.body).unwrap();
            let id = cmd["executionId"].as_str().unwrap();
            clock.advance(lease + 1);
            let now = clock.now_ms();
            let r = store.get(TENANT, id, now).await.unwrap().unwrap();
            let (next, ev) = r.claim(now, "dispatch-thief", lease);
            store.update(&next, r.version, &ev, now).await.unwrap();
            answers.lock().unwrap().remove(0)
        }
    })
    .await;
    h.register_worker("thief", &url, &demo_release::DemoSpec::default())
        .await;
}

#[tokio::test]
async fn work_12_lost_commit_writes_nothing_further_and_publishes_nothing() {
    let h = Harness::new(Options {
        restaurant_worker: false,
        // The thief moves the clock a lease ahead per call.
        env: vec![("TPF_WORKER_LIFECYCLE_STALE_AFTER", "PT0S".into())],
    })
    .await;
    let now = h.clock_ms();
    // Submit through a worker that then drains, so that the thief is the
    // only eligible worker at dispatch.
    let helper = ScriptedWorker::default();
    let url = helper.start().await;
    h.register_worker("submit-only", &url, &demo_release::DemoSpec::default())
        .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(h.submit_new().await);
    }
    let mut gone = h.entry_for("submit-only", &url, &demo_release::DemoSpec::default());
    gone.draining_since_epoch_ms = now;
    h.store_worker(&gone).await;
    h.queue.drain();
    let a = AwaitSpec::new(&ids[1], 2, now);
    thief_worker(
        &h,
        vec![
            (200, worker_completed(json!([out("late")])).to_string()),
            (200, a.waiting().to_string()),
            (
                200,
                worker_failed(
                    "org.pipelineframework.step.NonRetryableException",
                    Some("no"),
                )
                .to_string(),
            ),
            (503, "{}".to_string()),
        ],
    )
    .await;
    for id in &ids {
        let got = h.process(&work_item(id)).await;
        assert_eq!(got, Processed::Lost, "{:?}", h.must_record(id).await);
        let events = h.events(id).await;
        assert_eq!(
            types(&events),
            [EventType::Submitted, EventType::Claimed, EventType::Claimed],
            "only the thief's claim follows"
        );
        let r = h.must_record(id).await;
        assert_eq!(r.status, ExecutionStatus::Running);
        assert_eq!(r.lease_owner.as_deref(), Some("dispatch-thief"));
        assert_eq!((r.version, r.attempt), (2, 0));
        assert!(r.result_payload.is_none() && r.error_code.is_none());
    }
    // T4 lost: the import happened (orphans for the sweep), nothing else.
    assert!(h.interaction_rec(&a.interaction_id).await.is_some());
    assert!(h.queue.is_empty(), "no retry enqueue after a lost T5");
    assert!(
        h.dead_letters.all().is_empty(),
        "no dead letter after a lost T6"
    );
}

#[tokio::test]
async fn work_13_expired_lease_claim_records_lease_expired_without_worker_call() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let id = h.submit_new().await;
    let item = work_item(&id);
    h.queue.drain();
    h.claim_as(&id, "dispatch-dead").await;
    let lease = h.deps.settings.lease_ms;
    h.clock.advance(lease - 1);
    assert_eq!(h.process(&item).await, Processed::NotClaimed, "lease live");
    h.clock.advance(1);
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::WaitRetry)
    );
    assert!(w.received().is_empty(), "the worker is not called");
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::WaitRetry);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(
        r.error_message.as_deref(),
        Some("previous dispatcher lease expired")
    );
    assert_eq!(r.next_due_epoch_ms, Some(h.clock_ms() + 10_000));
    assert_eq!(r.lease_owner, None);
    assert_eq!(r.last_transition_key, Some(format!("{id}:0:0")));
    let events = h.events(&id).await;
    assert_eq!(
        types(&events),
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::Claimed,
            EventType::RetryScheduled
        ]
    );
    assert_eq!(events[2].previous_status, Some(ExecutionStatus::Running));
    assert_ne!(events[2].lease_owner.as_deref(), Some("dispatch-dead"));
    assert_eq!(events[3].error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(h.queue.drain(), vec![(item.clone(), 10_000)]);
    assert!(h.dead_letters.all().is_empty());

    // The transition runs again with a new attempt.
    h.clock.advance(10_000);
    w.answer(200, worker_completed(json!([])));
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::Succeeded)
    );
    let calls = w.received();
    assert_eq!(calls[0]["attempt"], 1);
    assert_eq!(calls[0]["transitionKey"], format!("{id}:0:1"));
}

#[tokio::test]
async fn work_14_worker_chosen_among_eligible_healthy_records_of_the_pinned_release() {
    let h = Harness::new(Options {
        restaurant_worker: false,
        ..Default::default()
    })
    .await;
    let spec = demo_release::DemoSpec::default();
    let (good, bad) = (ScriptedWorker::default(), ScriptedWorker::default());
    let (ug, ub) = (good.start().await, bad.start().await);
    const RUNS: usize = 80;
    for _ in 0..RUNS {
        good.answer(200, worker_completed(json!([])));
    }
    let now = h.clock_ms();
    let stale_after = h.deps.stale_after_ms as i64;
    assert!(stale_after > 0);
    // Eligible records, all pointing at `good`.
    h.store_worker(&h.entry_for("good-plain", &ug, &spec)).await;
    let mut e = h.entry_for("good-blank-artifact", &ug, &spec);
    e.artifact_id = String::new();
    e.artifact_digest = String::new();
    h.store_worker(&e).await;
    let mut e = h.entry_for("good-upper-protocol", &ug, &spec);
    e.protocol = "REST".into();
    h.store_worker(&e).await;
    let mut e = h.entry_for("good-heartbeat-at-bound", &ug, &spec);
    e.last_heartbeat_at_epoch_ms = now - stale_after;
    h.store_worker(&e).await;
    let goods = [
        "good-plain",
        "good-blank-artifact",
        "good-upper-protocol",
        "good-heartbeat-at-bound",
    ];
    // Ineligible records, all pointing at `bad`.
    let mut e = h.entry_for("draining", &ub, &spec);
    e.draining_since_epoch_ms = now;
    h.store_worker(&e).await;
    let mut e = h.entry_for("stale", &ub, &spec);
    e.last_heartbeat_at_epoch_ms = now - stale_after - 1;
    h.store_worker(&e).await;
    let mut e = h.entry_for("other-release", &ub, &spec);
    e.release_version = "2025.02.0".into();
    h.store_worker(&e).await;
    let mut e = h.entry_for("other-contract", &ub, &spec);
    e.contract_version = "sha256:000000000000".into();
    h.store_worker(&e).await;
    let other_pipeline = demo_release::DemoSpec {
        pipeline_id: "other-pipeline".into(),
        ..spec.clone()
    };
    h.store_worker(&h.entry_for("other-pipeline", &ub, &other_pipeline))
        .await;
    let mut e = h.entry_for("artifact-id", &ub, &spec);
    e.artifact_id = "someone-else".into();
    h.store_worker(&e).await;
    let mut e = h.entry_for("artifact-digest", &ub, &spec);
    e.artifact_digest = format!("sha256:{}", "0".repeat(64));
    h.store_worker(&e).await;
    let mut e = h.entry_for("grpc", &ub, &spec);
    e.protocol = "grpc".into();
    h.store_worker(&e).await;
    let mut e = h.entry_for("lambda", &ub, &spec);
    e.protocol = "lambda".into();
    h.store_worker(&e).await;
    let mut e = h.entry_for("ftp-endpoint", "ftp://127.0.0.1/worker", &spec);
    e.endpoint = "ftp://127.0.0.1/worker".into();
    h.store_worker(&e).await;

    let mut chosen = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..RUNS {
        let id = h.submit_new().await;
        assert_eq!(
            h.drive().await,
            vec![Processed::Committed(ExecutionStatus::Succeeded)]
        );
        let last = h.events(&id).await.pop().unwrap();
        *chosen.entry(last.worker_id.unwrap()).or_default() += 1;
    }
    assert!(bad.received().is_empty(), "no ineligible worker was called");
    assert_eq!(good.received().len(), RUNS);
    let names: Vec<&str> = chosen.keys().map(String::as_str).collect();
    let mut expected = goods.to_vec();
    expected.sort();
    assert_eq!(names, expected, "chosen among all eligible: {chosen:?}");
}

#[tokio::test]
async fn work_15_no_eligible_worker_at_dispatch_is_retryable_no_healthy_worker() {
    let h = Harness::new(Options::default()).await;
    let spec = demo_release::DemoSpec::default();
    let id = h.submit_new().await;
    let item = work_item(&id);
    // Between submit and dispatch the only worker drains; a grpc one joins.
    let mut e = h.entry_for("kitchen-1", &h.worker_url, &spec);
    e.draining_since_epoch_ms = h.clock_ms();
    h.store_worker(&e).await;
    let mut e = h.entry_for("grpc-1", &h.worker_url, &spec);
    e.protocol = "grpc".into();
    h.store_worker(&e).await;
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::WaitRetry)]
    );
    let r = h.must_record(&id).await;
    assert_eq!(r.error_code.as_deref(), Some("NO_HEALTHY_WORKER"));
    let msg = r.error_message.unwrap();
    assert!(msg.contains("kitchen-1=DRAINING"), "{msg}");
    assert!(
        msg.contains("grpc-1=HEALTHY (protocol grpc not supported)"),
        "{msg}"
    );
    assert_eq!(r.attempt, 1);
    let e = h.events(&id).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::RetryScheduled);
    assert_eq!(e.error_code.as_deref(), Some("NO_HEALTHY_WORKER"));
    assert_eq!(h.queue.drain(), vec![(item, 10_000)]);
    assert!(h.dead_letters.all().is_empty());
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn work_16_request_is_signed_over_the_fixed_path_without_endpoint_prefix() {
    let h = Harness::new(Options::default()).await;
    let calls: Arc<Mutex<Vec<WorkerCall>>> = Default::default();
    let seen = calls.clone();
    let url = serve_worker_fn(move |call| {
        seen.lock().unwrap().push(call);
        async { (200, worker_completed(json!([])).to_string()) }
    })
    .await;
    // Take the example worker out of the choice; use a prefixed endpoint.
    let spec = demo_release::DemoSpec::default();
    let mut e = h.entry_for("kitchen-1", &h.worker_url, &spec);
    e.draining_since_epoch_ms = h.clock_ms();
    h.store_worker(&e).await;
    h.register_worker("prefixed", &format!("{url}/base/path/"), &spec)
        .await;
    let id = h.submit_new().await;
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::Succeeded)]
    );
    let call = calls.lock().unwrap()[0].clone();
    assert_eq!(call.path, format!("/base/path{EXECUTE_PATH}"));
    let header = |n: &str| call.headers.get(n).unwrap().to_str().unwrap().to_string();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("accept"), "application/json");
    let ts = header("x-tpf-worker-timestamp");
    let nonce = header("x-tpf-worker-nonce");
    let sig = header("x-tpf-worker-signature");
    let tsb = ts.as_bytes();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && tsb[4] == b'-' && tsb[10] == b'T' && tsb[19] == b'.',
        "{ts}"
    );
    let parsed = uuid::Uuid::parse_str(&nonce).unwrap();
    assert_eq!(
        (parsed.get_version_num(), nonce.to_lowercase()),
        (4, nonce.clone())
    );
    assert!(is_lower_hex(&sig, 64), "{sig}");
    assert!(verify_signature(
        SECRET,
        "POST",
        EXECUTE_PATH,
        &ts,
        &nonce,
        &call.body,
        &sig
    ));
    assert!(
        !verify_signature(SECRET, "POST", &call.path, &ts, &nonce, &call.body, &sig),
        "the prefix is not signed"
    );
    // The body is the compact command JSON the signature covers.
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body.to_string().as_bytes(), &call.body[..]);
    assert_eq!(body["executionId"], id.as_str());

    // The example worker verifies exactly this: a tampered body is refused,
    // the original accepted once, its replay refused.
    let client = reqwest::Client::new();
    let send = |b: Vec<u8>| {
        client
            .post(format!("{}{EXECUTE_PATH}", h.worker_url))
            .header("content-type", "application/json")
            .header("x-tpf-worker-timestamp", &ts)
            .header("x-tpf-worker-nonce", &nonce)
            .header("x-tpf-worker-signature", &sig)
            .body(b)
            .send()
    };
    let mut tampered = call.body.to_vec();
    let pos = tampered.iter().position(|b| *b == b'0').unwrap();
    tampered[pos] = b'1';
    assert_eq!(send(tampered).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        send(call.body.to_vec()).await.unwrap().status().as_u16(),
        200
    );
    assert_eq!(
        send(call.body.to_vec()).await.unwrap().status().as_u16(),
        401
    );
}

#[tokio::test]
async fn work_11_post_commit_check_follows_up_an_interaction_already_terminal() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // The snapshot's interaction already COMPLETED (the answer raced ahead):
    // T4, then the post-commit check releases the parent at once.
    let id = h.submit_new().await;
    let mut a = AwaitSpec::new(&id, 2, h.clock_ms());
    a.output_type = "org.example.Decision".into();
    let mut s = a.suspension();
    s["interactions"][0]["status"] = json!("COMPLETED");
    s["interactions"][0]["version"] = json!(3);
    s["interactions"][0]["actor"] = json!("early-bird");
    s["interactions"][0]["responsePayload"] = json!({"approved": false});
    w.answer(200, worker_waiting(s));
    w.answer(200, worker_completed(json!([])));
    assert_eq!(
        h.drive().await,
        vec![
            Processed::Committed(ExecutionStatus::WaitingExternal),
            Processed::Committed(ExecutionStatus::Succeeded)
        ]
    );
    let types_seen = types(&h.events(&id).await);
    assert_eq!(
        types_seen,
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::WaitingExternal,
            EventType::Resumed,
            EventType::Claimed,
            EventType::Succeeded
        ]
    );
    let calls = w.received();
    assert_eq!(calls[1]["currentStepIndex"], 3);
    assert_eq!(calls[1]["payload"], r#"{"approved":false}"#);
    let i = h.interaction_rec(&a.interaction_id).await.unwrap();
    assert_eq!(i.settle_due_epoch_ms, None, "settled by the follow-up");

    // Already TIMED_OUT: the parent fails with AWAIT_TIMEOUT right after T4.
    let id = h.submit_new().await;
    let b = AwaitSpec::new(&id, 2, h.clock_ms());
    let mut s = b.suspension();
    s["interactions"][0]["status"] = json!("TIMED_OUT");
    w.answer(200, worker_waiting(s));
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::WaitingExternal)]
    );
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error_code.as_deref(), Some("AWAIT_TIMEOUT"));
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].terminal_reason, "await_timeout");

    // Aborted interactions (FAILED, CANCELLED, EXPIRED): await_aborted.
    for (status, code) in [
        ("FAILED", "AWAIT_FAILED"),
        ("CANCELLED", "AWAIT_CANCELLED"),
        ("EXPIRED", "AWAIT_EXPIRED"),
    ] {
        let id = h.submit_new().await;
        let c = AwaitSpec::new(&id, 2, h.clock_ms());
        let mut s = c.suspension();
        s["interactions"][0]["status"] = json!(status);
        w.answer(200, worker_waiting(s));
        h.drive().await;
        let r = h.must_record(&id).await;
        assert_eq!(r.status, ExecutionStatus::Failed, "{status}");
        assert_eq!(r.error_code.as_deref(), Some(code));
        assert_eq!(
            r.error_message,
            Some(format!("Await interaction {status}: {}", c.interaction_id))
        );
        assert_eq!(r.last_transition_key, Some(format!("{id}:2:0")));
        let e = h.events(&id).await.pop().unwrap();
        assert_eq!(e.terminal_reason.as_deref(), Some("await_aborted"));
        let d = h.dead_letters.all().pop().unwrap();
        assert_eq!(
            (d.execution_id.as_str(), d.terminal_reason.as_str()),
            (id.as_str(), "await_aborted")
        );
        assert!(!d.retryable);
    }
    assert_eq!(h.dead_letters.all().len(), 4);
}

#[tokio::test]
async fn spec_5_2_step_4_missing_pinned_release_is_retryable_release_unavailable() {
    let (h, w) = Harness::with_scripted(vec![("TPF_MAX_RETRIES", "1".into())]).await;
    let model = h.submit_new().await;
    h.queue.drain();
    let now = h.clock_ms();
    let mut r = h.must_record(&model).await;
    r.execution_id = uuid::Uuid::new_v4().to_string();
    r.release_version = "9.9.9".into();
    let created = h
        .executions
        .create(&r, &r.submitted_event(), None, now)
        .await
        .unwrap();
    assert_eq!(created, tpf_core::ports::CreateExecution::Created);
    let item = work_item(&r.execution_id);
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::WaitRetry)
    );
    let got = h.must_record(&r.execution_id).await;
    assert_eq!(got.error_code.as_deref(), Some("RELEASE_UNAVAILABLE"));
    h.clock.advance(10_000);
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::Failed)
    );
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 1);
    assert_eq!(
        (dl[0].transport.as_str(), dl[0].platform.as_str()),
        ("UNKNOWN", "UNKNOWN"),
        "no contract to read"
    );
    assert_eq!(dl[0].terminal_reason, "retry_exhausted");
    assert!(w.received().is_empty());
}

#[tokio::test]
async fn spec_5_2_step_5_resume_without_a_completed_answer_is_await_resume_unavailable() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // Released (T7) although the interaction is still open.
    let id = h.submit_new().await;
    let a = AwaitSpec::new(&id, 2, h.clock_ms());
    w.answer(200, a.waiting());
    h.drive().await;
    let iid = a.interaction_id.clone();
    h.apply(&id, |r, now| r.release_await(now, 2, &iid, None))
        .await;
    assert_eq!(
        h.process(&work_item(&id)).await,
        Processed::Committed(ExecutionStatus::Failed)
    );
    let r = h.must_record(&id).await;
    assert_eq!(r.error_code.as_deref(), Some("AWAIT_RESUME_UNAVAILABLE"));
    assert_eq!((r.attempt, r.current_step_index), (0, 3));
    assert_eq!(w.received().len(), 1, "no call without an answer");
    let dl = h.dead_letters.all();
    assert_eq!(
        (dl.len(), dl[0].terminal_reason.as_str()),
        (1, "non_retryable")
    );
}

#[tokio::test]
async fn act_08_an_execution_keeps_its_pinned_release_through_retry_resume_and_redrive() {
    const NON_RETRYABLE: &str = "org.pipelineframework.step.NonRetryableException";
    let (h, old_worker) = Harness::with_scripted(vec![]).await;
    let a = h.submit_new().await;
    h.queue.drain();
    // The first attempt meets an overloaded worker: a retry is scheduled.
    old_worker.answer(503, json!({"message": "busy"}));
    assert_eq!(
        h.process(&work_item(&a)).await,
        Processed::Committed(ExecutionStatus::WaitRetry)
    );

    // A newer release is activated, with a worker of its own.
    let next = DemoSpec {
        release_version: "2025.02.0".into(),
        ..DemoSpec::default()
    };
    h.activate_demo_release(&next).await;
    let new_worker = ScriptedWorker::default();
    let new_url = new_worker.start().await;
    h.register_worker("w-2", &new_url, &next).await;
    // New submissions take the new release.
    let b = h.submit_new().await;
    assert_eq!(h.must_record(&b).await.release_version, "2025.02.0");
    new_worker.answer(200, worker_completed(json!([out("b done")])));

    // Retry: still the old release's worker; it suspends on an await.
    let now = h.now();
    let (unit, interaction) = await_records(
        TENANT,
        &a,
        1,
        "unit-a",
        "int-a",
        "corr-a",
        now,
        now + 3_600_000,
    );
    old_worker.answer(200, waiting_answer(&unit, &interaction));
    h.drive_all().await;
    assert_eq!(
        h.must_record(&a).await.status,
        ExecutionStatus::WaitingExternal
    );
    assert_eq!(h.must_record(&b).await.status, ExecutionStatus::Succeeded);

    // Resume: the step after the await runs on the old release and fails.
    let r = h
        .complete_json(json!({"interactionId": "int-a", "responsePayload": out("yes")}))
        .await;
    assert_eq!(r.ok()["status"], "COMPLETED");
    old_worker.answer(200, worker_failed(NON_RETRYABLE, Some("cannot finalize")));
    h.drive().await;
    assert_eq!(h.must_record(&a).await.status, ExecutionStatus::Failed);

    // Re-drive: answered with the pinned identity, run on the old worker.
    let r = h
        .redrive(&a, Some(json!({"allowFailed": true, "reason": "act-08"})))
        .await;
    assert_eq!(
        (
            &r.ok()["pipelineId"],
            &r.body["contractVersion"],
            &r.body["releaseVersion"]
        ),
        (
            &json!(PIPELINE),
            &json!("sha256:4be1f0c27a9d"),
            &json!("2025.01.0")
        )
    );
    old_worker.answer(200, worker_completed(json!([out("a done")])));
    h.drive().await;
    let done = h.must_record(&a).await;
    assert_eq!(
        (done.status, done.release_version.as_str()),
        (ExecutionStatus::Succeeded, "2025.01.0")
    );

    // Every call for `a` went to the old worker with the pinned release;
    // the new worker saw only `b`.
    let old_calls = old_worker.received();
    assert_eq!(old_calls.len(), 4);
    let steps: Vec<(u64, u64)> = old_calls
        .iter()
        .map(|c| {
            assert_eq!(c["executionId"], a.as_str());
            assert_eq!(
                (
                    &c["pipelineId"],
                    &c["contractVersion"],
                    &c["releaseVersion"]
                ),
                (
                    &json!(PIPELINE),
                    &json!("sha256:4be1f0c27a9d"),
                    &json!("2025.01.0")
                )
            );
            (
                c["currentStepIndex"].as_u64().unwrap(),
                c["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    // T4 and T7 keep `attempt` (EXECUTION.md §3.3); T5 and T9 add one.
    assert_eq!(steps, [(0, 0), (0, 1), (2, 1), (2, 2)]);
    let new_calls = new_worker.received();
    assert_eq!(new_calls.len(), 1);
    assert_eq!(
        (
            &new_calls[0]["executionId"],
            &new_calls[0]["releaseVersion"]
        ),
        (&json!(b), &json!("2025.02.0"))
    );
    let events = h.events(&a).await;
    assert_eq!(
        types(&events),
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::RetryScheduled,
            EventType::Claimed,
            EventType::WaitingExternal,
            EventType::Resumed,
            EventType::Claimed,
            EventType::Failed,
            EventType::Redriven,
            EventType::Claimed,
            EventType::Succeeded,
        ]
    );
    let workers: Vec<&str> = events
        .iter()
        .filter_map(|e| e.worker_id.as_deref())
        .collect();
    assert!(!workers.is_empty());
    assert!(workers.iter().all(|w| *w == SCRIPTED_ID), "{workers:?}");
}
