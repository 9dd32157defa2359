//! Conformance suite of the `AwaitStore` port (`EXECUTION.md` §8, §10,
//! AWAIT-03, AWAIT-08): every provider runs the same cases in `cases`.
//! Adding a provider is one fixture function and one
//! `await_store_conformance!(name);` line. Cases specific to the `file`
//! layout are in `file_only`.

use crate::support::engine_dynamo;
use crate::support::serialized_engine;

use std::any::Any;
use std::sync::Arc;

use serde_json::value::RawValue;
use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
use tpf_core::ports::{AwaitStore, ImportOutcome, PendingFilter, Write};
use tpf_core::providers::file::FileAwaitStore;
use tpf_core::providers::memory::MemoryAwaitStore;

/// A provider under test and whatever must live as long as it (a tempdir).
type Fixture = (Arc<dyn AwaitStore>, Box<dyn Any + Send>);

fn memory() -> Fixture {
    (Arc::new(MemoryAwaitStore::new()), Box::new(()))
}

fn file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = FileAwaitStore::new(dir.path().to_path_buf());
    (Arc::new(store), Box::new(dir))
}

/// DynamoDB on moto (`EXECUTION.md` §10.5): a fresh table and payload
/// bucket per test, one index shard, one call at a time (moto is not atomic
/// under concurrent requests: see `support/serialized_engine.rs`).
fn dynamo() -> Fixture {
    let aws = engine_dynamo::engine_aws_blocking(engine_dynamo::Tables::Await, 1, 8192);
    let store = serialized_engine::SerializedAwaits::new(aws.awaits());
    (Arc::new(store), Box::new(()))
}

/// Generates one `#[tokio::test]` per case for the provider whose fixture
/// function has the given name.
macro_rules! await_store_conformance {
    ($provider:ident) => {
        await_store_conformance!(
            $provider:
            import_creates_the_unit_the_interaction_and_the_correlation_entry,
            missing_reads_are_empty,
            await03_reimporting_a_unit_keeps_the_first_unit_and_interaction,
            import_of_a_unit_of_another_execution_or_step_conflicts,
            import_of_an_interaction_of_another_unit_conflicts,
            import_of_a_correlation_mapped_to_another_interaction_conflicts,
            expired_await_records_are_invisible_and_can_be_imported_again,
            update_interaction_is_conditional_on_version_open_status_and_ttl,
            await08_finish_unit_never_overwrites_a_terminal_unit,
            set_settle_due_is_conditional_on_the_status_and_keeps_the_version,
            pending_filters_orders_pages_and_isolates_tenants,
            settle_due_is_ordered_across_tenants_and_limited,
            concurrent_imports_of_one_unit_import_once,
            concurrent_completions_of_one_version_write_once,
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

await_store_conformance!(memory);
await_store_conformance!(file);
await_store_conformance!(dynamo);

/// 2025-01-15T10:00:00Z, a whole second.
pub const T0: i64 = 1_736_935_200_000;
/// One hour in ms.
pub const HOUR: i64 = 3_600_000;
pub const REQUEST: &str = r#"{"orderId":"o-1","amount":12.50}"#;

/// Raw JSON text.
pub fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

/// A `WAITING` interaction `id` of `unit` (correlation `corr`), created at
/// `T0` with a deadline at `deadline`, as imported (§8.3, TTL per §3.9).
pub fn interaction(unit: &AwaitUnit, id: &str, corr: &str, deadline: i64) -> AwaitInteraction {
    AwaitInteraction {
        tenant_id: unit.tenant_id.clone(),
        execution_id: unit.execution_id.clone(),
        step_id: unit.step_id.clone(),
        step_index: unit.step_index,
        output_type: "orders.Approval".into(),
        transport_output_type: Some("orders.Approval".into()),
        interaction_id: id.into(),
        correlation_id: corr.into(),
        causation_id: None,
        idempotency_key: format!("idem-{id}"),
        version: 1,
        status: "WAITING".into(),
        request_payload: Some(raw(REQUEST)),
        response_payload: None,
        unit_id: unit.unit_id.clone(),
        item_index: None,
        actor: None,
        assignee: Some("alice".into()),
        group: Some("kitchen".into()),
        transport_type: "HUMAN_TASK".into(),
        transport_metadata: Some(raw(r#"{"queue":"approvals"}"#)),
        deadline_epoch_ms: deadline,
        created_at_epoch_ms: T0,
        updated_at_epoch_ms: T0,
        ttl_epoch_s: (deadline + 999) / 1000 + 86_400,
        completion_idempotency_key: None,
        completion_payload_hash: None,
        completed_at_epoch_ms: None,
        settle_due_epoch_ms: Some(deadline),
    }
}

/// A `WAITING_EXTERNAL` unit `id` of `execution` at `step`, primary
/// interaction `primary`.
pub fn unit(tenant: &str, id: &str, execution: &str, step: u64, primary: &str) -> AwaitUnit {
    AwaitUnit {
        tenant_id: tenant.into(),
        unit_id: id.into(),
        execution_id: execution.into(),
        step_id: "approve".into(),
        step_index: step,
        cardinality: "ONE_TO_ONE".into(),
        version: 1,
        status: "WAITING_EXTERNAL".into(),
        primary_interaction_id: Some(primary.into()),
        expected_item_count: None,
        completed_item_count: 0,
        completed_item_keys: vec![],
        dispatch_complete: true,
        created_at_epoch_ms: T0,
        updated_at_epoch_ms: T0,
        ttl_epoch_s: T0 / 1000 + 2 * 86_400,
    }
}

/// A unit and its primary interaction (deadline `deadline`).
pub fn pair(
    tenant: &str,
    unit_id: &str,
    execution: &str,
    interaction_id: &str,
    corr: &str,
    deadline: i64,
) -> (AwaitUnit, AwaitInteraction) {
    let u = unit(tenant, unit_id, execution, 1, interaction_id);
    let i = interaction(&u, interaction_id, corr, deadline);
    (u, i)
}

/// Imports a pair, which must be new.
pub async fn import(s: &Arc<dyn AwaitStore>, (u, i): &(AwaitUnit, AwaitInteraction)) {
    let out = s.import(u, i, T0).await.unwrap();
    assert!(matches!(out, ImportOutcome::Imported), "{out:?}");
}

/// The interaction as JSON text (interactions have no `PartialEq`).
pub fn json(i: &AwaitInteraction) -> String {
    serde_json::to_string(i).unwrap()
}

/// `i` completed at `now` (§8.5): version + 1.
pub fn completed(i: &AwaitInteraction, now: i64) -> AwaitInteraction {
    AwaitInteraction {
        status: "COMPLETED".into(),
        version: i.version + 1,
        response_payload: Some(raw(r#"{"approved":true}"#)),
        actor: Some("alice".into()),
        completion_idempotency_key: Some("done-1".into()),
        completion_payload_hash: Some("ab".repeat(32)),
        completed_at_epoch_ms: Some(now),
        settle_due_epoch_ms: Some(now + 60_000),
        updated_at_epoch_ms: now,
        ..i.clone()
    }
}

/// The ids of `interactions`, in order.
pub fn ids(interactions: &[AwaitInteraction]) -> Vec<&str> {
    interactions
        .iter()
        .map(|i| i.interaction_id.as_str())
        .collect()
}

mod cases {
    use super::*;

    pub async fn import_creates_the_unit_the_interaction_and_the_correlation_entry(
        s: Arc<dyn AwaitStore>,
    ) {
        let p = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &p).await;
        assert_eq!(
            s.get_unit("acme", "unit-1", T0).await.unwrap(),
            Some(p.0.clone())
        );
        let got = s
            .get_interaction("acme", "int-1", T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(json(&got), json(&p.1));
        assert_eq!(got.request_payload.as_ref().unwrap().get(), REQUEST);
        let by_corr = s
            .get_by_correlation("acme", "corr-1", T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(json(&by_corr), json(&p.1));
    }

    pub async fn missing_reads_are_empty(s: Arc<dyn AwaitStore>) {
        assert!(s.get_unit("acme", "nope", T0).await.unwrap().is_none());
        assert!(s
            .get_interaction("acme", "nope", T0)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .get_by_correlation("acme", "nope", T0)
            .await
            .unwrap()
            .is_none());
        let none = s
            .pending("acme", &PendingFilter::default(), None, 10, T0)
            .await
            .unwrap();
        assert!(none.is_empty());
        assert!(s.settle_due(T0 + 10 * HOUR, 10).await.unwrap().is_empty());
        assert_eq!(
            s.finish_unit("acme", "nope", "COMPLETED", T0)
                .await
                .unwrap(),
            Write::Lost
        );
        let lost = s
            .set_settle_due("acme", "nope", "WAITING", None, T0)
            .await
            .unwrap();
        assert_eq!(lost, Write::Lost);
        let (_, i) = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        assert_eq!(
            s.update_interaction(&completed(&i, T0), 1, T0)
                .await
                .unwrap(),
            Write::Lost
        );
        assert!(s
            .get_interaction("acme", "int-1", T0)
            .await
            .unwrap()
            .is_none());
    }

    pub async fn await03_reimporting_a_unit_keeps_the_first_unit_and_interaction(
        s: Arc<dyn AwaitStore>,
    ) {
        let first = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &first).await;
        // A retried transition re-suspends on the same deterministic unit id
        // with fresh interaction values.
        let mut u2 = unit("acme", "unit-1", "e-1", 1, "int-2");
        u2.updated_at_epoch_ms = T0 + 5;
        let i2 = interaction(&u2, "int-2", "corr-2", T0 + 2 * HOUR);
        match s.import(&u2, &i2, T0 + 5).await.unwrap() {
            ImportOutcome::Existing(unit, primary) => {
                assert_eq!(unit, first.0);
                assert_eq!(json(&primary), json(&first.1));
            }
            other => panic!("expected Existing, got {other:?}"),
        }
        // Nothing of the second snapshot was written.
        assert_eq!(
            s.get_unit("acme", "unit-1", T0 + 5).await.unwrap(),
            Some(first.0.clone())
        );
        assert!(s
            .get_interaction("acme", "int-2", T0 + 5)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .get_by_correlation("acme", "corr-2", T0 + 5)
            .await
            .unwrap()
            .is_none());
        // The same snapshot again is also Existing.
        let again = s.import(&first.0, &first.1, T0 + 6).await.unwrap();
        assert!(matches!(again, ImportOutcome::Existing(u, _) if u == first.0));
        // Even after the unit finished, the stored one is returned as is.
        assert_eq!(
            s.finish_unit("acme", "unit-1", "COMPLETED", T0 + 7)
                .await
                .unwrap(),
            Write::Written
        );
        match s.import(&first.0, &first.1, T0 + 8).await.unwrap() {
            ImportOutcome::Existing(unit, _) => assert_eq!(unit.status, "COMPLETED"),
            other => panic!("expected Existing, got {other:?}"),
        }
    }

    pub async fn import_of_a_unit_of_another_execution_or_step_conflicts(s: Arc<dyn AwaitStore>) {
        let first = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &first).await;
        let other = pair("acme", "unit-1", "e-2", "int-2", "corr-2", T0 + HOUR);
        let out = s.import(&other.0, &other.1, T0).await.unwrap();
        assert!(matches!(out, ImportOutcome::Conflict(_)), "{out:?}");
        let u3 = unit("acme", "unit-1", "e-1", 4, "int-3");
        let i3 = interaction(&u3, "int-3", "corr-3", T0 + HOUR);
        let out = s.import(&u3, &i3, T0).await.unwrap();
        assert!(matches!(out, ImportOutcome::Conflict(_)), "{out:?}");
        assert!(s
            .get_interaction("acme", "int-2", T0)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .get_interaction("acme", "int-3", T0)
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            s.get_unit("acme", "unit-1", T0).await.unwrap(),
            Some(first.0)
        );
    }

    pub async fn import_of_an_interaction_of_another_unit_conflicts(s: Arc<dyn AwaitStore>) {
        let first = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &first).await;
        let other = pair("acme", "unit-2", "e-2", "int-1", "corr-2", T0 + HOUR);
        let out = s.import(&other.0, &other.1, T0).await.unwrap();
        assert!(matches!(out, ImportOutcome::Conflict(_)), "{out:?}");
        assert!(s.get_unit("acme", "unit-2", T0).await.unwrap().is_none());
        assert!(s
            .get_by_correlation("acme", "corr-2", T0)
            .await
            .unwrap()
            .is_none());
        let kept = s
            .get_interaction("acme", "int-1", T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(json(&kept), json(&first.1));
    }

    pub async fn import_of_a_correlation_mapped_to_another_interaction_conflicts(
        s: Arc<dyn AwaitStore>,
    ) {
        let first = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &first).await;
        let other = pair("acme", "unit-2", "e-2", "int-2", "corr-1", T0 + HOUR);
        match s.import(&other.0, &other.1, T0).await.unwrap() {
            ImportOutcome::Conflict(why) => assert!(why.contains("corr-1"), "{why}"),
            out => panic!("expected Conflict, got {out:?}"),
        }
        // The correlation still resolves to the first; the unit was not
        // written (the interaction may stay behind as an orphan).
        let by_corr = s
            .get_by_correlation("acme", "corr-1", T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_corr.interaction_id, "int-1");
        assert!(s.get_unit("acme", "unit-2", T0).await.unwrap().is_none());
        // The same correlation id under another tenant is another entry.
        let elsewhere = pair("globex", "unit-2", "e-2", "int-2", "corr-1", T0 + HOUR);
        import(&s, &elsewhere).await;
        let theirs = s
            .get_by_correlation("globex", "corr-1", T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (theirs.tenant_id.as_str(), theirs.interaction_id.as_str()),
            ("globex", "int-2")
        );
    }

    pub async fn expired_await_records_are_invisible_and_can_be_imported_again(
        s: Arc<dyn AwaitStore>,
    ) {
        let (mut u, mut i) = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        i.ttl_epoch_s = T0 / 1000 + 10;
        u.ttl_epoch_s = T0 / 1000 + 10;
        import(&s, &(u.clone(), i.clone())).await;
        let live = T0 + 9_999;
        let dead = T0 + 10_000;
        assert!(s.get_unit("acme", "unit-1", live).await.unwrap().is_some());
        assert_eq!(
            s.pending("acme", &PendingFilter::default(), None, 10, live)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(s.get_unit("acme", "unit-1", dead).await.unwrap().is_none());
        assert!(s
            .get_interaction("acme", "int-1", dead)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .get_by_correlation("acme", "corr-1", dead)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .pending("acme", &PendingFilter::default(), None, 10, dead)
            .await
            .unwrap()
            .is_empty());
        assert!(s.settle_due(T0 + 2 * HOUR, 10).await.unwrap().is_empty());
        assert_eq!(
            s.update_interaction(&completed(&i, dead), 1, dead)
                .await
                .unwrap(),
            Write::Lost
        );
        assert_eq!(
            s.finish_unit("acme", "unit-1", "TIMED_OUT", dead)
                .await
                .unwrap(),
            Write::Lost
        );
        let lost = s
            .set_settle_due("acme", "int-1", "WAITING", None, dead)
            .await
            .unwrap();
        assert_eq!(lost, Write::Lost);
        // Expired records are free: a new import with the same ids wins.
        let (u2, i2) = pair("acme", "unit-1", "e-9", "int-1", "corr-1", dead + HOUR);
        let out = s.import(&u2, &i2, dead).await.unwrap();
        assert!(matches!(out, ImportOutcome::Imported), "{out:?}");
        assert_eq!(s.get_unit("acme", "unit-1", dead).await.unwrap(), Some(u2));
        let by_corr = s
            .get_by_correlation("acme", "corr-1", dead)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_corr.execution_id, "e-9");
    }

    pub async fn update_interaction_is_conditional_on_version_open_status_and_ttl(
        s: Arc<dyn AwaitStore>,
    ) {
        let p = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &p).await;
        let done = completed(&p.1, T0 + 10);
        assert_eq!(
            s.update_interaction(&done, 0, T0 + 10).await.unwrap(),
            Write::Lost
        );
        assert_eq!(
            s.update_interaction(&done, 2, T0 + 10).await.unwrap(),
            Write::Lost
        );
        assert_eq!(
            s.update_interaction(&done, 1, T0 + 10).await.unwrap(),
            Write::Written
        );
        let got = s
            .get_interaction("acme", "int-1", T0 + 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(json(&got), json(&done));
        assert_eq!(
            got.response_payload.as_ref().unwrap().get(),
            r#"{"approved":true}"#
        );
        // A second completion from the same read is lost; so is any change of
        // a terminal interaction, whatever version it names.
        let mut timed_out = p.1.clone();
        timed_out.status = "TIMED_OUT".into();
        timed_out.version = 2;
        assert_eq!(
            s.update_interaction(&timed_out, 1, T0 + 11).await.unwrap(),
            Write::Lost
        );
        let mut again = done.clone();
        again.version = 3;
        assert_eq!(
            s.update_interaction(&again, 2, T0 + 11).await.unwrap(),
            Write::Lost
        );
        let got = s
            .get_interaction("acme", "int-1", T0 + 11)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.status.as_str(), got.version), ("COMPLETED", 2));
        // DISPATCHED is open too.
        let q = pair("acme", "unit-2", "e-2", "int-2", "corr-2", T0 + HOUR);
        let mut dispatched = q.1.clone();
        dispatched.status = "DISPATCHED".into();
        import(&s, &(q.0.clone(), dispatched.clone())).await;
        let out = s
            .update_interaction(&completed(&dispatched, T0 + 12), 1, T0 + 12)
            .await
            .unwrap();
        assert_eq!(out, Write::Written);
        // Other tenants do not see the change.
        assert!(s
            .get_interaction("globex", "int-1", T0 + 12)
            .await
            .unwrap()
            .is_none());
    }

    pub async fn await08_finish_unit_never_overwrites_a_terminal_unit(s: Arc<dyn AwaitStore>) {
        let p = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &p).await;
        assert_eq!(
            s.finish_unit("acme", "unit-1", "COMPLETED", T0 + 10)
                .await
                .unwrap(),
            Write::Written
        );
        let got = s
            .get_unit("acme", "unit-1", T0 + 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.status, "COMPLETED");
        assert_eq!(got.version, p.0.version + 1);
        assert_eq!(got.updated_at_epoch_ms, T0 + 10);
        assert_eq!(got.created_at_epoch_ms, p.0.created_at_epoch_ms);
        for status in ["TIMED_OUT", "COMPLETED", "FAILED"] {
            assert_eq!(
                s.finish_unit("acme", "unit-1", status, T0 + 20)
                    .await
                    .unwrap(),
                Write::Lost
            );
        }
        let got = s
            .get_unit("acme", "unit-1", T0 + 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.status.as_str(), got.version),
            ("COMPLETED", p.0.version + 1)
        );
        // "Finishing" into WAITING_EXTERNAL is a caller bug.
        let q = pair("acme", "unit-2", "e-2", "int-2", "corr-2", T0 + HOUR);
        import(&s, &q).await;
        assert!(s
            .finish_unit("acme", "unit-2", "WAITING_EXTERNAL", T0 + 30)
            .await
            .is_err());
        assert_eq!(
            s.finish_unit("acme", "unit-2", "TIMED_OUT", T0 + 30)
                .await
                .unwrap(),
            Write::Written
        );
        assert_eq!(
            s.finish_unit("acme", "unit-2", "COMPLETED", T0 + 31)
                .await
                .unwrap(),
            Write::Lost
        );
        let got = s
            .get_unit("acme", "unit-2", T0 + 31)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.status, "TIMED_OUT");
    }

    pub async fn set_settle_due_is_conditional_on_the_status_and_keeps_the_version(
        s: Arc<dyn AwaitStore>,
    ) {
        let p = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &p).await;
        let out = s
            .set_settle_due("acme", "int-1", "COMPLETED", None, T0 + 1)
            .await
            .unwrap();
        assert_eq!(out, Write::Lost);
        let out = s
            .set_settle_due("acme", "int-1", "WAITING", Some(T0 + 60_000), T0 + 1)
            .await
            .unwrap();
        assert_eq!(out, Write::Written);
        let got = s
            .get_interaction("acme", "int-1", T0 + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.settle_due_epoch_ms, Some(T0 + 60_000));
        assert_eq!(
            (got.version, got.updated_at_epoch_ms),
            (p.1.version, p.1.updated_at_epoch_ms)
        );
        assert_eq!(s.settle_due(T0 + 60_000, 10).await.unwrap().len(), 1);

        let done = completed(&got, T0 + 2);
        assert_eq!(
            s.update_interaction(&done, got.version, T0 + 2)
                .await
                .unwrap(),
            Write::Written
        );
        // A settle planned while WAITING does not apply to COMPLETED.
        let out = s
            .set_settle_due("acme", "int-1", "WAITING", None, T0 + 3)
            .await
            .unwrap();
        assert_eq!(out, Write::Lost);
        let out = s
            .set_settle_due("acme", "int-1", "COMPLETED", None, T0 + 3)
            .await
            .unwrap();
        assert_eq!(out, Write::Written);
        let got = s
            .get_interaction("acme", "int-1", T0 + 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.settle_due_epoch_ms, None);
        assert_eq!(
            (got.version, got.updated_at_epoch_ms),
            (done.version, done.updated_at_epoch_ms)
        );
        assert!(s.settle_due(T0 + 100 * HOUR, 10).await.unwrap().is_empty());
    }

    pub async fn pending_filters_orders_pages_and_isolates_tenants(s: Arc<dyn AwaitStore>) {
        // (unit, execution, interaction, deadline)
        let rows = [
            ("u-1", "e-1", "int-b", T0 + 2 * HOUR),
            ("u-2", "e-2", "int-a", T0 + 2 * HOUR),
            ("u-3", "e-3", "int-c", T0 + HOUR),
            ("u-4", "e-4", "int-d", T0 + 3 * HOUR),
            ("u-5", "e-5", "int-e", T0 + 30 * 60_000),
            ("u-6", "e-6", "int-f", T0 + 4 * HOUR),
        ];
        let mut all = Vec::new();
        for (u, e, i, deadline) in rows {
            let p = pair("acme", u, e, i, &format!("corr-{i}"), deadline);
            all.push(p);
        }
        all[3].1.assignee = Some("bob".into());
        all[3].1.group = None;
        all[4].1.step_id = "review".into();
        all[4].0.step_id = "review".into();
        all[5].1.status = "DISPATCHING".into();
        for p in &all {
            import(&s, p).await;
        }
        // A completed one, an expired one and another tenant's are not listed.
        let done = pair("acme", "u-7", "e-7", "int-g", "corr-g", T0 + HOUR);
        import(&s, &done).await;
        s.update_interaction(&completed(&done.1, T0 + 1), 1, T0 + 1)
            .await
            .unwrap();
        let (eu, mut ei) = pair("acme", "u-8", "e-8", "int-h", "corr-h", T0 + HOUR);
        ei.ttl_epoch_s = T0 / 1000 + 60;
        import(&s, &(eu, ei)).await;
        import(
            &s,
            &pair("globex", "u-1", "e-1", "int-z", "corr-z", T0 + HOUR),
        )
        .await;

        // Past every deadline but before the TTLs: open ones are still listed.
        let now = T0 + 5 * HOUR;
        let f = PendingFilter::default();
        let page = s.pending("acme", &f, None, 100, now).await.unwrap();
        assert_eq!(
            ids(&page),
            vec!["int-e", "int-c", "int-a", "int-b", "int-d", "int-f"]
        );
        let first = s.pending("acme", &f, None, 2, now).await.unwrap();
        assert_eq!(ids(&first), vec!["int-e", "int-c"]);
        let last = first.last().unwrap();
        let cursor = Some((last.deadline_epoch_ms, last.interaction_id.clone()));
        let second = s.pending("acme", &f, cursor, 3, now).await.unwrap();
        assert_eq!(ids(&second), vec!["int-a", "int-b", "int-d"]);
        let tie = s
            .pending("acme", &f, Some((T0 + 2 * HOUR, "int-a".into())), 100, now)
            .await
            .unwrap();
        assert_eq!(ids(&tie), vec!["int-b", "int-d", "int-f"]);
        assert!(s
            .pending("acme", &f, None, 0, now)
            .await
            .unwrap()
            .is_empty());

        let by_step = PendingFilter {
            step_id: Some("review".into()),
            ..Default::default()
        };
        assert_eq!(
            ids(&s.pending("acme", &by_step, None, 100, now).await.unwrap()),
            vec!["int-e"]
        );
        let by_assignee = PendingFilter {
            assignee: Some("bob".into()),
            ..Default::default()
        };
        assert_eq!(
            ids(&s
                .pending("acme", &by_assignee, None, 100, now)
                .await
                .unwrap()),
            vec!["int-d"]
        );
        let by_group = PendingFilter {
            step_id: Some("approve".into()),
            group: Some("kitchen".into()),
            ..Default::default()
        };
        let got = s.pending("acme", &by_group, None, 100, now).await.unwrap();
        assert_eq!(ids(&got), vec!["int-c", "int-a", "int-b", "int-f"]);
        let exact = PendingFilter {
            group: Some("Kitchen".into()),
            ..Default::default()
        };
        assert!(s
            .pending("acme", &exact, None, 100, now)
            .await
            .unwrap()
            .is_empty());

        let theirs = s.pending("globex", &f, None, 100, now).await.unwrap();
        assert_eq!(ids(&theirs), vec!["int-z"]);
        assert!(s
            .pending("initech", &f, None, 100, now)
            .await
            .unwrap()
            .is_empty());
        // The expired one was listed while live.
        let early = s.pending("acme", &f, None, 100, T0 + 1).await.unwrap();
        assert!(ids(&early).contains(&"int-h"));
    }

    pub async fn settle_due_is_ordered_across_tenants_and_limited(s: Arc<dyn AwaitStore>) {
        // Settle due at the deadline while open (§8.3).
        let rows = [
            ("acme", "u-1", "int-b", T0 + 2 * HOUR),
            ("acme", "u-2", "int-a", T0 + 2 * HOUR),
            ("globex", "u-3", "int-0", T0 + 2 * HOUR),
            ("acme", "u-4", "int-c", T0 + HOUR),
            ("acme", "u-5", "int-d", T0 + 9 * HOUR),
        ];
        for (tenant, u, i, deadline) in rows {
            import(
                &s,
                &pair(
                    tenant,
                    u,
                    &format!("e-{u}"),
                    i,
                    &format!("corr-{i}"),
                    deadline,
                ),
            )
            .await;
        }
        // A settled one (null) and an expired one are never selected.
        let settled = pair("acme", "u-6", "e-6", "int-e", "corr-e", T0 + HOUR);
        import(&s, &settled).await;
        s.set_settle_due("acme", "int-e", "WAITING", None, T0)
            .await
            .unwrap();
        let (eu, mut ei) = pair("acme", "u-7", "e-7", "int-f", "corr-f", T0 + HOUR);
        ei.ttl_epoch_s = T0 / 1000 + 60;
        import(&s, &(eu, ei)).await;
        // A completed one is due a minute after its completion.
        let done = pair("zeta", "u-8", "e-8", "int-g", "corr-g", T0 + 9 * HOUR);
        import(&s, &done).await;
        s.update_interaction(&completed(&done.1, T0 + HOUR), 1, T0 + HOUR)
            .await
            .unwrap();

        let now = T0 + 3 * HOUR;
        let p = |t: &str, id: &str| (t.to_owned(), id.to_owned());
        let due = s.settle_due(now, 100).await.unwrap();
        assert_eq!(
            due,
            vec![
                p("acme", "int-c"),
                p("zeta", "int-g"),
                p("acme", "int-a"),
                p("acme", "int-b"),
                p("globex", "int-0"),
            ]
        );
        assert_eq!(s.settle_due(now, 3).await.unwrap(), due[..3].to_vec());
        assert!(s.settle_due(now, 0).await.unwrap().is_empty());
        assert_eq!(
            s.settle_due(T0 + HOUR, 100).await.unwrap(),
            vec![p("acme", "int-c")]
        );
    }

    pub async fn concurrent_imports_of_one_unit_import_once(s: Arc<dyn AwaitStore>) {
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let s = s.clone();
                tokio::spawn(async move {
                    let u = unit("acme", "unit-1", "e-1", 1, &format!("int-{n}"));
                    let i = interaction(&u, &format!("int-{n}"), &format!("corr-{n}"), T0 + HOUR);
                    (n, s.import(&u, &i, T0).await.unwrap())
                })
            })
            .collect();
        let mut imported = Vec::new();
        let mut existing = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (n, ImportOutcome::Imported) => imported.push(format!("int-{n}")),
                (_, ImportOutcome::Existing(u, i)) => {
                    existing.push((u.primary_interaction_id, i.interaction_id))
                }
                (n, out) => panic!("{n}: unexpected {out:?}"),
            }
        }
        assert_eq!(imported.len(), 1, "{imported:?}");
        assert_eq!(existing.len(), 7);
        for (primary, interaction) in existing {
            assert_eq!(primary.as_deref(), Some(imported[0].as_str()));
            assert_eq!(interaction, imported[0]);
        }
        let stored = s.get_unit("acme", "unit-1", T0).await.unwrap().unwrap();
        assert_eq!(
            stored.primary_interaction_id.as_deref(),
            Some(imported[0].as_str())
        );
    }

    pub async fn concurrent_completions_of_one_version_write_once(s: Arc<dyn AwaitStore>) {
        let p = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &p).await;
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let (s, i) = (s.clone(), p.1.clone());
                tokio::spawn(async move {
                    let mut next = completed(&i, T0 + 10);
                    next.actor = Some(format!("actor-{n}"));
                    (n, s.update_interaction(&next, 1, T0 + 10).await.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (n, out) = t.await.unwrap();
            if out == Write::Written {
                winners.push(format!("actor-{n}"));
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let got = s
            .get_interaction("acme", "int-1", T0 + 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.actor.as_deref(), Some(winners[0].as_str()));
        assert_eq!(got.version, 2);
    }
}

/// Cases about the `file` layout of `EXECUTION.md` §10.4.
mod file_only {
    use super::*;
    use std::path::Path;
    use tpf_core::domain::execution::{ExecutionRecord, ExecutionStatus, KeyEntry, ResultShape};
    use tpf_core::ports::{CreateExecution, ExecutionStore};
    use tpf_core::providers::file::FileExecutionStore;

    fn store(root: &Path) -> Arc<dyn AwaitStore> {
        Arc::new(FileAwaitStore::new(root.to_path_buf()))
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn the_layout_is_one_file_per_unit_interaction_and_correlation() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let p = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&s, &p).await;
        let tenant = dir.path().join("acme");
        assert!(tenant.join(".lock").is_file());
        assert_eq!(names(&tenant.join("units")), vec!["unit-1.json"]);
        assert_eq!(names(&tenant.join("interactions")), vec!["int-1.json"]);
        assert_eq!(names(&tenant.join("correlations")), vec!["corr-1.json"]);
        let entry: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tenant.join("correlations").join("corr-1.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            entry,
            serde_json::json!({
                "tenantId": "acme",
                "correlationId": "corr-1",
                "interactionId": "int-1",
                "ttlEpochS": p.1.ttl_epoch_s,
            })
        );
        let stored: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tenant.join("interactions").join("int-1.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(stored["settleDueEpochMs"], T0 + HOUR);
        assert_eq!(stored["requestPayload"]["amount"], 12.5);
    }

    #[tokio::test]
    async fn an_import_interrupted_after_the_interaction_is_finished_by_the_next() {
        // A crash after the first of the three writes leaves the interaction alone.
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let p = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        let interactions = dir.path().join("acme").join("interactions");
        std::fs::create_dir_all(&interactions).unwrap();
        std::fs::write(
            interactions.join("int-1.json"),
            serde_json::to_vec(&p.1).unwrap(),
        )
        .unwrap();
        assert!(s.get_unit("acme", "unit-1", T0).await.unwrap().is_none());
        import(&s, &p).await;
        assert_eq!(
            s.get_unit("acme", "unit-1", T0).await.unwrap(),
            Some(p.0.clone())
        );
        let by_corr = s
            .get_by_correlation("acme", "corr-1", T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_corr.interaction_id, "int-1");
    }

    #[tokio::test]
    async fn leftover_temporaries_are_ignored_and_a_new_instance_sees_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let p = pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR);
        import(&store(dir.path()), &p).await;
        let interactions = dir.path().join("acme").join("interactions");
        std::fs::write(interactions.join(".int-2.json.5f1d.tmp"), b"{\"half").unwrap();
        std::fs::write(interactions.join(".tmp-x"), b"junk").unwrap();
        let s = store(dir.path());
        let pending = s
            .pending("acme", &PendingFilter::default(), None, 10, T0)
            .await
            .unwrap();
        assert_eq!(ids(&pending), vec!["int-1"]);
        let due = s.settle_due(T0 + HOUR, 10).await.unwrap();
        assert_eq!(due, vec![("acme".to_owned(), "int-1".to_owned())]);
        assert_eq!(s.get_unit("acme", "unit-1", T0).await.unwrap(), Some(p.0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_execution_and_await_stores_share_the_tenant_lock_and_root() {
        let dir = tempfile::tempdir().unwrap();
        let awaits = store(dir.path());
        let executions: Arc<dyn ExecutionStore> =
            Arc::new(FileExecutionStore::new(dir.path().to_path_buf()));
        let record = ExecutionRecord {
            tenant_id: "acme".into(),
            execution_id: "e-1".into(),
            execution_key: "6:orders:9:2025.01.0:executionKey:k".into(),
            input_hash: "ab".repeat(32),
            pipeline_id: "orders".into(),
            contract_version: "sha256:4be1f0c27a9d".into(),
            release_version: "2025.01.0".into(),
            result_shape: ResultShape::Single,
            status: ExecutionStatus::Queued,
            version: 0,
            current_step_index: 0,
            attempt: 0,
            lease_owner: None,
            lease_expires_epoch_ms: 0,
            next_due_epoch_ms: Some(T0),
            last_transition_key: None,
            input_payload: raw("{}"),
            await_unit_id: None,
            result_payload: None,
            error_code: None,
            error_message: None,
            created_at_epoch_ms: T0,
            updated_at_epoch_ms: T0,
            ttl_epoch_s: T0 / 1000 + 86_400,
        };
        let key = KeyEntry {
            tenant_id: "acme".into(),
            execution_key: record.execution_key.clone(),
            execution_id: "e-1".into(),
            input_hash: record.input_hash.clone(),
            created_at_epoch_ms: T0,
            ttl_epoch_s: record.ttl_epoch_s,
        };
        let created = executions
            .create(&record, &record.submitted_event(), Some(&key), T0)
            .await
            .unwrap();
        assert_eq!(created, CreateExecution::Created);
        import(
            &awaits,
            &pair("acme", "unit-1", "e-1", "int-1", "corr-1", T0 + HOUR),
        )
        .await;
        let tenant = dir.path().join("acme");
        assert_eq!(
            names(&tenant),
            vec![
                ".lock",
                "correlations",
                "executions",
                "interactions",
                "keys",
                "units"
            ]
        );
        // Neither store lists the other's files.
        assert_eq!(
            executions.due(T0, 10).await.unwrap(),
            vec![("acme".to_owned(), "e-1".to_owned())]
        );
        assert_eq!(awaits.settle_due(T0 + HOUR, 10).await.unwrap().len(), 1);
    }
}
