//! Concurrency and faults of the engine (`EXECUTION.md` §3.5–§3.7, §5.1,
//! §5.2, §10.4; `API.md` §2.1 "Concurrent submits with one key"): racing
//! submits with one idempotency key (memory and `file` stores), a work item
//! delivered twice at once, workers that hang, fail, answer garbage or hang
//! up, and a dispatcher that died mid-transition.

use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tpf_core::actions::{process_work_item, sweep_once, EngineDeps};
use tpf_core::domain::execution::{EventType, ExecutionRecord, ExecutionStatus};
use tpf_core::ports::{ExecutionFilter, Write};
use tpf_tests::*;

const SUBMIT: &str = "/tpf/control-plane/tenants/acme/executions";

// ---------------------------------------------------------------------------
// Helpers

/// Submits `customer`'s order (no key) through `router`; returns the new
/// execution's id, with the queue drained.
async fn submit_drained(h: &Harness, router: &axum::Router, customer: &str) -> String {
    let sub = submit_on(router, submit_body(customer, None)).await;
    let id = sub.ok()["executionId"].as_str().unwrap().to_string();
    h.queue.drain();
    id
}

/// `n` submits of the same body (one key, one input) sent at once, each
/// from its own task through `router`.
async fn submit_concurrently(router: &axum::Router, n: usize, key: &str) -> Vec<Resp> {
    let body = submit_body("Ada Lovelace", Some(key));
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (router, body, start) = (router.clone(), body.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                submit_on(&router, body).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Every answer is 200 for one execution, exactly one created it, and all
/// report its creation time; returns its id.
fn assert_one_execution(answers: &[Resp]) -> String {
    for r in answers {
        r.ok();
    }
    let created = answers
        .iter()
        .filter(|r| r.body["duplicate"] == json!(false))
        .count();
    assert_eq!(created, 1, "exactly one duplicate:false");
    assert!(answers
        .iter()
        .all(|r| r.body["duplicate"].is_boolean() && r.body["executionId"].is_string()));
    let ids: BTreeSet<&str> = answers
        .iter()
        .map(|r| r.body["executionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one executionId: {ids:?}");
    let times: BTreeSet<i64> = answers
        .iter()
        .map(|r| r.body["submittedAtEpochMs"].as_i64().unwrap())
        .collect();
    assert_eq!(times.len(), 1, "the original creation time throughout");
    ids.into_iter().next().unwrap().to_string()
}

/// Every live execution of the tenant in `deps`' store.
async fn records(h: &Harness, deps: &EngineDeps) -> Vec<ExecutionRecord> {
    deps.executions
        .list(TENANT, &ExecutionFilter::default(), None, 10_000, h.now())
        .await
        .unwrap()
}

/// The stored history event types of `id` in `deps`' store.
async fn types_in(h: &Harness, deps: &EngineDeps, id: &str) -> Vec<EventType> {
    deps.executions
        .history(TENANT, id, None, 10_000, h.now())
        .await
        .unwrap()
        .unwrap_or_default()
        .iter()
        .map(|e| e.event_type)
        .collect()
}

/// Names of the files in `dir` (temporaries included).
fn file_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// One `process_work_item` run of `id` on `deps`.
async fn process_on(deps: &EngineDeps, id: &str) -> Processed {
    let message = serde_json::to_string(&work_item(id)).unwrap();
    process_work_item::run(deps, &message).await.unwrap()
}

/// [`Harness::drive_all`] on `deps` (which share the harness queue and
/// clock): delivers every queued item, advancing the clock past the longest
/// delay first, until the queue stays empty.
async fn drive_all_on(h: &Harness, deps: &EngineDeps) -> Vec<Processed> {
    let mut out = Vec::new();
    for _ in 0..50 {
        let items = h.queue.drain();
        if items.is_empty() {
            return out;
        }
        let max = items.iter().map(|(_, d)| *d).max().unwrap_or(0);
        h.clock.advance(max as i64);
        for (item, _) in items {
            out.push(process_on(deps, &item.execution_id).await);
        }
    }
    panic!("the queue never drained: {out:?}");
}

/// A harness without workers, with `env`.
async fn bare(env: Vec<(&'static str, String)>) -> Harness {
    Harness::new(Options {
        env,
        restaurant_worker: false,
    })
    .await
}

/// A worker that counts execute calls and holds each one for `hold`
/// before answering `COMPLETED` with no output.
async fn counting_worker(hold: Duration) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let url = serve_worker_fn(move |_| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(hold).await;
            (200, worker_completed(json!([])).to_string())
        }
    })
    .await;
    (url, calls)
}

/// What the raw worker does with one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    /// Reads the request, answers HTTP 500.
    Status500,
    /// Reads the request, answers 200 with a body that is not JSON.
    Garbage,
    /// Reads the request, answers nothing for 3 s.
    Hang,
    /// Accepts and drops the connection at once.
    HangUp,
    /// Reads the request, then drops the connection without a byte.
    HangUpAfterRequest,
}

/// Reads one HTTP/1.1 request (head and `content-length` body).
async fn read_request(socket: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return;
        }
    }
}

/// A raw TCP "worker": connection `n` (from 0) gets `pick(n)`. Returns its
/// URL and the number of connections accepted.
async fn raw_worker(pick: fn(usize) -> Misbehaviour) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let answer = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                match pick(n) {
                    Misbehaviour::HangUp => drop(socket),
                    Misbehaviour::HangUpAfterRequest => {
                        read_request(&mut socket).await;
                        drop(socket);
                    }
                    Misbehaviour::Hang => {
                        read_request(&mut socket).await;
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    Misbehaviour::Status500 => {
                        read_request(&mut socket).await;
                        let text = answer("500 Internal Server Error", "{\"error\":\"boom\"}");
                        let _ = socket.write_all(text.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    Misbehaviour::Garbage => {
                        read_request(&mut socket).await;
                        let text = answer("200 OK", "<html>definitely not a result</html>");
                        let _ = socket.write_all(text.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

/// Engine settings of the fault tests: two retries, 300 ms request timeout.
fn fault_env() -> Vec<(&'static str, String)> {
    vec![
        ("TPF_MAX_RETRIES", "2".to_string()),
        ("TPF_WORKER_REST_REQUEST_TIMEOUT", "PT0.3S".to_string()),
    ]
}

// ---------------------------------------------------------------------------
// SUB: one key, many concurrent submits

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn hundred_concurrent_submits_with_one_key_create_exactly_one_execution() {
    let h = Harness::new(Options::default()).await;
    let answers = submit_concurrently(&h.router, 100, "race-key-1").await;
    let id = assert_one_execution(&answers);

    let all = h.all_records().await;
    assert_eq!(all.len(), 1, "one record");
    assert_eq!(all[0].execution_id, id);
    assert_eq!(all[0].status, ExecutionStatus::Queued);
    assert_eq!(all[0].version, 0, "duplicates write nothing");
    assert_eq!(h.event_types(&id).await, ["SUBMITTED"]);
    let key = tpf_core::domain::execution::execution_key(PIPELINE, "2025.01.0", "race-key-1");
    let entry =
        tpf_core::ports::ExecutionStore::get_key(h.executions.as_ref(), TENANT, &key, h.now())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(entry.execution_id, id);
    // Every queued item names that execution (duplicates may re-kick it).
    let queued = h.drain_queue();
    assert!(!queued.is_empty());
    assert!(
        queued.iter().all(|(i, d)| *i == id && *d == 0),
        "{queued:?}"
    );
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn hundred_concurrent_submits_with_one_key_on_the_file_stores_create_exactly_one() {
    let h = Harness::new(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let deps = h.file_deps(dir.path());
    let router = h.router_with(deps.clone());
    let answers = submit_concurrently(&router, 100, "race-key-file").await;
    let id = assert_one_execution(&answers);

    let all = records(&h, &deps).await;
    assert_eq!(all.len(), 1, "one record");
    assert_eq!(
        (all[0].status, all[0].version),
        (ExecutionStatus::Queued, 0)
    );
    assert_eq!(types_in(&h, &deps, &id).await, [EventType::Submitted]);
    // One execution file and one key file; no temporary left behind.
    let tenant = dir.path().join(TENANT);
    assert_eq!(
        file_names(&tenant.join("executions")),
        [format!("{id}.json")]
    );
    let keys = file_names(&tenant.join("keys"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].starts_with('.'), "{keys:?}");
    // The memory store of the harness saw nothing.
    assert!(h.all_records().await.is_empty());
    // Status through the file-backed router.
    let st = call_on(&router, "GET", &format!("{SUBMIT}/{id}"), CONTROL, None).await;
    assert_eq!(st.ok()["status"], "QUEUED");

    // A second key races too, with one submit of another input mixed in:
    // whichever input wins the key, the other input is 409 and nothing else
    // is created.
    let body = submit_body("Ada Lovelace", Some("race-key-file-2"));
    let other = submit_body("Grace Hopper", Some("race-key-file-2"));
    let odd = 7;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let router = router.clone();
            let b = if i == odd {
                other.clone()
            } else {
                body.clone()
            };
            tokio::spawn(async move { submit_on(&router, b).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let refused: BTreeSet<usize> = (0..20).filter(|i| answers[*i].status != 200).collect();
    for i in &refused {
        answers[*i].err(409, "IDEMPOTENCY_KEY_REUSED");
    }
    let odd_won = !refused.contains(&odd);
    let expected_refused: BTreeSet<usize> = if odd_won {
        (0..20).filter(|i| *i != odd).collect()
    } else {
        BTreeSet::from([odd])
    };
    assert_eq!(refused, expected_refused);
    let ok: Vec<&Resp> = answers.iter().filter(|r| r.status == 200).collect();
    let ids: BTreeSet<&str> = ok
        .iter()
        .map(|r| r.body["executionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one execution per key: {ids:?}");
    assert_eq!(
        ok.iter()
            .filter(|r| r.body["duplicate"] == json!(false))
            .count(),
        1
    );
    assert_eq!(records(&h, &deps).await.len(), 2);
}

// ---------------------------------------------------------------------------
// WORK: one item delivered twice at once

/// Delivers `id` `n` times at once on `deps` while the worker holds the
/// call; exactly one delivery dispatches.
async fn deliver_concurrently(deps: &EngineDeps, id: &str, n: usize) -> Vec<Processed> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (deps, id) = (deps.clone(), id.to_string());
            tokio::spawn(async move { process_on(&deps, &id).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn double_delivery_dispatches_once(h: &Harness, deps: &EngineDeps, calls: &AtomicUsize) {
    let router = h.router_with(deps.clone());
    let id = submit_drained(h, &router, "Ada").await;

    // Two deliveries of the same message at the same moment.
    let out = deliver_concurrently(deps, &id, 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one worker call: {out:?}");
    let committed = out
        .iter()
        .filter(|o| **o == Processed::Committed(ExecutionStatus::Succeeded))
        .count();
    assert_eq!(committed, 1, "{out:?}");
    assert_eq!(
        out.iter().filter(|o| **o == Processed::NotClaimed).count(),
        1,
        "{out:?}"
    );
    assert_eq!(
        types_in(h, deps, &id).await,
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::Succeeded
        ]
    );

    // Eight at once.
    let id = submit_drained(h, &router, "Bob").await;
    let out = deliver_concurrently(deps, &id, 8).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one more worker call: {out:?}"
    );
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Processed::Committed(_)))
            .count(),
        1,
        "{out:?}"
    );
    assert!(out
        .iter()
        .all(|o| matches!(o, Processed::Committed(_) | Processed::NotClaimed)));
    assert_eq!(types_in(h, deps, &id).await.len(), 3);

    // Redeliveries while the first dispatcher is inside the worker call
    // (its lease holds) do nothing; after its commit, nothing either.
    let id = submit_drained(h, &router, "Cy").await;
    let first = {
        let (deps, id) = (deps.clone(), id.clone());
        tokio::spawn(async move { process_on(&deps, &id).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker was never called"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..5 {
        assert_eq!(process_on(deps, &id).await, Processed::NotClaimed);
    }
    let r = deps
        .executions
        .get(TENANT, &id, h.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, ExecutionStatus::Running, "still leased");
    assert_eq!(
        first.await.unwrap(),
        Processed::Committed(ExecutionStatus::Succeeded)
    );
    assert_eq!(process_on(deps, &id).await, Processed::NotClaimed);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(types_in(h, deps, &id).await.len(), 3);
    assert!(
        h.queue.is_empty(),
        "a lost claim of a leased record enqueues nothing"
    );
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn one_item_delivered_concurrently_dispatches_the_transition_once() {
    let h = bare(vec![]).await;
    let (url, calls) = counting_worker(Duration::from_millis(300)).await;
    h.register_worker("counting", &url, &DemoSpec::default())
        .await;
    let deps = h.deps.clone();
    double_delivery_dispatches_once(&h, &deps, &calls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn one_item_delivered_concurrently_on_the_file_stores_dispatches_once() {
    let h = bare(vec![]).await;
    let (url, calls) = counting_worker(Duration::from_millis(300)).await;
    h.register_worker("counting", &url, &DemoSpec::default())
        .await;
    let dir = tempfile::tempdir().unwrap();
    let deps = h.file_deps(dir.path());
    double_delivery_dispatches_once(&h, &deps, &calls).await;
}

// ---------------------------------------------------------------------------
// FAIL: misbehaving workers end in FAILED with a dead letter, never stuck

/// Submits one execution on a harness whose only worker is `url`, checks
/// the first run schedules a retry with `code`, then drives it to the end:
/// `FAILED` with `retry_exhausted` after 1 + 2 runs and one dead letter.
async fn fails_after_retries(h: &Harness, code: &str) -> ExecutionRecord {
    let id = h.submit_new().await;
    assert_eq!(
        h.drive().await,
        [Processed::Committed(ExecutionStatus::WaitRetry)],
        "{code}"
    );
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::WaitRetry, "{code}");
    assert_eq!(r.error_code.as_deref(), Some(code));
    assert_eq!(r.attempt, 1);
    assert_eq!(r.lease_owner, None);
    assert!(!r.error_message.as_deref().unwrap_or_default().is_empty());
    assert!(
        r.error_message.as_deref().unwrap().contains(&id),
        "{:?}",
        r.error_message
    );

    let out = h.drive_all().await;
    assert_eq!(
        out,
        [
            Processed::Committed(ExecutionStatus::WaitRetry),
            Processed::Committed(ExecutionStatus::Failed)
        ],
        "{code}"
    );
    assert!(h.queue.is_empty(), "nothing left to run");
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::Failed, "{code}");
    assert_eq!((r.error_code.as_deref(), r.attempt), (Some(code), 2));
    let types: Vec<EventType> = h.events(&id).await.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::RetryScheduled,
            EventType::Claimed,
            EventType::RetryScheduled,
            EventType::Claimed,
            EventType::Failed
        ],
        "{code}"
    );
    let last = h.events(&id).await.pop().unwrap();
    assert_eq!(last.terminal_reason.as_deref(), Some("retry_exhausted"));
    let letters = h.dead_letters.all();
    assert_eq!(letters.len(), 1, "{code}");
    let dl = &letters[0];
    assert_eq!(dl.execution_id, id);
    assert_eq!(dl.terminal_status, "FAILED");
    assert_eq!(dl.terminal_reason, "retry_exhausted");
    assert_eq!(dl.error_code, code);
    assert!(dl.retryable);
    assert_eq!(dl.retries_observed, 2);
    assert_eq!(dl.transition_key, format!("{id}:0:2"));
    r
}

#[tokio::test]
async fn a_worker_hanging_past_its_timeout_is_retried_then_failed() {
    let h = bare(fault_env()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let url = serve_worker_fn(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (200, worker_completed(json!([])).to_string())
        }
    })
    .await;
    h.register_worker("hangs", &url, &DemoSpec::default()).await;
    let started = std::time::Instant::now();
    let r = fails_after_retries(&h, "WORKER_TIMEOUT").await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "never waits the 3 s"
    );
    assert_eq!(
        r.error_message,
        Some(format!(
            "REST transition worker timed out after 300 ms for execution {}",
            r.execution_id
        ))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_worker_answering_500_is_retried_then_failed() {
    let h = bare(fault_env()).await;
    let (url, accepted) = raw_worker(|_| Misbehaviour::Status500).await;
    h.register_worker("breaks", &url, &DemoSpec::default())
        .await;
    let r = fails_after_retries(&h, "WORKER_HTTP_ERROR").await;
    assert_eq!(
        r.error_message,
        Some(format!(
            "REST transition worker returned HTTP 500 for execution {} with response body omitted",
            r.execution_id
        ))
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_worker_answering_garbage_is_retried_then_failed() {
    let h = bare(fault_env()).await;
    let (url, accepted) = raw_worker(|_| Misbehaviour::Garbage).await;
    h.register_worker("babbles", &url, &DemoSpec::default())
        .await;
    let r = fails_after_retries(&h, "WORKER_RESPONSE_INVALID").await;
    let msg = r.error_message.unwrap();
    assert!(
        !msg.contains("definitely not a result"),
        "never the body: {msg}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 3);

    // Through axum too: 200 with truncated JSON and with `{}`.
    for text in ["{\"outcome\":\"COMPLETED\",\"outputPayloads\":[", "{}"] {
        let h = bare(fault_env()).await;
        let t = text.to_string();
        let url = serve_worker_fn(move |_| {
            let t = t.clone();
            async move { (200, t) }
        })
        .await;
        h.register_worker("babbles", &url, &DemoSpec::default())
            .await;
        fails_after_retries(&h, "WORKER_RESPONSE_INVALID").await;
    }
}

#[tokio::test]
async fn a_worker_closing_the_connection_without_answering_is_retried_then_failed() {
    for mode in [Misbehaviour::HangUp, Misbehaviour::HangUpAfterRequest] {
        let h = bare(fault_env()).await;
        let (url, accepted) = raw_worker(match mode {
            Misbehaviour::HangUp => |_| Misbehaviour::HangUp,
            _ => |_| Misbehaviour::HangUpAfterRequest,
        })
        .await;
        h.register_worker("hangs-up", &url, &DemoSpec::default())
            .await;
        let r = fails_after_retries(&h, "WORKER_UNREACHABLE").await;
        let msg = r.error_message.unwrap();
        assert!(
            msg.starts_with(&format!(
                "REST transition worker unreachable for execution {}: ",
                r.execution_id
            )),
            "{mode:?}: {msg}"
        );
        assert!(accepted.load(Ordering::SeqCst) >= 3, "{mode:?}");
    }
}

#[tokio::test]
async fn executions_facing_every_kind_of_misbehaviour_all_end_terminal() {
    let h = bare(fault_env()).await;
    // Connection n misbehaves in the n-th way, round robin.
    let (url, accepted) = raw_worker(|n| match n % 5 {
        0 => Misbehaviour::Status500,
        1 => Misbehaviour::Garbage,
        2 => Misbehaviour::Hang,
        3 => Misbehaviour::HangUp,
        _ => Misbehaviour::HangUpAfterRequest,
    })
    .await;
    h.register_worker("chaos", &url, &DemoSpec::default()).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = h.submit(submit_body(&format!("Customer {i}"), None)).await;
        ids.push(r.ok()["executionId"].as_str().unwrap().to_string());
    }
    h.drive_all().await;
    assert!(h.queue.is_empty());
    let codes = [
        "WORKER_HTTP_ERROR",
        "WORKER_RESPONSE_INVALID",
        "WORKER_TIMEOUT",
        "WORKER_UNREACHABLE",
    ];
    for id in &ids {
        let r = h.must_record(id).await;
        assert_eq!(r.status, ExecutionStatus::Failed, "{id} is stuck: {r:?}");
        assert_eq!(r.attempt, 2);
        assert!(codes.contains(&r.error_code.as_deref().unwrap()), "{r:?}");
        let events = h.events(id).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.event_type == EventType::RetryScheduled)
                .count(),
            2
        );
        assert!(events
            .iter()
            .filter(|e| e.event_type == EventType::RetryScheduled)
            .all(|e| codes.contains(&e.error_code.as_deref().unwrap())));
    }
    let letters = h.dead_letters.all();
    assert_eq!(letters.len(), ids.len());
    let lettered: BTreeSet<&str> = letters.iter().map(|d| d.execution_id.as_str()).collect();
    assert_eq!(lettered, ids.iter().map(String::as_str).collect());
    assert!(accepted.load(Ordering::SeqCst) >= 30);
}

// ---------------------------------------------------------------------------
// LEASE: a dispatcher killed mid-transition

async fn killed_dispatcher_is_recovered(h: &Harness, deps: &EngineDeps) {
    let router = h.router_with(deps.clone());
    let id = submit_drained(h, &router, "Ada").await;

    // The dying dispatcher: its claim (T2) is written, then nothing.
    let lease = deps.settings.lease_ms;
    let claimed_at = h.now();
    let r = deps
        .executions
        .get(TENANT, &id, claimed_at)
        .await
        .unwrap()
        .unwrap();
    let (claimed, event) = r.claim(claimed_at, "dispatch-killed", lease);
    let w = deps
        .executions
        .update(&claimed, r.version, &event, claimed_at)
        .await
        .unwrap();
    assert_eq!(w, Write::Written);
    drop(claimed);

    // While the lease holds: the sweep enqueues nothing, a delivery does nothing.
    h.clock.advance(lease - 1);
    let s = sweep_once::run(deps, 100).await;
    assert_eq!((s.enqueued, s.errors), (0, 0), "{s:?}");
    assert!(h.queue.is_empty());
    assert_eq!(process_on(deps, &id).await, Processed::NotClaimed);
    let st = call_on(&router, "GET", &format!("{SUBMIT}/{id}"), CONTROL, None).await;
    assert_eq!(st.ok()["status"], "RUNNING");

    // The lease passes: the sweep enqueues it, the next run records
    // LEASE_EXPIRED as a retryable failure without calling the worker.
    h.clock.advance(1);
    let s = sweep_once::run(deps, 100).await;
    assert_eq!((s.enqueued, s.errors), (1, 0), "{s:?}");
    assert_eq!(h.queue.drain(), [(work_item(&id), 0)]);
    assert_eq!(
        process_on(deps, &id).await,
        Processed::Committed(ExecutionStatus::WaitRetry)
    );
    let now = h.now();
    let r = deps
        .executions
        .get(TENANT, &id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, ExecutionStatus::WaitRetry);
    assert_eq!(r.error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(
        r.error_message.as_deref(),
        Some("previous dispatcher lease expired")
    );
    assert_eq!(r.attempt, 1);
    assert_eq!(r.next_due_epoch_ms, Some(now + 10_000));
    assert_eq!(r.lease_owner, None);
    assert_eq!(h.queue.drain(), [(work_item(&id), 10_000)]);

    // Early: the sweep does not enqueue it; after the retry delay it runs
    // to the await with the example worker.
    h.clock.advance(9_999);
    assert_eq!(sweep_once::run(deps, 100).await.enqueued, 0);
    h.clock.advance(1);
    assert_eq!(
        process_on(deps, &id).await,
        Processed::Committed(ExecutionStatus::WaitingExternal)
    );
    let r = deps
        .executions
        .get(TENANT, &id, h.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.status, r.current_step_index),
        (ExecutionStatus::WaitingExternal, 2)
    );
    assert_eq!((r.error_code, r.attempt), (None, 1));
    assert_eq!(
        types_in(h, deps, &id).await,
        [
            EventType::Submitted,
            EventType::Claimed,
            EventType::Claimed,
            EventType::RetryScheduled,
            EventType::Claimed,
            EventType::WaitingExternal
        ]
    );
    let events = deps
        .executions
        .history(TENANT, &id, None, 100, h.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events[1].lease_owner.as_deref(), Some("dispatch-killed"));
    assert_eq!(events[2].previous_status, Some(ExecutionStatus::Running));
    assert_ne!(events[2].lease_owner.as_deref(), Some("dispatch-killed"));
    assert_eq!(events[3].error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(events[4].transition_key, Some(format!("{id}:0:1")));
    assert!(h.dead_letters.all().is_empty());
    // Nothing further is due.
    assert_eq!(sweep_once::run(deps, 100).await.enqueued, 0);
    assert!(drive_all_on(h, deps).await.is_empty());
}

#[tokio::test]
async fn a_dispatcher_killed_mid_transition_is_recovered_after_its_lease() {
    let h = Harness::new(Options::default()).await;
    let deps = h.deps.clone();
    killed_dispatcher_is_recovered(&h, &deps).await;
}

#[tokio::test]
async fn a_dispatcher_killed_mid_transition_on_the_file_stores_is_recovered() {
    let h = Harness::new(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let deps = h.file_deps(dir.path());
    killed_dispatcher_is_recovered(&h, &deps).await;
}

#[tokio::test]
async fn a_dispatcher_killed_at_every_retry_still_ends_failed() {
    // Each run dies after its claim: LEASE_EXPIRED counts an attempt, so the
    // execution cannot loop forever (EXECUTION.md §3.5, "Differs from TPF").
    let h = bare(vec![("TPF_MAX_RETRIES", "2".to_string())]).await;
    let (url, calls) = counting_worker(Duration::from_millis(0)).await;
    h.register_worker("never-reached", &url, &DemoSpec::default())
        .await;
    let id = h.submit_new().await;
    h.queue.drain();
    let lease = h.deps.settings.lease_ms;
    for attempt in 0..3u64 {
        let r = h.must_record(&id).await;
        let due = r.next_due_epoch_ms.unwrap();
        if due > h.now() {
            h.clock.set(due);
        }
        assert_eq!(r.attempt, attempt);
        h.claim_as(&id, &format!("dispatch-killed-{attempt}")).await;
        h.clock.advance(lease);
        let s = h.sweep(100).await;
        assert_eq!(s.enqueued, 1);
        h.queue.drain();
        let expected = if attempt < 2 {
            ExecutionStatus::WaitRetry
        } else {
            ExecutionStatus::Failed
        };
        assert_eq!(
            h.process(&work_item(&id)).await,
            Processed::Committed(expected)
        );
        h.queue.drain();
    }
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the worker is never called"
    );
    let letters = h.dead_letters.all();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].terminal_reason, "retry_exhausted");
    assert_eq!(letters[0].error_code, "LEASE_EXPIRED");
}
