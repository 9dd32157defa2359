//! Black-box test: the functions started the way the README starts them
//! (`infra/run-local.sh`, i.e. `cargo lambda watch` with the workspace
//! router), driven over real HTTP through the README's curl walk-through.
//!
//! Needs cargo-lambda (installed into `.venv` by `infra/test.sh`, which runs
//! this test with `--ignored`).

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn readme_walkthrough_over_cargo_lambda_watch() {
    let stack = start_with(&[("TPF_WORKER_SHARED_SECRET", SECRET)]).await;
    let worker_port = free_port();
    let _worker = start_worker(worker_port, SECRET, &stack.state_root.join("worker.log"));
    let root = stack.state_root.join("releases");
    assert!(
        root.is_dir(),
        "the run command creates the registration root"
    );

    // Write a release into the registration root (what `cargo run -p demo-release` does).
    let demo = demo_release::write_release(&root, &demo_release::DemoSpec::default()).unwrap();

    // Register, read, activate.
    let (s, rel) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/releases/register"),
        Some(ADMIN),
        Some(json!({"releaseDescriptorPath": demo.descriptor_path})),
    )
    .await;
    assert_eq!(s, 200, "{rel}");
    assert_eq!(rel["status"], "REGISTERED");
    assert!(rel["primaryArtifactUri"]
        .as_str()
        .unwrap()
        .starts_with("file://"));
    let (s, act) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/releases/2025.01.0/activate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, act["status"].as_str()), (200, Some("ACTIVE")), "{act}");
    let (s, active) = call(
        &stack,
        "GET",
        &format!("{TENANT_BASE}/releases/active"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (s, active["releaseVersion"].as_str()),
        (200, Some("2025.01.0"))
    );

    // Workers: register, heartbeat, list, drain (another process, same state).
    let worker = json!({
        "workerId": "kitchen-1",
        "contractVersion": rel["contractVersion"],
        "releaseVersion": rel["releaseVersion"],
        "protocol": "rest",
        "endpoint": format!("http://127.0.0.1:{worker_port}"),
        "artifactId": rel["primaryArtifactId"],
        "artifactDigest": rel["primaryArtifactDigest"],
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let path = format!("{TENANT_BASE}/workers/register");
        let (s, w) = call(&stack, "POST", &path, Some(ADMIN), Some(worker.clone())).await;
        if s == 200 {
            assert_eq!(w["state"], "HEALTHY");
            break;
        }
        assert_eq!(w["code"], "WORKER_UNREACHABLE", "{w}");
        assert!(
            Instant::now() < deadline,
            "worker never answered its capability probe"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (s, hb) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/workers/kitchen-1/heartbeat"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200, "{hb}");
    let (s, list) = call(
        &stack,
        "GET",
        &format!("{TENANT_BASE}/workers?releaseVersion=2025.01.0"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, d) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/workers/kitchen-1/drain"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, d["state"].as_str()), (200, Some("DRAINING")));

    // State is on disk where the run command put it.
    assert!(stack.state_root.join("store").join("registry").is_dir());
    assert!(stack.state_root.join("workers").join("acme").is_dir());

    // Errors are the spec's JSON, from whichever function serves the path.
    let (s, e) = call(
        &stack,
        "GET",
        &format!("{TENANT_BASE}/workers"),
        Some("wrong"),
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (s, e) = call(&stack, "GET", "/no/such/path", None, None).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("ROUTE_NOT_FOUND")));
    let (s, e) = call(
        &stack,
        "GET",
        &format!("{TENANT_BASE}/releases/register"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
    let (s, h) = call(&stack, "GET", "/tpf/health", None, None).await;
    assert_eq!((s, h["function"].as_str()), (200, Some("control-plane")));
}

#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn e2e01_e2e03_restaurant_flow_incident_and_redrive_over_cargo_lambda_watch() {
    let stack = start_with(&[
        ("TPF_CONTROL_PLANE_TOKEN", CONTROL),
        ("TPF_WORKER_SHARED_SECRET", SECRET),
        ("TPF_MAX_RETRIES", "0"),
    ])
    .await;
    let worker_port = free_port();
    let _worker = start_worker(worker_port, SECRET, &stack.state_root.join("worker.log"));
    let root = stack.state_root.join("releases");
    let demo = demo_release::write_release(&root, &demo_release::DemoSpec::default()).unwrap();
    let (s, rel) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/releases/register"),
        Some(ADMIN),
        Some(json!({"releaseDescriptorPath": demo.descriptor_path})),
    )
    .await;
    assert_eq!(s, 200, "{rel}");
    let (s, _) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/releases/2025.01.0/activate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200);
    // Register the worker: the capability probe calls it (retry while it starts).
    let body = json!({"workerId": "kitchen-1", "contractVersion": rel["contractVersion"], "releaseVersion": rel["releaseVersion"],
        "protocol": "rest", "endpoint": format!("http://127.0.0.1:{worker_port}"),
        "artifactId": rel["primaryArtifactId"], "artifactDigest": rel["primaryArtifactDigest"]});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, w) = call(
            &stack,
            "POST",
            &format!("{TENANT_BASE}/workers/register"),
            Some(ADMIN),
            Some(body.clone()),
        )
        .await;
        if s == 200 {
            break;
        }
        assert_eq!(w["code"], "WORKER_UNREACHABLE", "{w}");
        assert!(
            Instant::now() < deadline,
            "worker never answered its capability probe"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let cp = "/tpf/control-plane/tenants/acme";
    let order = json!({"requestId": "5b0e2c1a-8f3d-4e6b-a9c7-1d2e3f4a5b6c", "customerName": "Ada Lovelace", "restaurantName": "Cafe TPF",
        "items": "Margherita Pizza", "totalAmount": "27.50", "currency": "EUR"});
    let submit = json!({"pipelineId": "restaurant-approval", "inputShape": "UNI", "inputPayload": {
        "payloadTypeId": "org.pipelineframework.restaurantapproval.common.dto.PlaceRestaurantOrderRequestDto",
        "payloadEncoding": "application/tpf-transition+json", "payload": order.to_string()}});

    // E2E-01: approved.
    let (s, sub) = call(
        &stack,
        "POST",
        &format!("{cp}/executions"),
        Some(CONTROL),
        Some(submit.clone()),
    )
    .await;
    assert_eq!(s, 200, "{sub}");
    let id = sub["executionId"].as_str().unwrap().to_string();
    let st = wait_for(&stack, &format!("{cp}/executions/{id}"), CONTROL, |v| {
        v["status"] == "WAITING_EXTERNAL"
    })
    .await;
    assert_eq!(st["stepIndex"], 2);
    let pending = wait_for(
        &stack,
        &format!("{cp}/interactions/pending?stepId=ProcessAwaitRestaurantDecisionService"),
        CONTROL,
        |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|i| i["executionId"] == id.as_str()))
        },
    )
    .await;
    let interaction = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["executionId"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(interaction["transportType"], "interaction-api");
    let order_id = interaction["requestPayload"]["orderId"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, done) = call(&stack, "POST", &format!("{cp}/interactions/complete"), Some(CONTROL),
        Some(json!({"interactionId": interaction["interactionId"], "responsePayload": decision(&order_id, Some(true))}))).await;
    assert_eq!(
        (s, done["status"].as_str(), done["duplicate"].as_bool()),
        (200, Some("COMPLETED"), Some(false)),
        "{done}"
    );
    let st = wait_for(&stack, &format!("{cp}/executions/{id}"), CONTROL, |v| {
        v["status"] == "SUCCEEDED"
    })
    .await;
    assert_eq!(st["stepIndex"], 3);
    let (_, result) = call(
        &stack,
        "GET",
        &format!("{cp}/executions/{id}/result"),
        Some(CONTROL),
        None,
    )
    .await;
    let outcome: Value =
        serde_json::from_str(result["resultPayload"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["outcome"], "APPROVED");

    // E2E-03: an invalid completion fails the execution; re-drive fails it again.
    let (_, sub) = call(
        &stack,
        "POST",
        &format!("{cp}/executions"),
        Some(CONTROL),
        Some(submit),
    )
    .await;
    let id = sub["executionId"].as_str().unwrap().to_string();
    wait_for(&stack, &format!("{cp}/executions/{id}"), CONTROL, |v| {
        v["status"] == "WAITING_EXTERNAL"
    })
    .await;
    let pending = wait_for(
        &stack,
        &format!("{cp}/interactions/pending"),
        CONTROL,
        |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|i| i["executionId"] == id.as_str()))
        },
    )
    .await;
    let interaction = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["executionId"] == id.as_str())
        .unwrap()
        .clone();
    let (s, _) = call(&stack, "POST", &format!("{cp}/interactions/complete"), Some(CONTROL),
        Some(json!({"interactionId": interaction["interactionId"], "responsePayload": decision("not-a-uuid", Some(true))}))).await;
    assert_eq!(s, 200);
    let failed = wait_for(&stack, &format!("{cp}/executions/{id}"), CONTROL, |v| {
        v["status"] == "FAILED"
    })
    .await;
    assert!(!failed["errorCode"].as_str().unwrap().is_empty());
    assert!(!failed["errorMessage"].as_str().unwrap().is_empty());
    let version = failed["version"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack.log_tail().contains("Execution moved to DLQ") {
        assert!(Instant::now() < deadline, "no DLQ log line");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, red) = call(&stack, "POST", &format!("/tpf/admin/tenants/acme/executions/{id}/redrive"), Some(ADMIN),
        Some(json!({"allowFailed": true, "expectedVersion": version, "reason": "incident demo", "actor": "oncall"}))).await;
    assert_eq!(
        (s, red["previousStatus"].as_str(), red["status"].as_str()),
        (200, Some("FAILED"), Some("QUEUED")),
        "{red}"
    );
    let again = wait_for(&stack, &format!("{cp}/executions/{id}"), CONTROL, |v| {
        v["status"] == "FAILED" && v["version"].as_u64() > Some(version + 1)
    })
    .await;
    assert!(again["version"].as_u64().unwrap() > version);
    let (_, hist) = call(
        &stack,
        "GET",
        &format!("{cp}/executions/{id}/history"),
        Some(CONTROL),
        None,
    )
    .await;
    let redriven = hist["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "REDRIVEN")
        .cloned()
        .unwrap();
    assert_eq!(
        (redriven["reason"].as_str(), redriven["actor"].as_str()),
        (Some("incident demo"), Some("oncall"))
    );
}
