//! Shared by the integration tests: serve a worker on 127.0.0.1:0 and call
//! it over real HTTP with signed requests.
#![allow(dead_code)]

use restaurant_worker::time::{format_rfc3339_ms, now_ms};
use restaurant_worker::{SecretSource, WorkerConfig, WorkerIdentity};
use serde_json::{json, Value};
use tpf_core::domain::worker_protocol::{
    sign, CAPABILITIES_PATH, EXECUTE_PATH, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

pub const SECRET: &str = "tpf-demo-worker-secret";
pub const TENANT: &str = "acme";
pub const NON_RETRYABLE: &str = "org.pipelineframework.step.NonRetryableException";
pub const ENCODING: &str = "application/tpf-transition+json";
pub const SNAPSHOT_TYPE: &str = "org.pipelineframework.orchestrator.ExecutionInputSnapshot";
pub const DECISION_TYPE: &str =
    "org.pipelineframework.restaurantapproval.common.domain.RestaurantDecision";

/// A running worker.
pub struct Worker {
    pub base: String,
    pub secret: String,
    pub client: reqwest::Client,
}

pub fn config() -> WorkerConfig {
    WorkerConfig::new(SecretSource::Value(SECRET.into()))
}

/// Serves `config` on 127.0.0.1:0 for the rest of the test's runtime.
pub async fn spawn(config: WorkerConfig) -> Worker {
    let secret = config.secret.resolve().unwrap_or_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let app = restaurant_worker::router(config);
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Worker {
        base: format!("http://{addr}"),
        secret,
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
    }
}

pub fn fresh_nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn now_timestamp() -> String {
    format_rfc3339_ms(now_ms())
}

/// Signature headers for `method`/`path`/`body`.
pub fn signed_headers(
    secret: &str,
    method: &str,
    path: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (NONCE_HEADER, nonce.to_string()),
        (
            SIGNATURE_HEADER,
            sign(secret, method, path, timestamp, nonce, body),
        ),
    ]
}

impl Worker {
    /// POST to the execute route with exactly `headers`.
    pub async fn post_raw(
        &self,
        body: &[u8],
        headers: &[(&'static str, String)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{EXECUTE_PATH}", self.base))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.send().await.expect("send")
    }

    /// GET the capabilities route with exactly `headers`.
    pub async fn get_raw(&self, headers: &[(&'static str, String)]) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{CAPABILITIES_PATH}", self.base));
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.send().await.expect("send")
    }

    /// A correctly signed execute call.
    pub async fn post_signed(&self, body: &[u8]) -> reqwest::Response {
        let headers = signed_headers(
            &self.secret,
            "POST",
            EXECUTE_PATH,
            &now_timestamp(),
            &fresh_nonce(),
            body,
        );
        self.post_raw(body, &headers).await
    }

    /// A correctly signed execute call of `command`, expecting 200 and a
    /// JSON result envelope.
    pub async fn execute(&self, command: &Value) -> Value {
        let res = self.post_signed(command.to_string().as_bytes()).await;
        assert_eq!(res.status(), 200);
        res.json().await.expect("result envelope")
    }
}

/// A §7.3 command for the worker's default identity.
pub fn command(execution_id: &str, step: u64, type_id: &str, payload: &str) -> Value {
    let id = WorkerIdentity::demo();
    let key = format!("{execution_id}:{step}:0");
    json!({
        "tenantId": TENANT,
        "executionId": execution_id,
        "pipelineId": id.pipeline_id,
        "contractVersion": id.contract_version,
        "releaseVersion": id.release_version,
        "currentStepIndex": step,
        "stopBeforeStepIndex": -1,
        "attempt": 0,
        "resultShape": "SINGLE",
        "executionVersion": 1,
        "transitionKey": key,
        "traceId": key,
        "payloadTypeId": type_id,
        "payloadEncoding": ENCODING,
        "payload": payload,
    })
}

/// A fresh run's command: Compact of the UNI snapshot holding `order`.
pub fn order_command(execution_id: &str, order: &Value) -> Value {
    let snapshot = json!({
        "shape": "UNI",
        "payload": {
            "payloadTypeId": "org.example.OrderRequest",
            "payloadEncoding": ENCODING,
            "payload": order.to_string(),
        },
        "items": [],
    });
    command(execution_id, 0, SNAPSHOT_TYPE, &snapshot.to_string())
}

/// A resumed run's command: the resume envelope's payload (§4.6).
pub fn decision_command(execution_id: &str, decision: &Value) -> Value {
    command(execution_id, 3, DECISION_TYPE, &decision.to_string())
}

pub fn sample_order() -> Value {
    json!({
        "requestId": uuid::Uuid::new_v4().to_string(),
        "customerName": "Ada Lovelace",
        "restaurantName": "Cafe TPF",
        "items": [{"name": "soup", "quantity": 1}],
        "totalAmount": 27.50,
        "currency": "EUR",
    })
}
