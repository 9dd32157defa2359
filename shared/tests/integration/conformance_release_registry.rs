//! Conformance suite of the `ReleaseRegistry` port (`RELEASES.md` §5,
//! RRP-01): every provider runs the same cases in `cases`. Adding a
//! provider (e.g. DynamoDB) is one fixture function and one
//! `release_registry_conformance!(name);` line.

use crate::support::moto;
use crate::support::serialized;

use std::any::Any;
use std::sync::Arc;

use serde_json::json;
use tpf_core::domain::release::{ActivationEvent, ActivationType, ReleaseRecord, StoredArtifact};
use tpf_core::ports::{AppendOutcome, CreateOutcome, ReleaseRegistry};
use tpf_core::providers::dynamo::DynamoReleaseRegistry;
use tpf_core::providers::file::FileReleaseRegistry;
use tpf_core::providers::memory::MemoryReleaseRegistry;

/// A provider under test and whatever must live as long as it (a tempdir).
type Fixture = (Arc<dyn ReleaseRegistry>, Box<dyn Any + Send>);

fn memory() -> Fixture {
    (Arc::new(MemoryReleaseRegistry::new()), Box::new(()))
}

fn file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let registry = FileReleaseRegistry::new(dir.path().to_path_buf());
    (Arc::new(registry), Box::new(dir))
}

/// DynamoDB (moto, `RELEASES.md` §5): a fresh, uniquely named table per test, one
/// call at a time (moto is not atomic under concurrent requests: see
/// `support/serialized.rs`).
fn dynamo() -> Fixture {
    let registry = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            let client = aws_sdk_dynamodb::Client::new(&moto::sdk_config().await);
            let table = moto::unique("releases");
            moto::create_release_table(&client, &table).await.unwrap();
            DynamoReleaseRegistry::new(client, table)
        })
    });
    (
        Arc::new(serialized::SerializedReleases::new(registry)),
        Box::new(()),
    )
}

/// Generates one `#[tokio::test]` per case for the provider whose fixture
/// function has the given name.
macro_rules! release_registry_conformance {
    ($provider:ident) => {
        release_registry_conformance!(
            $provider:
            create_if_absent_keeps_the_original,
            missing_reads_are_empty,
            tenants_and_pipelines_are_isolated,
            list_orders_by_created_then_version_and_pages,
            append_reports_seq_taken_and_release_missing,
            latest_event_is_the_highest_seq,
            list_events_pages_by_seq,
            records_and_events_round_trip_whole,
            concurrent_creates_of_one_version_create_once,
            concurrent_appends_of_one_seq_append_once,
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

release_registry_conformance!(memory);
release_registry_conformance!(file);
release_registry_conformance!(dynamo);

/// A minimal release record.
pub fn record(tenant: &str, pipeline: &str, version: &str, created_at: i64) -> ReleaseRecord {
    ReleaseRecord {
        tenant_id: tenant.into(),
        pipeline_id: pipeline.into(),
        contract_version: "sha256:4be1f0c27a9d".into(),
        release_version: version.into(),
        descriptor: serde_json::Map::new(),
        primary_artifact_id: "app".into(),
        primary_artifact_digest: format!("sha256:{}", "a".repeat(64)),
        primary_artifact_uri: String::new(),
        primary_artifact_size_bytes: 0,
        primary_artifact_checksum: String::new(),
        contract: None,
        created_at_epoch_ms: created_at,
        content_hash: format!("sha256:{}", "b".repeat(64)),
        descriptor_location: "inline".into(),
        stored_artifacts: Vec::new(),
    }
}

/// An `ACTIVATED` event making `version` active.
pub fn event(seq: u64, version: &str) -> ActivationEvent {
    ActivationEvent {
        seq,
        event_type: ActivationType::Activated,
        release_version: version.into(),
        previous_release_version: None,
        artifact_verified: true,
        activated_at_epoch_ms: 1_000 + seq as i64,
        at_epoch_ms: 1_000 + seq as i64,
        detail: None,
    }
}

mod cases {
    use super::*;

    pub async fn create_if_absent_keeps_the_original(r: Arc<dyn ReleaseRegistry>) {
        let first = record("acme", "orders", "1.0.0", 100);
        assert_eq!(
            r.create_release(&first).await.unwrap(),
            CreateOutcome::Created
        );
        let mut second = record("acme", "orders", "1.0.0", 200);
        second.content_hash = "sha256:other".into();
        assert_eq!(
            r.create_release(&second).await.unwrap(),
            CreateOutcome::Exists(Box::new(first.clone()))
        );
        assert_eq!(
            r.get_release("acme", "orders", "1.0.0").await.unwrap(),
            Some(first)
        );
    }

    pub async fn missing_reads_are_empty(r: Arc<dyn ReleaseRegistry>) {
        assert_eq!(
            r.get_release("acme", "orders", "1.0.0").await.unwrap(),
            None
        );
        assert!(r
            .list_releases("acme", "orders", None, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(r.latest_event("acme", "orders").await.unwrap(), None);
        assert!(r
            .list_events("acme", "orders", None, 10)
            .await
            .unwrap()
            .is_empty());
        r.create_release(&record("acme", "orders", "1.0.0", 1))
            .await
            .unwrap();
        assert_eq!(
            r.get_release("acme", "orders", "2.0.0").await.unwrap(),
            None
        );
        assert_eq!(r.latest_event("acme", "orders").await.unwrap(), None);
    }

    pub async fn tenants_and_pipelines_are_isolated(r: Arc<dyn ReleaseRegistry>) {
        r.create_release(&record("acme", "orders", "1.0.0", 1))
            .await
            .unwrap();
        assert_eq!(
            r.append_event("acme", "orders", &event(1, "1.0.0"))
                .await
                .unwrap(),
            AppendOutcome::Appended
        );
        for (t, p) in [("other", "orders"), ("acme", "billing")] {
            assert_eq!(r.get_release(t, p, "1.0.0").await.unwrap(), None, "{t}/{p}");
            assert!(r.list_releases(t, p, None, 10).await.unwrap().is_empty());
            assert_eq!(r.latest_event(t, p).await.unwrap(), None);
            assert!(r.list_events(t, p, None, 10).await.unwrap().is_empty());
            // The release exists only in acme/orders.
            assert_eq!(
                r.append_event(t, p, &event(1, "1.0.0")).await.unwrap(),
                AppendOutcome::ReleaseMissing
            );
        }
        // The same version may exist independently elsewhere.
        assert_eq!(
            r.create_release(&record("other", "orders", "1.0.0", 5))
                .await
                .unwrap(),
            CreateOutcome::Created
        );
        assert_eq!(
            r.get_release("acme", "orders", "1.0.0")
                .await
                .unwrap()
                .unwrap()
                .created_at_epoch_ms,
            1
        );
    }

    pub async fn list_orders_by_created_then_version_and_pages(r: Arc<dyn ReleaseRegistry>) {
        for (v, at) in [
            ("b", 200),
            ("2.0", 200),
            ("c", 100),
            ("d", 300),
            ("10.0", 200),
            ("a", 200),
        ] {
            r.create_release(&record("acme", "orders", v, at))
                .await
                .unwrap();
        }
        // Same millisecond: byte order of releaseVersion ("10.0" < "2.0" < "a").
        let expected = ["c", "10.0", "2.0", "a", "b", "d"];
        let all = r.list_releases("acme", "orders", None, 100).await.unwrap();
        let versions: Vec<_> = all.iter().map(|x| x.release_version.as_str()).collect();
        assert_eq!(versions, expected);

        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = r
                .list_releases("acme", "orders", after.as_ref(), 2)
                .await
                .unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(last.list_key());
            paged.extend(page.into_iter().map(|x| x.release_version));
        }
        assert_eq!(paged, expected);

        // `after` is strict and need not name a stored record.
        let key = tpf_core::domain::release::ReleaseListKey {
            created_at_epoch_ms: 200,
            release_version: "2".into(),
        };
        let rest = r
            .list_releases("acme", "orders", Some(&key), 100)
            .await
            .unwrap();
        let versions: Vec<_> = rest.iter().map(|x| x.release_version.as_str()).collect();
        assert_eq!(versions, ["2.0", "a", "b", "d"]);
        assert!(r
            .list_releases("acme", "orders", None, 0)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn append_reports_seq_taken_and_release_missing(r: Arc<dyn ReleaseRegistry>) {
        r.create_release(&record("acme", "orders", "1.0.0", 1))
            .await
            .unwrap();
        r.create_release(&record("acme", "orders", "2.0.0", 2))
            .await
            .unwrap();
        assert_eq!(
            r.append_event("acme", "orders", &event(1, "1.0.0"))
                .await
                .unwrap(),
            AppendOutcome::Appended
        );
        assert_eq!(
            r.append_event("acme", "orders", &event(1, "2.0.0"))
                .await
                .unwrap(),
            AppendOutcome::SeqTaken
        );
        assert_eq!(
            r.append_event("acme", "orders", &event(2, "9.9.9"))
                .await
                .unwrap(),
            AppendOutcome::ReleaseMissing
        );
        // Neither failure wrote anything.
        assert_eq!(
            r.latest_event("acme", "orders").await.unwrap(),
            Some(event(1, "1.0.0"))
        );
        assert_eq!(
            r.list_events("acme", "orders", None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            r.append_event("acme", "orders", &event(2, "2.0.0"))
                .await
                .unwrap(),
            AppendOutcome::Appended
        );
        assert_eq!(
            r.latest_event("acme", "orders").await.unwrap(),
            Some(event(2, "2.0.0"))
        );
    }

    pub async fn latest_event_is_the_highest_seq(r: Arc<dyn ReleaseRegistry>) {
        r.create_release(&record("acme", "orders", "1.0.0", 1))
            .await
            .unwrap();
        // Numeric, not textual, order; insertion order does not matter.
        for seq in [10, 9, 2, 1] {
            assert_eq!(
                r.append_event("acme", "orders", &event(seq, "1.0.0"))
                    .await
                    .unwrap(),
                AppendOutcome::Appended
            );
        }
        assert_eq!(
            r.latest_event("acme", "orders").await.unwrap().unwrap().seq,
            10
        );
    }

    pub async fn list_events_pages_by_seq(r: Arc<dyn ReleaseRegistry>) {
        r.create_release(&record("acme", "orders", "1.0.0", 1))
            .await
            .unwrap();
        for seq in 1..=5 {
            r.append_event("acme", "orders", &event(seq, "1.0.0"))
                .await
                .unwrap();
        }
        let seqs = |events: Vec<ActivationEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(r.list_events("acme", "orders", None, 2).await.unwrap()),
            [1, 2]
        );
        assert_eq!(
            seqs(r.list_events("acme", "orders", Some(2), 2).await.unwrap()),
            [3, 4]
        );
        assert_eq!(
            seqs(r.list_events("acme", "orders", Some(4), 2).await.unwrap()),
            [5]
        );
        assert!(r
            .list_events("acme", "orders", Some(5), 2)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            seqs(r.list_events("acme", "orders", None, 100).await.unwrap()),
            [1, 2, 3, 4, 5]
        );
        assert!(r
            .list_events("acme", "orders", None, 0)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn records_and_events_round_trip_whole(r: Arc<dyn ReleaseRegistry>) {
        let mut full = record("acme", "orders", "2025.01.0", 1_736_936_000_000);
        full.descriptor =
            json!({"schemaVersion": 1, "name": "caf\u{e9} \u{1F600}", "n": 9007199254740991_i64})
                .as_object()
                .unwrap()
                .clone();
        full.contract = Some(json!({"steps": [{"id": "a"}], "x": null}));
        full.primary_artifact_uri = "file:///srv/artifacts/x.jar".into();
        full.primary_artifact_size_bytes = u64::MAX / 2;
        full.primary_artifact_checksum = format!("sha256:{}", "c".repeat(64));
        full.stored_artifacts = vec![StoredArtifact {
            artifact_id: "app".into(),
            kind: "jar".into(),
            digest: format!("sha256:{}", "c".repeat(64)),
            uri: "file:///srv/artifacts/x.jar".into(),
            size_bytes: 42,
            checksum: format!("sha256:{}", "c".repeat(64)),
        }];
        r.create_release(&full).await.unwrap();
        assert_eq!(
            r.get_release("acme", "orders", "2025.01.0").await.unwrap(),
            Some(full.clone())
        );
        assert_eq!(
            r.list_releases("acme", "orders", None, 1).await.unwrap(),
            vec![full]
        );

        let unverified = ActivationEvent {
            seq: 7,
            event_type: ActivationType::ArtifactUnverified,
            release_version: "2025.01.0".into(),
            previous_release_version: Some("2025.01.0".into()),
            artifact_verified: false,
            activated_at_epoch_ms: 5,
            at_epoch_ms: 6,
            detail: Some("app: checksum differs".into()),
        };
        r.append_event("acme", "orders", &unverified).await.unwrap();
        assert_eq!(
            r.latest_event("acme", "orders").await.unwrap(),
            Some(unverified.clone())
        );
        assert_eq!(
            r.list_events("acme", "orders", None, 5).await.unwrap(),
            vec![unverified]
        );
    }

    pub async fn concurrent_creates_of_one_version_create_once(r: Arc<dyn ReleaseRegistry>) {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let r = r.clone();
                tokio::spawn(async move {
                    r.create_release(&record("acme", "orders", "1.0.0", 1_000 + i))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let created = outcomes
            .iter()
            .filter(|o| **o == CreateOutcome::Created)
            .count();
        assert_eq!(created, 1, "{outcomes:?}");
        let stored = r
            .get_release("acme", "orders", "1.0.0")
            .await
            .unwrap()
            .unwrap();
        for o in outcomes {
            if let CreateOutcome::Exists(existing) = o {
                assert_eq!(*existing, stored, "every loser sees the winner's record");
            }
        }
        assert_eq!(
            r.list_releases("acme", "orders", None, 100).await.unwrap(),
            vec![stored]
        );
    }

    pub async fn concurrent_appends_of_one_seq_append_once(r: Arc<dyn ReleaseRegistry>) {
        for i in 0..10 {
            r.create_release(&record("acme", "orders", &format!("v{i}"), i))
                .await
                .unwrap();
        }
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let r = r.clone();
                tokio::spawn(async move {
                    let outcome = r
                        .append_event("acme", "orders", &event(1, &format!("v{i}")))
                        .await
                        .unwrap();
                    (i, outcome)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (i, outcome) = t.await.unwrap();
            match outcome {
                AppendOutcome::Appended => winners.push(i),
                AppendOutcome::SeqTaken => {}
                AppendOutcome::ReleaseMissing => panic!("release v{i} exists"),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let latest = r.latest_event("acme", "orders").await.unwrap().unwrap();
        assert_eq!(latest, event(1, &format!("v{}", winners[0])));
        assert_eq!(
            r.list_events("acme", "orders", None, 100).await.unwrap(),
            vec![latest]
        );
    }
}

/// Behaviour only the `file` provider has: layout, temporaries, the case
/// rule, and state shared by separate instances (processes).
mod file_only {
    use super::*;
    use std::fs;
    use tpf_core::error::StoreError;

    #[tokio::test]
    async fn layout_is_the_documented_one_with_no_temporaries_left() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileReleaseRegistry::new(dir.path().to_path_buf());
        r.create_release(&record("acme", "orders", "1.0.0", 7))
            .await
            .unwrap();
        r.append_event("acme", "orders", &event(3, "1.0.0"))
            .await
            .unwrap();
        let base = dir.path().join("registry/acme/orders");
        let stored: serde_json::Value =
            serde_json::from_slice(&fs::read(base.join("releases/1.0.0.json")).unwrap()).unwrap();
        assert_eq!(stored["releaseVersion"], "1.0.0");
        assert_eq!(stored["createdAtEpochMs"], 7);
        let ev: serde_json::Value = serde_json::from_slice(
            &fs::read(base.join("activations/0000000000000000003.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(ev["seq"], 3);
        assert_eq!(ev["type"], "ACTIVATED");
        for sub in ["releases", "activations"] {
            let names: Vec<_> = fs::read_dir(base.join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(names.len(), 1, "{sub}: {names:?}");
        }
    }

    #[tokio::test]
    async fn temporaries_are_ignored_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileReleaseRegistry::new(dir.path().to_path_buf());
        r.create_release(&record("acme", "orders", "1.0.0", 7))
            .await
            .unwrap();
        r.append_event("acme", "orders", &event(1, "1.0.0"))
            .await
            .unwrap();
        let base = dir.path().join("registry/acme/orders");
        // What a process killed mid-write leaves: a partial temporary.
        fs::write(base.join("releases/.tmp-x"), b"{\"tenantId\":").unwrap();
        fs::write(base.join("activations/.tmp-x"), b"{").unwrap();
        fs::write(base.join("activations/.9999999999999999999.json"), b"{").unwrap();
        assert_eq!(
            r.list_releases("acme", "orders", None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            r.latest_event("acme", "orders").await.unwrap().unwrap().seq,
            1
        );
        assert_eq!(
            r.list_events("acme", "orders", None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_new_instance_sees_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileReleaseRegistry::new(dir.path().to_path_buf());
        a.create_release(&record("acme", "orders", "1.0.0", 7))
            .await
            .unwrap();
        a.append_event("acme", "orders", &event(1, "1.0.0"))
            .await
            .unwrap();
        let b = FileReleaseRegistry::new(dir.path().to_path_buf());
        assert!(b
            .get_release("acme", "orders", "1.0.0")
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            b.append_event("acme", "orders", &event(1, "1.0.0"))
                .await
                .unwrap(),
            AppendOutcome::SeqTaken
        );
    }

    /// Simulates a case-insensitive file system: the file for `V1` holds
    /// the record of `v1`, as such a file system would return it.
    #[tokio::test]
    async fn case_folded_files_are_absent_and_creates_collide() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileReleaseRegistry::new(dir.path().to_path_buf());
        let releases = dir.path().join("registry/acme/orders/releases");
        fs::create_dir_all(&releases).unwrap();
        fs::write(
            releases.join("V1.json"),
            serde_json::to_vec(&record("acme", "orders", "v1", 1)).unwrap(),
        )
        .unwrap();
        assert_eq!(r.get_release("acme", "orders", "V1").await.unwrap(), None);
        assert!(r
            .list_releases("acme", "orders", None, 10)
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            r.create_release(&record("acme", "orders", "V1", 2)).await,
            Err(StoreError::CaseCollision(_))
        ));
        assert_eq!(
            r.append_event("acme", "orders", &event(1, "V1"))
                .await
                .unwrap(),
            AppendOutcome::ReleaseMissing
        );
        // A folded tenant directory: stored tenantId differs.
        let other = dir.path().join("registry/ACME/orders/releases");
        fs::create_dir_all(&other).unwrap();
        fs::write(
            other.join("1.0.0.json"),
            serde_json::to_vec(&record("acme", "orders", "1.0.0", 1)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            r.get_release("ACME", "orders", "1.0.0").await.unwrap(),
            None
        );
        assert!(matches!(
            r.create_release(&record("ACME", "orders", "1.0.0", 2))
                .await,
            Err(StoreError::CaseCollision(_))
        ));
    }
}
