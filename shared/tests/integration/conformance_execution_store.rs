//! Conformance suite of the `ExecutionStore` port (`EXECUTION.md` §3, §10,
//! STORE-01..06, AWAIT-04): every provider runs the same cases in `cases`.
//! Adding a provider is one fixture function and one
//! `execution_store_conformance!(name);` line. Cases specific to the `file`
//! layout are in `file_only`.

use crate::support::engine_dynamo;
use crate::support::serialized_engine;

use std::any::Any;
use std::sync::Arc;

use serde_json::value::RawValue;
use tpf_core::domain::execution::{
    execution_key, keyless_execution_key, ExecutionRecord, ExecutionStatus, HistoryEvent, KeyEntry,
    ResultShape,
};
use tpf_core::ports::{CreateExecution, ExecutionFilter, ExecutionStore, Write};
use tpf_core::providers::file::FileExecutionStore;
use tpf_core::providers::memory::MemoryExecutionStore;

/// A provider under test and whatever must live as long as it (a tempdir).
type Fixture = (Arc<dyn ExecutionStore>, Box<dyn Any + Send>);

fn memory() -> Fixture {
    (Arc::new(MemoryExecutionStore::new()), Box::new(()))
}

fn file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = FileExecutionStore::new(dir.path().to_path_buf());
    (Arc::new(store), Box::new(dir))
}

/// DynamoDB on moto (`EXECUTION.md` §10.5): a fresh table and payload
/// bucket per test, 16 index shards, one call at a time (moto is not atomic
/// under concurrent requests: see `support/serialized_engine.rs`).
fn dynamo() -> Fixture {
    let aws = engine_dynamo::engine_aws_blocking(engine_dynamo::Tables::Execution, 16, 8192);
    let store = serialized_engine::SerializedExecutions::new(aws.executions());
    (Arc::new(store), Box::new(()))
}

/// Generates one `#[tokio::test]` per case for the provider whose fixture
/// function has the given name.
macro_rules! execution_store_conformance {
    ($provider:ident) => {
        execution_store_conformance!(
            $provider:
            create_then_read_returns_the_record_and_its_submitted_event,
            create_with_a_live_id_is_id_taken,
            missing_reads_are_empty,
            payload_text_is_kept_verbatim,
            store01_a_live_key_is_taken_by_its_original_execution,
            store01_keys_differing_only_where_a_colon_falls_do_not_collide,
            store02_claim_then_commit_is_conditional_on_the_version,
            store03_expired_records_are_invisible_to_reads_writes_and_queries,
            store03_an_expired_key_entry_or_one_pointing_to_an_expired_execution_is_free,
            store03_an_expired_execution_id_can_be_created_again,
            store04_each_update_appends_one_event_and_versions_are_gapless,
            store04_updates_with_mismatching_versions_are_refused,
            store05_the_same_execution_id_under_two_tenants_is_two_records,
            list_is_newest_first_filtered_and_paged,
            due_is_ordered_limited_and_excludes_unclaimable_records,
            await04_ttl_growth_extends_the_key_entry,
            concurrent_updates_of_one_version_write_once,
            concurrent_creates_with_one_key_create_once,
            concurrent_read_modify_writes_keep_the_history_gapless,
        );
    };
    ($provider:ident: $($case:ident),* $(,)?) => {
        mod $provider {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, _guard) = super::$provider();
                    super::cases::$case(store).await;
                }
            )*
        }
    };
}

execution_store_conformance!(memory);
execution_store_conformance!(file);
execution_store_conformance!(dynamo);

/// 2025-01-15T10:00:00Z, a whole second.
pub const T0: i64 = 1_736_935_200_000;
/// The default TTL (7 days) in seconds.
pub const TTL_S: i64 = 7 * 86_400;
pub const PIPELINE: &str = "orders";
pub const RELEASE: &str = "2025.01.0";
pub const INPUT: &str = r#"{"shape":"SINGLE","payload":{"orderId":"o-1"},"items":[]}"#;

/// Raw JSON text.
pub fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

/// A fresh key-less `QUEUED` record created at `now` (T1's values).
pub fn new_record(tenant: &str, id: &str, now: i64) -> ExecutionRecord {
    ExecutionRecord {
        tenant_id: tenant.into(),
        execution_id: id.into(),
        execution_key: keyless_execution_key(PIPELINE, RELEASE, id),
        input_hash: "ab".repeat(32),
        pipeline_id: PIPELINE.into(),
        contract_version: "sha256:4be1f0c27a9d".into(),
        release_version: RELEASE.into(),
        result_shape: ResultShape::Single,
        status: ExecutionStatus::Queued,
        version: 0,
        current_step_index: 0,
        attempt: 0,
        lease_owner: None,
        lease_expires_epoch_ms: 0,
        next_due_epoch_ms: Some(now),
        last_transition_key: None,
        input_payload: raw(INPUT),
        await_unit_id: None,
        result_payload: None,
        error_code: None,
        error_message: None,
        created_at_epoch_ms: now,
        updated_at_epoch_ms: now,
        ttl_epoch_s: now / 1000 + TTL_S,
    }
}

/// A fresh keyed record for `raw_key` and its key entry.
pub fn keyed_record(
    tenant: &str,
    id: &str,
    raw_key: &str,
    now: i64,
) -> (ExecutionRecord, KeyEntry) {
    let mut r = new_record(tenant, id, now);
    r.execution_key = execution_key(PIPELINE, RELEASE, raw_key);
    let k = key_entry(&r);
    (r, k)
}

/// The key entry of `r`.
pub fn key_entry(r: &ExecutionRecord) -> KeyEntry {
    KeyEntry {
        tenant_id: r.tenant_id.clone(),
        execution_key: r.execution_key.clone(),
        execution_id: r.execution_id.clone(),
        input_hash: r.input_hash.clone(),
        created_at_epoch_ms: r.created_at_epoch_ms,
        ttl_epoch_s: r.ttl_epoch_s,
    }
}

/// The record as JSON text (records have no `PartialEq`).
pub fn json(r: &ExecutionRecord) -> String {
    serde_json::to_string(r).unwrap()
}

/// T1 of a key-less record, which must win.
pub async fn create(s: &Arc<dyn ExecutionStore>, r: &ExecutionRecord) {
    let out = s
        .create(r, &r.submitted_event(), None, r.created_at_epoch_ms)
        .await
        .unwrap();
    assert_eq!(out, CreateExecution::Created);
}

/// T1 of a keyed record.
pub async fn create_keyed(
    s: &Arc<dyn ExecutionStore>,
    r: &ExecutionRecord,
    k: &KeyEntry,
    now: i64,
) -> CreateExecution {
    s.create(r, &r.submitted_event(), Some(k), now)
        .await
        .unwrap()
}

/// Applies a change (`next`, `event`) to `current`, which must win.
pub async fn apply(
    s: &Arc<dyn ExecutionStore>,
    current: &ExecutionRecord,
    change: (ExecutionRecord, HistoryEvent),
) -> ExecutionRecord {
    let (next, event) = change;
    let out = s
        .update(&next, current.version, &event, next.updated_at_epoch_ms)
        .await
        .unwrap();
    assert_eq!(
        out,
        Write::Written,
        "{} v{}",
        next.execution_id,
        next.version
    );
    next
}

/// The ids of `records`, in order.
pub fn ids(records: &[ExecutionRecord]) -> Vec<&str> {
    records.iter().map(|r| r.execution_id.as_str()).collect()
}

/// The versions of a history.
pub fn versions(history: &[HistoryEvent]) -> Vec<u64> {
    history.iter().map(|e| e.version).collect()
}

mod cases {
    use super::*;
    use tpf_core::domain::execution::EventType;

    pub async fn create_then_read_returns_the_record_and_its_submitted_event(
        s: Arc<dyn ExecutionStore>,
    ) {
        let r = new_record("acme", "e-1", T0);
        create(&s, &r).await;
        let got = s.get("acme", "e-1", T0).await.unwrap().unwrap();
        assert_eq!(json(&got), json(&r));
        let history = s
            .history("acme", "e-1", None, 100, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(history, vec![r.submitted_event()]);
        assert_eq!(history[0].event_type, EventType::Submitted);
        // A key-less execution has no key entry.
        assert_eq!(s.get_key("acme", &r.execution_key, T0).await.unwrap(), None);
    }

    pub async fn create_with_a_live_id_is_id_taken(s: Arc<dyn ExecutionStore>) {
        let r = new_record("acme", "e-1", T0);
        create(&s, &r).await;
        let mut other = new_record("acme", "e-1", T0 + 5);
        other.pipeline_id = "billing".into();
        let out = s
            .create(&other, &other.submitted_event(), None, T0 + 5)
            .await
            .unwrap();
        assert_eq!(out, CreateExecution::IdTaken);
        // With a key too, and the key entry is not taken by the loser.
        let (mut keyed, k) = keyed_record("acme", "e-1", "order-1", T0 + 6);
        keyed.pipeline_id = "billing".into();
        assert_eq!(
            create_keyed(&s, &keyed, &k, T0 + 6).await,
            CreateExecution::IdTaken
        );
        assert_eq!(
            s.get_key("acme", &k.execution_key, T0 + 6).await.unwrap(),
            None
        );
        let got = s.get("acme", "e-1", T0 + 6).await.unwrap().unwrap();
        assert_eq!(got.pipeline_id, PIPELINE);
    }

    pub async fn missing_reads_are_empty(s: Arc<dyn ExecutionStore>) {
        assert!(s.get("acme", "nope", T0).await.unwrap().is_none());
        assert!(s
            .get_key("acme", "1:a:1:b:executionKey:k", T0)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .history("acme", "nope", None, 10, T0)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .list("acme", &ExecutionFilter::default(), None, 10, T0)
            .await
            .unwrap()
            .is_empty());
        assert!(s.due(T0, 10).await.unwrap().is_empty());
        // An update of a missing record is lost, not an error.
        let r = new_record("acme", "nope", T0);
        let (next, ev) = r.claim(T0, "dispatch-a", 30_000);
        assert_eq!(s.update(&next, 0, &ev, T0).await.unwrap(), Write::Lost);
        assert!(s.get("acme", "nope", T0).await.unwrap().is_none());
    }

    pub async fn payload_text_is_kept_verbatim(s: Arc<dyn ExecutionStore>) {
        let input = r#"{"shape":"SINGLE","payload":{"n":1.50,"big":12345678901234567890123,"s":"\u00e9"},"items":[]}"#;
        let mut r = new_record("acme", "e-1", T0);
        r.input_payload = raw(input);
        create(&s, &r).await;
        let claimed = apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 30_000)).await;
        let output = r#"{"type":"orders.Done","payload":{"total":10.0}}"#;
        apply(
            &s,
            &claimed,
            claimed.succeed(T0 + 2, vec![raw(output)], Some("kitchen-1")),
        )
        .await;
        let got = s.get("acme", "e-1", T0 + 3).await.unwrap().unwrap();
        assert_eq!(got.input_payload.get(), input);
        let result: Vec<&str> = got
            .result_payload
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.get())
            .collect();
        assert_eq!(result, vec![output]);
        assert_eq!(got.status, ExecutionStatus::Succeeded);
    }

    pub async fn store01_a_live_key_is_taken_by_its_original_execution(s: Arc<dyn ExecutionStore>) {
        let (r1, k1) = keyed_record("acme", "e-1", "order-5b0e", T0);
        assert_eq!(
            create_keyed(&s, &r1, &k1, T0).await,
            CreateExecution::Created
        );
        assert_eq!(
            s.get_key("acme", &k1.execution_key, T0).await.unwrap(),
            Some(k1.clone())
        );

        let (mut r2, mut k2) = keyed_record("acme", "e-2", "order-5b0e", T0 + 10);
        r2.input_hash = "cd".repeat(32);
        k2.input_hash = r2.input_hash.clone();
        match create_keyed(&s, &r2, &k2, T0 + 10).await {
            CreateExecution::KeyTaken(entry) => {
                assert_eq!(entry, k1);
                assert_eq!(entry.execution_id, "e-1");
            }
            other => panic!("expected KeyTaken, got {other:?}"),
        }
        assert!(s.get("acme", "e-2", T0 + 10).await.unwrap().is_none());
        // Still taken after the original moved on (it stays live).
        let claimed = apply(&s, &r1, r1.claim(T0 + 20, "dispatch-a", 30_000)).await;
        apply(&s, &claimed, claimed.succeed(T0 + 30, vec![], None)).await;
        assert!(matches!(
            create_keyed(&s, &r2, &k2, T0 + 40).await,
            CreateExecution::KeyTaken(e) if e.execution_id == "e-1"
        ));
    }

    pub async fn store01_keys_differing_only_where_a_colon_falls_do_not_collide(
        s: Arc<dyn ExecutionStore>,
    ) {
        let pairs = [("a:b", "c"), ("a", "b:c")];
        let mut keys = Vec::new();
        for (i, (pipeline, release)) in pairs.iter().enumerate() {
            let mut r = new_record("acme", &format!("e-{i}"), T0);
            r.pipeline_id = (*pipeline).into();
            r.release_version = (*release).into();
            r.execution_key = execution_key(pipeline, release, "k:1");
            let k = key_entry(&r);
            assert_eq!(create_keyed(&s, &r, &k, T0).await, CreateExecution::Created);
            keys.push(k);
        }
        assert_ne!(keys[0].execution_key, keys[1].execution_key);
        for (i, k) in keys.iter().enumerate() {
            let got = s
                .get_key("acme", &k.execution_key, T0)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.execution_id, format!("e-{i}"));
        }
    }

    pub async fn store02_claim_then_commit_is_conditional_on_the_version(
        s: Arc<dyn ExecutionStore>,
    ) {
        let r = new_record("acme", "e-1", T0);
        create(&s, &r).await;
        // Claim by A.
        let (a, ev_a) = r.claim(T0 + 1, "dispatch-a", 1_000);
        assert_eq!(
            s.update(&a, 0, &ev_a, T0 + 1).await.unwrap(),
            Write::Written
        );
        let got = s.get("acme", "e-1", T0 + 1).await.unwrap().unwrap();
        assert_eq!(got.status, ExecutionStatus::Running);
        assert_eq!(got.lease_owner.as_deref(), Some("dispatch-a"));
        // A second claim from the same read is lost.
        let (b0, ev_b0) = r.claim(T0 + 2, "dispatch-b", 1_000);
        assert_eq!(s.update(&b0, 0, &ev_b0, T0 + 2).await.unwrap(), Write::Lost);
        // A's lease expires; B takes over from version 1.
        assert!(got.is_claimable(T0 + 1_001));
        let (b, ev_b) = got.claim(T0 + 1_500, "dispatch-b", 30_000);
        assert_eq!(
            s.update(&b, 1, &ev_b, T0 + 1_500).await.unwrap(),
            Write::Written
        );
        // A commits with its stale claimed version: lost.
        let (late, ev_late) = a.succeed(T0 + 1_600, vec![raw("{}")], None);
        assert_eq!(
            s.update(&late, 1, &ev_late, T0 + 1_600).await.unwrap(),
            Write::Lost
        );
        // B commits with the right version.
        let (done, ev_done) = b.succeed(T0 + 1_700, vec![raw("{}")], None);
        assert_eq!(
            s.update(&done, 2, &ev_done, T0 + 1_700).await.unwrap(),
            Write::Written
        );
        let got = s.get("acme", "e-1", T0 + 1_700).await.unwrap().unwrap();
        assert_eq!(got.status, ExecutionStatus::Succeeded);
        assert_eq!(got.version, 3);
        assert_eq!(got.lease_owner, None);
        let history = s
            .history("acme", "e-1", None, 100, T0 + 1_700)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&history), vec![0, 1, 2, 3]);
        assert_eq!(history[2].lease_owner.as_deref(), Some("dispatch-b"));
    }

    pub async fn store03_expired_records_are_invisible_to_reads_writes_and_queries(
        s: Arc<dyn ExecutionStore>,
    ) {
        let (mut r, mut k) = keyed_record("acme", "e-1", "order-1", T0);
        r.ttl_epoch_s = T0 / 1000 + 10;
        k.ttl_epoch_s = r.ttl_epoch_s;
        assert_eq!(create_keyed(&s, &r, &k, T0).await, CreateExecution::Created);
        let live = T0 + 9_999;
        let dead = T0 + 10_000; // ttlEpochS ≤ ⌊now/1000⌋
        assert!(s.get("acme", "e-1", live).await.unwrap().is_some());
        assert!(s
            .get_key("acme", &k.execution_key, live)
            .await
            .unwrap()
            .is_some());
        assert_eq!(s.due(live, 10).await.unwrap().len(), 1);

        assert!(s.get("acme", "e-1", dead).await.unwrap().is_none());
        assert!(s
            .get_key("acme", &k.execution_key, dead)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .history("acme", "e-1", None, 10, dead)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .list("acme", &ExecutionFilter::default(), None, 10, dead)
            .await
            .unwrap()
            .is_empty());
        assert!(s.due(dead, 10).await.unwrap().is_empty());
        let (next, ev) = r.claim(dead, "dispatch-a", 30_000);
        assert_eq!(s.update(&next, 0, &ev, dead).await.unwrap(), Write::Lost);
        // The lost claim changed nothing.
        let got = s.get("acme", "e-1", live).await.unwrap().unwrap();
        assert_eq!(got.version, 0);
        assert_eq!(got.status, ExecutionStatus::Queued);
    }

    pub async fn store03_an_expired_key_entry_or_one_pointing_to_an_expired_execution_is_free(
        s: Arc<dyn ExecutionStore>,
    ) {
        // (a) The key entry expired, its execution is live.
        let (r1, mut k1) = keyed_record("acme", "e-1", "key-a", T0);
        k1.ttl_epoch_s = T0 / 1000 + 5;
        assert_eq!(
            create_keyed(&s, &r1, &k1, T0).await,
            CreateExecution::Created
        );
        let later = T0 + 5_000;
        assert!(s
            .get_key("acme", &k1.execution_key, later)
            .await
            .unwrap()
            .is_none());
        let (r2, k2) = keyed_record("acme", "e-2", "key-a", later);
        assert_eq!(
            create_keyed(&s, &r2, &k2, later).await,
            CreateExecution::Created
        );
        assert_eq!(
            s.get_key("acme", &k2.execution_key, later).await.unwrap(),
            Some(k2.clone())
        );
        assert!(s.get("acme", "e-1", later).await.unwrap().is_some());

        // (b) The key entry is live, its execution expired.
        let (mut r3, k3) = keyed_record("acme", "e-3", "key-b", T0);
        r3.ttl_epoch_s = T0 / 1000 + 5;
        assert_eq!(
            create_keyed(&s, &r3, &k3, T0).await,
            CreateExecution::Created
        );
        assert!(s
            .get_key("acme", &k3.execution_key, later)
            .await
            .unwrap()
            .is_none());
        let (r4, k4) = keyed_record("acme", "e-4", "key-b", later);
        assert_eq!(
            create_keyed(&s, &r4, &k4, later).await,
            CreateExecution::Created
        );
        let got = s
            .get_key("acme", &k4.execution_key, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.execution_id, "e-4");
        // And the new holder keeps it.
        let (r5, k5) = keyed_record("acme", "e-5", "key-b", later + 1);
        assert!(matches!(
            create_keyed(&s, &r5, &k5, later + 1).await,
            CreateExecution::KeyTaken(e) if e.execution_id == "e-4"
        ));
    }

    pub async fn store03_an_expired_execution_id_can_be_created_again(s: Arc<dyn ExecutionStore>) {
        let mut old = new_record("acme", "e-1", T0);
        old.ttl_epoch_s = T0 / 1000 + 5;
        create(&s, &old).await;
        apply(&s, &old, old.claim(T0 + 1, "dispatch-a", 1_000)).await;
        let later = T0 + 5_000;
        let fresh = new_record("acme", "e-1", later);
        assert_eq!(
            s.create(&fresh, &fresh.submitted_event(), None, later)
                .await
                .unwrap(),
            CreateExecution::Created
        );
        let got = s.get("acme", "e-1", later).await.unwrap().unwrap();
        assert_eq!(json(&got), json(&fresh));
        let history = s
            .history("acme", "e-1", None, 10, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(history, vec![fresh.submitted_event()]);
    }

    pub async fn store04_each_update_appends_one_event_and_versions_are_gapless(
        s: Arc<dyn ExecutionStore>,
    ) {
        let r0 = new_record("acme", "e-1", T0);
        create(&s, &r0).await;
        let r1 = apply(&s, &r0, r0.claim(T0 + 1, "dispatch-a", 30_000)).await;
        let r2 = apply(
            &s,
            &r1,
            r1.schedule_retry(T0 + 2, 1, T0 + 10, "WORKER_TIMEOUT", "slow", None),
        )
        .await;
        let r3 = apply(&s, &r2, r2.claim(T0 + 10, "dispatch-b", 30_000)).await;
        let r4 = apply(
            &s,
            &r3,
            r3.wait(T0 + 11, 1, "unit-1", "int-1", r3.ttl_epoch_s, None),
        )
        .await;
        let r5 = apply(
            &s,
            &r4,
            r4.release_await(T0 + 12, 1, "int-1", Some("alice")),
        )
        .await;
        let r6 = apply(&s, &r5, r5.claim(T0 + 13, "dispatch-c", 30_000)).await;
        let r7 = apply(
            &s,
            &r6,
            r6.fail(
                T0 + 14,
                "NonRetryableException",
                "bad",
                "non_retryable",
                None,
            ),
        )
        .await;
        let r8 = apply(&s, &r7, r7.redrive(T0 + 15, 7, "fixed", "ops")).await;

        let history = s
            .history("acme", "e-1", None, 100, T0 + 15)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&history), (0..=8).collect::<Vec<_>>());
        let types: Vec<EventType> = history.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![
                EventType::Submitted,
                EventType::Claimed,
                EventType::RetryScheduled,
                EventType::Claimed,
                EventType::WaitingExternal,
                EventType::Resumed,
                EventType::Claimed,
                EventType::Failed,
                EventType::Redriven,
            ]
        );
        let got = s.get("acme", "e-1", T0 + 15).await.unwrap().unwrap();
        assert_eq!(json(&got), json(&r8));
        // Replaying the last change is lost and adds no event.
        let (again, ev) = r7.redrive(T0 + 16, 7, "fixed", "ops");
        assert_eq!(
            s.update(&again, 7, &ev, T0 + 16).await.unwrap(),
            Write::Lost
        );
        // Paging: strictly after a version, at most `limit`.
        let page = s
            .history("acme", "e-1", Some(3), 2, T0 + 16)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&page), vec![4, 5]);
        let tail = s
            .history("acme", "e-1", Some(8), 10, T0 + 16)
            .await
            .unwrap()
            .unwrap();
        assert!(tail.is_empty());
        let all = s
            .history("acme", "e-1", None, 100, T0 + 16)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(all.len(), 9);
    }

    pub async fn store04_updates_with_mismatching_versions_are_refused(s: Arc<dyn ExecutionStore>) {
        let r = new_record("acme", "e-1", T0);
        create(&s, &r).await;
        let (next, mut ev) = r.claim(T0 + 1, "dispatch-a", 30_000);
        ev.version = 5;
        assert!(s.update(&next, 0, &ev, T0 + 1).await.is_err());
        let (mut skip, mut ev) = r.claim(T0 + 1, "dispatch-a", 30_000);
        skip.version = 2;
        ev.version = 2;
        assert!(s.update(&skip, 0, &ev, T0 + 1).await.is_err());
        let history = s
            .history("acme", "e-1", None, 10, T0 + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&history), vec![0]);
    }

    pub async fn store05_the_same_execution_id_under_two_tenants_is_two_records(
        s: Arc<dyn ExecutionStore>,
    ) {
        let a = new_record("acme", "e-1", T0);
        let mut b = new_record("globex", "e-1", T0 + 1);
        b.pipeline_id = "billing".into();
        create(&s, &a).await;
        create(&s, &b).await;
        apply(&s, &a, a.claim(T0 + 2, "dispatch-a", 30_000)).await;
        let got_a = s.get("acme", "e-1", T0 + 3).await.unwrap().unwrap();
        let got_b = s.get("globex", "e-1", T0 + 3).await.unwrap().unwrap();
        assert_eq!((got_a.version, got_a.status), (1, ExecutionStatus::Running));
        assert_eq!((got_b.version, got_b.status), (0, ExecutionStatus::Queued));
        assert_eq!(got_b.pipeline_id, "billing");
        assert_eq!(
            s.history("globex", "e-1", None, 10, T0 + 3)
                .await
                .unwrap()
                .unwrap()
                .len(),
            1
        );
        // The same key under two tenants is two keys.
        let (ka_r, ka) = keyed_record("acme", "e-2", "shared", T0);
        let (kb_r, kb) = keyed_record("globex", "e-2", "shared", T0);
        assert_eq!(
            create_keyed(&s, &ka_r, &ka, T0).await,
            CreateExecution::Created
        );
        assert_eq!(
            create_keyed(&s, &kb_r, &kb, T0).await,
            CreateExecution::Created
        );
        let list_a = s
            .list("acme", &ExecutionFilter::default(), None, 10, T0 + 3)
            .await
            .unwrap();
        assert_eq!(ids(&list_a), vec!["e-2", "e-1"]);
        assert!(list_a.iter().all(|r| r.tenant_id == "acme"));
        assert!(s.get("initech", "e-1", T0 + 3).await.unwrap().is_none());
        let due = s.due(T0 + 3, 10).await.unwrap();
        assert_eq!(
            due,
            vec![
                ("acme".to_owned(), "e-2".to_owned()),
                ("globex".to_owned(), "e-2".to_owned()),
                ("globex".to_owned(), "e-1".to_owned()),
            ]
        );
    }

    pub async fn list_is_newest_first_filtered_and_paged(s: Arc<dyn ExecutionStore>) {
        let e1 = new_record("acme", "e-1", T0);
        let mut e2 = new_record("acme", "e-2", T0 + 10);
        e2.pipeline_id = "billing".into();
        let e3 = new_record("acme", "e-3", T0 + 10);
        let e4 = new_record("acme", "e-4", T0 + 20);
        let mut e5 = new_record("acme", "e-5", T0 + 30);
        e5.ttl_epoch_s = T0 / 1000 + 1;
        let other = new_record("globex", "e-9", T0 + 40);
        for r in [&e1, &e2, &e3, &e4, &e5, &other] {
            create(&s, r).await;
        }
        apply(&s, &e4, e4.claim(T0 + 21, "dispatch-a", 30_000)).await;
        let now = T0 + 2_000;
        let all = ExecutionFilter::default();

        let page = s.list("acme", &all, None, 10, now).await.unwrap();
        assert_eq!(ids(&page), vec!["e-4", "e-3", "e-2", "e-1"]);
        let first = s.list("acme", &all, None, 2, now).await.unwrap();
        assert_eq!(ids(&first), vec!["e-4", "e-3"]);
        let last = first.last().unwrap();
        let cursor = Some((last.created_at_epoch_ms, last.execution_id.clone()));
        let second = s.list("acme", &all, cursor, 2, now).await.unwrap();
        assert_eq!(ids(&second), vec!["e-2", "e-1"]);
        let tie = s
            .list("acme", &all, Some((T0 + 10, "e-2".into())), 10, now)
            .await
            .unwrap();
        assert_eq!(ids(&tie), vec!["e-1"]);
        let end = s
            .list("acme", &all, Some((T0, "e-1".into())), 10, now)
            .await
            .unwrap();
        assert!(end.is_empty());

        let running = ExecutionFilter {
            status: Some(ExecutionStatus::Running),
            pipeline_id: None,
        };
        assert_eq!(
            ids(&s.list("acme", &running, None, 10, now).await.unwrap()),
            vec!["e-4"]
        );
        let billing = ExecutionFilter {
            status: None,
            pipeline_id: Some("billing".into()),
        };
        assert_eq!(
            ids(&s.list("acme", &billing, None, 10, now).await.unwrap()),
            vec!["e-2"]
        );
        let queued_orders = ExecutionFilter {
            status: Some(ExecutionStatus::Queued),
            pipeline_id: Some(PIPELINE.into()),
        };
        let got = s.list("acme", &queued_orders, None, 10, now).await.unwrap();
        assert_eq!(ids(&got), vec!["e-3", "e-1"]);
        let none = s.list("acme", &queued_orders, None, 0, now).await.unwrap();
        assert!(none.is_empty());
        // The expired one was listed while live.
        let before = s.list("acme", &all, None, 10, T0 + 30).await.unwrap();
        assert_eq!(ids(&before), vec!["e-5", "e-4", "e-3", "e-2", "e-1"]);
    }

    pub async fn due_is_ordered_limited_and_excludes_unclaimable_records(
        s: Arc<dyn ExecutionStore>,
    ) {
        let now = T0 + 1_000;
        // Due: queued at T0 (two ids, two tenants), queued at T0+500,
        // a RUNNING one whose lease expired, a WAIT_RETRY one due at T0+700.
        for (tenant, id, at) in [
            ("acme", "a-2", T0),
            ("acme", "a-1", T0),
            ("zeta", "a-0", T0),
            ("acme", "late", T0 + 500),
            ("acme", "not-due", T0 + 5_000),
        ] {
            create(&s, &new_record(tenant, id, at)).await;
        }
        let r = new_record("acme", "lease-expired", T0 + 200);
        create(&s, &r).await;
        apply(&s, &r, r.claim(T0 + 300, "dispatch-a", 100)).await;
        let r = new_record("acme", "leased", T0);
        create(&s, &r).await;
        apply(&s, &r, r.claim(T0 + 100, "dispatch-a", 60_000)).await;
        let r = new_record("acme", "retry", T0);
        create(&s, &r).await;
        let c = apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 60_000)).await;
        apply(
            &s,
            &c,
            c.schedule_retry(T0 + 2, 1, T0 + 700, "WORKER_TIMEOUT", "slow", None),
        )
        .await;
        let r = new_record("acme", "retry-later", T0);
        create(&s, &r).await;
        let c = apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 60_000)).await;
        apply(
            &s,
            &c,
            c.schedule_retry(T0 + 2, 1, T0 + 9_000, "WORKER_TIMEOUT", "slow", None),
        )
        .await;
        let r = new_record("acme", "waiting", T0);
        create(&s, &r).await;
        let c = apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 60_000)).await;
        apply(&s, &c, c.wait(T0 + 2, 0, "unit-1", "int-1", 0, None)).await;
        let r = new_record("acme", "done", T0);
        create(&s, &r).await;
        let c = apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 60_000)).await;
        apply(&s, &c, c.succeed(T0 + 2, vec![], None)).await;
        let r = new_record("acme", "failed", T0);
        create(&s, &r).await;
        let c = apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 60_000)).await;
        apply(&s, &c, c.fail(T0 + 2, "X", "x", "non_retryable", None)).await;
        let mut r = new_record("acme", "expired", T0);
        r.ttl_epoch_s = now / 1000;
        create(&s, &r).await;

        let pair = |t: &str, id: &str| (t.to_owned(), id.to_owned());
        let due = s.due(now, 100).await.unwrap();
        assert_eq!(
            due,
            vec![
                pair("acme", "a-1"),
                pair("acme", "a-2"),
                pair("zeta", "a-0"),
                pair("acme", "lease-expired"),
                pair("acme", "late"),
                pair("acme", "retry"),
            ]
        );
        assert_eq!(s.due(now, 2).await.unwrap(), due[..2].to_vec());
        assert!(s.due(now, 0).await.unwrap().is_empty());
        // Selecting changes nothing.
        assert_eq!(s.due(now, 100).await.unwrap(), due);
    }

    pub async fn await04_ttl_growth_extends_the_key_entry(s: Arc<dyn ExecutionStore>) {
        let (mut r, mut k) = keyed_record("acme", "e-1", "order-1", T0);
        r.ttl_epoch_s = T0 / 1000 + 100;
        k.ttl_epoch_s = r.ttl_epoch_s;
        assert_eq!(create_keyed(&s, &r, &k, T0).await, CreateExecution::Created);
        let claimed = apply(&s, &r, r.claim(T0 + 1_000, "dispatch-a", 30_000)).await;
        let extended = T0 / 1000 + 500;
        let waiting = apply(
            &s,
            &claimed,
            claimed.wait(T0 + 2_000, 1, "unit-1", "int-1", extended, None),
        )
        .await;
        assert_eq!(waiting.ttl_epoch_s, extended);

        // After the original TTL, before the extended one: still a duplicate.
        let between = T0 + 200_000;
        let held = s
            .get_key("acme", &k.execution_key, between)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.ttl_epoch_s, extended);
        assert_eq!(held.execution_id, "e-1");
        assert!(s.get("acme", "e-1", between).await.unwrap().is_some());
        let (r2, k2) = keyed_record("acme", "e-2", "order-1", between);
        assert!(matches!(
            create_keyed(&s, &r2, &k2, between).await,
            CreateExecution::KeyTaken(e) if e.execution_id == "e-1"
        ));
        // A change that does not grow the TTL leaves the key entry alone.
        let released = apply(
            &s,
            &waiting,
            waiting.release_await(between, 1, "int-1", None),
        )
        .await;
        assert_eq!(released.ttl_epoch_s, extended);
        let held = s
            .get_key("acme", &k.execution_key, between)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.ttl_epoch_s, extended);

        // After the extended TTL the key is free.
        let after = (extended + 1) * 1000;
        assert!(s
            .get_key("acme", &k.execution_key, after)
            .await
            .unwrap()
            .is_none());
        let (r3, k3) = keyed_record("acme", "e-3", "order-1", after);
        assert_eq!(
            create_keyed(&s, &r3, &k3, after).await,
            CreateExecution::Created
        );
    }

    pub async fn concurrent_updates_of_one_version_write_once(s: Arc<dyn ExecutionStore>) {
        let r = new_record("acme", "e-1", T0);
        create(&s, &r).await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (s, r) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let owner = format!("dispatch-{i}");
                    let (next, ev) = r.claim(T0 + 1, &owner, 30_000);
                    (owner, s.update(&next, 0, &ev, T0 + 1).await.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (owner, out) = t.await.unwrap();
            if out == Write::Written {
                winners.push(owner);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let got = s.get("acme", "e-1", T0 + 1).await.unwrap().unwrap();
        assert_eq!(got.version, 1);
        assert_eq!(got.lease_owner.as_deref(), Some(winners[0].as_str()));
        let history = s
            .history("acme", "e-1", None, 100, T0 + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&history), vec![0, 1]);
        assert_eq!(history[1].lease_owner.as_deref(), Some(winners[0].as_str()));
    }

    pub async fn concurrent_creates_with_one_key_create_once(s: Arc<dyn ExecutionStore>) {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let (r, k) = keyed_record("acme", &format!("e-{i}"), "order-1", T0);
                    (r.execution_id.clone(), create_keyed(&s, &r, &k, T0).await)
                })
            })
            .collect();
        let mut created = Vec::new();
        let mut taken = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (id, CreateExecution::Created) => created.push(id),
                (_, CreateExecution::KeyTaken(entry)) => taken.push(entry.execution_id),
                (id, other) => panic!("{id}: unexpected {other:?}"),
            }
        }
        assert_eq!(created.len(), 1, "{created:?}");
        assert_eq!(taken.len(), 7);
        assert!(taken.iter().all(|id| *id == created[0]));
        let key = execution_key(PIPELINE, RELEASE, "order-1");
        let held = s.get_key("acme", &key, T0).await.unwrap().unwrap();
        assert_eq!(held.execution_id, created[0]);
        let listed = s
            .list("acme", &ExecutionFilter::default(), None, 100, T0)
            .await
            .unwrap();
        assert_eq!(ids(&listed), vec![created[0].as_str()]);
    }

    pub async fn concurrent_read_modify_writes_keep_the_history_gapless(
        s: Arc<dyn ExecutionStore>,
    ) {
        let r = new_record("acme", "e-1", T0);
        create(&s, &r).await;
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..5 {
                        loop {
                            let current = s.get("acme", "e-1", T0 + 1).await.unwrap().unwrap();
                            let owner = format!("dispatch-{task}-{i}");
                            let (next, ev) = current.claim(T0 + 1, &owner, 30_000);
                            match s.update(&next, current.version, &ev, T0 + 1).await.unwrap() {
                                Write::Written => break,
                                Write::Lost => tokio::task::yield_now().await,
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let got = s.get("acme", "e-1", T0 + 1).await.unwrap().unwrap();
        assert_eq!(got.version, 40);
        let history = s
            .history("acme", "e-1", None, 100, T0 + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&history), (0..=40).collect::<Vec<_>>());
    }
}

/// Cases about the `file` layout of `EXECUTION.md` §10.4.
mod file_only {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::path::Path;

    fn store(root: &Path) -> Arc<dyn ExecutionStore> {
        Arc::new(FileExecutionStore::new(root.to_path_buf()))
    }

    fn key_file(root: &Path, tenant: &str, key: &str) -> std::path::PathBuf {
        let hex = hex::encode(Sha256::digest(key.as_bytes()));
        root.join(tenant).join("keys").join(format!("{hex}.json"))
    }

    #[tokio::test]
    async fn the_layout_is_one_file_per_record_with_its_history_inline() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (r, k) = keyed_record("acme", "e-1", "order-1", T0);
        assert_eq!(create_keyed(&s, &r, &k, T0).await, CreateExecution::Created);
        apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 30_000)).await;

        let tenant = dir.path().join("acme");
        assert!(tenant.join(".lock").is_file());
        let text = std::fs::read(tenant.join("executions").join("e-1.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["executionId"], "e-1");
        assert_eq!(v["version"], 1);
        assert_eq!(v["status"], "RUNNING");
        let history = v["history"].as_array().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0]["type"], "SUBMITTED");
        assert_eq!(history[1]["version"], 1);
        let entry: serde_json::Value = serde_json::from_slice(
            &std::fs::read(key_file(dir.path(), "acme", &k.execution_key)).unwrap(),
        )
        .unwrap();
        assert_eq!(entry["executionKey"], k.execution_key.as_str());
        assert_eq!(entry["executionId"], "e-1");
        // No temporary is left behind.
        for sub in ["executions", "keys"] {
            let names: Vec<_> = std::fs::read_dir(tenant.join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        }
    }

    #[tokio::test]
    async fn leftover_temporaries_and_dot_directories_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        create(&s, &new_record("acme", "e-1", T0)).await;
        let executions = dir.path().join("acme").join("executions");
        std::fs::write(
            executions.join(".e-2.json.1b4e28ba-2fa1-11d2-883f-0016d3cca427.tmp"),
            b"{\"trunc",
        )
        .unwrap();
        std::fs::write(executions.join(".tmp-junk"), b"not json").unwrap();
        std::fs::create_dir_all(dir.path().join(".trash").join("executions")).unwrap();
        std::fs::write(
            dir.path().join(".trash").join("executions").join("x.json"),
            b"junk",
        )
        .unwrap();
        let listed = s
            .list("acme", &ExecutionFilter::default(), None, 10, T0)
            .await
            .unwrap();
        assert_eq!(ids(&listed), vec!["e-1"]);
        assert_eq!(
            s.due(T0, 10).await.unwrap(),
            vec![("acme".to_owned(), "e-1".to_owned())]
        );
        assert!(s.get("acme", "e-2", T0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_new_store_instance_sees_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let (r, k) = keyed_record("acme", "e-1", "order-1", T0);
        {
            let s = store(dir.path());
            assert_eq!(create_keyed(&s, &r, &k, T0).await, CreateExecution::Created);
            apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 30_000)).await;
        }
        let s = store(dir.path());
        let got = s.get("acme", "e-1", T0 + 2).await.unwrap().unwrap();
        assert_eq!(got.version, 1);
        assert_eq!(got.input_payload.get(), INPUT);
        assert_eq!(
            s.get_key("acme", &k.execution_key, T0 + 2).await.unwrap(),
            Some(k)
        );
        let history = s
            .history("acme", "e-1", None, 10, T0 + 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&history), vec![0, 1]);
    }

    #[tokio::test]
    async fn a_key_entry_left_without_its_execution_is_free() {
        // A T1 that crashed between its two writes leaves only the key entry.
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (_, orphan) = keyed_record("acme", "e-crashed", "order-1", T0);
        let path = key_file(dir.path(), "acme", &orphan.execution_key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_vec(&orphan).unwrap()).unwrap();
        assert!(s
            .get_key("acme", &orphan.execution_key, T0)
            .await
            .unwrap()
            .is_none());
        let (r, k) = keyed_record("acme", "e-1", "order-1", T0 + 1);
        assert_eq!(
            create_keyed(&s, &r, &k, T0 + 1).await,
            CreateExecution::Created
        );
        assert_eq!(
            s.get_key("acme", &k.execution_key, T0 + 1).await.unwrap(),
            Some(k)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn store06_separate_store_instances_on_one_root_keep_the_conditions() {
        // Each instance stands for a process: only the tenant `.lock` is shared.
        let dir = tempfile::tempdir().unwrap();
        let r = new_record("acme", "e-1", T0);
        create(&store(dir.path()), &r).await;
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let s = store(dir.path());
                tokio::spawn(async move {
                    for i in 0..5 {
                        loop {
                            let current = s.get("acme", "e-1", T0 + 1).await.unwrap().unwrap();
                            let (next, ev) =
                                current.claim(T0 + 1, &format!("dispatch-{task}-{i}"), 30_000);
                            if s.update(&next, current.version, &ev, T0 + 1).await.unwrap()
                                == Write::Written
                            {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let s = store(dir.path());
        let history = s
            .history("acme", "e-1", None, 100, T0 + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&history), (0..=40).collect::<Vec<_>>());
    }

    /// Child side of the multi-process case: runs only when the parent sets
    /// `TPF_CONFORMANCE_CHILD_ROOT` (it is `#[ignore]`d otherwise).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by store06_several_processes_writing_at_once_keep_the_conditions"]
    async fn store06_child_writer() {
        let Ok(root) = std::env::var("TPF_CONFORMANCE_CHILD_ROOT") else {
            return;
        };
        let who = std::env::var("TPF_CONFORMANCE_CHILD_ID").unwrap_or_default();
        let s = store(Path::new(&root));
        for i in 0..10 {
            loop {
                let current = s.get("acme", "e-1", T0 + 1).await.unwrap().unwrap();
                let (next, ev) = current.claim(T0 + 1, &format!("dispatch-{who}-{i}"), 30_000);
                if s.update(&next, current.version, &ev, T0 + 1).await.unwrap() == Write::Written {
                    break;
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store06_several_processes_writing_at_once_keep_the_conditions() {
        let dir = tempfile::tempdir().unwrap();
        let r = new_record("acme", "e-1", T0);
        create(&store(dir.path()), &r).await;
        let exe = std::env::current_exe().unwrap();
        // The child's test name: this module's path without the crate name.
        let module = module_path!().split_once("::").unwrap().1;
        let child_test = format!("{module}::store06_child_writer");
        let children: Vec<_> = (0..4)
            .map(|n| {
                std::process::Command::new(&exe)
                    .args(["--exact", &child_test, "--ignored", "--quiet"])
                    .env("TPF_CONFORMANCE_CHILD_ROOT", dir.path())
                    .env("TPF_CONFORMANCE_CHILD_ID", n.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let s = store(dir.path());
        let history = s
            .history("acme", "e-1", None, 100, T0 + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(&history), (0..=40).collect::<Vec<_>>());
        let owners: std::collections::HashSet<_> = history[1..]
            .iter()
            .map(|e| e.lease_owner.clone().unwrap())
            .collect();
        assert_eq!(owners.len(), 40);
    }
}
