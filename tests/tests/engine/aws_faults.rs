//! Faults of the AWS dependencies seen through the HTTP router (issue 5,
//! `API.md` §1.8): DynamoDB, S3 or SQS throttling or unreachable → 503
//! `DEPENDENCY_UNAVAILABLE` with `Retry-After`, and nothing half-written.
//!
//! The engine runs on the DynamoDB/S3/SQS providers against moto, on
//! clients carrying a [`FaultInterceptor`]: for an armed service and
//! operation it redirects the request, before it leaves the client, either
//! to a loopback fault server answering the service's throttling error
//! (`ThrottlingException` / `ProvisionedThroughputExceededException` for
//! DynamoDB, `SlowDown` for S3, `ThrottlingException` for SQS) or to a
//! closed loopback port (unreachable). The request never reaches moto, as
//! with a real throttle or outage, and the SDK's own retries (two attempts,
//! no wait) meet the same fault. Once the fault is removed the stored state
//! is read back, raw from the tables and through the routes.

use crate::aws_support::{aws_engine, sqs_event, AwsOptions};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::SharedInterceptor;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tpf_core::actions::register_release;
use tpf_core::actions::register_release::DescriptorSource;
use tpf_core::lambda_events::{dispatch_batch, sweep_tick};
use tpf_tests::*;

// ------------------------------------------------------------ fault injection

/// What an armed request meets.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The service's throttling error with this code.
    Throttle(&'static str),
    /// A closed loopback port (connection refused).
    Unreachable,
}

#[derive(Debug, Clone)]
struct Armed {
    service: &'static str,
    /// `None`: every operation of the service.
    operations: Option<Vec<&'static str>>,
    fault: Fault,
    /// Matching attempts let through before the fault starts.
    skip: usize,
}

/// The faults armed on every client of one harness, and how many attempts
/// met one.
#[derive(Debug, Clone, Default)]
struct Faults {
    armed: Arc<Mutex<Option<Armed>>>,
    hits: Arc<AtomicUsize>,
    /// Base URL of the fault server.
    server: Arc<Mutex<String>>,
}

impl Faults {
    /// Arms `fault` on `operations` of `service` (all when empty), after
    /// `skip` matching attempts went through.
    fn arm(&self, service: &'static str, operations: &[&'static str], fault: Fault, skip: usize) {
        self.hits.store(0, Ordering::SeqCst);
        *self.armed.lock().unwrap() = Some(Armed {
            service,
            operations: (!operations.is_empty()).then(|| operations.to_vec()),
            fault,
            skip,
        });
    }

    /// Removes the fault; returns the attempts that met it.
    fn disarm(&self) -> usize {
        *self.armed.lock().unwrap() = None;
        self.hits.swap(0, Ordering::SeqCst)
    }

    fn interceptor(&self, service: &'static str) -> FaultInterceptor {
        FaultInterceptor {
            service,
            faults: self.clone(),
        }
    }
}

/// Redirects the armed requests of one client (`service`).
#[derive(Debug)]
struct FaultInterceptor {
    service: &'static str,
    faults: Faults,
}

/// The operation of a request as it is on the wire: the `X-Amz-Target`
/// suffix (DynamoDB, SQS) or S3's `x-id` query parameter (`HeadObject`
/// has none).
fn operation_of(req: &aws_smithy_http_request::Request) -> String {
    if let Some(target) = req.headers().get("x-amz-target") {
        return target.rsplit('.').next().unwrap_or_default().to_string();
    }
    let uri = req.uri();
    match uri.split_once("x-id=") {
        Some((_, rest)) => rest.split('&').next().unwrap_or_default().to_string(),
        None if req.method() == "HEAD" => "HeadObject".into(),
        None => String::new(),
    }
}

/// The request type the interceptor contexts hand out.
mod aws_smithy_http_request {
    pub type Request = aws_sdk_dynamodb::config::http::HttpRequest;
}

impl Intercept for FaultInterceptor {
    fn name(&self) -> &'static str {
        "FaultInterceptor"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_of(context.request());
        let mut armed = self.faults.armed.lock().unwrap();
        let Some(a) = armed.as_mut() else {
            return Ok(());
        };
        let matches = a.service == self.service
            && a.operations
                .as_ref()
                .is_none_or(|ops| ops.iter().any(|o| *o == operation));
        if !matches {
            return Ok(());
        }
        if a.skip > 0 {
            a.skip -= 1;
            return Ok(());
        }
        self.faults.hits.fetch_add(1, Ordering::SeqCst);
        let req = context.request_mut();
        let uri = req.uri().to_string();
        let path = uri
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .unwrap_or_else(|| "/".into());
        let base = match a.fault {
            Fault::Unreachable => closed_port_url(),
            Fault::Throttle(code) => {
                req.headers_mut()
                    .insert("x-tpf-fault-service", self.service);
                req.headers_mut().insert("x-tpf-fault-code", code);
                self.faults.server.lock().unwrap().clone()
            }
        };
        req.set_uri(format!("{base}{path}"))?;
        Ok(())
    }
}

/// A loopback server answering each request with the throttling error its
/// `x-tpf-fault-*` headers name, in the service's protocol.
async fn fault_server() -> String {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(|req: axum::extract::Request| async move {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (service, code) = (h("x-tpf-fault-service"), h("x-tpf-fault-code"));
        match service.as_str() {
            "s3" => (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "application/xml")],
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected</Message><RequestId>fault</RequestId></Error>"#
                ),
            )
                .into_response(),
            "sqs" => (
                StatusCode::BAD_REQUEST,
                [
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amzn-query-error", "ThrottlingException;Sender"),
                ],
                format!(r#"{{"__type":"com.amazonaws.sqs#{code}","message":"injected"}}"#),
            )
                .into_response(),
            _ => (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.0")],
                format!(
                    r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected"}}"#
                ),
            )
                .into_response(),
        }
    });
    serve(app).await
}

// ------------------------------------------------------------------- harness

/// The engine on fresh DynamoDB tables, S3 bucket and SQS queues, its
/// clients carrying the fault interceptor; release-admin and
/// worker-lifecycle routes served by the same router.
struct Faulty {
    h: Harness,
    faults: Faults,
    /// Clients without faults, to set up and inspect.
    ddb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    executions_table: String,
    awaits_table: String,
    work_url: String,
}

/// `threshold_bytes`: payloads above it go to S3.
async fn faulty_harness(threshold_bytes: usize) -> Faulty {
    let faults = Faults::default();
    *faults.server.lock().unwrap() = fault_server().await;
    let armed = faults.clone();
    let e = aws_engine(AwsOptions {
        threshold_bytes,
        interceptors: vec![Box::new(move |service| {
            SharedInterceptor::new(armed.interceptor(service.name()))
        })],
        // The SDK's standard retries: two attempts, without the wait.
        retry: Some(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(1)),
        ),
        ..AwsOptions::default()
    })
    .await;
    Faulty {
        h: e.h,
        faults,
        ddb: e.ddb,
        sqs: e.sqs,
        executions_table: e.executions_table,
        awaits_table: e.awaits_table,
        work_url: e.work_url,
    }
}

/// 503 `DEPENDENCY_UNAVAILABLE` with `Retry-After`.
#[track_caller]
fn assert_unavailable(r: &Resp) {
    r.err(503, "DEPENDENCY_UNAVAILABLE");
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5"),
        "API.md §1.8: {:?}",
        r.headers
    );
}

/// The body of an idempotency-keyed submit (a fresh order).
fn keyed_body(key: &str) -> Value {
    submit_body("Ada Lovelace", Some(key))
}

impl Faulty {
    /// Every `(pk, sk)` of `table`, sorted.
    async fn keys(&self, table: &str) -> Vec<(String, String)> {
        let items = self
            .ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        let s = |i: &std::collections::HashMap<String, AttributeValue>, k: &str| match i.get(k) {
            Some(AttributeValue::S(v)) => v.clone(),
            other => format!("{other:?}"),
        };
        let mut out: Vec<(String, String)> =
            items.iter().map(|i| (s(i, "pk"), s(i, "sk"))).collect();
        out.sort();
        out
    }

    /// The execution items (`sk` = `exec`) of the executions table.
    async fn execution_items(&self) -> Vec<String> {
        self.keys(&self.executions_table)
            .await
            .into_iter()
            .filter(|(_, sk)| sk == "exec")
            .map(|(pk, _)| pk)
            .collect()
    }

    /// The executions listed by the control plane.
    async fn listed(&self) -> Vec<Value> {
        let r = self
            .h
            .call(
                "GET",
                &format!("/tpf/control-plane/tenants/{TENANT}/executions"),
                CONTROL,
                None,
            )
            .await;
        r.ok()["items"].as_array().cloned().unwrap_or_default()
    }

    /// Receives (and deletes) what is visible on the work queue now.
    async fn take_work(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        loop {
            let page = self
                .sqs
                .receive_message()
                .queue_url(&self.work_url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if page.is_empty() {
                return out;
            }
            for m in &page {
                self.sqs
                    .delete_message()
                    .queue_url(&self.work_url)
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            out.extend(page);
        }
    }

    /// One dispatcher invocation over the visible work messages.
    async fn dispatch(&self) -> usize {
        let messages = self.take_work().await;
        let response = dispatch_batch(&self.h.deps, sqs_event(&messages)).await;
        assert!(response.batch_item_failures.is_empty());
        messages.len()
    }

    /// Submits the order and dispatches it to `WAITING_EXTERNAL`; returns
    /// the execution id and the pending interaction.
    async fn park(&self) -> (String, Value) {
        let id = self.h.submit_new().await;
        assert_eq!(self.dispatch().await, 1);
        assert_eq!(self.h.status(&id).await["status"], "WAITING_EXTERNAL");
        (id, self.pending().await.remove(0))
    }

    /// The pending interactions of the restaurant step.
    async fn pending(&self) -> Vec<Value> {
        let r = self
            .h
            .call(
                "GET",
                "/tpf/control-plane/tenants/acme/interactions/pending?stepId=ProcessAwaitRestaurantDecisionService",
                CONTROL,
                None,
            )
            .await;
        r.ok().as_array().unwrap().clone()
    }

    async fn complete(&self, interaction: &Value) -> Resp {
        let order_id = interaction["requestPayload"]["orderId"].as_str().unwrap();
        self.h
            .complete_json(json!({
                "interactionId": interaction["interactionId"],
                "responsePayload": decision(order_id, true),
                "actor": "kitchen-tablet-3"
            }))
            .await
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        self.h.call("GET", path, token, None).await
    }
}

// --------------------------------------------------------------------- tests

#[tokio::test]
async fn a_throttled_execution_put_at_submit_is_503_and_leaves_no_execution() {
    let f = faulty_harness(8192).await;
    // The input payload item goes through, the execution item (T1) is throttled.
    f.faults.arm(
        "dynamodb",
        &["PutItem"],
        Fault::Throttle("ProvisionedThroughputExceededException"),
        1,
    );
    let r = f.h.submit(submit_body("Ada Lovelace", None)).await;
    assert_eq!(f.faults.disarm(), 2, "both SDK attempts throttled");
    assert_unavailable(&r);

    // Only the input payload item (written first, expires with its TTL).
    let keys = f.keys(&f.executions_table).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!["exec", "key"].contains(&keys[0].1.as_str()), "{keys:?}");
    assert!(f.execution_items().await.is_empty(), "no execution item");
    assert!(f.listed().await.is_empty(), "no execution listed");
    assert!(f.take_work().await.is_empty(), "nothing enqueued");

    let id = f.h.submit_new().await;
    assert_eq!(f.h.status(&id).await["status"], "QUEUED");
    assert_eq!(f.execution_items().await.len(), 1);
}

#[tokio::test]
async fn a_throttled_keyed_submit_transaction_is_503_and_leaves_no_key_entry() {
    let f = faulty_harness(8192).await;
    f.faults.arm(
        "dynamodb",
        &["TransactWriteItems"],
        Fault::Throttle("ThrottlingException"),
        0,
    );
    let r = f.h.submit(keyed_body("order-7")).await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);

    // Only the input payload item may remain: no execution, no key entry.
    let keys = f.keys(&f.executions_table).await;
    assert!(
        keys.iter()
            .all(|(pk, sk)| sk != "exec" && !pk.contains("order-7") && !sk.contains("key")),
        "{keys:?}"
    );
    assert!(f.listed().await.is_empty());
    assert!(f.take_work().await.is_empty(), "nothing enqueued");

    // The same key then submits a fresh execution, and only one.
    let first = f.h.submit(keyed_body("order-7")).await;
    let first = first.ok();
    assert_eq!(first["duplicate"], false, "{first}");
    let again = f.h.submit(keyed_body("order-7")).await;
    assert_eq!(again.ok()["duplicate"], true);
    assert_eq!(again.body["executionId"], first["executionId"]);
    assert_eq!(f.execution_items().await.len(), 1);
}

#[tokio::test]
async fn submit_with_dynamodb_unreachable_is_503_and_stores_nothing() {
    let f = faulty_harness(8192).await;
    f.faults.arm("dynamodb", &[], Fault::Unreachable, 0);
    let r = f.h.submit(keyed_body("order-8")).await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);
    assert!(f.keys(&f.executions_table).await.is_empty());
    assert!(f.take_work().await.is_empty(), "nothing enqueued");
    assert_eq!(
        f.h.submit(keyed_body("order-8")).await.ok()["duplicate"],
        false
    );
}

#[tokio::test]
async fn a_throttled_s3_payload_put_at_submit_is_503_and_leaves_no_execution() {
    // Every payload goes to S3.
    let f = faulty_harness(16).await;
    f.faults
        .arm("s3", &["PutObject"], Fault::Throttle("SlowDown"), 0);
    let r = f.h.submit(keyed_body("order-9")).await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);
    assert!(f.keys(&f.executions_table).await.is_empty());
    assert!(f.take_work().await.is_empty(), "nothing enqueued");
    let ok = f.h.submit(keyed_body("order-9")).await;
    assert_eq!(ok.ok()["duplicate"], false);
    let id = ok.body["executionId"].as_str().unwrap();
    assert_eq!(f.h.status(id).await["status"], "QUEUED");
}

#[tokio::test]
async fn a_throttled_status_read_is_503_and_the_execution_is_unchanged() {
    let f = faulty_harness(8192).await;
    let id = f.h.submit_new().await;
    let before = f.h.status(&id).await;
    f.faults.arm(
        "dynamodb",
        &["GetItem", "Query", "BatchGetItem"],
        Fault::Throttle("ThrottlingException"),
        0,
    );
    let path = format!("/tpf/control-plane/tenants/{TENANT}/executions/{id}");
    let r = f.get(&path, CONTROL).await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);
    assert_eq!(f.h.status(&id).await, before);
}

#[tokio::test]
async fn a_throttled_interaction_update_at_complete_is_503_and_the_interaction_stays_pending() {
    let f = faulty_harness(8192).await;
    let (id, interaction) = f.park().await;
    let before = f.keys(&f.awaits_table).await;
    f.faults.arm(
        "dynamodb",
        &["UpdateItem"],
        Fault::Throttle("ThrottlingException"),
        0,
    );
    let r = f.complete(&interaction).await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);

    let pending = f.pending().await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["interactionId"], interaction["interactionId"]);
    assert_eq!(pending[0]["status"], interaction["status"]);
    assert_eq!(f.keys(&f.awaits_table).await, before, "no await item added");
    let st = f.h.status(&id).await;
    assert_eq!(st["status"], "WAITING_EXTERNAL", "{st}");
    assert!(f.take_work().await.is_empty(), "nothing enqueued");

    let done = f.complete(&interaction).await;
    assert_eq!(done.ok()["duplicate"], false);
    assert_eq!(done.body["status"], "COMPLETED");
    let st = f.h.status(&id).await;
    assert_eq!(
        (st["status"].as_str(), st["stepIndex"].as_u64()),
        (Some("QUEUED"), Some(3))
    );
}

#[tokio::test]
async fn activating_a_release_with_dynamodb_unreachable_is_503_and_activates_nothing() {
    let f = faulty_harness(8192).await;
    let spec = demo_release::DemoSpec {
        release_version: "2025.02.0".into(),
        ..Default::default()
    };
    let tpf_core::domain::location::Root::Local(root) = &f.h.release_deps.roots[0] else {
        unreachable!()
    };
    let demo = demo_release::write_release(&std::path::Path::new(root).join("v2"), &spec).unwrap();
    register_release::run(
        &f.h.release_deps,
        TENANT,
        PIPELINE,
        DescriptorSource::Location(demo.descriptor_path.to_str().unwrap().to_string()),
    )
    .await
    .unwrap();
    let base = format!("/tpf/admin/tenants/{TENANT}/pipelines/{PIPELINE}/releases");
    let activations = f
        .get(&format!("{base}/activations"), ADMIN)
        .await
        .ok()
        .clone();

    // The reads go through; the activation write meets a refused connection.
    f.faults.arm(
        "dynamodb",
        &["TransactWriteItems", "PutItem", "UpdateItem"],
        Fault::Unreachable,
        0,
    );
    let r =
        f.h.call("POST", &format!("{base}/2025.02.0/activate"), ADMIN, None)
            .await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);

    let active = f.get(&format!("{base}/active"), ADMIN).await;
    assert_eq!(
        active.ok()["releaseVersion"],
        "2025.01.0",
        "{}",
        active.body
    );
    assert_eq!(
        f.get(&format!("{base}/activations"), ADMIN).await.ok(),
        &activations,
        "no activation event"
    );

    let r =
        f.h.call("POST", &format!("{base}/2025.02.0/activate"), ADMIN, None)
            .await;
    r.ok();
    let active = f.get(&format!("{base}/active"), ADMIN).await;
    assert_eq!(active.ok()["releaseVersion"], "2025.02.0");
}

#[tokio::test]
async fn registering_a_worker_with_dynamodb_unreachable_is_503_and_stores_nothing() {
    let f = faulty_harness(8192).await;
    let spec = demo_release::DemoSpec::default();
    let identity = restaurant_worker::config::WorkerIdentity::from_spec(&spec);
    let body = json!({
        "workerId": "kitchen-2",
        "contractVersion": spec.contract_version,
        "releaseVersion": spec.release_version,
        "protocol": "rest",
        "endpoint": f.h.worker_url,
        "artifactId": identity.artifact_id,
        "artifactDigest": identity.artifact_digest,
    });
    let base = format!("/tpf/admin/tenants/{TENANT}/pipelines/{PIPELINE}/workers");
    let workers = f.get(&base, ADMIN).await.ok().clone();

    f.faults.arm(
        "dynamodb",
        &["TransactWriteItems", "PutItem", "UpdateItem"],
        Fault::Unreachable,
        0,
    );
    let r =
        f.h.call(
            "POST",
            &format!("{base}/register"),
            ADMIN,
            Some(body.clone()),
        )
        .await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);
    assert_eq!(f.get(&base, ADMIN).await.ok(), &workers, "no worker stored");

    f.h.call("POST", &format!("{base}/register"), ADMIN, Some(body))
        .await
        .ok();
    let after = f.get(&base, ADMIN).await;
    assert!(
        after.body.to_string().contains("kitchen-2"),
        "{}",
        after.body
    );
}

#[tokio::test]
async fn submit_with_sqs_unreachable_answers_200_queued_and_the_sweep_enqueues_it() {
    let f = faulty_harness(8192).await;
    f.faults.arm("sqs", &["SendMessage"], Fault::Unreachable, 0);
    let r = f.h.submit(submit_body("Ada Lovelace", None)).await;
    assert!(f.faults.disarm() >= 1, "the enqueue was attempted");
    // API.md §2.1 step 8, SUB-25: the record is the truth.
    let id = r.ok()["executionId"].as_str().unwrap().to_string();
    assert_eq!(f.h.status(&id).await["status"], "QUEUED");
    assert!(f.take_work().await.is_empty(), "nothing reached the queue");

    let summary = sweep_tick(&f.h.deps).await;
    assert_eq!(summary.enqueued, 1, "{summary:?}");
    let work = f.take_work().await;
    assert_eq!(work.len(), 1);
    let body: Value = serde_json::from_str(work[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body, json!({"tenantId": TENANT, "executionId": id}));
}

#[tokio::test]
async fn a_throttled_s3_payload_read_at_result_is_503_not_payload_unavailable() {
    // Every payload goes to S3.
    let f = faulty_harness(16).await;
    let (id, interaction) = f.park().await;
    f.complete(&interaction).await.ok();
    assert_eq!(f.dispatch().await, 1);
    let path = format!("/tpf/control-plane/tenants/{TENANT}/executions/{id}/result");
    assert_eq!(
        f.get(&path, CONTROL).await.ok()["status"]["status"],
        "SUCCEEDED"
    );

    f.faults
        .arm("s3", &["GetObject"], Fault::Throttle("SlowDown"), 0);
    let r = f.get(&path, CONTROL).await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);

    let ok = f.get(&path, CONTROL).await;
    let payload: Value =
        serde_json::from_str(ok.ok()["resultPayload"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["outcome"], "APPROVED");
}

#[tokio::test]
async fn a_throttled_follow_up_after_a_won_completion_answers_200_and_the_sweep_releases_the_parent(
) {
    let f = faulty_harness(8192).await;
    let (id, interaction) = f.park().await;
    // The interaction's own update wins; the unit and parent writes after
    // it are throttled (API.md §2.5: the follow-up is retried by the sweep).
    f.faults.arm(
        "dynamodb",
        &["UpdateItem", "TransactWriteItems"],
        Fault::Throttle("ThrottlingException"),
        1,
    );
    let r = f.complete(&interaction).await;
    assert!(f.faults.disarm() >= 1, "the follow-up met the fault");
    assert_eq!(r.ok()["duplicate"], false);
    assert_eq!(r.body["status"], "COMPLETED");
    assert!(f.pending().await.is_empty(), "the interaction is completed");
    assert_eq!(f.h.status(&id).await["status"], "WAITING_EXTERNAL");
    assert!(f.take_work().await.is_empty(), "nothing enqueued");

    // The completion left its re-check due one minute later (§8.2).
    let early = sweep_tick(&f.h.deps).await;
    assert_eq!(
        f.h.status(&id).await["status"],
        "WAITING_EXTERNAL",
        "{early:?}"
    );
    f.h.clock.advance(61_000);
    let summary = sweep_tick(&f.h.deps).await;
    assert_eq!(summary.errors, 0, "{summary:?}");
    let st = f.h.status(&id).await;
    assert_eq!(
        (st["status"].as_str(), st["stepIndex"].as_u64()),
        (Some("QUEUED"), Some(3)),
        "{st}"
    );
    // The release's enqueue, and phase 2's of the now due record (an
    // extra enqueue is harmless, §5.4).
    let work = f.take_work().await;
    assert!(!work.is_empty(), "the release enqueued the resume");
    for m in &work {
        let body: Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({"tenantId": TENANT, "executionId": id}));
    }
}

#[tokio::test]
async fn a_throttled_history_read_is_503() {
    let f = faulty_harness(8192).await;
    let id = f.h.submit_new().await;
    let path = format!("/tpf/control-plane/tenants/{TENANT}/executions/{id}/history");
    let before = f.get(&path, CONTROL).await.ok().clone();
    f.faults.arm(
        "dynamodb",
        &["GetItem", "Query", "BatchGetItem"],
        Fault::Throttle("ThrottlingException"),
        0,
    );
    let r = f.get(&path, CONTROL).await;
    assert!(f.faults.disarm() >= 1);
    assert_unavailable(&r);
    assert_eq!(f.get(&path, CONTROL).await.ok(), &before);
}

#[tokio::test]
async fn a_dispatch_with_a_throttled_claim_fails_only_its_message_and_leaves_the_execution_queued()
{
    let f = faulty_harness(8192).await;
    let id = f.h.submit_new().await;
    let messages = f.take_work().await;
    assert_eq!(messages.len(), 1);
    let mut event = SqsEvent::default();
    let mut m = SqsMessage::default();
    m.message_id = messages[0].message_id.clone();
    m.body = messages[0].body.clone();
    event.records = vec![m];
    // The claim (T2) is throttled.
    f.faults.arm(
        "dynamodb",
        &["UpdateItem", "TransactWriteItems"],
        Fault::Throttle("ThrottlingException"),
        0,
    );
    let response = dispatch_batch(&f.h.deps, event.clone()).await;
    assert!(f.faults.disarm() >= 1);
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|x| x.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![messages[0].message_id.clone().unwrap()]);
    let st = f.h.status(&id).await;
    assert_eq!(
        (st["status"].as_str(), st["version"].as_u64()),
        (Some("QUEUED"), Some(0))
    );

    // Lambda redelivers the message: it is dispatched as if new.
    let response = dispatch_batch(&f.h.deps, event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(f.h.status(&id).await["status"], "WAITING_EXTERNAL");
}
