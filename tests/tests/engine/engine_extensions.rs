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

// ---------------------------------------------------------------------------
// EXT-04: GET /tpf/openapi.json, checked against the spec's own route
// tables (API.md §1.1, RELEASES.md §1.1) written out here, not against the
// implementation's routing table.
// ---------------------------------------------------------------------------

/// Who may call a route (API.md §1.1 "Token" column; RELEASES.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    ControlPlane,
    Admin,
    None,
}

/// One route of the spec: method, path, token, the listed query
/// parameters, and the request members of its body (`None`: reads no body).
struct SpecRoute {
    method: &'static str,
    path: String,
    token: Token,
    query: &'static [&'static str],
    body: Option<&'static [&'static str]>,
}

const PAGE: &[&str] = &["limit", "cursor"];
const REL: &str = "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}";

fn spec_routes() -> Vec<SpecRoute> {
    let r = |method, path: &str, token, query, body| SpecRoute {
        method,
        path: path.to_string(),
        token,
        query,
        body,
    };
    let cp = "/tpf/control-plane/tenants/{tenantId}";
    vec![
        // API.md §1.1
        r(
            "POST",
            &format!("{cp}/executions"),
            Token::ControlPlane,
            &[],
            Some(
                &[
                    "pipelineId",
                    "inputShape",
                    "inputPayload",
                    "idempotencyKey",
                    "outputStreaming",
                ][..],
            ),
        ),
        r(
            "GET",
            &format!("{cp}/executions"),
            Token::ControlPlane,
            &["status", "pipelineId", "limit", "cursor"][..],
            None,
        ),
        r(
            "GET",
            &format!("{cp}/executions/{{executionId}}"),
            Token::ControlPlane,
            &[],
            None,
        ),
        r(
            "GET",
            &format!("{cp}/executions/{{executionId}}/result"),
            Token::ControlPlane,
            &[],
            None,
        ),
        r(
            "GET",
            &format!("{cp}/executions/{{executionId}}/history"),
            Token::ControlPlane,
            PAGE,
            None,
        ),
        r(
            "GET",
            &format!("{cp}/interactions/pending"),
            Token::ControlPlane,
            &["stepId", "assignee", "group", "limit", "cursor"][..],
            None,
        ),
        r(
            "POST",
            &format!("{cp}/interactions/complete"),
            Token::ControlPlane,
            &[],
            Some(
                &[
                    "interactionId",
                    "correlationId",
                    "resumeToken",
                    "responsePayload",
                    "idempotencyKey",
                    "actor",
                ][..],
            ),
        ),
        r(
            "POST",
            "/tpf/admin/tenants/{tenantId}/executions/{executionId}/redrive",
            Token::Admin,
            &[],
            Some(&["expectedVersion", "reason", "allowFailed", "actor"][..]),
        ),
        r("GET", "/tpf/health", Token::None, &[], None),
        r("GET", "/q/health/live", Token::None, &[], None),
        r("GET", "/tpf/openapi.json", Token::None, &[], None),
        // RELEASES.md §1.1 (beneath REL)
        r(
            "POST",
            &format!("{REL}/releases/register"),
            Token::Admin,
            &[],
            Some(&["releaseDescriptorPath", "releaseDescriptor"][..]),
        ),
        r("GET", &format!("{REL}/releases"), Token::Admin, PAGE, None),
        r(
            "GET",
            &format!("{REL}/releases/active"),
            Token::Admin,
            &[],
            None,
        ),
        r(
            "GET",
            &format!("{REL}/releases/activations"),
            Token::Admin,
            PAGE,
            None,
        ),
        r(
            "GET",
            &format!("{REL}/releases/{{releaseVersion}}"),
            Token::Admin,
            &[],
            None,
        ),
        r(
            "POST",
            &format!("{REL}/releases/{{releaseVersion}}/activate"),
            Token::Admin,
            &[],
            None,
        ),
        r(
            "POST",
            &format!("{REL}/workers/register"),
            Token::Admin,
            &[],
            Some(
                &[
                    "workerId",
                    "contractVersion",
                    "releaseVersion",
                    "protocol",
                    "endpoint",
                    "artifactId",
                    "artifactDigest",
                ][..],
            ),
        ),
        r(
            "POST",
            &format!("{REL}/workers/{{workerId}}/heartbeat"),
            Token::Admin,
            &[],
            None,
        ),
        r(
            "POST",
            &format!("{REL}/workers/{{workerId}}/drain"),
            Token::Admin,
            &[],
            None,
        ),
        r(
            "GET",
            &format!("{REL}/workers"),
            Token::Admin,
            &["contractVersion", "releaseVersion", "limit", "cursor"][..],
            None,
        ),
    ]
}

/// Follows a local `$ref` (`#/a/b`) from `doc`; panics when it dangles.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let Some(r) = v.get("$ref").and_then(Value::as_str) else {
        return v;
    };
    let pointer = r
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("non-local $ref {r}"));
    let target = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("unresolved $ref {r}"));
    resolve(doc, target)
}

/// Every `$ref` anywhere in `v` resolves inside `doc`.
fn check_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(_)) = m.get("$ref") {
                resolve(doc, v);
            }
            m.values().for_each(|c| check_refs(doc, c));
        }
        Value::Array(a) => a.iter().for_each(|c| check_refs(doc, c)),
        _ => {}
    }
}

#[tokio::test]
async fn ext_04_openapi_is_public_valid_3_1_and_lists_exactly_the_spec_routes() {
    let h = Harness::new(Options {
        env: vec![],
        restaurant_worker: false,
    })
    .await;
    // No Authorization header at all.
    let resp = tower::ServiceExt::oneshot(
        h.router.clone(),
        axum::http::Request::builder()
            .method("GET")
            .uri("/tpf/openapi.json")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();

    // Document level (OpenAPI 3.1.0 §4.8.1).
    let top = doc.as_object().unwrap();
    let allowed = [
        "openapi",
        "info",
        "jsonSchemaDialect",
        "servers",
        "paths",
        "webhooks",
        "components",
        "security",
        "tags",
        "externalDocs",
    ];
    for k in top.keys() {
        assert!(
            allowed.contains(&k.as_str()) || k.starts_with("x-"),
            "unknown top-level member {k}"
        );
    }
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert!(doc["info"]["title"].is_string());
    assert_eq!(doc["info"]["version"], tpf_core::VERSION);
    // The two bearer schemes and the error object of API.md §3.4.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let mut names: Vec<&str> = schemes.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["adminToken", "controlPlaneToken"]);
    for s in schemes.values() {
        assert_eq!(
            (&s["type"], &s["scheme"]),
            (&json!("http"), &json!("bearer"))
        );
    }
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["code", "message"]));
    check_refs(&doc, &doc);

    // (method, path) pairs: exactly the spec's tables.
    let spec = spec_routes();
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for (k, _) in item.as_object().unwrap() {
            let methods = [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ];
            let others = ["parameters", "summary", "description", "servers", "$ref"];
            assert!(
                methods.contains(&k.as_str()) || others.contains(&k.as_str()),
                "{path}: {k}"
            );
            if methods.contains(&k.as_str()) {
                documented.insert((k.to_uppercase(), path.clone()));
            }
        }
    }
    let listed: std::collections::BTreeSet<(String, String)> = spec
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone()))
        .collect();
    assert_eq!(
        listed.len(),
        spec.len(),
        "the literal table repeats a route"
    );
    let missing: Vec<_> = listed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, not in the spec {extra:?}"
    );

    // Each operation: responses, parameters, security and body as the spec says.
    for route in &spec {
        let what = format!("{} {}", route.method, route.path);
        let item = &doc["paths"][route.path.as_str()];
        let op = &item[route.method.to_lowercase()];
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: no responses"));
        assert!(responses.contains_key("200"), "{what}");
        for (code, r) in responses {
            let valid = code == "default"
                || (code.len() == 3
                    && code.starts_with(['1', '2', '3', '4', '5'])
                    && (code[1..].chars().all(|c| c.is_ascii_digit()) || &code[1..] == "XX"));
            assert!(valid, "{what}: response key {code}");
            assert!(resolve(&doc, r)["description"].is_string(), "{what} {code}");
        }
        if route.token != Token::None {
            for code in ["400", "401", "403", "503"] {
                let r = resolve(&doc, &responses[code]);
                assert_eq!(
                    resolve(&doc, &r["content"]["application/json"]["schema"]),
                    error,
                    "{what} {code}"
                );
            }
        }
        // Parameters: path templates declared once, required; the query
        // parameters are the spec's list.
        let mut params: Vec<&Value> = Vec::new();
        for list in [&item["parameters"], &op["parameters"]] {
            if let Some(a) = list.as_array() {
                params.extend(a.iter().map(|p| resolve(&doc, p)));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &params {
            let (name, place) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
            assert!(
                ["query", "header", "path", "cookie"].contains(&place),
                "{what}: {place}"
            );
            assert!(seen.insert((name, place)), "{what}: {name} declared twice");
            if place == "path" {
                assert_eq!(p["required"], true, "{what}: {name}");
            }
        }
        let templated: std::collections::BTreeSet<&str> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let declared: std::collections::BTreeSet<&str> = seen
            .iter()
            .filter(|(_, p)| *p == "path")
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(declared, templated, "{what}");
        let query: std::collections::BTreeSet<&str> = seen
            .iter()
            .filter(|(_, p)| *p == "query")
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(query, route.query.iter().copied().collect(), "{what}");
        // Security.
        let security = op.get("security").or(doc.get("security"));
        let expected = match route.token {
            Token::ControlPlane => Some(json!([{"controlPlaneToken": []}])),
            Token::Admin => Some(json!([{"adminToken": []}])),
            Token::None => None,
        };
        match expected {
            Some(e) => assert_eq!(security, Some(&e), "{what}"),
            None => assert!(
                security.is_none()
                    || security == Some(&json!([]))
                    || security == Some(&json!([{}])),
                "{what}: {security:?}"
            ),
        }
        // Request body: only where the route reads one, with the members of
        // the spec's member table.
        match route.body {
            None => assert!(op.get("requestBody").is_none(), "{what} documents a body"),
            Some(members) => {
                let body = resolve(&doc, &op["requestBody"]);
                let schema = resolve(&doc, &body["content"]["application/json"]["schema"]);
                assert_eq!(schema["type"], "object", "{what}");
                let props: Vec<&str> = schema["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                let mut props_sorted = props.clone();
                props_sorted.sort();
                let mut members_sorted = members.to_vec();
                members_sorted.sort();
                assert_eq!(props_sorted, members_sorted, "{what}");
                if let Some(req) = schema["required"].as_array() {
                    for r in req {
                        assert!(
                            members.contains(&r.as_str().unwrap()),
                            "{what}: required {r}"
                        );
                    }
                }
            }
        }
    }

    // The served document answers identically with a token, and both
    // surfaces disabled still serve it (API.md §1.1: always served).
    let with_token = h.call("GET", "/tpf/openapi.json", CONTROL, None).await;
    assert_eq!(with_token.ok(), &doc);
    let disabled = h.router_altered(h.deps.clone(), |s| {
        s.control_plane_enabled = false;
        s.admin_enabled = false;
    });
    let r = call_on(&disabled, "GET", "/tpf/openapi.json", "", None).await;
    assert_eq!(r.ok(), &doc);
}
