//! RRP-02 and WL-09 across processes: several `registry_race` processes
//! work on one storage root at the same moment; afterwards every record is
//! whole and no update was lost.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tpf_core::domain::release::ActivationEvent;
use tpf_core::ports::{ReleaseRegistry, WorkerRegistry};
use tpf_core::providers::file::{FileReleaseRegistry, FileWorkerRegistry};

const BIN: &str = env!("CARGO_BIN_EXE_registry_race");

/// A `registry_race` command on `root`, for `acme/orders`.
fn race(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg(root).arg("acme").arg("orders").args(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Starts every command now, lets them all begin their operation at the
/// same instant (`RACE_START_AT_MS`), and returns each one's trimmed stdout.
fn run_together(mut commands: Vec<Command>) -> Vec<String> {
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 500;
    let together = commands.len() > 1;
    let children: Vec<Child> = commands
        .iter_mut()
        .map(|c| {
            if together {
                c.env("RACE_START_AT_MS", start.to_string());
            }
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

/// Every file (temporaries included, had any been left) in `dir` parses as JSON.
fn assert_all_json(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        assert!(
            serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "{} is not whole",
            path.display()
        );
    }
}

#[tokio::test]
async fn rrp02_concurrent_creates_of_one_version_create_once() {
    let dir = tempfile::tempdir().unwrap();
    let commands = (0..8)
        .map(|i| race(dir.path(), &["create", "1.0.0", &(1_000 + i).to_string()]))
        .collect();
    let outputs = run_together(commands);
    assert_eq!(
        outputs.iter().filter(|o| *o == "CREATED").count(),
        1,
        "{outputs:?}"
    );
    assert_eq!(
        outputs.iter().filter(|o| *o == "EXISTS").count(),
        7,
        "{outputs:?}"
    );

    let releases = dir.path().join("registry/acme/orders/releases");
    assert_all_json(&releases);
    assert_eq!(
        fs::read_dir(&releases).unwrap().count(),
        1,
        "no temporary left"
    );
    let registry = FileReleaseRegistry::new(dir.path().to_path_buf());
    let record = registry
        .get_release("acme", "orders", "1.0.0")
        .await
        .unwrap()
        .unwrap();
    assert!((1_000..1_008).contains(&record.created_at_epoch_ms));
}

#[tokio::test]
async fn rrp02_concurrent_creates_of_different_versions_all_create() {
    let dir = tempfile::tempdir().unwrap();
    let commands = (0..8)
        .map(|i| race(dir.path(), &["create", &format!("v{i}"), "5"]))
        .collect();
    let outputs = run_together(commands);
    assert!(outputs.iter().all(|o| o == "CREATED"), "{outputs:?}");
    assert_all_json(&dir.path().join("registry/acme/orders/releases"));
    let registry = FileReleaseRegistry::new(dir.path().to_path_buf());
    let listed: Vec<_> = registry
        .list_releases("acme", "orders", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.release_version)
        .collect();
    assert_eq!(listed, (0..8).map(|i| format!("v{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn rrp02_concurrent_activations_take_consecutive_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let registry = FileReleaseRegistry::new(dir.path().to_path_buf());
    for i in 0..8 {
        let out = run_together(vec![race(
            dir.path(),
            &["create", &format!("v{i}"), &i.to_string()],
        )]);
        assert_eq!(out, ["CREATED"]);
    }
    assert_eq!(
        run_together(vec![race(dir.path(), &["append", "nope", "1"])]),
        ["RELEASE_MISSING"]
    );

    let commands = (0..8)
        .map(|i| race(dir.path(), &["activate", &format!("v{i}")]))
        .collect();
    let mut seqs: Vec<u64> = run_together(commands)
        .iter()
        .map(|o| o.parse().unwrap_or_else(|_| panic!("not a seq: {o}")))
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=8).collect::<Vec<u64>>(),
        "each seq exactly once, no gaps"
    );

    let activations = dir.path().join("registry/acme/orders/activations");
    assert_all_json(&activations);
    assert_eq!(
        fs::read_dir(&activations).unwrap().count(),
        8,
        "no temporary left"
    );
    let events = registry
        .list_events("acme", "orders", None, 100)
        .await
        .unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    // No lost update: each event names, as previous, the one before it.
    assert_eq!(events[0].previous_release_version, None);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].previous_release_version.as_ref(),
            Some(&pair[0].release_version)
        );
    }
    let versions: BTreeSet<_> = events.iter().map(|e| e.release_version.clone()).collect();
    assert_eq!(versions.len(), 8, "every process's activation is recorded");
    let latest: ActivationEvent = registry
        .latest_event("acme", "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest, events[7]);

    // A new process sees the state.
    assert_eq!(
        run_together(vec![race(dir.path(), &["append", "v0", "8"])]),
        ["SEQ_TAKEN"]
    );
    assert_eq!(
        run_together(vec![race(dir.path(), &["activate", "v0"])]),
        ["9"]
    );
}

#[tokio::test]
async fn rrp02_a_writer_killed_mid_write_leaves_every_record_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = race(dir.path(), &["create-many", "k", "1000000"])
        .spawn()
        .unwrap();
    let releases = dir.path().join("registry/acme/orders/releases");
    // Let it write a while, then kill it wherever it is.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // (One entry may be the writer's current temporary.)
    while fs::read_dir(&releases).map(|d| d.count()).unwrap_or(0) < 51 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer made no progress"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let registry = FileReleaseRegistry::new(dir.path().to_path_buf());
    let listed = registry
        .list_releases("acme", "orders", None, usize::MAX)
        .await
        .unwrap();
    assert!(listed.len() >= 50);
    // Every non-temporary file is a whole record (a temporary may be partial).
    for entry in fs::read_dir(&releases).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.starts_with('.') {
            let bytes = fs::read(releases.join(&name)).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
        }
    }
    // And the directory is still usable by a new process.
    assert_eq!(
        run_together(vec![race(dir.path(), &["create", "k-0"])]),
        ["EXISTS"]
    );
    assert_eq!(
        run_together(vec![race(dir.path(), &["create", "after-kill"])]),
        ["CREATED"]
    );
}

#[tokio::test]
async fn wl09_processes_changing_one_worker_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run_together(vec![race(dir.path(), &["register", "kitchen-1"])]),
        ["REGISTERED"]
    );
    let commands = (0..4)
        .map(|_| race(dir.path(), &["heartbeat-loop", "kitchen-1", "25"]))
        .collect();
    let outputs = run_together(commands);
    assert!(outputs.iter().all(|o| o == "DONE 5"), "{outputs:?}");

    let registry = FileWorkerRegistry::new(dir.path().join("workers"));
    let entry = registry
        .get_worker("acme", "orders", "kitchen-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.state_version, 1 + 4 * 25);
    let events = registry
        .worker_events("acme", "orders", "kitchen-1")
        .await
        .unwrap();
    assert_eq!(events.len(), 1 + 4 * 5);
    for e in &events {
        assert_eq!(e.state_version, e.snapshot.state_version);
    }
    let base = dir.path().join("workers/acme/orders");
    assert_all_json(&base.join("workers"));
    assert_all_json(&base.join("events/kitchen-1"));
    assert_eq!(
        fs::read_dir(base.join("workers")).unwrap().count(),
        1,
        "no temporary left"
    );
}

/// Writes demo release `version` (its own artifact bytes) beneath `root`.
fn demo(root: &Path, version: &str) -> std::path::PathBuf {
    let spec = demo_release::DemoSpec {
        pipeline_id: "orders".into(),
        release_version: version.into(),
        ..demo_release::DemoSpec::default()
    };
    demo_release::write_release(root, &spec)
        .unwrap()
        .descriptor_path
}

fn action(dir: &Path, registration_root: &Path, args: &[&str]) -> Command {
    let mut c = race(dir, args);
    c.env("RACE_REGISTRATION_ROOT", registration_root);
    c
}

#[tokio::test]
async fn rrp02_register_and_activate_actions_race_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("releases");
    fs::create_dir_all(&roots).unwrap();
    let store = dir.path().join("state");
    let v1 = demo(&roots, "1.0");
    let v2 = demo(&roots, "2.0");

    // Six processes register the same release at once: all 200, one record,
    // each answering with the winner's createdAtEpochMs; one stored object.
    let v1_str = v1.to_str().unwrap().to_owned();
    let outputs = run_together(
        (0..6)
            .map(|_| action(&store, &roots, &["register-action", &v1_str]))
            .collect(),
    );
    assert!(outputs.iter().all(|o| o.starts_with("200 ")), "{outputs:?}");
    assert_eq!(
        outputs.iter().collect::<BTreeSet<_>>().len(),
        1,
        "one winner: {outputs:?}"
    );
    let records = store.join("registry/acme/orders/releases");
    assert_eq!(fs::read_dir(&records).unwrap().count(), 1);
    assert_all_json(&records);
    let objects: Vec<_> = fs::read_dir(store.join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");

    // A second version, then six processes activating 1.0 and 2.0 at once.
    let v2_str = v2.to_str().unwrap().to_owned();
    assert!(
        run_together(vec![action(&store, &roots, &["register-action", &v2_str])])[0]
            .starts_with("200 ")
    );
    let outputs = run_together(
        (0..6)
            .map(|i| {
                action(
                    &store,
                    &roots,
                    &["activate-action", if i % 2 == 0 { "1.0" } else { "2.0" }],
                )
            })
            .collect(),
    );
    assert!(
        outputs
            .iter()
            .all(|o| o == "200" || o == "CONCURRENT_MODIFICATION"),
        "{outputs:?}"
    );
    assert!(outputs.iter().any(|o| o == "200"));
    let registry = FileReleaseRegistry::new(store.clone());
    let events: Vec<ActivationEvent> = registry
        .list_events("acme", "orders", None, 100)
        .await
        .unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "gapless"
    );
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].previous_release_version.as_deref(),
            Some(pair[0].release_version.as_str())
        );
        assert_ne!(
            pair[0].release_version, pair[1].release_version,
            "re-activation is a no-op"
        );
    }
    assert_all_json(&store.join("registry/acme/orders/activations"));
}

// ---------------------------------------------------------------------------
// STORE-06 (`EXECUTION.md` §10.4): a process killed mid-write leaves every
// file of the `file` execution and await stores whole, and a fresh store
// (and a new process) can still work on them.

const TENANT: &str = "acme";

/// A `registry_race` command on the state root `root` for `acme/orders`.
fn state_race(root: &Path, args: &[&str]) -> Command {
    race(root, args)
}

/// Starts `cmd`, waits until `progress()` reaches `at_least` (or fails after
/// 60 s), lets it run a few more milliseconds (a different cut each round),
/// then kills it with SIGKILL wherever it is and checks it really died of
/// that signal (it was still writing).
fn kill_mid_loop(mut cmd: Command, progress: impl Fn() -> usize, at_least: usize, extra_ms: u64) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while progress() < at_least {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the writer ended early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the writer made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(extra_ms));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed mid-loop: {status}");
}

/// The non-temporary file names in `dir` (none when it does not exist).
fn record_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Every non-temporary file in `dir` parses as a whole record of the
/// type `parse` reads; returns them by name.
fn parse_all<T>(
    dir: &Path,
    parse: impl Fn(serde_json::Value) -> serde_json::Result<T>,
) -> Vec<(String, T)> {
    record_names(dir)
        .into_iter()
        .map(|name| {
            let bytes = fs::read(dir.join(&name)).unwrap();
            let value = serde_json::from_slice(&bytes)
                .and_then(&parse)
                .unwrap_or_else(|e| {
                    panic!("{name} in {} is not a whole record: {e}", dir.display())
                });
            (name, value)
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn store06_an_execution_writer_killed_mid_write_leaves_every_file_whole() {
    use tpf_core::domain::execution::{execution_key, EventType, ExecutionRecord, KeyEntry};
    use tpf_core::ports::{CreateExecution, ExecutionStore, Write};
    use tpf_core::providers::file::FileExecutionStore;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let executions = root.join("acme/executions");
    let keys = root.join("acme/keys");
    let main = "loop-exec";
    let key_of = |raw: &str| execution_key("orders", "race", raw);

    // Three rounds: a writer killed at a different moment each time, then
    // the state checked, then a new writer continuing on it.
    let mut seen_version = 0;
    for (round, extra_ms) in [0u64, 7, 13].into_iter().enumerate() {
        let before = record_names(&executions).len();
        kill_mid_loop(
            state_race(root, &["exec-loop", main, "1000000"]),
            || record_names(&executions).len(),
            before + 40,
            extra_ms,
        );

        // 1. Every record and key entry file is whole.
        let records: Vec<(String, ExecutionRecord)> =
            parse_all(&executions, serde_json::from_value);
        let entries: Vec<(String, KeyEntry)> = parse_all(&keys, serde_json::from_value);
        for (name, r) in &records {
            assert_eq!(name, &format!("{}.json", r.execution_id));
            let raw: serde_json::Value =
                serde_json::from_slice(&fs::read(executions.join(name)).unwrap()).unwrap();
            assert_eq!(
                raw["history"].as_array().unwrap().len() as u64,
                r.version + 1,
                "{name}: one event per version"
            );
        }

        // 2. A fresh store reads the looping execution with a gapless
        // history that matches the record.
        let store = FileExecutionStore::new(root.to_path_buf());
        let now = now_ms();
        let r = store.get(TENANT, main, now).await.unwrap().unwrap();
        assert!(r.version > seen_version, "round {round} wrote");
        let history = store
            .history(TENANT, main, None, usize::MAX, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            history.iter().map(|e| e.version).collect::<Vec<_>>(),
            (0..=r.version).collect::<Vec<_>>(),
            "gapless history"
        );
        assert_eq!(history[0].event_type, EventType::Submitted);
        // This round's writer started at `seen_version`: claim, retry, …
        for e in &history[seen_version as usize + 1..] {
            let want = if (e.version - seen_version) % 2 == 1 {
                EventType::Claimed
            } else {
                EventType::RetryScheduled
            };
            assert_eq!(e.event_type, want, "event {}", e.version);
        }
        let last = history.last().unwrap();
        assert_eq!(last.status, r.status);
        // Each round writes the key entry (TTL + 1 s) before the record:
        // the entry is never behind the record, at most one write ahead.
        let entry = store
            .get_key(TENANT, &key_of(&format!("{main}-key")), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.execution_id, main);
        assert!(
            entry.ttl_epoch_s == r.ttl_epoch_s || entry.ttl_epoch_s == r.ttl_epoch_s + 1,
            "key TTL {} vs record TTL {}",
            entry.ttl_epoch_s,
            r.ttl_epoch_s
        );

        // 3. The executions created in the loop (T1: key entry, then
        // record): each one's key resolves to it; a key entry may be the
        // only trace of the create that was cut, and then its key is free.
        let prefix = format!("{main}-c");
        let created: BTreeSet<String> = records
            .iter()
            .map(|(_, r)| r.execution_id.clone())
            .filter(|id| id.starts_with(&prefix))
            .collect();
        for id in &created {
            let v = &id[prefix.len()..];
            let e = store
                .get_key(TENANT, &key_of(&format!("{main}-k{v}")), now)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{id} lost its key entry"));
            assert_eq!(&e.execution_id, id);
            let rec = store.get(TENANT, id, now).await.unwrap().unwrap();
            assert_eq!((rec.version, rec.execution_key), (0, e.execution_key));
        }
        let ids: BTreeSet<&str> = records
            .iter()
            .map(|(_, r)| r.execution_id.as_str())
            .collect();
        let orphans: Vec<&KeyEntry> = entries
            .iter()
            .map(|(_, e)| e)
            .filter(|e| !ids.contains(e.execution_id.as_str()))
            .collect();
        assert!(orphans.len() <= 1, "one create cut at most: {orphans:?}");
        for e in &orphans {
            assert!(e.execution_id.starts_with(&prefix), "{e:?}");
            assert_eq!(
                store.get_key(TENANT, &e.execution_key, now).await.unwrap(),
                None,
                "a key entry without its execution is free"
            );
        }
        // Every finished round of this writer created its execution (no
        // lost write); only the create of the round cut last may be missing.
        let rounds_done: BTreeSet<u64> = history
            .iter()
            .filter(|e| e.event_type == EventType::RetryScheduled && e.version > seen_version)
            .map(|e| e.version)
            .collect();
        let created_now: BTreeSet<u64> = created
            .iter()
            .map(|id| id[prefix.len()..].parse().unwrap())
            .filter(|v| *v > seen_version)
            .collect();
        assert!(created_now.is_subset(&rounds_done), "{created_now:?}");
        let missing: Vec<u64> = rounds_done.difference(&created_now).copied().collect();
        assert!(
            missing.is_empty()
                || (missing == [last.version] && last.event_type == EventType::RetryScheduled),
            "only the round cut last may lack its execution: {missing:?}"
        );
        if let Some(o) = orphans.first() {
            assert_eq!(missing.len(), 1, "an orphan key belongs to the cut create");
            assert_eq!(o.execution_id, format!("{prefix}{}", missing[0]));
        }

        // 4. A fresh store can still update it, and the conditions hold.
        let (claimed, event) = r.claim(now, "dispatch-after-kill", 60_000);
        assert_eq!(
            store
                .update(&claimed, r.version, &event, now)
                .await
                .unwrap(),
            Write::Written
        );
        assert_eq!(
            store
                .update(&claimed, r.version, &event, now)
                .await
                .unwrap(),
            Write::Lost,
            "a stale version is refused"
        );
        let (retry, event) = claimed.schedule_retry(
            now,
            claimed.attempt + 1,
            now,
            "AFTER_KILL",
            "after kill",
            None,
        );
        assert_eq!(
            store
                .update(&retry, claimed.version, &event, now)
                .await
                .unwrap(),
            Write::Written
        );
        // An orphan key is taken by a new execution.
        for e in &orphans {
            let mut rec = store.get(TENANT, main, now).await.unwrap().unwrap();
            rec.execution_id = format!("retaken-{}", rec.version);
            rec.execution_key = e.execution_key.clone();
            rec.version = 0;
            rec.status = tpf_core::domain::execution::ExecutionStatus::Queued;
            let entry = KeyEntry {
                execution_id: rec.execution_id.clone(),
                created_at_epoch_ms: now,
                ..(*e).clone()
            };
            let out = store
                .create(&rec, &rec.submitted_event(), Some(&entry), now)
                .await
                .unwrap();
            assert_eq!(out, CreateExecution::Created);
        }
        let after = store
            .history(TENANT, main, None, usize::MAX, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.len() as u64, r.version + 3);
        seen_version = r.version + 2;
    }

    // A new process continues the loop on the same files.
    let out = run_together(vec![state_race(root, &["exec-loop", main, "3"])]);
    assert_eq!(out, [format!("DONE {}", seen_version + 6)]);
    let store = FileExecutionStore::new(root.to_path_buf());
    let h = store
        .history(TENANT, main, None, usize::MAX, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        h.iter().map(|e| e.version).collect::<Vec<_>>(),
        (0..=seen_version + 6).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn store06_an_await_writer_killed_mid_write_leaves_every_file_whole() {
    use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
    use tpf_core::ports::{AwaitStore, ImportOutcome, PendingFilter, Write};
    use tpf_core::providers::file::FileAwaitStore;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tenant_dir = root.join("acme");
    let (units, interactions, correlations) = (
        tenant_dir.join("units"),
        tenant_dir.join("interactions"),
        tenant_dir.join("correlations"),
    );
    for (round, extra_ms) in [0u64, 5, 11].into_iter().enumerate() {
        let prefix = format!("r{round}");
        kill_mid_loop(
            state_race(root, &["await-loop", &prefix, "1000000"]),
            || {
                record_names(&units)
                    .iter()
                    .filter(|n| n.starts_with(&format!("{prefix}-")))
                    .count()
            },
            40,
            extra_ms,
        );

        // 1. Every file is a whole record.
        let us: Vec<(String, AwaitUnit)> = parse_all(&units, serde_json::from_value);
        let is: Vec<(String, AwaitInteraction)> = parse_all(&interactions, serde_json::from_value);
        // {"tenantId","correlationId","interactionId","ttlEpochS"} (§10.4)
        let cs = parse_all(&correlations, Ok);
        for (name, c) in &cs {
            assert_eq!(
                name,
                &format!("{}.json", c["correlationId"].as_str().unwrap())
            );
            assert_eq!(c["tenantId"], TENANT);
            let iid = c["interactionId"].as_str().unwrap();
            assert!(is.iter().any(|(_, i)| i.interaction_id == iid), "{name}");
            assert!(c["ttlEpochS"].as_i64().unwrap() > now_ms() / 1000);
        }
        let mine = |n: &str| n.starts_with(&format!("{prefix}-"));
        let rounds = is.iter().filter(|(n, _)| mine(n)).count();

        // 2. This round's records: the loop did import (interaction,
        // correlation, unit), complete, finish the unit, settle. Every
        // round but the last one cut is whole and finished; the cut one is
        // a prefix of those writes.
        let store = FileAwaitStore::new(root.to_path_buf());
        let now = now_ms();
        let cut = rounds - 1;
        for i in 0..rounds {
            let iid = format!("{prefix}-i{i}");
            let (uid, cid) = (format!("{prefix}-u{i}"), format!("{prefix}-c{i}"));
            let interaction = store
                .get_interaction(TENANT, &iid, now)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("interaction {iid} missing"));
            let unit = store.get_unit(TENANT, &uid, now).await.unwrap();
            let by_corr = store.get_by_correlation(TENANT, &cid, now).await.unwrap();
            if i < cut {
                assert_eq!(
                    (interaction.status.as_str(), interaction.version),
                    ("COMPLETED", 3),
                    "{iid}"
                );
                assert_eq!(interaction.settle_due_epoch_ms, None, "{iid} settled");
                assert_eq!(interaction.actor.as_deref(), Some("await-loop"));
                let unit = unit.unwrap_or_else(|| panic!("unit {uid} missing"));
                assert_eq!((unit.status.as_str(), unit.version), ("COMPLETED", 2));
                assert_eq!(by_corr.map(|i| i.interaction_id), Some(iid.clone()));
                continue;
            }
            // The cut round: which writes landed, in order.
            let landed = [
                by_corr.is_some(),
                unit.is_some(),
                interaction.status == "COMPLETED",
                unit.as_ref().is_some_and(|u| u.status == "COMPLETED"),
                interaction.status == "COMPLETED" && interaction.settle_due_epoch_ms.is_none(),
            ];
            let n = landed.iter().take_while(|l| **l).count();
            assert!(
                landed[n..].iter().all(|l| !l),
                "{iid}: writes landed out of order: {landed:?}"
            );
            match interaction.status.as_str() {
                "DISPATCHED" => assert_eq!(interaction.version, 2),
                "COMPLETED" => assert_eq!(interaction.version, 3),
                other => panic!("{iid} is {other}"),
            }

            // 3. A fresh store finishes the cut round: a repeated import
            // keeps the interaction and adds what is missing; then the
            // completion and the unit's end, exactly once each.
            let mut spec = tpf_tests::AwaitSpec::new(&format!("{prefix}-e{i}"), 2, now);
            spec.unit_id = uid.clone();
            spec.interaction_id = iid.clone();
            spec.correlation_id = cid.clone();
            let u: AwaitUnit = serde_json::from_value(spec.unit()).unwrap();
            let fresh: AwaitInteraction = serde_json::from_value(spec.interaction()).unwrap();
            match store.import(&u, &fresh, now).await.unwrap() {
                ImportOutcome::Imported => assert!(unit.is_none(), "the unit existed"),
                ImportOutcome::Existing(stored_unit, stored_interaction) => {
                    assert!(unit.is_some());
                    assert_eq!(stored_unit.unit_id, uid);
                    assert_eq!(stored_interaction.interaction_id, iid);
                }
                ImportOutcome::Conflict(why) => panic!("{iid}: {why}"),
            }
            let stored = store
                .get_interaction(TENANT, &iid, now)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                stored.created_at_epoch_ms, interaction.created_at_epoch_ms,
                "kept"
            );
            let mut done = stored.clone();
            done.status = "COMPLETED".into();
            done.version = stored.version + 1;
            done.actor = Some("after-kill".into());
            done.updated_at_epoch_ms = now;
            let w = store
                .update_interaction(&done, stored.version, now)
                .await
                .unwrap();
            assert_eq!(
                w,
                if stored.status == "DISPATCHED" {
                    Write::Written
                } else {
                    Write::Lost
                },
                "a completed interaction is never overwritten"
            );
            let w = store
                .finish_unit(TENANT, &uid, "COMPLETED", now)
                .await
                .unwrap();
            let unit_was_waiting = !landed[3];
            assert_eq!(w == Write::Written, unit_was_waiting);
            assert_eq!(
                store
                    .finish_unit(TENANT, &uid, "COMPLETED", now)
                    .await
                    .unwrap(),
                Write::Lost
            );
            assert_eq!(
                store
                    .get_by_correlation(TENANT, &cid, now)
                    .await
                    .unwrap()
                    .map(|i| i.status),
                Some("COMPLETED".to_string())
            );
        }
        // At most one round cut: every unit file of the round but the cut
        // one has its interaction; nothing of the round is left open.
        let round_units = us.iter().filter(|(n, _)| mine(n)).count();
        assert!(round_units == rounds || round_units + 1 == rounds);
        assert!(store
            .pending(TENANT, &PendingFilter::default(), None, 1000, now)
            .await
            .unwrap()
            .is_empty());
    }

    // A new process carries on in the same directories.
    let out = run_together(vec![state_race(root, &["await-loop", "after", "3"])]);
    assert_eq!(out, ["DONE"]);
    let store = FileAwaitStore::new(root.to_path_buf());
    let now = now_ms();
    for i in 0..3 {
        let u = store
            .get_unit(TENANT, &format!("after-u{i}"), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.status, "COMPLETED");
    }
}

// ---------------------------------------------------------------------------
// A control-plane process killed mid-transition (`EXECUTION.md` §3.5, §5.2,
// §5.4): a `registry_race dispatch` process claims the execution on the
// `file` stores and calls a worker that does not answer; it is killed
// (SIGKILL) while the call is in flight. After the lease, the sweep and the
// dispatcher of this process recover it as §3.5 says, and it completes.

#[tokio::test]
async fn a_control_plane_process_killed_mid_transition_is_recovered_after_its_lease() {
    use serde_json::json;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tpf_core::actions::register_release::DescriptorSource;
    use tpf_core::actions::{
        activate_release, process_work_item, register_release, sweep_once, EngineDeps, ReleaseDeps,
    };
    use tpf_core::domain::execution::{EventType, ExecutionStatus};
    use tpf_core::domain::location::Root;
    use tpf_core::domain::worker::WorkerEntry;
    use tpf_core::ports::ExecutionStore;
    use tpf_core::providers::file::{
        FileAwaitStore, FileExecutionStore, LocalArtifactStore, LocalLocationReader,
    };
    use tpf_tests::{
        call_on, decision, put_worker_entry_in, submit_body, work_item, Harness, Options,
        Processed, CONTROL, PIPELINE, SECRET,
    };

    let h = Harness::new(Options {
        env: vec![],
        restaurant_worker: false,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let state = root.join("state");
    let releases_dir = root.join("releases");
    fs::create_dir_all(&releases_dir).unwrap();
    let spec = demo_release::DemoSpec::default();

    // The release, registered and activated in the `file` registry the
    // child reads too.
    let release_deps = ReleaseDeps {
        registry: Arc::new(FileReleaseRegistry::new(root.to_path_buf())),
        store: Arc::new(LocalArtifactStore::new(root.to_path_buf())),
        locations: Arc::new(LocalLocationReader),
        clock: h.clock.clone(),
        roots: vec![Root::Local(releases_dir.to_str().unwrap().into())],
        max_artifact_bytes: 10_000_000,
    };
    let demo = demo_release::write_release(&releases_dir, &spec).unwrap();
    let source = DescriptorSource::Location(demo.descriptor_path.to_str().unwrap().into());
    register_release::run(&release_deps, TENANT, PIPELINE, source)
        .await
        .unwrap();
    activate_release::run(&release_deps, TENANT, PIPELINE, &spec.release_version)
        .await
        .unwrap();

    // The worker: the first call never gets an answer; later calls go to
    // the example restaurant worker (same signature, same path).
    let calls = Arc::new(AtomicUsize::new(0));
    let restaurant = h.worker_url.clone();
    let url = {
        let calls = calls.clone();
        tpf_tests::serve_worker_fn(move |call| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let restaurant = restaurant.clone();
            async move {
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                let mut req = reqwest::Client::new()
                    .post(format!("{restaurant}{}", call.path))
                    .body(call.body.to_vec());
                for (name, value) in call.headers.iter() {
                    if name != "host" && name != "content-length" {
                        req = req.header(name.as_str(), value.as_bytes());
                    }
                }
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            }
        })
        .await
    };
    let workers = FileWorkerRegistry::new(root.join("workers"));
    // A heartbeat of `kitchen-1` at `at` (its entry replaced).
    let heartbeat = |at: i64| {
        let mut entry: WorkerEntry = h.worker_entry_for("kitchen-1", &url, &spec);
        entry.last_heartbeat_at_epoch_ms = at;
        entry.updated_at_epoch_ms = at;
        entry
    };
    put_worker_entry_in(&workers, &heartbeat(now_ms())).await;

    // This process's engine on the same files (manual clock, harness queue).
    let deps = EngineDeps {
        executions: Arc::new(FileExecutionStore::new(state.clone())),
        awaits: Arc::new(FileAwaitStore::new(state.clone())),
        releases: release_deps.registry.clone(),
        workers: Arc::new(FileWorkerRegistry::new(root.join("workers"))),
        ..h.deps.clone()
    };
    let process = |id: String| {
        let deps = deps.clone();
        async move {
            let message = serde_json::to_string(&work_item(&id)).unwrap();
            process_work_item::run(&deps, &message).await.unwrap()
        }
    };
    let router = h.router_with(deps.clone());
    let sub = call_on(
        &router,
        "POST",
        "/tpf/control-plane/tenants/acme/executions",
        CONTROL,
        Some(submit_body("Ada Lovelace", None)),
    )
    .await;
    let id = sub.ok()["executionId"].as_str().unwrap().to_string();
    h.queue.drain(); // the child takes this delivery

    // The control-plane process: claims, calls the worker, hangs.
    let mut child = Command::new(BIN)
        .arg(root)
        .arg(TENANT)
        .arg(PIPELINE)
        .arg("dispatch")
        .arg(&id)
        .env("TPF_WORKER_SHARED_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while calls.load(Ordering::SeqCst) == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the dispatcher ended ({status}): {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dispatcher never called the worker"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The claim is stored; the call is in flight. Kill it there.
    let store = FileExecutionStore::new(state.clone());
    let claimed = store.get(TENANT, &id, now_ms()).await.unwrap().unwrap();
    assert_eq!(
        (claimed.status, claimed.version),
        (ExecutionStatus::Running, 1)
    );
    let killed_owner = claimed.lease_owner.clone().unwrap();
    assert!(killed_owner.starts_with("dispatch-"), "{killed_owner}");
    let lease_expires = claimed.lease_expires_epoch_ms;
    assert_eq!(lease_expires - claimed.updated_at_epoch_ms, 60_000);
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(9), "killed mid-call");
    assert!(out.stdout.is_empty(), "the dispatcher never finished");
    let r = store.get(TENANT, &id, now_ms()).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.version),
        (ExecutionStatus::Running, 1),
        "nothing more was written"
    );

    // While the lease holds: nothing is due, a delivery does nothing.
    h.clock.set(lease_expires - 1);
    let s = sweep_once::run(&deps, 100).await;
    assert_eq!((s.enqueued, s.errors), (0, 0), "{s:?}");
    assert!(h.queue.is_empty());
    assert_eq!(process(id.clone()).await, Processed::NotClaimed);

    // The lease passes: the sweep enqueues it; the run records the
    // retryable LEASE_EXPIRED without calling the worker.
    h.clock.set(lease_expires);
    let s = sweep_once::run(&deps, 100).await;
    assert_eq!((s.enqueued, s.errors), (1, 0), "{s:?}");
    assert_eq!(h.queue.drain(), [(work_item(&id), 0)]);
    assert_eq!(
        process(id.clone()).await,
        Processed::Committed(ExecutionStatus::WaitRetry)
    );
    let now = h.now();
    let r = store.get(TENANT, &id, now).await.unwrap().unwrap();
    assert_eq!(r.status, ExecutionStatus::WaitRetry);
    assert_eq!(r.error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(
        r.error_message.as_deref(),
        Some("previous dispatcher lease expired")
    );
    assert_eq!((r.attempt, r.version, r.current_step_index), (1, 3, 0));
    assert_eq!(r.next_due_epoch_ms, Some(now + 10_000));
    assert_eq!(
        (r.lease_owner.as_deref(), r.lease_expires_epoch_ms),
        (None, 0)
    );
    assert_eq!(h.queue.drain(), [(work_item(&id), 10_000)]);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the worker was not called");

    // After the retry delay it runs again (the worker, heartbeating, now
    // answers) up to the restaurant's await at step 2.
    put_worker_entry_in(&workers, &heartbeat(h.now())).await;
    h.clock.advance(9_999);
    assert_eq!(sweep_once::run(&deps, 100).await.enqueued, 0);
    h.clock.advance(1);
    assert_eq!(sweep_once::run(&deps, 100).await.enqueued, 1);
    h.queue.drain();
    assert_eq!(
        process(id.clone()).await,
        Processed::Committed(ExecutionStatus::WaitingExternal)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let r = store.get(TENANT, &id, h.now()).await.unwrap().unwrap();
    assert_eq!(
        (
            r.status,
            r.current_step_index,
            r.attempt,
            r.error_code.clone()
        ),
        (ExecutionStatus::WaitingExternal, 2, 1, None)
    );

    // The restaurant answers; the execution completes.
    let pending = call_on(
        &router,
        "GET",
        "/tpf/control-plane/tenants/acme/interactions/pending",
        CONTROL,
        None,
    )
    .await;
    let items = pending.ok().as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["executionId"], id.as_str());
    let order_id = items[0]["requestPayload"]["orderId"].as_str().unwrap();
    let done = call_on(
        &router,
        "POST",
        "/tpf/control-plane/tenants/acme/interactions/complete",
        CONTROL,
        Some(json!({"interactionId": items[0]["interactionId"], "responsePayload": decision(order_id, true)})),
    )
    .await;
    assert_eq!(done.ok()["duplicate"], false);
    assert_eq!(h.queue.drain(), [(work_item(&id), 0)]);
    assert_eq!(
        process(id.clone()).await,
        Processed::Committed(ExecutionStatus::Succeeded)
    );
    let result = call_on(
        &router,
        "GET",
        &format!("/tpf/control-plane/tenants/acme/executions/{id}/result"),
        CONTROL,
        None,
    )
    .await;
    let result = result.ok();
    assert_eq!(result["status"]["status"], "SUCCEEDED");
    let payload: serde_json::Value =
        serde_json::from_str(result["resultPayload"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["outcome"], "APPROVED");

    let events = store
        .history(TENANT, &id, None, 100, h.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.event_type).collect::<Vec<_>>(),
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::Claimed,
            EventType::RetryScheduled,
            EventType::Claimed,
            EventType::WaitingExternal,
            EventType::Resumed,
            EventType::Claimed,
            EventType::Succeeded,
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );
    assert_eq!(
        events[1].lease_owner.as_deref(),
        Some(killed_owner.as_str())
    );
    assert_eq!(events[2].previous_status, Some(ExecutionStatus::Running));
    assert_ne!(
        events[2].lease_owner.as_deref(),
        Some(killed_owner.as_str())
    );
    assert_eq!(events[3].error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(events[4].transition_key, Some(format!("{id}:0:1")));
    assert!(h.dead_letters.all().is_empty());
    assert_eq!(sweep_once::run(&deps, 100).await.enqueued, 0);
    assert!(h.queue.is_empty());
}
