//! Submit conformance (EXECUTION.md §11 SUB-01..SUB-15; API.md §2.1,
//! EXECUTION.md §2, §4.5): every test checks the HTTP answer, the stored
//! record (read back through the `ExecutionStore` trait), the history and
//! the queue.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::Router;
use tpf_core::actions::register_release::DescriptorSource;
use tpf_core::actions::{activate_release, register_release};
use tpf_core::domain::execution::{execution_key, ExecutionStatus, ResultShape};
use tpf_core::domain::location::Root;
use tpf_core::ports::ExecutionStore;
use tpf_tests::*;

fn item(id: &str) -> tpf_core::ports::WorkItem {
    tpf_core::ports::WorkItem {
        tenant_id: TENANT.into(),
        execution_id: id.into(),
    }
}

fn no_workers() -> Options {
    Options {
        env: vec![],
        restaurant_worker: false,
    }
}

fn spec(pipeline: &str) -> DemoSpec {
    DemoSpec {
        pipeline_id: pipeline.into(),
        ..DemoSpec::default()
    }
}

fn step(index: u64, input_type: Option<&str>, cardinality: Option<&str>) -> Value {
    let mut s = json!({"index": index, "kind": "step", "outputTypeId": "org.example.Out"});
    if let Some(t) = input_type {
        s["inputTypeId"] = json!(t);
    }
    if let Some(c) = cardinality {
        s["cardinality"] = json!(c);
    }
    s
}

/// Activates a release of `pipeline` whose contract has `steps` and
/// registers a healthy worker for it at `endpoint`.
async fn custom_pipeline(h: &Harness, pipeline: &str, steps: Value, endpoint: &str) {
    let spec = spec(pipeline);
    let contract = contract_with_steps(&spec, steps);
    let (artifact_id, digest) = h.release_with_contract(&spec, &contract, true).await;
    let mut w = h.worker_entry_for("w-1", endpoint, &spec);
    w.artifact_id = artifact_id;
    w.artifact_digest = digest;
    h.put_worker_entry(&w).await;
}

fn body(pipeline: &str, shape: &str, input: Value) -> Value {
    json!({"pipelineId": pipeline, "inputShape": shape, "inputPayload": input})
}

/// Submits and returns the new execution's id (asserting a fresh 200).
async fn submit_ok(h: &Harness, b: Value) -> String {
    let r = h.submit(b).await;
    assert_eq!(r.ok()["duplicate"], false);
    r.body["executionId"].as_str().unwrap().to_string()
}

/// The stored input snapshot text of `id`.
async fn snapshot(h: &Harness, id: &str) -> String {
    h.record(id).await.unwrap().input_payload.get().to_string()
}

/// Nothing was created: no execution, no enqueue.
async fn assert_nothing_created(h: &Harness) {
    assert!(h.all_records().await.is_empty(), "an execution was created");
    assert!(h.queue.is_empty(), "something was enqueued");
}

#[tokio::test]
async fn sub_01_submit_pins_the_active_release_and_creates_a_queued_execution() {
    let h = Harness::new(Options::default()).await;
    let now = h.now();
    let r = h.submit(submit_body("Ada Lovelace", None)).await;
    let v = r.ok().clone();
    let id = v["executionId"].as_str().unwrap().to_string();
    // 200 {executionId, duplicate:false, statusUrl, submittedAtEpochMs}
    let members: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        members,
        [
            "executionId",
            "duplicate",
            "statusUrl",
            "submittedAtEpochMs"
        ]
    );
    assert_eq!(v["duplicate"], false);
    assert_eq!(v["submittedAtEpochMs"], now);
    assert_eq!(
        v["statusUrl"],
        format!("/tpf/control-plane/tenants/acme/executions/{id}")
    );
    // A fresh lowercase UUID v4.
    let parsed = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(id, id.to_ascii_lowercase());

    // The stored record: QUEUED, pinned to the active release, create values of §3.1.
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.tenant_id, "acme");
    assert_eq!(rec.status, ExecutionStatus::Queued);
    assert_eq!(
        (
            rec.pipeline_id.as_str(),
            rec.contract_version.as_str(),
            rec.release_version.as_str()
        ),
        ("restaurant-approval", "sha256:4be1f0c27a9d", "2025.01.0")
    );
    assert_eq!(
        rec.execution_key,
        format!("19:restaurant-approval:9:2025.01.0:execution:{id}")
    );
    assert_eq!(rec.input_hash.len(), 64);
    assert!(rec
        .input_hash
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_eq!(rec.result_shape, ResultShape::Single);
    assert_eq!(
        (rec.version, rec.current_step_index, rec.attempt),
        (0, 0, 0)
    );
    assert_eq!(
        (rec.lease_owner.as_deref(), rec.lease_expires_epoch_ms),
        (None, 0)
    );
    assert_eq!(rec.next_due_epoch_ms, Some(now));
    assert_eq!(rec.last_transition_key, None);
    assert_eq!(rec.await_unit_id, None);
    assert!(rec.result_payload.is_none());
    assert_eq!(
        (rec.error_code.clone(), rec.error_message.clone()),
        (None, None)
    );
    assert_eq!(
        (rec.created_at_epoch_ms, rec.updated_at_epoch_ms),
        (now, now)
    );
    assert_eq!(rec.ttl_epoch_s, now.div_euclid(1000) + 7 * 86_400);

    // History: exactly the SUBMITTED event at version 0.
    let events = h.history(&id).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (
            &e["version"],
            &e["type"],
            &e["previousStatus"],
            &e["status"]
        ),
        (
            &json!(0),
            &json!("SUBMITTED"),
            &Value::Null,
            &json!("QUEUED")
        )
    );
    assert_eq!((&e["stepIndex"], &e["attempt"]), (&json!(0), &json!(0)));
    assert_eq!(e["atEpochMs"], now);

    // One enqueue, due now.
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    // The status endpoint agrees.
    let st = h.status(&id).await;
    assert_eq!(
        (&st["status"], &st["version"]),
        (&json!("QUEUED"), &json!(0))
    );
}

/// Accepts TCP connections and counts them (closing each at once).
async fn connection_counter() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (format!("http://{addr}"), n)
}

#[tokio::test]
async fn sub_02_submit_makes_no_outbound_call_and_reads_no_artifact() {
    let h = Harness::new(no_workers()).await;
    let (url, connections) = connection_counter().await;
    let entry = h.worker_entry_for("spy", &url, &DemoSpec::default());
    h.put_worker_entry(&entry).await;
    // The registration sources (descriptor and artifact) are gone: a submit
    // that re-read or re-hashed the artifact would fail. (The engine's ports
    // have no artifact store at all; only the recorded state is consulted.)
    let demo = {
        let tpf_core::domain::location::Root::Local(root) = &h.release_deps.roots[0] else {
            unreachable!()
        };
        root.clone()
    };
    std::fs::remove_dir_all(&demo).unwrap();

    let id = submit_ok(&h, submit_body("Ada Lovelace", Some("k-02"))).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "submit called the worker"
    );
    assert_eq!(h.record(&id).await.unwrap().status, ExecutionStatus::Queued);
    assert_eq!(h.history_of(&id).await.len(), 1);
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);

    // The counter does see the dispatcher's call (so it would have seen one).
    h.process(&item(&id)).await;
    assert!(connections.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn sub_03_status_url_is_the_hosted_status_path() {
    let h = Harness::new(Options::default()).await;
    let r = h.submit(submit_body("Ada Lovelace", None)).await;
    let id = r.ok()["executionId"].as_str().unwrap().to_string();
    let url = r.body["statusUrl"].as_str().unwrap().to_string();
    assert_eq!(
        url,
        format!("/tpf/control-plane/tenants/acme/executions/{id}")
    );
    // The URL is served by the status endpoint and names this execution.
    let st = h.call("GET", &url, CONTROL, None).await;
    assert_eq!(st.ok()["executionId"], id.as_str());
    assert_eq!(st.body["status"], "QUEUED");
    assert_eq!(h.history_of(&id).await.len(), 1);
}

#[tokio::test]
async fn sub_04_missing_or_blank_members_are_missing_field_and_bad_shape_is_invalid_field() {
    let h = Harness::new(Options::default()).await;
    let input = order("Ada Lovelace");
    let cases = [
        (
            json!({"pipelineId": "  ", "inputShape": "UNI", "inputPayload": input}),
            "MISSING_FIELD",
            "pipelineId",
        ),
        (
            json!({"inputShape": "UNI", "inputPayload": input}),
            "MISSING_FIELD",
            "pipelineId",
        ),
        (
            json!({"pipelineId": null, "inputShape": "UNI", "inputPayload": input}),
            "MISSING_FIELD",
            "pipelineId",
        ),
        (
            json!({"pipelineId": PIPELINE, "inputPayload": input}),
            "MISSING_FIELD",
            "inputShape",
        ),
        (
            json!({"pipelineId": PIPELINE, "inputShape": null, "inputPayload": input}),
            "MISSING_FIELD",
            "inputShape",
        ),
        (
            json!({"pipelineId": PIPELINE, "inputShape": "UNI"}),
            "MISSING_FIELD",
            "inputPayload",
        ),
        (
            json!({"pipelineId": PIPELINE, "inputShape": "UNI", "inputPayload": null}),
            "MISSING_FIELD",
            "inputPayload",
        ),
        (
            json!({"pipelineId": PIPELINE, "inputShape": "BATCH", "inputPayload": input}),
            "INVALID_FIELD",
            "inputShape",
        ),
        // Case-sensitive enum.
        (
            json!({"pipelineId": PIPELINE, "inputShape": "uni", "inputPayload": input}),
            "INVALID_FIELD",
            "inputShape",
        ),
    ];
    for (b, code, member) in cases {
        let r = h.submit(b.clone()).await;
        r.err(400, code);
        assert!(
            r.body["message"].as_str().unwrap().contains(member),
            "{b}: {}",
            r.body
        );
        assert_eq!(r.body.as_object().unwrap().len(), 2);
    }
    assert_nothing_created(&h).await;
}

#[tokio::test]
async fn sub_05_output_streaming_true_is_refused_before_any_store_access() {
    let h = Harness::new(Options::default()).await;
    let spy = Arc::new(SpyExecutionStore::new(h.executions.clone()));
    let mut deps = h.deps.clone();
    deps.executions = spy.clone();
    let router = h.router_with(deps);
    for pipeline in [PIPELINE, "no-such-pipeline"] {
        let mut b = body(pipeline, "UNI", order("Ada"));
        b["outputStreaming"] = json!(true);
        b["idempotencyKey"] = json!("k-05");
        let r = submit_on(&router, b).await;
        // An unknown pipeline would be 409 NO_ACTIVE_RELEASE had the
        // registry been read; the refusal comes first.
        r.err(400, "OUTPUT_STREAMING_UNSUPPORTED");
    }
    assert_eq!(spy.calls.load(Ordering::SeqCst), 0, "the store was touched");
    assert_nothing_created(&h).await;
    // `false` is the default and accepted.
    let mut b = body(PIPELINE, "UNI", order("Ada"));
    b["outputStreaming"] = json!(false);
    let r = submit_on(&router, b).await;
    let id = r.ok()["executionId"].as_str().unwrap().to_string();
    assert_eq!(h.history_of(&id).await.len(), 1);
}

#[tokio::test]
async fn sub_06_no_active_release_is_409_and_creates_nothing() {
    let h = Harness::new(Options::default()).await;
    // A release registered but never activated counts as none.
    let staged = spec("staged-pipe");
    h.release_with_contract(&staged, &demo_release::contract(&staged), false)
        .await;
    let entry = h.worker_entry_for("w-1", &h.worker_url, &staged);
    h.put_worker_entry(&entry).await;
    for pipeline in ["never-registered", "staged-pipe"] {
        let mut b = body(pipeline, "UNI", order("Ada"));
        b["idempotencyKey"] = json!("k-06");
        let r = h.submit(b).await;
        r.err(409, "NO_ACTIVE_RELEASE");
        assert_eq!(
            r.body["message"],
            "No active release is registered for the requested pipeline"
        );
        let key = execution_key(pipeline, "2025.01.0", "k-06");
        assert!(h.key_entry(&key).await.is_none());
    }
    assert_nothing_created(&h).await;
}

#[tokio::test]
async fn sub_07_unverified_artifact_is_409_and_creates_nothing() {
    let h = Harness::new(Options::default()).await;
    // The latest activation event records the stored artifact as unverified.
    h.mark_artifact_unverified("restaurant-approval-monolith: checksum differs")
        .await;

    let r = h.submit(submit_body("Ada", Some("k-07"))).await;
    r.err(409, "RELEASE_ARTIFACT_UNVERIFIED");
    let r = h.submit(submit_body("Ada", None)).await;
    r.err(409, "RELEASE_ARTIFACT_UNVERIFIED");
    let key = execution_key(PIPELINE, "2025.01.0", "k-07");
    assert!(h.key_entry(&key).await.is_none());
    assert_nothing_created(&h).await;
}

#[tokio::test]
async fn sub_08_no_healthy_worker_is_503_listing_every_record_and_creates_nothing() {
    let h = Harness::new(no_workers()).await;
    let r = h.submit(submit_body("Ada", None)).await;
    r.err(503, "NO_HEALTHY_WORKER");
    assert_eq!(
        r.body["message"],
        "No healthy worker for release 2025.01.0 of pipeline restaurant-approval; no worker lifecycle record is registered for this release"
    );
    assert_eq!(r.headers["retry-after"], "5");

    let demo = DemoSpec::default();
    let now = h.now();
    let mut drained = h.worker_entry_for("kitchen-1", &h.worker_url, &demo);
    drained.draining_since_epoch_ms = now - 1;
    let mut stale = h.worker_entry_for("kitchen-2", &h.worker_url, &demo);
    stale.last_heartbeat_at_epoch_ms = now - 121_000; // older than PT2M
    let mut grpc = h.worker_entry_for("kitchen-3", &h.worker_url, &demo);
    grpc.protocol = "grpc".into();
    for w in [&drained, &stale, &grpc] {
        h.put_worker_entry(w).await;
    }
    let r = h.submit(submit_body("Ada", Some("k-08"))).await;
    r.err(503, "NO_HEALTHY_WORKER");
    assert_eq!(
        r.body["message"],
        "No healthy worker for release 2025.01.0 of pipeline restaurant-approval; current states: kitchen-1=DRAINING, kitchen-2=STALE, kitchen-3=HEALTHY (protocol grpc not supported)"
    );
    assert_nothing_created(&h).await;

    // A healthy eligible record makes the same submit succeed.
    let ok = h.worker_entry_for("kitchen-4", &h.worker_url, &demo);
    h.put_worker_entry(&ok).await;
    let id = submit_ok(&h, submit_body("Ada", Some("k-08"))).await;
    assert_eq!(h.history_of(&id).await.len(), 1);
}

#[tokio::test]
async fn sub_09_a_worker_of_another_release_version_does_not_count() {
    let h = Harness::new(no_workers()).await;
    let other_release = DemoSpec {
        release_version: "2024.12.0".into(),
        ..DemoSpec::default()
    };
    let other_contract = DemoSpec {
        contract_version: "sha256:000000000000".into(),
        ..DemoSpec::default()
    };
    for (id, s) in [("old-1", &other_release), ("cv-1", &other_contract)] {
        let w = h.worker_entry_for(id, &h.worker_url, s);
        h.put_worker_entry(&w).await;
    }
    let r = h.submit(submit_body("Ada", None)).await;
    r.err(503, "NO_HEALTHY_WORKER");
    // Records of other releases are not the release's records.
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .ends_with("no worker lifecycle record is registered for this release"));
    assert_nothing_created(&h).await;
}

#[tokio::test]
async fn sub_10_uni_generic_input_is_relabelled_to_the_first_step_type() {
    let h = Harness::new(Options::default()).await;
    custom_pipeline(
        &h,
        "ingress-pipe",
        json!([
            step(1, Some("org.example.Other"), None),
            step(0, Some(" org.pipelineframework.example.TestIngress "), None)
        ]),
        &h.worker_url,
    )
    .await;
    let long = |t: &str, p: &str| payload_envelope(t, p);
    // The §4.5 example, byte for byte.
    let items = json!({
        "value": long("java.lang.Long", "42"),
        "amount": long("java.math.BigDecimal", "27.50"),
    });
    let input = payload_envelope("java.util.Map", &json!({"items": items}).to_string());
    assert_eq!(
        input["payload"],
        "{\"items\":{\"value\":{\"payloadTypeId\":\"java.lang.Long\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"42\"},\"amount\":{\"payloadTypeId\":\"java.math.BigDecimal\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"27.50\"}}}"
    );
    let id = submit_ok(&h, body("ingress-pipe", "UNI", input)).await;
    assert_eq!(
        snapshot(&h, &id).await,
        r#"{"shape":"UNI","payload":{"payloadTypeId":"org.pipelineframework.example.TestIngress","payloadEncoding":"application/tpf-transition+json","payload":"{\"value\":42,\"amount\":27.50}"},"items":[]}"#
    );
    // The checklist's `{value:42}`.
    let items = json!({"value": long("java.lang.Long", "42")});
    let input = payload_envelope("java.util.Map", &json!({"items": items}).to_string());
    let id2 = submit_ok(&h, body("ingress-pipe", "UNI", input)).await;
    assert_eq!(
        snapshot(&h, &id2).await,
        r#"{"shape":"UNI","payload":{"payloadTypeId":"org.pipelineframework.example.TestIngress","payloadEncoding":"application/tpf-transition+json","payload":"{\"value\":42}"},"items":[]}"#
    );
    for id in [&id, &id2] {
        let rec = h.record(id).await.unwrap();
        assert_eq!(rec.pipeline_id, "ingress-pipe");
        assert_eq!(h.history_of(id).await.len(), 1);
    }
    assert_eq!(h.drain_queue(), vec![(id, 0), (id2, 0)]);
}

#[tokio::test]
async fn sub_11_uni_concrete_input_is_stored_unchanged() {
    let h = Harness::new(Options::default()).await;
    custom_pipeline(
        &h,
        "integer-pipe",
        json!([step(0, Some("java.lang.Integer"), None)]),
        &h.worker_url,
    )
    .await;
    let input = payload_envelope("java.lang.String", "\"42\"");
    let id = submit_ok(&h, body("integer-pipe", "UNI", input)).await;
    assert_eq!(
        snapshot(&h, &id).await,
        r#"{"shape":"UNI","payload":{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"42\""},"items":[]}"#
    );
    // A concrete application type differing from the usable first-step
    // type (demo: org.example.OrderRequest) is kept as well.
    let input = order("Ada");
    let id2 = submit_ok(&h, body(PIPELINE, "UNI", input.clone())).await;
    assert_eq!(
        snapshot(&h, &id2).await,
        format!(r#"{{"shape":"UNI","payload":{input},"items":[]}}"#)
    );
    assert_eq!(h.history_of(&id2).await.len(), 1);
}

#[tokio::test]
async fn sub_12_uni_list_without_usable_input_type_is_one_unchanged_item() {
    let h = Harness::new(Options::default()).await;
    let url = h.worker_url.clone();
    custom_pipeline(
        &h,
        "list-pipe",
        json!([step(0, Some("java.util.List"), None)]),
        &url,
    )
    .await;
    custom_pipeline(&h, "untyped-pipe", json!([step(0, None, None)]), &url).await;
    custom_pipeline(&h, "blank-pipe", json!([step(0, Some("   "), None)]), &url).await;
    custom_pipeline(&h, "null-pipe", json!([step(0, Some("null"), None)]), &url).await;
    let items = json!({"items": [payload_envelope("java.lang.String", "\"a\""), payload_envelope("java.lang.String", "\"b\"")]});
    let input = payload_envelope("java.util.List", &items.to_string());
    for pipeline in ["list-pipe", "untyped-pipe", "blank-pipe", "null-pipe"] {
        let id = submit_ok(&h, body(pipeline, "UNI", input.clone())).await;
        assert_eq!(
            snapshot(&h, &id).await,
            format!(r#"{{"shape":"UNI","payload":{input},"items":[]}}"#),
            "{pipeline}"
        );
        assert_eq!(h.history_of(&id).await.len(), 1);
    }
    assert_eq!(h.drain_queue().len(), 4);
}

#[tokio::test]
async fn sub_13_multi_takes_the_container_items_and_refuses_non_containers() {
    let h = Harness::new(Options::default()).await;
    let x = payload_envelope("java.lang.String", "\"x\"");
    let y = payload_envelope("java.lang.String", "\"y\"");
    let list = payload_envelope("java.util.List", &json!({"items": [x, y]}).to_string());
    let id = submit_ok(&h, body(PIPELINE, "MULTI", list)).await;
    // The §4.3 MULTI snapshot, byte for byte.
    assert_eq!(
        snapshot(&h, &id).await,
        r#"{"shape":"MULTI","payload":null,"items":[{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"x\""},{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"y\""}]}"#
    );
    // A Set keeps order and duplicates; the null envelope is empty input.
    let set = payload_envelope("java.util.Set", &json!({"items": [y, y]}).to_string());
    let id_set = submit_ok(&h, body(PIPELINE, "MULTI", set)).await;
    assert_eq!(
        snapshot(&h, &id_set).await,
        format!(r#"{{"shape":"MULTI","payload":null,"items":[{y},{y}]}}"#)
    );
    let id_null = submit_ok(
        &h,
        body(PIPELINE, "MULTI", payload_envelope("null", "null")),
    )
    .await;
    assert_eq!(
        snapshot(&h, &id_null).await,
        r#"{"shape":"MULTI","payload":null,"items":[]}"#
    );
    // Generic items are relabelled like UNI (usable first-step type).
    let map = payload_envelope(
        "java.util.Map",
        &json!({"items": {"value": payload_envelope("java.lang.Long", "42")}}).to_string(),
    );
    let list = payload_envelope("java.util.List", &json!({"items": [map, x]}).to_string());
    let id_rel = submit_ok(&h, body(PIPELINE, "MULTI", list)).await;
    assert_eq!(
        snapshot(&h, &id_rel).await,
        format!(
            r#"{{"shape":"MULTI","payload":null,"items":[{{"payloadTypeId":"org.example.OrderRequest","payloadEncoding":"application/tpf-transition+json","payload":"{{\"value\":42}}"}},{x}]}}"#
        )
    );
    let created = h.all_records().await.len();
    assert_eq!(created, 4);
    h.queue.drain();

    // Not a List/Set/null → 400 INVALID_PAYLOAD, nothing created.
    for bad in [
        payload_envelope("java.lang.String", "\"x\""),
        payload_envelope("java.util.Map", "{\"items\":{}}"),
        order("Ada"),
    ] {
        let r = h.submit(body(PIPELINE, "MULTI", bad.clone())).await;
        r.err(400, "INVALID_PAYLOAD");
        assert!(r.body["message"].as_str().unwrap().contains("inputPayload"));
    }
    assert_eq!(h.all_records().await.len(), created);
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn sub_14_raw_is_stored_as_a_uni_snapshot_without_relabelling() {
    let h = Harness::new(Options::default()).await;
    // The demo's first step has a usable type, so UNI would relabel this Map.
    let map = payload_envelope(
        "java.util.Map",
        &json!({"items": {"value": payload_envelope("java.lang.Long", "42")}}).to_string(),
    );
    let id = submit_ok(&h, body(PIPELINE, "RAW", map.clone())).await;
    assert_eq!(
        snapshot(&h, &id).await,
        format!(r#"{{"shape":"UNI","payload":{map},"items":[]}}"#)
    );
    let uni = submit_ok(&h, body(PIPELINE, "UNI", map)).await;
    assert!(snapshot(&h, &uni)
        .await
        .contains("\"payloadTypeId\":\"org.example.OrderRequest\""));
    // The input hash is over the request shape (RAW ≠ UNI).
    assert_ne!(
        h.record(&id).await.unwrap().input_hash,
        h.record(&uni).await.unwrap().input_hash
    );
    assert_eq!(h.history_of(&id).await.len(), 1);
}

#[tokio::test]
async fn sub_15_result_shape_is_derived_from_the_pinned_contract_and_persisted() {
    let h = Harness::new(Options::default()).await;
    let worker = ScriptedWorker::default();
    let url = worker.start().await;
    let t = Some("org.example.In");
    custom_pipeline(
        &h,
        "multi-pipe",
        json!([
            step(0, t, Some("ONE_TO_ONE")),
            step(1, t, Some("one_to_many"))
        ]),
        &url,
    )
    .await;
    // Steps are folded in `index` order, not listing order.
    custom_pipeline(
        &h,
        "reduce-pipe",
        json!([step(1, t, Some("REDUCTION")), step(0, t, Some("Expansion"))]),
        &url,
    )
    .await;
    custom_pipeline(
        &h,
        "expand-pipe",
        json!([
            step(0, t, Some("EXPANSION")),
            step(1, t, None),
            step(2, t, Some("SIDEWAYS"))
        ]),
        &url,
    )
    .await;
    custom_pipeline(
        &h,
        "many-pipe",
        json!([
            step(0, t, Some("MANY_TO_MANY")),
            step(1, t, Some("MANY_TO_ONE"))
        ]),
        &url,
    )
    .await;
    let cases = [
        ("multi-pipe", ResultShape::MaterializedMulti),
        ("reduce-pipe", ResultShape::Single),
        ("expand-pipe", ResultShape::MaterializedMulti),
        ("many-pipe", ResultShape::Single),
        (PIPELINE, ResultShape::Single),
    ];
    let mut ids = Vec::new();
    for (pipeline, shape) in cases {
        let id = submit_ok(&h, body(pipeline, "UNI", order("Ada"))).await;
        assert_eq!(
            h.record(&id).await.unwrap().result_shape,
            shape,
            "{pipeline}"
        );
        ids.push(id);
    }
    h.queue.drain();

    // The persisted shape drives dispatch: the command carries it, and two
    // outputs are accepted for MATERIALIZED_MULTI.
    let outputs = json!([
        payload_envelope("java.lang.String", "\"a\""),
        payload_envelope("java.lang.String", "\"b\"")
    ]);
    worker.answer(200, completed_answer(outputs));
    h.process(&item(&ids[0])).await;
    let sent = worker.requests.lock().unwrap()[0].clone();
    assert_eq!(sent["resultShape"], "MATERIALIZED_MULTI");
    assert_eq!(sent["pipelineId"], "multi-pipe");
    let rec = h.record(&ids[0]).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Succeeded);
    assert_eq!(rec.result_shape, ResultShape::MaterializedMulti);
    assert_eq!(rec.result_payload.unwrap().len(), 2);
}

// ---------------------------------------------------------------------------
// Idempotency (SUB-17, SUB-19, SUB-23, SUB-27), the order of the member
// checks (COM-10), worker eligibility at submit (WL-11) and the submit half
// of the artifact re-verification (ACT-06).
// ---------------------------------------------------------------------------

/// The execution ids in the store of `tenant`.
async fn ids_of(h: &Harness, tenant: &str) -> Vec<String> {
    let mut ids: Vec<String> = ExecutionStore::list(
        h.executions.as_ref(),
        tenant,
        &tpf_core::ports::ExecutionFilter::default(),
        None,
        10_000,
        h.now(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.execution_id)
    .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn sub_17_same_key_same_input_is_a_duplicate_with_the_original_time() {
    let h = Harness::new(Options::default()).await;
    let t0 = h.now();
    let first = h
        .submit(submit_body("Ada Lovelace", Some("order-17")))
        .await;
    let first = first.ok().clone();
    let id = first["executionId"].as_str().unwrap().to_string();
    assert_eq!(first["duplicate"], false);
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    let created = h.record(&id).await.unwrap();

    // Five seconds later, the same request: the first answer again, with
    // `duplicate: true` and the original creation time.
    h.clock.advance(5_000);
    let again = h
        .submit(submit_body("Ada Lovelace", Some("order-17")))
        .await;
    let mut expected = first.clone();
    expected["duplicate"] = json!(true);
    assert_eq!(again.ok(), &expected);
    assert_eq!(again.body["submittedAtEpochMs"], t0);
    assert_ne!(again.body["submittedAtEpochMs"], h.now());
    // Nothing was written: same record, one event, one execution.
    let rec = h.record(&id).await.unwrap();
    assert_eq!(
        (rec.version, rec.updated_at_epoch_ms, rec.status),
        (0, t0, ExecutionStatus::Queued)
    );
    assert_eq!(rec.execution_key, created.execution_key);
    assert_eq!(h.history_of(&id).await.len(), 1);
    assert_eq!(ids_of(&h, TENANT).await, vec![id.clone()]);
    // The execution is still QUEUED and due: the work item is enqueued
    // again (API.md §2.1, heals a crash between create and enqueue).
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);

    // Once it has moved on, a duplicate neither writes nor enqueues.
    h.deps.queue.enqueue(&item(&id), 0).await.unwrap();
    h.drive().await;
    let moved = h.record(&id).await.unwrap();
    assert_eq!(moved.status, ExecutionStatus::WaitingExternal);
    let events = h.history_of(&id).await.len();
    h.clock.advance(60_000);
    let later = h
        .submit(submit_body("Ada Lovelace", Some("order-17")))
        .await;
    assert_eq!(later.ok(), &expected);
    assert_eq!(h.history_of(&id).await.len(), events);
    assert_eq!(h.record(&id).await.unwrap().version, moved.version);
    assert!(h.queue.is_empty(), "a non-QUEUED duplicate was enqueued");
    assert_eq!(ids_of(&h, TENANT).await, vec![id]);
}

#[tokio::test]
async fn sub_19_same_key_after_new_activation_or_under_another_tenant_is_a_new_execution() {
    let h = Harness::new(Options::default()).await;
    let key = "order-19";
    let id1 = submit_ok(&h, submit_body("Ada Lovelace", Some(key))).await;
    h.queue.drain();

    // Another tenant with the same release and a healthy worker: the same
    // key and input start an independent execution there.
    let globex = "globex";
    let Root::Local(root) = &h.release_deps.roots[0] else {
        unreachable!()
    };
    let descriptor = std::path::Path::new(root)
        .join("2025.01.0")
        .join("pipeline-release.json");
    register_release::run(
        &h.release_deps,
        globex,
        PIPELINE,
        DescriptorSource::Location(descriptor.to_str().unwrap().to_string()),
    )
    .await
    .unwrap();
    activate_release::run(&h.release_deps, globex, PIPELINE, "2025.01.0")
        .await
        .unwrap();
    let mut w = h.worker_entry_for("kitchen-1", &h.worker_url, &DemoSpec::default());
    w.tenant_id = globex.into();
    h.put_worker_entry(&w).await;
    let r = h
        .submit_for(globex, submit_body("Ada Lovelace", Some(key)))
        .await;
    assert_eq!(r.ok()["duplicate"], false);
    let id_g = r.body["executionId"].as_str().unwrap().to_string();
    assert_ne!(id_g, id1);
    assert_eq!(
        r.body["statusUrl"],
        format!("/tpf/control-plane/tenants/globex/executions/{id_g}")
    );
    let rec_g = ExecutionStore::get(h.executions.as_ref(), globex, &id_g, h.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec_g.tenant_id, globex);
    assert_eq!(
        rec_g.execution_key,
        format!("19:restaurant-approval:9:2025.01.0:executionKey:{key}")
    );
    let history_g =
        ExecutionStore::history(h.executions.as_ref(), globex, &id_g, None, 100, h.now())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(history_g.len(), 1);
    // Each tenant's key still names its own execution.
    let again_g = h
        .submit_for(globex, submit_body("Ada Lovelace", Some(key)))
        .await;
    assert_eq!(
        (&again_g.ok()["duplicate"], &again_g.body["executionId"]),
        (&json!(true), &json!(id_g))
    );
    let again = h.submit(submit_body("Ada Lovelace", Some(key))).await;
    assert_eq!(
        (&again.ok()["duplicate"], &again.body["executionId"]),
        (&json!(true), &json!(id1))
    );
    assert_eq!(ids_of(&h, TENANT).await, vec![id1.clone()]);
    assert_eq!(ids_of(&h, globex).await, vec![id_g.clone()]);
    h.queue.drain();

    // A new release activated in acme (with a worker of its own): the same
    // key now starts a new execution pinned to it.
    let next = DemoSpec {
        release_version: "2025.02.0".into(),
        ..DemoSpec::default()
    };
    h.activate_demo_release(&next).await;
    let w2 = h.worker_entry_for("kitchen-2", &h.worker_url, &next);
    h.put_worker_entry(&w2).await;
    let r = h.submit(submit_body("Ada Lovelace", Some(key))).await;
    assert_eq!(r.ok()["duplicate"], false);
    let id2 = r.body["executionId"].as_str().unwrap().to_string();
    assert!(id2 != id1 && id2 != id_g);
    let rec2 = h.record(&id2).await.unwrap();
    assert_eq!(rec2.release_version, "2025.02.0");
    assert_eq!(
        rec2.execution_key,
        format!("19:restaurant-approval:9:2025.02.0:executionKey:{key}")
    );
    assert_eq!(h.history_of(&id2).await.len(), 1);
    assert_eq!(h.drain_queue(), vec![(id2.clone(), 0)]);
    // The old execution is untouched and keeps its release.
    let rec1 = h.record(&id1).await.unwrap();
    assert_eq!(
        (rec1.release_version.as_str(), rec1.version),
        ("2025.01.0", 0)
    );
    assert_eq!(h.history_of(&id1).await.len(), 1);
    let mut both = vec![id1.clone(), id2.clone()];
    both.sort();
    assert_eq!(ids_of(&h, TENANT).await, both);
    // The key's scope is now the new release: a repeat is its duplicate.
    let again = h.submit(submit_body("Ada Lovelace", Some(key))).await;
    assert_eq!(
        (&again.ok()["duplicate"], &again.body["executionId"]),
        (&json!(true), &json!(id2))
    );
    // globex still has its own release and execution.
    assert_eq!(ids_of(&h, globex).await, vec![id_g]);
}

/// The input envelope of the worked hash example of API.md §2.1.
fn worked_input() -> Value {
    payload_envelope(
        "org.pipelineframework.restaurantapproval.common.dto.PlaceRestaurantOrderRequestDto",
        r#"{"requestId":"5b0e2c1a-8f3d-4e6b-a9c7-1d2e3f4a5b6c","customerName":"Ada Lovelace"}"#,
    )
}

#[tokio::test]
async fn sub_23_server_key_only_dedups_and_matches_the_worked_example() {
    let h = Harness::new(Options {
        env: vec![("TPF_IDEMPOTENCY_POLICY", "SERVER_KEY_ONLY".into())],
        restaurant_worker: true,
    })
    .await;
    let t0 = h.now();
    let id = submit_ok(&h, body(PIPELINE, "UNI", worked_input())).await;
    let rec = h.record(&id).await.unwrap();
    assert_eq!(
        rec.input_hash,
        "d30977c66b9cdb3afdde5a4cc89116abeff4289f2437f2f4e235a2210c3f356e"
    );
    assert_eq!(
        rec.execution_key,
        "19:restaurant-approval:9:2025.01.0:executionKey:xCA0n6aTk36Gb16oFIkhKvUDsaTu8FHX_hkld38oOYE"
    );
    assert_eq!(
        rec.execution_key,
        execution_key(
            PIPELINE,
            "2025.01.0",
            "xCA0n6aTk36Gb16oFIkhKvUDsaTu8FHX_hkld38oOYE"
        )
    );
    // The key entry points at the execution with the same hash.
    let entry = h
        .executions
        .get_key(TENANT, &rec.execution_key, h.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (entry.execution_id.as_str(), entry.input_hash.as_str()),
        (id.as_str(), rec.input_hash.as_str())
    );
    h.queue.drain();

    // An identical keyless submit is a duplicate; a client key is ignored.
    h.clock.advance(1_000);
    for b in [body(PIPELINE, "UNI", worked_input()), {
        let mut b = body(PIPELINE, "UNI", worked_input());
        b["idempotencyKey"] = json!("client-key-ignored");
        b
    }] {
        let r = h.submit(b).await;
        assert_eq!(
            (
                &r.ok()["duplicate"],
                &r.body["executionId"],
                &r.body["submittedAtEpochMs"]
            ),
            (&json!(true), &json!(id), &json!(t0))
        );
    }
    assert_eq!(h.history_of(&id).await.len(), 1);
    assert_eq!(ids_of(&h, TENANT).await, vec![id.clone()]);
    let client = execution_key(PIPELINE, "2025.01.0", "client-key-ignored");
    assert!(h.key_entry(&client).await.is_none());

    // Another input, or the same envelope as another shape, is another key.
    let other = submit_ok(&h, body(PIPELINE, "UNI", order("Grace Hopper"))).await;
    let raw = submit_ok(&h, body(PIPELINE, "RAW", worked_input())).await;
    for other_id in [&other, &raw] {
        assert_ne!(other_id, &id);
        let r = h.record(other_id).await.unwrap();
        assert!(r
            .execution_key
            .starts_with("19:restaurant-approval:9:2025.01.0:executionKey:"));
        assert_ne!(r.execution_key, rec.execution_key);
    }
    assert_eq!(ids_of(&h, TENANT).await.len(), 3);
}

#[tokio::test]
async fn sub_27_a_keyed_retry_is_a_duplicate_without_healthy_workers_or_verified_artifact() {
    let h = Harness::new(Options::default()).await;
    let t0 = h.now();
    let first = h.submit(submit_body("Ada Lovelace", Some("k-27"))).await;
    let first = first.ok().clone();
    let id = first["executionId"].as_str().unwrap().to_string();
    h.queue.drain();
    let mut dup = first.clone();
    dup["duplicate"] = json!(true);

    // The only worker drains: a new submit is refused ...
    h.clock.advance(1_000);
    let mut drained = h.worker_entry_for("kitchen-1", &h.worker_url, &DemoSpec::default());
    drained.draining_since_epoch_ms = h.now();
    h.put_worker_entry(&drained).await;
    let r = h
        .submit(submit_body("Ada Lovelace", Some("k-27-new")))
        .await;
    r.err(503, "NO_HEALTHY_WORKER");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("kitchen-1=DRAINING"));
    // ... but the keyed retry is the duplicate.
    let r = h.submit(submit_body("Ada Lovelace", Some("k-27"))).await;
    assert_eq!(r.ok(), &dup);
    assert_eq!(r.body["submittedAtEpochMs"], t0);
    assert_eq!(h.history_of(&id).await.len(), 1);
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);

    // The stored artifact is now recorded as unverified: still a duplicate,
    // while another key gets the artifact refusal (checked before workers).
    h.mark_artifact_unverified("restaurant-approval-monolith: checksum differs")
        .await;
    let r = h.submit(submit_body("Ada Lovelace", Some("k-27"))).await;
    assert_eq!(r.ok(), &dup);
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    h.submit(submit_body("Ada Lovelace", Some("k-27-other")))
        .await
        .err(409, "RELEASE_ARTIFACT_UNVERIFIED");
    // Same key, other input: still the key conflict, not a check failure.
    h.submit(submit_body("Grace Hopper", Some("k-27")))
        .await
        .err(409, "IDEMPOTENCY_KEY_REUSED");

    let rec = h.record(&id).await.unwrap();
    assert_eq!((rec.status, rec.version), (ExecutionStatus::Queued, 0));
    assert_eq!(h.history_of(&id).await.len(), 1);
    assert_eq!(ids_of(&h, TENANT).await, vec![id]);
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn com_10_the_first_failing_member_in_table_order_wins() {
    let h = Harness::new(Options::default()).await;
    // The checklist's example.
    let r = h
        .submit(json!({"pipelineId": " ", "inputShape": "UNI", "inputPayload": order("Ada"), "outputStreaming": true}))
        .await;
    r.err(400, "MISSING_FIELD");
    assert_eq!(r.body["message"], "pipelineId is required");

    // Every member wrong at once (the pipeline is unknown, too: a 409 if
    // the registry were read); repairing them one by one in the order of
    // the member table of API.md §2.1 moves the error to the next member.
    let long_key = "k".repeat(257);
    let mut b = json!({
        "pipelineId": " ", "inputShape": "BATCH",
        "inputPayload": payload_envelope("java.lang.String", "not json"),
        "idempotencyKey": long_key, "outputStreaming": true
    });
    let steps: Vec<(&str, Value, &str, &str)> = vec![
        (
            "pipelineId",
            json!("no/such pipeline"),
            "MISSING_FIELD",
            "pipelineId",
        ),
        (
            "pipelineId",
            json!("no-such-pipeline"),
            "INVALID_ID",
            "pipelineId",
        ),
        ("inputShape", json!("UNI"), "INVALID_FIELD", "inputShape"),
        (
            "inputPayload",
            order("Ada"),
            "INVALID_PAYLOAD",
            "inputPayload",
        ),
        (
            "idempotencyKey",
            json!("k-10"),
            "INVALID_FIELD",
            "idempotencyKey",
        ),
        (
            "outputStreaming",
            json!(false),
            "OUTPUT_STREAMING_UNSUPPORTED",
            "outputStreaming",
        ),
    ];
    for (member, fix, code, named) in steps {
        let r = h.submit(b.clone()).await;
        r.err(400, code);
        assert!(
            r.body["message"].as_str().unwrap().contains(named),
            "{b}: {}",
            r.body
        );
        b[member] = fix;
    }
    assert_nothing_created(&h).await;
    // All members valid: now the release lookup answers.
    h.submit(b.clone()).await.err(409, "NO_ACTIVE_RELEASE");
    b["pipelineId"] = json!(PIPELINE);
    let id = submit_ok(&h, b).await;
    assert_eq!(h.history_of(&id).await.len(), 1);
}

#[tokio::test]
async fn wl_11_a_mismatching_artifact_refuses_submit_and_a_blank_artifact_side_matches() {
    let h = Harness::new(no_workers()).await;
    let demo = DemoSpec::default();
    let zeros = format!("sha256:{}", "0".repeat(64));
    let mut digest = h.worker_entry_for("kitchen-1", &h.worker_url, &demo);
    digest.artifact_digest = zeros.clone();
    let mut id_only = h.worker_entry_for("kitchen-2", &h.worker_url, &demo);
    id_only.artifact_id = "another-artifact".into();
    // A blank id does not excuse a mismatching digest.
    let mut blank_id = h.worker_entry_for("kitchen-3", &h.worker_url, &demo);
    blank_id.artifact_id = String::new();
    blank_id.artifact_digest = zeros;
    for w in [&digest, &id_only, &blank_id] {
        h.put_worker_entry(w).await;
    }
    let r = h.submit(submit_body("Ada", Some("k-wl11"))).await;
    r.err(503, "NO_HEALTHY_WORKER");
    assert_eq!(
        r.body["message"],
        "No healthy worker for release 2025.01.0 of pipeline restaurant-approval; current states: kitchen-1=HEALTHY (artifactDigest mismatch), kitchen-2=HEALTHY (artifactId mismatch), kitchen-3=HEALTHY (artifactDigest mismatch)"
    );
    assert_eq!(r.headers["retry-after"], "5");
    assert_nothing_created(&h).await;

    // Blank artifact id and digest on the worker side match any release.
    let mut blank = h.worker_entry_for("kitchen-4", &h.worker_url, &demo);
    blank.artifact_id = String::new();
    blank.artifact_digest = "  ".into();
    h.put_worker_entry(&blank).await;
    let id = submit_ok(&h, submit_body("Ada", Some("k-wl11"))).await;
    assert_eq!(h.record(&id).await.unwrap().status, ExecutionStatus::Queued);
    assert_eq!(h.history_of(&id).await.len(), 1);
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    // And it is the worker dispatch picks: the execution runs on it.
    h.deps.queue.enqueue(&item(&id), 0).await.unwrap();
    h.drive().await;
    assert_eq!(
        h.record(&id).await.unwrap().status,
        ExecutionStatus::WaitingExternal
    );
    let workers: Vec<Option<String>> = h
        .history_of(&id)
        .await
        .into_iter()
        .filter_map(|e| e.worker_id.map(Some))
        .collect();
    assert!(!workers.is_empty());
    assert!(
        workers.iter().all(|w| w.as_deref() == Some("kitchen-4")),
        "{workers:?}"
    );
}

#[tokio::test]
async fn act_06_a_tampered_active_artifact_blocks_submit_until_reactivation_reverifies_it() {
    let h = Harness::new(Options::default()).await;
    // A release-admin surface on the same registries, with an artifact
    // store of its own the test can tamper with.
    let store = Arc::new(tpf_core::providers::memory::MemoryArtifactStore::new());
    let release_deps = tpf_core::actions::ReleaseDeps {
        store: store.clone(),
        ..h.release_deps.clone()
    };
    let router = h.router_altered(h.deps.clone(), |s| s.releases = Some(release_deps.clone()));
    let next = DemoSpec {
        release_version: "2025.02.0".into(),
        ..DemoSpec::default()
    };
    let Root::Local(root) = &h.release_deps.roots[0] else {
        unreachable!()
    };
    let demo = demo_release::write_release(std::path::Path::new(root), &next).unwrap();
    register_release::run(
        &release_deps,
        TENANT,
        PIPELINE,
        DescriptorSource::Location(demo.descriptor_path.to_str().unwrap().to_string()),
    )
    .await
    .unwrap();
    let w = h.worker_entry_for("kitchen-2", &h.worker_url, &next);
    h.put_worker_entry(&w).await;
    let releases = "/tpf/admin/tenants/acme/pipelines/restaurant-approval/releases";
    let activate = format!("{releases}/2025.02.0/activate");
    let activations = |router: Router| async move {
        call_on(
            &router,
            "GET",
            &format!("{releases}/activations?limit=1000"),
            ADMIN,
            None,
        )
        .await
        .ok()["events"]
            .as_array()
            .unwrap()
            .clone()
    };
    let r = call_on(&router, "POST", &activate, ADMIN, None).await;
    assert_eq!(r.ok()["status"], "ACTIVE");
    let before = activations(router.clone()).await.len();
    let submit = |key: &'static str| {
        let router = router.clone();
        async move { submit_on(&router, submit_body("Ada", Some(key))).await }
    };
    let pinned = submit("k-act06-a").await;
    let pinned_id = pinned.ok()["executionId"].as_str().unwrap().to_string();
    assert_eq!(
        h.record(&pinned_id).await.unwrap().release_version,
        "2025.02.0"
    );
    h.queue.drain();

    // The stored copy of the active release's artifact is altered.
    let record = h
        .release_deps
        .registry
        .get_release(TENANT, PIPELINE, "2025.02.0")
        .await
        .unwrap()
        .unwrap();
    let uri = record.primary_artifact_uri.clone();
    let good = std::fs::read(&demo.artifact_path).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 0xff;
    store.tamper(&uri, bad);

    // Re-activation finds it: 409, one ARTIFACT_UNVERIFIED (a second try
    // adds none), the release stays active.
    for _ in 0..2 {
        call_on(&router, "POST", &activate, ADMIN, None)
            .await
            .err(409, "RELEASE_ARTIFACT_UNVERIFIED");
    }
    let events = activations(router.clone()).await;
    assert_eq!(events.len(), before + 1, "exactly one ARTIFACT_UNVERIFIED");
    let last = events.last().unwrap();
    assert_eq!(
        (
            &last["type"],
            &last["releaseVersion"],
            &last["artifactVerified"]
        ),
        (
            &json!("ARTIFACT_UNVERIFIED"),
            &json!("2025.02.0"),
            &json!(false)
        )
    );

    // Submit is refused, nothing created.
    let existing = h.all_records().await.len();
    let r = submit("k-act06-b").await;
    r.err(409, "RELEASE_ARTIFACT_UNVERIFIED");
    let r = submit_on(&router, submit_body("Ada", None)).await;
    r.err(409, "RELEASE_ARTIFACT_UNVERIFIED");
    assert_eq!(h.all_records().await.len(), existing);
    assert!(h.queue.is_empty());
    let key = execution_key(PIPELINE, "2025.02.0", "k-act06-b");
    assert!(h.key_entry(&key).await.is_none());
    // A keyed retry of the earlier submit is still its duplicate (SUB-27).
    let r = submit("k-act06-a").await;
    assert_eq!(
        (&r.ok()["duplicate"], &r.body["executionId"]),
        (&json!(true), &json!(pinned_id))
    );
    h.queue.drain();

    // Repaired: re-activation records ARTIFACT_REVERIFIED and submits pass.
    store.tamper(&uri, good);
    let r = call_on(&router, "POST", &activate, ADMIN, None).await;
    assert_eq!(r.ok()["artifactVerified"], true);
    let events = activations(router.clone()).await;
    assert_eq!(events.len(), before + 2);
    assert_eq!(events.last().unwrap()["type"], "ARTIFACT_REVERIFIED");
    let r = submit("k-act06-b").await;
    assert_eq!(r.ok()["duplicate"], false);
    let id = r.body["executionId"].as_str().unwrap().to_string();
    let rec = h.record(&id).await.unwrap();
    assert_eq!(
        (rec.status, rec.release_version.as_str()),
        (ExecutionStatus::Queued, "2025.02.0")
    );
    assert_eq!(h.history_of(&id).await.len(), 1);
    assert_eq!(h.drain_queue(), vec![(id, 0)]);
}
