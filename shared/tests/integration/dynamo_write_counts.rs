//! STORE-08 (`EXECUTION.md` §10.6, §10.8) on moto: every operation of the
//! write-count table makes exactly the write requests listed, with the
//! conditions of §10.6; a lost write is detected; a write that won but whose
//! response was lost (the SDK retries it and meets its own condition) is
//! recognised as won.
//!
//! The `dynamo` stores run on clients carrying the interceptor of a
//! [`RequestLog`] (the recording client of §10.8), and each operation calls
//! the ports in the order the actions do (`submit_execution`,
//! `process_work_item`, `complete_interaction` and its follow-up), so the
//! reads the actions make through the stores are pinned too. The same
//! operations through the real actions, HTTP worker and SQS are pinned in
//! `tests/tests/engine/aws_flow.rs` (`store08_write_counts`).
//!
//! Sizes are those of §10.8: payloads under 1 KB (payload items, never S3),
//! an interaction request inline (≤ 1 KiB), the default S3 threshold.
//!
//! Reads listed by §10.8 ("a consistent `GetItem` before every T2 and T7,
//! and one at each import") are GetItems of the execution / unit item; the
//! stores make a few more, pinned here and explained where they happen:
//! `ExecutionStore::get` also reads the `input` payload item, T4 reads the
//! execution item first (it needs the stored `ttl` to know whether the TTL
//! grows, §10.6), a keyed submit reads its key entry (`API.md` §2.1 step 4).

use crate::support::engine_dynamo;
use crate::support::moto;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde_json::value::RawValue;

use engine_dynamo::{engine_aws, Tables};
use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
use tpf_core::domain::execution::{
    execution_key, keyless_execution_key, ExecutionRecord, ExecutionStatus, KeyEntry, ResultShape,
};
use tpf_core::ports::{AwaitStore, CreateExecution, ExecutionStore, ImportOutcome, Write};
use tpf_core::providers::aws_requests::{AwsRequest, ItemWrite, Outcome, RequestLog};
use tpf_core::providers::dynamo::{DynamoAwaitStore, DynamoExecutionStore};

/// 2025-01-15T10:00:00Z.
const T0: i64 = 1_736_935_200_000;
const TTL_S: i64 = 7 * 86_400;
const LEASE_MS: i64 = 30_000;
const PIPELINE: &str = "orders";
const RELEASE: &str = "2025.01.0";
/// The default `TPF_PAYLOAD_S3_THRESHOLD_BYTES`.
const THRESHOLD: usize = 8192;
/// An order input snapshot of about 500 bytes (a payload item).
const INPUT: &str = r#"{"shape":"SINGLE","payload":{"payloadTypeId":"orders.PlaceOrder","payloadEncoding":"application/tpf-transition+json","payload":"{\"requestId\":\"5b0e2c1a-8f3d-4e6b-a9c7-1d2e3f4a5b6c\",\"customerName\":\"Ada Lovelace\",\"restaurantName\":\"Cafe TPF\",\"items\":\"Margherita Pizza, Sparkling Water\",\"totalAmount\":\"27.50\",\"currency\":\"EUR\"}"},"items":[]}"#;
const OUTPUT: &str = r#"{"payloadTypeId":"orders.Done","payloadEncoding":"application/tpf-transition+json","payload":"{\"outcome\":\"APPROVED\"}"}"#;

// The §10.6 conditions as the stores write them (`#x` names attribute `x`,
// `live` is `#ttl > :now_s`).
/// T1 (execution item), the key entry, and every import `PutItem`:
/// create-if-absent or over an expired item (an expired id or key is free,
/// STORE-03).
const CREATE_OR_EXPIRED: &str = "attribute_not_exists(#pk) OR #ttl <= :now_s";
/// A payload item (§10.5): create-if-absent, or extend a shorter TTL.
const PAYLOAD_PUT: &str = "attribute_not_exists(#pk) OR #ttl < :ttl";
/// T2–T9: `#v = :v AND live`.
const EXEC_UPDATE: &str = "#v = :expv AND #ttl > :now_s";
/// T4 without a read: T2–T9's condition, and the `ttl` not growing.
const EXEC_T4: &str = "#v = :expv AND #ttl > :now_s AND #ttl >= :grown_ttl";
/// The correlation entry: create-if-absent, over an expired one, or already this mapping.
const CORRELATION_PUT: &str = "attribute_not_exists(#pk) OR #ttl <= :now_s OR #iid = :iid";
/// Complete / time out: `#v = :v AND #st IN (open) AND live`.
const INTERACTION_UPDATE: &str = "#v = :expv AND #st IN (:open0, :open1, :open2) AND #ttl > :now_s";
/// Unit → terminal: `#st = :waiting_external AND live`.
const UNIT_FINISH: &str = "#st = :waiting AND #ttl > :now_s";
/// Settle / re-check: `#st = :status_read` (and live).
const SETTLE: &str = "#st = :expst AND #ttl > :now_s";
/// T4's extension of another item of the execution.
const EXTEND: &str = "attribute_exists(#pk)";
const EXTEND_KEY: &str = "attribute_exists(#pk) AND #eid = :eid AND #ttl < :ttl";

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

/// The execution and await stores on their own tables (§10.5's two-table
/// layout), both clients recording into one log; `retry` rewrites first
/// responses (see [`LoseResponse`]).
struct Counted {
    executions: DynamoExecutionStore,
    awaits: DynamoAwaitStore,
    log: RequestLog,
    lose: LoseResponse,
    exec_table: String,
    await_table: String,
}

async fn counted() -> Counted {
    let mut exec = engine_aws(Tables::Execution, 1, THRESHOLD).await;
    let mut awaits = engine_aws(Tables::Await, 1, THRESHOLD).await;
    let log = RequestLog::new();
    let lose = LoseResponse::default();
    let config = moto::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(log.interceptor())
            .interceptor(lose.clone())
            // The SDK's standard retries, without the wait.
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .interceptor(log.interceptor())
            .build(),
    );
    exec.ddb = ddb.clone();
    exec.s3 = s3.clone();
    awaits.ddb = ddb;
    awaits.s3 = s3;
    Counted {
        executions: exec.executions(),
        awaits: awaits.awaits(),
        log,
        lose,
        exec_table: exec.table,
        await_table: awaits.table,
    }
}

/// Requests as `Operation` / `Operation(items)`, other services prefixed.
fn labels(requests: &[AwsRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            if r.service == "dynamodb" {
                r.label()
            } else {
                r.to_string()
            }
        })
        .collect()
}

fn writes(requests: &[AwsRequest]) -> Vec<&AwsRequest> {
    requests.iter().filter(|r| r.is_dynamo_write()).collect()
}

/// (write requests, items written) of `requests`.
fn write_count(requests: &[AwsRequest]) -> (usize, usize) {
    let w = writes(requests);
    (w.len(), w.iter().map(|r| r.items).sum())
}

fn item_write(action: &'static str, table: &str, condition: &str, all_old: bool) -> ItemWrite {
    ItemWrite {
        action,
        table: Some(table.to_owned()),
        condition: Some(condition.to_owned()),
        all_old_on_failure: all_old,
    }
}

/// Every DynamoDB read is consistent (§10.7) and every request succeeded.
#[track_caller]
fn assert_consistent_and_ok(requests: &[AwsRequest]) {
    for r in requests {
        if r.service == "dynamodb" && r.is_read() {
            assert_eq!(r.consistent_read, Some(true), "{r:?}");
        }
        assert_eq!(r.outcome, Some(Outcome::Ok), "{r:?}");
        assert_eq!(r.attempts, 1, "{r:?}");
    }
}

fn record(id: &str, now: i64) -> ExecutionRecord {
    ExecutionRecord {
        tenant_id: "acme".into(),
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

fn keyed(id: &str, raw_key: &str, now: i64) -> (ExecutionRecord, KeyEntry) {
    let mut r = record(id, now);
    r.execution_key = execution_key(PIPELINE, RELEASE, raw_key);
    let k = KeyEntry {
        tenant_id: r.tenant_id.clone(),
        execution_key: r.execution_key.clone(),
        execution_id: r.execution_id.clone(),
        input_hash: r.input_hash.clone(),
        created_at_epoch_ms: now,
        ttl_epoch_s: r.ttl_epoch_s,
    };
    (r, k)
}

/// An await at step `step_index` of `r`, deadline in 30 minutes, its
/// interaction and unit living a day past it (within the execution's TTL,
/// so T4 does not grow the TTL), request text `request`.
fn await_of(r: &ExecutionRecord, now: i64, request: &str) -> (AwaitUnit, AwaitInteraction) {
    let id = &r.execution_id;
    let deadline = now + 1_800_000;
    let ttl = deadline / 1000 + 86_400;
    let unit = AwaitUnit {
        tenant_id: r.tenant_id.clone(),
        unit_id: format!("unit-{id}"),
        execution_id: id.clone(),
        step_id: "approve".into(),
        step_index: 1,
        cardinality: "ONE_TO_ONE".into(),
        version: 1,
        status: "WAITING_EXTERNAL".into(),
        primary_interaction_id: Some(format!("ia-{id}")),
        expected_item_count: None,
        completed_item_count: 0,
        completed_item_keys: vec![],
        dispatch_complete: false,
        created_at_epoch_ms: now,
        updated_at_epoch_ms: now,
        ttl_epoch_s: ttl,
    };
    let interaction = AwaitInteraction {
        tenant_id: r.tenant_id.clone(),
        execution_id: id.clone(),
        step_id: "approve".into(),
        step_index: 1,
        output_type: "orders.Approval".into(),
        transport_output_type: Some("orders.Approval".into()),
        interaction_id: format!("ia-{id}"),
        correlation_id: format!("corr-{id}"),
        causation_id: None,
        idempotency_key: format!("{id}:approve"),
        version: 2,
        status: "DISPATCHED".into(),
        request_payload: Some(raw(request)),
        response_payload: None,
        unit_id: unit.unit_id.clone(),
        item_index: None,
        actor: None,
        assignee: None,
        group: Some("kitchen".into()),
        transport_type: "interaction-api".into(),
        transport_metadata: Some(raw("{}")),
        deadline_epoch_ms: deadline,
        created_at_epoch_ms: now,
        updated_at_epoch_ms: now,
        ttl_epoch_s: ttl,
        completion_idempotency_key: None,
        completion_payload_hash: None,
        completed_at_epoch_ms: None,
        settle_due_epoch_ms: Some(deadline),
    };
    (unit, interaction)
}

/// The interaction completed at `now` with `response` (as §8.5 builds it).
fn completed(current: &AwaitInteraction, now: i64, response: &str) -> AwaitInteraction {
    let mut next = current.clone();
    next.status = "COMPLETED".into();
    next.version = current.version + 1;
    next.updated_at_epoch_ms = now;
    next.response_payload = Some(raw(response));
    next.actor = Some("kitchen-tablet-3".into());
    next.completion_payload_hash = Some("cd".repeat(32));
    next.completed_at_epoch_ms = Some(now);
    next.settle_due_epoch_ms = Some(now + 60_000);
    next
}

const REQUEST: &str =
    r#"{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e","customerName":"Ada Lovelace"}"#;
const RESPONSE: &str =
    r#"{"orderId":"9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e","approved":true,"note":"Looks good"}"#;

impl Counted {
    /// `submit_execution`'s store calls: step 4 (keyed only: the key entry),
    /// then T1 (`create`).
    async fn submit(&self, r: &ExecutionRecord, k: Option<&KeyEntry>) {
        if let Some(k) = k {
            let found = self
                .executions
                .get_key(&r.tenant_id, &k.execution_key, r.created_at_epoch_ms)
                .await
                .unwrap();
            assert!(found.is_none());
        }
        let out = self
            .executions
            .create(r, &r.submitted_event(), k, r.created_at_epoch_ms)
            .await
            .unwrap();
        assert_eq!(out, CreateExecution::Created);
    }

    /// `process_work_item` §5.2 step 2: read, then T2.
    async fn claim(&self, r: &ExecutionRecord, now: i64) -> ExecutionRecord {
        let read = self
            .executions
            .get(&r.tenant_id, &r.execution_id, now)
            .await
            .unwrap()
            .unwrap();
        assert!(read.is_claimable(now));
        let (next, event) = read.claim(now, "dispatch-a", LEASE_MS);
        self.written(self.executions.update(&next, read.version, &event, now))
            .await;
        next
    }

    /// T3 with one output (the `result` payload first).
    async fn succeed(&self, claimed: &ExecutionRecord, now: i64) -> ExecutionRecord {
        let (next, event) = claimed.succeed(now, vec![raw(OUTPUT)], Some("kitchen-1"));
        self.written(self.executions.update(&next, claimed.version, &event, now))
            .await;
        next
    }

    /// The suspension: import, then T4.
    async fn suspend(
        &self,
        claimed: &ExecutionRecord,
        unit: &AwaitUnit,
        interaction: &AwaitInteraction,
        now: i64,
    ) -> ExecutionRecord {
        let out = self.awaits.import(unit, interaction, now).await.unwrap();
        assert!(matches!(out, ImportOutcome::Imported), "{out:?}");
        self.wait(claimed, unit, interaction, now).await
    }

    /// T4 alone.
    async fn wait(
        &self,
        claimed: &ExecutionRecord,
        unit: &AwaitUnit,
        interaction: &AwaitInteraction,
        now: i64,
    ) -> ExecutionRecord {
        let (next, event) = claimed.wait(
            now,
            unit.step_index,
            &unit.unit_id,
            &interaction.interaction_id,
            interaction.ttl_epoch_s,
            Some("kitchen-1"),
        );
        self.written(self.executions.update(&next, claimed.version, &event, now))
            .await;
        next
    }

    /// `complete_interaction` and the follow-up of §8.6 for a waiting
    /// parent: read the interaction, complete it, finish the unit (after
    /// reading it), read the parent, T7, settle.
    async fn complete(&self, interaction_id: &str, response: &str, now: i64) -> ExecutionRecord {
        let current = self
            .awaits
            .get_interaction("acme", interaction_id, now)
            .await
            .unwrap()
            .unwrap();
        let next = completed(&current, now, response);
        self.written(self.awaits.update_interaction(&next, current.version, now))
            .await;
        // As the completion does: the unit's own condition decides (no
        // read), and the parent's state is read without its payloads.
        self.written(
            self.awaits
                .finish_unit("acme", &next.unit_id, "COMPLETED", now),
        )
        .await;
        let parent = self
            .executions
            .get_state("acme", &next.execution_id, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(parent.status, ExecutionStatus::WaitingExternal);
        let (released, event) =
            parent.release_await(now, next.step_index, &next.interaction_id, None);
        self.written(
            self.executions
                .update(&released, parent.version, &event, now),
        )
        .await;
        self.written(self.awaits.set_settle_due(
            "acme",
            &next.interaction_id,
            &next.status,
            None,
            now,
        ))
        .await;
        released
    }

    async fn written(
        &self,
        write: impl std::future::Future<Output = Result<Write, tpf_core::error::StoreError>>,
    ) {
        assert_eq!(write.await.unwrap(), Write::Written);
    }
}

// ---------------------------------------------------------------- STORE-08

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_key_less_submit_is_two_put_items() {
    let c = counted().await;
    let r = record("e-keyless", T0);
    c.submit(&r, None).await;
    let requests = c.log.take();
    assert_consistent_and_ok(&requests);
    // §10.8 "key-less submit": 2 = `input` payload PutItem, T1 PutItem.
    assert_eq!(labels(&requests), ["PutItem", "PutItem"]);
    assert_eq!(write_count(&requests), (2, 2));
    let exec = &c.exec_table;
    assert_eq!(
        requests[0].item_writes,
        [item_write("Put", exec, PAYLOAD_PUT, false)]
    );
    assert_eq!(
        requests[1].item_writes,
        [item_write("Put", exec, CREATE_OR_EXPIRED, true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_keyed_submit_is_a_put_item_and_a_two_item_transaction() {
    let c = counted().await;
    let (r, k) = keyed("e-keyed", "order-1", T0);
    c.submit(&r, Some(&k)).await;
    let requests = c.log.take();
    assert_consistent_and_ok(&requests);
    // §10.8 "keyed submit": 2 (3 items) = `input` payload PutItem, T1
    // TransactWriteItems (execution, key entry); before them the read of
    // `API.md` §2.1 step 4 (the key entry, absent).
    assert_eq!(
        labels(&requests),
        ["GetItem", "PutItem", "TransactWriteItems(2)"]
    );
    assert_eq!(write_count(&requests), (2, 3));
    let exec = &c.exec_table;
    let t1 = &requests[2];
    assert_eq!(
        t1.item_writes,
        [
            item_write("Put", exec, CREATE_OR_EXPIRED, true),
            item_write("Put", exec, CREATE_OR_EXPIRED, true),
        ]
    );
    // One `ClientRequestToken` per transaction (the SDK keeps it across
    // its retries: it is part of the request it resends).
    assert!(t1.client_request_token.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_the_first_transition_of_an_execution_to_success_is_three_writes() {
    let c = counted().await;
    let r = record("e-success", T0);
    c.submit(&r, None).await;
    c.log.clear();
    let claimed = c.claim(&r, T0 + 10).await;
    c.succeed(&claimed, T0 + 20).await;
    let requests = c.log.take();
    assert_consistent_and_ok(&requests);
    // §10.8 "one transition, the first of an execution, to success": 3 =
    // T2 UpdateItem, `result` payload PutItem, T3 UpdateItem. T2's read is
    // the execution item and (as `get` returns the whole record) its
    // `input` payload item.
    assert_eq!(
        labels(&requests),
        ["GetItem", "GetItem", "UpdateItem", "PutItem", "UpdateItem"]
    );
    assert_eq!(write_count(&requests), (3, 3));
    let exec = &c.exec_table;
    assert_eq!(
        requests[2].item_writes,
        [item_write("Update", exec, EXEC_UPDATE, true)]
    );
    assert_eq!(
        requests[3].item_writes,
        [item_write("Put", exec, PAYLOAD_PUT, false)]
    );
    assert_eq!(
        requests[4].item_writes,
        [item_write("Update", exec, EXEC_UPDATE, true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_an_await_import_is_three_put_items_and_t4_one_update() {
    let c = counted().await;
    let r = record("e-import", T0);
    c.submit(&r, None).await;
    let claimed = c.claim(&r, T0 + 10).await;
    let (unit, interaction) = await_of(&claimed, T0 + 20, REQUEST);
    c.log.clear();

    let out = c.awaits.import(&unit, &interaction, T0 + 20).await.unwrap();
    assert!(matches!(out, ImportOutcome::Imported), "{out:?}");
    let import = c.log.take();
    assert_consistent_and_ok(&import);
    // §10.8 "one await import": 3 = interaction, correlation entry, unit
    // PutItem (in the order of §10.6), after the consistent GetItem of the
    // unit (§10.6 first row). The request is inline: no payload write.
    assert_eq!(
        labels(&import),
        ["GetItem", "PutItem", "PutItem", "PutItem"]
    );
    assert_eq!(write_count(&import), (3, 3));
    let aw = &c.await_table;
    assert_eq!(
        import[1..]
            .iter()
            .flat_map(|r| r.item_writes.clone())
            .collect::<Vec<_>>(),
        [
            item_write("Put", aw, CREATE_OR_EXPIRED, true),
            item_write("Put", aw, CORRELATION_PUT, true),
            item_write("Put", aw, CREATE_OR_EXPIRED, true),
        ]
    );

    c.wait(&claimed, &unit, &interaction, T0 + 30).await;
    let t4 = c.log.take();
    assert_consistent_and_ok(&t4);
    // T4 is one UpdateItem while the TTL does not grow (§10.6, §10.8),
    // read nothing first: its condition includes the `ttl` not growing
    // (a grown one fails it and the item returned decides the transaction).
    assert_eq!(labels(&t4), ["UpdateItem"]);
    assert_eq!(
        t4[0].item_writes,
        [item_write("Update", &c.exec_table, EXEC_T4, true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_a_request_over_1_kib_adds_its_payload_put_item() {
    let c = counted().await;
    let r = record("e-big-request", T0);
    c.submit(&r, None).await;
    let claimed = c.claim(&r, T0 + 10).await;
    let big = format!(r#"{{"note":"{}"}}"#, "x".repeat(1100));
    let (unit, interaction) = await_of(&claimed, T0 + 20, &big);
    c.log.clear();
    let out = c.awaits.import(&unit, &interaction, T0 + 20).await.unwrap();
    assert!(matches!(out, ImportOutcome::Imported), "{out:?}");
    let import = c.log.take();
    assert_consistent_and_ok(&import);
    // §10.8: "(+1 when `request` is over 1 KiB)": the payload item first.
    assert_eq!(
        labels(&import),
        ["GetItem", "PutItem", "PutItem", "PutItem", "PutItem"]
    );
    assert_eq!(
        import[1].item_writes,
        [item_write("Put", &c.await_table, PAYLOAD_PUT, false)]
    );
    assert_eq!(write_count(&import), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_a_completion_with_the_parent_waiting_is_four_updates() {
    let c = counted().await;
    let r = record("e-complete", T0);
    c.submit(&r, None).await;
    let claimed = c.claim(&r, T0 + 10).await;
    let (unit, interaction) = await_of(&claimed, T0 + 20, REQUEST);
    c.suspend(&claimed, &unit, &interaction, T0 + 20).await;
    c.log.clear();

    let released = c
        .complete(&interaction.interaction_id, RESPONSE, T0 + 1000)
        .await;
    assert_eq!(released.status, ExecutionStatus::Queued);
    let requests = c.log.take();
    assert_consistent_and_ok(&requests);
    // §10.8 "one completion, parent waiting": 4 = interaction, unit, T7,
    // settle UpdateItem (the response inline). Reads: the interaction
    // (resolving the handle) and the parent's state (§8.6: the execution
    // item only, `get_state`) — §10.8 lists the one before T7. The unit's
    // finish is decided by its own condition (no read).
    assert_eq!(
        labels(&requests),
        [
            "GetItem",
            "UpdateItem",
            "UpdateItem",
            "GetItem",
            "UpdateItem",
            "UpdateItem"
        ]
    );
    assert_eq!(write_count(&requests), (4, 4));
    let (aw, exec) = (&c.await_table, &c.exec_table);
    assert_eq!(
        writes(&requests)
            .iter()
            .flat_map(|r| r.item_writes.clone())
            .collect::<Vec<_>>(),
        [
            item_write("Update", aw, INTERACTION_UPDATE, true),
            item_write("Update", aw, UNIT_FINISH, false),
            item_write("Update", exec, EXEC_UPDATE, true),
            item_write("Update", aw, SETTLE, false),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_a_response_over_1_kib_adds_its_payload_put_item() {
    let c = counted().await;
    let r = record("e-big-response", T0);
    c.submit(&r, None).await;
    let claimed = c.claim(&r, T0 + 10).await;
    let (unit, interaction) = await_of(&claimed, T0 + 20, REQUEST);
    c.suspend(&claimed, &unit, &interaction, T0 + 20).await;
    c.log.clear();
    let big = format!(r#"{{"note":"{}"}}"#, "y".repeat(1100));
    c.complete(&interaction.interaction_id, &big, T0 + 1000)
        .await;
    let requests = c.log.take();
    assert_consistent_and_ok(&requests);
    // "(+1 when `response` is over 1 KiB)": its payload item, before the
    // interaction's UpdateItem.
    assert_eq!(labels(&requests)[1..3], ["PutItem", "UpdateItem"]);
    assert_eq!(
        requests[1].item_writes,
        [item_write("Put", &c.await_table, PAYLOAD_PUT, false)]
    );
    assert_eq!(write_count(&requests), (5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_an_input_over_the_threshold_is_a_put_object_instead_of_a_put_item() {
    let c = counted().await;
    let mut r = record("e-big-input", T0);
    let big = format!(
        r#"{{"shape":"SINGLE","payload":{{"pad":"{}"}},"items":[]}}"#,
        "z".repeat(THRESHOLD)
    );
    r.input_payload = raw(&big);
    c.submit(&r, None).await;
    let requests = c.log.take();
    assert_consistent_and_ok(&requests);
    // Outside §10.8's sizes (§10.5): the text goes to S3, so the submit
    // makes one DynamoDB write (T1) and one S3 PUT.
    assert_eq!(labels(&requests), ["s3:PutObject", "PutItem"]);
    assert_eq!(write_count(&requests), (1, 1));
    assert!(requests[0].is_write() && !requests[0].is_dynamo_write());
    assert!(requests[0].target.is_some());
}

/// §10.8's 3-step execution with one await (steps 0–2, the await at step
/// 1): submit; T2, import, T4; completion; T2, `result` payload, T3.
async fn three_step_run(c: &Counted, r: &ExecutionRecord, k: Option<&KeyEntry>) -> Vec<AwsRequest> {
    c.log.clear();
    c.submit(r, k).await;
    let claimed = c.claim(r, T0 + 10).await;
    let (unit, interaction) = await_of(&claimed, T0 + 20, REQUEST);
    c.suspend(&claimed, &unit, &interaction, T0 + 20).await;
    let released = c
        .complete(&interaction.interaction_id, RESPONSE, T0 + 1000)
        .await;
    let claimed = c.claim(&released, T0 + 1010).await;
    let done = c.succeed(&claimed, T0 + 1020).await;
    // SUBMITTED, CLAIMED, WAITING_EXTERNAL, RESUMED, CLAIMED, SUCCEEDED.
    assert_eq!(done.version, 5);
    let requests = c.log.take();
    assert_consistent_and_ok(&requests);
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_a_three_step_execution_with_one_await_is_fourteen_writes() {
    let c = counted().await;
    let keyless = three_step_run(&c, &record("e-run", T0), None).await;
    // 14 = 2 (submit) + 1 (T2) + 3 (import) + 1 (T4) + 4 (completion) + 3
    // (T2, `result` payload, T3), every item under 1 KB.
    assert_eq!(write_count(&keyless), (14, 14));
    // Reads: 2 per T2 (execution and `input` payload items), the unit at
    // the import, the interaction and the parent's state (1) at the
    // completion; none before T4 or the unit's finish.
    let reads = keyless.iter().filter(|r| r.is_read()).count();
    assert_eq!(reads, 2 + 1 + 1 + 1 + 2);
    assert!(keyless.iter().all(|r| r.service == "dynamodb"), "no S3");

    let (r, k) = keyed("e-run-keyed", "order-run", T0);
    let keyed = three_step_run(&c, &r, Some(&k)).await;
    // The same, keyed: 14 (15 items): T1 is a 2-item transaction; one more
    // read (the key entry, before T1).
    assert_eq!(write_count(&keyed), (14, 15));
    assert_eq!(keyed.iter().filter(|r| r.is_read()).count(), reads + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_the_change_that_spills_history_is_one_two_item_transaction() {
    let c = counted().await;
    let r = record("e-spill", T0);
    c.submit(&r, None).await;
    // Versions 1–7: claim and retry alternately.
    let mut current = r.clone();
    let mut now = T0;
    for _ in 0..7 {
        now += 10;
        let (next, event) = if current.status == ExecutionStatus::Running {
            current.schedule_retry(
                now,
                current.attempt + 1,
                now,
                "WORKER_TIMEOUT",
                "slow",
                None,
            )
        } else {
            current.claim(now, "dispatch-a", LEASE_MS)
        };
        c.written(c.executions.update(&next, current.version, &event, now))
            .await;
        current = next;
    }
    assert_eq!(current.version, 7);
    c.log.clear();
    now += 10;
    let (next, event) = current.claim(now, "dispatch-b", LEASE_MS);
    c.written(c.executions.update(&next, current.version, &event, now))
        .await;
    let requests = c.log.take();
    assert_consistent_and_ok(&requests);
    // The ninth event (version 8): the execution update and the chunk of
    // the eight older events in one TransactWriteItems (§10.6, §10.8),
    // after reading them.
    assert_eq!(labels(&requests), ["GetItem", "TransactWriteItems(2)"]);
    let exec = &c.exec_table;
    assert_eq!(
        requests[1].item_writes,
        [
            item_write("Update", exec, EXEC_UPDATE, true),
            item_write("Put", exec, CREATE_OR_EXPIRED, true),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_a_t4_that_grows_the_ttl_extends_the_other_items_in_its_transaction() {
    let c = counted().await;
    let (r, k) = keyed("e-grow", "order-grow", T0);
    c.submit(&r, Some(&k)).await;
    let claimed = c.claim(&r, T0 + 10).await;
    let (unit, mut interaction) = await_of(&claimed, T0 + 20, REQUEST);
    interaction.ttl_epoch_s = claimed.ttl_epoch_s + 86_400;
    c.log.clear();
    c.wait(&claimed, &unit, &interaction, T0 + 20).await;
    let requests = c.log.take();
    // The guarded UpdateItem fails on the grown `ttl` (the item it returns
    // decides: 1 WRU, in place of a consistent read's 1 RRU), then
    // §10.6 T4: a TransactWriteItems of the execution, its `input` payload
    // item and its key entry (no history chunk yet).
    assert_eq!(labels(&requests), ["UpdateItem", "TransactWriteItems(3)"]);
    assert_eq!(
        requests[0].item_writes,
        [item_write("Update", &c.exec_table, EXEC_T4, true)]
    );
    assert_eq!(
        requests[0].error_code(),
        Some("ConditionalCheckFailedException")
    );
    assert_consistent_and_ok(&requests[1..]);
    let exec = &c.exec_table;
    assert_eq!(
        requests[1].item_writes,
        [
            item_write("Update", exec, EXEC_UPDATE, true),
            item_write("Update", exec, EXTEND, false),
            item_write("Update", exec, EXTEND_KEY, false),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_a_lost_write_is_detected_by_its_condition() {
    let c = counted().await;
    let r = record("e-lost", T0);
    c.submit(&r, None).await;
    let claimed = c.claim(&r, T0 + 10).await;
    c.log.clear();
    // A second claim on the version read before the first: lost.
    let (stale, event) = r.claim(T0 + 11, "dispatch-b", LEASE_MS);
    let out = c
        .executions
        .update(&stale, r.version, &event, T0 + 11)
        .await
        .unwrap();
    assert_eq!(out, Write::Lost);
    let requests = c.log.take();
    assert_eq!(labels(&requests), ["UpdateItem"]);
    assert_eq!(
        requests[0].error_code(),
        Some("ConditionalCheckFailedException")
    );

    // A keyed T1 whose key entry is held by a live execution: the
    // transaction is cancelled by that entry's condition.
    let (first, k1) = keyed("e-key-1", "order-lost", T0);
    c.submit(&first, Some(&k1)).await;
    let (second, mut k2) = keyed("e-key-2", "order-lost", T0 + 5);
    k2.execution_id = second.execution_id.clone();
    c.log.clear();
    let out = c
        .executions
        .create(&second, &second.submitted_event(), Some(&k2), T0 + 5)
        .await
        .unwrap();
    assert!(
        matches!(out, CreateExecution::KeyTaken(ref e) if e.execution_id == "e-key-1"),
        "{out:?}"
    );
    let requests = c.log.take();
    assert_eq!(labels(&requests)[..2], ["PutItem", "TransactWriteItems(2)"]);
    assert_eq!(
        requests[1].error_code(),
        Some("TransactionCanceledException")
    );
    // The winner is read from the `ALL_OLD` item and confirmed live.
    assert_eq!(writes(&requests).len(), 2, "{:?}", labels(&requests));

    // A completion on a version that moved: lost.
    let (unit, interaction) = await_of(&claimed, T0 + 20, REQUEST);
    c.suspend(&claimed, &unit, &interaction, T0 + 20).await;
    let mut stale = completed(&interaction, T0 + 30, RESPONSE);
    stale.version = interaction.version + 5;
    c.log.clear();
    let out = c
        .awaits
        .update_interaction(&stale, interaction.version + 4, T0 + 30)
        .await
        .unwrap();
    assert_eq!(out, Write::Lost);
    let requests = c.log.take();
    assert_eq!(labels(&requests), ["UpdateItem"]);
    assert_eq!(
        requests[0].error_code(),
        Some("ConditionalCheckFailedException")
    );
}

// ------------------------------------------- a write that won, response lost

/// Makes the first response of the next `times` requests of `operation`
/// look like a transient failure (HTTP 500 `InternalServerError`) after
/// the write has reached the table: the SDK retries it, and the retry meets
/// the write's own condition — the case of §10.6 "a write that won but
/// whose response was lost".
#[derive(Debug, Clone, Default)]
struct LoseResponse(Arc<Mutex<Option<(&'static str, usize)>>>);

/// Marks a request whose first response [`LoseResponse`] replaced.
#[derive(Debug, Clone)]
struct ResponseLost;

impl Storable for ResponseLost {
    type Storer = StoreReplace<Self>;
}

impl LoseResponse {
    fn next(&self, operation: &'static str, times: usize) {
        *self.0.lock().unwrap() = Some((operation, times));
    }
}

impl Intercept for LoseResponse {
    fn name(&self) -> &'static str {
        "LoseResponse"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned());
        // Only the first attempt of a request: its retry is answered.
        let retry = cfg.load::<ResponseLost>().is_some();
        let mut armed = self.0.lock().unwrap();
        if let Some((op, times)) = armed.as_mut() {
            let ok = context.response().status().is_success();
            if *times > 0 && ok && !retry && operation.as_deref() == Some(*op) {
                *times -= 1;
                cfg.interceptor_state().store_put(ResponseLost);
                let response = context.response_mut();
                *response.status_mut() = 500.try_into().unwrap();
                *response.body_mut() = SdkBody::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected: response lost"}"#,
                );
            }
        }
        Ok(())
    }
}

/// The single request of `operation` in `requests`: sent twice, ended by
/// its own condition (the retry of a write that had won).
#[track_caller]
fn assert_retried_into_own_condition(requests: &[AwsRequest], operation: &str, code: &str) {
    let r: Vec<&AwsRequest> = requests
        .iter()
        .filter(|r| r.operation == operation)
        .collect();
    assert_eq!(r.len(), 1, "{:?}", labels(requests));
    assert_eq!(r[0].attempts, 2, "{:?}", r[0]);
    assert_eq!(r[0].error_code(), Some(code), "{:?}", r[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_a_write_that_won_but_was_retried_by_the_sdk_is_recognised_as_won() {
    let c = counted().await;

    // T1 key-less: the responses of the `input` payload PutItem and of T1's
    // PutItem are lost. The payload's retry meets an existing payload
    // ("exists counts as stored"); T1's meets `attribute_not_exists(#pk)`,
    // and the ALL_OLD item is the one it wrote → Created.
    let r = record("e-won", T0);
    c.lose.next("PutItem", 2);
    let out = c
        .executions
        .create(&r, &r.submitted_event(), None, T0)
        .await
        .unwrap();
    assert_eq!(out, CreateExecution::Created);
    let requests = c.log.take();
    assert_eq!(labels(&requests), ["PutItem", "PutItem"]);
    for p in &requests {
        assert_eq!(p.attempts, 2, "{p:?}");
        assert_eq!(p.error_code(), Some("ConditionalCheckFailedException"));
    }

    // T2 (UpdateItem): the retry fails `#v = :expv`; the ALL_OLD item holds
    // this very event → Written.
    c.lose.next("UpdateItem", 1);
    let (claimed, event) = r.claim(T0 + 10, "dispatch-a", LEASE_MS);
    let out = c
        .executions
        .update(&claimed, r.version, &event, T0 + 10)
        .await
        .unwrap();
    assert_eq!(out, Write::Written);
    assert_retried_into_own_condition(
        &c.log.take(),
        "UpdateItem",
        "ConditionalCheckFailedException",
    );
    let stored = c
        .executions
        .get("acme", "e-won", T0 + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, 1);
    let history = c
        .executions
        .history("acme", "e-won", None, 100, T0 + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history.len(), 2, "the event is appended once");

    // The import: interaction and unit PutItems retried into their own
    // conditions, the import still Imported.
    let (unit, interaction) = await_of(&claimed, T0 + 20, REQUEST);
    c.log.clear();
    c.lose.next("PutItem", 3);
    let out = c.awaits.import(&unit, &interaction, T0 + 20).await.unwrap();
    assert!(matches!(out, ImportOutcome::Imported), "{out:?}");
    let requests = c.log.take();
    assert_eq!(
        labels(&requests),
        ["GetItem", "PutItem", "PutItem", "PutItem"]
    );
    assert!(
        requests[1..].iter().all(|r| r.attempts == 2),
        "{requests:?}"
    );
    // The correlation entry's condition accepts its own mapping (`#iid =
    // :iid`): its retry succeeds.
    assert_eq!(requests[2].outcome, Some(Outcome::Ok));
    for i in [1, 3] {
        assert_eq!(
            requests[i].error_code(),
            Some("ConditionalCheckFailedException")
        );
    }

    // The completion (UpdateItem on the interaction).
    let next = completed(&interaction, T0 + 30, RESPONSE);
    c.lose.next("UpdateItem", 1);
    let out = c
        .awaits
        .update_interaction(&next, interaction.version, T0 + 30)
        .await
        .unwrap();
    assert_eq!(out, Write::Written);
    assert_retried_into_own_condition(
        &c.log.take(),
        "UpdateItem",
        "ConditionalCheckFailedException",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store08_a_retried_transaction_that_won_is_recognised_as_won() {
    let c = counted().await;
    // T1 keyed: the transaction's response is lost; its retry (same
    // `ClientRequestToken`) either is answered idempotently or is cancelled
    // by its own items (ALL_OLD = what it wrote): Created either way.
    let (r, k) = keyed("e-won-keyed", "order-won", T0);
    c.lose.next("TransactWriteItems", 1);
    let out = c
        .executions
        .create(&r, &r.submitted_event(), Some(&k), T0)
        .await
        .unwrap();
    assert_eq!(out, CreateExecution::Created);
    let requests = c.log.take();
    let t1: Vec<&AwsRequest> = requests
        .iter()
        .filter(|r| r.operation == "TransactWriteItems")
        .collect();
    assert_eq!(t1.len(), 1, "{:?}", labels(&requests));
    assert_eq!(t1[0].attempts, 2);
    // moto does not keep `ClientRequestToken`s (DynamoDB answers a retry
    // with the same token within 10 minutes as the first call): the retry
    // is cancelled by its own conditions, the path this test is after.
    assert_eq!(t1[0].error_code(), Some("TransactionCanceledException"));
    assert_eq!(
        c.executions
            .get_key("acme", &k.execution_key, T0)
            .await
            .unwrap()
            .map(|e| e.execution_id),
        Some("e-won-keyed".to_owned())
    );

    // T4 growing the TTL (a transaction with the extensions).
    let claimed = c.claim(&r, T0 + 10).await;
    let (unit, mut interaction) = await_of(&claimed, T0 + 20, REQUEST);
    interaction.ttl_epoch_s = claimed.ttl_epoch_s + 86_400;
    c.log.clear();
    c.lose.next("TransactWriteItems", 1);
    let (next, event) = claimed.wait(
        T0 + 20,
        unit.step_index,
        &unit.unit_id,
        &interaction.interaction_id,
        interaction.ttl_epoch_s,
        Some("kitchen-1"),
    );
    let out = c
        .executions
        .update(&next, claimed.version, &event, T0 + 20)
        .await
        .unwrap();
    assert_eq!(out, Write::Written);
    let requests = c.log.take();
    // The guarded UpdateItem failing on the grown `ttl`, then the
    // transaction (see the test above).
    assert_eq!(labels(&requests), ["UpdateItem", "TransactWriteItems(3)"]);
    assert_eq!(requests[1].attempts, 2);
    assert_eq!(
        requests[1].error_code(),
        Some("TransactionCanceledException")
    );
    let stored = c
        .executions
        .get("acme", "e-won-keyed", T0 + 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.version, stored.status, stored.ttl_epoch_s),
        (2, ExecutionStatus::WaitingExternal, interaction.ttl_epoch_s)
    );
}
