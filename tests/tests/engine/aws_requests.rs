//! AWS requests per flow (issue 6, item 3): every DynamoDB, S3 and SQS
//! request the engine makes for one submit (key-less, keyed), one
//! transition (to the await, to success), one await completion, one full
//! execution of the restaurant pipeline with its await, and one re-drive of
//! a `FAILED` execution — on moto, with the real dynamo/s3/sqs providers,
//! the example worker over HTTP and the dispatcher fed SQS events, counted
//! by a [`RequestLog`] on every engine client.
//!
//! The counts are deterministic (no retries, no races, every payload
//! inline), so each flow's requests per service and operation are pinned
//! exactly: a change that adds a request fails here. Capacity units are
//! derived, not reported (moto answers `ReturnConsumedCapacity` with
//! constants): the items of the run are measured with
//! [`dynamo_item_size`] and every one is ≤ 1 KB, so a written item is
//! 1 WRU (2 inside a transaction) plus its index entries, and a strongly
//! consistent read of an item ≤ 4 KB is 1 RRU. `--nocapture` prints the
//! table `BENCHMARKS.md` quotes:
//! `cargo test -p tpf-tests --test engine aws_requests -- --nocapture --test-threads 1`.

use crate::aws_support::{counted_engine, AwsEngine};

use serde_json::{json, Value};
use std::collections::BTreeMap;
use tpf_core::providers::aws_requests::{dynamo_item_size, AwsRequest, Outcome, RequestLog};
use tpf_tests::*;

/// The engine with every client recording into `log`.
struct Counted {
    e: AwsEngine,
    log: RequestLog,
}

/// `worker`: the example restaurant worker when `None`, else this URL.
async fn counted(worker: Option<String>) -> Counted {
    let (e, log) = counted_engine(worker).await;
    Counted { e, log }
}

/// The requests of one flow.
struct Flow {
    name: String,
    requests: Vec<AwsRequest>,
}

impl Flow {
    /// `service:Operation` → requests; a write of several items adds
    /// `service:Operation.items` → the items it wrote.
    fn ops(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in &self.requests {
            *out.entry(format!("{}:{}", r.service, r.operation))
                .or_default() += 1;
            if r.is_dynamo_write() && r.items > 1 {
                *out.entry(format!("{}:{}.items", r.service, r.operation))
                    .or_default() += r.items;
            }
        }
        out
    }

    fn dynamo_reads(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.service == "dynamodb" && r.is_read())
            .count()
    }

    /// (write requests, items written).
    fn dynamo_writes(&self) -> (usize, usize) {
        let w: Vec<&AwsRequest> = self
            .requests
            .iter()
            .filter(|r| r.is_dynamo_write())
            .collect();
        (w.len(), w.iter().map(|r| r.items).sum())
    }

    /// Table WRU for items ≤ 1 KB: 1 per item written, 2 in a
    /// transaction (index entries not included).
    fn table_wru(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.is_dynamo_write())
            .map(|r| {
                if r.operation == "TransactWriteItems" {
                    2 * r.items
                } else {
                    r.items
                }
            })
            .sum()
    }

    fn service(&self, service: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.service == service)
            .count()
    }

    fn row(&self) -> String {
        let (w, items) = self.dynamo_writes();
        format!(
            "| {} | {} | {}{} | {} | {} | {} |",
            self.name,
            self.dynamo_reads(),
            w,
            if items != w {
                format!(" ({items} items)")
            } else {
                String::new()
            },
            self.table_wru(),
            self.service("s3"),
            self.service("sqs"),
        )
    }

    /// Checks the flow's requests against `expected`; a mismatch is
    /// returned (all flows print before the test fails).
    fn check(&self, expected: &[(&str, usize)]) -> Option<String> {
        eprintln!("{}", self.row());
        eprintln!("    {:?}", self.ops());
        for r in &self.requests {
            assert_eq!(
                (r.outcome.clone(), r.attempts),
                (Some(Outcome::Ok), 1),
                "{}: {r:?}",
                self.name
            );
        }
        let want: BTreeMap<String, usize> =
            expected.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        let got = self.ops();
        (got != want).then(|| format!("{}: expected {want:?}, got {got:?}", self.name))
    }
}

impl Counted {
    /// The requests since the last call, as flow `name`.
    fn flow(&self, name: &str) -> Flow {
        Flow {
            name: name.into(),
            requests: self.log.take(),
        }
    }

    /// The pending interactions (all steps).
    async fn pending(&self) -> Vec<Value> {
        let r = self
            .e
            .h
            .call(
                "GET",
                "/tpf/control-plane/tenants/acme/interactions/pending",
                CONTROL,
                None,
            )
            .await;
        r.ok().as_array().unwrap().clone()
    }

    async fn complete(&self, interaction: &Value, order_id: &str) {
        let done = self
            .e
            .h
            .call(
                "POST",
                "/tpf/control-plane/tenants/acme/interactions/complete",
                CONTROL,
                Some(json!({"interactionId": interaction["interactionId"], "responsePayload": decision(order_id, true), "actor": "kitchen-tablet-3"})),
            )
            .await;
        assert_eq!(done.ok()["duplicate"], false);
    }

    /// The size of execution `id`'s item now (read on the plain client).
    async fn exec_size(&self, id: &str) -> usize {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        let item = self
            .e
            .ddb
            .get_item()
            .table_name(&self.e.executions_table)
            .key("pk", A::S(format!("{TENANT}#{id}")))
            .key("sk", A::S("exec".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        dynamo_item_size(&item)
    }

    /// The largest item of each kind (`table:sk-prefix`) now stored, in
    /// bytes as DynamoDB sizes them.
    async fn item_sizes(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (role, table) in [
            ("executions", &self.e.executions_table),
            ("awaits", &self.e.awaits_table),
        ] {
            let items = self
                .e
                .ddb
                .scan()
                .table_name(table)
                .send()
                .await
                .unwrap()
                .items
                .unwrap_or_default();
            for item in items {
                let sk = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let kind = sk.split('#').next().unwrap_or_default().to_string();
                let size = dynamo_item_size(&item);
                let e = out.entry(format!("{role}:{kind}")).or_insert(0);
                *e = (*e).max(size);
            }
        }
        out
    }
}

/// Consistent `GetItem`s of one completion, parent waiting: the
/// interaction and the parent's state (the execution item only). Before
/// the reductions of issue 6: 4 (the unit before its conditional finish,
/// the parent's `input` payload item too).
const COMPLETE_READS: usize = 2;

/// `GetItem`s of the first dispatch (T2, import, T4): the execution and its
/// `input` payload item, the unit at the import, the interaction after the
/// commit (§5.2), the release. Before: 6 (T4 read the execution first).
const SUSPEND_READS: usize = 5;

const HEADER: &str =
    "| flow | DynamoDB reads | DynamoDB writes | table WRU | S3 | SQS |\n|---|---|---|---|---|---|";

#[track_caller]
fn assert_no_mismatch(mismatches: Vec<Option<String>>) {
    let m: Vec<String> = mismatches.into_iter().flatten().collect();
    assert!(m.is_empty(), "request counts changed:\n{}", m.join("\n"));
}

/// The restaurant pipeline (§7.5), key-less then keyed: submit, first
/// dispatch (T2, the await import, T4), a status poll, the pending list,
/// the completion (T7 and the resume), the second dispatch (to success).
#[tokio::test]
async fn aws_requests_per_flow_of_the_restaurant_pipeline() {
    let c = counted(None).await;
    eprintln!("{HEADER}");
    let mut mismatches = Vec::new();
    for key in [None, Some("order-2025-0001")] {
        let kind = if key.is_some() { "keyed" } else { "key-less" };
        let v = c.e.h.submit(submit_body("Ada Lovelace", key)).await;
        let id = v.ok()["executionId"].as_str().unwrap().to_string();
        let submit = c.flow(&format!("submit, {kind}"));
        let mut sizes = vec![c.exec_size(&id).await];
        assert_eq!(c.e.dispatch().await.len(), 1);
        let suspend = c.flow(&format!("transition to the await (T2, import, T4), {kind}"));
        sizes.push(c.exec_size(&id).await);
        let st = c.e.h.status(&id).await;
        assert_eq!(st["status"], "WAITING_EXTERNAL", "{st}");
        let status = c.flow("status GET");
        let interaction = c.pending().await.remove(0);
        let pending = c.flow("pending list GET (one pending)");
        let order_id = interaction["requestPayload"]["orderId"]
            .as_str()
            .unwrap()
            .to_string();
        c.complete(&interaction, &order_id).await;
        let complete = c.flow(&format!("await completion, {kind}"));
        sizes.push(c.exec_size(&id).await);
        assert_eq!(c.e.dispatch().await.len(), 1);
        let succeed = c.flow(&format!("transition to success after the await, {kind}"));
        sizes.push(c.exec_size(&id).await);
        eprintln!("execution item bytes after submit, T4, T7, T3 ({kind}): {sizes:?}");
        let st = c.e.h.status(&id).await;
        assert_eq!(st["status"], "SUCCEEDED", "{st}");
        c.log.clear();

        let full = Flow {
            name: format!("full execution with its await, {kind}"),
            requests: [&submit, &suspend, &complete, &succeed]
                .iter()
                .flat_map(|f| f.requests.clone())
                .collect(),
        };
        // Reads include the registries' (active release: `Query`; release
        // and worker: `GetItem`).
        match key {
            None => {
                mismatches.push(submit.check(&[
                    ("dynamodb:GetItem", 1),
                    ("dynamodb:PutItem", 2),
                    ("dynamodb:Query", 2),
                    ("sqs:SendMessage", 1),
                ]));
            }
            Some(_) => {
                mismatches.push(submit.check(&[
                    ("dynamodb:GetItem", 2),
                    ("dynamodb:PutItem", 1),
                    ("dynamodb:Query", 2),
                    ("dynamodb:TransactWriteItems", 1),
                    ("dynamodb:TransactWriteItems.items", 2),
                    ("sqs:SendMessage", 1),
                ]));
            }
        }
        mismatches.push(suspend.check(&[
            ("dynamodb:GetItem", SUSPEND_READS),
            ("dynamodb:PutItem", 3),
            ("dynamodb:Query", 1),
            ("dynamodb:UpdateItem", 2),
        ]));
        mismatches.push(status.check(&[("dynamodb:GetItem", 2)]));
        mismatches.push(pending.check(&[("dynamodb:Query", 1)]));
        mismatches.push(complete.check(&[
            ("dynamodb:GetItem", COMPLETE_READS),
            ("dynamodb:UpdateItem", 4),
            ("sqs:SendMessage", 1),
        ]));
        mismatches.push(succeed.check(&[
            ("dynamodb:GetItem", 5),
            ("dynamodb:PutItem", 1),
            ("dynamodb:Query", 1),
            ("dynamodb:UpdateItem", 2),
        ]));
        let (reads, puts, transacts) = match key {
            None => (1 + SUSPEND_READS + COMPLETE_READS + 5, 6, vec![]),
            Some(_) => (
                2 + SUSPEND_READS + COMPLETE_READS + 5,
                5,
                vec![
                    ("dynamodb:TransactWriteItems", 1),
                    ("dynamodb:TransactWriteItems.items", 2),
                ],
            ),
        };
        let mut whole = vec![
            ("dynamodb:GetItem", reads),
            ("dynamodb:PutItem", puts),
            ("dynamodb:Query", 4),
            ("dynamodb:UpdateItem", 8),
            ("sqs:SendMessage", 2),
        ];
        whole.extend(transacts);
        mismatches.push(full.check(&whole));
    }
    let sizes = c.item_sizes().await;
    eprintln!("largest items (bytes): {sizes:?}");
    // The execution item passes 1 KB as its inline history reaches six
    // events (its last updates cost 2 WRU); every other item stays under.
    for (kind, size) in &sizes {
        let bound = if kind == "executions:exec" {
            2048
        } else {
            1024
        };
        assert!(*size <= bound, "{kind} is {size} bytes: over {bound}");
    }
    assert_no_mismatch(mismatches);
}

/// §10.8 "one transition, the first of an execution, to success": a worker
/// that completes the run on its first call.
#[tokio::test]
async fn aws_requests_of_a_first_transition_to_success() {
    let worker = ScriptedWorker::default();
    let url = worker.start().await;
    let c = counted(Some(url)).await;
    worker.answer(
        200,
        worker_completed(json!([envelope(
            "org.example.Done",
            &json!({"outcome": "APPROVED"}).to_string()
        )])),
    );
    let v = c.e.h.submit(submit_body("Ada Lovelace", None)).await;
    let id = v.ok()["executionId"].as_str().unwrap().to_string();
    c.log.clear();
    assert_eq!(c.e.dispatch().await.len(), 1);
    let t = c.flow("first transition to success (T2, result, T3)");
    assert_eq!(c.e.h.status(&id).await["status"], "SUCCEEDED");
    eprintln!("{HEADER}");
    assert_no_mismatch(vec![t.check(&[
        ("dynamodb:GetItem", 3),
        ("dynamodb:PutItem", 1),
        ("dynamodb:Query", 1),
        ("dynamodb:UpdateItem", 2),
    ])]);
}

/// A re-drive of a `FAILED` execution (the worker rejects the decision),
/// and the dispatch it enqueues (failing again).
#[tokio::test]
async fn aws_requests_of_a_redrive() {
    let c = counted(None).await;
    let v = c.e.h.submit(submit_body("Ada Lovelace", None)).await;
    let id = v.ok()["executionId"].as_str().unwrap().to_string();
    assert_eq!(c.e.dispatch().await.len(), 1);
    let interaction = c.pending().await.remove(0);
    c.complete(&interaction, "not-a-uuid").await;
    assert_eq!(c.e.dispatch().await.len(), 1);
    let failed = c.e.h.status(&id).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let version = failed["version"].as_u64().unwrap();
    assert_eq!(c.e.dead_letters().await.len(), 1);
    c.log.clear();

    let red = c
        .e
        .h
        .call(
            "POST",
            &format!("/tpf/admin/tenants/{TENANT}/executions/{id}/redrive"),
            ADMIN,
            Some(json!({"allowFailed": true, "expectedVersion": version, "reason": "incident", "actor": "oncall"})),
        )
        .await;
    assert_eq!(red.ok()["status"], "QUEUED");
    let redrive = c.flow("re-drive of a FAILED execution");
    assert_eq!(c.e.dispatch().await.len(), 1);
    let again = c.flow("dispatch after the re-drive (fails again, dead letter)");
    assert_eq!(c.e.h.status(&id).await["status"], "FAILED");
    eprintln!("{HEADER}");
    assert_no_mismatch(vec![
        redrive.check(&[
            ("dynamodb:GetItem", 3),
            ("dynamodb:UpdateItem", 1),
            ("sqs:SendMessage", 1),
        ]),
        // The failure with a full inline history spills it (§10.6): one
        // `TransactWriteItems` of 2 items.
        again.check(&[
            ("dynamodb:GetItem", 6),
            ("dynamodb:Query", 1),
            ("dynamodb:TransactWriteItems", 1),
            ("dynamodb:TransactWriteItems.items", 2),
            ("dynamodb:UpdateItem", 1),
            ("sqs:SendMessage", 1),
        ]),
    ]);
}
