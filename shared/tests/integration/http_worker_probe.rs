//! WL-12: the capability probe at registration (`RELEASES.md` §6.1), against
//! a real HTTP worker that checks the request signature.

use crate::support;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tpf_core::config::{SecretRef, SecretSource};
use tpf_core::domain::worker_protocol::{verify_signature, CAPABILITIES_PATH};
use tpf_core::providers::http::RestWorkerTransport;
use tpf_core::providers::secrets::{CachedSecret, EnvSecretResolver};

const SECRET: &str = "probe-secret";
const DIGEST: &str = "sha256:e94a8a17af6867438729f19cdedcd8ea8f30fc0c940f8c08257452dc706b2501";

/// A worker answering the capabilities probe with a scripted (status, body).
#[derive(Clone)]
struct FakeWorker {
    answer: Arc<Mutex<(u16, String)>>,
    calls: Arc<AtomicUsize>,
    /// How long each probe waits before answering.
    delay: Arc<Mutex<Duration>>,
}

impl FakeWorker {
    async fn start(status: u16, body: Value) -> (FakeWorker, String) {
        let w = FakeWorker {
            answer: Arc::new(Mutex::new((status, body.to_string()))),
            calls: Arc::new(AtomicUsize::new(0)),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
        };
        let me = w.clone();
        let app = axum::Router::new().route(
            CAPABILITIES_PATH,
            axum::routing::get(move |headers: HeaderMap| {
                let me = me.clone();
                async move {
                    me.calls.fetch_add(1, Ordering::SeqCst);
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let signed = verify_signature(
                        SECRET,
                        "GET",
                        CAPABILITIES_PATH,
                        &h("x-tpf-worker-timestamp"),
                        &h("x-tpf-worker-nonce"),
                        b"",
                        &h("x-tpf-worker-signature"),
                    );
                    if !signed {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let delay = *me.delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    let (s, b) = me.answer.lock().unwrap().clone();
                    (StatusCode::from_u16(s).unwrap(), b)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (w, url)
    }
}

fn caps(release: &str, digest: &str) -> Value {
    json!({"protocolVersion": "1", "providerName": "rest", "pipelineId": "restaurant-approval",
           "contractVersion": "sha256:4be1f0c27a9d", "releaseVersion": release,
           "artifactId": "restaurant-approval-monolith", "artifactDigest": digest,
           "payloadEncodings": ["application/tpf-transition-envelope+json"], "workerProtocols": ["rest"]})
}

fn transport(secret: SecretSource) -> Arc<dyn tpf_core::ports::WorkerTransport> {
    Arc::new(
        RestWorkerTransport::new(
            CachedSecret::new(secret, Arc::new(EnvSecretResolver)),
            Duration::from_secs(2),
            Duration::from_secs(5),
            1 << 20,
            vec![],
        )
        .unwrap(),
    )
}

fn app_with_probe() -> TestApp {
    worker_app(Options {
        probe: Some(transport(SecretSource::Literal(SECRET.into()))),
        ..Options::default()
    })
}

fn body(endpoint: &str, protocol: &str) -> Value {
    json!({"workerId": "kitchen-1", "contractVersion": "sha256:4be1f0c27a9d", "releaseVersion": "2025.01.0",
           "protocol": protocol, "endpoint": endpoint, "artifactId": "restaurant-approval-monolith", "artifactDigest": DIGEST})
}

async fn register(app: &TestApp, b: &Value) -> Resp {
    req("POST", &format!("{WORKERS}/register"))
        .admin()
        .json(b)
        .send(app)
        .await
}

async fn listed(app: &TestApp) -> usize {
    req("GET", WORKERS)
        .admin()
        .send(app)
        .await
        .assert_ok()
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn wl12_matching_capabilities_register_the_worker() {
    let app = app_with_probe();
    let (w, url) = FakeWorker::start(200, caps("2025.01.0", DIGEST)).await;
    assert_eq!(
        register(&app, &body(&url, "rest")).await.assert_ok()["state"],
        "HEALTHY"
    );
    assert_eq!(w.calls.load(Ordering::SeqCst), 1, "one signed probe");
    // A blank digest on either side matches.
    let (_, blank) = FakeWorker::start(200, caps("2025.01.0", "")).await;
    register(&app, &body(&blank, "rest")).await.assert_ok();
}

#[tokio::test]
async fn wl12_another_identity_is_409_and_nothing_is_stored() {
    let other_digest = format!("sha256:{}", "0".repeat(64));
    let with = |member: &str, value: &str| {
        let mut c = caps("2025.01.0", DIGEST);
        c[member] = json!(value);
        c
    };
    for (answer, member) in [
        (caps("2025.02.0", DIGEST), "releaseVersion"),
        (caps("2025.01.0", &other_digest), "artifactDigest"),
        (
            with("contractVersion", "sha256:000000000000"),
            "contractVersion",
        ),
        (with("pipelineId", "another-pipeline"), "pipelineId"),
    ] {
        let app = app_with_probe();
        let (w, url) = FakeWorker::start(200, answer).await;
        let r = register(&app, &body(&url, "rest")).await;
        r.assert_error(409, "WORKER_CAPABILITIES_MISMATCH");
        assert!(
            r.body["message"].as_str().unwrap().contains(member),
            "{}",
            r.body
        );
        assert_eq!(listed(&app).await, 0);
        assert_eq!(w.calls.load(Ordering::SeqCst), 1, "{member}: one probe");
    }
}

#[tokio::test]
async fn wl12_a_probe_that_times_out_is_503_worker_unreachable_and_nothing_is_stored() {
    let app = app_with_probe();
    // A worker that would answer a matching identity, but too late.
    let (w, url) = FakeWorker::start(200, caps("2025.01.0", DIGEST)).await;
    *w.delay.lock().unwrap() = Duration::from_secs(9);
    let started = std::time::Instant::now();
    let r = register(&app, &body(&url, "rest")).await;
    let waited = started.elapsed();
    r.assert_error(503, "WORKER_UNREACHABLE");
    assert!(
        r.body["message"].as_str().unwrap().contains("timed out"),
        "{}",
        r.body
    );
    assert_eq!(r.headers["retry-after"], "5");
    // The probe's fixed 5 s request timeout (RELEASES.md §6.1), not the
    // worker's answer, ended the wait.
    assert!(
        waited >= Duration::from_millis(4_900) && waited < Duration::from_secs(8),
        "waited {waited:?}"
    );
    assert_eq!(w.calls.load(Ordering::SeqCst), 1, "the probe was sent");
    assert_eq!(listed(&app).await, 0);
    // Answering in time, the same worker registers.
    *w.delay.lock().unwrap() = Duration::ZERO;
    assert_eq!(
        register(&app, &body(&url, "rest")).await.assert_ok()["state"],
        "HEALTHY"
    );
    assert_eq!(listed(&app).await, 1);
}

#[tokio::test]
async fn wl12_no_valid_answer_is_503_worker_unreachable_and_nothing_is_stored() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (_, failing) = FakeWorker::start(500, json!({})).await;
    let (w, malformed) = FakeWorker::start(200, json!("x")).await;
    *w.answer.lock().unwrap() = (200, "{not json".into());
    for url in [closed, failing, malformed] {
        let app = app_with_probe();
        let r = register(&app, &body(&url, "rest")).await;
        r.assert_error(503, "WORKER_UNREACHABLE");
        assert_eq!(r.headers["retry-after"], "5");
        assert_eq!(listed(&app).await, 0);
    }
}

#[tokio::test]
async fn wl12_unresolvable_secret_is_503_dependency_unavailable() {
    let app = worker_app(Options {
        probe: Some(transport(SecretSource::Reference(SecretRef::Env(
            "TPF_TEST_UNSET_PROBE_SECRET".into(),
        )))),
        ..Options::default()
    });
    let (w, url) = FakeWorker::start(200, caps("2025.01.0", DIGEST)).await;
    register(&app, &body(&url, "rest"))
        .await
        .assert_error(503, "DEPENDENCY_UNAVAILABLE");
    assert_eq!(w.calls.load(Ordering::SeqCst), 0);
    assert_eq!(listed(&app).await, 0);
}

#[tokio::test]
async fn wl12_check_off_or_protocol_local_makes_no_call() {
    let (w, url) = FakeWorker::start(500, json!({})).await;
    let off = worker_app(Options::default());
    register(&off, &body(&url, "rest")).await.assert_ok();
    let on = app_with_probe();
    register(&on, &body(&url, "local")).await.assert_ok();
    assert_eq!(w.calls.load(Ordering::SeqCst), 0);
}
