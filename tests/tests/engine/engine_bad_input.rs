//! Bad input at the control-plane function (`API.md` §1.1–§1.9, §2): every
//! client-caused error code of the table of §1.8 that the control-plane
//! routes can produce, each reached through the router with its status,
//! exactly `{code, message}`, `X-Request-Id` and the header its status
//! requires; then a fuzz-ish run of malformed bodies, paths and queries
//! against every control-plane route: never a 500, every error body
//! `{code, message}`.
//!
//! Many of these codes are also checked where their endpoint is tested
//! (`engine_submit`, `engine_complete`, …); this file is the one place that
//! proves each is reachable.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

use tpf_core::actions::EngineDeps;
use tpf_core::config::{SecretRef, SecretSource};
use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
use tpf_core::domain::execution::{ExecutionRecord, ExecutionStatus, HistoryEvent, KeyEntry};
use tpf_core::error::StoreError;
use tpf_core::ports::{
    AwaitStore, CreateExecution, ExecutionFilter, ExecutionStore, ImportOutcome, PendingFilter,
    Write,
};
use tpf_core::providers::secrets::{CachedSecret, EnvSecretResolver};
use tpf_tests::*;

const CP: &str = "/tpf/control-plane/tenants/acme";
const NON_RETRYABLE: &str = "org.pipelineframework.step.NonRetryableException";
const ID_RULE: &str = "must be 1-128 characters of A-Z a-z 0-9 . _ : @ -, start with a letter or digit and not contain '..'";

/// Every code of the table of `API.md` §1.8 with its status.
const TABLE: &[(&str, u16)] = &[
    ("INVALID_JSON", 400),
    ("INVALID_ID", 400),
    ("MISSING_FIELD", 400),
    ("INVALID_FIELD", 400),
    ("INVALID_PAYLOAD", 400),
    ("INVALID_PARAMETER", 400),
    ("INVALID_CURSOR", 400),
    ("IDEMPOTENCY_KEY_REQUIRED", 400),
    ("OUTPUT_STREAMING_UNSUPPORTED", 400),
    ("RESUME_TOKEN_INVALID", 400),
    ("UNAUTHORIZED", 401),
    ("TENANT_NOT_ALLOWED", 403),
    ("ROUTE_NOT_FOUND", 404),
    ("EXECUTION_NOT_FOUND", 404),
    ("INTERACTION_NOT_FOUND", 404),
    ("METHOD_NOT_ALLOWED", 405),
    ("NO_ACTIVE_RELEASE", 409),
    ("RELEASE_ARTIFACT_UNVERIFIED", 409),
    ("IDEMPOTENCY_KEY_REUSED", 409),
    ("INTERACTION_ALREADY_COMPLETED", 409),
    ("INTERACTION_TERMINAL", 409),
    ("INTERACTION_TIMED_OUT", 409),
    ("EXECUTION_NOT_REDRIVABLE", 409),
    ("VERSION_MISMATCH", 409),
    ("CONCURRENT_MODIFICATION", 409),
    ("PAYLOAD_TOO_LARGE", 413),
    ("UNSUPPORTED_MEDIA_TYPE", 415),
    ("INTERNAL_ERROR", 500),
    ("AUTH_UNAVAILABLE", 503),
    ("NO_HEALTHY_WORKER", 503),
    ("RESUME_TOKEN_UNAVAILABLE", 503),
    ("DEPENDENCY_UNAVAILABLE", 503),
];

// ---------------------------------------------------------------------------
// Sending and checking

/// A response as received.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    text: String,
}

/// One request: `headers` as given (no implicit authorization), raw body
/// bytes. `None` when the URI cannot be built (not a request a client can
/// send).
async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Option<Answer> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Body::from(body)).ok()?;
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Some(Answer {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).expect("every response body is UTF-8"),
    })
}

const JSON_CT: (&str, &str) = ("content-type", "application/json");

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A request with `token` and, when `body` is given, a JSON content type.
async fn call(router: &Router, method: &str, uri: &str, token: &str, body: Option<&str>) -> Answer {
    let auth = bearer(token);
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(JSON_CT);
    }
    send(
        router,
        method,
        uri,
        &headers,
        body.unwrap_or_default().as_bytes().to_vec(),
    )
    .await
    .expect("a valid URI")
}

/// Checks the rules every error response follows (`API.md` §1.2, §1.5, §1.8):
/// JSON content type, an `X-Request-Id` UUID, a body of exactly a string
/// `code` of the table with its status and a non-empty `message` of at most
/// 1024 characters, and the header the status requires. Returns the body.
#[track_caller]
fn check_error_shape(a: &Answer) -> (String, String) {
    assert_eq!(
        a.headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{a:?}"
    );
    let rid = a
        .headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id: {a:?}"))
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::parse_str(rid).is_ok(), "X-Request-Id {rid:?}");
    let body: Value =
        serde_json::from_str(&a.text).unwrap_or_else(|e| panic!("not JSON ({e}): {a:?}"));
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {a:?}"));
    let names: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["code", "message"]), "{a:?}");
    let code = obj["code"].as_str().expect("code is a string").to_string();
    let message = obj["message"]
        .as_str()
        .expect("message is a string")
        .to_string();
    assert!(
        !message.is_empty() && message.chars().count() <= 1024,
        "{a:?}"
    );
    let status = TABLE
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("{code} is not a code of API.md §1.8: {a:?}"));
    assert_eq!(a.status, status, "{code} has status {status}: {a:?}");
    match a.status {
        401 => assert_eq!(a.headers["www-authenticate"], "Bearer realm=\"tpf\""),
        503 => assert_eq!(a.headers["retry-after"], "5"),
        405 => assert!(a.headers.contains_key("allow"), "405 without Allow"),
        _ => {}
    }
    (code, message)
}

/// Records which codes a test produced.
#[derive(Default)]
struct Seen(Mutex<BTreeSet<String>>);

impl Seen {
    /// Exactly `{"code": code, "message": message}` with `status`.
    #[track_caller]
    fn expect(&self, a: &Answer, status: u16, code: &str, message: &str) {
        let (c, m) = check_error_shape(a);
        assert_eq!(
            (a.status, c.as_str(), m.as_str()),
            (status, code, message),
            "{a:?}"
        );
        self.0.lock().unwrap().insert(c);
    }

    /// `status` and `code`, with a message starting with `prefix`.
    #[track_caller]
    fn expect_prefix(&self, a: &Answer, status: u16, code: &str, prefix: &str) {
        let (c, m) = check_error_shape(a);
        assert_eq!((a.status, c.as_str()), (status, code), "{a:?}");
        assert!(
            m.starts_with(prefix),
            "{m:?} does not start with {prefix:?}"
        );
        self.0.lock().unwrap().insert(c);
    }

    fn codes(&self) -> BTreeSet<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A submit body as text.
fn submit_text(customer: &str, key: Option<&str>) -> String {
    submit_body(customer, key).to_string()
}

/// The order id the example worker put in the interaction's request.
fn order_id(i: &AwaitInteraction) -> String {
    let v: Value = serde_json::from_str(i.request_payload.as_ref().unwrap().get()).unwrap();
    v["orderId"].as_str().unwrap().to_string()
}

fn submitted_id(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{a:?}");
    let v: Value = serde_json::from_str(&a.text).unwrap();
    v["executionId"].as_str().unwrap().to_string()
}

/// A token from a resolver that never resolves (`env:` of an unset name).
fn unresolvable() -> Option<CachedSecret> {
    Some(CachedSecret::new(
        SecretSource::Reference(SecretRef::Env(
            "TPF_BAD_INPUT_TEST_TOKEN_THAT_IS_NEVER_SET".into(),
        )),
        Arc::new(EnvSecretResolver),
    ))
}

/// Every control-plane route (and the re-drive route) as (method, path,
/// token), over the execution `id`.
fn routes(id: &str) -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("POST", format!("{CP}/executions"), CONTROL),
        ("GET", format!("{CP}/executions"), CONTROL),
        ("GET", format!("{CP}/executions/{id}"), CONTROL),
        ("GET", format!("{CP}/executions/{id}/result"), CONTROL),
        ("GET", format!("{CP}/executions/{id}/history"), CONTROL),
        ("GET", format!("{CP}/interactions/pending"), CONTROL),
        ("POST", format!("{CP}/interactions/complete"), CONTROL),
        (
            "POST",
            format!("/tpf/admin/tenants/acme/executions/{id}/redrive"),
            ADMIN,
        ),
    ]
}

// ---------------------------------------------------------------------------
// A store that is down

/// Execution and await store whose every call fails (an outage).
struct Down;

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("injected outage".into()))
}

#[async_trait]
impl ExecutionStore for Down {
    async fn create(
        &self,
        _: &ExecutionRecord,
        _: &HistoryEvent,
        _: Option<&KeyEntry>,
        _: i64,
    ) -> Result<CreateExecution, StoreError> {
        down()
    }
    async fn get(&self, _: &str, _: &str, _: i64) -> Result<Option<ExecutionRecord>, StoreError> {
        down()
    }
    async fn get_key(&self, _: &str, _: &str, _: i64) -> Result<Option<KeyEntry>, StoreError> {
        down()
    }
    async fn update(
        &self,
        _: &ExecutionRecord,
        _: u64,
        _: &HistoryEvent,
        _: i64,
    ) -> Result<Write, StoreError> {
        down()
    }
    async fn history(
        &self,
        _: &str,
        _: &str,
        _: Option<u64>,
        _: usize,
        _: i64,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
        down()
    }
    async fn list(
        &self,
        _: &str,
        _: &ExecutionFilter,
        _: Option<(i64, String)>,
        _: usize,
        _: i64,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        down()
    }
    async fn due(&self, _: i64, _: usize) -> Result<Vec<(String, String)>, StoreError> {
        down()
    }
}

#[async_trait]
impl AwaitStore for Down {
    async fn get_unit(&self, _: &str, _: &str, _: i64) -> Result<Option<AwaitUnit>, StoreError> {
        down()
    }
    async fn get_interaction(
        &self,
        _: &str,
        _: &str,
        _: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        down()
    }
    async fn get_by_correlation(
        &self,
        _: &str,
        _: &str,
        _: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        down()
    }
    async fn import(
        &self,
        _: &AwaitUnit,
        _: &AwaitInteraction,
        _: i64,
    ) -> Result<ImportOutcome, StoreError> {
        down()
    }
    async fn update_interaction(
        &self,
        _: &AwaitInteraction,
        _: i64,
        _: i64,
    ) -> Result<Write, StoreError> {
        down()
    }
    async fn set_settle_due(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<i64>,
        _: i64,
    ) -> Result<Write, StoreError> {
        down()
    }
    async fn finish_unit(&self, _: &str, _: &str, _: &str, _: i64) -> Result<Write, StoreError> {
        down()
    }
    async fn pending(
        &self,
        _: &str,
        _: &PendingFilter,
        _: Option<(i64, String)>,
        _: usize,
        _: i64,
    ) -> Result<Vec<AwaitInteraction>, StoreError> {
        down()
    }
    async fn settle_due(&self, _: i64, _: usize) -> Result<Vec<(String, String)>, StoreError> {
        down()
    }
}

// ---------------------------------------------------------------------------
// 400: bodies (INVALID_JSON, MISSING_FIELD, INVALID_ID, INVALID_FIELD,
// INVALID_PAYLOAD, OUTPUT_STREAMING_UNSUPPORTED, IDEMPOTENCY_KEY_REQUIRED)

async fn body_errors(seen: &Seen) {
    let h = Harness::new(Options::default()).await;
    let r = &h.router;
    let submit = format!("{CP}/executions");
    let complete = format!("{CP}/interactions/complete");
    let id =
        submitted_id(&call(r, "POST", &submit, CONTROL, Some(&submit_text("Ada", None))).await);
    let redrive = format!("/tpf/admin/tenants/acme/executions/{id}/redrive");
    let post = |path: &str, token: &'static str, body: &str| {
        let (path, body) = (path.to_string(), body.to_string());
        async move { call(r, "POST", &path, token, Some(&body)).await }
    };

    // INVALID_JSON on every route that reads a body.
    for (path, token) in [(&submit, CONTROL), (&complete, CONTROL)] {
        for empty in ["", "  \n\t "] {
            seen.expect(
                &post(path, token, empty).await,
                400,
                "INVALID_JSON",
                "request body is required",
            );
        }
        for not_object in ["[]", "\"x\"", "null", "42", "true"] {
            seen.expect(
                &post(path, token, not_object).await,
                400,
                "INVALID_JSON",
                "body must be a JSON object",
            );
        }
    }
    for (path, token) in [(&submit, CONTROL), (&complete, CONTROL), (&redrive, ADMIN)] {
        for bad in [
            "{\"pipelineId\":",
            "{'a': 1}",
            "{\"a\":1,}",
            "{\"a\":1}{",
            "{\"a\":1,\"a\":2}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":1e400}",
            "{\"a\":NaN}",
        ] {
            seen.expect_prefix(
                &post(path, token, bad).await,
                400,
                "INVALID_JSON",
                "body is not valid JSON: ",
            );
        }
        let a = send(
            r,
            "POST",
            path,
            &[("authorization", &bearer(token)), JSON_CT],
            b"{\"a\":\"\xff\xfe\"}".to_vec(),
        )
        .await
        .unwrap();
        seen.expect(&a, 400, "INVALID_JSON", "body is not valid UTF-8");
    }
    // The re-drive body may be empty or `null`, but not another non-object.
    for not_object in ["[]", "\"x\"", "42"] {
        seen.expect(
            &post(&redrive, ADMIN, not_object).await,
            400,
            "INVALID_JSON",
            "body must be a JSON object",
        );
    }
    // A duplicate member is named; nesting is capped at 127 levels.
    let a = post(
        &submit,
        CONTROL,
        "{\"pipelineId\":\"a\",\"pipelineId\":\"b\"}",
    )
    .await;
    seen.expect_prefix(&a, 400, "INVALID_JSON", "body is not valid JSON: ");
    assert!(a.text.contains("appears twice"), "{}", a.text);
    let nested = |levels: usize| {
        format!(
            "{{\"deep\":{}{}}}",
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    seen.expect_prefix(
        &post(&submit, CONTROL, &nested(128)).await,
        400,
        "INVALID_JSON",
        "body is not valid JSON: ",
    );
    seen.expect(
        &post(&submit, CONTROL, &nested(127)).await,
        400,
        "MISSING_FIELD",
        "pipelineId is required",
    );

    // MISSING_FIELD, in the order of the member table; null and blank = absent.
    let input = order("Ada");
    for (body, message) in [
        (json!({}), "pipelineId is required"),
        (json!({"pipelineId": null}), "pipelineId is required"),
        (json!({"pipelineId": "  "}), "pipelineId is required"),
        (json!({"pipelineId": PIPELINE}), "inputShape is required"),
        (
            json!({"pipelineId": PIPELINE, "inputShape": null, "inputPayload": input}),
            "inputShape is required",
        ),
        (
            json!({"pipelineId": PIPELINE, "inputShape": "UNI"}),
            "inputPayload is required",
        ),
        (
            json!({"pipelineId": PIPELINE, "inputShape": "UNI", "inputPayload": null}),
            "inputPayload is required",
        ),
    ] {
        seen.expect(
            &post(&submit, CONTROL, &body.to_string()).await,
            400,
            "MISSING_FIELD",
            message,
        );
    }
    let handles = "interactionId, correlationId, or resumeToken is required";
    for (body, message) in [
        (json!({}), handles),
        (
            json!({"interactionId": " ", "correlationId": null, "resumeToken": "", "responsePayload": input}),
            handles,
        ),
        (
            json!({"interactionId": "i-1"}),
            "responsePayload is required",
        ),
        (
            json!({"correlationId": "c-1", "responsePayload": null}),
            "responsePayload is required",
        ),
    ] {
        seen.expect(
            &post(&complete, CONTROL, &body.to_string()).await,
            400,
            "MISSING_FIELD",
            message,
        );
    }

    // INVALID_ID in bodies (trimmed first).
    for bad in ["bad id", "a..b", "-a", "a/b", "a#b", &"x".repeat(129), "é"] {
        let body = json!({"pipelineId": bad, "inputShape": "UNI", "inputPayload": input});
        seen.expect(
            &post(&submit, CONTROL, &body.to_string()).await,
            400,
            "INVALID_ID",
            &format!("pipelineId {ID_RULE}"),
        );
    }
    for field in ["interactionId", "correlationId"] {
        let body = json!({field: "no/slash", "responsePayload": input});
        seen.expect(
            &post(&complete, CONTROL, &body.to_string()).await,
            400,
            "INVALID_ID",
            &format!("{field} {ID_RULE}"),
        );
    }

    // INVALID_FIELD: wrong types, unknown enum values, bounds.
    let base = submit_body("Ada", None);
    let with = |name: &str, v: Value| {
        let mut b = base.clone();
        b[name] = v;
        b.to_string()
    };
    for (body, message) in [
        (with("pipelineId", json!(5)), "pipelineId must be a string"),
        (
            with("pipelineId", json!(["a"])),
            "pipelineId must be a string",
        ),
        (
            with("inputShape", json!("uni")),
            "inputShape must be UNI, MULTI or RAW",
        ),
        (
            with("inputShape", json!("")),
            "inputShape must be UNI, MULTI or RAW",
        ),
        (with("inputShape", json!(1)), "inputShape must be a string"),
        (
            with("idempotencyKey", json!(7)),
            "idempotencyKey must be a string",
        ),
        (
            with("idempotencyKey", json!("k".repeat(257))),
            "idempotencyKey must be 1-256 characters without control characters",
        ),
        (
            with("idempotencyKey", json!("a\u{7f}b")),
            "idempotencyKey must be 1-256 characters without control characters",
        ),
        (
            with("outputStreaming", json!("true")),
            "outputStreaming must be a boolean",
        ),
        (
            with("outputStreaming", json!(0)),
            "outputStreaming must be a boolean",
        ),
    ] {
        seen.expect(
            &post(&submit, CONTROL, &body).await,
            400,
            "INVALID_FIELD",
            message,
        );
    }
    let cbase = json!({"interactionId": "i-1", "responsePayload": input});
    let cwith = |name: &str, v: Value| {
        let mut b = cbase.clone();
        b[name] = v;
        b.to_string()
    };
    for (body, message) in [
        (
            cwith("interactionId", json!(1)),
            "interactionId must be a string",
        ),
        (
            cwith("correlationId", json!({})),
            "correlationId must be a string",
        ),
        (
            cwith("resumeToken", json!(true)),
            "resumeToken must be a string",
        ),
        (
            cwith("resumeToken", json!("t".repeat(4097))),
            "resumeToken must be at most 4096 characters",
        ),
        (
            cwith("idempotencyKey", json!([])),
            "idempotencyKey must be a string",
        ),
        (
            cwith("idempotencyKey", json!("k".repeat(257))),
            "idempotencyKey must be 1-256 characters without control characters",
        ),
        (cwith("actor", json!(1)), "actor must be a string"),
        (
            cwith("actor", json!("a".repeat(129))),
            "actor must be 1-128 characters without control characters",
        ),
        (
            cwith("actor", json!("tab\u{0}let")),
            "actor must be 1-128 characters without control characters",
        ),
    ] {
        seen.expect(
            &post(&complete, CONTROL, &body).await,
            400,
            "INVALID_FIELD",
            message,
        );
    }
    for (body, message) in [
        (
            json!({"expectedVersion": -1}),
            "expectedVersion must be an integer ≥ 0",
        ),
        (
            json!({"expectedVersion": 1.5}),
            "expectedVersion must be an integer ≥ 0",
        ),
        (
            json!({"expectedVersion": "0"}),
            "expectedVersion must be an integer ≥ 0",
        ),
        (
            json!({"expectedVersion": true}),
            "expectedVersion must be an integer ≥ 0",
        ),
        (json!({"reason": 5}), "reason must be a string"),
        (
            json!({"allowFailed": "true"}),
            "allowFailed must be a boolean",
        ),
        (json!({"allowFailed": 1}), "allowFailed must be a boolean"),
        (json!({"actor": false}), "actor must be a string"),
        (
            json!({"actor": "a".repeat(129)}),
            "actor must be 1-128 characters without control characters",
        ),
    ] {
        seen.expect(
            &post(&redrive, ADMIN, &body.to_string()).await,
            400,
            "INVALID_FIELD",
            message,
        );
    }
    // Exponents and integers outside the signed 64-bit range are refused.
    for raw in [
        "{\"expectedVersion\":1e2}",
        "{\"expectedVersion\":0.0}",
        "{\"expectedVersion\":9223372036854775808}",
        "{\"expectedVersion\":18446744073709551615}",
        "{\"expectedVersion\":99999999999999999999999}",
    ] {
        seen.expect(
            &post(&redrive, ADMIN, raw).await,
            400,
            "INVALID_FIELD",
            "expectedVersion must be an integer ≥ 0",
        );
    }

    // INVALID_PAYLOAD: the envelope members, never INVALID_FIELD.
    for (payload, message) in [
        (json!("x"), "inputPayload must be a JSON object"),
        (json!([]), "inputPayload must be a JSON object"),
        (json!({}), "inputPayload.payloadTypeId is required"),
        (
            json!({"payloadTypeId": 1, "payloadEncoding": "application/tpf-transition+json", "payload": "1"}),
            "inputPayload.payloadTypeId must be a string",
        ),
        (
            json!({"payloadTypeId": "java.lang.String", "payloadEncoding": "application/json", "payload": "\"x\""}),
            "inputPayload.payloadEncoding must be application/tpf-transition+json",
        ),
    ] {
        seen.expect(
            &post(&submit, CONTROL, &with("inputPayload", payload)).await,
            400,
            "INVALID_PAYLOAD",
            message,
        );
    }
    for payload in [
        json!(false),
        json!({"payloadTypeId": "java.util.Map", "payloadEncoding": "application/tpf-transition+json", "payload": "{not json"}),
        json!({"payloadTypeId": "1nvalid", "payloadEncoding": "application/tpf-transition+json", "payload": "1"}),
    ] {
        seen.expect_prefix(
            &post(&complete, CONTROL, &cwith("responsePayload", payload)).await,
            400,
            "INVALID_PAYLOAD",
            "responsePayload",
        );
    }

    // OUTPUT_STREAMING_UNSUPPORTED.
    seen.expect(
        &post(&submit, CONTROL, &with("outputStreaming", json!(true))).await,
        400,
        "OUTPUT_STREAMING_UNSUPPORTED",
        "outputStreaming is not supported",
    );

    // IDEMPOTENCY_KEY_REQUIRED under CLIENT_KEY_REQUIRED (blank = absent).
    let strict = Harness::new(Options {
        env: vec![("TPF_IDEMPOTENCY_POLICY", "CLIENT_KEY_REQUIRED".into())],
        restaurant_worker: true,
    })
    .await;
    for body in [submit_text("Ada", None), submit_text("Ada", Some("  "))] {
        seen.expect(
            &call(&strict.router, "POST", &submit, CONTROL, Some(&body)).await,
            400,
            "IDEMPOTENCY_KEY_REQUIRED",
            "idempotencyKey is required by the idempotency policy",
        );
    }
    assert_eq!(
        call(
            &strict.router,
            "POST",
            &submit,
            CONTROL,
            Some(&submit_text("Ada", Some("k")))
        )
        .await
        .status,
        200
    );
    // Nothing of the above created an execution.
    assert_eq!(h.all_records().await.len(), 1);
    assert!(strict.all_records().await.len() == 1);
}

// ---------------------------------------------------------------------------
// 413 and 415

async fn size_and_media_type(seen: &Seen) {
    let h = Harness::new(Options::default()).await;
    let r = &h.router;
    let id = h.submit_new().await;
    let posts = [
        (format!("{CP}/executions"), CONTROL),
        (format!("{CP}/interactions/complete"), CONTROL),
        (
            format!("/tpf/admin/tenants/acme/executions/{id}/redrive"),
            ADMIN,
        ),
    ];
    let limit = 262_144;
    // An object of exactly `len` bytes.
    let sized = |len: usize| {
        let head = "{\"pad\":\"";
        let tail = "\"}";
        format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
    };
    for (path, token) in &posts {
        let auth = bearer(token);
        let a = send(
            r,
            "POST",
            path,
            &[("authorization", &auth), JSON_CT],
            sized(limit + 1).into_bytes(),
        )
        .await
        .unwrap();
        seen.expect(
            &a,
            413,
            "PAYLOAD_TOO_LARGE",
            "request body is larger than 262144 bytes",
        );
        // Decided before parsing: invalid JSON that is too large is 413.
        let a = send(
            r,
            "POST",
            path,
            &[("authorization", &auth), JSON_CT],
            vec![b'{'; limit + 10],
        )
        .await
        .unwrap();
        seen.expect(
            &a,
            413,
            "PAYLOAD_TOO_LARGE",
            "request body is larger than 262144 bytes",
        );
        // Exactly the limit is read.
        let a = send(
            r,
            "POST",
            path,
            &[("authorization", &auth), JSON_CT],
            sized(limit).into_bytes(),
        )
        .await
        .unwrap();
        assert_ne!(a.status, 413, "{a:?}");
        assert_ne!(a.status, 500, "{a:?}");

        for ct in [
            "text/plain",
            "application/xml",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "json",
            "",
        ] {
            let a = send(
                r,
                "POST",
                path,
                &[("authorization", &auth), ("content-type", ct)],
                b"{}".to_vec(),
            )
            .await
            .unwrap();
            seen.expect(
                &a,
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Content-Type must be application/json",
            );
        }
        // Two Content-Type headers.
        let a = send(
            r,
            "POST",
            path,
            &[("authorization", &auth), JSON_CT, JSON_CT],
            b"{}".to_vec(),
        )
        .await
        .unwrap();
        seen.expect(
            &a,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json",
        );
        // 415 comes before 413.
        let a = send(
            r,
            "POST",
            path,
            &[("authorization", &auth), ("content-type", "text/plain")],
            sized(limit + 1).into_bytes(),
        )
        .await
        .unwrap();
        seen.expect(
            &a,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json",
        );
        // Accepted media types, and none, reach the JSON check.
        for ct in [
            Some("Application/JSON; charset=utf-8"),
            Some("application/problem+json"),
            None,
        ] {
            let mut headers = vec![("authorization", auth.as_str())];
            if let Some(ct) = ct {
                headers.push(("content-type", ct));
            }
            let a = send(r, "POST", path, &headers, b"[]".to_vec())
                .await
                .unwrap();
            seen.expect(&a, 400, "INVALID_JSON", "body must be a JSON object");
        }
    }
    // GET routes ignore any body: no 413, 415 or INVALID_JSON.
    let a = send(
        r,
        "GET",
        &format!("{CP}/executions/{id}"),
        &[
            ("authorization", &bearer(CONTROL)),
            ("content-type", "text/plain"),
        ],
        vec![b'x'; limit * 2],
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200, "{a:?}");
}

// ---------------------------------------------------------------------------
// Routing, authentication, path ids, tenants (ROUTE_NOT_FOUND,
// METHOD_NOT_ALLOWED, UNAUTHORIZED, AUTH_UNAVAILABLE, INVALID_ID,
// TENANT_NOT_ALLOWED)

async fn routing_and_auth(seen: &Seen) {
    let h = Harness::new(Options::default()).await;
    let r = &h.router;
    let id = h.submit_new().await;
    let no_route = "no route for this path";

    // ROUTE_NOT_FOUND inside and outside /tpf/, before authentication.
    for path in [
        "/".to_string(),
        "/nope".to_string(),
        "/tpf".to_string(),
        "/tpf/control-plane".to_string(),
        format!("{CP}/executi%6Fns"),
        format!("{CP}/executions/"),
        format!("{CP}/executions/{id}/"),
        format!("{CP}/executions/{id}/results"),
        format!("{CP}/executions/{id}/result/extra"),
        format!("{CP}/interactions"),
        format!("{CP}/interactions/complete/"),
        "/TPF/control-plane/tenants/acme/executions".to_string(),
        "/tpf/control-plane/tenants/acme/EXECUTIONS".to_string(),
        format!("/tpf/admin/tenants/acme/executions/{id}"),
        format!("/tpf/admin/tenants/acme/executions/{id}/redrive/now"),
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let a = send(r, method, &path, &[], Vec::new()).await.unwrap();
            seen.expect(&a, 404, "ROUTE_NOT_FOUND", no_route);
        }
    }
    // A disabled control-plane surface: 404 before authentication, every route.
    let dark = h.router_altered(h.deps.clone(), |s| s.control_plane_enabled = false);
    for (method, path, token) in routes(&id) {
        let a = call(&dark, method, &path, token, None).await;
        if path.starts_with("/tpf/admin/") {
            assert_ne!(a.status, 404, "the admin surface stays enabled: {a:?}");
            continue;
        }
        seen.expect(&a, 404, "ROUTE_NOT_FOUND", no_route);
        let a = send(&dark, method, &path, &[], Vec::new()).await.unwrap();
        seen.expect(&a, 404, "ROUTE_NOT_FOUND", no_route);
    }
    let a = send(&dark, "GET", "/tpf/health", &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(a.status, 200, "health is always served");
    // A disabled admin surface hides the re-drive route.
    let no_admin = h.router_altered(h.deps.clone(), |s| s.admin_enabled = false);
    let redrive = format!("/tpf/admin/tenants/acme/executions/{id}/redrive");
    seen.expect(
        &call(&no_admin, "POST", &redrive, ADMIN, None).await,
        404,
        "ROUTE_NOT_FOUND",
        no_route,
    );
    assert_eq!(
        call(
            &no_admin,
            "GET",
            &format!("{CP}/executions/{id}"),
            CONTROL,
            None
        )
        .await
        .status,
        200
    );

    // METHOD_NOT_ALLOWED with Allow, before authentication.
    for (method, path, allow) in [
        ("DELETE", format!("{CP}/executions"), "POST, GET"),
        ("PUT", format!("{CP}/executions"), "POST, GET"),
        ("PATCH", format!("{CP}/executions/{id}"), "GET"),
        ("POST", format!("{CP}/executions/{id}"), "GET"),
        ("POST", format!("{CP}/executions/{id}/result"), "GET"),
        ("DELETE", format!("{CP}/executions/{id}/history"), "GET"),
        ("POST", format!("{CP}/interactions/pending"), "GET"),
        ("GET", format!("{CP}/interactions/complete"), "POST"),
        (
            "GET",
            format!("/tpf/admin/tenants/acme/executions/{id}/redrive"),
            "POST",
        ),
        ("POST", "/tpf/health".to_string(), "GET"),
    ] {
        let a = send(r, method, &path, &[], Vec::new()).await.unwrap();
        seen.expect(
            &a,
            405,
            "METHOD_NOT_ALLOWED",
            &format!("method not allowed; allowed: {allow}"),
        );
        assert_eq!(a.headers["allow"], allow);
    }

    // UNAUTHORIZED: missing, repeated, other scheme, blank or wrong tokens,
    // and each token on the other surface's routes (AUTH-05).
    let unauthorized = "missing or invalid bearer token";
    for (method, path, token) in routes(&id) {
        let wrong = if token == CONTROL { ADMIN } else { CONTROL };
        let other = bearer(wrong);
        let right = bearer(token);
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("authorization", "")],
            vec![("authorization", "Bearer")],
            vec![("authorization", "Bearer    ")],
            vec![("authorization", "Basic YWRtaW46YWRtaW4=")],
            vec![("authorization", "Token control-token")],
            vec![("authorization", "Bearer contröl-token")],
            vec![("authorization", "Bearer\tcontrol-token")],
            vec![("authorization", "Bearer nope")],
            vec![("authorization", &other)],
            vec![("authorization", &right), ("authorization", &right)],
        ];
        for headers in cases {
            let a = send(r, method, &path, &headers, Vec::new()).await.unwrap();
            seen.expect(&a, 401, "UNAUTHORIZED", unauthorized);
        }
        // Before path ids, tenants and bodies.
        let bad_tenant = path.replace("/acme/", "/a..b/");
        let a = send(
            r,
            method,
            &bad_tenant,
            &[("content-type", "text/plain")],
            b"[".to_vec(),
        )
        .await
        .unwrap();
        seen.expect(&a, 401, "UNAUTHORIZED", unauthorized);
    }

    // AUTH_UNAVAILABLE: the configured token cannot be resolved.
    let unavailable = "the configured token cannot be resolved; retry later";
    let no_cp = h.router_altered(h.deps.clone(), |s| s.control_plane_token = unresolvable());
    let no_admin_token = h.router_altered(h.deps.clone(), |s| s.admin_token = unresolvable());
    for (method, path, token) in routes(&id) {
        let router = if token == CONTROL {
            &no_cp
        } else {
            &no_admin_token
        };
        seen.expect(
            &call(router, method, &path, token, None).await,
            503,
            "AUTH_UNAVAILABLE",
            unavailable,
        );
        // A missing header is still 401 (step 1 before step 2).
        let a = send(router, method, &path, &[], Vec::new()).await.unwrap();
        seen.expect(&a, 401, "UNAUTHORIZED", unauthorized);
    }
    // The other surface is unaffected.
    assert_eq!(
        call(
            &no_admin_token,
            "GET",
            &format!("{CP}/executions/{id}"),
            CONTROL,
            None
        )
        .await
        .status,
        200
    );

    // INVALID_ID in path parameters (decoded once).
    for bad in [
        "a..b", "-acme", "a%2Fb", "a%23b", "%FF", "a%ZZ", "%2e%2e", "a%20b", "%C3%A9", "a%252Fb",
    ] {
        for (method, path, token) in routes(&id) {
            let tenant_path = path.replace("/acme/", &format!("/{bad}/"));
            seen.expect(
                &call(r, method, &tenant_path, token, None).await,
                400,
                "INVALID_ID",
                &if bad == "%FF" {
                    "tenantId is not valid UTF-8 once decoded".to_string()
                } else {
                    format!("tenantId {ID_RULE}")
                },
            );
            if path.contains(&id) {
                let exec_path = path.replace(&id, bad);
                seen.expect(
                    &call(r, method, &exec_path, token, None).await,
                    400,
                    "INVALID_ID",
                    &if bad == "%FF" {
                        "executionId is not valid UTF-8 once decoded".to_string()
                    } else {
                        format!("executionId {ID_RULE}")
                    },
                );
            }
        }
    }
    // An empty parameter segment matches the route and breaks the id rule.
    for (path, field) in [
        (
            "/tpf/control-plane/tenants//executions".to_string(),
            "tenantId",
        ),
        (format!("{CP}/executions//result"), "executionId"),
    ] {
        seen.expect(
            &call(r, "GET", &path, CONTROL, None).await,
            400,
            "INVALID_ID",
            &format!("{field} {ID_RULE}"),
        );
    }
    let long = "x".repeat(129);
    seen.expect(
        &call(r, "GET", &format!("{CP}/executions/{long}"), CONTROL, None).await,
        400,
        "INVALID_ID",
        &format!("executionId {ID_RULE}"),
    );
    // Escapes of allowed characters decode to a valid id.
    let escaped = format!("/tpf/control-plane/tenants/ac%6De/executions/{id}");
    assert_eq!(call(r, "GET", &escaped, CONTROL, None).await.status, 200);

    // TENANT_NOT_ALLOWED on every authenticated route (after path ids).
    let fenced = h.router_altered(h.deps.clone(), |s| {
        s.allowed_tenants = Some(vec!["acme".into(), "initech".into()])
    });
    for (method, path, token) in routes(&id) {
        let globex = path.replace("/acme/", "/globex/");
        seen.expect(
            &call(&fenced, method, &globex, token, None).await,
            403,
            "TENANT_NOT_ALLOWED",
            "tenant is not allowed",
        );
        // Before query parameters and bodies.
        let a = send(
            &fenced,
            method,
            &format!("{globex}?limit=0"),
            &[
                ("authorization", &bearer(token)),
                ("content-type", "text/plain"),
            ],
            b"[".to_vec(),
        )
        .await
        .unwrap();
        seen.expect(&a, 403, "TENANT_NOT_ALLOWED", "tenant is not allowed");
        // A bad id is 400 before the tenant check.
        let bad = globex.replace("/globex/", "/glo..bex/");
        seen.expect_prefix(
            &call(&fenced, method, &bad, token, None).await,
            400,
            "INVALID_ID",
            "tenantId ",
        );
    }
    assert_eq!(
        call(
            &fenced,
            "GET",
            &format!("{CP}/executions/{id}"),
            CONTROL,
            None
        )
        .await
        .status,
        200
    );
    let other = call(
        &fenced,
        "GET",
        "/tpf/control-plane/tenants/initech/executions/nope",
        CONTROL,
        None,
    )
    .await;
    seen.expect(
        &other,
        404,
        "EXECUTION_NOT_FOUND",
        "Execution not found: nope",
    );
}

// ---------------------------------------------------------------------------
// Query parameters (INVALID_PARAMETER, INVALID_CURSOR, INVALID_ID)

async fn query_errors(seen: &Seen) {
    let h = Harness::new(Options::default()).await;
    let r = &h.router;
    let (id, _) = h.park("Ada").await;
    h.park("Grace").await;
    let lists = [
        format!("{CP}/executions"),
        format!("{CP}/executions/{id}/history"),
        format!("{CP}/interactions/pending"),
    ];
    let get = |uri: String| async move { call(r, "GET", &uri, CONTROL, None).await };
    let limit_msg = "limit must be an integer from 1 to 2147483647";
    for list in &lists {
        for q in [
            "limit=0",
            "limit=-1",
            "limit=-0",
            "limit=abc",
            "limit=1.5",
            "limit=+1",
            "limit=%2B1",
            "limit=1e3",
            "limit=2147483648",
            "limit=99999999999999999999",
            "limit=%201",
            "limit=0x10",
        ] {
            seen.expect(
                &get(format!("{list}?{q}")).await,
                400,
                "INVALID_PARAMETER",
                limit_msg,
            );
        }
        for q in ["limit=1&limit=1", "limit=&limit=5", "cursor=a&cursor=b"] {
            seen.expect_prefix(
                &get(format!("{list}?{q}")).await,
                400,
                "INVALID_PARAMETER",
                q.split('=').next().unwrap(),
            );
        }
        seen.expect(
            &get(format!("{list}?limit=%FF")).await,
            400,
            "INVALID_PARAMETER",
            "limit is not valid UTF-8 once decoded",
        );
        // Clamped and defaulted values are accepted; unknown parameters ignored.
        for q in [
            "limit=2147483647",
            "limit=",
            "limit",
            "other=%FF&x=1&x=2",
            "limit=1000",
        ] {
            assert_eq!(get(format!("{list}?{q}")).await.status, 200, "{list}?{q}");
        }
        // INVALID_CURSOR.
        let undecodable = "cursor is not one this list handed out for these filters";
        for c in ["!!!", "e30", "bm90LWpzb24", "%FF%FE", &"A".repeat(100)] {
            let a = get(format!("{list}?cursor={c}")).await;
            if c == "%FF%FE" {
                seen.expect(
                    &a,
                    400,
                    "INVALID_PARAMETER",
                    "cursor is not valid UTF-8 once decoded",
                );
            } else {
                seen.expect(&a, 400, "INVALID_CURSOR", undecodable);
            }
        }
        seen.expect(
            &get(format!("{list}?cursor={}", "A".repeat(2049))).await,
            400,
            "INVALID_CURSOR",
            "cursor is longer than 2048 characters",
        );
    }
    // A real cursor used with other filters or another tenant.
    let page = get(format!("{CP}/interactions/pending?limit=1")).await;
    assert_eq!(page.status, 200);
    let cursor = page.headers["x-tpf-next-cursor"]
        .to_str()
        .unwrap()
        .to_string();
    seen.expect(
        &get(format!(
            "{CP}/interactions/pending?limit=1&group=kitchen&cursor={cursor}"
        ))
        .await,
        400,
        "INVALID_CURSOR",
        "cursor is not one this list handed out for these filters",
    );
    seen.expect(
        &get(format!(
            "/tpf/control-plane/tenants/globex/interactions/pending?cursor={cursor}"
        ))
        .await,
        400,
        "INVALID_CURSOR",
        "cursor is not one this list handed out for these filters",
    );
    // A cursor of the pending list on an execution's history.
    seen.expect_prefix(
        &get(format!("{CP}/executions/{id}/history?cursor={cursor}")).await,
        400,
        "INVALID_CURSOR",
        "cursor is not one this list handed out",
    );

    // Filters.
    for q in [
        "status=queued",
        "status=DONE",
        "status=%00",
        "status=QUEUED%20",
    ] {
        seen.expect(
            &get(format!("{CP}/executions?{q}")).await,
            400,
            "INVALID_PARAMETER",
            "status must be an ExecutionStatus value",
        );
    }
    for q in ["pipelineId=a..b", "pipelineId=%2F", "pipelineId=-x"] {
        seen.expect(
            &get(format!("{CP}/executions?{q}")).await,
            400,
            "INVALID_ID",
            &format!("pipelineId {ID_RULE}"),
        );
    }
    for name in ["stepId", "assignee", "group"] {
        for v in ["a%01b", "%7F", "%C2%80", &"s".repeat(257)] {
            seen.expect(
                &get(format!("{CP}/interactions/pending?{name}={v}")).await,
                400,
                "INVALID_PARAMETER",
                &format!("{name} must be at most 256 characters without control characters"),
            );
        }
        // Blank is "not given".
        assert_eq!(
            get(format!("{CP}/interactions/pending?{name}=%20%20"))
                .await
                .status,
            200
        );
    }
    // Query parameters are checked before the action (an unknown execution).
    seen.expect(
        &get(format!("{CP}/executions/nope/history?limit=0")).await,
        400,
        "INVALID_PARAMETER",
        limit_msg,
    );
}

// ---------------------------------------------------------------------------
// Action errors: 404, 409, 503 and RESUME_TOKEN_*

async fn action_errors(seen: &Seen) {
    let h = Harness::new(Options::default()).await;
    let r = &h.router;
    let submit = format!("{CP}/executions");
    let complete = format!("{CP}/interactions/complete");
    let post = |path: &str, token: &'static str, body: String| {
        let path = path.to_string();
        async move { call(r, "POST", &path, token, Some(&body)).await }
    };
    let get = |uri: String| async move { call(r, "GET", &uri, CONTROL, None).await };

    // NO_ACTIVE_RELEASE (unknown pipeline).
    let mut body = submit_body("Ada", Some("k-none"));
    body["pipelineId"] = json!("no-such-pipeline");
    seen.expect(
        &post(&submit, CONTROL, body.to_string()).await,
        409,
        "NO_ACTIVE_RELEASE",
        "No active release is registered for the requested pipeline",
    );

    // IDEMPOTENCY_KEY_REUSED.
    let first = submitted_id(&post(&submit, CONTROL, submit_text("Ada", Some("k-reuse"))).await);
    seen.expect(
        &post(&submit, CONTROL, submit_text("Grace", Some("k-reuse"))).await,
        409,
        "IDEMPOTENCY_KEY_REUSED",
        &format!("idempotencyKey was already used with a different input by execution {first}"),
    );

    // EXECUTION_NOT_FOUND: unknown id and another tenant's id.
    for (path, token, method) in [
        (format!("{CP}/executions/nope"), CONTROL, "GET"),
        (format!("{CP}/executions/nope/result"), CONTROL, "GET"),
        (format!("{CP}/executions/nope/history"), CONTROL, "GET"),
        (
            "/tpf/admin/tenants/acme/executions/nope/redrive".to_string(),
            ADMIN,
            "POST",
        ),
    ] {
        seen.expect(
            &call(r, method, &path, token, None).await,
            404,
            "EXECUTION_NOT_FOUND",
            "Execution not found: nope",
        );
        let theirs = path.replace("/acme/", "/globex/").replace("nope", &first);
        seen.expect(
            &call(r, method, &theirs, token, None).await,
            404,
            "EXECUTION_NOT_FOUND",
            &format!("Execution not found: {first}"),
        );
    }

    // EXECUTION_NOT_REDRIVABLE (QUEUED; FAILED without allowFailed).
    let redrive_of = |id: &str| format!("/tpf/admin/tenants/acme/executions/{id}/redrive");
    seen.expect(
        &post(
            &redrive_of(&first),
            ADMIN,
            json!({"allowFailed": true}).to_string(),
        )
        .await,
        409,
        "EXECUTION_NOT_REDRIVABLE",
        &format!("Execution {first} cannot be re-driven from status QUEUED"),
    );

    // INTERACTION_NOT_FOUND (id, correlation id, another tenant's).
    let (_, i) = h.park("Ada Lovelace").await;
    let p = decision(&order_id(&i), true);
    let not_found = "no interaction for the given handle in this tenant";
    for handle in [
        json!({"interactionId": "nope"}),
        json!({"correlationId": "nope"}),
    ] {
        let mut b = handle.clone();
        b["responsePayload"] = p.clone();
        seen.expect(
            &post(&complete, CONTROL, b.to_string()).await,
            404,
            "INTERACTION_NOT_FOUND",
            not_found,
        );
    }
    let theirs = json!({"interactionId": i.interaction_id, "responsePayload": p}).to_string();
    let a = call(
        r,
        "POST",
        "/tpf/control-plane/tenants/globex/interactions/complete",
        CONTROL,
        Some(&theirs),
    )
    .await;
    seen.expect(&a, 404, "INTERACTION_NOT_FOUND", not_found);

    // RESUME_TOKEN_UNAVAILABLE (no secret configured).
    seen.expect(
        &post(
            &complete,
            CONTROL,
            json!({"resumeToken": "abc.def", "responsePayload": p}).to_string(),
        )
        .await,
        503,
        "RESUME_TOKEN_UNAVAILABLE",
        "resume tokens cannot be checked: no resume-token secret is available",
    );

    // INTERACTION_ALREADY_COMPLETED.
    let ok = post(
        &complete,
        CONTROL,
        json!({"interactionId": i.interaction_id, "idempotencyKey": "k1", "responsePayload": p})
            .to_string(),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let no = decision(&order_id(&i), false);
    seen.expect(
        &post(&complete, CONTROL, json!({"interactionId": i.interaction_id, "idempotencyKey": "k2", "responsePayload": no}).to_string()).await,
        409,
        "INTERACTION_ALREADY_COMPLETED",
        &format!("Interaction {} was already completed with a different response", i.interaction_id),
    );

    // INTERACTION_TERMINAL.
    let (_, i2) = h.park("Grace Hopper").await;
    let mut failed = i2.clone();
    failed.status = "FAILED".into();
    failed.version = i2.version + 1;
    let w = h
        .awaits
        .update_interaction(&failed, i2.version, h.now())
        .await
        .unwrap();
    assert_eq!(w, Write::Written);
    seen.expect(
        &post(&complete, CONTROL, json!({"interactionId": i2.interaction_id, "responsePayload": decision(&order_id(&i2), true)}).to_string()).await,
        409,
        "INTERACTION_TERMINAL",
        &format!("Interaction {} is FAILED", i2.interaction_id),
    );

    // INTERACTION_TIMED_OUT (at the deadline), and again once TIMED_OUT.
    let (late, i3) = h.park("Alan Turing").await;
    h.clock.set(i3.deadline_epoch_ms);
    let late_body = json!({"interactionId": i3.interaction_id, "responsePayload": decision(&order_id(&i3), true)}).to_string();
    for _ in 0..2 {
        seen.expect(
            &post(&complete, CONTROL, late_body.clone()).await,
            409,
            "INTERACTION_TIMED_OUT",
            &format!("Interaction {} timed out", i3.interaction_id),
        );
    }
    let rec = h.record(&late).await.unwrap();
    assert_eq!(
        (rec.status, rec.error_code.as_deref()),
        (ExecutionStatus::Failed, Some("AWAIT_TIMEOUT"))
    );
    // An await failure is not re-drivable.
    seen.expect(
        &post(
            &redrive_of(&late),
            ADMIN,
            json!({"allowFailed": true}).to_string(),
        )
        .await,
        409,
        "EXECUTION_NOT_REDRIVABLE",
        &format!(
            "Execution {late} failed at an await and cannot be re-driven; submit a new execution"
        ),
    );
    // Status still answers for it.
    assert_eq!(get(format!("{CP}/executions/{late}")).await.status, 200);

    // RELEASE_ARTIFACT_UNVERIFIED (the latest activation event says so).
    h.mark_artifact_unverified("checksum differs").await;
    seen.expect(
        &post(&submit, CONTROL, submit_text("Ada", Some("k-unverified"))).await,
        409,
        "RELEASE_ARTIFACT_UNVERIFIED",
        "the stored artifact of release 2025.01.0 is not verified; re-activate it",
    );
    // A duplicate is answered before the artifact check.
    assert_eq!(
        post(&submit, CONTROL, submit_text("Ada", Some("k-reuse")))
            .await
            .status,
        200
    );

    // NO_HEALTHY_WORKER.
    let lonely = Harness::new(Options {
        env: vec![],
        restaurant_worker: false,
    })
    .await;
    seen.expect(
        &call(&lonely.router, "POST", &submit, CONTROL, Some(&submit_text("Ada", None))).await,
        503,
        "NO_HEALTHY_WORKER",
        "No healthy worker for release 2025.01.0 of pipeline restaurant-approval; no worker lifecycle record is registered for this release",
    );
}

async fn redrive_errors(seen: &Seen) {
    let (h, w) = Harness::with_scripted(vec![]).await;
    w.answer(
        200,
        worker_failed(NON_RETRYABLE, Some("decision orderId is not a UUID")),
    );
    let id = h.submit_new().await;
    h.drive().await;
    let rec = h.record(&id).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Failed);
    let path = format!("/tpf/admin/tenants/acme/executions/{id}/redrive");
    let post = |router: Router, body: Value| {
        let path = path.clone();
        async move { call(&router, "POST", &path, ADMIN, Some(&body.to_string())).await }
    };

    // EXECUTION_NOT_REDRIVABLE: FAILED needs allowFailed.
    for body in [
        json!({}),
        json!({"allowFailed": false}),
        json!({"allowFailed": null}),
    ] {
        seen.expect(
            &post(h.router.clone(), body).await,
            409,
            "EXECUTION_NOT_REDRIVABLE",
            &format!("Execution {id} cannot be re-driven from status FAILED"),
        );
    }
    // VERSION_MISMATCH.
    for v in [0, rec.version - 1, rec.version + 1, 99] {
        seen.expect(
            &post(
                h.router.clone(),
                json!({"allowFailed": true, "expectedVersion": v}),
            )
            .await,
            409,
            "VERSION_MISMATCH",
            &format!(
                "Execution {id} version mismatch: expected {v} but current version is {}",
                rec.version
            ),
        );
    }
    // CONCURRENT_MODIFICATION: the conditional write loses.
    let spy = Arc::new(SpyExecutionStore::new(h.executions.clone()));
    spy.lose_updates
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let losing = h.router_with(EngineDeps {
        executions: spy.clone(),
        ..h.deps.clone()
    });
    seen.expect(
        &post(losing, json!({"allowFailed": true})).await,
        409,
        "CONCURRENT_MODIFICATION",
        &format!("Execution {id} changed before re-drive could be admitted"),
    );
    assert_eq!(
        h.record(&id).await.unwrap().version,
        rec.version,
        "nothing written"
    );
    // Then it is accepted, and a retry with the old version replays.
    let ok = post(
        h.router.clone(),
        json!({"allowFailed": true, "expectedVersion": rec.version}),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let again = post(
        h.router.clone(),
        json!({"allowFailed": true, "expectedVersion": rec.version}),
    )
    .await;
    assert_eq!((again.status, again.text.clone()), (200, ok.text.clone()));
    // Without expectedVersion the retry gets the 409 of the current state.
    seen.expect(
        &post(h.router.clone(), json!({"allowFailed": true})).await,
        409,
        "EXECUTION_NOT_REDRIVABLE",
        &format!("Execution {id} cannot be re-driven from status QUEUED"),
    );
}

async fn resume_token_errors(seen: &Seen) {
    let h = Harness::new(Options {
        env: vec![("TPF_RESUME_TOKEN_SECRET", "resume-secret".into())],
        restaurant_worker: true,
    })
    .await;
    let (_, i) = h.park("Ada").await;
    let p = decision(&order_id(&i), true);
    let complete = format!("{CP}/interactions/complete");
    let invalid = "resumeToken does not match the interaction";
    // As the only handle: undecodable, or without an interactionId.
    for t in ["abc", "!!!.###", "e30.e30", "...."] {
        let body = json!({"resumeToken": t, "responsePayload": p}).to_string();
        seen.expect(
            &call(&h.router, "POST", &complete, CONTROL, Some(&body)).await,
            400,
            "RESUME_TOKEN_INVALID",
            invalid,
        );
    }
    // Alongside an id: validated against the interaction.
    let body =
        json!({"interactionId": i.interaction_id, "resumeToken": "abc.def", "responsePayload": p})
            .to_string();
    seen.expect(
        &call(&h.router, "POST", &complete, CONTROL, Some(&body)).await,
        400,
        "RESUME_TOKEN_INVALID",
        invalid,
    );
    // A configured secret that cannot be resolved.
    let unresolved = Arc::new(CachedSecret::new(
        SecretSource::Reference(SecretRef::Env(
            "TPF_BAD_INPUT_RESUME_SECRET_NEVER_SET".into(),
        )),
        Arc::new(EnvSecretResolver),
    ));
    let router = h.router_with(EngineDeps {
        resume_secret: Some(unresolved),
        ..h.deps.clone()
    });
    seen.expect(
        &call(&router, "POST", &complete, CONTROL, Some(&body)).await,
        503,
        "RESUME_TOKEN_UNAVAILABLE",
        "resume tokens cannot be checked: no resume-token secret is available",
    );
    assert!(h.interaction_of(&i.interaction_id).await.unwrap().is_open());
}

async fn dependency_errors(seen: &Seen) {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let down = Arc::new(Down);
    let unavailable = "the state store is unavailable; retry later";
    let no_executions = h.router_with(EngineDeps {
        executions: down.clone(),
        ..h.deps.clone()
    });
    let no_awaits = h.router_with(EngineDeps {
        awaits: down.clone(),
        ..h.deps.clone()
    });
    let completion =
        json!({"interactionId": i.interaction_id, "responsePayload": decision(&order_id(&i), true)})
            .to_string();
    for (router, method, path, token, body) in [
        (&no_executions, "POST", format!("{CP}/executions"), CONTROL, Some(submit_text("Ada", Some("k")))),
        (&no_executions, "POST", format!("{CP}/executions"), CONTROL, Some(submit_text("Ada", None))),
        (&no_executions, "GET", format!("{CP}/executions"), CONTROL, None),
        (&no_executions, "GET", format!("{CP}/executions/{id}"), CONTROL, None),
        (&no_executions, "GET", format!("{CP}/executions/{id}/result"), CONTROL, None),
        (&no_executions, "GET", format!("{CP}/executions/{id}/history"), CONTROL, None),
        (
            &no_executions,
            "POST",
            format!("/tpf/admin/tenants/acme/executions/{id}/redrive"),
            ADMIN,
            None,
        ),
        (&no_awaits, "GET", format!("{CP}/interactions/pending"), CONTROL, None),
        (&no_awaits, "POST", format!("{CP}/interactions/complete"), CONTROL, Some(completion.clone())),
        (
            &no_awaits,
            "POST",
            format!("{CP}/interactions/complete"),
            CONTROL,
            Some(json!({"correlationId": i.correlation_id, "responsePayload": decision(&order_id(&i), true)}).to_string()),
        ),
    ] {
        seen.expect(&call(router, method, &path, token, body.as_deref()).await, 503, "DEPENDENCY_UNAVAILABLE", unavailable);
    }
    // Validation still comes first.
    seen.expect(
        &call(
            &no_executions,
            "POST",
            &format!("{CP}/executions"),
            CONTROL,
            Some("{}"),
        )
        .await,
        400,
        "MISSING_FIELD",
        "pipelineId is required",
    );
    assert!(h.interaction_of(&i.interaction_id).await.unwrap().is_open());
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn body_rules_codes_are_reachable() {
    body_errors(&Seen::default()).await;
}

#[tokio::test]
async fn size_and_media_type_codes_are_reachable() {
    size_and_media_type(&Seen::default()).await;
}

#[tokio::test]
async fn routing_authentication_and_tenant_codes_are_reachable() {
    routing_and_auth(&Seen::default()).await;
}

#[tokio::test]
async fn query_parameter_codes_are_reachable() {
    query_errors(&Seen::default()).await;
}

#[tokio::test]
async fn action_codes_are_reachable() {
    action_errors(&Seen::default()).await;
}

#[tokio::test]
async fn redrive_codes_are_reachable() {
    redrive_errors(&Seen::default()).await;
}

#[tokio::test]
async fn resume_token_codes_are_reachable() {
    resume_token_errors(&Seen::default()).await;
}

#[tokio::test]
async fn dependency_unavailable_is_reachable() {
    dependency_errors(&Seen::default()).await;
}

#[tokio::test]
async fn every_client_caused_code_of_the_error_table_is_reachable() {
    let seen = Seen::default();
    body_errors(&seen).await;
    size_and_media_type(&seen).await;
    routing_and_auth(&seen).await;
    query_errors(&seen).await;
    action_errors(&seen).await;
    redrive_errors(&seen).await;
    resume_token_errors(&seen).await;
    dependency_errors(&seen).await;
    let table: BTreeSet<String> = TABLE
        .iter()
        .map(|(c, _)| c.to_string())
        .filter(|c| c != "INTERNAL_ERROR")
        .collect();
    assert_eq!(seen.codes(), table);
}

// ---------------------------------------------------------------------------
// Fuzz-ish: malformed bodies, paths and queries at every route

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Odd JSON values (as text) for any member.
const ODD_VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1.5",
    "1e2",
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "\"\"",
    "\"   \"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\u{202e}evil\"",
    "\"\u{feff}bom\"",
    "\"😀\"",
    "\"a\\nb\"",
    "\"a..b\"",
    "\"%2F\"",
    "\"UNI\"",
    "\"MULTI\"",
    "\"RAW\"",
    "[]",
    "[null]",
    "{}",
    "{\"payloadTypeId\":null}",
    "{\"payloadTypeId\":\"java.util.Map\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"{\\\"items\\\":{\\\"a\\\":1}}\"}",
    "{\"payloadTypeId\":\"java.util.List\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"{\\\"items\\\":[{\\\"payloadTypeId\\\":\\\"java.util.Map\\\",\\\"payloadEncoding\\\":\\\"application/tpf-transition+json\\\",\\\"payload\\\":\\\"{}\\\"}]}\"}",
    "{\"payloadTypeId\":\"null\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"1\"}",
    "{\"payloadTypeId\":\"java.lang.String\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"\\\"\\\\ud800\\\"\"}",
    "{\"payloadTypeId\":\"java.math.BigDecimal\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"1e99999\"}",
    "{\"payloadTypeId\":\"java.lang.Long\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"99999999999999999999999\"}",
];

/// Odd path segments (some are not valid URIs: those cases are skipped).
const ODD_SEGMENTS: &[&str] = &[
    "%00",
    "%2F",
    "%2f",
    "%2e%2e",
    "..",
    ".",
    "%FF",
    "%",
    "%zz",
    "%C0%AE",
    "%E2%80%AE",
    "a%20b",
    "%25",
    "a;b",
    "a,b",
    "~x",
    "a:b@c",
    "A.B-c_d",
    "%F0%9F%98%80",
    "%EF%BB%BF",
    "x%0Ay",
    "%7F",
];

/// Odd query strings.
const ODD_QUERIES: &[&str] = &[
    "limit=%00",
    "limit=%FF",
    "limit=-2147483649",
    "limit=2147483647",
    "limit=00001",
    "limit=1%00",
    "limit=%EF%BC%91",
    "cursor=",
    "cursor=%00",
    "cursor=eyJ0IjoiYWNtZSIsImYiOnt9LCJrIjpudWxsfQ",
    "cursor=eyJ0IjoiYWNtZSIsImYiOnt9LCJrIjpbMSwyLDNdfQ",
    "cursor=eyJ0IjoiYWNtZSIsImYiOnt9LCJrIjoiLTEifQ",
    "cursor=eyJ0IjoiYWNtZSIsImYiOnt9LCJrIjpbLTEsbnVsbF19",
    "cursor=eyJ0IjoiYWNtZSIsImYiOnt9LCJrIjotMX0",
    "cursor=eyJ0IjoiYWNtZSIsImYiOnt9LCJrIjoxOGUzMDB9",
    "status=RUNNING&status=",
    "status=%E2%80%AE",
    "pipelineId=%00",
    "pipelineId=restaurant-approval&limit=1",
    "stepId=%F0%9F%98%80",
    "group=%C0%AE",
    "assignee=%0D%0A",
    "a=%&b=%%&c",
    "&&&=&==",
    "limit=1&limit=%FF",
    "%FF=1",
    "limit",
];

#[tokio::test]
async fn malformed_requests_never_cause_a_500_and_errors_are_code_and_message() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let valid_bodies = |path: &str| -> String {
        if path.ends_with("/executions") {
            submit_text("Ada", Some("fuzz-key"))
        } else if path.ends_with("/complete") {
            json!({"interactionId": i.interaction_id, "responsePayload": decision(&order_id(&i), true), "idempotencyKey": "k", "actor": "a"}).to_string()
        } else {
            json!({"expectedVersion": 0, "reason": "r", "allowFailed": true, "actor": "a"})
                .to_string()
        }
    };
    let members = |path: &str| -> &'static [&'static str] {
        if path.ends_with("/executions") {
            &[
                "pipelineId",
                "inputShape",
                "inputPayload",
                "idempotencyKey",
                "outputStreaming",
            ]
        } else if path.ends_with("/complete") {
            &[
                "interactionId",
                "correlationId",
                "resumeToken",
                "responsePayload",
                "idempotencyKey",
                "actor",
            ]
        } else {
            &["expectedVersion", "reason", "allowFailed", "actor"]
        }
    };
    let all = routes(&id);
    let mut sent = 0;
    let mut statuses = BTreeSet::new();
    let posts: Vec<_> = all.iter().filter(|r| r.0 == "POST").cloned().collect();
    let gets: Vec<_> = all.iter().filter(|r| r.0 == "GET").cloned().collect();
    for case in 0..300 {
        // Bodies go to the routes that read one, queries to the lists.
        let (method, path, token) = match case % 7 {
            0..=3 => rng.pick(&posts).clone(),
            4 => rng.pick(&all).clone(),
            _ => rng.pick(&gets).clone(),
        };
        let mut uri = path.clone();
        let mut body: Vec<u8>;
        let mut content_type = Some("application/json".to_string());
        match case % 7 {
            // Random bytes.
            0 => {
                let n = rng.below(300);
                body = rng.bytes(n);
                if rng.below(3) == 0 {
                    body.insert(0, b'{');
                }
            }
            // Truncated valid JSON.
            1 => {
                let full = valid_bodies(&path);
                let cut = rng.below(full.len().max(1));
                body = full.as_bytes()[..cut].to_vec();
            }
            // One member with an odd value (or an odd member name).
            2 => {
                let mut v: Value = serde_json::from_str(&valid_bodies(&path)).unwrap();
                let name = *rng.pick(members(&path));
                let odd = *rng.pick(ODD_VALUES);
                let text = match serde_json::from_str::<Value>(odd) {
                    Ok(parsed) => {
                        v[name] = parsed;
                        v.to_string()
                    }
                    // Not representable as a Value: splice the raw text in.
                    Err(_) => {
                        let mut obj = v.as_object().unwrap().clone();
                        obj.remove(name);
                        let rest = serde_json::to_string(&obj).unwrap();
                        format!("{{\"{name}\":{odd},{}", &rest[1..])
                    }
                };
                body = text.into_bytes();
                if rng.below(8) == 0 {
                    body = format!("{{\"\\u0000\":1,\"{name}\":{odd}}}").into_bytes();
                }
            }
            // Deep nesting.
            3 => {
                let depth = 100 + rng.below(200);
                let open = if rng.below(2) == 0 { "[" } else { "{\"a\":" };
                let close = if open == "[" { "]" } else { "}" };
                body = format!("{{\"x\":{}1{}}}", open.repeat(depth), close.repeat(depth))
                    .into_bytes();
                if rng.below(2) == 0 {
                    body.truncate(body.len() / 2);
                }
            }
            // Odd path segments.
            4 => {
                let seg = *rng.pick(ODD_SEGMENTS);
                uri = if rng.below(2) == 0 || !path.contains(&id) {
                    path.replacen("/acme/", &format!("/{seg}/"), 1)
                } else {
                    path.replace(&id, seg)
                };
                body = valid_bodies(&path).into_bytes();
            }
            // Random percent-escaped bytes as a query value or a path id.
            5 => {
                let n = 1 + rng.below(12);
                let escaped: String = rng.bytes(n).iter().map(|b| format!("%{b:02X}")).collect();
                let name = *rng.pick(&[
                    "limit",
                    "cursor",
                    "status",
                    "pipelineId",
                    "stepId",
                    "assignee",
                    "group",
                ]);
                uri = if rng.below(3) == 0 {
                    path.replacen("/acme/", &format!("/a{escaped}/"), 1)
                } else {
                    format!("{path}?{name}={escaped}")
                };
                body = Vec::new();
            }
            // Odd queries and content types.
            _ => {
                let q = *rng.pick(ODD_QUERIES);
                uri = format!("{path}?{q}");
                body = valid_bodies(&path).into_bytes();
                content_type = match rng.below(6) {
                    0 => None,
                    1 => Some("application/json; charset=latin1".into()),
                    2 => Some("APPLICATION/VND.API+JSON".into()),
                    3 => Some("text/json".into()),
                    _ => Some("application/json".into()),
                };
            }
        }
        let auth = bearer(token);
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(ct) = &content_type {
            headers.push(("content-type", ct.as_str()));
        }
        let Some(a) = send(&h.router, method, &uri, &headers, body.clone()).await else {
            continue;
        };
        sent += 1;
        statuses.insert(a.status);
        assert_ne!(
            a.status,
            500,
            "case {case}: {method} {uri} with {:?} → {a:?}",
            String::from_utf8_lossy(&body)
        );
        if a.status >= 400 {
            check_error_shape(&a);
        } else {
            assert!(
                serde_json::from_str::<Value>(&a.text).is_ok(),
                "case {case}: {a:?}"
            );
            assert!(a.headers.contains_key("x-request-id"));
        }
    }
    assert!(sent >= 200, "only {sent} requests could be sent");
    assert!(statuses.len() >= 4, "{statuses:?}");
    // The parked execution is still consistent: readable, and its history
    // has no gap.
    let st = call(
        &h.router,
        "GET",
        &format!("{CP}/executions/{id}"),
        CONTROL,
        None,
    )
    .await;
    assert_eq!(st.status, 200);
    let events = h.history_of(&id).await;
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e.version, n as u64);
    }
}

#[tokio::test]
async fn every_body_member_with_every_odd_value_is_answered_without_a_500() {
    let h = Harness::new(Options::default()).await;
    let (id, i) = h.park("Ada").await;
    let redrive = format!("/tpf/admin/tenants/acme/executions/{id}/redrive");
    let cases: [(&str, &str, Value); 3] = [
        (
            "/tpf/control-plane/tenants/acme/executions",
            CONTROL,
            submit_body("Ada", Some("odd-key")),
        ),
        (
            "/tpf/control-plane/tenants/acme/interactions/complete",
            CONTROL,
            json!({"interactionId": i.interaction_id, "responsePayload": decision(&order_id(&i), true), "idempotencyKey": "k", "actor": "a"}),
        ),
        (
            &redrive,
            ADMIN,
            json!({"expectedVersion": 0, "reason": "r", "allowFailed": true, "actor": "a"}),
        ),
    ];
    let mut answered = 0;
    for (path, token, valid) in &cases {
        let mut names: Vec<String> = valid.as_object().unwrap().keys().cloned().collect();
        names.extend(
            [
                "correlationId",
                "resumeToken",
                "outputStreaming",
                "unknownMember",
            ]
            .map(String::from),
        );
        for name in &names {
            for odd in ODD_VALUES {
                // Spliced as text, so values serde cannot hold stay as sent.
                let mut rest = valid.as_object().unwrap().clone();
                rest.remove(name);
                let rest = serde_json::to_string(&rest).unwrap();
                let sep = if rest == "{}" { "" } else { "," };
                let body = format!("{{\"{name}\":{odd}{sep}{}", &rest[1..]);
                let a = call(&h.router, "POST", path, token, Some(&body)).await;
                answered += 1;
                assert_ne!(a.status, 500, "{path} {body} → {a:?}");
                if a.status >= 400 {
                    check_error_shape(&a);
                } else {
                    assert!(serde_json::from_str::<Value>(&a.text).is_ok(), "{a:?}");
                }
            }
        }
    }
    assert!(answered > 500, "{answered}");
}
