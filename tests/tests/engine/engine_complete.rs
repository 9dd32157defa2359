//! Pending interactions and completion conformance (EXECUTION.md §11
//! PEND-01..PEND-06 and COMP-01..COMP-17; API.md §2.4, §2.5; EXECUTION.md
//! §8.4–§8.9): answers, the stored interaction/unit/parent (read back
//! through the `AwaitStore`/`ExecutionStore` traits), history, queue and
//! dead letters.

use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

use tpf_core::domain::awaits::AwaitInteraction;
use tpf_core::domain::envelope::{flatten, payload_hash};
use tpf_core::domain::execution::ExecutionStatus;
use tpf_core::domain::resume_token;
use tpf_core::ports::{AwaitStore, WorkItem, Write};
use tpf_tests::*;

const COMPLETE: &str = "/tpf/control-plane/tenants/acme/interactions/complete";
const PENDING: &str = "/tpf/control-plane/tenants/acme/interactions/pending";
const RESUME_SECRET: &str = "resume-secret";

fn item(id: &str) -> WorkItem {
    WorkItem {
        tenant_id: TENANT.into(),
        execution_id: id.into(),
    }
}

fn with_secret() -> Options {
    Options {
        env: vec![("TPF_RESUME_TOKEN_SECRET", RESUME_SECRET.into())],
        restaurant_worker: true,
    }
}

/// The completion envelope of API.md §2.5 (approved, note, score).
fn spec_payload() -> Value {
    let e = |t: &str, p: &str| payload_envelope(t, p);
    let items = json!({
        "approved": e("java.lang.Boolean", "true"),
        "note": e("java.lang.String", "\"Looks good\""),
        "score": e("java.lang.Long", "7"),
    });
    payload_envelope("java.util.Map", &json!({"items": items}).to_string())
}

/// The order id the example worker put in the interaction's request.
fn order_id(i: &AwaitInteraction) -> String {
    let v: Value = serde_json::from_str(i.request_payload.as_ref().unwrap().get()).unwrap();
    v["orderId"].as_str().unwrap().to_string()
}

/// A token for `i` (optionally altered) signed with `secret`.
fn token_for(i: &AwaitInteraction, secret: &str, alter: impl FnOnce(&mut Value)) -> String {
    let mut p = json!({
        "tenantId": i.tenant_id, "interactionId": i.interaction_id,
        "correlationId": i.correlation_id, "executionId": i.execution_id,
        "stepId": i.step_id, "deadlineEpochMs": i.deadline_epoch_ms,
        "issuedAtEpochMs": i.created_at_epoch_ms,
    });
    alter(&mut p);
    resume_token::mint(secret, &p)
}

/// `i` completed as the action would have written it (a direct store
/// write simulating a completion whose follow-up never ran).
fn completed_record(
    i: &AwaitInteraction,
    now: i64,
    envelope: &Value,
    actor: &str,
    key: Option<&str>,
) -> AwaitInteraction {
    let mut next = i.clone();
    next.status = "COMPLETED".into();
    next.version = i.version + 1;
    next.updated_at_epoch_ms = now;
    next.response_payload = Some(RawValue::from_string(flatten(envelope).unwrap()).unwrap());
    next.actor = Some(actor.into());
    next.completion_idempotency_key = key.map(str::to_string);
    next.completion_payload_hash = Some(payload_hash(envelope));
    next.completed_at_epoch_ms = Some(now);
    next.settle_due_epoch_ms = Some(now + 60_000);
    next
}

async fn write_interaction(h: &Harness, next: &AwaitInteraction, expected: i64) {
    let w = h
        .awaits
        .update_interaction(next, expected, h.now())
        .await
        .unwrap();
    assert_eq!(w, Write::Written);
}

fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// The interaction is still open and unchanged.
async fn assert_untouched(h: &Harness, before: &AwaitInteraction) {
    let now = h.interaction_of(&before.interaction_id).await.unwrap();
    assert_eq!(
        (now.status.as_str(), now.version, now.actor.as_deref()),
        (
            before.status.as_str(),
            before.version,
            before.actor.as_deref()
        )
    );
    assert!(now.response_payload.is_none());
    assert!(now.completion_payload_hash.is_none());
}

/// The parent still waits on its await, unchanged.
async fn assert_parent_waiting(h: &Harness, id: &str, version: u64) {
    let p = h.record(id).await.unwrap();
    assert_eq!(
        (p.status, p.version),
        (ExecutionStatus::WaitingExternal, version)
    );
}

// ---------------------------------------------------------------------------
// Pending interactions
// ---------------------------------------------------------------------------

struct Add<'a> {
    tenant: &'a str,
    n: &'a str,
    step_id: &'a str,
    assignee: Option<&'a str>,
    group: Option<&'a str>,
    status: &'a str,
    deadline: i64,
}

impl<'a> Add<'a> {
    fn new(n: &'a str, deadline: i64) -> Self {
        Add {
            tenant: TENANT,
            n,
            step_id: "AwaitStep",
            assignee: None,
            group: Some("kitchen"),
            status: "DISPATCHED",
            deadline,
        }
    }

    /// Imports interaction `int-<n>` (unit `unit-<n>`, execution `exec-<n>`).
    async fn import(self, h: &Harness) {
        let now = h.now();
        let (mut unit, mut i) = await_records(
            self.tenant,
            &format!("exec-{}", self.n),
            1,
            &format!("unit-{}", self.n),
            &format!("int-{}", self.n),
            &format!("corr-{}", self.n),
            now.min(self.deadline - 1000),
            self.deadline,
        );
        unit["stepId"] = json!(self.step_id);
        i["stepId"] = json!(self.step_id);
        i["assignee"] = json!(self.assignee);
        i["group"] = json!(self.group);
        i["status"] = json!(self.status);
        let out = import_records(h.awaits.as_ref(), &unit, &i, now).await;
        assert!(matches!(out, tpf_core::ports::ImportOutcome::Imported));
    }
}

async fn pending(h: &Harness, query: &str) -> Resp {
    h.call("GET", &format!("{PENDING}{query}"), CONTROL, None)
        .await
}

fn ids(r: &Resp) -> Vec<String> {
    r.ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["interactionId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pend_01_pending_is_an_array_of_open_interactions_with_the_15_members() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada Lovelace").await;
    let r = pending(&h, "").await;
    let items = r.ok().as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    let dto = &items[0];
    let names: Vec<&str> = dto
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "interactionId",
            "correlationId",
            "executionId",
            "stepId",
            "stepIndex",
            "outputType",
            "status",
            "requestPayload",
            "assignee",
            "group",
            "transportType",
            "transportMetadata",
            "deadlineEpochMs",
            "createdAtEpochMs",
            "updatedAtEpochMs"
        ]
    );
    let request: Value = serde_json::from_str(i.request_payload.as_ref().unwrap().get()).unwrap();
    assert_eq!(
        *dto,
        json!({
            "interactionId": i.interaction_id, "correlationId": i.correlation_id,
            "executionId": id, "stepId": "ProcessAwaitRestaurantDecisionService",
            "stepIndex": 2, "outputType": i.output_type, "status": "DISPATCHED",
            "requestPayload": request, "assignee": null, "group": "kitchen",
            "transportType": "interaction-api", "transportMetadata": {},
            "deadlineEpochMs": i.deadline_epoch_ms, "createdAtEpochMs": i.created_at_epoch_ms,
            "updatedAtEpochMs": i.updated_at_epoch_ms
        })
    );
    assert_eq!(request["customerName"], "Ada Lovelace");
    // Listing writes nothing.
    assert_untouched(&h, &i).await;
    assert_parent_waiting(&h, &id, 2).await;
}

#[tokio::test]
async fn pend_02_filters_are_exact_anded_and_blank_is_ignored() {
    let h = Harness::new(Options::default()).await;
    let d = h.now() + 600_000;
    let rows = [
        ("a", "S1", Some("alice"), Some("g1")),
        ("b", "S1", Some("bob"), Some("g1")),
        ("c", "S2", Some("alice"), Some("g2")),
        ("d", "S1", Some("alice"), Some("g2")),
        ("e", "S1", None, None),
    ];
    for (k, (n, step, assignee, group)) in rows.into_iter().enumerate() {
        Add {
            step_id: step,
            assignee,
            group,
            ..Add::new(n, d + k as i64)
        }
        .import(&h)
        .await;
    }
    let cases: [(&str, &[&str]); 12] = [
        ("", &["a", "b", "c", "d", "e"]),
        ("?stepId=S1", &["a", "b", "d", "e"]),
        ("?assignee=alice", &["a", "c", "d"]),
        ("?group=g1", &["a", "b"]),
        ("?stepId=S1&assignee=alice", &["a", "d"]),
        ("?stepId=S1&assignee=alice&group=g2", &["d"]),
        ("?stepId=S2&group=g1", &[]),
        (
            "?stepId=%20%20&assignee=&group=",
            &["a", "b", "c", "d", "e"],
        ),
        ("?stepId=%20S1%20", &["a", "b", "d", "e"]),
        ("?stepId=s1", &[]),
        ("?assignee=ali", &[]),
        ("?group=G1", &[]),
    ];
    for (q, want) in cases {
        let want: Vec<String> = want.iter().map(|n| format!("int-{n}")).collect();
        assert_eq!(ids(&pending(&h, q).await), want, "{q}");
    }
}

#[tokio::test]
async fn pend_03_terminal_and_other_tenant_interactions_are_not_listed_past_deadline_ones_are() {
    let h = Harness::new(Options::default()).await;
    let now = h.now();
    let d = now + 600_000;
    for (n, status) in [
        ("waiting", "WAITING"),
        ("dispatching", "DISPATCHING"),
        ("dispatched", "DISPATCHED"),
        ("completed", "COMPLETED"),
        ("timed-out", "TIMED_OUT"),
        ("failed", "FAILED"),
        ("cancelled", "CANCELLED"),
        ("expired", "EXPIRED"),
    ] {
        Add {
            status,
            ..Add::new(n, d)
        }
        .import(&h)
        .await;
    }
    // Open, past its deadline, not yet timed out by the sweep.
    Add::new("late", now - 1_000).import(&h).await;
    // Another tenant's open interaction.
    Add {
        tenant: "globex",
        ..Add::new("theirs", d)
    }
    .import(&h)
    .await;
    assert_eq!(
        ids(&pending(&h, "").await),
        [
            "int-late",
            "int-dispatched",
            "int-dispatching",
            "int-waiting"
        ]
    );
    let theirs = h
        .call(
            "GET",
            "/tpf/control-plane/tenants/globex/interactions/pending",
            CONTROL,
            None,
        )
        .await;
    assert_eq!(ids(&theirs), ["int-theirs"]);
    // Still listed, still open: listing does not time it out.
    assert_eq!(
        h.interaction_of("int-late").await.unwrap().status,
        "DISPATCHED"
    );
}

#[tokio::test]
async fn pend_04_ordered_by_deadline_then_interaction_id() {
    let h = Harness::new(Options::default()).await;
    let d = h.now() + 600_000;
    for (n, deadline) in [
        ("b", d + 100),
        ("a", d + 100),
        ("c", d + 50),
        ("z", d),
        ("y", d + 200),
    ] {
        Add::new(n, deadline).import(&h).await;
    }
    assert_eq!(
        ids(&pending(&h, "").await),
        ["int-z", "int-c", "int-a", "int-b", "int-y"]
    );
    let deadlines: Vec<i64> = pending(&h, "")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["deadlineEpochMs"].as_i64().unwrap())
        .collect();
    assert!(deadlines.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn pend_05_limit_defaults_clamps_and_refuses_bad_values() {
    let h = Harness::new(Options::default()).await;
    let d = h.now() + 600_000;
    for k in 0..1001 {
        Add::new(&format!("{k:04}"), d).import(&h).await;
    }
    for (q, n) in [
        ("", 100),
        ("?limit=", 100),
        ("?limit=25", 25),
        ("?limit=1", 1),
        ("?limit=1000", 1000),
        ("?limit=5000", 1000),
        ("?limit=2147483647", 1000),
    ] {
        let r = pending(&h, q).await;
        let got = ids(&r);
        assert_eq!(got.len(), n, "{q}");
        assert_eq!(got[0], "int-0000", "{q}");
    }
    for q in [
        "?limit=abc",
        "?limit=0",
        "?limit=-1",
        "?limit=1&limit=2",
        "?limit=25&limit=25",
        "?limit=2147483648",
        "?limit=1.5",
    ] {
        let r = pending(&h, q).await;
        r.err(400, "INVALID_PARAMETER");
        assert!(r.body["message"].as_str().unwrap().contains("limit"), "{q}");
    }
}

#[tokio::test]
async fn pend_06_cursors_page_through_every_item_once_and_bad_cursors_are_refused() {
    let h = Harness::new(Options::default()).await;
    let d = h.now() + 600_000;
    for (k, n) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        Add::new(n, d + (k as i64 % 2)).import(&h).await;
    }
    Add {
        group: Some("bar"),
        ..Add::new("f", d)
    }
    .import(&h)
    .await;
    let all = ids(&pending(&h, "?group=kitchen").await);
    assert_eq!(all.len(), 5);

    let mut seen = Vec::new();
    let mut query = "?group=kitchen&limit=2".to_string();
    let mut pages = 0;
    loop {
        let r = pending(&h, &query).await;
        seen.extend(ids(&r));
        pages += 1;
        match r.headers.get("x-tpf-next-cursor") {
            Some(c) => query = format!("?group=kitchen&limit=2&cursor={}", c.to_str().unwrap()),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);
    // The last page (and a page holding everything) carries no cursor.
    assert!(pending(&h, "?group=kitchen")
        .await
        .headers
        .get("x-tpf-next-cursor")
        .is_none());

    let first = pending(&h, "?group=kitchen&limit=2").await;
    let cursor = first.headers["x-tpf-next-cursor"]
        .to_str()
        .unwrap()
        .to_string();
    // The cursor is the plain form: base64url of compact JSON.
    for bad in [
        format!("{PENDING}?group=bar&cursor={cursor}"),
        format!("{PENDING}?cursor={cursor}"),
        format!("{PENDING}?group=kitchen&stepId=AwaitStep&cursor={cursor}"),
        format!(
            "/tpf/control-plane/tenants/globex/interactions/pending?group=kitchen&cursor={cursor}"
        ),
        format!("{PENDING}?group=kitchen&cursor=!!!"),
        format!("{PENDING}?group=kitchen&cursor=bm90IGpzb24"), // "not json"
        format!("{PENDING}?group=kitchen&cursor=e30"),         // "{}"
        format!("{PENDING}?group=kitchen&cursor=WzEsMl0"),     // "[1,2]"
        format!("{PENDING}?group=kitchen&cursor={}", "A".repeat(2049)),
    ] {
        let r = h.call("GET", &bad, CONTROL, None).await;
        r.err(400, "INVALID_CURSOR");
    }
}

// ---------------------------------------------------------------------------
// Complete interaction
// ---------------------------------------------------------------------------

#[tokio::test]
async fn comp_01_completion_by_interaction_id_stores_flattened_payload_actor_key_and_hash() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let key = format!("complete-{}", i.interaction_id);
    let now = h.now();
    let r = h
        .complete_body(json!({
            "interactionId": i.interaction_id, "idempotencyKey": key,
            "responsePayload": spec_payload(), "actor": "kitchen-tablet-3"
        }))
        .await;
    let v = r.ok();
    let names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "interactionId",
            "executionId",
            "stepId",
            "status",
            "duplicate"
        ]
    );
    assert_eq!(
        *v,
        json!({"interactionId": i.interaction_id, "executionId": id,
               "stepId": "ProcessAwaitRestaurantDecisionService", "status": "COMPLETED", "duplicate": false})
    );
    let s = h.interaction_of(&i.interaction_id).await.unwrap();
    assert_eq!(s.status, "COMPLETED");
    assert_eq!(s.version, i.version + 1);
    assert_eq!(
        s.response_payload.as_ref().unwrap().get(),
        r#"{"approved":true,"note":"Looks good","score":7}"#
    );
    assert_eq!(s.actor.as_deref(), Some("kitchen-tablet-3"));
    assert_eq!(s.completion_idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(
        s.completion_payload_hash.as_deref(),
        Some("5aced512b3d8ced3012544332dbac02f682e4d72745ee864a7552f2afd84f792")
    );
    assert_eq!(s.completed_at_epoch_ms, Some(now));
    assert_eq!(s.updated_at_epoch_ms, now);
    assert_eq!(
        s.request_payload.as_ref().unwrap().get(),
        i.request_payload.as_ref().unwrap().get()
    );
    // The parent was released, so the interaction is settled.
    assert_eq!(s.settle_due_epoch_ms, None);
    let unit = h.unit_of(&i.unit_id).await.unwrap();
    assert_eq!((unit.status.as_str(), unit.version), ("COMPLETED", 2));
    // No longer pending.
    assert!(ids(&pending(&h, "").await).is_empty());
    assert_eq!(
        event_types(&h.history(&id).await),
        ["SUBMITTED", "CLAIMED", "WAITING_EXTERNAL", "RESUMED"]
    );
}

#[tokio::test]
async fn comp_02_the_parent_is_released_at_the_next_step_with_a_resumed_event_and_one_enqueue() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let before = h.record(&id).await.unwrap();
    let now = h.now();
    h.complete_body(json!({
        "interactionId": i.interaction_id,
        "responsePayload": decision(&order_id(&i), true), "actor": "kitchen-tablet-3"
    }))
    .await
    .ok();
    let p = h.record(&id).await.unwrap();
    assert_eq!(p.status, ExecutionStatus::Queued);
    assert_eq!(p.current_step_index, 3);
    assert_eq!(p.await_unit_id.as_deref(), Some(i.unit_id.as_str()));
    assert_eq!(p.version, before.version + 1);
    assert_eq!(p.next_due_epoch_ms, Some(now));
    assert_eq!(
        (p.lease_owner.as_deref(), p.lease_expires_epoch_ms),
        (None, 0)
    );
    assert_eq!(p.last_transition_key, before.last_transition_key);
    assert_eq!(p.attempt, 0);
    assert_eq!(
        (p.error_code.as_deref(), p.result_payload.is_none()),
        (None, true)
    );
    let events = h.history(&id).await;
    let e = events.last().unwrap();
    assert_eq!(e["version"], p.version);
    assert_eq!(e["type"], "RESUMED");
    assert_eq!(e["previousStatus"], "WAITING_EXTERNAL");
    assert_eq!(e["status"], "QUEUED");
    assert_eq!(e["stepIndex"], 3);
    assert_eq!(e["actor"], "kitchen-tablet-3");
    assert_eq!(e["interactionId"], i.interaction_id.as_str());
    assert_eq!(e["unitId"], i.unit_id.as_str());
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    // The released execution runs the step after the await.
    h.process(&item(&id)).await;
    assert_eq!(
        h.record(&id).await.unwrap().status,
        ExecutionStatus::Succeeded
    );
}

#[tokio::test]
async fn comp_03_correlation_id_and_resume_token_resolve_the_same_interaction() {
    let h = Harness::new(with_secret()).await;
    let (a_id, a) = h.park("Ada").await;
    let (b_id, b) = h.park("Grace").await;
    // By correlationId.
    let pb = decision(&order_id(&b), true);
    let r = h
        .complete_body(
            json!({"correlationId": b.correlation_id, "responsePayload": pb, "actor": "x"}),
        )
        .await;
    assert_eq!(r.ok()["interactionId"], b.interaction_id.as_str());
    assert_eq!(r.body["executionId"], b_id.as_str());
    assert_eq!(
        h.interaction_of(&b.interaction_id).await.unwrap().status,
        "COMPLETED"
    );
    // The same interaction by id and by token: the same completion is a duplicate.
    for handle in [
        json!({"interactionId": b.interaction_id}),
        json!({"resumeToken": token_for(&b, RESUME_SECRET, |_| {})}),
    ] {
        let mut body = handle;
        body["responsePayload"] = pb.clone();
        let r = h.complete_body(body).await;
        assert_eq!(r.ok()["interactionId"], b.interaction_id.as_str());
        assert_eq!(r.body["duplicate"], true);
    }
    // By resumeToken alone.
    let r = h
        .complete_body(json!({"resumeToken": token_for(&a, RESUME_SECRET, |_| {}),
                              "responsePayload": decision(&order_id(&a), false)}))
        .await;
    assert_eq!(r.ok()["interactionId"], a.interaction_id.as_str());
    assert_eq!(r.body["duplicate"], false);
    let sa = h.interaction_of(&a.interaction_id).await.unwrap();
    assert_eq!(sa.status, "COMPLETED");
    for id in [&a_id, &b_id] {
        let p = h.record(id).await.unwrap();
        assert_eq!(
            (p.status, p.current_step_index),
            (ExecutionStatus::Queued, 3)
        );
        assert_eq!(event_types(&h.history(id).await).last().unwrap(), "RESUMED");
    }
}

#[tokio::test]
async fn comp_04_handle_precedence_is_id_then_correlation_then_token() {
    let h = Harness::new(with_secret()).await;
    let (_, a) = h.park("Ada").await;
    let (b_id, b) = h.park("Grace").await;
    let (_, c) = h.park("Edsger").await;
    let pay = |i: &AwaitInteraction| decision(&order_id(i), true);
    // interactionId wins over correlationId.
    let r = h
        .complete_body(json!({"interactionId": a.interaction_id, "correlationId": b.correlation_id, "responsePayload": pay(&a)}))
        .await;
    assert_eq!(r.ok()["interactionId"], a.interaction_id.as_str());
    assert_untouched(&h, &b).await;
    // An unknown interactionId does not fall back to the correlationId.
    let r = h
        .complete_body(json!({"interactionId": "no-such-interaction", "correlationId": b.correlation_id, "responsePayload": pay(&b)}))
        .await;
    r.err(404, "INTERACTION_NOT_FOUND");
    assert_untouched(&h, &b).await;
    // correlationId wins over the token's hint: C's token is checked
    // against B (resolved by correlation) and does not match.
    let r = h
        .complete_body(json!({"correlationId": b.correlation_id,
                              "resumeToken": token_for(&c, RESUME_SECRET, |_| {}), "responsePayload": pay(&b)}))
        .await;
    r.err(400, "RESUME_TOKEN_INVALID");
    assert_untouched(&h, &b).await;
    assert_untouched(&h, &c).await;
    let r = h
        .complete_body(json!({"correlationId": b.correlation_id,
                              "resumeToken": token_for(&b, RESUME_SECRET, |_| {}), "responsePayload": pay(&b)}))
        .await;
    assert_eq!(r.ok()["interactionId"], b.interaction_id.as_str());
    assert_eq!(h.record(&b_id).await.unwrap().current_step_index, 3);
    // The token alone resolves through its hint.
    let r = h
        .complete_body(json!({"resumeToken": token_for(&c, RESUME_SECRET, |_| {}), "responsePayload": pay(&c)}))
        .await;
    assert_eq!(r.ok()["interactionId"], c.interaction_id.as_str());
}

#[tokio::test]
async fn comp_05_no_handle_or_no_response_payload_is_missing_field() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let p = decision(&order_id(&i), true);
    let cases = [
        (
            json!({"responsePayload": p}),
            "interactionId, correlationId, or resumeToken is required",
        ),
        (
            json!({"interactionId": "  ", "correlationId": "", "resumeToken": " ", "responsePayload": p}),
            "interactionId, correlationId, or resumeToken is required",
        ),
        (
            json!({"interactionId": null, "correlationId": null, "resumeToken": null, "responsePayload": p}),
            "interactionId, correlationId, or resumeToken is required",
        ),
        (
            json!({"interactionId": i.interaction_id}),
            "responsePayload",
        ),
        (
            json!({"interactionId": i.interaction_id, "responsePayload": null}),
            "responsePayload",
        ),
        (
            json!({"correlationId": i.correlation_id, "actor": "x"}),
            "responsePayload",
        ),
    ];
    for (b, msg) in cases {
        let r = h.complete_body(b.clone()).await;
        r.err(400, "MISSING_FIELD");
        assert!(
            r.body["message"].as_str().unwrap().contains(msg),
            "{b}: {}",
            r.body
        );
    }
    assert_untouched(&h, &i).await;
    assert_parent_waiting(&h, &id, 2).await;
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn comp_06_unknown_handle_or_another_tenants_interaction_is_404() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let p = decision(&order_id(&i), true);
    for b in [
        json!({"interactionId": "c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "responsePayload": p}),
        json!({"correlationId": "0f6e7d8c-9b0a-3c1d-8e2f-4a5b6c7d8e9f", "responsePayload": p}),
    ] {
        h.complete_body(b).await.err(404, "INTERACTION_NOT_FOUND");
    }
    let other = "/tpf/control-plane/tenants/globex/interactions/complete";
    for b in [
        json!({"interactionId": i.interaction_id, "responsePayload": p}),
        json!({"correlationId": i.correlation_id, "responsePayload": p}),
    ] {
        h.call("POST", other, CONTROL, Some(b))
            .await
            .err(404, "INTERACTION_NOT_FOUND");
    }
    assert_untouched(&h, &i).await;
    assert_parent_waiting(&h, &id, 2).await;
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn comp_07_repeating_the_same_completion_is_a_duplicate_that_re_attempts_the_release() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let p1 = decision(&order_id(&i), true);
    let p2 = decision(&order_id(&i), false);
    let first = json!({"interactionId": i.interaction_id, "idempotencyKey": "k-1", "responsePayload": p1, "actor": "a1"});
    assert_eq!(h.complete_body(first).await.ok()["duplicate"], false);
    let stored = h.interaction_of(&i.interaction_id).await.unwrap();
    let version = h.record(&id).await.unwrap().version;
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    // Same key (even with another payload and actor): duplicate; the
    // original payload and actor are kept; the QUEUED parent is re-kicked.
    let r = h
        .complete_body(json!({"interactionId": i.interaction_id, "idempotencyKey": " k-1 ", "responsePayload": p2, "actor": "a2"}))
        .await;
    assert_eq!(
        *r.ok(),
        json!({"interactionId": i.interaction_id, "executionId": id,
               "stepId": "ProcessAwaitRestaurantDecisionService", "status": "COMPLETED", "duplicate": true})
    );
    let again = h.interaction_of(&i.interaction_id).await.unwrap();
    assert_eq!(again.version, stored.version);
    assert_eq!(again.actor.as_deref(), Some("a1"));
    assert_eq!(
        again.response_payload.as_ref().unwrap().get(),
        stored.response_payload.as_ref().unwrap().get()
    );
    assert_eq!(
        again.completion_payload_hash,
        stored.completion_payload_hash
    );
    assert_eq!(h.record(&id).await.unwrap().version, version);
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);

    // A completion whose release never happened (crash after the
    // COMPLETED write): the repeat releases the parent.
    let (id2, i2) = h.park("Grace").await;
    let p = decision(&order_id(&i2), true);
    let done = completed_record(&i2, h.now(), &p, "a1", Some("k-2"));
    write_interaction(&h, &done, i2.version).await;
    assert_parent_waiting(&h, &id2, 2).await;
    let r = h
        .complete_body(json!({"interactionId": i2.interaction_id, "idempotencyKey": "k-2", "responsePayload": p, "actor": "a2"}))
        .await;
    assert_eq!(r.ok()["duplicate"], true);
    let parent = h.record(&id2).await.unwrap();
    assert_eq!(
        (parent.status, parent.current_step_index),
        (ExecutionStatus::Queued, 3)
    );
    let events = h.history(&id2).await;
    assert_eq!(events.last().unwrap()["type"], "RESUMED");
    assert_eq!(events.last().unwrap()["actor"], "a1");
    assert_eq!(h.drain_queue(), vec![(id2, 0)]);
}

#[tokio::test]
async fn comp_08_a_keyless_repeat_with_an_identical_payload_is_a_duplicate() {
    let h = Harness::new(Options::default()).await;
    let (_, a) = h.park("Ada").await;
    let pa = decision(&order_id(&a), true);
    h.complete_body(json!({"interactionId": a.interaction_id, "idempotencyKey": "k-a", "responsePayload": pa, "actor": "one"}))
        .await
        .ok();
    let r = h
        .complete_body(
            json!({"interactionId": a.interaction_id, "responsePayload": pa, "actor": "two"}),
        )
        .await;
    assert_eq!(r.ok()["duplicate"], true);
    let s = h.interaction_of(&a.interaction_id).await.unwrap();
    assert_eq!(
        (s.actor.as_deref(), s.completion_idempotency_key.as_deref()),
        (Some("one"), Some("k-a"))
    );
    // Key-less both times.
    let (_, b) = h.park("Grace").await;
    let pb = decision(&order_id(&b), false);
    let body = json!({"interactionId": b.interaction_id, "responsePayload": pb});
    assert_eq!(h.complete_body(body.clone()).await.ok()["duplicate"], false);
    let v = h.interaction_of(&b.interaction_id).await.unwrap().version;
    assert_eq!(h.complete_body(body).await.ok()["duplicate"], true);
    assert_eq!(
        h.interaction_of(&b.interaction_id).await.unwrap().version,
        v
    );
}

#[tokio::test]
async fn comp_09_a_different_completion_of_a_completed_interaction_is_409() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let p1 = decision(&order_id(&i), true);
    let p2 = decision(&order_id(&i), false);
    h.complete_body(json!({"interactionId": i.interaction_id, "idempotencyKey": "k-1", "responsePayload": p1, "actor": "a1"}))
        .await
        .ok();
    let stored = h.interaction_of(&i.interaction_id).await.unwrap();
    let version = h.record(&id).await.unwrap().version;
    h.queue.drain();
    for b in [
        json!({"interactionId": i.interaction_id, "idempotencyKey": "other", "responsePayload": p2}),
        json!({"interactionId": i.interaction_id, "responsePayload": p2, "actor": "a2"}),
        json!({"correlationId": i.correlation_id, "idempotencyKey": "k-9", "responsePayload": p2}),
    ] {
        let r = h.complete_body(b).await;
        r.err(409, "INTERACTION_ALREADY_COMPLETED");
        assert_eq!(
            r.body["message"],
            format!(
                "Interaction {} was already completed with a different response",
                i.interaction_id
            )
        );
    }
    let again = h.interaction_of(&i.interaction_id).await.unwrap();
    assert_eq!(
        (
            again.version,
            again.actor.clone(),
            again.completion_payload_hash.clone()
        ),
        (
            stored.version,
            stored.actor.clone(),
            stored.completion_payload_hash.clone()
        )
    );
    assert_eq!(h.record(&id).await.unwrap().version, version);
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn comp_10_completing_a_failed_cancelled_or_expired_interaction_is_409_terminal() {
    let h = Harness::new(Options::default()).await;
    let d = h.now() + 600_000;
    for (n, status) in [("failed", "FAILED"), ("expired", "EXPIRED")] {
        Add {
            status,
            ..Add::new(n, d)
        }
        .import(&h)
        .await;
    }
    // A parked interaction cancelled by its transport.
    let (id, i) = h.park("Ada").await;
    let mut cancelled = i.clone();
    cancelled.status = "CANCELLED".into();
    cancelled.version += 1;
    write_interaction(&h, &cancelled, i.version).await;
    let p = payload_envelope("java.lang.String", "\"ok\"");
    for (iid, status) in [
        ("int-failed", "FAILED"),
        ("int-expired", "EXPIRED"),
        (i.interaction_id.as_str(), "CANCELLED"),
    ] {
        let before = h.interaction_of(iid).await.unwrap();
        let r = h
            .complete_body(
                json!({"interactionId": iid, "idempotencyKey": "k", "responsePayload": p}),
            )
            .await;
        r.err(409, "INTERACTION_TERMINAL");
        let after = h.interaction_of(iid).await.unwrap();
        assert_eq!(
            (after.status.as_str(), after.version),
            (status, before.version)
        );
        assert!(after.response_payload.is_none());
    }
    assert_parent_waiting(&h, &id, 2).await;
    assert!(h.queue.is_empty());
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test]
async fn comp_11_completion_at_the_deadline_times_out_the_await_and_fails_the_parent() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    h.clock.set(i.deadline_epoch_ms); // deadline ≤ now
    let now = h.now();
    let r = h
        .complete_body(json!({"interactionId": i.interaction_id, "responsePayload": decision(&order_id(&i), true)}))
        .await;
    r.err(409, "INTERACTION_TIMED_OUT");
    let s = h.interaction_of(&i.interaction_id).await.unwrap();
    assert_eq!((s.status.as_str(), s.version), ("TIMED_OUT", i.version + 1));
    assert!(s.response_payload.is_none());
    assert_eq!(s.settle_due_epoch_ms, None);
    assert_eq!(h.unit_of(&i.unit_id).await.unwrap().status, "TIMED_OUT");
    let p = h.record(&id).await.unwrap();
    assert_eq!(p.status, ExecutionStatus::Failed);
    assert_eq!(p.error_code.as_deref(), Some("AWAIT_TIMEOUT"));
    assert_eq!(
        p.error_message.as_deref(),
        Some(format!("Await interaction timed out: {}", i.interaction_id).as_str())
    );
    assert_eq!(
        p.last_transition_key.as_deref(),
        Some(format!("{id}:2:0").as_str())
    );
    assert_eq!(p.current_step_index, 2);
    assert_eq!(p.await_unit_id.as_deref(), Some(i.unit_id.as_str()));
    assert_eq!(p.next_due_epoch_ms, Some(now));
    let events = h.history(&id).await;
    let e = events.last().unwrap();
    assert_eq!(
        (&e["type"], &e["terminalReason"], &e["errorCode"]),
        (
            &json!("FAILED"),
            &json!("await_timeout"),
            &json!("AWAIT_TIMEOUT")
        )
    );
    assert_eq!(e["previousStatus"], "WAITING_EXTERNAL");
    let letters = h.dead_letters.all();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.execution_id, id);
    assert_eq!(l.terminal_reason, "await_timeout");
    assert_eq!(l.error_code, "AWAIT_TIMEOUT");
    assert!(!l.retryable);
    assert_eq!(l.transition_key, format!("{id}:2:0"));
    assert_eq!(l.terminal_status, "FAILED");
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn comp_12_completing_an_already_timed_out_interaction_is_409_and_fails_a_waiting_parent() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    // The timeout write happened, the parent follow-up did not (crash).
    h.clock.set(i.deadline_epoch_ms + 5);
    let mut timed_out = i.clone();
    timed_out.status = "TIMED_OUT".into();
    timed_out.version += 1;
    timed_out.updated_at_epoch_ms = h.now();
    timed_out.settle_due_epoch_ms = Some(h.now());
    write_interaction(&h, &timed_out, i.version).await;
    assert_parent_waiting(&h, &id, 2).await;

    let body = json!({"interactionId": i.interaction_id, "responsePayload": decision(&order_id(&i), true)});
    h.complete_body(body.clone())
        .await
        .err(409, "INTERACTION_TIMED_OUT");
    let p = h.record(&id).await.unwrap();
    assert_eq!(p.status, ExecutionStatus::Failed);
    assert_eq!(p.error_code.as_deref(), Some("AWAIT_TIMEOUT"));
    assert_eq!(h.dead_letters.all().len(), 1);
    assert_eq!(h.dead_letters.all()[0].terminal_reason, "await_timeout");
    assert_eq!(
        h.interaction_of(&i.interaction_id)
            .await
            .unwrap()
            .settle_due_epoch_ms,
        None
    );
    // Again: still 409, nothing more happens.
    h.complete_body(body)
        .await
        .err(409, "INTERACTION_TIMED_OUT");
    assert_eq!(h.record(&id).await.unwrap().version, p.version);
    assert_eq!(h.dead_letters.all().len(), 1);
    assert_eq!(h.history(&id).await.len() as u64, p.version + 1);
}

#[tokio::test]
async fn comp_13_resume_tokens_are_validated_against_the_interaction() {
    let h = Harness::new(with_secret()).await;
    let (id, i) = h.park("Ada").await;
    let (_, other) = h.park("Grace").await;
    let p = decision(&order_id(&i), true);
    let valid = token_for(&i, RESUME_SECRET, |_| {});
    let (vp, vs) = valid.split_once('.').unwrap();
    let altered = token_for(&i, RESUME_SECRET, |t| t["stepId"] = json!("Other"));
    let (ap, _) = altered.split_once('.').unwrap();
    let mut flipped = vs.to_string();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    let bad_tokens = [
        token_for(&i, "another-secret", |_| {}),
        format!("{vp}.{flipped}"),
        format!("{ap}.{vs}"),
        token_for(&other, RESUME_SECRET, |_| {}),
        token_for(&i, RESUME_SECRET, |t| t["tenantId"] = json!("globex")),
        token_for(&i, RESUME_SECRET, |t| t["correlationId"] = json!("corr-x")),
        token_for(&i, RESUME_SECRET, |t| t["executionId"] = json!("exec-x")),
        token_for(&i, RESUME_SECRET, |t| t["stepId"] = json!("Other")),
        token_for(&i, RESUME_SECRET, |t| t["deadlineEpochMs"] = json!(1)),
        "abc".to_string(),
        format!("{vp}.{vs}.{vs}"),
        format!("{vp}."),
        "!!!.###".to_string(),
    ];
    for t in &bad_tokens {
        let r = h
            .complete_body(
                json!({"interactionId": i.interaction_id, "resumeToken": t, "responsePayload": p}),
            )
            .await;
        r.err(400, "RESUME_TOKEN_INVALID");
    }
    // As the only handle, undecodable or hint-less tokens fail before lookup.
    for t in [
        "abc".to_string(),
        "!!!.###".to_string(),
        token_for(&i, RESUME_SECRET, |t| {
            t.as_object_mut().unwrap().remove("interactionId");
        }),
    ] {
        h.complete_body(json!({"resumeToken": t, "responsePayload": p}))
            .await
            .err(400, "RESUME_TOKEN_INVALID");
    }
    assert_untouched(&h, &i).await;
    assert_untouched(&h, &other).await;
    assert_parent_waiting(&h, &id, 2).await;
    // A deadline sent as a string of digits matches too; valid → accepted.
    let as_string = token_for(&i, RESUME_SECRET, |t| {
        t["deadlineEpochMs"] = json!(i.deadline_epoch_ms.to_string())
    });
    let r = h
        .complete_body(json!({"interactionId": i.interaction_id, "resumeToken": as_string, "responsePayload": p}))
        .await;
    assert_eq!(r.ok()["duplicate"], false);
    assert_eq!(h.record(&id).await.unwrap().current_step_index, 3);
}

#[tokio::test]
async fn comp_13_spec_test_vector_validates_against_the_7_5_example_interaction() {
    let h = Harness::new(Options {
        env: vec![("TPF_RESUME_TOKEN_SECRET", "tpf-demo-resume-secret".into())],
        restaurant_worker: false,
    })
    .await;
    h.clock.set(1_736_938_000_000); // before the example's deadline
    let unit = json!({
        "tenantId": "acme", "unitId": "5a1f0c3e-8d2b-3e4f-9a6b-7c8d9e0f1a2b",
        "executionId": "7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34",
        "stepId": "ProcessAwaitRestaurantDecisionService", "stepIndex": 2, "cardinality": "ONE_TO_ONE",
        "version": 1, "status": "WAITING_EXTERNAL", "primaryInteractionId": "c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "expectedItemCount": null, "completedItemCount": 0, "completedItemKeys": [], "dispatchComplete": false,
        "createdAtEpochMs": 1736937600000i64, "updatedAtEpochMs": 1736937600000i64, "ttlEpochS": 1737025800
    });
    let interaction = json!({
        "tenantId": "acme", "executionId": "7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34",
        "stepId": "ProcessAwaitRestaurantDecisionService", "stepIndex": 2,
        "outputType": "org.pipelineframework.restaurantapproval.common.domain.RestaurantDecision",
        "interactionId": "c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "correlationId": "0f6e7d8c-9b0a-3c1d-8e2f-4a5b6c7d8e9f", "causationId": null,
        "idempotencyKey": "7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34:ProcessAwaitRestaurantDecisionService",
        "version": 2, "status": "DISPATCHED",
        "requestPayload": {"orderId": "9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e", "customerName": "Ada Lovelace", "restaurantName": "Cafe TPF"},
        "responsePayload": null, "unitId": "5a1f0c3e-8d2b-3e4f-9a6b-7c8d9e0f1a2b", "itemIndex": null,
        "actor": null, "assignee": null, "group": "kitchen", "transportType": "interaction-api",
        "transportMetadata": {}, "deadlineEpochMs": 1736939400000i64, "createdAtEpochMs": 1736937600000i64,
        "updatedAtEpochMs": 1736937600400i64, "ttlEpochS": 1737025800,
        "transportOutputType": "org.pipelineframework.restaurantapproval.common.domain.RestaurantDecision"
    });
    import_records(h.awaits.as_ref(), &unit, &interaction, h.now()).await;
    let vector = "eyJ0ZW5hbnRJZCI6ImFjbWUiLCJpbnRlcmFjdGlvbklkIjoiYzFhMmIzZDQtZTVmNi00YTdiLThjOWQtMGUxZjJhM2I0YzVkIiwiY29ycmVsYXRpb25JZCI6IjBmNmU3ZDhjLTliMGEtM2MxZC04ZTJmLTRhNWI2YzdkOGU5ZiIsImV4ZWN1dGlvbklkIjoiN2QzYzlmMmUtNGIxYS00YzhlLTlmNmQtMmE1YjhjMWUwZjM0Iiwic3RlcElkIjoiUHJvY2Vzc0F3YWl0UmVzdGF1cmFudERlY2lzaW9uU2VydmljZSIsImRlYWRsaW5lRXBvY2hNcyI6MTczNjkzOTQwMDAwMCwiaXNzdWVkQXRFcG9jaE1zIjoxNzM2OTM3NjAwMDAwfQ.MkvmOVC9IoJQRmtTjDtB2-Jad3KoP8zXWR7GvorP0hw";
    let r = h
        .complete_body(json!({"resumeToken": vector, "responsePayload": spec_payload(), "actor": "kitchen-tablet-3"}))
        .await;
    assert_eq!(
        *r.ok(),
        json!({"interactionId": "c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
               "executionId": "7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34",
               "stepId": "ProcessAwaitRestaurantDecisionService", "status": "COMPLETED", "duplicate": false})
    );
    let s = h
        .interaction_of("c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
        .await
        .unwrap();
    assert_eq!(s.status, "COMPLETED");
    assert_eq!(
        s.completion_payload_hash.as_deref(),
        Some("5aced512b3d8ced3012544332dbac02f682e4d72745ee864a7552f2afd84f792")
    );
}

#[tokio::test]
async fn comp_14_a_resume_token_without_a_configured_secret_is_503() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let p = decision(&order_id(&i), true);
    let looks_valid = token_for(&i, "whatever", |t| {
        t["interactionId"] = json!("no-such-interaction")
    });
    // The only handle: decided before parsing or lookup (not 400, not 404).
    for t in ["garbage", "a.b.c", looks_valid.as_str()] {
        let r = h
            .complete_body(json!({"resumeToken": t, "responsePayload": p}))
            .await;
        r.err(503, "RESUME_TOKEN_UNAVAILABLE");
        assert_eq!(r.headers["retry-after"], "5");
    }
    // Alongside an id: once the interaction is resolved.
    let r = h
        .complete_body(json!({"interactionId": i.interaction_id, "resumeToken": "garbage", "responsePayload": p}))
        .await;
    r.err(503, "RESUME_TOKEN_UNAVAILABLE");
    let r = h
        .complete_body(json!({"correlationId": i.correlation_id, "resumeToken": token_for(&i, "s", |_| {}), "responsePayload": p}))
        .await;
    r.err(503, "RESUME_TOKEN_UNAVAILABLE");
    h.complete_body(json!({"interactionId": "no-such-interaction", "resumeToken": "garbage", "responsePayload": p}))
        .await
        .err(404, "INTERACTION_NOT_FOUND");
    assert_untouched(&h, &i).await;
    assert_parent_waiting(&h, &id, 2).await;
    assert!(h.queue.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn comp_15_two_concurrent_different_completions_one_wins_one_is_409() {
    let h = Arc::new(Harness::new(Options::default()).await);
    for n in 0..6 {
        let (id, i) = h.park(&format!("Customer {n}")).await;
        let yes = json!({"interactionId": i.interaction_id, "idempotencyKey": "yes", "responsePayload": decision(&order_id(&i), true), "actor": "yes"});
        let no = json!({"interactionId": i.interaction_id, "idempotencyKey": "no", "responsePayload": decision(&order_id(&i), false), "actor": "no"});
        let (h1, h2) = (h.clone(), h.clone());
        let a = tokio::spawn(async move { h1.complete_body(yes).await });
        let b = tokio::spawn(async move { h2.complete_body(no).await });
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let mut outcomes = [
            (a.status, a.body["code"].clone(), "yes"),
            (b.status, b.body["code"].clone(), "no"),
        ];
        outcomes.sort_by_key(|o| o.0);
        assert_eq!(outcomes[0].0, 200, "{a:?} {b:?}");
        assert_eq!(
            (outcomes[1].0, outcomes[1].1.clone()),
            (409, json!("INTERACTION_ALREADY_COMPLETED")),
            "{a:?} {b:?}"
        );
        let s = h.interaction_of(&i.interaction_id).await.unwrap();
        assert_eq!(s.actor.as_deref(), Some(outcomes[0].2));
        let events = h.history(&id).await;
        assert_eq!(
            event_types(&events)
                .iter()
                .filter(|t| *t == "RESUMED")
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn comp_15_a_completion_that_loses_its_write_to_another_is_409_never_concurrent_modification()
{
    let h = Harness::new(Options::default()).await;
    let racing = Arc::new(RacingAwaitStore {
        inner: h.awaits.clone(),
        competitor: Mutex::new(None),
    });
    let mut deps = h.deps.clone();
    deps.awaits = racing.clone();
    let router = h.router_with(deps);

    // A different rival wins between our read and our write → 409.
    let (id, i) = h.park("Ada").await;
    let rival = completed_record(
        &i,
        h.now(),
        &decision(&order_id(&i), false),
        "rival",
        Some("rk"),
    );
    *racing.competitor.lock().unwrap() = Some(rival);
    let ours = json!({"interactionId": i.interaction_id, "idempotencyKey": "ours", "responsePayload": decision(&order_id(&i), true), "actor": "ours"});
    let r = call_on(&router, "POST", COMPLETE, CONTROL, Some(ours)).await;
    r.err(409, "INTERACTION_ALREADY_COMPLETED");
    let s = h.interaction_of(&i.interaction_id).await.unwrap();
    assert_eq!(
        (s.actor.as_deref(), s.version),
        (Some("rival"), i.version + 1)
    );
    // The rival's follow-up is the sweep's job: the parent still waits.
    assert_parent_waiting(&h, &id, 2).await;

    // An identical rival → ours is answered as a duplicate (and releases).
    let (id2, i2) = h.park("Grace").await;
    let same = decision(&order_id(&i2), true);
    *racing.competitor.lock().unwrap() = Some(completed_record(&i2, h.now(), &same, "rival", None));
    let ours =
        json!({"interactionId": i2.interaction_id, "responsePayload": same, "actor": "ours"});
    let r = call_on(&router, "POST", COMPLETE, CONTROL, Some(ours)).await;
    assert_eq!(r.ok()["duplicate"], true);
    assert_eq!(
        h.interaction_of(&i2.interaction_id)
            .await
            .unwrap()
            .actor
            .as_deref(),
        Some("rival")
    );
    assert_eq!(
        h.record(&id2).await.unwrap().status,
        ExecutionStatus::Queued
    );
}

#[tokio::test]
async fn comp_16_a_crash_after_the_completed_write_is_healed_by_the_sweep() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let p = decision(&order_id(&i), true);
    let done = completed_record(&i, h.now(), &p, "kitchen-tablet-3", Some("k"));
    let settle_due = done.settle_due_epoch_ms.unwrap();
    write_interaction(&h, &done, i.version).await;
    // Before settleDueEpochMs the sweep leaves it alone.
    let s = tpf_core::actions::sweep_once::run(&h.deps, 100).await;
    assert_eq!((s.follow_ups, s.released), (0, 0));
    assert_parent_waiting(&h, &id, 2).await;
    assert!(h.queue.is_empty());

    h.clock.set(settle_due);
    let s = tpf_core::actions::sweep_once::run(&h.deps, 100).await;
    assert_eq!((s.follow_ups, s.released, s.errors), (1, 1, 0));
    let parent = h.record(&id).await.unwrap();
    assert_eq!(parent.status, ExecutionStatus::Queued);
    assert_eq!(parent.current_step_index, 3);
    assert_eq!(parent.await_unit_id.as_deref(), Some(i.unit_id.as_str()));
    let events = h.history(&id).await;
    let e = events.last().unwrap();
    assert_eq!(
        (&e["type"], &e["actor"]),
        (&json!("RESUMED"), &json!("kitchen-tablet-3"))
    );
    assert_eq!(
        h.interaction_of(&i.interaction_id)
            .await
            .unwrap()
            .settle_due_epoch_ms,
        None
    );
    let queued = h.drain_queue();
    assert!(!queued.is_empty() && queued.iter().all(|q| *q == (id.clone(), 0)));
    // The healed execution finishes.
    h.process(&item(&id)).await;
    assert_eq!(
        h.record(&id).await.unwrap().status,
        ExecutionStatus::Succeeded
    );
}

#[tokio::test]
async fn comp_17_a_completion_before_the_waiting_commit_is_released_by_the_post_commit_check() {
    let h = Harness::new(Options {
        env: vec![],
        restaurant_worker: false,
    })
    .await;
    let w = ScriptedWorker::default();
    let url = w.start().await;
    let entry = h.worker_entry_for("scripted", &url, &DemoSpec::default());
    h.put_worker_entry(&entry).await;
    let r = h.submit(submit_body("Ada", None)).await;
    let id = r.ok()["executionId"].as_str().unwrap().to_string();
    h.queue.drain();
    let now = h.now();
    let (unit, interaction) = await_records(
        TENANT,
        &id,
        1,
        "unit-17",
        "int-17",
        "corr-17",
        now,
        now + 600_000,
    );
    // The suspension was imported (§8.3) but T4 has not committed yet.
    import_records(h.awaits.as_ref(), &unit, &interaction, now).await;
    let p = payload_envelope("java.lang.String", "\"yes\"");
    let r = h
        .complete_body(json!({"interactionId": "int-17", "responsePayload": p, "actor": "early"}))
        .await;
    assert_eq!(r.ok()["duplicate"], false);
    // The parent is still QUEUED at step 0 (≤ the await step): re-check later.
    let parent = h.record(&id).await.unwrap();
    assert_eq!(
        (parent.status, parent.version),
        (ExecutionStatus::Queued, 0)
    );
    let s = h.interaction_of("int-17").await.unwrap();
    assert_eq!(s.status, "COMPLETED");
    assert_eq!(s.settle_due_epoch_ms, Some(now + 60_000));
    assert!(h.queue.is_empty());

    // The worker suspends on the same await; T4 commits, then the
    // post-commit check sees the completion and releases the parent.
    w.answer(200, waiting_answer(&unit, &interaction));
    h.process(&item(&id)).await;
    let parent = h.record(&id).await.unwrap();
    assert_eq!(parent.status, ExecutionStatus::Queued);
    assert_eq!(parent.current_step_index, 2);
    assert_eq!(parent.await_unit_id.as_deref(), Some("unit-17"));
    let events = h.history(&id).await;
    assert_eq!(
        event_types(&events),
        ["SUBMITTED", "CLAIMED", "WAITING_EXTERNAL", "RESUMED"]
    );
    assert_eq!(events[3]["actor"], "early");
    assert_eq!(h.drain_queue(), vec![(id.clone(), 0)]);
    assert_eq!(
        h.interaction_of("int-17")
            .await
            .unwrap()
            .settle_due_epoch_ms,
        None
    );
    // The resumed run gets the completion as its input.
    w.answer(200, completed_answer(json!([])));
    h.process(&item(&id)).await;
    let sent = w.requests.lock().unwrap()[1].clone();
    assert_eq!(sent["currentStepIndex"], 2);
    assert_eq!(sent["payloadTypeId"], "org.example.Decision");
    assert_eq!(sent["payload"], "\"yes\"");
}

#[tokio::test]
async fn com_09_a_completion_actor_counts_unicode_scalar_values() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let parent = h.record(&id).await.unwrap();
    let body = |actor: String| json!({"interactionId": i.interaction_id, "responsePayload": spec_payload(), "actor": actor});
    // 129 scalar values are refused, however they are encoded.
    for actor in [
        "😀".repeat(129),
        "é".repeat(129),
        format!("{}é", "😀".repeat(128)),
    ] {
        let r = h.complete_body(body(actor)).await;
        r.err(400, "INVALID_FIELD");
        assert!(r.body["message"].as_str().unwrap().contains("actor"));
        assert_untouched(&h, &i).await;
    }
    let still = h.record(&id).await.unwrap();
    assert_eq!(
        (still.status, still.version),
        (parent.status, parent.version)
    );
    assert!(h.queue.is_empty());

    // 128 U+1F600 (512 UTF-8 bytes) are accepted and stored unchanged
    // (surrounding white space trimmed first).
    let smiles = "😀".repeat(128);
    let r = h.complete_body(body(format!(" {smiles}  "))).await;
    assert_eq!(r.ok()["status"], "COMPLETED");
    assert_eq!(r.body["duplicate"], false);
    let s = h.interaction_of(&i.interaction_id).await.unwrap();
    assert_eq!(s.status, "COMPLETED");
    assert_eq!(s.actor.as_deref(), Some(smiles.as_str()));
    assert_eq!(h.record(&id).await.unwrap().status, ExecutionStatus::Queued);

    // 128 U+00E9 as well.
    let (_, i2) = h.park("Grace").await;
    let r = h
        .complete_body(json!({"interactionId": i2.interaction_id, "responsePayload": spec_payload(), "actor": "é".repeat(128)}))
        .await;
    assert_eq!(r.ok()["status"], "COMPLETED");
    let s2 = h.interaction_of(&i2.interaction_id).await.unwrap();
    assert_eq!(s2.actor, Some("é".repeat(128)));
}
