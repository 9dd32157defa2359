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

/// A token the test presents once and that must never reach the logs.
const PRESENTED: &str = "presented-secret-4711";

/// The README's curl walk-through (steps 1, 2 and 6, and the error lines),
/// against the stack as the README's run command starts it with all its
/// local defaults, with the README's helpers: `demo-release` writes the
/// release and prints the register body, `restaurant-worker
/// --print-registration` prints the worker's.
#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn readme_walkthrough_over_cargo_lambda_watch() {
    // Terminal 1: `infra/run-local.sh` (local defaults, a free port).
    let stack = start_with_defaults().await;
    let p = TENANT_BASE;
    // Terminal 2: the example worker with the local shared secret.
    let worker_port = free_port();
    let listen = format!("127.0.0.1:{worker_port}");
    let _worker = start_worker(
        worker_port,
        LOCAL_SECRET,
        &stack.state_root.join("worker.log"),
    );
    let root = stack.state_root.join("releases");
    assert!(
        root.is_dir(),
        "the run command creates the registration root"
    );

    // COM-01 at the root too: "/" is routed to control-plane (Cargo.toml's
    // watch router), which answers the JSON 404 of an unknown path.
    let (s, e) = call(&stack, "GET", "/", None, None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (404, Some("ROUTE_NOT_FOUND")),
        "{e}"
    );

    // The Must-show token: the default admin token is the one in force.
    let (s, e) = call(&stack, "GET", &format!("{p}/releases"), Some(ADMIN), None).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("UNAUTHORIZED")), "{e}");
    let (s, list) = call(
        &stack,
        "GET",
        &format!("{p}/releases"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!((s, &list), (200, &json!([])));

    // 1. BODY=$(cargo run -q -p demo-release -- .tpf-state/releases): a
    //    relative directory, from the directory holding the state.
    let body = run_json(
        std::process::Command::new(demo_release_bin())
            .arg("releases")
            .current_dir(&stack.state_root),
    );
    let descriptor = std::path::PathBuf::from(body["releaseDescriptorPath"].as_str().unwrap());
    assert!(
        descriptor.is_absolute() && descriptor.starts_with(&root),
        "{body}"
    );
    let (s, rel) = call(
        &stack,
        "POST",
        &format!("{p}/releases/register"),
        Some(LOCAL_ADMIN),
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "{rel}");
    assert_eq!(rel["status"], "REGISTERED");
    assert_eq!(rel["releaseVersion"], "2025.01.0");
    assert!(rel["primaryArtifactUri"]
        .as_str()
        .unwrap()
        .starts_with("file://"));
    let (s, act) = call(
        &stack,
        "POST",
        &format!("{p}/releases/2025.01.0/activate"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!((s, act["status"].as_str()), (200, Some("ACTIVE")), "{act}");
    let (s, log) = call(
        &stack,
        "GET",
        &format!("{p}/releases/activations"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200, "{log}");
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{log}");
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["releaseVersion"].as_str()
        ),
        (Some("ACTIVATED"), Some("2025.01.0"))
    );

    // 2. REG=$(cargo run -q -p restaurant-worker -- --listen … --print-registration)
    let reg = run_json(
        std::process::Command::new(worker_bin())
            .args(["--listen", &listen, "--print-registration"])
            .env_remove("RESTAURANT_WORKER_ENDPOINT")
            .env_remove("RESTAURANT_WORKER_ID"),
    );
    assert_eq!(reg["workerId"], "kitchen-1", "{reg}");
    assert_eq!(reg["endpoint"], format!("http://{listen}"));
    for (worker_member, release_member) in [
        ("contractVersion", "contractVersion"),
        ("releaseVersion", "releaseVersion"),
        ("artifactId", "primaryArtifactId"),
        ("artifactDigest", "primaryArtifactDigest"),
    ] {
        assert_eq!(
            reg[worker_member], rel[release_member],
            "the worker serves the demo release: {reg} vs {rel}"
        );
    }
    // The coordinator probes the worker, which may still be starting.
    let deadline = Instant::now() + Duration::from_secs(60);
    let registered = loop {
        let path = format!("{p}/workers/register");
        let (s, w) = call(&stack, "POST", &path, Some(LOCAL_ADMIN), Some(reg.clone())).await;
        if s == 200 {
            break w;
        }
        assert_eq!(w["code"], "WORKER_UNREACHABLE", "{w}");
        assert!(
            Instant::now() < deadline,
            "worker never answered its capability probe"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(registered["state"], "HEALTHY", "{registered}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (s, hb) = call(
        &stack,
        "POST",
        &format!("{p}/workers/kitchen-1/heartbeat"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!((s, hb["state"].as_str()), (200, Some("HEALTHY")), "{hb}");
    assert!(
        hb["lastHeartbeatAtEpochMs"].as_i64() > registered["lastHeartbeatAtEpochMs"].as_i64(),
        "the heartbeat moved lastHeartbeat: {hb} vs {registered}"
    );
    assert_eq!(hb["registeredAtEpochMs"], registered["registeredAtEpochMs"]);
    let (s, list) = call(
        &stack,
        "GET",
        &format!("{p}/workers?releaseVersion=2025.01.0"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list, json!([hb]), "the list shows the heartbeat's record");

    // 6. Drain: DRAINING, and a submit finds no healthy worker.
    let (s, d) = call(
        &stack,
        "POST",
        &format!("{p}/workers/kitchen-1/drain"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!((s, d["state"].as_str()), (200, Some("DRAINING")), "{d}");
    assert!(d["drainingSinceEpochMs"].as_i64() > Some(0), "{d}");
    let (s, list) = call(
        &stack,
        "GET",
        &format!("{p}/workers"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!((s, &list), (200, &json!([d])));
    let order = json!({"requestId": "5b0e2c1a-8f3d-4e6b-a9c7-1d2e3f4a5b6c", "customerName": "Ada Lovelace",
        "restaurantName": "Cafe TPF", "items": "Margherita Pizza", "totalAmount": "27.50", "currency": "EUR"});
    let submit = json!({"pipelineId": "restaurant-approval", "inputShape": "UNI", "inputPayload": {
        "payloadTypeId": "org.pipelineframework.restaurantapproval.common.dto.PlaceRestaurantOrderRequestDto",
        "payloadEncoding": "application/tpf-transition+json", "payload": order.to_string()}});
    let (s, e) = call(
        &stack,
        "POST",
        &format!("{CP}/executions"),
        Some(LOCAL_CONTROL),
        Some(submit),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (503, Some("NO_HEALTHY_WORKER")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("kitchen-1=DRAINING"),
        "{e}"
    );

    // State is on disk where the run command put it.
    assert!(stack.state_root.join("store").join("registry").is_dir());
    assert!(stack.state_root.join("workers").join("acme").is_dir());

    // Errors are the spec's JSON, from whichever function serves the path.
    for token in [None, Some(PRESENTED), Some(LOCAL_CONTROL)] {
        let (s, e) = call(&stack, "GET", &format!("{p}/workers"), token, None).await;
        assert_eq!((s, e["code"].as_str()), (401, Some("UNAUTHORIZED")), "{e}");
    }
    let (s, e) = call(
        &stack,
        "POST",
        &format!("{p}/releases/register"),
        Some(PRESENTED),
        Some(json!({"releaseDescriptorPath": descriptor})),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (401, Some("UNAUTHORIZED")), "{e}");
    let (s, e) = call(
        &stack,
        "DELETE",
        &format!("{p}/workers"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
    let (s, e) = call(&stack, "GET", "/no/such/path", None, None).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("ROUTE_NOT_FOUND")));
    let (s, e) = call(
        &stack,
        "GET",
        &format!("{p}/releases/register"),
        Some(LOCAL_ADMIN),
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
    let (s, h) = call(&stack, "GET", "/tpf/health", None, None).await;
    assert_eq!((s, h["function"].as_str()), (200, Some("control-plane")));
    let (s, doc) = call(&stack, "GET", "/tpf/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert!(doc["paths"].as_object().unwrap().contains_key(
        "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers/{workerId}/drain"
    ));

    // AUTH-10: the functions logged the refusals (JSON lines at the default
    // RUST_LOG=info), and no token — presented or configured — nor the
    // worker secret appears anywhere in the log.
    let log = stack.log();
    assert!(
        log.contains("authentication failed"),
        "the refusals are logged; log:\n{}",
        stack.log_tail()
    );
    for secret in [PRESENTED, ADMIN, LOCAL_ADMIN, LOCAL_CONTROL, LOCAL_SECRET] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    let worker_log = std::fs::read_to_string(stack.state_root.join("worker.log")).unwrap();
    assert!(
        !worker_log.contains(LOCAL_SECRET),
        "secret in the worker log"
    );
}

/// The README walk-through has the lines the test above runs, in its order.
#[test]
fn readme_walkthrough_registers_heartbeats_lists_and_drains() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("## Walk-through with curl")
        .expect("walk-through section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut at = 0;
    for line in [
        "BODY=$(cargo run -q -p demo-release -- .tpf-state/releases)",
        r#"curl -s -H "$ADMIN" -H "$JSON" -d "$BODY" $P/releases/register"#,
        r#"curl -s -H "$ADMIN" -X POST $P/releases/2025.01.0/activate"#,
        r#"curl -s -H "$ADMIN" $P/releases/activations"#,
        "REG=$(cargo run -q -p restaurant-worker -- --listen 127.0.0.1:8181 --print-registration)",
        r#"curl -s -H "$ADMIN" -H "$JSON" -d "$REG" $P/workers/register"#,
        r#"curl -s -H "$ADMIN" -X POST $P/workers/kitchen-1/heartbeat"#,
        r#"curl -s -H "$ADMIN" "$P/workers?releaseVersion=2025.01.0""#,
        r#"curl -s -H "$ADMIN" -X POST $P/workers/kitchen-1/drain"#,
        r#"curl -s -H "$ADMIN" $P/workers "#,
    ] {
        let found = section[at..]
            .find(line)
            .unwrap_or_else(|| panic!("README walk-through lacks, after byte {at}: {line}"));
        at += found + line.len();
    }
    for default in [
        "ADMIN=\"Authorization: Bearer local-admin-token\"",
        "CP=\"Authorization: Bearer local-control-token\"",
        "TPF_WORKER_SHARED_SECRET=local-worker-secret",
        "BASE=http://127.0.0.1:9000",
    ] {
        assert!(section.contains(default), "{default}");
    }
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
    // E2E-03: the dead-letter log line names this execution.
    let dlq_line_of_this_execution = |log: &str| {
        log.lines()
            .any(|l| l.contains("Execution moved to DLQ") && l.contains(id.as_str()))
    };
    while !dlq_line_of_this_execution(&stack.log()) {
        assert!(Instant::now() < deadline, "no DLQ log line for {id}");
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
