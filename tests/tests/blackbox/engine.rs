//! Black-box tests of the execution engine: the functions started the way
//! the README starts them (`infra/run-local.sh`, i.e. `cargo lambda watch`),
//! the example worker as separate processes, everything driven over real
//! HTTP. Covers retries with backoff (`EXECUTION.md` §3.6), terminal
//! failures and the `file` dead-letter sink (§3.8, §9.2), await timeouts
//! through the sweep (§5.4, §8.7) and release pinning (§6).
//!
//! Needs cargo-lambda (installed into `.venv` by `infra/test.sh`, which runs
//! these tests with `--ignored`).

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ORDER_TYPE: &str =
    "org.pipelineframework.restaurantapproval.common.dto.PlaceRestaurantOrderRequestDto";

/// The test control-plane token and worker secret.
const ENGINE_ENV: [(&str, &str); 2] = [
    ("TPF_CONTROL_PLANE_TOKEN", CONTROL),
    ("TPF_WORKER_SHARED_SECRET", SECRET),
];

/// Starts the stack with the test control-plane token and worker secret,
/// `env` on top.
async fn start_engine(env: &[(&str, &str)]) -> Stack {
    start_with(&[&ENGINE_ENV[..], env].concat()).await
}

/// [`start_engine`] with the `file` dead-letter sink writing `dlq.jsonl` in
/// the state directory; returns the stack and that file's path.
async fn start_with_dlq(env: &[(&str, &str)]) -> (Stack, PathBuf) {
    let state = tempfile::tempdir().unwrap();
    let dlq = state.path().join("dlq.jsonl");
    let dlq_text = dlq.to_str().unwrap().to_string();
    let sink = [
        ("TPF_DLQ_PROVIDER", "file"),
        ("TPF_DLQ_FILE", dlq_text.as_str()),
    ];
    let stack = start_in(state, &[&ENGINE_ENV[..], env, &sink[..]].concat()).await;
    (stack, dlq)
}

/// `GET {CP}{path}` with the control-plane token; asserts 200 and returns
/// the body.
async fn control_get(stack: &Stack, path: &str) -> Value {
    let (s, body) = call(stack, "GET", &format!("{CP}{path}"), Some(CONTROL), None).await;
    assert_eq!(s, 200, "{body}");
    body
}

/// `POST {CP}/executions` with `body`.
async fn post_submit(stack: &Stack, body: Value) -> (u16, Value) {
    call(
        stack,
        "POST",
        &format!("{CP}/executions"),
        Some(CONTROL),
        Some(body),
    )
    .await
}

/// `POST {TENANT_BASE}/workers/register` with `body` (admin token).
async fn post_register_worker(stack: &Stack, body: Value) -> (u16, Value) {
    call(
        stack,
        "POST",
        &format!("{TENANT_BASE}/workers/register"),
        Some(ADMIN),
        Some(body),
    )
    .await
}

/// Admin re-drive of execution `id` with `body`.
async fn redrive(stack: &Stack, id: &str, body: Value) -> (u16, Value) {
    call(
        stack,
        "POST",
        &format!("/tpf/admin/tenants/acme/executions/{id}/redrive"),
        Some(ADMIN),
        Some(body),
    )
    .await
}

/// Writes the demo release `spec` into the stack's registration root and
/// registers it; returns the release record.
async fn register_release(stack: &Stack, spec: &demo_release::DemoSpec) -> Value {
    let root = stack.state_root.join("releases");
    let demo = demo_release::write_release(&root, spec).unwrap();
    let (s, rel) = call(
        stack,
        "POST",
        &format!("{TENANT_BASE}/releases/register"),
        Some(ADMIN),
        Some(json!({"releaseDescriptorPath": demo.descriptor_path})),
    )
    .await;
    assert_eq!(s, 200, "{rel}");
    assert_eq!(rel["releaseVersion"], spec.release_version.as_str());
    rel
}

async fn activate(stack: &Stack, version: &str) {
    let (s, act) = call(
        stack,
        "POST",
        &format!("{TENANT_BASE}/releases/{version}/activate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, act["status"].as_str()), (200, Some("ACTIVE")), "{act}");
}

/// The registration body of `worker_id` at `port` for release record `rel`.
fn worker_body(rel: &Value, worker_id: &str, port: u16) -> Value {
    json!({"workerId": worker_id, "contractVersion": rel["contractVersion"], "releaseVersion": rel["releaseVersion"],
        "protocol": "rest", "endpoint": format!("http://127.0.0.1:{port}"),
        "artifactId": rel["primaryArtifactId"], "artifactDigest": rel["primaryArtifactDigest"]})
}

/// Registers a worker; the capability probe calls it, so retry while the
/// process starts.
async fn register_worker(stack: &Stack, body: &Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, w) = post_register_worker(stack, body.clone()).await;
        if s == 200 {
            assert_eq!(w["state"], "HEALTHY", "{w}");
            return;
        }
        assert_eq!(w["code"], "WORKER_UNREACHABLE", "{w}");
        assert!(
            Instant::now() < deadline,
            "worker never answered its capability probe"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Release 2025.01.0 registered and active, worker `kitchen-1` at
/// `worker_port` registered; returns the release record.
async fn default_release_and_worker(stack: &Stack, worker_port: u16) -> Value {
    let rel = register_release(stack, &demo_release::DemoSpec::default()).await;
    activate(stack, "2025.01.0").await;
    register_worker(stack, &worker_body(&rel, "kitchen-1", worker_port)).await;
    rel
}

/// Submits the README's order; returns the execution id.
async fn submit(stack: &Stack) -> String {
    let order = json!({"requestId": uuid::Uuid::new_v4().to_string(), "customerName": "Ada Lovelace", "restaurantName": "Cafe TPF",
        "items": "Margherita Pizza", "totalAmount": "27.50", "currency": "EUR"});
    let body = json!({"pipelineId": "restaurant-approval", "inputShape": "UNI", "inputPayload": {
        "payloadTypeId": ORDER_TYPE, "payloadEncoding": "application/tpf-transition+json", "payload": order.to_string()}});
    let (s, sub) = post_submit(stack, body).await;
    assert_eq!((s, sub["duplicate"].as_bool()), (200, Some(false)), "{sub}");
    sub["executionId"].as_str().unwrap().to_string()
}

async fn wait_status(stack: &Stack, id: &str, status: &str) -> Value {
    wait_for(stack, &format!("{CP}/executions/{id}"), CONTROL, |v| {
        v["status"] == status
    })
    .await
}

async fn history(stack: &Stack, id: &str) -> Vec<Value> {
    let h = control_get(stack, &format!("/executions/{id}/history")).await;
    h["events"].as_array().unwrap().clone()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// The pending interaction of execution `id` (waits for the index).
async fn pending_of(stack: &Stack, id: &str) -> Value {
    let list = wait_for(stack, &format!("{CP}/interactions/pending"), CONTROL, |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|i| i["executionId"] == id))
    })
    .await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|i| i["executionId"] == id)
        .unwrap()
        .clone()
}

async fn complete(stack: &Stack, interaction_id: &Value, answer: Value) -> (u16, Value) {
    call(
        stack,
        "POST",
        &format!("{CP}/interactions/complete"),
        Some(CONTROL),
        Some(json!({"interactionId": interaction_id, "responsePayload": answer})),
    )
    .await
}

/// Approves the pending interaction of `id` and waits for `SUCCEEDED`.
async fn approve_and_finish(stack: &Stack, id: &str) -> Value {
    let interaction = pending_of(stack, id).await;
    let order_id = interaction["requestPayload"]["orderId"].as_str().unwrap();
    let (s, done) = complete(
        stack,
        &interaction["interactionId"],
        decision(order_id, Some(true)),
    )
    .await;
    assert_eq!(
        (s, done["status"].as_str(), done["duplicate"].as_bool()),
        (200, Some("COMPLETED"), Some(false)),
        "{done}"
    );
    let st = wait_status(stack, id, "SUCCEEDED").await;
    let (_, result) = call(
        stack,
        "GET",
        &format!("{CP}/executions/{id}/result"),
        Some(CONTROL),
        None,
    )
    .await;
    let outcome: Value =
        serde_json::from_str(result["resultPayload"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["outcome"], "APPROVED", "{result}");
    st
}

/// The JSON lines of the dead-letter file (none while it does not exist).
fn dlq_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("DLQ line {l:?}: {e}")))
        .collect()
}

/// Waits until the dead-letter file holds `n` lines; returns them.
async fn wait_dlq(stack: &Stack, path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = dlq_lines(path);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {} lines, expected {n}; log:\n{}",
            path.display(),
            lines.len(),
            stack.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn retries_with_backoff_while_the_worker_is_down_then_succeeds() {
    let stack = start_engine(&[("TPF_RETRY_DELAY", "PT1S"), ("TPF_SWEEP_INTERVAL", "PT1S")]).await;
    let worker_port = free_port();
    let worker_log = stack.state_root.join("worker.log");
    let worker = start_worker(worker_port, SECRET, &worker_log);
    // Registration probes the worker, so it must run now; then it goes away.
    default_release_and_worker(&stack, worker_port).await;
    drop(worker);

    // The lifecycle record is still HEALTHY: submit admits the execution,
    // dispatch cannot connect → retryable failure, first retry after 1 s.
    let id = submit(&stack).await;
    let st = wait_for(&stack, &format!("{CP}/executions/{id}"), CONTROL, |v| {
        v["status"] != "QUEUED" && v["status"] != "RUNNING"
    })
    .await;
    assert_eq!(
        (
            st["status"].as_str(),
            st["errorCode"].as_str(),
            st["attempt"].as_u64()
        ),
        (Some("WAIT_RETRY"), Some("WORKER_UNREACHABLE"), Some(1)),
        "{st}"
    );
    assert!(
        !st["errorMessage"].as_str().unwrap_or("").is_empty(),
        "{st}"
    );
    assert!(st["nextDueAtEpochMs"].as_i64().is_some(), "{st}");

    // The worker comes back on the same port; the retry reaches it.
    let _worker = start_worker(worker_port, SECRET, &worker_log);
    let st = wait_status(&stack, &id, "WAITING_EXTERNAL").await;
    assert_eq!(st["stepIndex"], 2, "{st}");
    assert!(
        st["errorCode"].is_null(),
        "the retry cleared the error: {st}"
    );

    let events = history(&stack, &id).await;
    let kinds = types(&events);
    let retries: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "RETRY_SCHEDULED")
        .collect();
    assert!(!retries.is_empty(), "{kinds:?}");
    // Each retry waits TPF_RETRY_DELAY × 2^(attempt−1), and no claim comes early.
    for (n, r) in retries.iter().enumerate() {
        let attempt = n as u64 + 1;
        assert_eq!(
            (
                r["attempt"].as_u64(),
                r["errorCode"].as_str(),
                r["previousStatus"].as_str(),
                r["status"].as_str()
            ),
            (
                Some(attempt),
                Some("WORKER_UNREACHABLE"),
                Some("RUNNING"),
                Some("WAIT_RETRY")
            ),
            "{r}"
        );
        let delay = r["nextDueAtEpochMs"].as_i64().unwrap() - r["atEpochMs"].as_i64().unwrap();
        let expected = 1000 * (1 << n);
        assert!(
            (expected..expected + 100).contains(&delay),
            "retry {attempt} delay {delay} ms, expected {expected}: {r}"
        );
        let v = r["version"].as_u64().unwrap();
        let next = events
            .iter()
            .find(|e| e["version"].as_u64() == Some(v + 1))
            .unwrap_or_else(|| panic!("no event after {r}"));
        assert_eq!(
            (
                next["type"].as_str(),
                next["previousStatus"].as_str(),
                next["attempt"].as_u64()
            ),
            (Some("CLAIMED"), Some("WAIT_RETRY"), Some(attempt)),
            "{next}"
        );
        assert!(
            next["atEpochMs"].as_i64() >= r["nextDueAtEpochMs"].as_i64(),
            "claimed before the retry was due: {r} then {next}"
        );
    }
    // SUBMITTED, CLAIMED, then (RETRY_SCHEDULED, CLAIMED) per failed attempt
    // — one, unless the restarted worker took over a second to listen — and
    // the suspension on the attempt that reached the worker.
    let n = retries.len();
    let mut expected = vec!["SUBMITTED", "CLAIMED"];
    for _ in 0..n {
        expected.extend(["RETRY_SCHEDULED", "CLAIMED"]);
    }
    expected.push("WAITING_EXTERNAL");
    assert_eq!(kinds, expected, "{events:?}");
    let suspended = events.last().unwrap();
    assert_eq!(
        (
            suspended["attempt"].as_u64(),
            suspended["workerId"].as_str()
        ),
        (Some(n as u64), Some("kitchen-1")),
        "{suspended}"
    );
    assert_eq!(st["attempt"].as_u64(), Some(n as u64), "{st}");

    // And the execution finishes normally.
    let done = approve_and_finish(&stack, &id).await;
    assert_eq!(done["attempt"].as_u64(), Some(n as u64), "{done}");
}

#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn non_retryable_failure_writes_the_dead_letter_file_and_redrive_fails_again() {
    let (stack, dlq) = start_with_dlq(&[]).await;
    let worker_port = free_port();
    let _worker = start_worker(worker_port, SECRET, &stack.state_root.join("worker.log"));
    let rel = default_release_and_worker(&stack, worker_port).await;

    let id = submit(&stack).await;
    wait_status(&stack, &id, "WAITING_EXTERNAL").await;
    let interaction = pending_of(&stack, &id).await;
    let (s, done) = complete(
        &stack,
        &interaction["interactionId"],
        decision("not-a-uuid", Some(true)),
    )
    .await;
    assert_eq!(
        (s, done["status"].as_str()),
        (200, Some("COMPLETED")),
        "{done}"
    );

    // Step 3 refuses the decision: non-retryable, FAILED at once.
    let failed = wait_for(&stack, &format!("{CP}/executions/{id}"), CONTROL, |v| {
        v["status"] != "WAITING_EXTERNAL" && v["status"] != "QUEUED" && v["status"] != "RUNNING"
    })
    .await;
    assert_eq!(
        (
            failed["status"].as_str(),
            failed["errorCode"].as_str(),
            failed["attempt"].as_u64(),
            failed["stepIndex"].as_u64()
        ),
        (
            Some("FAILED"),
            Some("NonRetryableException"),
            Some(0),
            Some(3)
        ),
        "{failed}"
    );
    let message = failed["errorMessage"].as_str().unwrap().to_string();
    assert!(!message.is_empty(), "{failed}");

    // The envelope of §3.8, one JSON line.
    let lines = wait_dlq(&stack, &dlq, 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let dl = &lines[0];
    assert_eq!(dl["tenantId"], "acme", "{dl}");
    assert_eq!(dl["executionId"], id.as_str(), "{dl}");
    assert_eq!(dl["terminalStatus"], "FAILED", "{dl}");
    assert_eq!(dl["terminalReason"], "non_retryable", "{dl}");
    assert_eq!(dl["retryable"], false, "{dl}");
    assert_eq!(dl["errorCode"], "NonRetryableException", "{dl}");
    assert_eq!(dl["errorMessage"], message.as_str(), "{dl}");
    assert_eq!(dl["retriesObserved"], 0, "{dl}");
    assert_eq!(dl["transitionKey"], format!("{id}:3:0"), "{dl}");
    assert_eq!(dl["resourceType"], "tpf.orchestrator.execution", "{dl}");
    assert_eq!(dl["resourceName"], "OrchestratorService/Run", "{dl}");
    assert_eq!(dl["transport"], "REST", "{dl}");
    assert_eq!(dl["platform"], "COMPUTE", "{dl}");
    assert_eq!(dl["correlationId"], dl["executionKey"], "{dl}");
    assert!(dl["createdAtEpochMs"].as_i64().unwrap() > 0, "{dl}");
    let events = history(&stack, &id).await;
    let failed_event = events.last().unwrap();
    assert_eq!(
        (
            failed_event["type"].as_str(),
            failed_event["terminalReason"].as_str(),
            failed_event["workerId"].as_str()
        ),
        (Some("FAILED"), Some("non_retryable"), Some("kitchen-1")),
        "{failed_event}"
    );

    // Re-drive with the observed version: the same resume payload fails again.
    let version = failed["version"].as_u64().unwrap();
    let (s, red) = redrive(
        &stack,
        &id,
        json!({"allowFailed": true, "expectedVersion": version, "reason": "bad decision", "actor": "oncall"}),
    )
    .await;
    assert_eq!(s, 200, "{red}");
    assert_eq!(
        (
            red["previousStatus"].as_str(),
            red["status"].as_str(),
            red["version"].as_u64(),
            red["attempt"].as_u64(),
            red["currentStepIndex"].as_u64(),
            red["releaseVersion"].as_str()
        ),
        (
            Some("FAILED"),
            Some("QUEUED"),
            Some(version + 1),
            Some(1),
            Some(3),
            rel["releaseVersion"].as_str()
        ),
        "{red}"
    );
    let again = wait_for(&stack, &format!("{CP}/executions/{id}"), CONTROL, |v| {
        v["status"] == "FAILED" && v["version"].as_u64() > Some(version + 1)
    })
    .await;
    assert_eq!(
        (again["errorCode"].as_str(), again["attempt"].as_u64()),
        (Some("NonRetryableException"), Some(1)),
        "{again}"
    );
    let lines = wait_dlq(&stack, &dlq, 2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let dl2 = &lines[1];
    assert_eq!(
        (
            dl2["executionId"].as_str(),
            dl2["terminalReason"].as_str(),
            dl2["retryable"].as_bool(),
            dl2["errorCode"].as_str(),
            dl2["retriesObserved"].as_u64(),
            dl2["transitionKey"].as_str()
        ),
        (
            Some(id.as_str()),
            Some("non_retryable"),
            Some(false),
            Some("NonRetryableException"),
            Some(1),
            Some(format!("{id}:3:1").as_str())
        ),
        "{dl2}"
    );
    let kinds = types(&history(&stack, &id).await).join(",");
    assert!(
        kinds.ends_with("FAILED,REDRIVEN,CLAIMED,FAILED"),
        "history {kinds}"
    );
}

#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn await_timeout_fails_the_execution_through_the_sweep() {
    let (stack, dlq) = start_with_dlq(&[("TPF_SWEEP_INTERVAL", "PT1S")]).await;
    let worker_port = free_port();
    let _worker = start_worker_with(
        worker_port,
        SECRET,
        &stack.state_root.join("worker.log"),
        &[("RESTAURANT_AWAIT_TIMEOUT", "PT2S")],
    );
    default_release_and_worker(&stack, worker_port).await;

    let id = submit(&stack).await;
    wait_status(&stack, &id, "WAITING_EXTERNAL").await;
    let events = history(&stack, &id).await;
    let waiting = events
        .iter()
        .find(|e| e["type"] == "WAITING_EXTERNAL")
        .unwrap();
    let iid = waiting["interactionId"].as_str().unwrap().to_string();
    let claimed_at = events[events.len() - 2]["atEpochMs"].as_i64().unwrap();
    let waiting_at = waiting["atEpochMs"].as_i64().unwrap();
    // Listed while open, with the worker's 2 s deadline.
    let pending = control_get(&stack, "/interactions/pending").await;
    let open = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["interactionId"] == iid.as_str())
        .unwrap_or_else(|| panic!("{iid} not pending: {pending}"));
    let deadline = open["deadlineEpochMs"].as_i64().unwrap();
    assert!(
        (claimed_at + 2_000..=waiting_at + 2_000).contains(&deadline),
        "deadline {deadline}, claimed {claimed_at}, waiting {waiting_at}"
    );

    // Nobody answers: the sweep times the await out after the 2 s deadline.
    let failed = wait_for_within(
        &stack,
        &format!("{CP}/executions/{id}"),
        CONTROL,
        Duration::from_secs(20),
        |v| v["status"] != "WAITING_EXTERNAL",
    )
    .await;
    assert_eq!(
        (
            failed["status"].as_str(),
            failed["errorCode"].as_str(),
            failed["errorMessage"].as_str(),
            failed["stepIndex"].as_u64()
        ),
        (
            Some("FAILED"),
            Some("AWAIT_TIMEOUT"),
            Some(format!("Await interaction timed out: {iid}").as_str()),
            Some(2)
        ),
        "{failed}"
    );
    let events = history(&stack, &id).await;
    let last = events.last().unwrap();
    // Failed by the 1 s sweep timer once the deadline had passed.
    let failed_at = last["atEpochMs"].as_i64().unwrap();
    assert!(
        (deadline..deadline + 3_000).contains(&failed_at),
        "deadline {deadline}, failed at {failed_at}"
    );
    assert_eq!(
        (
            last["type"].as_str(),
            last["previousStatus"].as_str(),
            last["terminalReason"].as_str(),
            last["transitionKey"].as_str()
        ),
        (
            Some("FAILED"),
            Some("WAITING_EXTERNAL"),
            Some("await_timeout"),
            Some(format!("{id}:2:0").as_str())
        ),
        "{last}"
    );

    // No longer pending.
    let pending = control_get(&stack, "/interactions/pending").await;
    assert!(
        !pending
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["interactionId"] == iid.as_str()),
        "{pending}"
    );

    // A late answer is refused, and the execution stays as it is.
    let (s, e) = complete(
        &stack,
        &json!(iid),
        decision(&uuid::Uuid::new_v4().to_string(), Some(true)),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("INTERACTION_TIMED_OUT")),
        "{e}"
    );
    let (_, now) = call(
        &stack,
        "GET",
        &format!("{CP}/executions/{id}"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(now["version"], failed["version"], "{now}");

    // Evidence in the dead-letter file; an await failure cannot be re-driven.
    let lines = wait_dlq(&stack, &dlq, 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (
            lines[0]["executionId"].as_str(),
            lines[0]["terminalReason"].as_str(),
            lines[0]["retryable"].as_bool(),
            lines[0]["errorCode"].as_str()
        ),
        (
            Some(id.as_str()),
            Some("await_timeout"),
            Some(false),
            Some("AWAIT_TIMEOUT")
        ),
        "{}",
        lines[0]
    );
    let (s, e) = redrive(&stack, &id, json!({"allowFailed": true})).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("EXECUTION_NOT_REDRIVABLE")),
        "{e}"
    );
}

#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn executions_stay_on_their_pinned_release_after_a_new_activation() {
    let stack = start_engine(&[]).await;
    // Worker A hosts the default release 2025.01.0.
    let port_a = free_port();
    let log_a = stack.state_root.join("worker-a.log");
    let _worker_a = start_worker(port_a, SECRET, &log_a);
    default_release_and_worker(&stack, port_a).await;
    let e1 = submit(&stack).await;
    wait_status(&stack, &e1, "WAITING_EXTERNAL").await;

    // Release 2025.02.0 and worker B (kitchen-2), which hosts only it.
    let spec2 = demo_release::DemoSpec {
        release_version: "2025.02.0".into(),
        ..Default::default()
    };
    let rel2 = register_release(&stack, &spec2).await;
    let port_b = free_port();
    let log_b = stack.state_root.join("worker-b.log");
    let env_b = [
        ("RESTAURANT_RELEASE_VERSION", "2025.02.0"),
        ("RESTAURANT_WORKER_ID", "kitchen-2"),
    ];
    let printed = Command::new(worker_bin())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port_b}"))
        .arg("--print-registration")
        .env("TPF_WORKER_SHARED_SECRET", SECRET)
        .envs(env_b)
        .output()
        .expect("restaurant-worker --print-registration");
    assert!(printed.status.success(), "{printed:?}");
    let body_b: Value = serde_json::from_slice(&printed.stdout).unwrap();
    // The worker's own registration is that of the registered release.
    assert_eq!(body_b, worker_body(&rel2, "kitchen-2", port_b));
    let identity = restaurant_worker::WorkerIdentity::from_spec(&spec2);
    assert_eq!(body_b["artifactDigest"], identity.artifact_digest.as_str());
    let _worker_b = start_worker_with(port_b, SECRET, &log_b, &env_b);
    register_worker(&stack, &body_b).await;
    activate(&stack, "2025.02.0").await;

    let e2 = submit(&stack).await;
    wait_status(&stack, &e2, "WAITING_EXTERNAL").await;

    // Both finish, each on the workers of its own release.
    approve_and_finish(&stack, &e1).await;
    approve_and_finish(&stack, &e2).await;
    for (id, worker) in [(&e1, "kitchen-1"), (&e2, "kitchen-2")] {
        let events = history(&stack, id).await;
        let by_worker: Vec<&Value> = events.iter().filter(|e| !e["workerId"].is_null()).collect();
        let kinds: Vec<&str> = by_worker
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["WAITING_EXTERNAL", "SUCCEEDED"], "{events:?}");
        for e in by_worker {
            assert_eq!(e["workerId"], worker, "{id}: {e}");
        }
    }
    let list = control_get(&stack, "/executions?pipelineId=restaurant-approval").await;
    let release_of = |id: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["executionId"] == id)
            .map(|i| i["releaseVersion"].clone())
    };
    assert_eq!(release_of(&e1), Some(json!("2025.01.0")), "{list}");
    assert_eq!(release_of(&e2), Some(json!("2025.02.0")), "{list}");

    // Each worker served only its own execution (step 0 and step 3).
    let (a, b) = (log_text(&log_a), log_text(&log_b));
    let served = |log: &str, id: &str| {
        log.lines()
            .filter(|l| l.contains(id) && l.contains("transition executed"))
            .count()
    };
    assert_eq!(
        (served(&a, &e1), served(&a, &e2)),
        (2, 0),
        "worker A log:\n{a}"
    );
    assert_eq!(
        (served(&b, &e1), served(&b, &e2)),
        (0, 2),
        "worker B log:\n{b}"
    );
}

/// Waits until something accepts connections on `port`.
async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// E2E-02 (`EXECUTION.md` §6, §7.3, §7.6; `API.md` §2.1 rule 6;
/// `RELEASES.md` §6.1): a worker whose lifecycle record names another
/// release does not make submit possible (503 `NO_HEALTHY_WORKER`, nothing
/// created); a worker whose record names the active release but whose
/// process hosts another one answers `FAILED` with
/// `java.lang.IllegalArgumentException`, which is retryable (§7.3), so the
/// execution is retried on it and ends `FAILED` with `retry_exhausted` and a
/// dead letter.
#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn e2e02_a_worker_of_another_release_is_not_eligible_and_fails_at_dispatch() {
    let (stack, dlq) =
        start_with_dlq(&[("TPF_MAX_RETRIES", "1"), ("TPF_RETRY_DELAY", "PT1S")]).await;
    let rel1 = register_release(&stack, &demo_release::DemoSpec::default()).await;
    activate(&stack, "2025.01.0").await;
    let spec2 = demo_release::DemoSpec {
        release_version: "2025.02.0".into(),
        ..Default::default()
    };
    let rel2 = register_release(&stack, &spec2).await;
    let other_release = [("RESTAURANT_RELEASE_VERSION", "2025.02.0")];

    // (a) kitchen-2 hosts 2025.02.0 and its record says so: HEALTHY, but
    // not for the active release.
    let port_b = free_port();
    let _worker_b = start_worker_with(
        port_b,
        SECRET,
        &stack.state_root.join("worker-b.log"),
        &other_release,
    );
    register_worker(&stack, &worker_body(&rel2, "kitchen-2", port_b)).await;
    // Registering it for 2025.01.0 is refused by the capability probe, and
    // stores nothing.
    let (s, e) = post_register_worker(&stack, worker_body(&rel1, "kitchen-2b", port_b)).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("WORKER_CAPABILITIES_MISMATCH")),
        "{e}"
    );
    let (s, e) = post_submit(
        &stack,
        json!({"pipelineId": "restaurant-approval", "inputShape": "UNI",
        "idempotencyKey": "e2e02-a", "inputPayload": {"payloadTypeId": ORDER_TYPE,
        "payloadEncoding": "application/tpf-transition+json",
        "payload": json!({"customerName": "Ada Lovelace"}).to_string()}}),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str(), e["message"].as_str()),
        (
            503,
            Some("NO_HEALTHY_WORKER"),
            Some(
                "No healthy worker for release 2025.01.0 of pipeline restaurant-approval; \
                 no worker lifecycle record is registered for this release"
            )
        ),
        "{e}"
    );
    let list = control_get(&stack, "/executions").await;
    assert_eq!(list["items"], json!([]), "nothing was created");

    // (b) kitchen-1 registers for 2025.01.0 (the probe sees 2025.01.0), then
    // its process is redeployed hosting 2025.02.0 on the same endpoint; its
    // record still names 2025.01.0.
    let port_a = free_port();
    let log_a = stack.state_root.join("worker-a.log");
    let worker_a = start_worker(port_a, SECRET, &log_a);
    register_worker(&stack, &worker_body(&rel1, "kitchen-1", port_a)).await;
    drop(worker_a);
    let _worker_a = start_worker_with(port_a, SECRET, &log_a, &other_release);
    wait_listening(port_a).await;

    let id = submit(&stack).await;
    let failed = wait_status(&stack, &id, "FAILED").await;
    let message = "java.lang.IllegalArgumentException: releaseVersion mismatch: \
                   command pins 2025.01.0, worker hosts 2025.02.0";
    assert_eq!(
        (
            failed["errorCode"].as_str(),
            failed["errorMessage"].as_str(),
            failed["attempt"].as_u64(),
            failed["stepIndex"].as_u64(),
        ),
        (
            Some("TransitionWorkerFailureException"),
            Some(message),
            Some(1),
            Some(0),
        ),
        "{failed}"
    );
    // Pinned to the active release, which the record names.
    let list = control_get(&stack, "/executions").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(
        (
            items[0]["executionId"].as_str(),
            items[0]["releaseVersion"].as_str()
        ),
        (Some(id.as_str()), Some("2025.01.0")),
        "{list}"
    );
    let events = history(&stack, &id).await;
    assert_eq!(
        types(&events),
        [
            "SUBMITTED",
            "CLAIMED",
            "RETRY_SCHEDULED",
            "CLAIMED",
            "FAILED"
        ],
        "{events:?}"
    );
    for e in [&events[2], &events[4]] {
        assert_eq!(e["workerId"], "kitchen-1", "{e}");
        assert_eq!(e["errorCode"], "TransitionWorkerFailureException", "{e}");
        assert_eq!(e["errorMessage"], message, "{e}");
    }
    assert_eq!(events[4]["terminalReason"], "retry_exhausted", "{events:?}");
    let lines = wait_dlq(&stack, &dlq, 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let dl = &lines[0];
    assert_eq!(
        (
            dl["executionId"].as_str(),
            dl["terminalReason"].as_str(),
            dl["retryable"].as_bool(),
            dl["errorCode"].as_str(),
            dl["errorMessage"].as_str(),
            dl["retriesObserved"].as_u64(),
            dl["transitionKey"].as_str(),
        ),
        (
            Some(id.as_str()),
            Some("retry_exhausted"),
            Some(true),
            Some("TransitionWorkerFailureException"),
            Some(message),
            Some(1),
            Some(format!("{id}:0:1").as_str()),
        ),
        "{dl}"
    );
    // The redeployed process was called twice and refused both times.
    let log = log_text(&log_a);
    let refused = log
        .lines()
        .filter(|l| {
            l.contains(&id)
                && l.contains("transition executed")
                && l.contains("FAILED")
                && l.contains("java.lang.IllegalArgumentException")
        })
        .count();
    assert_eq!(refused, 2, "worker A log:\n{log}");
}

/// The local AWS mode of the README (`infra/run-local-aws.sh`): the
/// restaurant flow with its await, end to end, on DynamoDB tables, an S3
/// bucket and SQS queues created on moto from template.yaml, the tokens and
/// the worker secret read from SSM and Secrets Manager, and the work carried
/// by SQS into the dispatcher through the event-source pump.
#[tokio::test]
#[ignore = "needs cargo-lambda and moto; run by infra/test.sh"]
async fn local_aws_mode_runs_the_restaurant_flow_on_dynamodb_s3_and_sqs() {
    let stack_name = format!("bb-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let aws = [
        ("TPF_LOCAL_AWS_STACK", stack_name.as_str()),
        ("TPF_LOCAL_SWEEP_SECONDS", "2"),
    ];
    let stack = start_aws_with(&[&ENGINE_ENV[..], &aws[..]].concat()).await;
    // The functions run with the environment the template gives them.
    let env = std::fs::read_to_string(stack.state_root.join("aws.env")).unwrap();
    for line in [
        "export TPF_STATE_PROVIDER='dynamo'",
        "export TPF_QUEUE_PROVIDER='sqs'",
        "export TPF_RELEASES_REGISTRY_PROVIDER='dynamo'",
        "export TPF_RELEASES_STORAGE_PROVIDER='s3'",
        "export TPF_ADMIN_TOKEN_REF='ssm:/tpf/admin-token'",
        "export TPF_WORKER_SHARED_SECRET_REF='secretsmanager:tpf/worker-shared-secret'",
        "unset TPF_ADMIN_TOKEN",
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} missing from:\n{env}"
        );
    }

    let worker_port = free_port();
    let _worker = start_worker(worker_port, SECRET, &stack.state_root.join("worker.log"));
    default_release_and_worker(&stack, worker_port).await;
    let id = submit(&stack).await;
    let st = approve_and_finish(&stack, &id).await;
    assert_eq!(st["status"], "SUCCEEDED", "{st}");

    // The work went through SQS: the pump delivered messages to the dispatcher.
    let log = stack.log();
    assert!(
        log.contains("SQS event source") && log.contains("delivered"),
        "no SQS delivery in the log:\n{}",
        stack.log_tail()
    );
    // The execution is an item of the stack's DynamoDB execution table.
    let endpoint = log
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("serving http")?;
            rest.split(" on ").nth(1)?.split(' ').next()
        })
        .expect("the script names its AWS endpoint")
        .to_string();
    let sdk = tpf_core::providers::aws_sdk::config_loader()
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let items = aws_sdk_dynamodb::Client::new(&sdk)
        .scan()
        .table_name(format!("{stack_name}-ExecutionTable"))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(
        items.iter().any(|item| format!("{item:?}").contains(&id)),
        "execution {id} not in {stack_name}-ExecutionTable"
    );
}
