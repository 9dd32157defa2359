//! Awaits (EXECUTION.md §8, T4/T7/T8 of §3.3; checklist AWAIT-01..09):
//! suspension checks and import, TTL extension, the timeout procedure and
//! its races, terminal units, and resumes across retries.

use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tpf_core::domain::execution::{EventType, ExecutionStatus};
use tpf_core::ports::{AwaitStore, Clock, ExecutionStore, ImportOutcome, Write};
use tpf_tests::*;

/// The §4.6 / API.md §2.5 completion envelope (`approved`, `note`, `score`).
fn approval_map() -> Value {
    let items = json!({
        "approved": envelope("java.lang.Boolean", "true"),
        "note": envelope("java.lang.String", "\"Looks good\""),
        "score": envelope("java.lang.Long", "7"),
    });
    envelope("java.util.Map", &json!({ "items": items }).to_string())
}

/// Asserts that nothing of `a` was imported.
async fn assert_not_imported(h: &Harness, a: &AwaitSpec) {
    assert!(h.unit_rec(&a.unit_id).await.is_none(), "unit imported");
    assert!(
        h.interaction_rec(&a.interaction_id).await.is_none(),
        "interaction imported"
    );
    let by_corr = h
        .awaits
        .get_by_correlation(TENANT, &a.correlation_id, h.clock_ms())
        .await
        .unwrap();
    assert!(by_corr.is_none(), "correlation entry imported");
}

/// Submits, answers `body` to the first transition; returns the id and the
/// record after it.
async fn suspend_with(h: &Harness, w: &ScriptedWorker, body: impl FnOnce(&str) -> Value) -> String {
    let id = h.submit_new().await;
    w.answer(200, body(&id));
    h.drive().await;
    id
}

#[tokio::test]
async fn await_01_itemized_or_multi_interaction_suspension_is_unsupported() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    type Mutate = fn(&AwaitSpec, &mut Value);
    let cases: [(&str, Mutate); 3] = [
        ("itemized", |_, s| {
            s["interactions"][0]["itemIndex"] = json!(0);
        }),
        ("multi-interaction", |a, s| {
            let mut second = a.interaction();
            second["interactionId"] = json!(uuid::Uuid::new_v4().to_string());
            second["correlationId"] = json!(uuid::Uuid::new_v4().to_string());
            s["interactions"].as_array_mut().unwrap().push(second);
        }),
        ("no primary", |_, s| {
            s["unit"]["primaryInteractionId"] = Value::Null;
        }),
    ];
    for (name, mutate) in cases {
        let mut spec = None;
        let id = suspend_with(&h, &w, |id| {
            let a = AwaitSpec::new(id, 2, h.clock_ms());
            let mut s = a.suspension();
            mutate(&a, &mut s);
            spec = Some(a);
            worker_waiting(s)
        })
        .await;
        let a = spec.unwrap();
        let r = h.must_record(&id).await;
        assert_eq!(r.status, ExecutionStatus::Failed, "{name}");
        assert_eq!(
            r.error_code.as_deref(),
            Some("ITEMIZED_AWAIT_UNSUPPORTED"),
            "{name}"
        );
        let msg = r.error_message.unwrap();
        assert!(
            msg.contains(&a.unit_id) && msg.contains(&a.step_id),
            "{name}: {msg}"
        );
        assert_eq!((r.attempt, r.await_unit_id), (0, None), "{name}");
        assert_not_imported(&h, &a).await;
    }
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 3);
    assert!(dl
        .iter()
        .all(|d| d.terminal_reason == "non_retryable" && !d.retryable));
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn await_02_malformed_suspensions_and_adapter_awaits_are_refused() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    type Mutate = fn(&AwaitSpec, &mut Value);
    let invalid: Vec<(&str, Mutate)> = vec![
        ("suspension executionId", |_, s| {
            s["executionId"] = json!("00000000-0000-4000-8000-000000000000")
        }),
        ("suspension tenantId", |_, s| s["tenantId"] = json!("beta")),
        ("unit tenantId", |_, s| {
            s["unit"]["tenantId"] = json!("beta")
        }),
        ("unit executionId", |_, s| {
            s["unit"]["executionId"] = json!("00000000-0000-4000-8000-000000000000")
        }),
        ("interaction executionId", |_, s| {
            s["interactions"][0]["executionId"] = json!("00000000-0000-4000-8000-000000000000")
        }),
        ("interaction tenantId", |_, s| {
            s["interactions"][0]["tenantId"] = json!("beta")
        }),
        ("unit.unitId", |_, s| {
            s["unit"]["unitId"] = json!("00000000-0000-4000-8000-000000000001")
        }),
        ("unit.stepIndex", |_, s| s["unit"]["stepIndex"] = json!(3)),
        ("suspension stepIndex", |_, s| s["stepIndex"] = json!(3)),
        ("primaryInteractionId", |_, s| {
            s["unit"]["primaryInteractionId"] = json!("00000000-0000-4000-8000-000000000002")
        }),
        ("interaction unitId", |_, s| {
            s["interactions"][0]["unitId"] = json!("00000000-0000-4000-8000-000000000003")
        }),
        ("interaction stepId", |_, s| {
            s["interactions"][0]["stepId"] = json!("OtherStep")
        }),
        ("interaction stepIndex", |_, s| {
            s["interactions"][0]["stepIndex"] = json!(1)
        }),
        ("blank outputType", |_, s| {
            s["interactions"][0]["outputType"] = json!(" ");
            s["interactions"][0]["transportOutputType"] = json!(" ");
        }),
        ("blank correlationId", |_, s| {
            s["interactions"][0]["correlationId"] = json!("")
        }),
        ("blank idempotencyKey", |_, s| {
            s["interactions"][0]["idempotencyKey"] = json!("  ")
        }),
        ("deadline not after creation", |a, s| {
            s["interactions"][0]["deadlineEpochMs"] = json!(a.now)
        }),
        // A null unit is malformed, not itemized, even with two interactions.
        ("null unit", |a, s| {
            s["unit"] = Value::Null;
            let mut second = a.interaction();
            second["itemIndex"] = json!(1);
            s["interactions"].as_array_mut().unwrap().push(second);
        }),
        ("absent unit", |_, s| {
            s.as_object_mut().unwrap().remove("unit");
        }),
        // No interactions is malformed, even when the unit has no primary.
        ("no interactions", |_, s| {
            s["interactions"] = json!([]);
            s["unit"]["primaryInteractionId"] = Value::Null;
        }),
        ("null interactions", |_, s| s["interactions"] = Value::Null),
    ];
    let adapter: Vec<(&str, Mutate)> = vec![
        ("projector", |_, s| {
            s["interactions"][0]["transportMetadata"] =
                json!({"tpf.await.completion.projector": "com.acme.Projector"})
        }),
        ("transport type", |_, s| {
            s["interactions"][0]["transportOutputType"] = json!("com.acme.WireDecision")
        }),
    ];
    let cases = invalid
        .into_iter()
        .map(|c| (c, "AWAIT_SUSPENSION_INVALID"))
        .chain(
            adapter
                .into_iter()
                .map(|c| (c, "AWAIT_ADAPTER_UNSUPPORTED")),
        );
    let mut n = 0;
    for ((name, mutate), code) in cases {
        let mut spec = None;
        let id = suspend_with(&h, &w, |id| {
            let a = AwaitSpec::new(id, 2, h.clock_ms());
            let mut s = a.suspension();
            mutate(&a, &mut s);
            spec = Some(a);
            worker_waiting(s)
        })
        .await;
        let r = h.must_record(&id).await;
        assert_eq!(
            (r.status, r.error_code.as_deref()),
            (ExecutionStatus::Failed, Some(code)),
            "{name}: {:?}",
            r.error_message
        );
        assert!(!r.error_message.unwrap_or_default().is_empty());
        assert_not_imported(&h, &spec.unwrap()).await;
        n += 1;
    }
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), n);
    assert!(dl.iter().all(|d| d.terminal_reason == "non_retryable"));
    assert!(h.queue.is_empty());
}

/// A worker answering scripted (steal, status, body): with `steal`, the
/// caller's lease is let expire and another dispatcher claims the
/// execution during the call.
async fn hook_worker(h: &Harness) -> Arc<Mutex<Vec<(bool, u16, String)>>> {
    let script: Arc<Mutex<Vec<(bool, u16, String)>>> = Default::default();
    let (store, clock, lease) = (
        h.executions.clone(),
        h.clock.clone(),
        h.deps.settings.lease_ms,
    );
    let s = script.clone();
    let url = serve_worker_fn(move |call| {
        let (store, clock, s) = (store.clone(), clock.clone(), s.clone());
        async move {
            let (steal, status, body) = s.lock().unwrap().remove(0);
            if steal {
                let cmd: Value = serde_json::from_slice(&call.body).unwrap();
                let id = cmd["executionId"].as_str().unwrap();
                clock.advance(lease + 1);
                let now = clock.now_ms();
                let r = store.get(TENANT, id, now).await.unwrap().unwrap();
                let (next, ev) = r.claim(now, "dispatch-thief", lease);
                store.update(&next, r.version, &ev, now).await.unwrap();
            }
            (status, body)
        }
    })
    .await;
    h.register_worker("hook", &url, &demo_release::DemoSpec::default())
        .await;
    script
}

#[tokio::test]
async fn await_03_import_is_create_if_absent_and_keeps_the_existing_unit() {
    let h = Harness::new(Options {
        restaurant_worker: false,
        env: vec![("TPF_WORKER_LIFECYCLE_STALE_AFTER", "PT0S".into())],
    })
    .await;
    let script = hook_worker(&h).await;
    let id = h.submit_new().await;
    let item = work_item(&id);
    h.queue.drain();
    let first = AwaitSpec::new(&id, 2, h.clock_ms());
    // The retried transition re-suspends on the same (deterministic) unit
    // id with a new interaction and request.
    let mut again = first.clone();
    again.interaction_id = uuid::Uuid::new_v4().to_string();
    again.correlation_id = uuid::Uuid::new_v4().to_string();
    again.now = first.now + 1;
    let mut retried = again.suspension();
    retried["interactions"][0]["requestPayload"] = json!({"orderId": "changed"});
    script.lock().unwrap().extend([
        (true, 200, first.waiting().to_string()),
        (false, 200, worker_waiting(retried).to_string()),
    ]);

    // 1st run: imported, but T4 lost to a dispatcher that took over.
    assert_eq!(h.process(&item).await, Processed::Lost);
    let unit = h
        .unit_rec(&first.unit_id)
        .await
        .expect("imported before T4");
    let original = h.interaction_rec(&first.interaction_id).await.unwrap();
    // That dispatcher dies; its lease expires; the retry re-suspends.
    h.clock.advance(h.deps.settings.lease_ms);
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::WaitRetry)
    );
    h.clock.advance(10_000);
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::WaitingExternal)
    );

    // The existing unit and its primary interaction are used.
    assert_eq!(h.unit_rec(&first.unit_id).await.unwrap(), unit);
    let kept = h.interaction_rec(&first.interaction_id).await.unwrap();
    assert_eq!(kept.version, original.version);
    assert_eq!(
        kept.request_payload.as_deref().map(RawValue::get),
        original.request_payload.as_deref().map(RawValue::get)
    );
    assert!(h.interaction_rec(&again.interaction_id).await.is_none());
    let by_corr = h
        .awaits
        .get_by_correlation(TENANT, &again.correlation_id, h.clock_ms())
        .await
        .unwrap();
    assert!(by_corr.is_none());
    let r = h.must_record(&id).await;
    assert_eq!(r.await_unit_id.as_deref(), Some(first.unit_id.as_str()));
    let e = h.events(&id).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::WaitingExternal);
    assert_eq!(
        e.interaction_id.as_deref(),
        Some(first.interaction_id.as_str())
    );
    let pending = h
        .call(
            "GET",
            "/tpf/control-plane/tenants/acme/interactions/pending",
            CONTROL,
            None,
        )
        .await;
    let ids: Vec<&str> = pending
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["interactionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.interaction_id.as_str()]);

    // Import never overwrites: a unit id of another execution, or a
    // correlation id mapped to another interaction, is refused.
    for clash in ["unit", "correlation"] {
        let other = h.submit_new().await;
        h.queue.drain();
        let mut a = AwaitSpec::new(&other, 2, h.clock_ms());
        match clash {
            "unit" => a.unit_id = first.unit_id.clone(),
            _ => a.correlation_id = first.correlation_id.clone(),
        }
        script
            .lock()
            .unwrap()
            .push((false, 200, a.waiting().to_string()));
        assert_eq!(
            h.process(&work_item(&other)).await,
            Processed::Committed(ExecutionStatus::Failed)
        );
        let r = h.must_record(&other).await;
        assert_eq!(
            r.error_code.as_deref(),
            Some("AWAIT_SUSPENSION_INVALID"),
            "{clash}"
        );
        assert_eq!(h.unit_rec(&first.unit_id).await.unwrap(), unit);
        let c = h
            .awaits
            .get_by_correlation(TENANT, &first.correlation_id, h.clock_ms())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.interaction_id, first.interaction_id);
    }
}

#[tokio::test]
async fn await_04_t4_extends_the_execution_and_key_ttl_to_the_interaction_ttl() {
    const DAY_MS: i64 = 86_400_000;
    let (h, w) = Harness::with_scripted(vec![
        ("TPF_EXECUTION_TTL_DAYS", "1".into()),
        ("TPF_WORKER_LIFECYCLE_STALE_AFTER", "PT0S".into()),
    ])
    .await;
    let submit = |key: &'static str| h.submit(submit_body("Ada Lovelace", Some(key)));
    // A keyed execution waiting on an await due in three days.
    let v = submit("order-waiting").await;
    let waiting = v.ok()["executionId"].as_str().unwrap().to_string();
    let created = h.must_record(&waiting).await;
    let now = h.clock_ms();
    assert_eq!(created.ttl_epoch_s, now / 1000 + 86_400);
    let mut a = AwaitSpec::new(&waiting, 2, now);
    a.deadline = now + 3 * DAY_MS;
    w.answer(200, a.waiting());
    h.drive().await;
    let r = h.must_record(&waiting).await;
    let i = h.interaction_rec(&a.interaction_id).await.unwrap();
    assert_eq!(i.ttl_epoch_s, (a.deadline + 999) / 1000 + 86_400);
    assert_eq!(
        r.ttl_epoch_s, i.ttl_epoch_s,
        "T4 extends to the interaction's TTL"
    );
    let key = tpf_core::ports::ExecutionStore::get_key(
        h.executions.as_ref(),
        TENANT,
        &r.execution_key,
        h.clock_ms(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(key.ttl_epoch_s, r.ttl_epoch_s, "the key entry too");
    let e = h.events(&waiting).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::WaitingExternal);

    // A keyed execution that ended without waiting keeps its one day.
    let v = submit("order-done").await;
    let done = v.ok()["executionId"].as_str().unwrap().to_string();
    w.answer(200, worker_completed(json!([])));
    h.drive().await;
    assert_eq!(
        h.must_record(&done).await.status,
        ExecutionStatus::Succeeded
    );

    // Two days later: past the original TTL, before the extended one.
    h.clock.advance(2 * DAY_MS);
    let again = submit("order-waiting").await;
    assert_eq!(again.ok()["duplicate"], true);
    assert_eq!(again.body["executionId"], waiting.as_str());
    assert_eq!(h.status(&waiting).await["status"], "WAITING_EXTERNAL");
    let fresh = submit("order-done").await;
    assert_eq!(fresh.ok()["duplicate"], false);
    assert_ne!(fresh.body["executionId"], done.as_str());
}

#[tokio::test]
async fn await_05_timeout_fails_the_waiting_parent_with_await_timeout() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // Attempt 1 suspends (the first run failed), so the key shows both.
    w.answer(503, json!({}));
    let id = h.submit_new().await;
    let item = work_item(&id);
    h.drive().await;
    h.queue.drain();
    h.clock.advance(10_000);
    let mut a = AwaitSpec::new(&id, 2, h.clock_ms());
    a.deadline = a.now + 60_000;
    w.answer(200, a.waiting());
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::WaitingExternal)
    );
    let before = h.interaction_rec(&a.interaction_id).await.unwrap();

    h.clock.advance(59_999);
    assert_eq!(h.sweep(100).await, SweepSummary::default(), "not yet due");
    h.clock.advance(1);
    let now = h.clock_ms();
    let s = h.sweep(100).await;
    assert_eq!((s.timed_out, s.failed_parents, s.errors), (1, 1, 0));

    let i = h.interaction_rec(&a.interaction_id).await.unwrap();
    assert_eq!(i.status, "TIMED_OUT");
    assert_eq!(i.version, before.version + 1);
    assert_eq!(i.updated_at_epoch_ms, now);
    assert_eq!(i.settle_due_epoch_ms, None, "settled");
    let u = h.unit_rec(&a.unit_id).await.unwrap();
    assert_eq!((u.status.as_str(), u.version), ("TIMED_OUT", 2));

    let key = format!("{id}:2:1");
    let message = format!("Await interaction timed out: {}", a.interaction_id);
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error_code.as_deref(), Some("AWAIT_TIMEOUT"));
    assert_eq!(r.error_message.as_deref(), Some(message.as_str()));
    assert_eq!(r.last_transition_key.as_deref(), Some(key.as_str()));
    assert_eq!((r.current_step_index, r.attempt), (2, 1));
    assert_eq!(r.await_unit_id.as_deref(), Some(a.unit_id.as_str()));
    assert_eq!(r.next_due_epoch_ms, Some(now));
    let e = h.events(&id).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::Failed);
    assert_eq!(e.previous_status, Some(ExecutionStatus::WaitingExternal));
    assert_eq!(e.terminal_reason.as_deref(), Some("await_timeout"));
    assert_eq!(e.transition_key.as_deref(), Some(key.as_str()));
    assert_eq!(e.interaction_id.as_deref(), Some(a.interaction_id.as_str()));
    assert_eq!(e.unit_id.as_deref(), Some(a.unit_id.as_str()));

    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].terminal_reason, "await_timeout");
    assert_eq!(dl[0].error_code, "AWAIT_TIMEOUT");
    assert_eq!(dl[0].error_message, message);
    assert_eq!(dl[0].transition_key, key);
    assert!(!dl[0].retryable);
    assert_eq!(dl[0].retries_observed, 1);
    assert!(h.queue.is_empty(), "no retry");
    assert_eq!(h.sweep(100).await, SweepSummary::default(), "done once");
}

#[tokio::test]
async fn await_06_timeout_without_a_waiting_parent_changes_only_interaction_and_unit() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let now = h.clock_ms();
    let near = |mut a: AwaitSpec| {
        a.deadline = a.now + 1_000;
        a
    };
    // Missing parent.
    let orphan = near(AwaitSpec::new(
        "00000000-0000-4000-8000-00000000abcd",
        2,
        now,
    ));
    assert!(matches!(
        orphan.import_into(h.awaits.as_ref()).await,
        ImportOutcome::Imported
    ));
    // Terminal parent (still pointing at its unit).
    let terminal = h.submit_new().await;
    let t = near(AwaitSpec::new(&terminal, 2, now));
    w.answer(200, t.waiting());
    h.drive().await;
    h.apply(&terminal, |r, now| {
        r.fail(now, "MANUAL", "failed by hand", "non_retryable", None)
    })
    .await;
    // Parent waiting on another unit.
    let other = h.submit_new().await;
    let mine = AwaitSpec::new(&other, 2, now);
    w.answer(200, mine.waiting());
    h.drive().await;
    let stray = near(AwaitSpec::new(&other, 2, now));
    assert!(matches!(
        stray.import_into(h.awaits.as_ref()).await,
        ImportOutcome::Imported
    ));
    let before_terminal = h.must_record(&terminal).await;
    let before_other = h.must_record(&other).await;

    h.clock.advance(1_000);
    let s = h.sweep(100).await;
    assert_eq!((s.timed_out, s.failed_parents, s.errors), (3, 0, 0));
    for a in [&orphan, &t, &stray] {
        let i = h.interaction_rec(&a.interaction_id).await.unwrap();
        assert_eq!(
            (i.status.as_str(), i.settle_due_epoch_ms),
            ("TIMED_OUT", None)
        );
        assert_eq!(h.unit_rec(&a.unit_id).await.unwrap().status, "TIMED_OUT");
    }
    let r = h.must_record(&terminal).await;
    assert_eq!(
        (r.version, r.status, r.error_code),
        (
            before_terminal.version,
            ExecutionStatus::Failed,
            Some("MANUAL".into())
        )
    );
    let r = h.must_record(&other).await;
    assert_eq!(
        (r.version, r.status),
        (before_other.version, ExecutionStatus::WaitingExternal)
    );
    assert_eq!(r.await_unit_id.as_deref(), Some(mine.unit_id.as_str()));
    let i = h.interaction_rec(&mine.interaction_id).await.unwrap();
    assert_eq!(i.status, "DISPATCHED");
    assert!(h.dead_letters.all().is_empty());
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn await_07_lost_timed_out_write_lets_the_reread_record_decide() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let id = h.submit_new().await;
    let mut a = AwaitSpec::new(&id, 2, h.clock_ms());
    a.deadline = a.now + 1_000;
    w.answer(200, a.waiting());
    h.drive().await;
    h.clock.advance(1_000);
    let now = h.clock_ms();

    // A completion wins between the sweep's read and its TIMED_OUT write.
    let mut winner = h.interaction_rec(&a.interaction_id).await.unwrap();
    winner.status = "COMPLETED".into();
    winner.version += 1;
    winner.updated_at_epoch_ms = now;
    winner.actor = Some("racer".into());
    winner.response_payload =
        Some(RawValue::from_string(r#"{"approved":true,"note":"raced"}"#.into()).unwrap());
    winner.completed_at_epoch_ms = Some(now);
    winner.settle_due_epoch_ms = Some(now + 60_000);
    let faulty = FaultyAwaits::new(h.awaits.clone());
    *faulty.race_time_out_with.lock().unwrap() = Some(winner);
    let mut deps = h.deps.clone();
    deps.awaits = Arc::new(faulty);
    let s = tpf_core::actions::sweep_once::run(&deps, 100).await;
    assert_eq!((s.released, s.failed_parents, s.errors), (1, 0, 0));

    let i = h.interaction_rec(&a.interaction_id).await.unwrap();
    assert_eq!(i.status, "COMPLETED", "the completion stands");
    assert_eq!(i.actor.as_deref(), Some("racer"));
    assert_eq!(i.settle_due_epoch_ms, None, "settled");
    assert_eq!(h.unit_rec(&a.unit_id).await.unwrap().status, "COMPLETED");
    let r = h.must_record(&id).await;
    assert_eq!(
        (r.status, r.current_step_index),
        (ExecutionStatus::Queued, 3)
    );
    let types: Vec<EventType> = h.events(&id).await.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::WaitingExternal,
            EventType::Resumed
        ]
    );
    assert_eq!(
        h.events(&id).await.pop().unwrap().actor.as_deref(),
        Some("racer")
    );
    assert!(h.dead_letters.all().is_empty());
    assert!(h.queue.drain().contains(&(work_item(&id), 0)));

    // It resumes with the winner's answer.
    w.answer(200, worker_completed(json!([])));
    assert_eq!(
        h.process(&work_item(&id)).await,
        Processed::Committed(ExecutionStatus::Succeeded)
    );
    assert_eq!(
        w.received()[1]["payload"],
        r#"{"approved":true,"note":"raced"}"#
    );
}

#[tokio::test]
async fn await_08_a_terminal_unit_status_is_never_overwritten() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // A unit imported terminal (CANCELLED) with an open interaction: the
    // timeout moves the interaction and fails the parent, not the unit.
    let id = h.submit_new().await;
    let mut a = AwaitSpec::new(&id, 2, h.clock_ms());
    a.deadline = a.now + 1_000;
    let mut s = a.suspension();
    s["unit"]["status"] = json!("CANCELLED");
    w.answer(200, worker_waiting(s));
    h.drive().await;
    assert_eq!(h.unit_rec(&a.unit_id).await.unwrap().status, "CANCELLED");
    h.clock.advance(1_000);
    let sweep = h.sweep(100).await;
    assert_eq!(sweep.failed_parents, 1);
    assert_eq!(
        h.interaction_rec(&a.interaction_id).await.unwrap().status,
        "TIMED_OUT"
    );
    let u = h.unit_rec(&a.unit_id).await.unwrap();
    assert_eq!((u.status.as_str(), u.version), ("CANCELLED", 1));
    assert_eq!(
        h.must_record(&id).await.error_code.as_deref(),
        Some("AWAIT_TIMEOUT")
    );

    // A unit already TIMED_OUT stays so when its interaction completes.
    let id = h.submit_new().await;
    let b = AwaitSpec::new(&id, 2, h.clock_ms());
    w.answer(200, b.waiting());
    h.drive().await;
    let now = h.clock_ms();
    assert_eq!(
        h.awaits
            .finish_unit(TENANT, &b.unit_id, "TIMED_OUT", now)
            .await
            .unwrap(),
        Write::Written
    );
    let done = h
        .complete_json(
            json!({"interactionId": b.interaction_id, "responsePayload": approval_map()}),
        )
        .await;
    assert_eq!(done.ok()["status"], "COMPLETED");
    let u = h.unit_rec(&b.unit_id).await.unwrap();
    assert_eq!((u.status.as_str(), u.version), ("TIMED_OUT", 2));
    assert_eq!(h.must_record(&id).await.status, ExecutionStatus::Queued);

    // The store refuses every overwrite of a terminal unit.
    for terminal in ["COMPLETED", "TIMED_OUT", "FAILED", "CANCELLED", "EXPIRED"] {
        for unit in [&a.unit_id, &b.unit_id] {
            assert_eq!(
                h.awaits
                    .finish_unit(TENANT, unit, terminal, now)
                    .await
                    .unwrap(),
                Write::Lost
            );
        }
    }
    assert_eq!(h.unit_rec(&a.unit_id).await.unwrap().status, "CANCELLED");
    assert_eq!(h.unit_rec(&b.unit_id).await.unwrap().status, "TIMED_OUT");
}

#[tokio::test]
async fn await_09_retry_after_resume_keeps_await_unit_and_rebuilds_the_resume_payload() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let id = h.submit_new().await;
    let item = work_item(&id);
    let mut a = AwaitSpec::new(&id, 1, h.clock_ms());
    a.output_type = "org.pipelineframework.example.ApprovalDecision".into();
    w.answer(200, a.waiting());
    w.answer(503, json!({}));
    w.answer(200, worker_completed(json!([])));
    h.drive().await;
    h.complete_json(json!({"interactionId": a.interaction_id, "responsePayload": approval_map()}))
        .await
        .ok();
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::WaitRetry)]
    );
    let r = h.must_record(&id).await;
    assert_eq!(
        (r.current_step_index, r.attempt, r.await_unit_id.as_deref()),
        (2, 1, Some(a.unit_id.as_str())),
        "T5 keeps the step and awaitUnitId"
    );
    h.queue.drain();
    h.clock.advance(10_000);
    assert_eq!(
        h.process(&item).await,
        Processed::Committed(ExecutionStatus::Succeeded)
    );
    let calls = w.received();
    assert_eq!(calls.len(), 3);
    let (resumed, retried) = (&calls[1], &calls[2]);
    for m in [
        "currentStepIndex",
        "payloadTypeId",
        "payloadEncoding",
        "payload",
    ] {
        assert_eq!(resumed[m], retried[m], "{m}");
    }
    assert_eq!(
        retried["payload"],
        r#"{"approved":true,"note":"Looks good","score":7}"#
    );
    assert_eq!(
        (resumed["attempt"].clone(), retried["attempt"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(retried["transitionKey"], format!("{id}:2:1"));
    assert_eq!(h.must_record(&id).await.await_unit_id, None, "T3 clears it");
}
