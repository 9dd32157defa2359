//! Extensions (API.md §3.1, §3.2; checklist EXT-01, EXT-02): the execution
//! list and the execution history over HTTP.

use serde_json::{json, Value};
use tpf_tests::*;

const NON_RETRYABLE: &str = "org.pipelineframework.step.NonRetryableException";

async fn get(h: &Harness, path: &str) -> Resp {
    h.call("GET", path, CONTROL, None).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["executionId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn ext_01_list_executions_newest_first_filtered_and_paginated() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // A second pipeline with its own worker.
    let other = demo_release::DemoSpec {
        pipeline_id: "other-pipe".into(),
        contract_version: "v1".into(),
        release_version: "1.0.0".into(),
    };
    h.activate_demo_release(&other).await;
    let w2 = ScriptedWorker::default();
    h.register_worker("w-other", &w2.start().await, &other)
        .await;

    let t = h.clock_ms();
    h.clock.set(t);
    w.answer(200, worker_completed(json!([])));
    let e1 = h.submit_new().await;
    h.drive().await;
    h.clock.set(t + 10);
    w.answer(200, worker_failed(NON_RETRYABLE, Some("bad order")));
    let e2 = h.submit_new().await;
    h.drive().await;
    h.clock.set(t + 20);
    let body =
        json!({"pipelineId": "other-pipe", "inputShape": "UNI", "inputPayload": order("Bob")});
    let e3 = h.submit(body).await.ok()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    h.queue.drain();
    h.clock.set(t + 30);
    w.answer(200, worker_completed(json!([])));
    let e4 = h.submit_new().await;
    h.drive().await;
    let e5 = h.submit_new().await; // same createdAtEpochMs as e4
    h.queue.drain();

    let base = "/tpf/control-plane/tenants/acme/executions";
    let all = get(&h, base).await;
    let page = all.ok();
    let mut newest = [e4.clone(), e5.clone()];
    newest.sort();
    newest.reverse(); // ties by descending executionId
    let expected = [
        newest[0].clone(),
        newest[1].clone(),
        e3.clone(),
        e2.clone(),
        e1.clone(),
    ];
    assert_eq!(ids(page), expected);
    assert_eq!(page["nextCursor"], Value::Null);
    let item = &page["items"][3];
    let keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "executionId",
            "pipelineId",
            "contractVersion",
            "releaseVersion",
            "status",
            "stepIndex",
            "attempt",
            "version",
            "nextDueAtEpochMs",
            "createdAtEpochMs",
            "updatedAtEpochMs",
            "errorCode",
            "errorMessage"
        ]
    );
    assert_eq!(item["status"], "FAILED");
    assert_eq!(item["errorCode"], "NonRetryableException");
    assert_eq!(item["errorMessage"], "bad order");
    assert_eq!(item["pipelineId"], PIPELINE);
    assert_eq!(item["releaseVersion"], "2025.01.0");
    assert_eq!(item["createdAtEpochMs"], t + 10);
    assert!(item.get("inputPayload").is_none() && item.get("resultPayload").is_none());

    // Filters, alone and ANDed; `status=` means no status filter.
    let q = |query: &str| format!("{base}?{query}");
    let r = get(&h, &q("status=SUCCEEDED")).await;
    let succeeded = vec![e4.clone(), e1.clone()];
    assert_eq!(ids(r.ok()), succeeded);
    assert_eq!(
        ids(get(&h, &q("pipelineId=other-pipe")).await.ok()),
        [e3.as_str()]
    );
    assert_eq!(
        ids(get(&h, &q("status=QUEUED&pipelineId=restaurant-approval"))
            .await
            .ok()),
        [e5.as_str()]
    );
    assert_eq!(ids(get(&h, &q("status=")).await.ok()), expected);
    assert_eq!(
        ids(get(&h, &q("status=DLQ")).await.ok()),
        Vec::<String>::new()
    );
    get(&h, &q("status=BOGUS"))
        .await
        .err(400, "INVALID_PARAMETER");
    get(&h, &q("status=succeeded"))
        .await
        .err(400, "INVALID_PARAMETER");

    // Pages of 2: every execution exactly once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => q(&format!("limit=2&cursor={c}")),
            None => q("limit=2"),
        };
        let r = get(&h, &path).await;
        let page = r.ok().clone();
        pages += 1;
        assert!(page["items"].as_array().unwrap().len() <= 2);
        seen.extend(ids(&page));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);

    // A cursor used with other filters, or a forged one, is refused.
    let first = get(&h, &q("limit=2")).await;
    let c = first.ok()["nextCursor"].as_str().unwrap().to_string();
    get(&h, &q(&format!("limit=2&status=SUCCEEDED&cursor={c}")))
        .await
        .err(400, "INVALID_CURSOR");
    get(&h, &q("limit=2&cursor=not-a-cursor!"))
        .await
        .err(400, "INVALID_CURSOR");
    // Paging a filtered list.
    let r = get(&h, &q("status=SUCCEEDED&limit=1")).await;
    let c = r.ok()["nextCursor"].as_str().unwrap().to_string();
    let r2 = get(&h, &q(&format!("status=SUCCEEDED&limit=1&cursor={c}"))).await;
    let mut got = ids(r.ok());
    got.extend(ids(r2.ok()));
    assert_eq!(got, succeeded);

    // Another tenant sees none of them.
    let beta = get(&h, "/tpf/control-plane/tenants/beta/executions").await;
    assert_eq!(ids(beta.ok()), Vec::<String>::new());
}

const EVENT_MEMBERS: [&str; 18] = [
    "version",
    "type",
    "atEpochMs",
    "previousStatus",
    "status",
    "stepIndex",
    "attempt",
    "transitionKey",
    "errorCode",
    "errorMessage",
    "terminalReason",
    "nextDueAtEpochMs",
    "actor",
    "reason",
    "leaseOwner",
    "workerId",
    "interactionId",
    "unitId",
];

/// The full history through the route, checking members and versions.
async fn history_checked(h: &Harness, id: &str) -> Vec<Value> {
    let r = get(
        h,
        &format!("/tpf/control-plane/tenants/acme/executions/{id}/history"),
    )
    .await;
    let body = r.ok();
    assert_eq!(body["executionId"], id);
    assert_eq!(body["nextCursor"], Value::Null);
    let events = body["events"].as_array().unwrap().clone();
    for (v, e) in events.iter().enumerate() {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, EVENT_MEMBERS, "{e}");
        assert_eq!(e["version"], v as u64, "oldest first, gapless");
    }
    events
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn ext_02_history_lists_every_event_type_oldest_first_with_all_members() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // Retry, await, resume, success.
    let id = h.submit_new().await;
    let item = work_item(&id);
    w.answer(503, json!({}));
    h.drive().await;
    h.queue.drain();
    h.clock.advance(10_000);
    let a = AwaitSpec::new(&id, 2, h.clock_ms());
    w.answer(200, a.waiting());
    h.process(&item).await;
    h.complete_json(json!({"interactionId": a.interaction_id,
        "responsePayload": decision("9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e", true), "actor": "chef-1"}))
        .await
        .ok();
    w.answer(200, worker_completed(json!([])));
    h.drive().await;
    let events = history_checked(&h, &id).await;
    assert_eq!(
        types(&events),
        [
            "SUBMITTED",
            "CLAIMED",
            "RETRY_SCHEDULED",
            "CLAIMED",
            "WAITING_EXTERNAL",
            "RESUMED",
            "CLAIMED",
            "SUCCEEDED"
        ]
    );
    let sub = &events[0];
    assert_eq!(
        (
            &sub["previousStatus"],
            &sub["status"],
            &sub["transitionKey"]
        ),
        (&Value::Null, &json!("QUEUED"), &Value::Null)
    );
    let claimed = &events[1];
    assert!(claimed["leaseOwner"]
        .as_str()
        .unwrap()
        .starts_with("dispatch-"));
    assert_eq!(claimed["transitionKey"], format!("{id}:0:0"));
    assert_eq!(claimed["previousStatus"], "QUEUED");
    let retry = &events[2];
    assert_eq!(retry["errorCode"], "WORKER_HTTP_ERROR");
    assert_eq!(retry["attempt"], 1);
    assert_eq!(
        retry["nextDueAtEpochMs"],
        retry["atEpochMs"].as_i64().unwrap() + 10_000
    );
    assert_eq!(retry["workerId"], SCRIPTED_ID);
    assert_eq!(events[3]["previousStatus"], "WAIT_RETRY");
    let waiting = &events[4];
    assert_eq!(waiting["stepIndex"], 2);
    assert_eq!(waiting["interactionId"], a.interaction_id.as_str());
    assert_eq!(waiting["unitId"], a.unit_id.as_str());
    assert_eq!(waiting["workerId"], SCRIPTED_ID);
    assert_eq!(waiting["transitionKey"], format!("{id}:0:1"));
    let resumed = &events[5];
    assert_eq!(resumed["actor"], "chef-1");
    assert_eq!(resumed["stepIndex"], 3);
    assert_eq!(resumed["interactionId"], a.interaction_id.as_str());
    assert_eq!(resumed["unitId"], a.unit_id.as_str());
    assert_eq!(resumed["previousStatus"], "WAITING_EXTERNAL");
    let done = &events[7];
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["transitionKey"], format!("{id}:3:1"));
    assert_eq!(done["workerId"], SCRIPTED_ID);
    for e in &events {
        let t = e["type"].as_str().unwrap();
        if t != "RETRY_SCHEDULED" {
            assert_eq!(e["nextDueAtEpochMs"], Value::Null, "{t}");
        }
        if t != "CLAIMED" {
            assert_eq!(e["leaseOwner"], Value::Null, "{t}");
        }
        assert_eq!(e["reason"], Value::Null, "{t}");
        assert_eq!(e["terminalReason"], Value::Null, "{t}");
    }
    let at: Vec<i64> = events
        .iter()
        .map(|e| e["atEpochMs"].as_i64().unwrap())
        .collect();
    assert!(at.windows(2).all(|p| p[0] <= p[1]));

    // Failure and re-drive.
    w.answer(200, worker_failed(NON_RETRYABLE, Some("no such dish")));
    let id2 = h.submit_new().await;
    h.drive().await;
    let version = h.status(&id2).await["version"].clone();
    let r = h
        .call(
            "POST",
            &format!("/tpf/admin/tenants/acme/executions/{id2}/redrive"),
            ADMIN,
            Some(json!({"allowFailed": true, "expectedVersion": version,
                        "reason": "menu fixed", "actor": "oncall-alice"})),
        )
        .await;
    assert_eq!(r.ok()["status"], "QUEUED");
    w.answer(200, worker_completed(json!([])));
    h.drive().await;
    let events = history_checked(&h, &id2).await;
    assert_eq!(
        types(&events),
        [
            "SUBMITTED",
            "CLAIMED",
            "FAILED",
            "REDRIVEN",
            "CLAIMED",
            "SUCCEEDED"
        ]
    );
    let failed = &events[2];
    assert_eq!(failed["terminalReason"], "non_retryable");
    assert_eq!(failed["errorCode"], "NonRetryableException");
    assert_eq!(failed["errorMessage"], "no such dish");
    assert_eq!(failed["workerId"], SCRIPTED_ID);
    let redriven = &events[3];
    assert_eq!(redriven["previousStatus"], "FAILED");
    assert_eq!(redriven["reason"], "menu fixed");
    assert_eq!(redriven["actor"], "oncall-alice");
    assert_eq!(redriven["attempt"], 1);
    assert_eq!(
        redriven["transitionKey"],
        format!("redrive:{id2}:{version}")
    );
    assert_eq!(redriven["errorCode"], Value::Null);

    // Pages follow `nextCursor`; unknown ids are 404.
    let path = format!("/tpf/control-plane/tenants/acme/executions/{id}/history");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = match &cursor {
            Some(c) => format!("{path}?limit=3&cursor={c}"),
            None => format!("{path}?limit=3"),
        };
        let r = get(&h, &p).await;
        let body = r.ok().clone();
        for e in body["events"].as_array().unwrap() {
            seen.push(e["version"].as_u64().unwrap());
        }
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, (0..8).collect::<Vec<u64>>());
    get(
        &h,
        "/tpf/control-plane/tenants/acme/executions/00000000-0000-4000-8000-000000000000/history",
    )
    .await
    .err(404, "EXECUTION_NOT_FOUND");
    get(
        &h,
        &format!("/tpf/control-plane/tenants/beta/executions/{id}/history"),
    )
    .await
    .err(404, "EXECUTION_NOT_FOUND");
}
