//! What only the `dynamo` execution and await stores promise
//! (`EXECUTION.md` §10.5–§10.7), on moto: STORE-09 (payloads never in the
//! execution item; S3 above the threshold with `If-None-Match: *`; a
//! missing or altered payload is `PayloadUnavailable`, yet the dispatcher's
//! read still answers its record) and STORE-10 (the history spill into
//! chunks; due and settle order across 1 and 16 shards). The
//! shared behaviour runs in `conformance_execution_store.rs` and
//! `conformance_await_store.rs`.
//!
//! The raw items are read with `GetItem`, the objects with `GetObject`, and
//! the store's S3 requests are observed with an SDK interceptor.

use crate::support::engine_dynamo;
use crate::support::moto;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::operation::put_object::PutObjectInput;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use base64::Engine as _;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use engine_dynamo::{engine_aws, EngineAws, Tables};
use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
use tpf_core::domain::execution::{
    execution_key, keyless_execution_key, ExecutionRecord, ExecutionStatus, HistoryEvent, KeyEntry,
    ResultShape,
};
use tpf_core::error::StoreError;
use tpf_core::ports::{
    AwaitStore, CreateExecution, ExecutionFilter, ExecutionStore, ImportOutcome, PendingFilter,
    Write,
};
use tpf_core::providers::memory::{MemoryAwaitStore, MemoryExecutionStore};

/// 2025-01-15T10:00:00Z.
const T0: i64 = 1_736_935_200_000;
const HOUR: i64 = 3_600_000;
const TTL_S: i64 = 7 * 86_400;
const PIPELINE: &str = "orders";
const RELEASE: &str = "2025.01.0";
/// The smallest threshold allowed (`TPF_PAYLOAD_S3_THRESHOLD_BYTES`).
const THRESHOLD: usize = 1024;

type Item = HashMap<String, AttributeValue>;

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

fn hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A JSON object text of exactly `len` bytes.
fn json_of_len(len: usize) -> String {
    let skeleton = r#"{"pad":""}"#;
    assert!(len >= skeleton.len());
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(len - skeleton.len()))
}

/// An input snapshot text of about `len` bytes.
fn snapshot_of_len(len: usize) -> String {
    let skeleton = r#"{"shape":"SINGLE","payload":{"pad":""},"items":[]}"#;
    format!(
        r#"{{"shape":"SINGLE","payload":{{"pad":"{}"}},"items":[]}}"#,
        "x".repeat(len.saturating_sub(skeleton.len()))
    )
}

fn record(tenant: &str, id: &str, now: i64, input: &str) -> ExecutionRecord {
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
        input_payload: raw(input),
        await_unit_id: None,
        result_payload: None,
        error_code: None,
        error_message: None,
        created_at_epoch_ms: now,
        updated_at_epoch_ms: now,
        ttl_epoch_s: now / 1000 + TTL_S,
    }
}

fn keyed(
    tenant: &str,
    id: &str,
    raw_key: &str,
    now: i64,
    input: &str,
) -> (ExecutionRecord, KeyEntry) {
    let mut r = record(tenant, id, now, input);
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

async fn create(s: &dyn ExecutionStore, r: &ExecutionRecord) {
    let out = s
        .create(r, &r.submitted_event(), None, r.created_at_epoch_ms)
        .await
        .unwrap();
    assert_eq!(out, CreateExecution::Created);
}

async fn apply(
    s: &dyn ExecutionStore,
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

async fn raw_item(aws: &EngineAws, pk: &str, sk: &str) -> Option<Item> {
    aws.ddb
        .get_item()
        .table_name(&aws.table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn attr_s(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(v)) => v.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

fn attr_n(item: &Item, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().unwrap(),
        other => panic!("{name}: {other:?}"),
    }
}

fn events_versions(item: &Item) -> Vec<i64> {
    match item.get("h") {
        Some(AttributeValue::L(h)) => h
            .iter()
            .map(|e| match e {
                AttributeValue::M(m) => attr_n(m, "v"),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("h: {other:?}"),
    }
}

/// Every string anywhere in an item (maps and lists included).
fn all_strings(item: &Item) -> Vec<String> {
    fn walk(v: &AttributeValue, out: &mut Vec<String>) {
        match v {
            AttributeValue::S(s) => out.push(s.clone()),
            AttributeValue::L(l) => l.iter().for_each(|v| walk(v, out)),
            AttributeValue::M(m) => m.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    item.values().for_each(|v| walk(v, &mut out));
    out
}

/// A missing or altered payload is `PayloadUnavailable` (the engine's
/// `PAYLOAD_UNAVAILABLE`), never a plain outage.
fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::PayloadUnavailable(why)) => {
            assert!(why.contains(" payload of "), "{what}: {why}")
        }
        other => panic!("{what}: expected PayloadUnavailable, got {other:?}"),
    }
}

/// What a recorded `PutObject` asked for.
#[derive(Debug, Clone)]
struct RecordedPut {
    bucket: Option<String>,
    key: Option<String>,
    if_none_match: Option<String>,
    checksum_algorithm: Option<ChecksumAlgorithm>,
    checksum_sha256: Option<String>,
}

/// Records the S3 `PutObject` requests the store sends.
#[derive(Debug, Default, Clone)]
struct PutRecorder(Arc<Mutex<Vec<RecordedPut>>>);

impl Intercept for PutRecorder {
    fn name(&self) -> &'static str {
        "PutRecorder"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(put) = context.input().downcast_ref::<PutObjectInput>() {
            self.0.lock().unwrap().push(RecordedPut {
                bucket: put.bucket().map(str::to_owned),
                key: put.key().map(str::to_owned),
                if_none_match: put.if_none_match().map(str::to_owned),
                checksum_algorithm: put.checksum_algorithm().cloned(),
                checksum_sha256: put.checksum_sha256().map(str::to_owned),
            });
        }
        Ok(())
    }
}

/// `engine_aws` whose S3 client records its `PutObject` requests.
async fn recorded_aws(tables: Tables, threshold: usize) -> (EngineAws, PutRecorder) {
    let mut aws = engine_aws(tables, 1, threshold).await;
    let recorder = PutRecorder::default();
    let config = moto::sdk_config().await;
    aws.s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .interceptor(recorder.clone())
            .build(),
    );
    (aws, recorder)
}

fn object_key(aws: &EngineAws, tenant: &str, owner: &str, slot: &str, text: &str) -> String {
    format!(
        "{}/{tenant}/{owner}/{slot}-{}.json",
        aws.settings.payload_prefix,
        hex(text)
    )
}

async fn object_text(aws: &EngineAws, key: &str) -> Option<String> {
    let out = aws
        .s3
        .get_object()
        .bucket(&aws.settings.payload_bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    let bytes = out.body.collect().await.unwrap().into_bytes();
    Some(String::from_utf8(bytes.to_vec()).unwrap())
}

// ---------------------------------------------------------------- STORE-09

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store09_input_and_result_are_payload_items_never_in_the_execution_item() {
    let (aws, puts) = recorded_aws(Tables::Execution, THRESHOLD).await;
    let s = aws.executions();
    let input = snapshot_of_len(600);
    let (r, k) = keyed("acme", "e-1", "order-1", T0, &input);
    assert_eq!(
        s.create(&r, &r.submitted_event(), Some(&k), T0)
            .await
            .unwrap(),
        CreateExecution::Created
    );
    let claimed = apply(&s, &r, r.claim(T0 + 1, "dispatch-a", 30_000)).await;
    let output = r#"{"type":"orders.Done","payload":{"total":10.0,"note":"exact text kept"}}"#;
    apply(
        &s,
        &claimed,
        claimed.succeed(T0 + 2, vec![raw(output), raw("{}")], Some("kitchen-1")),
    )
    .await;
    let result_text = format!("[{output},{{}}]");

    let item = raw_item(&aws, "acme#e-1", "exec").await.unwrap();
    // References only: neither text, nor any part of them, is in the item.
    assert_eq!(attr_s(&item, "in"), format!("ddb:{}", hex(&input)));
    assert_eq!(attr_s(&item, "out"), format!("ddb:{}", hex(&result_text)));
    for text in all_strings(&item) {
        assert!(
            !text.contains("xxxxxxxx"),
            "input text inside the item: {text}"
        );
        assert!(
            !text.contains("exact text kept"),
            "result text inside the item: {text}"
        );
    }
    // The payload items hold the texts and the execution's TTL.
    let payload = raw_item(&aws, "acme#e-1", &format!("payload#input#{}", hex(&input)))
        .await
        .unwrap();
    assert_eq!(attr_s(&payload, "txt"), input);
    assert_eq!(attr_n(&payload, "ttl"), r.ttl_epoch_s);
    let payload = raw_item(
        &aws,
        "acme#e-1",
        &format!("payload#result#{}", hex(&result_text)),
    )
    .await
    .unwrap();
    assert_eq!(attr_s(&payload, "txt"), result_text);
    // Nothing went to S3, and the record reads back exactly.
    assert!(puts.0.lock().unwrap().is_empty());
    let got = s.get("acme", "e-1", T0 + 3).await.unwrap().unwrap();
    assert_eq!(got.input_payload.get(), input);
    let outputs: Vec<&str> = got
        .result_payload
        .as_ref()
        .unwrap()
        .iter()
        .map(|o| o.get())
        .collect();
    assert_eq!(outputs, vec![output, "{}"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store09_a_text_over_the_threshold_goes_to_s3_with_if_none_match() {
    let (aws, puts) = recorded_aws(Tables::Execution, THRESHOLD).await;
    let s = aws.executions();
    // Exactly at the threshold: a payload item; one byte more: S3.
    let at = snapshot_of_len(THRESHOLD);
    assert_eq!(at.len(), THRESHOLD);
    create(&s, &record("acme", "e-at", T0, &at)).await;
    let item = raw_item(&aws, "acme#e-at", "exec").await.unwrap();
    assert_eq!(attr_s(&item, "in"), format!("ddb:{}", hex(&at)));
    assert!(puts.0.lock().unwrap().is_empty());

    let over = snapshot_of_len(THRESHOLD + 1);
    assert_eq!(over.len(), THRESHOLD + 1);
    create(&s, &record("acme", "e-over", T0, &over)).await;
    let item = raw_item(&aws, "acme#e-over", "exec").await.unwrap();
    assert_eq!(attr_s(&item, "in"), format!("s3:{}", hex(&over)));
    assert!(
        raw_item(
            &aws,
            "acme#e-over",
            &format!("payload#input#{}", hex(&over))
        )
        .await
        .is_none(),
        "an S3 payload has no payload item"
    );
    let key = object_key(&aws, "acme", "e-over", "input", &over);
    {
        let puts = puts.0.lock().unwrap();
        assert_eq!(puts.len(), 1);
        let put = &puts[0];
        assert_eq!(
            put.bucket.as_deref(),
            Some(aws.settings.payload_bucket.as_str())
        );
        assert_eq!(put.key.as_deref(), Some(key.as_str()));
        assert_eq!(put.if_none_match.as_deref(), Some("*"));
        assert_eq!(put.checksum_algorithm, Some(ChecksumAlgorithm::Sha256));
        let digest =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(over.as_bytes()));
        assert_eq!(put.checksum_sha256.as_deref(), Some(digest.as_str()));
    }
    assert_eq!(
        object_text(&aws, &key).await.as_deref(),
        Some(over.as_str())
    );
    let head = aws
        .s3
        .head_object()
        .bucket(&aws.settings.payload_bucket)
        .key(&key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(over.len() as i64));
    let got = s.get("acme", "e-over", T0).await.unwrap().unwrap();
    assert_eq!(got.input_payload.get(), over);

    // An object already at the key is never overwritten (If-None-Match:
    // the 412 counts as stored), so a planted wrong text is what the
    // record then references, and reading it fails the digest check.
    let planted = snapshot_of_len(THRESHOLD + 50);
    let planted_key = object_key(&aws, "acme", "e-planted", "input", &planted);
    aws.s3
        .put_object()
        .bucket(&aws.settings.payload_bucket)
        .key(&planted_key)
        .body(b"{\"tampered\":true}".to_vec().into())
        .send()
        .await
        .unwrap();
    create(&s, &record("acme", "e-planted", T0, &planted)).await;
    assert_eq!(
        object_text(&aws, &planted_key).await.as_deref(),
        Some("{\"tampered\":true}")
    );
    assert_unavailable(s.get("acme", "e-planted", T0).await, "planted object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store09_a_missing_or_altered_payload_is_unavailable() {
    let aws = engine_aws(Tables::Execution, 1, THRESHOLD).await;
    let s = aws.executions();
    let small = snapshot_of_len(200);
    let large = snapshot_of_len(THRESHOLD * 3);
    create(&s, &record("acme", "e-item", T0, &small)).await;
    create(&s, &record("acme", "e-object", T0 + 1, &large)).await;
    assert!(s.get("acme", "e-item", T0 + 2).await.unwrap().is_some());
    assert!(s.get("acme", "e-object", T0 + 2).await.unwrap().is_some());

    // Altered payload item.
    let sk = format!("payload#input#{}", hex(&small));
    let altered = snapshot_of_len(201);
    aws.ddb
        .update_item()
        .table_name(&aws.table)
        .key("pk", AttributeValue::S("acme#e-item".into()))
        .key("sk", AttributeValue::S(sk.clone()))
        .update_expression("SET txt = :t")
        .expression_attribute_values(":t", AttributeValue::S(altered))
        .send()
        .await
        .unwrap();
    assert_unavailable(s.get("acme", "e-item", T0 + 2).await, "altered item");
    assert_unavailable(
        s.list("acme", &ExecutionFilter::default(), None, 10, T0 + 2)
            .await,
        "list with an altered item",
    );
    // Missing payload item.
    aws.ddb
        .delete_item()
        .table_name(&aws.table)
        .key("pk", AttributeValue::S("acme#e-item".into()))
        .key("sk", AttributeValue::S(sk))
        .send()
        .await
        .unwrap();
    assert_unavailable(s.get("acme", "e-item", T0 + 2).await, "missing item");

    // Altered object.
    let key = object_key(&aws, "acme", "e-object", "input", &large);
    aws.s3
        .put_object()
        .bucket(&aws.settings.payload_bucket)
        .key(&key)
        .body(snapshot_of_len(THRESHOLD * 3 + 1).into_bytes().into())
        .send()
        .await
        .unwrap();
    assert_unavailable(s.get("acme", "e-object", T0 + 2).await, "altered object");
    // Missing object.
    aws.s3
        .delete_object()
        .bucket(&aws.settings.payload_bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_unavailable(s.get("acme", "e-object", T0 + 2).await, "missing object");

    // The rest of the record is still there: status-free reads work.
    let history = s
        .history("acme", "e-object", None, 10, T0 + 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        s.due(T0 + 2, 10).await.unwrap(),
        vec![
            ("acme".to_owned(), "e-item".to_owned()),
            ("acme".to_owned(), "e-object".to_owned())
        ]
    );
}

/// How a test damages a stored input payload.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Delete,
    Alter,
}

/// Deletes or alters the input payload (`ddb:` item or `s3:` object) of
/// execution `id` of tenant `acme`, created with input `input`.
async fn damage_input(aws: &EngineAws, id: &str, input: &str, damage: Damage) {
    let exec = raw_item(aws, &format!("acme#{id}"), "exec").await.unwrap();
    let reference = attr_s(&exec, "in");
    if reference.starts_with("ddb:") {
        let pk = AttributeValue::S(format!("acme#{id}"));
        let sk = AttributeValue::S(format!("payload#input#{}", hex(input)));
        match damage {
            Damage::Delete => {
                aws.ddb
                    .delete_item()
                    .table_name(&aws.table)
                    .key("pk", pk)
                    .key("sk", sk)
                    .send()
                    .await
                    .unwrap();
            }
            Damage::Alter => {
                aws.ddb
                    .update_item()
                    .table_name(&aws.table)
                    .key("pk", pk)
                    .key("sk", sk)
                    .update_expression("SET txt = :t")
                    .expression_attribute_values(":t", AttributeValue::S(format!("{input} ")))
                    .send()
                    .await
                    .unwrap();
            }
        }
    } else {
        assert!(reference.starts_with("s3:"), "{reference}");
        let key = object_key(aws, "acme", id, "input", input);
        match damage {
            Damage::Delete => {
                aws.s3
                    .delete_object()
                    .bucket(&aws.settings.payload_bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
            }
            Damage::Alter => {
                aws.s3
                    .put_object()
                    .bucket(&aws.settings.payload_bucket)
                    .key(&key)
                    .body(format!("{input} ").into_bytes().into())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store09_the_dispatch_read_keeps_a_record_whose_payload_is_unavailable() {
    let aws = engine_aws(Tables::Execution, 1, THRESHOLD).await;
    let s = aws.executions();
    let small = snapshot_of_len(300);
    let large = snapshot_of_len(THRESHOLD * 2);
    let cases = [
        ("e-item-gone", &small, Damage::Delete, "ddb:"),
        ("e-item-altered", &small, Damage::Alter, "ddb:"),
        ("e-object-gone", &large, Damage::Delete, "s3:"),
        ("e-object-altered", &large, Damage::Alter, "s3:"),
    ];
    for (id, input, damage, form) in cases {
        let r = record("acme", id, T0, input);
        create(&s, &r).await;
        // Readable: the dispatch read is `get`.
        let read = s.get_for_dispatch("acme", id, T0).await.unwrap().unwrap();
        assert_eq!(read.unreadable_payload, None, "{id}");
        assert_eq!(read.record.input_payload.get(), input.as_str(), "{id}");

        damage_input(&aws, id, input, damage).await;
        let exec = raw_item(&aws, &format!("acme#{id}"), "exec").await.unwrap();
        let reference = attr_s(&exec, "in");
        assert!(reference.starts_with(form), "{id}: {reference}");
        assert_unavailable(s.get("acme", id, T0).await, id);

        // The dispatch read still answers the record, without its texts.
        let read = s.get_for_dispatch("acme", id, T0).await.unwrap().unwrap();
        let why = read.unreadable_payload.expect("the reason");
        assert!(why.contains(&format!("the input payload of {id}")), "{why}");
        let got = read.record;
        assert_eq!(
            (got.status, got.version, got.attempt, got.next_due_epoch_ms),
            (ExecutionStatus::Queued, 0, 0, Some(T0)),
            "{id}"
        );
        assert_eq!(got.input_payload.get(), "null");
        assert!(got.result_payload.is_none());
        assert!(got.is_claimable(T0));

        // The claim and the failures are the usual conditional writes.
        let claimed = apply(&s, &got, got.claim(T0 + 1, "dispatch-a", 30_000)).await;
        // A second claim of the version read loses.
        let (late, event) = got.claim(T0 + 1, "dispatch-z", 30_000);
        assert_eq!(
            s.update(&late, got.version, &event, T0 + 1).await.unwrap(),
            Write::Lost,
            "{id}"
        );
        let retry =
            claimed.schedule_retry(T0 + 2, 1, T0 + 1_000, "PAYLOAD_UNAVAILABLE", &why, None);
        let waiting = apply(&s, &claimed, retry).await;
        let read = s
            .get_for_dispatch("acme", id, T0 + 1_000)
            .await
            .unwrap()
            .unwrap();
        assert!(read.unreadable_payload.is_some());
        let again = read.record;
        assert_eq!(
            (again.status, again.version, again.attempt),
            (ExecutionStatus::WaitRetry, waiting.version, 1)
        );
        let claimed = apply(&s, &again, again.claim(T0 + 1_001, "dispatch-b", 30_000)).await;
        let failed = apply(
            &s,
            &claimed,
            claimed.fail(
                T0 + 1_002,
                "PAYLOAD_UNAVAILABLE",
                &why,
                "retry_exhausted",
                None,
            ),
        )
        .await;
        assert_eq!(failed.status, ExecutionStatus::Failed);

        // The reference is kept as created; the record stays unreadable.
        let exec = raw_item(&aws, &format!("acme#{id}"), "exec").await.unwrap();
        assert_eq!(attr_s(&exec, "in"), reference, "{id}");
        assert_eq!(attr_s(&exec, "st"), "FAILED");
        assert_eq!(attr_s(&exec, "ec"), "PAYLOAD_UNAVAILABLE");
        assert_eq!(events_versions(&exec), vec![0, 1, 2, 3, 4]);
        assert_unavailable(s.get("acme", id, T0 + 1_003).await, id);
        let read = s
            .get_for_dispatch("acme", id, T0 + 1_003)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.record.status, ExecutionStatus::Failed);
        assert!(!read.record.is_claimable(T0 + 1_003));
        let history = s
            .history("acme", id, None, 10, T0 + 1_003)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(history.len(), 5);
        assert_eq!(
            history[2].error_code.as_deref(),
            Some("PAYLOAD_UNAVAILABLE")
        );
    }
    // Nothing is read for a missing or expired execution.
    assert!(s
        .get_for_dispatch("acme", "e-none", T0)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .get_for_dispatch("acme", "e-item-gone", T0 + TTL_S * 1000 + 1)
        .await
        .unwrap()
        .is_none());

    // The stores that keep payloads inline answer `get`'s record.
    let memory = MemoryExecutionStore::new();
    let r = record("acme", "e-mem", T0, &small);
    create(&memory, &r).await;
    let read = memory
        .get_for_dispatch("acme", "e-mem", T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.unreadable_payload, None);
    assert_eq!(read.record.input_payload.get(), small.as_str());
}

/// A `WAITING` interaction of `unit` with `request` as its request text.
fn interaction(unit: &AwaitUnit, id: &str, deadline: i64, request: &str) -> AwaitInteraction {
    AwaitInteraction {
        tenant_id: unit.tenant_id.clone(),
        execution_id: unit.execution_id.clone(),
        step_id: unit.step_id.clone(),
        step_index: unit.step_index,
        output_type: "orders.Approval".into(),
        transport_output_type: Some("orders.Approval".into()),
        interaction_id: id.into(),
        correlation_id: format!("corr-{id}"),
        causation_id: None,
        idempotency_key: format!("idem-{id}"),
        version: 1,
        status: "WAITING".into(),
        request_payload: Some(raw(request)),
        response_payload: None,
        unit_id: unit.unit_id.clone(),
        item_index: None,
        actor: None,
        assignee: Some("alice".into()),
        group: None,
        transport_type: "HUMAN_TASK".into(),
        transport_metadata: Some(raw(r#"{ "queue" : "approvals" }"#)),
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

fn unit(tenant: &str, id: &str, execution: &str, primary: &str) -> AwaitUnit {
    AwaitUnit {
        tenant_id: tenant.into(),
        unit_id: id.into(),
        execution_id: execution.into(),
        step_id: "approve".into(),
        step_index: 1,
        cardinality: "ONE_TO_ONE".into(),
        version: 1,
        status: "WAITING_EXTERNAL".into(),
        primary_interaction_id: Some(primary.into()),
        expected_item_count: None,
        completed_item_count: 0,
        completed_item_keys: vec!["k-1".into()],
        dispatch_complete: true,
        created_at_epoch_ms: T0,
        updated_at_epoch_ms: T0,
        ttl_epoch_s: T0 / 1000 + 2 * 86_400,
    }
}

async fn import(s: &dyn AwaitStore, u: &AwaitUnit, i: &AwaitInteraction) {
    let out = s.import(u, i, T0).await.unwrap();
    assert!(matches!(out, ImportOutcome::Imported), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store09_interaction_payloads_are_inline_up_to_1_kib_then_items_then_s3() {
    let threshold = 4096;
    let (aws, puts) = recorded_aws(Tables::Await, threshold).await;
    let s = aws.awaits();
    let cases = [
        ("int-inline", json_of_len(1024), "json:"),
        ("int-item", json_of_len(1025), "ddb:"),
        ("int-object", json_of_len(threshold + 1), "s3:"),
    ];
    for (n, (id, request, _)) in cases.iter().enumerate() {
        let u = unit("acme", &format!("u-{n}"), &format!("e-{n}"), id);
        import(&s, &u, &interaction(&u, id, T0 + HOUR, request)).await;
    }
    for (id, request, form) in &cases {
        let item = raw_item(&aws, &format!("acme#{id}"), "interaction")
            .await
            .unwrap();
        let stored = attr_s(&item, "req");
        match *form {
            "json:" => assert_eq!(stored, format!("json:{request}")),
            _ => assert_eq!(stored, format!("{form}{}", hex(request))),
        }
        let got = s.get_interaction("acme", id, T0).await.unwrap().unwrap();
        assert_eq!(got.request_payload.as_ref().unwrap().get(), request);
        assert_eq!(
            got.transport_metadata.as_ref().unwrap().get(),
            r#"{ "queue" : "approvals" }"#
        );
    }
    let item = raw_item(
        &aws,
        "acme#int-item",
        &format!("payload#request#{}", hex(&cases[1].1)),
    )
    .await
    .unwrap();
    assert_eq!(attr_s(&item, "txt"), cases[1].1);
    assert_eq!(puts.0.lock().unwrap().len(), 1);
    assert_eq!(
        object_text(
            &aws,
            &object_key(&aws, "acme", "int-object", "request", &cases[2].1)
        )
        .await
        .as_deref(),
        Some(cases[2].1.as_str())
    );
    // The pending list reads the referenced request payloads too.
    let pending = s
        .pending("acme", &PendingFilter::default(), None, 10, T0)
        .await
        .unwrap();
    let texts: BTreeSet<&str> = pending
        .iter()
        .map(|i| i.request_payload.as_ref().unwrap().get())
        .collect();
    assert_eq!(texts, cases.iter().map(|c| c.1.as_str()).collect());

    // A completion's response over 1 KiB is referenced as well.
    let stored = s
        .get_interaction("acme", "int-inline", T0)
        .await
        .unwrap()
        .unwrap();
    let response = json_of_len(2000);
    let mut done = stored.clone();
    done.status = "COMPLETED".into();
    done.version += 1;
    done.response_payload = Some(raw(&response));
    done.actor = Some("alice".into());
    done.completed_at_epoch_ms = Some(T0 + 5);
    done.settle_due_epoch_ms = Some(T0 + 60_005);
    done.updated_at_epoch_ms = T0 + 5;
    assert_eq!(
        s.update_interaction(&done, stored.version, T0 + 5)
            .await
            .unwrap(),
        Write::Written
    );
    let item = raw_item(&aws, "acme#int-inline", "interaction")
        .await
        .unwrap();
    assert_eq!(attr_s(&item, "res"), format!("ddb:{}", hex(&response)));
    assert!(
        !item.contains_key("pd"),
        "a closed interaction leaves pending-index"
    );
    let got = s
        .get_interaction("acme", "int-inline", T0 + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.response_payload.as_ref().unwrap().get(), response);

    // Altered or missing referenced payloads are unavailable.
    aws.ddb
        .delete_item()
        .table_name(&aws.table)
        .key("pk", AttributeValue::S("acme#int-item".into()))
        .key(
            "sk",
            AttributeValue::S(format!("payload#request#{}", hex(&cases[1].1))),
        )
        .send()
        .await
        .unwrap();
    assert_unavailable(
        s.get_interaction("acme", "int-item", T0).await,
        "missing request",
    );
    assert_unavailable(
        s.pending("acme", &PendingFilter::default(), None, 10, T0)
            .await,
        "pending with a missing request",
    );
    aws.s3
        .put_object()
        .bucket(&aws.settings.payload_bucket)
        .key(object_key(
            &aws,
            "acme",
            "int-object",
            "request",
            &cases[2].1,
        ))
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_unavailable(
        s.get_by_correlation("acme", "corr-int-object", T0).await,
        "altered request",
    );
}

// ---------------------------------------------------------------- STORE-10

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store10_the_ninth_event_spills_the_eight_older_into_a_chunk() {
    let aws = engine_aws(Tables::Execution, 1, THRESHOLD).await;
    let s = aws.executions();
    let r0 = record("acme", "e-1", T0, &snapshot_of_len(100));
    create(&s, &r0).await;
    let mut current = r0;
    let mut at = T0;
    for v in 1..=20u64 {
        at += 10;
        let next = if current.status == ExecutionStatus::Running {
            apply(
                &s,
                &current,
                current.schedule_retry(at, current.attempt + 1, at, "WORKER_TIMEOUT", "slow", None),
            )
            .await
        } else {
            apply(
                &s,
                &current,
                current.claim(at, &format!("dispatch-{v}"), 30_000),
            )
            .await
        };
        assert_eq!(next.version, v);
        current = next;
        let item = raw_item(&aws, "acme#e-1", "exec").await.unwrap();
        let hb = (v / 8 * 8) as i64;
        assert_eq!(attr_n(&item, "hb"), hb, "v{v}");
        assert_eq!(
            events_versions(&item),
            (hb..=v as i64).collect::<Vec<_>>(),
            "v{v}"
        );
        if v == 7 {
            assert!(raw_item(&aws, "acme#e-1", "hist#0000000000000000000")
                .await
                .is_none());
        }
    }
    for (first, sk) in [
        (0, "hist#0000000000000000000"),
        (8, "hist#0000000000000000008"),
    ] {
        let chunk = raw_item(&aws, "acme#e-1", sk).await.unwrap();
        assert_eq!(
            events_versions(&chunk),
            (first..first + 8).collect::<Vec<_>>()
        );
        assert_eq!(attr_n(&chunk, "ttl"), current.ttl_epoch_s);
    }
    assert!(raw_item(&aws, "acme#e-1", "hist#0000000000000000016")
        .await
        .is_none());

    let versions = |h: Vec<HistoryEvent>| h.iter().map(|e| e.version).collect::<Vec<_>>();
    let all = s
        .history("acme", "e-1", None, 100, at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(versions(all.clone()), (0..=20).collect::<Vec<_>>());
    assert_eq!(
        all[0].event_type,
        tpf_core::domain::execution::EventType::Submitted
    );
    assert_eq!(all[9].lease_owner.as_deref(), Some("dispatch-9"));
    for (after, limit, want) in [
        (Some(5), 6, (6..=11).collect::<Vec<u64>>()),
        (Some(15), 3, vec![16, 17, 18]),
        (Some(7), 1, vec![8]),
        (None, 3, vec![0, 1, 2]),
        (Some(19), 10, vec![20]),
        (Some(20), 10, vec![]),
    ] {
        let page = s
            .history("acme", "e-1", after, limit, at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(versions(page), want, "after {after:?} limit {limit}");
    }
    // A missing chunk is an outage, never a silent gap.
    aws.ddb
        .delete_item()
        .table_name(&aws.table)
        .key("pk", AttributeValue::S("acme#e-1".into()))
        .key("sk", AttributeValue::S("hist#0000000000000000008".into()))
        .send()
        .await
        .unwrap();
    assert!(s.history("acme", "e-1", None, 100, at).await.is_err());
    assert_eq!(
        versions(
            s.history("acme", "e-1", Some(15), 10, at)
                .await
                .unwrap()
                .unwrap()
        ),
        (16..=20).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store10_a_growing_ttl_extends_key_entry_input_payload_and_chunks_with_the_change() {
    let aws = engine_aws(Tables::Execution, 1, THRESHOLD).await;
    let s = aws.executions();
    let input = snapshot_of_len(300);
    let (r0, k) = keyed("acme", "e-1", "order-1", T0, &input);
    assert_eq!(
        s.create(&r0, &r0.submitted_event(), Some(&k), T0)
            .await
            .unwrap(),
        CreateExecution::Created
    );
    // Versions 1 … 15 (one chunk), then the T4 at version 16, which also
    // spills the second chunk: one transaction of the change, the new chunk
    // and the extensions.
    let mut current = r0.clone();
    let mut at = T0;
    for v in 1..=15u64 {
        at += 10;
        current = if current.status == ExecutionStatus::Running {
            apply(
                &s,
                &current,
                current.schedule_retry(at, current.attempt + 1, at, "WORKER_TIMEOUT", "slow", None),
            )
            .await
        } else {
            apply(
                &s,
                &current,
                current.claim(at, &format!("dispatch-{v}"), 30_000),
            )
            .await
        };
    }
    assert_eq!(current.status, ExecutionStatus::Running);
    let extended = r0.ttl_epoch_s + 30 * 86_400;
    let waiting = apply(
        &s,
        &current,
        current.wait(at + 10, 1, "unit-1", "int-1", extended, None),
    )
    .await;
    assert_eq!(waiting.version, 16);
    let exec = raw_item(&aws, "acme#e-1", "exec").await.unwrap();
    assert_eq!(attr_n(&exec, "ttl"), extended);
    assert!(!exec.contains_key("ds") && !exec.contains_key("nd"));
    let key_entry = raw_item(&aws, &format!("acme#{}", k.execution_key), "key")
        .await
        .unwrap();
    assert_eq!(attr_n(&key_entry, "ttl"), extended);
    let payload = raw_item(&aws, "acme#e-1", &format!("payload#input#{}", hex(&input)))
        .await
        .unwrap();
    assert_eq!(attr_n(&payload, "ttl"), extended);
    for sk in ["hist#0000000000000000000", "hist#0000000000000000008"] {
        let chunk = raw_item(&aws, "acme#e-1", sk).await.unwrap();
        assert_eq!(attr_n(&chunk, "ttl"), extended, "{sk}");
    }
    assert_eq!(events_versions(&exec), vec![16]);
    // Alive after the original TTL: the key is still held, the history whole.
    let later = (r0.ttl_epoch_s + 86_400) * 1000;
    assert_eq!(
        s.get_key("acme", &k.execution_key, later)
            .await
            .unwrap()
            .map(|e| e.execution_id),
        Some("e-1".to_owned())
    );
    let history = s
        .history("acme", "e-1", None, 100, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history.len(), 17);
    assert_eq!(
        s.get("acme", "e-1", later).await.unwrap().unwrap().version,
        16
    );
}

/// Applies one scripted life to `r` on every store: `kind` 0 queued, 1
/// leased, 2 lease expired, 3 retry due, 4 retry later, 5 waiting, 6
/// succeeded, 7 expired.
async fn script_execution(stores: &[&dyn ExecutionStore], i: usize, now: i64) {
    let tenants = ["acme", "globex", "zeta"];
    let tenant = tenants[i % 3];
    let id = format!("e-{:02}", (i * 7) % 40);
    let due = T0 + ((i % 5) as i64) * 100;
    let mut r = record(
        tenant,
        &id,
        due,
        r#"{"shape":"SINGLE","payload":null,"items":[]}"#,
    );
    let kind = i % 8;
    if kind == 7 {
        r.ttl_epoch_s = now / 1000;
    }
    for s in stores {
        create(*s, &r).await;
        match kind {
            1 | 2 => {
                let lease = if kind == 1 { 60_000 } else { 10 };
                apply(*s, &r, r.claim(due + 1, "dispatch-a", lease)).await;
            }
            3..=6 => {
                let c = apply(*s, &r, r.claim(due + 1, "dispatch-a", 60_000)).await;
                let change = match kind {
                    3 => c.schedule_retry(due + 2, 1, due + 50, "X", "x", None),
                    4 => c.schedule_retry(due + 2, 1, now + 9_000, "X", "x", None),
                    5 => c.wait(due + 2, 0, "unit-1", "int-1", 0, None),
                    _ => c.succeed(due + 2, vec![], None),
                };
                apply(*s, &c, change).await;
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store10_due_is_in_sweep_order_across_1_and_16_shards() {
    let now = T0 + 1_000;
    for shards in [1u8, 16] {
        let aws = engine_aws(Tables::Execution, shards, THRESHOLD).await;
        let dynamo = aws.executions();
        let memory = MemoryExecutionStore::new();
        for i in 0..40 {
            script_execution(&[&dynamo, &memory], i, now).await;
        }
        // The items really are spread over the shards.
        let mut used = BTreeSet::new();
        for i in 0..40 {
            let tenant = ["acme", "globex", "zeta"][i % 3];
            let id = format!("e-{:02}", (i * 7) % 40);
            let item = raw_item(&aws, &format!("{tenant}#{id}"), "exec")
                .await
                .unwrap();
            used.insert(attr_s(&item, "dp"));
        }
        if shards == 1 {
            assert_eq!(used, BTreeSet::from(["0".to_owned()]));
        } else {
            assert!(used.len() >= 8, "{used:?}");
        }
        let expected = memory.due(now, 100).await.unwrap();
        assert!(expected.len() >= 15, "{expected:?}");
        assert_eq!(
            dynamo.due(now, 100).await.unwrap(),
            expected,
            "{shards} shards"
        );
        for limit in [0, 1, 3, 7, 12] {
            assert_eq!(
                dynamo.due(now, limit).await.unwrap(),
                expected[..limit.min(expected.len())].to_vec(),
                "{shards} shards, limit {limit}"
            );
        }
        assert_eq!(
            dynamo.due(T0 + 150, 100).await.unwrap(),
            memory.due(T0 + 150, 100).await.unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store10_settle_due_is_in_sweep_order_across_1_and_16_shards() {
    let now = T0 + 5 * HOUR;
    for shards in [1u8, 16] {
        let aws = engine_aws(Tables::Await, shards, 8192).await;
        let dynamo = aws.awaits();
        let memory = MemoryAwaitStore::new();
        let stores: [&dyn AwaitStore; 2] = [&dynamo, &memory];
        for i in 0..40usize {
            let tenant = ["acme", "globex", "zeta"][i % 3];
            let id = format!("int-{:02}", (i * 11) % 40);
            let u = unit(tenant, &format!("u-{i}"), &format!("e-{i}"), &id);
            let deadline = T0 + ((i % 4) as i64 + 1) * HOUR;
            let mut inter = interaction(&u, &id, deadline, r#"{"n":1}"#);
            if i % 9 == 8 {
                inter.ttl_epoch_s = T0 / 1000 + 60;
            }
            for s in stores {
                import(s, &u, &inter).await;
                match i % 6 {
                    // Settled: never selected.
                    1 => {
                        s.set_settle_due(tenant, &id, "WAITING", None, T0)
                            .await
                            .unwrap();
                    }
                    // Re-check later, beyond `now`.
                    2 => {
                        s.set_settle_due(tenant, &id, "WAITING", Some(now + HOUR), T0)
                            .await
                            .unwrap();
                    }
                    // Completed: due a minute after its completion.
                    3 => {
                        let mut done = inter.clone();
                        done.status = "COMPLETED".into();
                        done.version += 1;
                        done.settle_due_epoch_ms = Some(T0 + (i as i64) * 60_000);
                        done.updated_at_epoch_ms = T0 + 1;
                        assert_eq!(
                            s.update_interaction(&done, 1, T0 + 1).await.unwrap(),
                            Write::Written
                        );
                    }
                    _ => {}
                }
            }
        }
        let expected = memory.settle_due(now, 100).await.unwrap();
        assert!(expected.len() >= 15, "{expected:?}");
        assert_eq!(
            dynamo.settle_due(now, 100).await.unwrap(),
            expected,
            "{shards} shards"
        );
        for limit in [0, 1, 4, 9] {
            assert_eq!(
                dynamo.settle_due(now, limit).await.unwrap(),
                expected[..limit.min(expected.len())].to_vec(),
                "{shards} shards, limit {limit}"
            );
        }
        assert_eq!(
            dynamo.settle_due(T0 + 2 * HOUR, 100).await.unwrap(),
            memory.settle_due(T0 + 2 * HOUR, 100).await.unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_table_may_hold_executions_and_awaits_together() {
    let aws = engine_aws(Tables::Shared, 4, THRESHOLD).await;
    let executions = aws.executions();
    let awaits = aws.awaits();
    // The same id as an execution, a unit and an interaction.
    let r = record("acme", "x-1", T0, &snapshot_of_len(100));
    create(&executions, &r).await;
    let u = unit("acme", "x-1", "x-1", "x-1");
    import(&awaits, &u, &interaction(&u, "x-1", T0 + HOUR, "{}")).await;
    assert_eq!(
        executions.due(T0, 10).await.unwrap(),
        vec![("acme".to_owned(), "x-1".to_owned())]
    );
    assert_eq!(
        awaits.settle_due(T0 + HOUR, 10).await.unwrap(),
        vec![("acme".to_owned(), "x-1".to_owned())]
    );
    let listed = executions
        .list("acme", &ExecutionFilter::default(), None, 10, T0)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let pending = awaits
        .pending("acme", &PendingFilter::default(), None, 10, T0)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(awaits.get_unit("acme", "x-1", T0).await.unwrap(), Some(u));
    assert_eq!(
        executions
            .get("acme", "x-1", T0)
            .await
            .unwrap()
            .unwrap()
            .version,
        0
    );
    // The four indexes exist on the one table.
    let described = aws
        .ddb
        .describe_table()
        .table_name(&aws.table)
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = described
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["due-index", "list-index", "pending-index", "settle-index"]
    );
}
