//! Status and result conformance (EXECUTION.md §11 READ-01..READ-07;
//! API.md §2.2, §2.3): the DTO maps the stored record (read back through
//! the `ExecutionStore` trait), the result is shaped by the result shape,
//! and nothing is read or written beyond the record.

use serde_json::{json, Value};

use tpf_core::domain::execution::{EventType, ExecutionRecord, ExecutionStatus, ResultShape};
use tpf_core::ports::WorkItem;
use tpf_tests::*;

const NULL_ENVELOPE: &str = r#"{"payloadTypeId":"null","payloadEncoding":"application/tpf-transition+json","payload":"null"}"#;

fn item(id: &str) -> WorkItem {
    WorkItem {
        tenant_id: TENANT.into(),
        execution_id: id.into(),
    }
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

/// Queues a raw answer text (kept byte for byte).
fn answer_raw(w: &ScriptedWorker, text: &str) {
    w.answers.lock().unwrap().push((200, text.to_string()));
}

async fn submit_id(h: &Harness) -> String {
    let r = h.submit(submit_body("Ada Lovelace", None)).await;
    let id = r.ok()["executionId"].as_str().unwrap().to_string();
    h.queue.drain();
    id
}

/// The `ExecutionStatusDto` the spec derives from `r`.
fn dto_of(r: &ExecutionRecord) -> Value {
    json!({
        "executionId": r.execution_id,
        "status": r.status.as_str(),
        "stepIndex": r.current_step_index,
        "attempt": r.attempt,
        "version": r.version,
        "nextDueAtEpochMs": if r.status == ExecutionStatus::WaitingExternal { None } else { r.next_due_epoch_ms },
        "updatedAtEpochMs": r.updated_at_epoch_ms,
        "errorCode": r.error_code,
        "errorMessage": r.error_message,
    })
}

fn path(tenant: &str, id: &str, tail: &str) -> String {
    format!("/tpf/control-plane/tenants/{tenant}/executions/{id}{tail}")
}

async fn result_of(h: &Harness, id: &str) -> Value {
    h.call("GET", &path(TENANT, id, "/result"), CONTROL, None)
        .await
        .ok()
        .clone()
}

#[tokio::test]
async fn read_01_status_maps_the_record() {
    let (h, w) = scripted().await;
    let id = submit_id(&h).await;
    // A retryable failure: WAIT_RETRY, attempt 1, error set, due later.
    w.answer(503, json!({}));
    h.process(&item(&id)).await;
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::WaitRetry);
    let st = h.status(&id).await;
    let names: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "executionId",
            "status",
            "stepIndex",
            "attempt",
            "version",
            "nextDueAtEpochMs",
            "updatedAtEpochMs",
            "errorCode",
            "errorMessage"
        ]
    );
    assert_eq!(st, dto_of(&rec));
    assert_eq!(
        (&st["attempt"], &st["version"], &st["errorCode"]),
        (&json!(1), &json!(2), &json!("WORKER_HTTP_ERROR"))
    );
    assert_eq!(st["nextDueAtEpochMs"], h.now() + 10_000);
    assert!(st["errorMessage"].as_str().unwrap().contains("HTTP 503"));

    // A RUNNING retry still shows the failure that scheduled it.
    h.clock.advance(10_000);
    let claimed = rec.claim(h.now(), "dispatch-test", 60_000);
    h.force_write(&claimed.0, EventType::Claimed).await;
    let rec = h.record(&id).await.unwrap();
    assert_eq!(h.status(&id).await, dto_of(&rec));
    assert_eq!(h.status(&id).await["status"], "RUNNING");
    assert_eq!(h.status(&id).await["errorCode"], "WORKER_HTTP_ERROR");

    // `stepIndex` is the record's `currentStepIndex`, whatever it is.
    let mut moved = rec.clone();
    moved.version += 1;
    moved.current_step_index = 7;
    moved.updated_at_epoch_ms = h.now() + 5;
    h.force_write(&moved, EventType::Resumed).await;
    let st = h.status(&id).await;
    assert_eq!(st["stepIndex"], 7);
    assert_eq!(st, dto_of(&h.record(&id).await.unwrap()));
    // Reads write nothing.
    let versions: Vec<u64> = h.history_of(&id).await.iter().map(|e| e.version).collect();
    assert_eq!(versions, (0..=moved.version).collect::<Vec<_>>());
}

#[tokio::test]
async fn read_02_status_while_waiting_has_null_next_due() {
    let h = Harness::new(Options::default()).await;
    let (id, _) = h.park("Ada").await;
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.next_due_epoch_ms, None);
    let st = h.status(&id).await;
    assert_eq!(st["status"], "WAITING_EXTERNAL");
    assert_eq!(st["stepIndex"], 2);
    assert!(st.as_object().unwrap().contains_key("nextDueAtEpochMs"));
    assert_eq!(st["nextDueAtEpochMs"], Value::Null);
    assert_eq!(st, dto_of(&rec));
    // The result endpoint embeds the same DTO.
    assert_eq!(result_of(&h, &id).await["status"], st);
    let types: Vec<_> = h
        .history(&id)
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(types, ["SUBMITTED", "CLAIMED", "WAITING_EXTERNAL"]);
}

#[tokio::test]
async fn read_03_unknown_other_tenant_or_expired_execution_is_404() {
    let h = Harness::new(Options::default()).await;
    let r = h.submit(submit_body("Ada", None)).await;
    let id = r.ok()["executionId"].as_str().unwrap().to_string();
    let unknown = "00000000-0000-4000-8000-000000000000";
    for tail in ["", "/result", "/history"] {
        for (tenant, eid) in [(TENANT, unknown), ("globex", id.as_str())] {
            let r = h.call("GET", &path(tenant, eid, tail), CONTROL, None).await;
            r.err(404, "EXECUTION_NOT_FOUND");
            assert_eq!(r.body["message"], format!("Execution not found: {eid}"));
        }
    }
    // Expired: invisible once ttlEpochS ≤ ⌊now/1000⌋, deleted or not.
    let ttl = h.record(&id).await.unwrap().ttl_epoch_s;
    h.clock.set(ttl * 1000 - 1);
    assert_eq!(h.status(&id).await["executionId"], id.as_str());
    h.clock.set(ttl * 1000);
    for tail in ["", "/result", "/history"] {
        let r = h.call("GET", &path(TENANT, &id, tail), CONTROL, None).await;
        r.err(404, "EXECUTION_NOT_FOUND");
    }
    assert!(h.record(&id).await.is_none());
}

#[tokio::test]
async fn read_04_result_of_a_non_succeeded_execution_is_null_without_reading_it() {
    let (h, w) = scripted().await;
    let id = submit_id(&h).await;
    // QUEUED
    let r = result_of(&h, &id).await;
    assert_eq!(r.as_object().unwrap().len(), 2);
    assert_eq!(r["status"], dto_of(&h.record(&id).await.unwrap()));
    assert_eq!(r["resultPayload"], Value::Null);
    // FAILED (non-retryable)
    w.answer(
        200,
        failed_answer(
            "org.pipelineframework.step.NonRetryableException",
            "bad order",
        ),
    );
    h.process(&item(&id)).await;
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Failed);
    let r = result_of(&h, &id).await;
    assert_eq!(r["status"], dto_of(&rec));
    assert_eq!(r["status"]["errorCode"], "NonRetryableException");
    assert_eq!(r["resultPayload"], Value::Null);
    // Even a stored result is not read unless the execution SUCCEEDED.
    let mut with_result = rec.clone();
    with_result.version += 1;
    with_result.status = ExecutionStatus::Dlq;
    with_result.result_payload = Some(vec![serde_json::value::RawValue::from_string(
        payload_envelope("java.lang.String", "\"stale\"").to_string(),
    )
    .unwrap()]);
    h.force_write(&with_result, EventType::Failed).await;
    let r = result_of(&h, &id).await;
    assert_eq!(r["status"]["status"], "DLQ");
    assert_eq!(r["resultPayload"], Value::Null);
    assert_eq!(
        h.history_of(&id).await.len() as u64,
        with_result.version + 1
    );
}

#[tokio::test]
async fn read_05_single_result_is_the_stored_envelope_byte_for_byte() {
    let (h, w) = scripted().await;
    let id = submit_id(&h).await;
    // Odd spacing, member order and an extra member: kept verbatim.
    let output = r#"{ "payload" : "{\"b\": 1,\"a\":27.50}", "payloadTypeId":"org.example.Out","payloadEncoding":"application/tpf-transition+json","extra":{"k":[1, 2]} }"#;
    answer_raw(
        &w,
        &format!(
            r#"{{"outcome":"COMPLETED","outputPayloads":[{output}],"awaitSuspension":null,"failure":null}}"#
        ),
    );
    h.process(&item(&id)).await;
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Succeeded);
    assert_eq!(rec.result_shape, ResultShape::Single);
    assert_eq!(rec.result_payload.as_ref().unwrap()[0].get(), output);
    let raw = h
        .call_raw("GET", &path(TENANT, &id, "/result"), CONTROL, None, None)
        .await;
    assert_eq!(raw.status, 200);
    let status = serde_json::to_string(&dto_of(&rec)).unwrap();
    assert_eq!(
        raw.text,
        format!(r#"{{"status":{status},"resultPayload":{output}}}"#)
    );
    let types: Vec<_> = h
        .history(&id)
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(types, ["SUBMITTED", "CLAIMED", "SUCCEEDED"]);
}

#[tokio::test]
async fn read_06_single_result_without_output_is_the_null_envelope() {
    let (h, w) = scripted().await;
    let a = submit_id(&h).await;
    let b = submit_id(&h).await;
    w.answer(200, completed_answer(json!([])));
    answer_raw(&w, r#"{"outcome":"COMPLETED"}"#);
    h.process(&item(&a)).await;
    h.process(&item(&b)).await;
    for id in [&a, &b] {
        let rec = h.record(id).await.unwrap();
        assert_eq!(rec.status, ExecutionStatus::Succeeded);
        assert!(rec.result_payload.as_ref().unwrap().is_empty());
        let raw = h
            .call_raw("GET", &path(TENANT, id, "/result"), CONTROL, None, None)
            .await;
        assert_eq!(raw.status, 200);
        assert!(
            raw.text
                .ends_with(&format!(r#","resultPayload":{NULL_ENVELOPE}}}"#)),
            "{}",
            raw.text
        );
    }
}

#[tokio::test]
async fn read_07_materialized_multi_result_is_a_list_of_three_member_envelopes() {
    let h = Harness::new(Options {
        env: vec![],
        restaurant_worker: false,
    })
    .await;
    let w = ScriptedWorker::default();
    let url = w.start().await;
    let spec = DemoSpec {
        pipeline_id: "fanout".into(),
        ..DemoSpec::default()
    };
    let contract = contract_with_steps(
        &spec,
        json!([{"index": 0, "kind": "step", "cardinality": "ONE_TO_MANY", "inputTypeId": "org.example.In", "outputTypeId": "org.example.Out"}]),
    );
    let (artifact_id, digest) = h.release_with_contract(&spec, &contract, true).await;
    let mut entry = h.worker_entry_for("w-1", &url, &spec);
    entry.artifact_id = artifact_id;
    entry.artifact_digest = digest;
    h.put_worker_entry(&entry).await;
    let r = h
        .submit(json!({"pipelineId": "fanout", "inputShape": "UNI", "inputPayload": order("Ada")}))
        .await;
    let id = r.ok()["executionId"].as_str().unwrap().to_string();
    assert_eq!(
        h.record(&id).await.unwrap().result_shape,
        ResultShape::MaterializedMulti
    );
    // Members out of order, an extra member, and text that must stay as is.
    let first = r#"{"payload":"{\"city\":\"Zürich\",\"path\":\"a/b\",\"q\":\"say \\\"hi\\\"\"}","extra":true,"payloadEncoding":"application/tpf-transition+json","payloadTypeId":"org.example.Out"}"#;
    let second = r#"{"payloadTypeId":"java.lang.Long","payloadEncoding":"application/tpf-transition+json","payload":"27.50"}"#;
    answer_raw(
        &w,
        &format!(r#"{{"outcome":"COMPLETED","outputPayloads":[{first},{second}]}}"#),
    );
    h.queue.drain();
    h.process(&item(&id)).await;
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Succeeded);
    let stored: Vec<&str> = rec
        .result_payload
        .as_ref()
        .unwrap()
        .iter()
        .map(|o| o.get())
        .collect();
    assert_eq!(stored, [first, second]);

    let r = result_of(&h, &id).await;
    let env = &r["resultPayload"];
    let names: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["payloadTypeId", "payloadEncoding", "payload"]);
    assert_eq!(env["payloadTypeId"], "java.util.List");
    assert_eq!(env["payloadEncoding"], "application/tpf-transition+json");
    let expected = format!(
        r#"{{"items":[{{"payloadTypeId":"org.example.Out","payloadEncoding":"application/tpf-transition+json","payload":{}}},{second}]}}"#,
        serde_json::to_string(r#"{"city":"Zürich","path":"a/b","q":"say \"hi\""}"#).unwrap()
    );
    assert_eq!(env["payload"].as_str().unwrap(), expected);
    assert_eq!(r["status"], dto_of(&rec));
}
