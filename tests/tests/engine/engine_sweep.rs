//! `sweep_once` (EXECUTION.md §5.4, §8.6, §8.7; checklist SWEEP-01..07):
//! await follow-ups first, then due executions; limits and order; faults
//! and concurrent sweeps.

use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tpf_core::domain::execution::{EventType, ExecutionStatus};
use tpf_core::ports::{AwaitStore, ExecutionStore, ImportOutcome, Write};
use tpf_tests::*;

/// Completes `a`'s interaction in the store as §8.5 does, then "crashes"
/// before the unit and parent changes: the follow-up is left to the sweep
/// at `settle_due`.
async fn interrupted_completion(h: &Harness, a: &AwaitSpec, settle_due: i64) {
    let now = h.clock_ms();
    let mut i = h.interaction_rec(&a.interaction_id).await.unwrap();
    let read = i.version;
    i.status = "COMPLETED".into();
    i.version += 1;
    i.updated_at_epoch_ms = now;
    i.actor = Some("kitchen-tablet-3".into());
    i.response_payload =
        Some(RawValue::from_string(r#"{"approved":true,"note":"ok"}"#.into()).unwrap());
    i.completed_at_epoch_ms = Some(now);
    i.settle_due_epoch_ms = Some(settle_due);
    let w = h.awaits.update_interaction(&i, read, now).await.unwrap();
    assert_eq!(w, Write::Written);
}

/// Times `a`'s interaction and unit out in the store as §8.7 steps 1–2 do,
/// then "crashes" before the parent follow-up.
async fn interrupted_timeout(h: &Harness, a: &AwaitSpec) {
    let now = h.clock_ms();
    let mut i = h.interaction_rec(&a.interaction_id).await.unwrap();
    let read = i.version;
    i.status = "TIMED_OUT".into();
    i.version += 1;
    i.updated_at_epoch_ms = now;
    i.settle_due_epoch_ms = Some(now);
    let w = h.awaits.update_interaction(&i, read, now).await.unwrap();
    assert_eq!(w, Write::Written);
    let w = h
        .awaits
        .finish_unit(TENANT, &a.unit_id, "TIMED_OUT", now)
        .await
        .unwrap();
    assert_eq!(w, Write::Written);
}

/// Submits and suspends an execution on a fresh await with `deadline_in`.
async fn waiting(h: &Harness, w: &ScriptedWorker, deadline_in: i64) -> (String, AwaitSpec) {
    let id = h.submit_new().await;
    let mut a = AwaitSpec::new(&id, 2, h.clock_ms());
    a.deadline = a.now + deadline_in;
    w.answer(200, a.waiting());
    assert_eq!(
        h.drive().await,
        vec![Processed::Committed(ExecutionStatus::WaitingExternal)]
    );
    (id, a)
}

fn queued_ids(items: &[(tpf_core::ports::WorkItem, u64)]) -> Vec<String> {
    items
        .iter()
        .map(|(i, d)| {
            assert_eq!(*d, 0, "the sweep enqueues for now");
            i.execution_id.clone()
        })
        .collect()
}

#[tokio::test]
async fn sweep_01_phase_one_runs_before_phase_two() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let (id, a) = waiting(&h, &w, 1_800_000).await;
    interrupted_completion(&h, &a, h.clock_ms()).await;
    let s = h.sweep(100).await;
    assert_eq!((s.follow_ups, s.released, s.enqueued), (1, 1, 1));
    // Released by phase 1 (its own enqueue), then found due by phase 2.
    assert_eq!(queued_ids(&h.queue.drain()), [id.clone(), id.clone()]);
    assert_eq!(h.must_record(&id).await.status, ExecutionStatus::Queued);
}

/// An orphan await (its parent does not exist) of `tenant` with this
/// interaction id and deadline.
async fn orphan(h: &Harness, tenant: &str, interaction_id: &str, deadline: i64) -> AwaitSpec {
    let mut a = AwaitSpec::new(
        &format!("00000000-0000-4000-9000-{}", &interaction_id[24..]),
        2,
        h.clock_ms(),
    );
    a.tenant_id = tenant.into();
    a.interaction_id = interaction_id.into();
    a.deadline = deadline;
    assert!(matches!(
        a.import_into(h.awaits.as_ref()).await,
        ImportOutcome::Imported
    ));
    a
}

async fn status_of(h: &Harness, a: &AwaitSpec) -> String {
    h.awaits
        .get_interaction(&a.tenant_id, &a.interaction_id, h.clock_ms())
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn sweep_01_phase_one_sorts_by_settle_due_tenant_id_before_the_limit() {
    let h = Harness::new(Options {
        restaurant_worker: false,
        ..Default::default()
    })
    .await;
    let t = h.clock_ms();
    let id = |n: u32| format!("00000000-0000-4000-8000-{n:012}");
    let o1 = orphan(&h, "acme", &id(1), t + 300).await;
    let o2 = orphan(&h, "acme", &id(2), t + 100).await;
    let o3 = orphan(&h, "acme", &id(3), t + 200).await;
    let o4 = orphan(&h, "beta", &id(0), t + 100).await;
    let o5 = orphan(&h, "acme", &id(5), t + 100).await;
    h.clock.set(t + 1_000);
    let all = [&o1, &o2, &o3, &o4, &o5];
    for (limit, expect_timed_out) in [
        (2, vec![&o2, &o5]),
        (2, vec![&o2, &o5, &o4, &o3]),
        (2, vec![&o2, &o5, &o4, &o3, &o1]),
    ] {
        let s = h.sweep(limit).await;
        assert!(s.timed_out <= limit as u64);
        for a in all {
            let want = if expect_timed_out
                .iter()
                .any(|b| b.interaction_id == a.interaction_id && b.tenant_id == a.tenant_id)
            {
                "TIMED_OUT"
            } else {
                "DISPATCHED"
            };
            assert_eq!(
                status_of(&h, a).await,
                want,
                "{} {}",
                a.tenant_id,
                a.interaction_id
            );
        }
    }
}

#[tokio::test]
async fn sweep_01_phase_two_sorts_by_next_due_tenant_id_before_the_limit() {
    let (h, _w) = Harness::with_scripted(vec![]).await;
    let t = h.clock_ms();
    let at = |offset: i64| {
        h.clock.set(t + offset);
        h.submit_new()
    };
    let e1 = at(30).await;
    let e2 = at(10).await;
    let e3 = at(20).await;
    let e4 = at(10).await;
    h.clock.set(t + 1_000);
    h.queue.drain();
    let mut ten = [e2.clone(), e4.clone()];
    ten.sort();
    let s = h.sweep(2).await;
    assert_eq!(s.enqueued, 2);
    assert_eq!(queued_ids(&h.queue.drain()), ten);
    h.sweep(3).await;
    assert_eq!(
        queued_ids(&h.queue.drain()),
        [ten[0].clone(), ten[1].clone(), e3.clone()]
    );
    h.sweep(100).await;
    assert_eq!(
        queued_ids(&h.queue.drain()),
        [ten[0].clone(), ten[1].clone(), e3, e1]
    );
}

#[tokio::test]
async fn sweep_02_phase_two_enqueues_due_and_lease_expired_records_without_writing() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    w.answer(503, json!({}));
    let retry = h.submit_new().await;
    h.drive().await;
    let running = h.submit_new().await;
    h.claim_as(&running, "dispatch-dead").await;
    h.clock.advance(h.deps.settings.lease_ms); // retry due, lease expired
    let queued = h.submit_new().await;
    h.queue.drain();
    let ids = [retry.clone(), running.clone(), queued.clone()];
    let mut before = Vec::new();
    for id in &ids {
        before.push((h.must_record(id).await, h.events(id).await.len()));
    }
    assert_eq!(before[0].0.status, ExecutionStatus::WaitRetry);
    assert_eq!(before[1].0.status, ExecutionStatus::Running);
    assert_eq!(before[2].0.status, ExecutionStatus::Queued);

    let s = h.sweep(100).await;
    assert_eq!((s.enqueued, s.errors), (3, 0));
    let got: BTreeSet<String> = queued_ids(&h.queue.drain()).into_iter().collect();
    assert_eq!(got, ids.iter().cloned().collect());
    for (id, (r, n)) in ids.iter().zip(before) {
        let now = h.must_record(id).await;
        assert_eq!((now.version, now.status), (r.version, r.status), "{id}");
        assert_eq!(h.events(id).await.len(), n, "no history event");
    }
    assert_eq!(w.received().len(), 1, "the sweep calls no worker");
}

#[tokio::test]
async fn sweep_03_not_due_leased_waiting_terminal_and_expired_are_never_enqueued() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    w.answer(503, json!({}));
    let not_due = h.submit_new().await;
    h.drive().await;
    let leased = h.submit_new().await;
    h.claim_as(&leased, "dispatch-live").await;
    h.queue.drain();
    let (waiting_id, _) = waiting(&h, &w, 1_800_000).await;
    w.answer(200, worker_completed(json!([])));
    let succeeded = h.submit_new().await;
    h.drive().await;
    w.answer(
        200,
        worker_failed(
            "org.pipelineframework.step.NonRetryableException",
            Some("x"),
        ),
    );
    let failed = h.submit_new().await;
    h.drive().await;
    // Expired but still stored: QUEUED and due, TTL passed.
    let now = h.clock_ms();
    let mut expired = h.must_record(&succeeded).await;
    expired.execution_id = uuid::Uuid::new_v4().to_string();
    expired.status = ExecutionStatus::Queued;
    expired.version = 0;
    expired.next_due_epoch_ms = Some(now - 1_000);
    expired.result_payload = None;
    expired.ttl_epoch_s = now / 1000;
    let created = h
        .executions
        .create(&expired, &expired.submitted_event(), None, now)
        .await
        .unwrap();
    assert_eq!(created, tpf_core::ports::CreateExecution::Created);
    assert!(h
        .executions
        .get(TENANT, &expired.execution_id, now)
        .await
        .unwrap()
        .is_none());
    h.queue.drain();
    let statuses = [
        (&not_due, ExecutionStatus::WaitRetry),
        (&leased, ExecutionStatus::Running),
        (&waiting_id, ExecutionStatus::WaitingExternal),
        (&succeeded, ExecutionStatus::Succeeded),
        (&failed, ExecutionStatus::Failed),
    ];
    for (id, st) in statuses {
        assert_eq!(h.must_record(id).await.status, st);
    }

    let s = h.sweep(100).await;
    assert_eq!((s.enqueued, s.errors), (0, 0));
    assert!(h.queue.is_empty());
    // Still nothing 9 s later (the retry is due at 10 s, the lease at 60 s).
    h.clock.advance(9_999);
    assert_eq!(h.sweep(100).await.enqueued, 0);
    assert!(h.queue.is_empty());
    h.clock.advance(1);
    assert_eq!(h.sweep(100).await.enqueued, 1, "now the retry is due");
    assert_eq!(queued_ids(&h.queue.drain()), [not_due]);
}

#[tokio::test]
async fn sweep_04_empty_batch_or_zero_limit_does_nothing() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    assert_eq!(h.sweep(100).await, SweepSummary::default());
    assert!(h.queue.is_empty());

    // With work present, limit 0 does nothing either.
    let (waiting_id, a) = waiting(&h, &w, 1_000).await;
    let due = h.submit_new().await;
    h.queue.drain();
    h.clock.advance(1_000);
    assert_eq!(h.sweep(0).await, SweepSummary::default());
    assert!(h.queue.is_empty());
    assert_eq!(
        h.interaction_rec(&a.interaction_id).await.unwrap().status,
        "DISPATCHED"
    );
    assert_eq!(
        h.must_record(&waiting_id).await.status,
        ExecutionStatus::WaitingExternal
    );
    assert_eq!(h.must_record(&due).await.status, ExecutionStatus::Queued);
}

#[tokio::test]
async fn sweep_05_a_failing_item_or_phase_does_not_stop_the_rest() {
    let (h, _w) = Harness::with_scripted(vec![]).await;
    let ids = [
        h.submit_new().await,
        h.submit_new().await,
        h.submit_new().await,
    ];
    h.queue.drain();
    let t = h.clock_ms();
    let o1 = orphan(&h, TENANT, "00000000-0000-4000-8000-000000000001", t + 1).await;
    let o2 = orphan(&h, TENANT, "00000000-0000-4000-8000-000000000002", t + 2).await;
    h.clock.advance(10);

    // One failing enqueue in phase 2, one failing read in phase 1.
    let faulty = Arc::new(FaultyAwaits::new(h.awaits.clone()));
    faulty
        .fail_get
        .lock()
        .unwrap()
        .push(o1.interaction_id.clone());
    let mut deps = h.deps.clone();
    deps.awaits = faulty.clone();
    deps.queue = Arc::new(FaultyQueue {
        inner: h.queue.clone(),
        fail_for: std::sync::Mutex::new(vec![ids[1].clone()]),
    });
    let s = tpf_core::actions::sweep_once::run(&deps, 100).await;
    assert_eq!((s.timed_out, s.enqueued, s.errors), (1, 2, 2));
    assert_eq!(status_of(&h, &o1).await, "DISPATCHED");
    assert_eq!(status_of(&h, &o2).await, "TIMED_OUT");
    let got: BTreeSet<String> = queued_ids(&h.queue.drain()).into_iter().collect();
    assert_eq!(got, [ids[0].clone(), ids[2].clone()].into_iter().collect());

    // Phase 1's query fails: phase 2 still runs.
    faulty
        .fail_settle_due
        .store(true, std::sync::atomic::Ordering::SeqCst);
    faulty.fail_get.lock().unwrap().clear();
    let mut deps = h.deps.clone();
    deps.awaits = faulty.clone();
    let s = tpf_core::actions::sweep_once::run(&deps, 100).await;
    assert_eq!((s.timed_out, s.enqueued, s.errors), (0, 3, 1));
    assert_eq!(h.queue.drain().len(), 3);
    assert_eq!(status_of(&h, &o1).await, "DISPATCHED");
    // The next healthy sweep finishes the item that failed.
    let s = h.sweep(100).await;
    assert_eq!(s.timed_out, 1);
    assert_eq!(status_of(&h, &o1).await, "TIMED_OUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweep_06_concurrent_sweeps_make_no_double_state_change() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    const N: usize = 6;
    let mut timing_out = Vec::new();
    let mut completed = Vec::new();
    for _ in 0..N {
        timing_out.push(waiting(&h, &w, 1_000).await);
        let (id, a) = waiting(&h, &w, 1_800_000).await;
        interrupted_completion(&h, &a, h.clock_ms() + 500).await;
        completed.push((id, a));
    }
    h.clock.advance(1_000);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let deps = h.deps.clone();
        tasks.push(tokio::spawn(async move {
            tpf_core::actions::sweep_once::run(&deps, 100).await
        }));
    }
    let mut released = 0;
    let mut failed = 0;
    for t in tasks {
        let s = t.await.unwrap();
        released += s.released;
        failed += s.failed_parents;
    }
    assert_eq!(
        (released, failed),
        (N as u64, N as u64),
        "each exactly once"
    );
    let count = |events: &[tpf_core::domain::execution::HistoryEvent], t: EventType| {
        events.iter().filter(|e| e.event_type == t).count()
    };
    for (id, a) in &timing_out {
        let events = h.events(id).await;
        assert_eq!(count(&events, EventType::Failed), 1, "{id}");
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (0..events.len() as u64).collect::<Vec<_>>());
        assert_eq!(status_of(&h, a).await, "TIMED_OUT");
        assert_eq!(h.unit_rec(&a.unit_id).await.unwrap().version, 2);
    }
    for (id, _) in &completed {
        let events = h.events(id).await;
        assert_eq!(count(&events, EventType::Resumed), 1, "{id}");
        let r = h.must_record(id).await;
        assert_eq!(
            (r.status, r.current_step_index),
            (ExecutionStatus::Queued, 3)
        );
    }
    assert_eq!(h.dead_letters.all().len(), N, "one dead letter each");
}

#[tokio::test]
async fn sweep_07_interrupted_follow_ups_are_finished_after_settle_due() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    // A completion whose parent release was interrupted.
    let (released, a) = waiting(&h, &w, 1_800_000).await;
    interrupted_completion(&h, &a, h.clock_ms() + 60_000).await;
    // A timeout whose parent failure was interrupted.
    let (timed_out, b) = waiting(&h, &w, 1_800_000).await;
    interrupted_timeout(&h, &b).await;

    let s = h.sweep(100).await;
    assert_eq!((s.follow_ups, s.failed_parents, s.released), (1, 1, 0));
    let r = h.must_record(&timed_out).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error_code.as_deref(), Some("AWAIT_TIMEOUT"));
    assert_eq!(
        r.error_message,
        Some(format!("Await interaction timed out: {}", b.interaction_id))
    );
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].terminal_reason, "await_timeout");
    assert_eq!(
        h.interaction_rec(&b.interaction_id)
            .await
            .unwrap()
            .settle_due_epoch_ms,
        None
    );
    assert_eq!(
        h.must_record(&released).await.status,
        ExecutionStatus::WaitingExternal,
        "not before settleDueEpochMs"
    );

    h.clock.advance(59_999);
    assert_eq!(h.sweep(100).await, SweepSummary::default());
    h.clock.advance(1);
    let s = h.sweep(100).await;
    assert_eq!((s.follow_ups, s.released), (1, 1));
    let r = h.must_record(&released).await;
    assert_eq!(
        (r.status, r.current_step_index),
        (ExecutionStatus::Queued, 3)
    );
    assert_eq!(r.await_unit_id.as_deref(), Some(a.unit_id.as_str()));
    let e = h.events(&released).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::Resumed);
    assert_eq!(e.actor.as_deref(), Some("kitchen-tablet-3"));
    assert!(queued_ids(&h.queue.drain()).contains(&released));
    let i = h.interaction_rec(&a.interaction_id).await.unwrap();
    assert_eq!(
        (i.status.as_str(), i.settle_due_epoch_ms),
        ("COMPLETED", None)
    );
    let s = h.sweep(100).await;
    assert_eq!((s.follow_ups, s.released, s.enqueued), (0, 0, 1), "settled");
    h.queue.drain();

    // The released execution resumes with the stored answer.
    w.answer(200, worker_completed(json!([])));
    assert_eq!(
        h.process(&work_item(&released)).await,
        Processed::Committed(ExecutionStatus::Succeeded)
    );
    let last: Value = w.received().pop().unwrap();
    assert_eq!(last["payload"], r#"{"approved":true,"note":"ok"}"#);
    assert_eq!(last["currentStepIndex"], 3);
}
