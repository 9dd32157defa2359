//! What only the `dynamo` registries promise (`RELEASES.md` §5, §6.6;
//! RRP-03, WL-09), on moto. The shared behaviour runs in the conformance
//! suites (`conformance_release_registry.rs`, `conformance_worker_registry.rs`).
//!
//! Requests are observed with an SDK interceptor that records every
//! operation's input before it is sent, so the tests assert on the exact
//! requests (operation, conditions, `ConsistentRead`, transaction items) as
//! well as on outcomes.

use crate::support;
use crate::support::moto;
use crate::support::serialized;

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::Client;
use serde_json::{json, Value};

use support::*;
use tpf_core::domain::release::{ActivationEvent, ActivationType};
use tpf_core::domain::worker::WorkerEntry;
use tpf_core::error::StoreError;
use tpf_core::ports::{AppendOutcome, ReleaseRegistry, WorkerRegistry, WorkerWrite};
use tpf_core::providers::dynamo::{DynamoReleaseRegistry, DynamoWorkerRegistry};

const PIPELINE: &str = "restaurant-approval";

/// One request as sent.
#[derive(Debug, Clone)]
enum Request {
    PutItem(PutItemInput),
    GetItem(GetItemInput),
    Query(QueryInput),
    TransactWriteItems(TransactWriteItemsInput),
    UpdateItem(UpdateItemInput),
    DeleteItem,
    /// Any other operation (table management).
    Other,
}

impl Request {
    fn name(&self) -> &'static str {
        match self {
            Request::PutItem(_) => "PutItem",
            Request::GetItem(_) => "GetItem",
            Request::Query(_) => "Query",
            Request::TransactWriteItems(_) => "TransactWriteItems",
            Request::UpdateItem(_) => "UpdateItem",
            Request::DeleteItem => "DeleteItem",
            Request::Other => "Other",
        }
    }
}

/// Records the input of every operation the client runs.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Request>>>);

impl Recorder {
    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let request = if let Some(i) = input.downcast_ref::<PutItemInput>() {
            Request::PutItem(i.clone())
        } else if let Some(i) = input.downcast_ref::<GetItemInput>() {
            Request::GetItem(i.clone())
        } else if let Some(i) = input.downcast_ref::<QueryInput>() {
            Request::Query(i.clone())
        } else if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
            Request::TransactWriteItems(i.clone())
        } else if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
            Request::UpdateItem(i.clone())
        } else if input.downcast_ref::<DeleteItemInput>().is_some() {
            Request::DeleteItem
        } else {
            Request::Other
        };
        self.0.lock().unwrap().push(request);
        Ok(())
    }
}

/// A moto client whose requests `recorder` sees.
async fn client(recorder: &Recorder) -> Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(&moto::sdk_config().await)
        .interceptor(recorder.clone())
        .build();
    Client::from_conf(conf)
}

/// A release registry on a fresh table, its calls serialised (see
/// `support/serialized.rs`), and the recorder of its requests.
async fn releases() -> (Arc<dyn ReleaseRegistry>, Recorder) {
    let recorder = Recorder::default();
    let client = client(&recorder).await;
    let table = moto::unique("releases");
    moto::create_release_table(&client, &table).await.unwrap();
    recorder.take();
    let registry = DynamoReleaseRegistry::new(client, table);
    (
        Arc::new(serialized::SerializedReleases::new(registry)),
        recorder,
    )
}

/// A worker registry on a fresh table, as [`releases`].
async fn workers() -> (Arc<dyn WorkerRegistry>, Recorder) {
    let recorder = Recorder::default();
    let client = client(&recorder).await;
    let table = moto::unique("workers");
    moto::create_worker_table(&client, &table).await.unwrap();
    recorder.take();
    let registry = DynamoWorkerRegistry::new(client, table);
    (
        Arc::new(serialized::SerializedWorkers::new(registry)),
        recorder,
    )
}

fn names(requests: &[Request]) -> Vec<&'static str> {
    requests.iter().map(Request::name).collect()
}

/// RRP-03: the registries read only strongly consistently and never update
/// or delete anything of the release registry.
#[track_caller]
fn assert_consistent_reads(requests: &[Request]) {
    for r in requests {
        match r {
            Request::GetItem(i) => assert_eq!(i.consistent_read(), Some(true), "{i:?}"),
            Request::Query(i) => assert_eq!(i.consistent_read(), Some(true), "{i:?}"),
            Request::Other => panic!("unexpected operation in {:?}", names(requests)),
            _ => {}
        }
    }
}

async fn register_inline(app: &TestApp, descriptor: &Value) -> Resp {
    req("POST", &format!("{RELEASES}/register"))
        .admin()
        .json(&json!({"releaseDescriptor": descriptor}))
        .send(app)
        .await
}

async fn activate(app: &TestApp, version: &str) -> Resp {
    req("POST", &format!("{RELEASES}/{version}/activate"))
        .admin()
        .send(app)
        .await
}

/// A release with remote artifacts only (nothing stored: empty store fields).
fn remote_only(version: &str) -> Value {
    let img = format!("sha256:{}", "5".repeat(64));
    json!({
        "schemaVersion": 1,
        "pipelineId": PIPELINE,
        "contractVersion": "sha256:4be1f0c27a9d",
        "releaseVersion": version,
        "artifacts": [
            {"artifactId": "img", "kind": "container-image", "uri": format!("oci://registry.example/ra@{img}"), "digest": img},
            {"artifactId": "api", "kind": "external-endpoint", "uri": "https://api.example/run", "digest": img}
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rrp03_remote_only_releases_read_back_and_activation_is_one_transaction() {
    let (registry, recorder) = releases().await;
    let app = release_app(Options {
        release_registry: Some(registry.clone()),
        ..Options::default()
    });

    // Registration: one conditional PutItem (after the reads of step 1).
    let registered = register_inline(&app, &remote_only("remote")).await;
    let registered = registered.assert_ok().clone();
    assert_eq!(registered["primaryArtifactUri"], "");
    assert_eq!(registered["primaryArtifactSizeBytes"], 0);
    assert_eq!(registered["primaryArtifactChecksum"], "");
    assert_eq!(registered["storedArtifacts"], json!([]));
    assert_eq!(registered["contract"], Value::Null);
    let sent = recorder.take();
    assert_consistent_reads(&sent);
    let puts: Vec<&PutItemInput> = sent
        .iter()
        .filter_map(|r| match r {
            Request::PutItem(i) => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(puts.len(), 1, "{:?}", names(&sent));
    assert_eq!(
        puts[0].condition_expression(),
        Some("attribute_not_exists(registry_key)")
    );

    // Read back: one, list, and a re-registration answering Exists.
    let one = req("GET", &format!("{RELEASES}/remote"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(one.assert_ok(), &registered);
    let list = req("GET", RELEASES).admin().send(&app).await;
    assert_eq!(list.assert_ok(), &json!([registered.clone()]));
    let again = register_inline(&app, &remote_only("remote")).await;
    assert_eq!(again.assert_ok(), &registered);

    // Activation: exactly one TransactWriteItems of ConditionCheck + Put.
    recorder.take();
    let active = activate(&app, "remote").await;
    assert_eq!(active.assert_ok()["status"], "ACTIVE");
    let sent = recorder.take();
    assert_consistent_reads(&sent);
    let writes: Vec<&Request> = sent
        .iter()
        .filter(|r| !matches!(r, Request::GetItem(_) | Request::Query(_)))
        .collect();
    assert_eq!(writes.len(), 1, "{:?}", names(&sent));
    let Request::TransactWriteItems(t) = writes[0] else {
        panic!("activation wrote {:?}", names(&sent));
    };
    let items = t.transact_items();
    assert_eq!(items.len(), 2);
    let check = items[0].condition_check().expect("a ConditionCheck first");
    assert_eq!(
        check.condition_expression(),
        "attribute_exists(registry_key)"
    );
    assert_eq!(
        check.key().get("registry_sort").and_then(|v| v.as_s().ok()),
        Some(&"release#remote".to_string())
    );
    let put = items[1].put().expect("then a Put");
    assert_eq!(
        put.condition_expression(),
        Some("attribute_not_exists(registry_key)")
    );
    assert_eq!(
        put.item().get("registry_sort").and_then(|v| v.as_s().ok()),
        Some(&"activation#0000000000000000001".to_string())
    );
    assert!(items
        .iter()
        .all(|i| i.update().is_none() && i.delete().is_none()));

    // A retried activation is a no-op: reads only.
    let again = activate(&app, "remote").await;
    assert_eq!(again.assert_ok(), active.assert_ok());
    let sent = recorder.take();
    assert_consistent_reads(&sent);
    assert!(
        sent.iter()
            .all(|r| matches!(r, Request::GetItem(_) | Request::Query(_))),
        "{:?}",
        names(&sent)
    );
    let current = req("GET", &format!("{RELEASES}/active"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(current.assert_ok()["releaseVersion"], "remote");
    assert!(recorder
        .take()
        .iter()
        .all(|r| !matches!(r, Request::UpdateItem(_) | Request::DeleteItem)));
}

fn activated(seq: u64, version: &str) -> ActivationEvent {
    ActivationEvent {
        seq,
        event_type: ActivationType::Activated,
        release_version: version.into(),
        previous_release_version: None,
        artifact_verified: true,
        activated_at_epoch_ms: 1_000,
        at_epoch_ms: 1_000,
        detail: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rrp03_concurrent_activations_have_one_winner_by_condition() {
    let (registry, recorder) = releases().await;
    let app = release_app(Options {
        release_registry: Some(registry.clone()),
        ..Options::default()
    });
    for v in ["1.0", "2.0"] {
        register_inline(&app, &remote_only(v)).await.assert_ok();
    }
    // Two tasks appending the same seq: the event's condition decides.
    recorder.take();
    let (one, two) = (activated(1, "1.0"), activated(1, "2.0"));
    let (a, b) = tokio::join!(
        registry.append_event("acme", PIPELINE, &one),
        registry.append_event("acme", PIPELINE, &two),
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [AppendOutcome::Appended, AppendOutcome::SeqTaken]);
    assert_eq!(
        names(&recorder.take()),
        ["TransactWriteItems", "TransactWriteItems"]
    );
    let events = registry
        .list_events("acme", PIPELINE, None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);

    // Two activations through the route: both 200, consecutive events,
    // the later one active (ACT-07).
    let (a, b) = tokio::join!(activate(&app, "1.0"), activate(&app, "2.0"));
    a.assert_ok();
    b.assert_ok();
    let events = registry
        .list_events("acme", PIPELINE, None, 10)
        .await
        .unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs[0], 1);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let active = req("GET", &format!("{RELEASES}/active"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(
        active.assert_ok()["releaseVersion"],
        json!(events.last().unwrap().release_version)
    );
}

fn worker_body(id: &str, endpoint: &str) -> Value {
    json!({
        "workerId": id,
        "contractVersion": "sha256:4be1f0c27a9d",
        "releaseVersion": "2025.01.0",
        "protocol": "rest",
        "endpoint": endpoint,
    })
}

async fn register_worker(app: &TestApp, body: &Value) -> Resp {
    req("POST", &format!("{WORKERS}/register"))
        .admin()
        .json(body)
        .send(app)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wl09_concurrent_first_registrations_give_gapless_state_versions() {
    let (registry, recorder) = workers().await;
    let app = Arc::new(worker_app(Options {
        worker_registry: Some(registry.clone()),
        ..Options::default()
    }));
    // Three registrations of one new worker at once: each loses at most
    // twice (once per other winner), within the three attempts.
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                register_worker(&app, &worker_body("kitchen-1", &format!("https://k{i}:1"))).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().assert_ok();
    }
    let entry = registry
        .get_worker("acme", PIPELINE, "kitchen-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.state_version, 3);
    let events = registry
        .worker_events("acme", PIPELINE, "kitchen-1")
        .await
        .unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.state_version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(events[2].snapshot, entry);
    // Every register write was one transaction; nothing else wrote.
    let sent = recorder.take();
    assert_consistent_reads(&sent);
    for r in &sent {
        match r {
            Request::TransactWriteItems(t) => {
                let items = t.transact_items();
                assert_eq!(items.len(), 2);
                let entry_put = items[0].put().unwrap();
                let event_put = items[1].put().unwrap();
                assert!(matches!(
                    entry_put.condition_expression(),
                    Some("attribute_not_exists(registry_key)") | Some("#sv = :read")
                ));
                assert_eq!(
                    event_put.condition_expression(),
                    Some("attribute_not_exists(registry_key)")
                );
            }
            Request::GetItem(_) | Request::Query(_) => {}
            other => panic!("register sent {}", other.name()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wl09_a_heartbeat_is_one_update_item_and_writes_no_event() {
    let (registry, recorder) = workers().await;
    let app = worker_app(Options {
        worker_registry: Some(registry.clone()),
        ..Options::default()
    });
    register_worker(&app, &worker_body("kitchen-1", "https://k:1"))
        .await
        .assert_ok();
    recorder.take();
    app.clock.advance(5_000);
    let beat = req("POST", &format!("{WORKERS}/kitchen-1/heartbeat"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(beat.assert_ok()["lastHeartbeatAtEpochMs"], T0 + 5_000);
    let sent = recorder.take();
    assert_consistent_reads(&sent);
    assert_eq!(names(&sent), ["GetItem", "UpdateItem"]);
    let Request::UpdateItem(update) = &sent[1] else {
        unreachable!()
    };
    assert!(update
        .condition_expression()
        .unwrap()
        .starts_with("#sv = :read"));
    assert_eq!(
        update.update_expression(),
        Some("SET #hb = :hb, #sv = :next, #ua = :ua")
    );
    let entry = registry
        .get_worker("acme", PIPELINE, "kitchen-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.state_version, 2);
    assert_eq!(entry.last_heartbeat_at_epoch_ms, T0 + 5_000);
    assert_eq!(entry.updated_at_epoch_ms, T0 + 5_000);
    // The log still holds only the registration.
    let events = registry
        .worker_events("acme", PIPELINE, "kitchen-1")
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state_version, 1);

    // A drain is a transaction with its event.
    recorder.take();
    let drain = req("POST", &format!("{WORKERS}/kitchen-1/drain"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(drain.assert_ok()["state"], "DRAINING");
    assert_eq!(names(&recorder.take()), ["GetItem", "TransactWriteItems"]);
    let versions: Vec<u64> = registry
        .worker_events("acme", PIPELINE, "kitchen-1")
        .await
        .unwrap()
        .iter()
        .map(|e| e.state_version)
        .collect();
    assert_eq!(versions, [1, 3]);
}

fn entry(state_version: u64) -> WorkerEntry {
    WorkerEntry {
        tenant_id: "acme".into(),
        pipeline_id: PIPELINE.into(),
        contract_version: "c".into(),
        release_version: "r".into(),
        worker_id: "w-1".into(),
        protocol: "rest".into(),
        endpoint: "https://w:1".into(),
        artifact_id: String::new(),
        artifact_digest: String::new(),
        registered_at_epoch_ms: 1,
        last_heartbeat_at_epoch_ms: 1,
        draining_since_epoch_ms: 0,
        state_version,
        updated_at_epoch_ms: 1,
    }
}

/// A change without an event that is more than a heartbeat cannot be an
/// update of the three heartbeat members: the update's condition fails on
/// the other members and the entry is written whole, on the version read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_eventless_change_of_other_members_falls_back_to_a_conditional_put() {
    let (registry, recorder) = workers().await;
    let first = entry(1);
    assert_eq!(
        registry.write_worker(&first, None, None).await.unwrap(),
        WorkerWrite::Written
    );
    let moved = WorkerEntry {
        endpoint: "https://elsewhere:2".into(),
        last_heartbeat_at_epoch_ms: 5,
        updated_at_epoch_ms: 5,
        ..entry(2)
    };
    recorder.take();
    assert_eq!(
        registry.write_worker(&moved, Some(1), None).await.unwrap(),
        WorkerWrite::Written
    );
    let sent = recorder.take();
    assert!(
        // moto, like DynamoDB, returns the stored item with the failure
        // (`ALL_OLD`), so no read is needed.
        names(&sent) == ["UpdateItem", "PutItem"],
        "{:?}",
        names(&sent)
    );
    let Some(Request::PutItem(put)) = sent.last() else {
        unreachable!()
    };
    assert_eq!(put.condition_expression(), Some("#sv = :read"));
    assert_eq!(
        registry.get_worker("acme", PIPELINE, "w-1").await.unwrap(),
        Some(moved.clone())
    );
    // On a stale version it loses like any change.
    let stale = WorkerEntry {
        endpoint: "https://third:3".into(),
        ..entry(2)
    };
    assert_eq!(
        registry.write_worker(&stale, Some(1), None).await.unwrap(),
        WorkerWrite::Conflict
    );
    assert_eq!(
        registry.get_worker("acme", PIPELINE, "w-1").await.unwrap(),
        Some(moved)
    );
}

/// Service errors that are not conditions are outages (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_table_or_unreachable_endpoint_is_unavailable() {
    let conf = moto::sdk_config().await;
    let client = Client::new(&conf);
    let releases = DynamoReleaseRegistry::new(client.clone(), moto::unique("absent"));
    assert!(matches!(
        releases.get_release("acme", PIPELINE, "1.0").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        releases
            .append_event("acme", PIPELINE, &activated(1, "1.0"))
            .await,
        Err(StoreError::Unavailable(_))
    ));
    let workers = DynamoWorkerRegistry::new(client, moto::unique("absent"));
    assert!(matches!(
        workers.write_worker(&entry(2), Some(1), None).await,
        Err(StoreError::Unavailable(_))
    ));

    // Nothing listens on this port; no retries, so it fails at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = aws_sdk_dynamodb::config::Builder::from(&conf)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let workers = DynamoWorkerRegistry::new(Client::from_conf(dead), "t".into());
    assert!(matches!(
        workers.get_worker("acme", PIPELINE, "w-1").await,
        Err(StoreError::Unavailable(_))
    ));
}
