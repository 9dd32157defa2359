//! COMP-15 across processes (`API.md` §2.5, `EXECUTION.md` §8.5, §10.4):
//! several `registry_race complete` processes complete one interaction at
//! the same moment on one `file` state root. Exactly one wins; the others
//! re-read the winner's `COMPLETED` and answer 409
//! `INTERACTION_ALREADY_COMPLETED` (different answer) or 200 `duplicate`
//! (same answer), never `CONCURRENT_MODIFICATION`.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use tpf_core::domain::envelope::{flatten, payload_hash};
use tpf_core::domain::execution::{EventType, ExecutionStatus, HistoryEvent};
use tpf_core::ports::{AwaitStore, CreateExecution, ExecutionStore, ImportOutcome, Write};
use tpf_core::providers::file::{FileAwaitStore, FileExecutionStore};
use tpf_tests::{envelope, import_records, queued_record, AwaitSpec, TENANT};

const BIN: &str = env!("CARGO_BIN_EXE_registry_race");
const PROCESSES: usize = 6;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A `registry_race complete` command on `root` sending `body`.
fn complete(root: &Path, body: &Value) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg(root)
        .arg(TENANT)
        .arg("restaurant-approval")
        .arg("complete")
        .arg(body.to_string());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Starts every command, lets them all begin at the same instant
/// (`RACE_START_AT_MS`), and returns each one's trimmed stdout, in order.
fn run_together(mut commands: Vec<Command>) -> Vec<String> {
    let start = now_ms() + 700;
    let children: Vec<Child> = commands
        .iter_mut()
        .map(|c| {
            c.env("RACE_START_AT_MS", start.to_string());
            c.spawn().unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "registry_race failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect()
}

/// Every non-temporary file in `dir` is whole JSON, and no temporary is left.
fn assert_whole(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.starts_with('.'),
            "temporary left in {}: {name}",
            dir.display()
        );
        let bytes = fs::read(dir.join(&name)).unwrap();
        serde_json::from_slice::<Value>(&bytes)
            .unwrap_or_else(|e| panic!("{name} in {} is not whole: {e}", dir.display()));
    }
}

/// The state of one prepared await: its execution, unit and interaction.
struct Parked {
    execution_id: String,
    spec: AwaitSpec,
}

/// Writes, through the `file` stores at `root`, an execution parked in
/// `WAITING_EXTERNAL` at step 2 (T1, T2, T4) and its imported unit and
/// interaction (deadline in 30 minutes).
async fn park(root: &Path, customer: &str) -> Parked {
    let executions = FileExecutionStore::new(root.to_path_buf());
    let awaits = FileAwaitStore::new(root.to_path_buf());
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let record = queued_record(
        TENANT,
        "restaurant-approval",
        "2025.01.0",
        &id,
        tpf_core::domain::execution::keyless_execution_key("restaurant-approval", "2025.01.0", &id),
        &json!({"customerName": customer}),
        now,
    );
    let created = executions
        .create(&record, &record.submitted_event(), None, now)
        .await
        .unwrap();
    assert_eq!(created, CreateExecution::Created);

    let spec = AwaitSpec::new(&id, 2, now);
    let imported = import_records(&awaits, &spec.unit(), &spec.interaction(), now).await;
    assert!(matches!(imported, ImportOutcome::Imported), "{imported:?}");

    let (claimed, event) = record.claim(now, "dispatch-preparer", 60_000);
    let w = executions.update(&claimed, 0, &event, now).await.unwrap();
    assert_eq!(w, Write::Written);
    let (waiting, event) = claimed.wait(
        now,
        2,
        &spec.unit_id,
        &spec.interaction_id,
        spec.ttl_epoch_s(),
        Some("kitchen-1"),
    );
    let w = executions.update(&waiting, 1, &event, now).await.unwrap();
    assert_eq!(w, Write::Written);
    Parked {
        execution_id: id,
        spec,
    }
}

/// A decision envelope distinct per `n`.
fn answer(n: usize) -> Value {
    envelope(
        "org.example.RestaurantDecision",
        &json!({"approved": n & 1 == 0, "by": format!("tablet-{n}")}).to_string(),
    )
}

fn history(events: Option<Vec<HistoryEvent>>) -> Vec<EventType> {
    events
        .unwrap_or_default()
        .iter()
        .map(|e| e.event_type)
        .collect()
}

#[tokio::test]
async fn comp_15_processes_completing_one_interaction_differently_one_wins_the_rest_409() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let p = park(root, "Ada Lovelace").await;
    let interaction_id = p.spec.interaction_id.clone();
    let bodies: Vec<Value> = (0..PROCESSES)
        .map(|n| {
            json!({
                "interactionId": interaction_id,
                "responsePayload": answer(n),
                "idempotencyKey": format!("key-{n}"),
                "actor": format!("tablet-{n}"),
            })
        })
        .collect();

    // Round 1: six different answers at once.
    let outputs = run_together(bodies.iter().map(|b| complete(root, b)).collect());
    let winners: Vec<usize> = (0..PROCESSES)
        .filter(|n| outputs[*n] == "200 false")
        .collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {outputs:?}");
    let winner = winners[0];
    for (n, out) in outputs.iter().enumerate() {
        if n != winner {
            assert_eq!(
                out, "INTERACTION_ALREADY_COMPLETED",
                "process {n}: {outputs:?}"
            );
        }
    }

    // The stored interaction holds the winner's completion.
    let awaits = FileAwaitStore::new(root.to_path_buf());
    let now = now_ms();
    let stored = awaits
        .get_interaction(TENANT, &interaction_id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, "COMPLETED");
    assert_eq!(stored.version, 3, "one completion write");
    assert_eq!(stored.actor, Some(format!("tablet-{winner}")));
    assert_eq!(
        stored.completion_idempotency_key,
        Some(format!("key-{winner}"))
    );
    assert_eq!(
        stored.completion_payload_hash,
        Some(payload_hash(&answer(winner)))
    );
    assert_eq!(
        stored.response_payload.as_deref().map(RawValue::get),
        Some(flatten(&answer(winner)).unwrap().as_str())
    );
    let unit = awaits
        .get_unit(TENANT, &p.spec.unit_id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unit.status, "COMPLETED");

    // The parent was released once, to the step after the await.
    let executions = FileExecutionStore::new(root.to_path_buf());
    let r = executions
        .get(TENANT, &p.execution_id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.status, r.current_step_index, r.version),
        (ExecutionStatus::Queued, 3, 3)
    );
    let h = history(
        executions
            .history(TENANT, &p.execution_id, None, 100, now)
            .await
            .unwrap(),
    );
    assert_eq!(
        h,
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::WaitingExternal,
            EventType::Resumed
        ]
    );

    // Round 2: six processes repeat the winner's completion: all duplicates,
    // nothing changes.
    let outputs = run_together(
        (0..PROCESSES)
            .map(|_| complete(root, &bodies[winner]))
            .collect(),
    );
    assert!(outputs.iter().all(|o| o == "200 true"), "{outputs:?}");
    // The same answer under another key, and another answer under the
    // winner's key, are duplicates too; a new answer under a new key is 409.
    let mut same_payload = bodies[winner].clone();
    same_payload["idempotencyKey"] = json!("another-key");
    let mut same_key = bodies[(winner + 1) % PROCESSES].clone();
    same_key["idempotencyKey"] = json!(format!("key-{winner}"));
    let mut different = bodies[(winner + 1) % PROCESSES].clone();
    different["idempotencyKey"] = json!("fresh-key");
    let outputs = run_together(vec![
        complete(root, &same_payload),
        complete(root, &same_key),
        complete(root, &different),
    ]);
    assert_eq!(
        outputs,
        ["200 true", "200 true", "INTERACTION_ALREADY_COMPLETED"]
    );
    let again = awaits
        .get_interaction(TENANT, &interaction_id, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.version, stored.version);
    assert_eq!(again.actor, stored.actor);
    assert_eq!(
        again.completion_payload_hash,
        stored.completion_payload_hash
    );
    let r = executions
        .get(TENANT, &p.execution_id, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.status, r.version), (ExecutionStatus::Queued, 3));

    let tenant = root.join(TENANT);
    for d in ["executions", "units", "interactions", "correlations"] {
        assert_whole(&tenant.join(d));
    }
}

#[tokio::test]
async fn comp_15_processes_sending_the_same_completion_at_once_create_one_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let p = park(root, "Grace Hopper").await;
    // By correlation id, one answer and one key for all.
    let body = json!({
        "correlationId": p.spec.correlation_id,
        "responsePayload": answer(0),
        "idempotencyKey": "one-key",
        "actor": "tablet-0",
    });
    let outputs = run_together((0..PROCESSES).map(|_| complete(root, &body)).collect());
    let counts: Vec<usize> = ["200 false", "200 true"]
        .iter()
        .map(|want| outputs.iter().filter(|o| o == want).count())
        .collect();
    assert_eq!(counts, [1, PROCESSES - 1], "{outputs:?}");

    let now = now_ms();
    let awaits = FileAwaitStore::new(root.to_path_buf());
    let stored = awaits
        .get_interaction(TENANT, &p.spec.interaction_id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.status.as_str(), stored.version), ("COMPLETED", 3));
    assert_eq!(
        stored.completion_idempotency_key.as_deref(),
        Some("one-key")
    );
    let executions: Arc<dyn ExecutionStore> = Arc::new(FileExecutionStore::new(root.to_path_buf()));
    let events = history(
        executions
            .history(TENANT, &p.execution_id, None, 100, now)
            .await
            .unwrap(),
    );
    assert_eq!(
        events.iter().filter(|e| **e == EventType::Resumed).count(),
        1,
        "released once: {events:?}"
    );
    let ids: BTreeSet<String> = fs::read_dir(root.join(TENANT).join("interactions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([format!("{}.json", p.spec.interaction_id)])
    );
}

#[tokio::test]
async fn a_complete_process_reports_client_errors_by_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let p = park(root, "Alan Turing").await;
    let outputs = run_together(vec![
        complete(
            root,
            &json!({"interactionId": "no-such-interaction", "responsePayload": answer(1)}),
        ),
        complete(root, &json!({"interactionId": p.spec.interaction_id})),
        complete(
            root,
            &json!({"interactionId": p.spec.interaction_id, "responsePayload": {"payload": 1}}),
        ),
    ]);
    assert_eq!(
        outputs,
        ["INTERACTION_NOT_FOUND", "MISSING_FIELD", "INVALID_PAYLOAD"]
    );
    // Nothing was written.
    let i = FileAwaitStore::new(root.to_path_buf())
        .get_interaction(TENANT, &p.spec.interaction_id, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((i.status.as_str(), i.version), ("DISPATCHED", 2));
}
