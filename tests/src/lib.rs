//! Harness of the engine tests: the control-plane router over `memory`
//! stores with a manual clock, a recording queue and dead-letter sink, a
//! release registered and activated through the real actions, and the
//! example restaurant worker (or a scripted one) as a real HTTP server.

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

use tpf_core::actions::register_release::DescriptorSource;
use tpf_core::actions::register_worker::RegisterWorker;
use tpf_core::actions::{
    activate_release, process_work_item, register_release, register_worker, EngineDeps,
    ReleaseDeps, WorkerDeps,
};
use tpf_core::config::{Config, FunctionName, SecretSource};
use tpf_core::domain::location::Root;
use tpf_core::http::{router, AppState};
use tpf_core::ports::{ManualClock, WorkItem};
use tpf_core::providers::dead_letters::RecordingDeadLetterSink;
use tpf_core::providers::file::LocalLocationReader;
use tpf_core::providers::http::RestWorkerTransport;
use tpf_core::providers::memory::{
    MemoryArtifactStore, MemoryAwaitStore, MemoryExecutionStore, MemoryReleaseRegistry,
    MemoryWorkerRegistry,
};
use tpf_core::providers::queues::RecordingQueue;
use tpf_core::providers::secrets::{CachedSecret, EnvSecretResolver};

pub use tpf_core::actions::process_work_item::Processed;

pub const CONTROL: &str = "control-token";
pub const ADMIN: &str = "admin-token";
pub const SECRET: &str = "worker-secret";
pub const TENANT: &str = "acme";
pub const PIPELINE: &str = "restaurant-approval";

/// Serves `router` on 127.0.0.1:0; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Harness options.
pub struct Options {
    /// `TPF_*` overrides of the engine settings (e.g. `TPF_MAX_RETRIES`).
    pub env: Vec<(&'static str, String)>,
    /// Register the example restaurant worker (else no worker is registered).
    pub restaurant_worker: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            env: vec![],
            restaurant_worker: true,
        }
    }
}

/// The whole engine in one process.
pub struct Harness {
    pub deps: EngineDeps,
    pub queue: Arc<RecordingQueue>,
    pub dead_letters: Arc<RecordingDeadLetterSink>,
    pub clock: Arc<ManualClock>,
    pub router: Router,
    pub release_deps: ReleaseDeps,
    pub worker_deps: WorkerDeps,
    pub executions: Arc<MemoryExecutionStore>,
    pub awaits: Arc<MemoryAwaitStore>,
    /// Base URL of the example worker.
    pub worker_url: String,
    _dir: tempfile::TempDir,
}

/// A response read back.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Resp {
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        &self.body
    }
    #[track_caller]
    pub fn err(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (status, Some(code)),
            "{}",
            self.body
        );
    }
}

impl Harness {
    pub async fn new(opts: Options) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(now_ms()));
        let mut vars: HashMap<String, String> =
            HashMap::from([("TPF_WORKER_SHARED_SECRET".into(), SECRET.into())]);
        for (k, v) in &opts.env {
            vars.insert(k.to_string(), v.clone());
        }
        let config = Config::from_lookup(FunctionName::ControlPlane, dir.path(), |k| {
            vars.get(k).cloned()
        })
        .unwrap();
        let releases = Arc::new(MemoryReleaseRegistry::new());
        let workers = Arc::new(MemoryWorkerRegistry::new());
        let executions = Arc::new(MemoryExecutionStore::new());
        let awaits = Arc::new(MemoryAwaitStore::new());
        let queue = Arc::new(RecordingQueue::new());
        let dead_letters = Arc::new(RecordingDeadLetterSink::new());
        let secret = || {
            CachedSecret::new(
                SecretSource::Literal(SECRET.into()),
                Arc::new(EnvSecretResolver),
            )
        };
        let transport = RestWorkerTransport::new(
            secret(),
            std::time::Duration::from_millis(config.engine.connect_timeout_ms),
            std::time::Duration::from_millis(config.engine.request_timeout_ms),
            config.engine.max_response_bytes,
            config.engine.non_retryable_classes.clone(),
        )
        .unwrap();
        let deps = EngineDeps {
            executions: executions.clone(),
            awaits: awaits.clone(),
            releases: releases.clone(),
            workers: workers.clone(),
            transport: Arc::new(transport),
            queue: queue.clone(),
            dead_letters: dead_letters.clone(),
            clock: clock.clone(),
            settings: Arc::new(config.engine.clone()),
            stale_after_ms: config.worker_stale_after_ms,
            resume_secret: config
                .engine
                .resume_token_secret
                .clone()
                .map(|s| Arc::new(CachedSecret::new(s, Arc::new(EnvSecretResolver)))),
        };
        let root = dir.path().join("releases");
        std::fs::create_dir_all(&root).unwrap();
        let release_deps = ReleaseDeps {
            registry: releases.clone(),
            store: Arc::new(MemoryArtifactStore::new()),
            locations: Arc::new(LocalLocationReader),
            clock: clock.clone(),
            roots: vec![Root::Local(root.to_str().unwrap().to_string())],
            max_artifact_bytes: 10_000_000,
        };
        let worker_deps = WorkerDeps {
            registry: workers.clone(),
            clock: clock.clone(),
            stale_after_ms: config.worker_stale_after_ms,
        };
        let worker_url = serve(restaurant_worker::router(
            restaurant_worker::config::WorkerConfig::new(
                restaurant_worker::config::SecretSource::Value(SECRET.into()),
            ),
        ))
        .await;
        let state = AppState {
            function: FunctionName::ControlPlane,
            control_plane_enabled: true,
            admin_enabled: true,
            control_plane_token: Some(CachedSecret::new(
                SecretSource::Literal(CONTROL.into()),
                Arc::new(EnvSecretResolver),
            )),
            admin_token: Some(CachedSecret::new(
                SecretSource::Literal(ADMIN.into()),
                Arc::new(EnvSecretResolver),
            )),
            allowed_tenants: None,
            releases: None,
            workers: None,
            engine: Some(deps.clone()),
        };
        let h = Harness {
            router: router(Arc::new(state)),
            deps,
            queue,
            dead_letters,
            clock,
            release_deps,
            worker_deps,
            executions,
            awaits,
            worker_url,
            _dir: dir,
        };
        h.activate_demo_release(&demo_release::DemoSpec::default())
            .await;
        if opts.restaurant_worker {
            let url = h.worker_url.clone();
            h.register_worker("kitchen-1", &url, &demo_release::DemoSpec::default())
                .await;
        }
        h
    }

    /// Writes, registers and activates a demo release of `spec`.
    pub async fn activate_demo_release(&self, spec: &demo_release::DemoSpec) {
        let Root::Local(root) = &self.release_deps.roots[0] else {
            unreachable!()
        };
        let demo = demo_release::write_release(std::path::Path::new(root), spec).unwrap();
        let source = DescriptorSource::Location(demo.descriptor_path.to_str().unwrap().to_string());
        register_release::run(&self.release_deps, TENANT, &spec.pipeline_id, source)
            .await
            .unwrap();
        activate_release::run(
            &self.release_deps,
            TENANT,
            &spec.pipeline_id,
            &spec.release_version,
        )
        .await
        .unwrap();
    }

    /// Registers a `rest` worker for `spec`'s release at `endpoint`.
    pub async fn register_worker(
        &self,
        worker_id: &str,
        endpoint: &str,
        spec: &demo_release::DemoSpec,
    ) {
        let identity = restaurant_worker::config::WorkerIdentity::from_spec(spec);
        let req = RegisterWorker {
            worker_id: worker_id.into(),
            contract_version: spec.contract_version.clone(),
            release_version: spec.release_version.clone(),
            protocol: "rest".into(),
            endpoint: endpoint.into(),
            artifact_id: identity.artifact_id,
            artifact_digest: identity.artifact_digest,
        };
        register_worker::run(&self.worker_deps, TENANT, &spec.pipeline_id, req)
            .await
            .unwrap();
    }

    /// Sends a request through the control-plane router.
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(b.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// POST submit with `body`.
    pub async fn submit(&self, body: Value) -> Resp {
        self.call(
            "POST",
            &format!("/tpf/control-plane/tenants/{TENANT}/executions"),
            CONTROL,
            Some(body),
        )
        .await
    }

    /// Status of an execution.
    pub async fn status(&self, id: &str) -> Value {
        self.call(
            "GET",
            &format!("/tpf/control-plane/tenants/{TENANT}/executions/{id}"),
            CONTROL,
            None,
        )
        .await
        .ok()
        .clone()
    }

    /// History event types of an execution.
    pub async fn history(&self, id: &str) -> Vec<Value> {
        let r = self
            .call(
                "GET",
                &format!("/tpf/control-plane/tenants/{TENANT}/executions/{id}/history"),
                CONTROL,
                None,
            )
            .await;
        r.ok()["events"].as_array().unwrap().clone()
    }

    /// Runs `process_work_item` for every queued item due now (delay 0),
    /// until none is left; delayed items stay queued. Returns the outcomes.
    pub async fn drive(&self) -> Vec<Processed> {
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for _ in 0..20 {
            let items = self.queue.drain();
            if items.is_empty() {
                break;
            }
            for (item, delay) in items {
                if delay > 0 {
                    keep.push((item, delay));
                    continue;
                }
                out.push(self.process(&item).await);
            }
        }
        for (item, delay) in keep {
            self.deps.queue.enqueue(&item, delay).await.unwrap();
        }
        out
    }

    /// One `process_work_item` run for `item`.
    pub async fn process(&self, item: &WorkItem) -> Processed {
        process_work_item::run(&self.deps, &serde_json::to_string(item).unwrap())
            .await
            .unwrap()
    }

    /// Delivers every queued item, delayed ones included (advancing the
    /// clock past the longest delay first), until the queue is empty.
    pub async fn drive_all(&self) -> Vec<Processed> {
        let mut out = Vec::new();
        for _ in 0..20 {
            let items = self.queue.drain();
            if items.is_empty() {
                break;
            }
            let max = items.iter().map(|(_, d)| *d).max().unwrap_or(0);
            self.clock.advance(max as i64);
            for (item, _) in items {
                out.push(self.process(&item).await);
            }
        }
        out
    }
}

/// An order input envelope of the restaurant demo.
pub fn order(customer: &str) -> Value {
    let payload = json!({
        "requestId": "5b0e2c1a-8f3d-4e6b-a9c7-1d2e3f4a5b6c",
        "customerName": customer,
        "restaurantName": "Cafe TPF",
        "items": "Margherita Pizza, Sparkling Water",
        "totalAmount": "27.50",
        "currency": "EUR"
    });
    json!({
        "payloadTypeId": "org.pipelineframework.restaurantapproval.common.dto.PlaceRestaurantOrderRequestDto",
        "payloadEncoding": "application/tpf-transition+json",
        "payload": payload.to_string(),
    })
}

/// A submit body for `order(customer)`.
pub fn submit_body(customer: &str, key: Option<&str>) -> Value {
    let mut b =
        json!({"pipelineId": PIPELINE, "inputShape": "UNI", "inputPayload": order(customer)});
    if let Some(k) = key {
        b["idempotencyKey"] = json!(k);
    }
    b
}

/// A restaurant decision as a completion envelope (a `java.util.Map`).
pub fn decision(order_id: &str, approved: bool) -> Value {
    let item = |t: &str, p: String| json!({"payloadTypeId": t, "payloadEncoding": "application/tpf-transition+json", "payload": p});
    let items = json!({
        "orderId": item("java.lang.String", json!(order_id).to_string()),
        "approved": item("java.lang.Boolean", approved.to_string()),
        "note": item("java.lang.String", "\"Looks good\"".to_string()),
    });
    json!({"payloadTypeId": "java.util.Map", "payloadEncoding": "application/tpf-transition+json",
           "payload": json!({"items": items}).to_string()})
}

/// A worker whose answers tests script: each execute call pops the next
/// (status, body) and records the request body.
#[derive(Clone, Default)]
pub struct ScriptedWorker {
    pub answers: Arc<Mutex<Vec<(u16, String)>>>,
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedWorker {
    /// Serves it; returns the base URL.
    pub async fn start(&self) -> String {
        let me = self.clone();
        let app = Router::new().route(
            "/pipeline/worker/transitions/execute",
            axum::routing::post(move |body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    me.requests
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    let (status, text) = {
                        let mut a = me.answers.lock().unwrap();
                        if a.is_empty() {
                            (500, "{}".to_string())
                        } else {
                            a.remove(0)
                        }
                    };
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/json")],
                        text,
                    )
                }
            }),
        );
        serve(app).await
    }

    /// Queues an answer.
    pub fn answer(&self, status: u16, body: Value) {
        self.answers
            .lock()
            .unwrap()
            .push((status, body.to_string()));
    }
}
