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
