//! Conformance suite of the `WorkerRegistry` port (`RELEASES.md` §6.6,
//! WL-09): every provider runs the same cases in `cases`. Adding a provider
//! is one fixture function and one `worker_registry_conformance!(name);` line.

use crate::support::moto;
use crate::support::serialized;

use std::any::Any;
use std::sync::Arc;

use tpf_core::domain::worker::{WorkerEntry, WorkerEvent, WorkerEventType};
use tpf_core::ports::{WorkerRegistry, WorkerWrite};
use tpf_core::providers::dynamo::DynamoWorkerRegistry;
use tpf_core::providers::file::FileWorkerRegistry;
use tpf_core::providers::memory::MemoryWorkerRegistry;

/// A provider under test and whatever must live as long as it (a tempdir).
type Fixture = (Arc<dyn WorkerRegistry>, Box<dyn Any + Send>);

fn memory() -> Fixture {
    (Arc::new(MemoryWorkerRegistry::new()), Box::new(()))
}

fn file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let registry = FileWorkerRegistry::new(dir.path().to_path_buf());
    (Arc::new(registry), Box::new(dir))
}

/// DynamoDB (moto, `RELEASES.md` §6.6): a fresh, uniquely named table per test, one
/// call at a time (moto is not atomic under concurrent requests: see
/// `support/serialized.rs`).
fn dynamo() -> Fixture {
    let registry = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            let client = aws_sdk_dynamodb::Client::new(&moto::sdk_config().await);
            let table = moto::unique("workers");
            moto::create_worker_table(&client, &table).await.unwrap();
            DynamoWorkerRegistry::new(client, table)
        })
    });
    (
        Arc::new(serialized::SerializedWorkers::new(registry)),
        Box::new(()),
    )
}

/// Generates one `#[tokio::test]` per case for the provider whose fixture
/// function has the given name.
macro_rules! worker_registry_conformance {
    ($provider:ident) => {
        worker_registry_conformance!(
            $provider:
            first_write_creates_and_a_second_create_conflicts,
            writes_are_conditional_on_the_state_version,
            events_are_written_with_their_entries_and_heartbeats_write_none,
            missing_reads_are_empty,
            tenants_and_pipelines_are_isolated,
            list_orders_by_worker_id_and_pages,
            concurrent_read_modify_writes_lose_no_update,
        );
    };
    ($provider:ident: $($case:ident),* $(,)?) => {
        mod $provider {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (registry, _guard) = super::$provider();
                    super::cases::$case(registry).await;
                }
            )*
        }
    };
}

worker_registry_conformance!(memory);
worker_registry_conformance!(file);
worker_registry_conformance!(dynamo);

/// A registered worker at `state_version`.
pub fn entry(tenant: &str, pipeline: &str, worker: &str, state_version: u64) -> WorkerEntry {
    WorkerEntry {
        tenant_id: tenant.into(),
        pipeline_id: pipeline.into(),
        contract_version: "sha256:4be1f0c27a9d".into(),
        release_version: "2025.01.0".into(),
        worker_id: worker.into(),
        protocol: "rest".into(),
        endpoint: "https://kitchen-1.internal:8181".into(),
        artifact_id: String::new(),
        artifact_digest: String::new(),
        registered_at_epoch_ms: 1_000,
        last_heartbeat_at_epoch_ms: 1_000,
        draining_since_epoch_ms: 0,
        state_version,
        updated_at_epoch_ms: 1_000,
    }
}

/// The event of type `kind` written with `entry`.
pub fn event_for(kind: WorkerEventType, entry: &WorkerEntry) -> WorkerEvent {
    WorkerEvent {
        event_type: kind,
        at_epoch_ms: entry.updated_at_epoch_ms,
        state_version: entry.state_version,
        snapshot: entry.clone(),
    }
}

/// `e` one change later (a heartbeat at `at`).
pub fn bumped(e: &WorkerEntry, at: i64) -> WorkerEntry {
    WorkerEntry {
        state_version: e.state_version + 1,
        last_heartbeat_at_epoch_ms: at.max(e.last_heartbeat_at_epoch_ms),
        updated_at_epoch_ms: at,
        ..e.clone()
    }
}

mod cases {
    use super::*;

    pub async fn first_write_creates_and_a_second_create_conflicts(r: Arc<dyn WorkerRegistry>) {
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        let ev = event_for(WorkerEventType::Register, &e1);
        assert_eq!(
            r.write_worker(&e1, None, Some(&ev)).await.unwrap(),
            WorkerWrite::Written
        );
        let mut again = e1.clone();
        again.endpoint = "https://elsewhere:1".into();
        let ev2 = event_for(WorkerEventType::Register, &again);
        assert_eq!(
            r.write_worker(&again, None, Some(&ev2)).await.unwrap(),
            WorkerWrite::Conflict
        );
        assert_eq!(
            r.write_worker(&again, None, None).await.unwrap(),
            WorkerWrite::Conflict
        );
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            Some(e1)
        );
        assert_eq!(
            r.worker_events("acme", "orders", "kitchen-1")
                .await
                .unwrap(),
            vec![ev]
        );
    }

    pub async fn writes_are_conditional_on_the_state_version(r: Arc<dyn WorkerRegistry>) {
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        r.write_worker(&e1, None, Some(&event_for(WorkerEventType::Register, &e1)))
            .await
            .unwrap();
        let e2 = bumped(&e1, 2_000);
        assert_eq!(
            r.write_worker(&e2, Some(1), None).await.unwrap(),
            WorkerWrite::Written
        );
        // Another writer that also read version 1 lost the race.
        let stale = bumped(&e1, 3_000);
        assert_eq!(
            r.write_worker(&stale, Some(1), None).await.unwrap(),
            WorkerWrite::Conflict
        );
        // An expectation from the future is as wrong.
        assert_eq!(
            r.write_worker(&stale, Some(7), None).await.unwrap(),
            WorkerWrite::Conflict
        );
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            Some(e2.clone())
        );
        // Expecting a version of a worker that does not exist conflicts too.
        let ghost = entry("acme", "orders", "ghost", 2);
        assert_eq!(
            r.write_worker(&ghost, Some(1), None).await.unwrap(),
            WorkerWrite::Conflict
        );
        assert_eq!(r.get_worker("acme", "orders", "ghost").await.unwrap(), None);
    }

    pub async fn events_are_written_with_their_entries_and_heartbeats_write_none(
        r: Arc<dyn WorkerRegistry>,
    ) {
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        let register = event_for(WorkerEventType::Register, &e1);
        r.write_worker(&e1, None, Some(&register)).await.unwrap();
        let e2 = bumped(&e1, 2_000);
        assert_eq!(
            r.write_worker(&e2, Some(1), None).await.unwrap(),
            WorkerWrite::Written
        );
        let e3 = WorkerEntry {
            draining_since_epoch_ms: 3_000,
            ..bumped(&e2, 3_000)
        };
        let drain = event_for(WorkerEventType::Drain, &e3);
        assert_eq!(
            r.write_worker(&e3, Some(2), Some(&drain)).await.unwrap(),
            WorkerWrite::Written
        );
        // Oldest first; the heartbeat (version 2) left a gap.
        assert_eq!(
            r.worker_events("acme", "orders", "kitchen-1")
                .await
                .unwrap(),
            vec![register, drain]
        );
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            Some(e3)
        );
        // A losing register writes no event either.
        let late = event_for(WorkerEventType::Register, &bumped(&e1, 9));
        assert_eq!(
            r.write_worker(&bumped(&e1, 9), Some(1), Some(&late))
                .await
                .unwrap(),
            WorkerWrite::Conflict
        );
        assert_eq!(
            r.worker_events("acme", "orders", "kitchen-1")
                .await
                .unwrap()
                .len(),
            2
        );
    }

    pub async fn missing_reads_are_empty(r: Arc<dyn WorkerRegistry>) {
        assert_eq!(
            r.get_worker("acme", "orders", "nobody").await.unwrap(),
            None
        );
        assert!(r
            .list_workers("acme", "orders", None, 10)
            .await
            .unwrap()
            .is_empty());
        assert!(r
            .worker_events("acme", "orders", "nobody")
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn tenants_and_pipelines_are_isolated(r: Arc<dyn WorkerRegistry>) {
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        r.write_worker(&e1, None, Some(&event_for(WorkerEventType::Register, &e1)))
            .await
            .unwrap();
        for (t, p) in [("other", "orders"), ("acme", "billing")] {
            assert_eq!(r.get_worker(t, p, "kitchen-1").await.unwrap(), None);
            assert!(r.list_workers(t, p, None, 10).await.unwrap().is_empty());
            assert!(r.worker_events(t, p, "kitchen-1").await.unwrap().is_empty());
            // The same id elsewhere is a different worker.
            let other = entry(t, p, "kitchen-1", 1);
            assert_eq!(
                r.write_worker(&other, None, None).await.unwrap(),
                WorkerWrite::Written
            );
        }
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            Some(e1)
        );
    }

    pub async fn list_orders_by_worker_id_and_pages(r: Arc<dyn WorkerRegistry>) {
        for w in ["w2", "a_1", "w10", "Z", "a", "a-1"] {
            let e = entry("acme", "orders", w, 1);
            r.write_worker(&e, None, Some(&event_for(WorkerEventType::Register, &e)))
                .await
                .unwrap();
        }
        let expected = ["Z", "a", "a-1", "a_1", "w10", "w2"];
        let ids = |v: Vec<WorkerEntry>| v.into_iter().map(|e| e.worker_id).collect::<Vec<_>>();
        assert_eq!(
            ids(r.list_workers("acme", "orders", None, 100).await.unwrap()),
            expected
        );
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = ids(r
                .list_workers("acme", "orders", after.as_deref(), 4)
                .await
                .unwrap());
            assert!(page.len() <= 4);
            let Some(last) = page.last().cloned() else {
                break;
            };
            after = Some(last);
            paged.extend(page);
        }
        assert_eq!(paged, expected);
        // `after` is strict and need not name a stored worker.
        assert_eq!(
            ids(r
                .list_workers("acme", "orders", Some("a0"), 2)
                .await
                .unwrap()),
            ["a_1", "w10"]
        );
        assert!(r
            .list_workers("acme", "orders", None, 0)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn concurrent_read_modify_writes_lose_no_update(r: Arc<dyn WorkerRegistry>) {
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        r.write_worker(&e1, None, Some(&event_for(WorkerEventType::Register, &e1)))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let r = r.clone();
                tokio::spawn(async move {
                    let mut events_written = 0;
                    for i in 0..25 {
                        loop {
                            let current = r
                                .get_worker("acme", "orders", "kitchen-1")
                                .await
                                .unwrap()
                                .unwrap();
                            let next = bumped(&current, 10_000 + task * 100 + i);
                            // Every fifth change is a register (with an event).
                            let event =
                                (i % 5 == 0).then(|| event_for(WorkerEventType::Register, &next));
                            match r
                                .write_worker(&next, Some(current.state_version), event.as_ref())
                                .await
                                .unwrap()
                            {
                                WorkerWrite::Written => {
                                    events_written += usize::from(event.is_some());
                                    break;
                                }
                                WorkerWrite::Conflict => tokio::task::yield_now().await,
                            }
                        }
                    }
                    events_written
                })
            })
            .collect();
        let mut events_written = 0;
        for t in tasks {
            events_written += t.await.unwrap();
        }
        let last = r
            .get_worker("acme", "orders", "kitchen-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last.state_version, 1 + 8 * 25);
        let events = r
            .worker_events("acme", "orders", "kitchen-1")
            .await
            .unwrap();
        assert_eq!(events.len(), 1 + events_written);
        assert_eq!(events_written, 8 * 5);
        for pair in events.windows(2) {
            assert!(pair[0].state_version < pair[1].state_version);
        }
        for e in &events {
            assert_eq!(e.state_version, e.snapshot.state_version);
        }
    }
}

/// Behaviour only the `file` provider has: crash repair (WL-10), layout,
/// temporaries and the case rule.
mod file_only {
    use super::*;
    use std::fs;
    use std::path::Path;
    use tpf_core::error::StoreError;

    fn events_dir(root: &Path, worker: &str) -> std::path::PathBuf {
        root.join("acme/orders/events").join(worker)
    }

    /// What a drain that crashed after its event write and before its entry
    /// write leaves behind.
    fn crash_after_event(root: &Path, entry: &WorkerEntry, kind: WorkerEventType) {
        let dir = events_dir(root, &entry.worker_id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("{:019}.json", entry.state_version)),
            serde_json::to_vec(&event_for(kind, entry)).unwrap(),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn wl10_a_heartbeat_rolls_a_crashed_drain_forward_first() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileWorkerRegistry::new(dir.path().to_path_buf());
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        r.write_worker(&e1, None, Some(&event_for(WorkerEventType::Register, &e1)))
            .await
            .unwrap();
        let drained = WorkerEntry {
            draining_since_epoch_ms: 5_000,
            ..bumped(&e1, 5_000)
        };
        crash_after_event(dir.path(), &drained, WorkerEventType::Drain);
        // Readers do not repair.
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            Some(e1.clone())
        );

        // A heartbeat based on the stale read loses: the drain came first.
        let heartbeat = bumped(&e1, 6_000);
        assert_eq!(
            r.write_worker(&heartbeat, Some(1), None).await.unwrap(),
            WorkerWrite::Conflict
        );
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            Some(drained.clone()),
            "the roll-forward is persisted even when the change then conflicts"
        );
        // Re-read and re-apply: the drained worker stays draining.
        let heartbeat = bumped(&drained, 6_000);
        assert_eq!(
            r.write_worker(&heartbeat, Some(2), None).await.unwrap(),
            WorkerWrite::Written
        );
        let now = r
            .get_worker("acme", "orders", "kitchen-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((now.state_version, now.draining_since_epoch_ms), (3, 5_000));
        assert_eq!(
            r.worker_events("acme", "orders", "kitchen-1")
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn wl10_crashed_first_registration_and_chains_roll_forward() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileWorkerRegistry::new(dir.path().to_path_buf());
        // Only the event of a first registration made it; then another.
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        crash_after_event(dir.path(), &e1, WorkerEventType::Register);
        let e2 = WorkerEntry {
            draining_since_epoch_ms: 7,
            ..bumped(&e1, 7)
        };
        crash_after_event(dir.path(), &e2, WorkerEventType::Drain);
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            None
        );
        let fresh = entry("acme", "orders", "kitchen-1", 1);
        let ev = event_for(WorkerEventType::Register, &fresh);
        assert_eq!(
            r.write_worker(&fresh, None, Some(&ev)).await.unwrap(),
            WorkerWrite::Conflict
        );
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            Some(e2.clone())
        );
        let e3 = bumped(&e2, 8);
        let ev3 = event_for(WorkerEventType::Register, &e3);
        assert_eq!(
            r.write_worker(&e3, Some(2), Some(&ev3)).await.unwrap(),
            WorkerWrite::Written
        );
        let versions: Vec<_> = r
            .worker_events("acme", "orders", "kitchen-1")
            .await
            .unwrap()
            .iter()
            .map(|e| e.state_version)
            .collect();
        assert_eq!(versions, [1, 2, 3]);
    }

    #[tokio::test]
    async fn layout_and_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileWorkerRegistry::new(dir.path().to_path_buf());
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        r.write_worker(&e1, None, Some(&event_for(WorkerEventType::Register, &e1)))
            .await
            .unwrap();
        let base = dir.path().join("acme/orders");
        assert!(base.join(".lock").is_file());
        let stored: serde_json::Value =
            serde_json::from_slice(&fs::read(base.join("workers/kitchen-1.json")).unwrap())
                .unwrap();
        assert_eq!(stored["workerId"], "kitchen-1");
        assert_eq!(stored["stateVersion"], 1);
        let ev: serde_json::Value = serde_json::from_slice(
            &fs::read(base.join("events/kitchen-1/0000000000000000001.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(ev["type"], "REGISTER");
        assert_eq!(ev["snapshot"]["stateVersion"], 1);
        assert_eq!(
            fs::read_dir(base.join("workers")).unwrap().count(),
            1,
            "no temporary left"
        );

        // Leftovers of a killed process are skipped.
        fs::write(base.join("workers/.tmp-x"), b"{").unwrap();
        fs::write(base.join("events/kitchen-1/.tmp-x"), b"{").unwrap();
        assert_eq!(
            r.list_workers("acme", "orders", None, 10).await.unwrap(),
            vec![e1.clone()]
        );
        assert_eq!(
            r.worker_events("acme", "orders", "kitchen-1")
                .await
                .unwrap()
                .len(),
            1
        );
        let e2 = bumped(&e1, 2);
        assert_eq!(
            r.write_worker(&e2, Some(1), None).await.unwrap(),
            WorkerWrite::Written
        );
    }

    /// Simulates a case-insensitive file system: the file for `W1` holds
    /// the entry of `w1`, as such a file system would return it.
    #[tokio::test]
    async fn case_folded_files_are_absent_and_writes_collide() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileWorkerRegistry::new(dir.path().to_path_buf());
        let workers = dir.path().join("acme/orders/workers");
        fs::create_dir_all(&workers).unwrap();
        fs::write(
            workers.join("W1.json"),
            serde_json::to_vec(&entry("acme", "orders", "w1", 1)).unwrap(),
        )
        .unwrap();
        assert_eq!(r.get_worker("acme", "orders", "W1").await.unwrap(), None);
        assert!(r
            .list_workers("acme", "orders", None, 10)
            .await
            .unwrap()
            .is_empty());
        let upper = entry("acme", "orders", "W1", 1);
        assert!(matches!(
            r.write_worker(&upper, None, None).await,
            Err(StoreError::CaseCollision(_))
        ));
    }

    #[tokio::test]
    async fn an_event_must_describe_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileWorkerRegistry::new(dir.path().to_path_buf());
        let e1 = entry("acme", "orders", "kitchen-1", 1);
        let wrong = event_for(
            WorkerEventType::Register,
            &entry("acme", "orders", "kitchen-1", 2),
        );
        assert!(r.write_worker(&e1, None, Some(&wrong)).await.is_err());
        assert_eq!(
            r.get_worker("acme", "orders", "kitchen-1").await.unwrap(),
            None
        );
    }
}
