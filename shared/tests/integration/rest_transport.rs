//! The REST worker transport against a real HTTP worker on 127.0.0.1
//! (`EXECUTION.md` §7): what it sends (WORK-02, WORK-16), how it reads each
//! kind of response (FAIL-07 and §7.7), and the capabilities probe
//! (`RELEASES.md` §6.1).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use tpf_core::config::{SecretRef, SecretSource};
use tpf_core::domain::worker_protocol::{
    verify_signature, ExpectedIdentity, FailureEnvelope, Outcome, TransitionCommand,
    CAPABILITIES_PATH, EXECUTE_PATH, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use tpf_core::ports::{ProbeError, WorkerTransport};
use tpf_core::providers::http::RestWorkerTransport;
use tpf_core::providers::secrets::{CachedSecret, EnvSecretResolver};

const SECRET: &str = "tpf-demo-worker-secret";
const EXECUTION: &str = "7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34";
/// Test vector A's body (`EXECUTION.md` §7.2): the compact command.
const BODY_A: &str = r#"{"tenantId":"acme","executionId":"7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34","pipelineId":"greeting","contractVersion":"v1","releaseVersion":"1.0.0","currentStepIndex":0,"stopBeforeStepIndex":-1,"attempt":0,"resultShape":"SINGLE","executionVersion":1,"transitionKey":"7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34:0:0","traceId":"7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34:0:0","payloadTypeId":"org.pipelineframework.orchestrator.ExecutionInputSnapshot","payloadEncoding":"application/tpf-transition+json","payload":"{\"shape\":\"UNI\",\"payload\":{\"payloadTypeId\":\"java.lang.String\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"\\\"hello\\\"\"},\"items\":[]}"}"#;
const OUTPUT: &str = r#"{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"HELLO\""}"#;
const CAPABILITIES: &str = r#"{"protocolVersion":"1","providerName":"rest","pipelineId":"greeting","contractVersion":"v1","releaseVersion":"1.0.0","artifactId":"greeting-worker","artifactDigest":"sha256:e94a8a17af6867438729f19cdedcd8ea8f30fc0c940f8c08257452dc706b2501","payloadEncodings":["application/tpf-transition-envelope+json"],"workerProtocols":["rest"]}"#;

fn command() -> TransitionCommand {
    TransitionCommand {
        tenant_id: "acme".into(),
        execution_id: EXECUTION.into(),
        pipeline_id: "greeting".into(),
        contract_version: "v1".into(),
        release_version: "1.0.0".into(),
        current_step_index: 0,
        stop_before_step_index: -1,
        attempt: 0,
        result_shape: "SINGLE".into(),
        execution_version: 1,
        transition_key: format!("{EXECUTION}:0:0"),
        trace_id: format!("{EXECUTION}:0:0"),
        payload_type_id: "org.pipelineframework.orchestrator.ExecutionInputSnapshot".into(),
        payload_encoding: "application/tpf-transition+json".into(),
        payload: r#"{"shape":"UNI","payload":{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"hello\""},"items":[]}"#.into(),
    }
}

fn literal_secret() -> CachedSecret {
    CachedSecret::new(
        SecretSource::Literal(SECRET.into()),
        Arc::new(EnvSecretResolver),
    )
}

fn transport_with(
    secret: CachedSecret,
    request_timeout: Duration,
    max: usize,
) -> RestWorkerTransport {
    RestWorkerTransport::new(
        secret,
        Duration::from_secs(2),
        request_timeout,
        max,
        vec!["com.acme.Fatal".into()],
    )
    .unwrap()
}

fn transport() -> RestWorkerTransport {
    transport_with(literal_secret(), Duration::from_secs(10), 5 * 1024 * 1024)
}

/// What the test worker answers.
#[derive(Clone)]
enum Reply {
    /// This status with this JSON body.
    Status(u16, String),
    /// 200 with this body after a delay.
    Slow(Duration, String),
    /// 302 to another path of the same worker.
    Redirect,
}

/// One request the test worker received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The signature headers verify against the fixed protocol path.
    signed: bool,
}

struct Worker {
    reply: Reply,
    seen: Mutex<Vec<Seen>>,
}

impl Worker {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(
    State(worker): State<Arc<Worker>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fixed_path = if method == Method::POST {
        EXECUTE_PATH
    } else {
        CAPABILITIES_PATH
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = match (
        header(TIMESTAMP_HEADER),
        header(NONCE_HEADER),
        header(SIGNATURE_HEADER),
    ) {
        (Some(ts), Some(nonce), Some(sig)) => {
            verify_signature(SECRET, method.as_str(), fixed_path, ts, nonce, &body, sig)
        }
        _ => false,
    };
    worker.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_string(),
        headers: headers.clone(),
        body: body.to_vec(),
        signed,
    });
    let json = |status: u16, body: String| {
        (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    match worker.reply.clone() {
        Reply::Status(status, body) => json(status, body),
        Reply::Slow(delay, body) => {
            tokio::time::sleep(delay).await;
            json(200, body)
        }
        Reply::Redirect => (
            StatusCode::FOUND,
            [(header::LOCATION, "/elsewhere")],
            String::new(),
        )
            .into_response(),
    }
}

/// Serves `reply` on 127.0.0.1; returns the base URL and the recorder.
async fn worker(reply: Reply) -> (String, Arc<Worker>) {
    let state = Arc::new(Worker {
        reply,
        seen: Mutex::new(Vec::new()),
    });
    let router = Router::new().fallback(handle).with_state(state.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), state)
}

async fn ok_worker(body: &str) -> (String, Arc<Worker>) {
    worker(Reply::Status(200, body.to_string())).await
}

/// A port on 127.0.0.1 nothing listens on.
fn closed_port_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A hand-written HTTP/1.1 worker: reads one request, then lets `respond`
/// write whatever it likes on the socket.
async fn raw_worker<F, Fut>(respond: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                read_request(&mut socket).await;
                respond(socket).await;
            });
        }
    });
    format!("http://{addr}")
}

/// Reads the request head and its `content-length` body.
async fn read_request(socket: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed before sending a request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn is_rfc3339_millis_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

// ---------------------------------------------------------------- execute

#[tokio::test]
async fn work_02_the_body_is_the_compact_command_with_exactly_15_members_in_order() {
    let (base, w) = ok_worker(r#"{"outcome":"COMPLETED","outputPayloads":[]}"#).await;
    transport().execute(&base, &command()).await.unwrap();
    let seen = w.seen();
    assert_eq!(seen.len(), 1);
    // Byte for byte test vector A's body: 15 members, this order, compact.
    assert_eq!(String::from_utf8(seen[0].body.clone()).unwrap(), BODY_A);
    let members = serde_json::from_slice::<MemberNames>(&seen[0].body)
        .unwrap()
        .0;
    assert_eq!(
        members,
        [
            "tenantId",
            "executionId",
            "pipelineId",
            "contractVersion",
            "releaseVersion",
            "currentStepIndex",
            "stopBeforeStepIndex",
            "attempt",
            "resultShape",
            "executionVersion",
            "transitionKey",
            "traceId",
            "payloadTypeId",
            "payloadEncoding",
            "payload",
        ]
    );
}

/// The member names of a JSON object, in document order.
struct MemberNames(Vec<String>);

impl<'de> serde::Deserialize<'de> for MemberNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = MemberNames;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MemberNames, A::Error> {
                let mut names = Vec::new();
                while let Some((name, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    names.push(name);
                }
                Ok(MemberNames(names))
            }
        }
        d.deserialize_map(Names)
    }
}

#[tokio::test]
async fn work_16_signature_headers_are_sent_and_verify() {
    let (base, w) = ok_worker(r#"{"outcome":"COMPLETED"}"#).await;
    let t = transport();
    t.execute(&base, &command()).await.unwrap();
    t.execute(&format!("{base}/"), &command()).await.unwrap();
    let seen = w.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, EXECUTE_PATH);
        assert!(s.signed, "signature does not verify");
        assert_eq!(s.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(s.headers[header::ACCEPT], "application/json");
        let ts = s.headers[TIMESTAMP_HEADER].to_str().unwrap();
        assert!(is_rfc3339_millis_utc(ts), "{ts}");
        let nonce = s.headers[NONCE_HEADER].to_str().unwrap();
        let parsed = uuid::Uuid::parse_str(nonce).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(nonce, parsed.hyphenated().to_string());
        let sig = s.headers[SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(sig.len(), 64);
        assert!(sig.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    }
    // A fresh nonce for every call.
    assert_ne!(seen[0].headers[NONCE_HEADER], seen[1].headers[NONCE_HEADER]);
}

#[tokio::test]
async fn work_16_an_endpoint_path_prefix_is_called_but_not_signed() {
    let (base, w) = ok_worker(r#"{"outcome":"COMPLETED"}"#).await;
    transport()
        .execute(&format!("{base}/prefix/"), &command())
        .await
        .unwrap();
    let seen = w.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, format!("/prefix{EXECUTE_PATH}"));
    // The worker verified against the fixed protocol path.
    assert!(seen[0].signed);
}

#[tokio::test]
async fn a_completed_envelope_is_returned_with_outputs_verbatim() {
    let body = format!(
        r#"{{"outcome":"COMPLETED","outputPayloads":[{OUTPUT}],"awaitSuspension":null,"failure":null,"terminalOutputPublished":false,"terminalInputPassthrough":false,"extra":1}}"#
    );
    let (base, _w) = ok_worker(&body).await;
    let r = transport().execute(&base, &command()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.output_payloads.len(), 1);
    assert_eq!(r.output_payloads[0].get(), OUTPUT);
}

#[tokio::test]
async fn a_waiting_external_envelope_is_returned() {
    let suspension = r#"{"tenantId":"acme","executionId":"7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34","unitId":"u1","stepIndex":2,"unit":{},"interactions":[{}]}"#;
    let body = format!(
        r#"{{"outcome":"WAITING_EXTERNAL","outputPayloads":[],"awaitSuspension":{suspension},"failure":null,"terminalOutputPublished":false,"terminalInputPassthrough":false}}"#
    );
    let (base, _w) = ok_worker(&body).await;
    let r = transport().execute(&base, &command()).await.unwrap();
    assert_eq!(r.outcome, Outcome::WaitingExternal);
    assert_eq!(r.await_suspension.unwrap().get(), suspension);
}

#[tokio::test]
async fn a_failed_envelope_is_returned_for_the_caller_to_classify() {
    let (base, _w) = ok_worker(
        r#"{"outcome":"FAILED","outputPayloads":[],"awaitSuspension":null,"failure":{"failureClass":"com.acme.Fatal","message":"no"}}"#,
    )
    .await;
    let t = transport();
    let r = t.execute(&base, &command()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Failed);
    let failure = r.failure.unwrap();
    assert_eq!(
        failure,
        FailureEnvelope {
            failure_class: "com.acme.Fatal".into(),
            message: Some("no".into()),
            retryable: None,
        }
    );
    // com.acme.Fatal is one of this transport's extra non-retryable classes.
    let classified = t.classify_failure(&failure);
    assert_eq!(classified.code, "NonRetryableException");
    assert!(!classified.retryable);
}

#[tokio::test]
async fn fail_07_http_503_is_a_retryable_http_error() {
    let (base, w) = worker(Reply::Status(503, r#"{"secret":"body"}"#.into())).await;
    let f = transport().execute(&base, &command()).await.unwrap_err();
    assert_eq!(f.code, "WORKER_HTTP_ERROR");
    assert!(f.retryable);
    assert_eq!(
        f.message,
        format!("REST transition worker returned HTTP 503 for execution {EXECUTION} with response body omitted")
    );
    assert_eq!(w.seen().len(), 1);
}

#[tokio::test]
async fn fail_07_malformed_json_is_response_invalid() {
    for body in [
        "{not json",
        "",
        "null",
        r#"{"outcome":"COMPLETED","failure":{"failureClass":"X"}}"#,
    ] {
        let (base, _w) = ok_worker(body).await;
        let f = transport().execute(&base, &command()).await.unwrap_err();
        assert_eq!(f.code, "WORKER_RESPONSE_INVALID", "{body}");
        assert!(f.retryable);
        assert!(f.message.contains(EXECUTION));
    }
}

#[tokio::test]
async fn fail_07_a_slow_worker_times_out() {
    let (base, _w) = worker(Reply::Slow(
        Duration::from_millis(1500),
        r#"{"outcome":"COMPLETED"}"#.into(),
    ))
    .await;
    let t = transport_with(literal_secret(), Duration::from_millis(300), 1024);
    let started = Instant::now();
    let f = t.execute(&base, &command()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1400));
    assert_eq!(f.code, "WORKER_TIMEOUT");
    assert!(f.retryable);
    assert_eq!(
        f.message,
        format!("REST transition worker timed out after 300 ms for execution {EXECUTION}")
    );
}

#[tokio::test]
async fn a_body_that_stalls_mid_way_times_out_too() {
    let base = raw_worker(|mut socket: TcpStream| async move {
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"outcome\":")
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let t = transport_with(literal_secret(), Duration::from_millis(300), 1024);
    let f = t.execute(&base, &command()).await.unwrap_err();
    assert_eq!(f.code, "WORKER_TIMEOUT");
}

#[tokio::test]
async fn fail_07_connection_refused_is_unreachable() {
    let f = transport()
        .execute(&closed_port_endpoint(), &command())
        .await
        .unwrap_err();
    assert_eq!(f.code, "WORKER_UNREACHABLE");
    assert!(f.retryable);
    assert!(f.message.contains(EXECUTION), "{}", f.message);
    assert!(!f.message.contains(SECRET));
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_an_http_error() {
    let (base, w) = worker(Reply::Redirect).await;
    let f = transport().execute(&base, &command()).await.unwrap_err();
    assert_eq!(f.code, "WORKER_HTTP_ERROR");
    assert!(f.retryable);
    assert!(f.message.contains("HTTP 302"), "{}", f.message);
    let seen = w.seen();
    assert_eq!(seen.len(), 1, "the redirect was followed");
    assert_eq!(seen[0].path, EXECUTE_PATH);
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large() {
    // Declared length over the limit.
    let big = format!(
        r#"{{"outcome":"COMPLETED","outputPayloads":[],"pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let (base, _w) = ok_worker(&big).await;
    let t = transport_with(literal_secret(), Duration::from_secs(10), 4096);
    let f = t.execute(&base, &command()).await.unwrap_err();
    assert_eq!(f.code, "WORKER_RESPONSE_TOO_LARGE");
    assert!(!f.retryable);

    // The same body at the limit is accepted.
    let t = transport_with(literal_secret(), Duration::from_secs(10), big.len());
    assert!(t.execute(&base, &command()).await.is_ok());
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_once_it_passes_the_limit() {
    let base = raw_worker(|mut socket: TcpStream| async move {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(head).await.is_err() {
            return;
        }
        let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
        // 1 MiB in 1 KiB chunks unless the client hangs up first.
        for _ in 0..1024 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let t = transport_with(literal_secret(), Duration::from_secs(10), 4096);
    let f = t.execute(&base, &command()).await.unwrap_err();
    assert_eq!(f.code, "WORKER_RESPONSE_TOO_LARGE");
    assert!(!f.retryable);
}

fn unresolvable_secret() -> CachedSecret {
    CachedSecret::new(
        SecretSource::Reference(SecretRef::Env(
            "TPF_REST_TRANSPORT_TEST_SECRET_THAT_IS_NOT_SET".into(),
        )),
        Arc::new(EnvSecretResolver),
    )
}

#[tokio::test]
async fn an_unresolvable_secret_fails_without_calling_the_worker() {
    let (base, w) = ok_worker(r#"{"outcome":"COMPLETED"}"#).await;
    let t = transport_with(unresolvable_secret(), Duration::from_secs(10), 1024);
    let f = t.execute(&base, &command()).await.unwrap_err();
    assert_eq!(f.code, "WORKER_SECRET_UNAVAILABLE");
    assert!(f.retryable);
    assert!(w.seen().is_empty());
}

// ----------------------------------------------------------- capabilities

#[tokio::test]
async fn capabilities_probe_is_a_signed_get_and_returns_the_document() {
    let (base, w) = ok_worker(CAPABILITIES).await;
    let t = transport();
    let caps = t.capabilities(&base).await.unwrap();
    assert_eq!(caps.protocol_version, "1");
    assert_eq!(caps.release_version, "1.0.0");
    let expected = ExpectedIdentity {
        pipeline_id: "greeting",
        contract_version: "v1",
        release_version: "1.0.0",
        artifact_id: "greeting-worker",
        artifact_digest: "",
    };
    assert_eq!(caps.check(&expected), Ok(()));

    // With a path prefix: the prefix is called, the fixed path signed.
    t.capabilities(&format!("{base}/prefix/")).await.unwrap();
    let seen = w.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, CAPABILITIES_PATH);
    assert_eq!(seen[1].path, format!("/prefix{CAPABILITIES_PATH}"));
    for s in &seen {
        assert_eq!(s.method, Method::GET);
        assert!(s.body.is_empty());
        assert!(s.signed, "capabilities signature does not verify");
        assert_eq!(s.headers[header::ACCEPT], "application/json");
    }
}

#[tokio::test]
async fn capabilities_probe_http_500_is_unreachable() {
    let (base, _w) = worker(Reply::Status(500, CAPABILITIES.into())).await;
    match transport().capabilities(&base).await {
        Err(ProbeError::Unreachable(why)) => assert!(why.contains("500"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn capabilities_probe_malformed_json_is_unreachable() {
    for body in ["{nope", "", "[]", r#"{"protocolVersion":"1"}"#] {
        let (base, _w) = ok_worker(body).await;
        assert!(
            matches!(
                transport().capabilities(&base).await,
                Err(ProbeError::Unreachable(_))
            ),
            "{body}"
        );
    }
}

#[tokio::test]
async fn capabilities_probe_connection_refused_is_unreachable() {
    assert!(matches!(
        transport().capabilities(&closed_port_endpoint()).await,
        Err(ProbeError::Unreachable(_))
    ));
}

#[tokio::test]
async fn capabilities_probe_with_an_unresolvable_secret_makes_no_call() {
    let (base, w) = ok_worker(CAPABILITIES).await;
    let t = transport_with(unresolvable_secret(), Duration::from_secs(10), 1024);
    assert!(matches!(
        t.capabilities(&base).await,
        Err(ProbeError::SecretUnavailable)
    ));
    assert!(w.seen().is_empty());
}

#[test]
fn zero_timeouts_are_refused() {
    let zero = RestWorkerTransport::new(
        literal_secret(),
        Duration::ZERO,
        Duration::from_secs(1),
        1024,
        vec![],
    );
    assert!(zero.is_err());
}

#[tokio::test]
async fn a_tls_handshake_failure_is_unreachable() {
    // A server answering plain HTTP at once behind an https endpoint: the
    // handshake fails.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let started = Instant::now();
    let f = transport()
        .execute(&format!("https://{addr}"), &command())
        .await
        .unwrap_err();
    assert_eq!(f.code, "WORKER_UNREACHABLE");
    assert!(f.retryable);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed by timeout"
    );
}
