//! Failures and retries (EXECUTION.md §3.6–§3.8, §7.4, §7.6, §7.7, §9.2;
//! checklist FAIL-01..10): classification, retry scheduling, terminal
//! failure and the dead-letter sinks `log` and `file`.

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tpf_core::actions::process_work_item;
use tpf_core::domain::dead_letter::DeadLetter;
use tpf_core::domain::execution::{EventType, ExecutionRecord, ExecutionStatus};
use tpf_core::domain::worker_protocol::NON_RETRYABLE_CLASSES;
use tpf_core::ports::DeadLetterSink;
use tpf_core::providers::dead_letters::{FileDeadLetterSink, LogDeadLetterSink};
use tpf_tests::*;

const NON_RETRYABLE: &str = "org.pipelineframework.step.NonRetryableException";

/// Submits one execution and runs its first transition.
async fn run_once(h: &Harness) -> (String, Vec<Processed>) {
    let id = h.submit_new().await;
    (id, h.drive().await)
}

/// A harness with a scripted worker that answers `status`/`text` once, and
/// the record after the first transition.
async fn first_run(env: Vec<(&'static str, String)>, status: u16, text: &str) -> ExecutionRecord {
    let (h, w) = Harness::with_scripted(env).await;
    w.answer_raw(status, text);
    let (id, _) = run_once(&h).await;
    h.must_record(&id).await
}

#[tokio::test]
async fn fail_01_retryable_failure_with_budget_schedules_a_retry() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    w.answer(503, json!({"error": "busy"}));
    let (id, out) = run_once(&h).await;
    assert_eq!(out, vec![Processed::Committed(ExecutionStatus::WaitRetry)]);
    let now = h.clock_ms();
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::WaitRetry);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.version, 2);
    assert_eq!(r.error_code.as_deref(), Some("WORKER_HTTP_ERROR"));
    assert_eq!(
        r.error_message,
        Some(format!(
            "REST transition worker returned HTTP 503 for execution {id} with response body omitted"
        ))
    );
    assert_eq!(r.next_due_epoch_ms, Some(now + 10_000));
    assert_eq!(
        (r.lease_owner.as_deref(), r.lease_expires_epoch_ms),
        (None, 0)
    );
    assert_eq!(r.last_transition_key, Some(format!("{id}:0:0")));
    assert_eq!(r.current_step_index, 0);
    assert!(r.result_payload.is_none());
    let e = h.events(&id).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::RetryScheduled);
    assert_eq!(e.previous_status, Some(ExecutionStatus::Running));
    assert_eq!((e.attempt, e.next_due_at_epoch_ms), (1, Some(now + 10_000)));
    assert_eq!(e.error_code.as_deref(), Some("WORKER_HTTP_ERROR"));
    assert_eq!(e.transition_key, Some(format!("{id}:0:0")));
    assert_eq!(e.terminal_reason, None);
    assert_eq!(h.queue.drain(), vec![(work_item(&id), 10_000)]);
    assert!(h.dead_letters.all().is_empty(), "no terminal write");
    assert_eq!(w.received().len(), 1);
}

/// Runs an always-503 execution to the end; returns the delays it was
/// re-enqueued with and the final record.
async fn retry_delays(env: Vec<(&'static str, String)>) -> (Vec<u64>, ExecutionRecord) {
    let (h, w) = Harness::with_scripted(env).await;
    for _ in 0..10 {
        w.answer(503, json!({}));
    }
    let id = h.submit_new().await;
    let item = work_item(&id);
    let mut delays = Vec::new();
    let mut queued = h.queue.drain();
    loop {
        assert_eq!(queued.len(), 1);
        let (it, delay) = queued.remove(0);
        assert_eq!(it, item);
        h.clock.advance(delay as i64);
        let out = h.process(&item).await;
        let r = h.must_record(&id).await;
        if out == Processed::Committed(ExecutionStatus::Failed) {
            assert!(h.queue.is_empty());
            return (delays, r);
        }
        queued = h.queue.drain();
        let d = queued[0].1;
        assert_eq!(r.next_due_epoch_ms, Some(h.clock_ms() + d as i64));
        delays.push(d);
    }
}

#[tokio::test]
async fn fail_02_retry_delays_default_to_10_20_40_seconds_and_cap_at_30_minutes() {
    let (delays, r) = retry_delays(vec![]).await;
    assert_eq!(delays, [10_000, 20_000, 40_000]);
    assert_eq!((r.status, r.attempt), (ExecutionStatus::Failed, 3));

    let (delays, _) = retry_delays(vec![
        ("TPF_RETRY_DELAY", "PT20M".into()),
        ("TPF_MAX_RETRIES", "4".into()),
    ])
    .await;
    assert_eq!(delays, [1_200_000, 1_800_000, 1_800_000, 1_800_000]);
}

#[tokio::test]
async fn fail_03_retryable_failure_without_budget_fails_with_retry_exhausted() {
    let (h, w) = Harness::with_scripted(vec![("TPF_MAX_RETRIES", "1".into())]).await;
    w.answer(503, json!({}));
    w.answer(503, json!({}));
    let (id, _) = run_once(&h).await;
    assert_eq!(h.must_record(&id).await.attempt, 1);
    h.clock.advance(10_000);
    assert_eq!(
        h.drive_all().await,
        vec![Processed::Committed(ExecutionStatus::Failed)]
    );
    let now = h.clock_ms();
    let r = h.must_record(&id).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.attempt, 1, "T6 keeps the attempt");
    assert_eq!(r.error_code.as_deref(), Some("WORKER_HTTP_ERROR"));
    assert_eq!(r.next_due_epoch_ms, Some(now));
    assert_eq!(r.last_transition_key, Some(format!("{id}:0:1")));
    assert_eq!(r.lease_owner, None);
    let e = h.events(&id).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::Failed);
    assert_eq!(e.terminal_reason.as_deref(), Some("retry_exhausted"));
    assert_eq!(e.error_code.as_deref(), Some("WORKER_HTTP_ERROR"));

    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 1);
    let expected = DeadLetter {
        tenant_id: TENANT.into(),
        execution_id: id.clone(),
        execution_key: r.execution_key.clone(),
        correlation_id: r.execution_key.clone(),
        transition_key: format!("{id}:0:1"),
        resource_type: "tpf.orchestrator.execution".into(),
        resource_name: "OrchestratorService/Run".into(),
        transport: "REST".into(),
        platform: "COMPUTE".into(),
        terminal_status: "FAILED".into(),
        terminal_reason: "retry_exhausted".into(),
        error_code: "WORKER_HTTP_ERROR".into(),
        error_message: r.error_message.clone().unwrap(),
        retryable: true,
        retries_observed: 1,
        created_at_epoch_ms: now,
    };
    assert_eq!(dl[0], expected);
    assert!(h.queue.is_empty());
    assert_eq!(w.received().len(), 2);
}

#[tokio::test]
async fn fail_04_non_retryable_exception_fails_at_once() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    w.answer(
        200,
        worker_failed(NON_RETRYABLE, Some("decision orderId is not a UUID")),
    );
    w.answer(200, worker_failed(NON_RETRYABLE, Some("   ")));
    w.answer(200, worker_failed(NON_RETRYABLE, None));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, out) = run_once(&h).await;
        assert_eq!(out, vec![Processed::Committed(ExecutionStatus::Failed)]);
        ids.push(id);
    }
    let messages = [
        "decision orderId is not a UUID",
        NON_RETRYABLE, // blank message → the class (as TPF)
        NON_RETRYABLE,
    ];
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 3);
    for (i, id) in ids.iter().enumerate() {
        let r = h.must_record(id).await;
        assert_eq!((r.status, r.attempt), (ExecutionStatus::Failed, 0));
        assert_eq!(r.error_code.as_deref(), Some("NonRetryableException"));
        assert_eq!(r.error_message.as_deref(), Some(messages[i]));
        let e = h.events(id).await.pop().unwrap();
        assert_eq!(e.terminal_reason.as_deref(), Some("non_retryable"));
        assert_eq!(e.worker_id.as_deref(), Some(SCRIPTED_ID));
        assert_eq!(&dl[i].execution_id, id);
        assert_eq!(dl[i].terminal_reason, "non_retryable");
        assert!(!dl[i].retryable);
        assert_eq!(dl[i].retries_observed, 0);
        assert_eq!(dl[i].error_code, "NonRetryableException");
        assert_eq!(dl[i].error_message, messages[i]);
        assert_eq!(dl[i].transition_key, format!("{id}:0:0"));
    }
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn fail_05_listed_classes_configured_classes_and_retryable_false_are_non_retryable() {
    let (h, w) = Harness::with_scripted(vec![(
        "TPF_NON_RETRYABLE_FAILURE_CLASSES",
        "com.acme.FatalError, com.acme.OtherError".into(),
    )])
    .await;
    let mut answers: Vec<Value> = NON_RETRYABLE_CLASSES
        .iter()
        .map(|c| worker_failed(c, Some("stop")))
        .collect();
    answers.push(worker_failed("com.acme.FatalError", Some("stop")));
    answers.push(worker_failed("com.acme.OtherError", Some("stop")));
    let mut explicit = worker_failed("java.lang.RuntimeException", Some("stop"));
    explicit["failure"]["retryable"] = json!(false);
    answers.push(explicit);
    // A listed class stays non-retryable even when the worker says true.
    let mut listed = worker_failed(
        "org.pipelineframework.cache.CacheMissException",
        Some("stop"),
    );
    listed["failure"]["retryable"] = json!(true);
    answers.push(listed);
    assert_eq!(
        NON_RETRYABLE_CLASSES.len(),
        9,
        "§7.6 lists NonRetryableException and eight framework classes"
    );
    for a in &answers {
        w.answer(200, a.clone());
        let (id, out) = run_once(&h).await;
        assert_eq!(
            out,
            vec![Processed::Committed(ExecutionStatus::Failed)],
            "{a}"
        );
        let r = h.must_record(&id).await;
        assert_eq!(
            (
                r.error_code.as_deref(),
                r.error_message.as_deref(),
                r.attempt
            ),
            (Some("NonRetryableException"), Some("stop"), 0),
            "{a}"
        );
    }
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), answers.len());
    assert!(dl
        .iter()
        .all(|d| !d.retryable && d.terminal_reason == "non_retryable"));
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn fail_06_other_failure_classes_are_retried_as_transition_worker_failures() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let mut explicit = worker_failed("com.acme.Flaky", Some("try again"));
    explicit["failure"]["retryable"] = json!(true);
    let cases = [
        (
            worker_failed("java.lang.IllegalStateException", Some("boom")),
            "java.lang.IllegalStateException: boom",
        ),
        (
            worker_failed("java.lang.IllegalStateException", None),
            "java.lang.IllegalStateException",
        ),
        (explicit, "com.acme.Flaky: try again"),
        // Not a listed class, although its name resembles one.
        (
            worker_failed(
                "org.pipelineframework.step.NonRetryableExceptionX",
                Some("x"),
            ),
            "org.pipelineframework.step.NonRetryableExceptionX: x",
        ),
    ];
    for (answer, message) in cases {
        w.answer(200, answer.clone());
        let (id, out) = run_once(&h).await;
        assert_eq!(
            out,
            vec![Processed::Committed(ExecutionStatus::WaitRetry)],
            "{answer}"
        );
        let r = h.must_record(&id).await;
        assert_eq!(
            r.error_code.as_deref(),
            Some("TransitionWorkerFailureException")
        );
        assert_eq!(r.error_message.as_deref(), Some(message));
        assert_eq!(r.attempt, 1);
        let e = h.events(&id).await.pop().unwrap();
        assert_eq!(e.event_type, EventType::RetryScheduled);
        assert_eq!(e.worker_id.as_deref(), Some(SCRIPTED_ID));
        assert_eq!(h.queue.drain(), vec![(work_item(&id), 10_000)]);
    }
    // Long messages are cut to 512 Unicode scalar values, never splitting one.
    let long = "\u{1F600}".repeat(600);
    w.answer(200, worker_failed("com.acme.Flaky", Some(&long)));
    let (id, _) = run_once(&h).await;
    let r = h.must_record(&id).await;
    let msg = r.error_message.unwrap();
    assert_eq!(msg.chars().count(), 512);
    assert!(msg.starts_with("com.acme.Flaky: \u{1F600}"));
    assert!(msg.ends_with('\u{1F600}'));
    let e = h.events(&id).await.pop().unwrap();
    assert_eq!(e.error_message.as_deref(), Some(msg.as_str()));
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test]
async fn fail_07_transport_failures_are_classified_and_retried() {
    // HTTP 503, and a redirect (never followed).
    let r = first_run(vec![], 503, "{}").await;
    assert_eq!(r.error_code.as_deref(), Some("WORKER_HTTP_ERROR"));
    let msg = r.error_message.unwrap();
    assert!(
        msg.contains("HTTP 503") && msg.contains(&r.execution_id),
        "{msg}"
    );
    assert_eq!((r.status, r.attempt), (ExecutionStatus::WaitRetry, 1));
    let r = first_run(vec![], 302, "{}").await;
    assert_eq!(r.error_code.as_deref(), Some("WORKER_HTTP_ERROR"));
    assert!(r.error_message.unwrap().contains("HTTP 302"));

    // Malformed JSON, empty body, `null`, a non-object.
    for body in ["{\"outcome\": \"COMPLETED\"", "", "null", "[]", "not json"] {
        let r = first_run(vec![], 200, body).await;
        assert_eq!(
            (r.status, r.error_code.as_deref()),
            (ExecutionStatus::WaitRetry, Some("WORKER_RESPONSE_INVALID")),
            "{body:?}"
        );
        let msg = r.error_message.unwrap_or_default();
        assert!(!msg.is_empty(), "says what was wrong");
        if body.len() > 4 {
            assert!(!msg.contains(body), "never the body: {msg}");
        }
    }

    // Timeout: the worker sleeps past TPF_WORKER_REST_REQUEST_TIMEOUT.
    let env = vec![
        ("TPF_WORKER_REST_REQUEST_TIMEOUT", "PT0.3S".to_string()),
        ("TPF_LEASE_MS", "60000".to_string()),
    ];
    let h = Harness::new(Options {
        env,
        restaurant_worker: false,
    })
    .await;
    let url = serve_worker_fn(|_| async {
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        (200, worker_completed(json!([])).to_string())
    })
    .await;
    h.register_worker("sleepy", &url, &demo_release::DemoSpec::default())
        .await;
    let (id, out) = run_once(&h).await;
    assert_eq!(out, vec![Processed::Committed(ExecutionStatus::WaitRetry)]);
    let r = h.must_record(&id).await;
    assert_eq!(r.error_code.as_deref(), Some("WORKER_TIMEOUT"));
    assert_eq!(
        r.error_message,
        Some(format!(
            "REST transition worker timed out after 300 ms for execution {id}"
        ))
    );

    // Connection refused.
    let h = Harness::new(Options {
        restaurant_worker: false,
        ..Default::default()
    })
    .await;
    h.register_worker(
        "gone",
        &closed_port_url(),
        &demo_release::DemoSpec::default(),
    )
    .await;
    let (id, out) = run_once(&h).await;
    assert_eq!(out, vec![Processed::Committed(ExecutionStatus::WaitRetry)]);
    let r = h.must_record(&id).await;
    assert_eq!(r.error_code.as_deref(), Some("WORKER_UNREACHABLE"));
    assert_eq!(r.attempt, 1);
    assert_eq!(h.queue.drain(), vec![(work_item(&id), 10_000)]);
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test]
async fn fail_08_result_envelope_violating_7_4_is_worker_response_invalid() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let out = envelope("java.lang.String", "\"x\"");
    let a = AwaitSpec::new("irrelevant", 2, h.clock_ms()).suspension();
    let failure = json!({"failureClass": "java.lang.IllegalStateException", "message": "m"});
    let invalid = [
        json!({"outcome": "COMPLETED", "failure": failure}),
        json!({"outcome": "COMPLETED", "awaitSuspension": a}),
        json!({"outcome": "COMPLETED", "terminalOutputPublished": true, "terminalInputPassthrough": true}),
        json!({"outcome": "COMPLETED", "outputPayloads": [out], "terminalInputPassthrough": true}),
        json!({"outcome": "COMPLETED", "outputPayloads": [{"payloadTypeId": " ", "payloadEncoding": ENC, "payload": "1"}]}),
        json!({"outcome": "COMPLETED", "outputPayloads": [{"payloadTypeId": "java.lang.Long", "payloadEncoding": ENC, "payload": 1}]}),
        json!({"outcome": "COMPLETED", "outputPayloads": [{"payloadTypeId": "java.lang.Long", "payload": "1"}]}),
        json!({"outcome": "COMPLETED", "outputPayloads": ["x"]}),
        json!({"outcome": "COMPLETED", "outputPayloads": {"a": 1}}),
        json!({"outcome": "WAITING_EXTERNAL"}),
        json!({"outcome": "WAITING_EXTERNAL", "awaitSuspension": a, "outputPayloads": [out]}),
        json!({"outcome": "WAITING_EXTERNAL", "awaitSuspension": a, "failure": failure}),
        json!({"outcome": "WAITING_EXTERNAL", "awaitSuspension": a, "terminalOutputPublished": true}),
        json!({"outcome": "FAILED"}),
        json!({"outcome": "FAILED", "failure": failure, "outputPayloads": [out]}),
        json!({"outcome": "FAILED", "failure": {"failureClass": " "}}),
        json!({"outcome": "FAILED", "failure": {"message": "no class"}}),
        json!({"outcome": "FAILED", "failure": failure, "terminalInputPassthrough": true}),
        json!({"outcome": "DONE"}),
        json!({"outputPayloads": []}),
    ];
    for body in &invalid {
        w.answer(200, body.clone());
        let (id, out) = run_once(&h).await;
        assert_eq!(
            out,
            vec![Processed::Committed(ExecutionStatus::WaitRetry)],
            "{body}"
        );
        let r = h.must_record(&id).await;
        assert_eq!(
            r.error_code.as_deref(),
            Some("WORKER_RESPONSE_INVALID"),
            "{body}"
        );
        assert_eq!(r.attempt, 1);
        h.queue.drain();
    }
    assert!(h.dead_letters.all().is_empty());
}

#[tokio::test]
async fn fail_09_with_max_retries_zero_the_first_failure_is_terminal() {
    let (h, w) = Harness::with_scripted(vec![("TPF_MAX_RETRIES", "0".into())]).await;
    w.answer(503, json!({}));
    let (id, out) = run_once(&h).await;
    assert_eq!(out, vec![Processed::Committed(ExecutionStatus::Failed)]);
    let r = h.must_record(&id).await;
    assert_eq!((r.status, r.attempt), (ExecutionStatus::Failed, 0));
    assert_eq!(r.error_code.as_deref(), Some("WORKER_HTTP_ERROR"));
    let dl = h.dead_letters.all();
    assert_eq!(dl.len(), 1);
    assert_eq!(
        (
            dl[0].terminal_reason.as_str(),
            dl[0].retryable,
            dl[0].retries_observed
        ),
        ("retry_exhausted", true, 0)
    );
    assert!(h.queue.is_empty());

    // A lease found expired is a retryable failure too: terminal at once.
    let id = h.submit_new().await;
    h.queue.drain();
    h.claim_as(&id, "dispatch-dead").await;
    h.clock.advance(h.deps.settings.lease_ms);
    assert_eq!(
        h.process(&work_item(&id)).await,
        Processed::Committed(ExecutionStatus::Failed)
    );
    let r = h.must_record(&id).await;
    assert_eq!(r.error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(h.dead_letters.all().len(), 2);
    assert!(h.queue.is_empty());
}

/// A `MakeWriter` collecting everything written into one buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs one non-retryable failure through `deps` (a copy of the harness
/// deps with another dead-letter sink); returns the execution id.
async fn fail_with(
    h: &Harness,
    w: &ScriptedWorker,
    deps: &tpf_core::actions::EngineDeps,
) -> String {
    w.answer(
        200,
        worker_failed(NON_RETRYABLE, Some("decision orderId is not a UUID")),
    );
    let id = h.submit_new().await;
    h.queue.drain();
    let msg = serde_json::to_string(&work_item(&id)).unwrap();
    assert_eq!(
        process_work_item::run(deps, &msg).await.unwrap(),
        Processed::Committed(ExecutionStatus::Failed)
    );
    id
}

#[tokio::test]
async fn fail_10_log_sink_writes_execution_moved_to_dlq_with_the_envelope() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let mut deps = h.deps.clone();
    deps.dead_letters = Arc::new(LogDeadLetterSink);
    let buf = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buf.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let id = {
        let _guard = tracing::subscriber::set_default(subscriber);
        fail_with(&h, &w, &deps).await
    };
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let prefix = "Execution moved to DLQ: ";
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(prefix)).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = lines[0];
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&id), "{line}");
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    let envelope: Value = serde_json::Deserializer::from_str(rest)
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(envelope["executionId"], id.as_str());
    assert_eq!(envelope["terminalReason"], "non_retryable");
    assert_eq!(envelope["errorMessage"], "decision orderId is not a UUID");
    assert_eq!(envelope["retryable"], false);
    assert!(h.dead_letters.all().is_empty(), "went to the log sink only");
}

#[tokio::test]
async fn fail_10_file_sink_appends_one_json_line_per_envelope() {
    let (h, w) = Harness::with_scripted(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq").join("dead-letters.jsonl");
    let sink = Arc::new(FileDeadLetterSink::new(path.clone()));
    let mut deps = h.deps.clone();
    deps.dead_letters = sink.clone();
    let first = fail_with(&h, &w, &deps).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    assert_eq!(text.lines().count(), 1);
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["executionId"], first.as_str());
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "tenantId",
            "executionId",
            "executionKey",
            "correlationId",
            "transitionKey",
            "resourceType",
            "resourceName",
            "transport",
            "platform",
            "terminalStatus",
            "terminalReason",
            "errorCode",
            "errorMessage",
            "retryable",
            "retriesObserved",
            "createdAtEpochMs"
        ]
    );
    // A second publication appends; the first line stays as written.
    let letter: DeadLetter = serde_json::from_value(line.clone()).unwrap();
    let mut second = letter.clone();
    second.execution_id = "second".into();
    sink.publish(&second).await.unwrap();
    let text2 = std::fs::read_to_string(&path).unwrap();
    assert!(text2.starts_with(&text));
    let lines: Vec<Value> = text2
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1], serde_json::to_value(&second).unwrap());
    assert!(h.dead_letters.all().is_empty());
}

/// A raw HTTP/1.1 server that sends the status line, headers and the first
/// bytes of a longer body, then stalls.
async fn stalling_body_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"outcome\":";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.flush().await;
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn fail_07_a_body_stalled_past_the_request_timeout_is_worker_timeout() {
    let h = Harness::new(Options {
        env: vec![("TPF_WORKER_REST_REQUEST_TIMEOUT", "PT0.3S".to_string())],
        restaurant_worker: false,
    })
    .await;
    let url = stalling_body_server().await;
    h.register_worker("stalls", &url, &demo_release::DemoSpec::default())
        .await;
    let started = std::time::Instant::now();
    let (id, out) = run_once(&h).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(out, vec![Processed::Committed(ExecutionStatus::WaitRetry)]);
    let r = h.must_record(&id).await;
    assert_eq!(r.error_code.as_deref(), Some("WORKER_TIMEOUT"));
    assert_eq!(
        r.error_message,
        Some(format!(
            "REST transition worker timed out after 300 ms for execution {id}"
        ))
    );
}

#[tokio::test]
async fn fail_07_a_body_over_the_size_limit_is_non_retryable_too_large() {
    let big = worker_completed(json!([envelope(
        "java.lang.String",
        &json!("x".repeat(2_000)).to_string()
    )]));
    let r = first_run(
        vec![("TPF_WORKER_MAX_RESPONSE_BYTES", "1024".into())],
        200,
        &big.to_string(),
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error_code.as_deref(), Some("WORKER_RESPONSE_TOO_LARGE"));
    assert_eq!(r.attempt, 0);
}
