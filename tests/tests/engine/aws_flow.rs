//! The restaurant flow end to end on the AWS providers over a real
//! `moto_server`: executions, awaits, releases and workers on DynamoDB
//! (payloads on S3), the work queue and dead letters on SQS, and the
//! dispatcher and sweeper driven as AWS would drive them (SQS events built
//! from received messages for `dispatch_batch`, a schedule tick for
//! `sweep_tick`). A payload deleted or altered behind the store's back
//! fails the transition with `PAYLOAD_UNAVAILABLE`, retried, then dead
//! lettered.

use crate::aws_support::{aws_engine, AwsEngine, AwsOptions};
use serde_json::{json, Value};
use tpf_core::lambda_events::sweep_tick;
use tpf_tests::*;

/// The AWS engine of these tests.
type Aws = AwsEngine;

/// The engine on fresh DynamoDB tables (two index shards), S3 payload
/// bucket (payloads above 1 KiB) and SQS queues; `env` overrides engine
/// settings.
async fn aws_harness(env: Vec<(&'static str, String)>) -> Aws {
    aws_engine(AwsOptions {
        env,
        threshold_bytes: 1024,
        index_shards: 2,
        ..AwsOptions::default()
    })
    .await
}

impl AwsEngine {
    /// Submits the demo order; returns the execution id.
    async fn submit_order(&self) -> String {
        let v = self.h.submit(submit_body("Ada Lovelace", None)).await;
        let v = v.ok();
        assert_eq!(v["duplicate"], false);
        v["executionId"].as_str().unwrap().to_string()
    }

    /// Dispatches the submit's work item; the execution then waits for the
    /// restaurant at step 2. Returns the pending interaction.
    async fn until_waiting(&self, id: &str) -> Value {
        let bodies = self.dispatch().await;
        assert_eq!(
            bodies,
            vec![json!({"tenantId": TENANT, "executionId": id})],
            "the submit enqueued exactly its work item"
        );
        let st = self.h.status(id).await;
        assert_eq!(st["status"], "WAITING_EXTERNAL", "{st}");
        assert_eq!(st["stepIndex"], 2);
        assert!(
            self.receive(&self.work_url).await.is_empty(),
            "nothing enqueued while waiting"
        );
        let pending = self
            .h
            .call(
                "GET",
                "/tpf/control-plane/tenants/acme/interactions/pending?stepId=ProcessAwaitRestaurantDecisionService",
                CONTROL,
                None,
            )
            .await;
        let items = pending.ok().as_array().unwrap().clone();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0]["executionId"], id);
        assert_eq!(items[0]["transportType"], "interaction-api");
        items[0].clone()
    }

    async fn complete(&self, interaction: &Value, order_id: &str, approved: bool) {
        let done = self
            .h
            .call(
                "POST",
                "/tpf/control-plane/tenants/acme/interactions/complete",
                CONTROL,
                Some(json!({"interactionId": interaction["interactionId"], "responsePayload": decision(order_id, approved), "actor": "kitchen-tablet-3"})),
            )
            .await;
        assert_eq!(done.ok()["duplicate"], false);
        assert_eq!(done.body["status"], "COMPLETED");
    }
}

#[tokio::test]
async fn restaurant_flow_on_dynamo_s3_and_sqs_succeeds() {
    let started = std::time::Instant::now();
    let aws = aws_harness(vec![]).await;
    let id = aws.submit_order().await;
    assert_eq!(aws.h.status(&id).await["status"], "QUEUED");

    let interaction = aws.until_waiting(&id).await;
    let order_id = interaction["requestPayload"]["orderId"]
        .as_str()
        .unwrap()
        .to_string();
    aws.complete(&interaction, &order_id, true).await;
    let st = aws.h.status(&id).await;
    assert_eq!(
        (st["status"].as_str(), st["stepIndex"].as_u64()),
        (Some("QUEUED"), Some(3))
    );

    let bodies = aws.dispatch().await;
    assert_eq!(
        bodies,
        vec![json!({"tenantId": TENANT, "executionId": id})],
        "the completion enqueued the resume"
    );
    let result = aws
        .h
        .call(
            "GET",
            &format!("/tpf/control-plane/tenants/acme/executions/{id}/result"),
            CONTROL,
            None,
        )
        .await;
    let r = result.ok();
    assert_eq!(r["status"]["status"], "SUCCEEDED");
    assert_eq!(r["status"]["stepIndex"], 3);
    let payload: Value =
        serde_json::from_str(r["resultPayload"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["outcome"], "APPROVED");
    assert_eq!(
        aws.h.event_types(&id).await,
        [
            "SUBMITTED",
            "CLAIMED",
            "WAITING_EXTERNAL",
            "RESUMED",
            "CLAIMED",
            "SUCCEEDED"
        ]
    );
    assert!(aws.receive(&aws.work_url).await.is_empty());
    assert!(aws.dead_letters().await.is_empty(), "no dead letter");
    eprintln!("success flow took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_invalid_decision_dead_letters_on_sqs_and_redrives_from_sqs() {
    let started = std::time::Instant::now();
    let aws = aws_harness(vec![]).await;
    let id = aws.submit_order().await;
    let interaction = aws.until_waiting(&id).await;
    aws.complete(&interaction, "not-a-uuid", true).await;

    aws.dispatch().await;
    let failed = aws.h.status(&id).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["stepIndex"], 3);
    assert!(!failed["errorCode"].as_str().unwrap().is_empty());
    assert!(!failed["errorMessage"].as_str().unwrap().is_empty());
    let version = failed["version"].as_u64().unwrap();

    let dl = aws.dead_letters().await;
    assert_eq!(dl.len(), 1, "{dl:?}");
    let e = &dl[0];
    assert_eq!(e["tenantId"], TENANT);
    assert_eq!(e["executionId"], id.as_str());
    assert_eq!(e["terminalStatus"], "FAILED");
    assert_eq!(e["errorCode"], failed["errorCode"]);
    assert_eq!(e["retryable"], false);
    for k in [
        "executionKey",
        "correlationId",
        "transitionKey",
        "resourceType",
        "resourceName",
        "transport",
        "platform",
        "terminalReason",
        "errorMessage",
    ] {
        assert!(e[k].is_string(), "{k} missing: {e}");
    }
    assert!(e["createdAtEpochMs"].as_i64().unwrap() > 0);
    assert!(aws.receive(&aws.work_url).await.is_empty());

    let red = aws
        .h
        .call(
            "POST",
            &format!("/tpf/admin/tenants/{TENANT}/executions/{id}/redrive"),
            ADMIN,
            Some(json!({"allowFailed": true, "expectedVersion": version, "reason": "incident demo", "actor": "oncall"})),
        )
        .await;
    let v = red.ok();
    assert_eq!(
        (v["previousStatus"].as_str(), v["status"].as_str()),
        (Some("FAILED"), Some("QUEUED")),
        "{v}"
    );

    let bodies = aws.dispatch().await;
    assert_eq!(
        bodies,
        vec![json!({"tenantId": TENANT, "executionId": id})],
        "the redrive enqueued the work item"
    );
    let again = aws.h.status(&id).await;
    assert_eq!(again["status"], "FAILED", "{again}");
    assert!(again["version"].as_u64().unwrap() > version + 1);
    let types = aws.h.event_types(&id).await;
    assert_eq!(
        types,
        [
            "SUBMITTED",
            "CLAIMED",
            "WAITING_EXTERNAL",
            "RESUMED",
            "CLAIMED",
            "FAILED",
            "REDRIVEN",
            "CLAIMED",
            "FAILED"
        ]
    );
    let redriven = aws
        .h
        .history(&id)
        .await
        .into_iter()
        .find(|e| e["type"] == "REDRIVEN")
        .unwrap();
    assert_eq!(
        (redriven["reason"].as_str(), redriven["actor"].as_str()),
        (Some("incident demo"), Some("oncall"))
    );
    let dl = aws.dead_letters().await;
    assert_eq!(dl.len(), 1, "the second failure dead-letters too: {dl:?}");
    assert_eq!(dl[0]["executionId"], id.as_str());

    let summary = sweep_tick(&aws.h.deps).await;
    assert_eq!(summary.enqueued, 0, "{summary:?}");
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert!(
        aws.receive(&aws.work_url).await.is_empty(),
        "the sweep enqueued nothing"
    );
    eprintln!("failure flow took {:?}", started.elapsed());
}

/// The stored `in` reference of execution `id` (`ddb:<hex>` or `s3:<hex>`).
async fn input_reference(aws: &Aws, id: &str) -> String {
    let item = aws
        .ddb
        .get_item()
        .table_name(&aws.executions_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{TENANT}#{id}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("exec".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item["in"].as_s().unwrap().clone()
}

/// A GET of `path` answers 503 `DEPENDENCY_UNAVAILABLE`.
async fn assert_read_unavailable(aws: &Aws, path: &str) {
    aws.h
        .call("GET", path, CONTROL, None)
        .await
        .err(503, "DEPENDENCY_UNAVAILABLE");
}

#[tokio::test]
async fn a_missing_or_altered_input_payload_fails_with_payload_unavailable_then_dead_letters() {
    let started = std::time::Instant::now();
    // Two retries one second apart (SQS DelaySeconds = 1).
    let aws = aws_harness(vec![
        ("TPF_MAX_RETRIES", "2".into()),
        ("TPF_RETRY_DELAY", "PT1S".into()),
        ("TPF_RETRY_MULTIPLIER", "1".into()),
    ])
    .await;
    // A short order: a payload item, deleted. A long one: an S3 object,
    // overwritten with another text.
    let item_id = aws.submit_order().await;
    let v = aws
        .h
        .submit(submit_body(&"Ada Lovelace ".repeat(120), None))
        .await;
    let object_id = v.ok()["executionId"].as_str().unwrap().to_string();
    let item_ref = input_reference(&aws, &item_id).await;
    let object_ref = input_reference(&aws, &object_id).await;
    let item_hex = item_ref.strip_prefix("ddb:").expect("a payload item");
    let object_hex = object_ref.strip_prefix("s3:").expect("an S3 object");
    aws.ddb
        .delete_item()
        .table_name(&aws.executions_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{TENANT}#{item_id}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("payload#input#{item_hex}")),
        )
        .send()
        .await
        .unwrap();
    aws.s3
        .put_object()
        .bucket(&aws.settings.payload_bucket)
        .key(format!(
            "{}/{TENANT}/{object_id}/input-{object_hex}.json",
            aws.settings.payload_prefix
        ))
        .body(
            br#"{"shape":"SINGLE","payload":{"tampered":true},"items":[]}"#
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();

    // HTTP reads of such a record: 503 DEPENDENCY_UNAVAILABLE (§10.5).
    let base = format!("/tpf/control-plane/tenants/{TENANT}/executions");
    for id in [&item_id, &object_id] {
        assert_read_unavailable(&aws, &format!("{base}/{id}")).await;
        assert_read_unavailable(&aws, &format!("{base}/{id}/result")).await;
    }

    // 1 + TPF_MAX_RETRIES runs, each claimed and failed without an outage
    // (`dispatch` asserts no batch item failure).
    let ids = [item_id.clone(), object_id.clone()];
    let mut bodies = aws.dispatch().await;
    for run in 0..3 {
        bodies.sort_by_key(|b| b["executionId"].as_str().unwrap().to_string());
        let mut expected: Vec<Value> = ids
            .iter()
            .map(|id| json!({"tenantId": TENANT, "executionId": id}))
            .collect();
        expected.sort_by_key(|b| b["executionId"].as_str().unwrap().to_string());
        assert_eq!(bodies, expected, "run {run}");
        for id in &ids {
            let events = aws.h.history(id).await;
            let last = events.last().unwrap();
            assert_eq!(last["errorCode"], "PAYLOAD_UNAVAILABLE", "{last}");
            assert!(
                last["errorMessage"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("the input payload of {id}")),
                "{last}"
            );
            if run < 2 {
                assert_eq!(last["type"], "RETRY_SCHEDULED", "{last}");
                assert_eq!(last["attempt"], run + 1, "{last}");
                assert_eq!(
                    last["nextDueAtEpochMs"].as_i64().unwrap()
                        - last["atEpochMs"].as_i64().unwrap(),
                    1000,
                    "{last}"
                );
            } else {
                assert_eq!(last["type"], "FAILED", "{last}");
                assert_eq!(last["terminalReason"], "retry_exhausted", "{last}");
                assert_eq!(last["attempt"], 2, "{last}");
            }
        }
        if run == 2 {
            break;
        }
        // The retries are delayed on SQS; the clock moves with them.
        aws.h.clock.advance(1_000);
        bodies = Vec::new();
        for _ in 0..100 {
            bodies.extend(aws.dispatch().await);
            if bodies.len() >= ids.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    for id in &ids {
        assert_eq!(
            aws.h.event_types(id).await,
            [
                "SUBMITTED",
                "CLAIMED",
                "RETRY_SCHEDULED",
                "CLAIMED",
                "RETRY_SCHEDULED",
                "CLAIMED",
                "FAILED"
            ]
        );
        // Still unreadable, so still 503 (the history reads no payload).
        assert_read_unavailable(&aws, &format!("{base}/{id}")).await;
        assert_read_unavailable(&aws, &format!("{base}/{id}/result")).await;
    }
    let mut dl = aws.dead_letters().await;
    dl.sort_by_key(|e| e["executionId"].as_str().unwrap().to_string());
    assert_eq!(dl.len(), 2, "{dl:?}");
    let mut sorted = ids.to_vec();
    sorted.sort();
    for (e, id) in dl.iter().zip(&sorted) {
        assert_eq!(e["executionId"], id.as_str());
        assert_eq!(e["terminalStatus"], "FAILED");
        assert_eq!(e["terminalReason"], "retry_exhausted");
        assert_eq!(e["errorCode"], "PAYLOAD_UNAVAILABLE");
        assert_eq!(e["retryable"], true);
        assert_eq!(e["retriesObserved"], 2);
        assert_eq!(e["transitionKey"], format!("{id}:0:2"));
    }
    assert!(aws.receive(&aws.work_url).await.is_empty());
    eprintln!("payload failure flow took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_unreadable_interaction_response_fails_the_resume_with_payload_unavailable() {
    // No retry: the first PAYLOAD_UNAVAILABLE is terminal (retry_exhausted).
    let aws = aws_harness(vec![("TPF_MAX_RETRIES", "0".into())]).await;
    let id = aws.submit_order().await;
    let interaction = aws.until_waiting(&id).await;
    let order_id = interaction["requestPayload"]["orderId"].as_str().unwrap();
    // A response over 1 KiB is stored apart (an S3 object at this threshold).
    let item = |t: &str, p: String| json!({"payloadTypeId": t, "payloadEncoding": "application/tpf-transition+json", "payload": p});
    let items = json!({
        "orderId": item("java.lang.String", json!(order_id).to_string()),
        "approved": item("java.lang.Boolean", "true".into()),
        "note": item("java.lang.String", json!("Looks good ".repeat(150)).to_string()),
    });
    let response = json!({"payloadTypeId": "java.util.Map", "payloadEncoding": "application/tpf-transition+json",
        "payload": json!({"items": items}).to_string()});
    let done = aws
        .h
        .call(
            "POST",
            "/tpf/control-plane/tenants/acme/interactions/complete",
            CONTROL,
            Some(json!({"interactionId": interaction["interactionId"], "responsePayload": response, "actor": "kitchen-tablet-3"})),
        )
        .await;
    assert_eq!(done.ok()["status"], "COMPLETED");
    let interaction_id = interaction["interactionId"].as_str().unwrap();
    let prefix = format!(
        "{}/{TENANT}/{interaction_id}/response-",
        aws.settings.payload_prefix
    );
    let listed = aws
        .s3
        .list_objects_v2()
        .bucket(&aws.settings.payload_bucket)
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    let objects = listed.contents();
    assert_eq!(objects.len(), 1, "{objects:?}");
    aws.s3
        .delete_object()
        .bucket(&aws.settings.payload_bucket)
        .key(objects[0].key().unwrap())
        .send()
        .await
        .unwrap();

    let bodies = aws.dispatch().await;
    assert_eq!(bodies, vec![json!({"tenantId": TENANT, "executionId": id})]);
    let failed = aws.h.status(&id).await;
    assert_eq!(
        (
            failed["status"].as_str(),
            failed["stepIndex"].as_u64(),
            failed["errorCode"].as_str()
        ),
        (Some("FAILED"), Some(3), Some("PAYLOAD_UNAVAILABLE")),
        "{failed}"
    );
    assert!(failed["errorMessage"]
        .as_str()
        .unwrap()
        .contains(&format!("the response payload of {interaction_id}")));
    assert_eq!(
        aws.h.event_types(&id).await,
        [
            "SUBMITTED",
            "CLAIMED",
            "WAITING_EXTERNAL",
            "RESUMED",
            "CLAIMED",
            "FAILED"
        ]
    );
    let dl = aws.dead_letters().await;
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(dl[0]["errorCode"], "PAYLOAD_UNAVAILABLE");
    assert_eq!(dl[0]["terminalReason"], "retry_exhausted");
    assert_eq!(dl[0]["retryable"], true);
    assert!(aws.receive(&aws.work_url).await.is_empty());
}

// ------------------------------------------------------------------ STORE-08

/// STORE-08 through the real actions (`EXECUTION.md` §10.8): the AWS
/// requests of the restaurant flow (§7.5) on DynamoDB, S3 and SQS, the
/// example worker over HTTP, the dispatcher fed SQS events — counted by a
/// [`RequestLog`](tpf_core::providers::aws_requests::RequestLog) on every
/// client the engine uses. The store-level twin (each operation on the
/// ports, the conditions of §10.6, lost writes, SDK retries of a write that
/// won) is `shared/tests/integration/dynamo_write_counts.rs`.
mod store08_write_counts {
    use crate::aws_support::{counted_engine, AwsEngine};

    use serde_json::{json, Value};
    use std::collections::BTreeMap;
    use tpf_core::providers::aws_requests::{AwsRequest, Outcome, RequestLog};
    use tpf_tests::*;

    /// The engine on fresh DynamoDB tables, S3 bucket and SQS queues, every
    /// client of the engine recording into `log`; the test's own SQS client
    /// (receiving and deleting, as Lambda's event source does) does not.
    struct Counted {
        e: AwsEngine,
        log: RequestLog,
        /// Table name → role (`executions`, `awaits`, `releases`, `workers`).
        roles: BTreeMap<String, &'static str>,
    }

    impl std::ops::Deref for Counted {
        type Target = AwsEngine;
        fn deref(&self) -> &AwsEngine {
            &self.e
        }
    }

    /// `worker`: the example restaurant worker when `None`, else this URL.
    /// The defaults of §10.1: threshold 8 KiB, one index shard.
    async fn counted_harness(worker: Option<String>) -> Counted {
        let (e, log) = counted_engine(worker).await;
        let roles = BTreeMap::from([
            (e.executions_table.clone(), "executions"),
            (e.awaits_table.clone(), "awaits"),
            (e.releases_table.clone(), "releases"),
            (e.workers_table.clone(), "workers"),
        ]);
        Counted { e, log, roles }
    }

    /// One operation's requests.
    struct Phase {
        requests: Vec<AwsRequest>,
        roles: BTreeMap<String, &'static str>,
    }

    impl Phase {
        fn role(&self, r: &AwsRequest) -> &'static str {
            match r.service.as_str() {
                "dynamodb" => r
                    .target
                    .as_ref()
                    .and_then(|t| self.roles.get(t).copied())
                    .unwrap_or("dynamodb?"),
                "s3" => "s3",
                "sqs" => "sqs",
                _ => "other",
            }
        }

        /// The requests on the execution and await tables, S3 and SQS, in
        /// order, as `role:Operation[(items)]`.
        fn state(&self) -> Vec<String> {
            self.requests
                .iter()
                .filter(|r| !matches!(self.role(r), "releases" | "workers"))
                .map(|r| format!("{}:{}", self.role(r), r.label()))
                .collect()
        }

        /// DynamoDB write requests and the items they write (§10.8's count).
        fn writes(&self) -> (usize, usize) {
            let w: Vec<&AwsRequest> = self
                .requests
                .iter()
                .filter(|r| r.is_dynamo_write())
                .collect();
            (w.len(), w.iter().map(|r| r.items).sum())
        }

        /// Reads of the release and worker registries (`role:Operation` → n).
        fn registry_reads(&self) -> BTreeMap<String, usize> {
            let mut out = BTreeMap::new();
            for r in &self.requests {
                let role = self.role(r);
                if matches!(role, "releases" | "workers") {
                    assert!(r.is_read(), "a registry write: {r:?}");
                    *out.entry(format!("{role}:{}", r.label())).or_default() += 1;
                }
            }
            out
        }

        #[track_caller]
        fn assert_all_ok(&self) {
            for r in &self.requests {
                assert_eq!(
                    (r.outcome.clone(), r.attempts),
                    (Some(Outcome::Ok), 1),
                    "{r:?}"
                );
                if r.service == "dynamodb" && r.is_read() && r.operation != "Query" {
                    assert_eq!(r.consistent_read, Some(true), "{r:?}");
                }
            }
        }
    }

    impl Counted {
        /// The requests since the last phase.
        fn phase(&self) -> Phase {
            let p = Phase {
                requests: self.log.take(),
                roles: self.roles.clone(),
            };
            p.assert_all_ok();
            p
        }

        /// One dispatcher invocation on the visible work messages (received
        /// and deleted by the test's own client, as Lambda's event source);
        /// returns how many were dispatched.
        async fn dispatch(&self) -> usize {
            self.e.dispatch().await.len()
        }

        /// Runs the restaurant flow (submit, dispatch to the await, completion,
        /// dispatch to success) and returns the requests of each operation.
        async fn restaurant_flow(&self, key: Option<&str>) -> [Phase; 4] {
            let v = self.h.submit(submit_body("Ada Lovelace", key)).await;
            let id = v.ok()["executionId"].as_str().unwrap().to_string();
            let submit = self.phase();

            assert_eq!(self.dispatch().await, 1);
            let suspend = self.phase();
            let st = self.h.status(&id).await;
            assert_eq!(st["status"], "WAITING_EXTERNAL", "{st}");
            let pending = self
                .h
                .call(
                    "GET",
                    "/tpf/control-plane/tenants/acme/interactions/pending",
                    CONTROL,
                    None,
                )
                .await;
            let interaction = pending.ok()[0].clone();
            let order_id = interaction["requestPayload"]["orderId"]
                .as_str()
                .unwrap()
                .to_string();
            self.log.clear();

            let done = self
                .h
                .call(
                    "POST",
                    "/tpf/control-plane/tenants/acme/interactions/complete",
                    CONTROL,
                    Some(json!({"interactionId": interaction["interactionId"], "responsePayload": decision(&order_id, true), "actor": "kitchen-tablet-3"})),
                )
                .await;
            assert_eq!(done.ok()["duplicate"], false);
            let complete = self.phase();

            assert_eq!(self.dispatch().await, 1);
            let succeed = self.phase();
            let st = self.h.status(&id).await;
            assert_eq!(
                (st["status"].as_str(), st["version"].as_u64()),
                (Some("SUCCEEDED"), Some(5)),
                "{st}"
            );
            self.log.clear();
            [submit, suspend, complete, succeed]
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The restaurant flow is §10.8's "3-step execution with one await": the
    /// worker runs steps 0–1 and suspends at step 2 (§7.5), the completion
    /// releases it to step 3, the second call succeeds. Events: SUBMITTED,
    /// CLAIMED, WAITING_EXTERNAL, RESUMED, CLAIMED, SUCCEEDED.
    #[tokio::test]
    async fn store08_the_restaurant_flow_makes_the_write_requests_of_the_table() {
        let c = counted_harness(None).await;
        for key in [None, Some("order-2025-0001")] {
            let [submit, suspend, complete, succeed] = c.restaurant_flow(key).await;

            // Submit (§10.8 "key-less submit" 2 / "keyed submit" 2 (3 items)):
            // the `input` payload PutItem, then T1; keyed, the key entry is
            // read first (`API.md` §2.1 step 4); then the work item is sent.
            let t1 = match key {
                None => vec![
                    "executions:PutItem",
                    "executions:PutItem",
                    "sqs:SendMessage",
                ],
                Some(_) => vec![
                    "executions:GetItem",
                    "executions:PutItem",
                    "executions:TransactWriteItems(2)",
                    "sqs:SendMessage",
                ],
            };
            assert_eq!(submit.state(), strings(&t1));
            assert_eq!(submit.writes(), if key.is_some() { (2, 3) } else { (2, 2) });

            // First dispatch: T2 (after its consistent read of the execution
            // and, as `get` loads the record, of its `input` payload item), the
            // import (§10.8: 3 PutItem, after the GetItem of the unit; the
            // request is inline), T4 (one UpdateItem, read nothing first: its
            // condition holds while the TTL does not grow), then §5.2's
            // post-commit check of the interaction.
            assert_eq!(
                suspend.state(),
                strings(&[
                    "executions:GetItem",
                    "executions:GetItem",
                    "executions:UpdateItem",
                    "awaits:GetItem",
                    "awaits:PutItem",
                    "awaits:PutItem",
                    "awaits:PutItem",
                    "executions:UpdateItem",
                    "awaits:GetItem",
                ])
            );
            assert_eq!(suspend.writes(), (5, 5));

            // Completion, parent waiting (§10.8: 4 = interaction, unit, T7,
            // settle UpdateItem): read the interaction, complete it, finish
            // the unit (its condition decides; no read), read the parent's
            // state (the execution item, not its payloads), T7, enqueue the
            // resume, settle.
            assert_eq!(
                complete.state(),
                strings(&[
                    "awaits:GetItem",
                    "awaits:UpdateItem",
                    "awaits:UpdateItem",
                    "executions:GetItem",
                    "executions:UpdateItem",
                    "sqs:SendMessage",
                    "awaits:UpdateItem",
                ])
            );
            assert_eq!(complete.writes(), (4, 4));

            // Second dispatch, to success (§10.8 "one transition to success":
            // 3 = T2, `result` payload PutItem, T3): T2's read; the resume
            // reads the unit and its interaction (§8.4, the response inline).
            assert_eq!(
                succeed.state(),
                strings(&[
                    "executions:GetItem",
                    "executions:GetItem",
                    "executions:UpdateItem",
                    "awaits:GetItem",
                    "awaits:GetItem",
                    "executions:PutItem",
                    "executions:UpdateItem",
                ])
            );
            assert_eq!(succeed.writes(), (3, 3));

            // §10.8: 14 write requests key-less, 14 (15 items) keyed.
            let phases = [&submit, &suspend, &complete, &succeed];
            let total = phases.iter().fold((0, 0), |(n, i), p| {
                let (pn, pi) = p.writes();
                (n + pn, i + pi)
            });
            assert_eq!(total, if key.is_some() { (14, 15) } else { (14, 14) });
            // Every payload is small: nothing goes to S3.
            assert!(phases
                .iter()
                .all(|p| p.requests.iter().all(|r| r.service != "s3")));
            for (name, p) in ["submit", "dispatch 1", "complete", "dispatch 2"]
                .iter()
                .zip(phases)
            {
                eprintln!(
                    "{} {name}: writes {:?}, registry reads {:?}",
                    if key.is_some() { "keyed" } else { "key-less" },
                    p.writes(),
                    p.registry_reads()
                );
            }
        }
    }

    /// §10.8 "one transition, the first of an execution, to success": a worker
    /// that completes the whole run on its first call.
    #[tokio::test]
    async fn store08_the_first_transition_of_an_execution_to_success_is_three_writes() {
        let worker = ScriptedWorker::default();
        let url = worker.start().await;
        let c = counted_harness(Some(url)).await;
        worker.answer(
            200,
            worker_completed(json!([envelope(
                "org.example.Done",
                &json!({"outcome": "APPROVED"}).to_string()
            )])),
        );
        let v = c.h.submit(submit_body("Ada Lovelace", None)).await;
        let id = v.ok()["executionId"].as_str().unwrap().to_string();
        c.log.clear();
        assert_eq!(c.dispatch().await, 1);
        let p = c.phase();
        // T2 after its read (execution and `input` payload items), the
        // `result` payload PutItem, T3.
        assert_eq!(
            p.state(),
            strings(&[
                "executions:GetItem",
                "executions:GetItem",
                "executions:UpdateItem",
                "executions:PutItem",
                "executions:UpdateItem",
            ])
        );
        assert_eq!(p.writes(), (3, 3));
        eprintln!("first success: registry reads {:?}", p.registry_reads());
        let st: Value = c.h.status(&id).await;
        assert_eq!(st["status"], "SUCCEEDED", "{st}");
    }
}
