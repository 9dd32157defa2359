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
            probe: None,
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
        self.submit_for(TENANT, body).await
    }

    /// POST submit with `body` under `tenant`.
    pub async fn submit_for(&self, tenant: &str, body: Value) -> Resp {
        self.call(
            "POST",
            &format!("/tpf/control-plane/tenants/{tenant}/executions"),
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

pub use engine_support::*;

/// Helpers of the engine conformance tests (`engine_submit`, `engine_status`,
/// `engine_complete`, `engine_redrive`): custom releases, worker records
/// written directly, raw HTTP calls, a router over altered deps, store and
/// queue wrappers that fail or lose on demand, and scripted suspensions.
pub mod engine_support {
    use super::{Harness, Resp, CONTROL, TENANT};
    use async_trait::async_trait;
    use axum::body::Body;
    use axum::http::Request;
    use axum::Router;
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    use tpf_core::actions::register_release::DescriptorSource;
    use tpf_core::actions::{activate_release, register_release, EngineDeps};
    use tpf_core::config::{FunctionName, SecretSource};
    use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
    use tpf_core::domain::execution::{EventType, ExecutionRecord, HistoryEvent, KeyEntry};
    use tpf_core::domain::location::Root;
    use tpf_core::domain::release::{ActivationEvent, ActivationType};
    use tpf_core::domain::worker::{WorkerEntry, WorkerEvent, WorkerEventType};
    use tpf_core::error::StoreError;
    use tpf_core::http::{router, AppState};
    use tpf_core::ports::{
        AwaitStore, CreateExecution, ExecutionFilter, ExecutionStore, ImportOutcome, PendingFilter,
        WorkItem, WorkQueue, WorkerRegistry, Write,
    };
    use tpf_core::providers::secrets::{CachedSecret, EnvSecretResolver};

    pub use demo_release::DemoSpec;

    /// A raw response: status, headers and the body text.
    #[derive(Debug)]
    pub struct RawResp {
        pub status: u16,
        pub headers: axum::http::HeaderMap,
        pub text: String,
    }

    /// An envelope `{payloadTypeId, payloadEncoding, payload}`.
    pub fn payload_envelope(type_id: &str, payload: &str) -> Value {
        json!({"payloadTypeId": type_id, "payloadEncoding": "application/tpf-transition+json", "payload": payload})
    }

    /// A demo contract of `spec` whose steps are `steps` (each a step object).
    pub fn contract_with_steps(spec: &DemoSpec, steps: Value) -> Value {
        let mut c = demo_release::contract(spec);
        c["steps"] = steps;
        c
    }

    /// Sends `method path` through `router` with an optional raw body and
    /// content type; the body comes back as text.
    pub async fn call_raw_on(
        router: &Router,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> RawResp {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let body = body.map_or_else(Body::empty, |t| Body::from(t.to_string()));
        let resp = router.clone().oneshot(b.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        RawResp {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// POST submit with `body` through `router` (control-plane token).
    pub async fn submit_on(router: &Router, body: Value) -> Resp {
        call_on(
            router,
            "POST",
            &format!("/tpf/control-plane/tenants/{TENANT}/executions"),
            CONTROL,
            Some(body),
        )
        .await
    }

    /// [`call_raw_on`] parsed as JSON.
    pub async fn call_on(
        router: &Router,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Resp {
        let text = body.map(|v| v.to_string());
        let ct = text.as_ref().map(|_| "application/json");
        let r = call_raw_on(router, method, path, token, text.as_deref(), ct).await;
        Resp {
            status: r.status,
            headers: r.headers,
            body: serde_json::from_str(&r.text).unwrap_or(Value::Null),
        }
    }

    impl Harness {
        /// A raw call through the harness router.
        pub async fn call_raw(
            &self,
            method: &str,
            path: &str,
            token: &str,
            body: Option<&str>,
            content_type: Option<&str>,
        ) -> RawResp {
            call_raw_on(&self.router, method, path, token, body, content_type).await
        }

        /// The control-plane router over `deps` (same tokens as the harness).
        pub fn router_with(&self, deps: EngineDeps) -> Router {
            let token = |t: &str| {
                Some(CachedSecret::new(
                    SecretSource::Literal(t.into()),
                    Arc::new(EnvSecretResolver),
                ))
            };
            router(Arc::new(AppState {
                function: FunctionName::ControlPlane,
                control_plane_enabled: true,
                admin_enabled: true,
                control_plane_token: token(CONTROL),
                admin_token: token(super::ADMIN),
                allowed_tenants: None,
                releases: None,
                workers: None,
                engine: Some(deps),
            }))
        }

        /// Writes a release of `spec` whose artifact embeds `contract`
        /// (beneath the registration root, in a directory of its own),
        /// registers it and, with `activate`, activates it. Returns the
        /// artifact id and digest workers must present.
        pub async fn release_with_contract(
            &self,
            spec: &DemoSpec,
            contract: &Value,
            activate: bool,
        ) -> (String, String) {
            let Root::Local(root) = &self.release_deps.roots[0] else {
                unreachable!()
            };
            let dir = std::path::Path::new(root)
                .join(format!("custom-{}", spec.pipeline_id))
                .join(&spec.release_version);
            std::fs::create_dir_all(&dir).unwrap();
            let bytes = demo_release::artifact_zip(contract);
            std::fs::write(dir.join("app.jar"), &bytes).unwrap();
            let artifact_id = format!("{}-app", spec.pipeline_id);
            let digest = demo_release::digest(&bytes);
            let descriptor = json!({
                "schemaVersion": 1,
                "pipelineId": spec.pipeline_id,
                "contractVersion": spec.contract_version,
                "releaseVersion": spec.release_version,
                "artifacts": [{"artifactId": artifact_id, "kind": "jar", "uri": "app.jar", "digest": digest}]
            });
            let path = dir.join("pipeline-release.json");
            std::fs::write(&path, descriptor.to_string()).unwrap();
            let source = DescriptorSource::Location(path.to_str().unwrap().to_string());
            register_release::run(&self.release_deps, TENANT, &spec.pipeline_id, source)
                .await
                .unwrap();
            if activate {
                activate_release::run(
                    &self.release_deps,
                    TENANT,
                    &spec.pipeline_id,
                    &spec.release_version,
                )
                .await
                .unwrap();
            }
            (artifact_id, digest)
        }

        /// A fresh `HEALTHY` `rest` lifecycle entry of `spec`'s release
        /// carrying the example worker's artifact identity.
        pub fn worker_entry_for(
            &self,
            worker_id: &str,
            endpoint: &str,
            spec: &DemoSpec,
        ) -> WorkerEntry {
            let identity = restaurant_worker::config::WorkerIdentity::from_spec(spec);
            let now = tpf_core::ports::Clock::now_ms(self.clock.as_ref());
            WorkerEntry {
                tenant_id: TENANT.into(),
                pipeline_id: spec.pipeline_id.clone(),
                contract_version: spec.contract_version.clone(),
                release_version: spec.release_version.clone(),
                worker_id: worker_id.into(),
                protocol: "rest".into(),
                endpoint: endpoint.into(),
                artifact_id: identity.artifact_id,
                artifact_digest: identity.artifact_digest,
                registered_at_epoch_ms: now,
                last_heartbeat_at_epoch_ms: now,
                draining_since_epoch_ms: 0,
                state_version: 1,
                updated_at_epoch_ms: now,
            }
        }

        /// Writes `entry` straight into the worker registry (no probe),
        /// replacing any current entry of that worker.
        pub async fn put_worker_entry(&self, entry: &WorkerEntry) {
            put_worker_entry_in(self.worker_deps.registry.as_ref(), entry).await;
        }

        /// Now on the harness clock.
        pub fn now(&self) -> i64 {
            tpf_core::ports::Clock::now_ms(self.clock.as_ref())
        }

        /// The stored execution (live), read through the store trait.
        pub async fn record(&self, id: &str) -> Option<ExecutionRecord> {
            ExecutionStore::get(self.executions.as_ref(), TENANT, id, self.now())
                .await
                .unwrap()
        }

        /// The stored history, oldest first, read through the store trait.
        pub async fn history_of(&self, id: &str) -> Vec<HistoryEvent> {
            ExecutionStore::history(
                self.executions.as_ref(),
                TENANT,
                id,
                None,
                10_000,
                self.now(),
            )
            .await
            .unwrap()
            .unwrap_or_default()
        }

        /// Every live execution of the tenant.
        pub async fn all_records(&self) -> Vec<ExecutionRecord> {
            ExecutionStore::list(
                self.executions.as_ref(),
                TENANT,
                &ExecutionFilter::default(),
                None,
                10_000,
                self.now(),
            )
            .await
            .unwrap()
        }

        /// The stored idempotency key entry `key` of the tenant.
        pub async fn key_entry(&self, key: &str) -> Option<KeyEntry> {
            self.executions
                .get_key(TENANT, key, self.now())
                .await
                .unwrap()
        }

        /// Appends an `ARTIFACT_UNVERIFIED` activation event (with `detail`)
        /// for the active release of the demo pipeline, as a failed
        /// re-verification records it.
        pub async fn mark_artifact_unverified(&self, detail: &str) {
            let reg = &self.release_deps.registry;
            let latest = reg
                .latest_event(TENANT, super::PIPELINE)
                .await
                .unwrap()
                .unwrap();
            let event = ActivationEvent {
                seq: latest.seq + 1,
                event_type: ActivationType::ArtifactUnverified,
                release_version: latest.release_version.clone(),
                previous_release_version: Some(latest.release_version.clone()),
                artifact_verified: false,
                activated_at_epoch_ms: latest.activated_at_epoch_ms,
                at_epoch_ms: self.now(),
                detail: Some(detail.into()),
            };
            reg.append_event(TENANT, super::PIPELINE, &event)
                .await
                .unwrap();
        }

        /// The stored interaction of the tenant.
        pub async fn interaction_of(&self, id: &str) -> Option<AwaitInteraction> {
            AwaitStore::get_interaction(self.awaits.as_ref(), TENANT, id, self.now())
                .await
                .unwrap()
        }

        /// The stored unit of the tenant.
        pub async fn unit_of(&self, id: &str) -> Option<AwaitUnit> {
            AwaitStore::get_unit(self.awaits.as_ref(), TENANT, id, self.now())
                .await
                .unwrap()
        }

        /// Writes `next` over the stored record (expected version
        /// `next.version - 1`) with an event of `event_type` describing it:
        /// how tests build states the flow cannot reach (e.g. `DLQ`).
        pub async fn force_write(&self, next: &ExecutionRecord, event_type: EventType) {
            let prev = self.record(&next.execution_id).await.expect("record");
            let event = HistoryEvent {
                version: next.version,
                event_type,
                at_epoch_ms: next.updated_at_epoch_ms,
                previous_status: Some(prev.status),
                status: next.status,
                step_index: next.current_step_index,
                attempt: next.attempt,
                transition_key: next.last_transition_key.clone(),
                error_code: next.error_code.clone(),
                error_message: next.error_message.clone(),
                terminal_reason: None,
                next_due_at_epoch_ms: None,
                actor: None,
                reason: None,
                lease_owner: next.lease_owner.clone(),
                worker_id: None,
                interaction_id: None,
                unit_id: None,
            };
            let w = ExecutionStore::update(
                self.executions.as_ref(),
                next,
                next.version - 1,
                &event,
                self.now(),
            )
            .await
            .unwrap();
            assert_eq!(w, Write::Written, "forced write lost");
        }

        /// Submits the restaurant order and drives it to `WAITING_EXTERNAL`
        /// at step 2 with the example worker; returns the execution id and
        /// its (open) interaction.
        pub async fn park(&self, customer: &str) -> (String, AwaitInteraction) {
            let v = self.submit(super::submit_body(customer, None)).await;
            let id = v.ok()["executionId"].as_str().unwrap().to_string();
            self.drive().await;
            let r = self.record(&id).await.unwrap();
            assert_eq!(r.status.as_str(), "WAITING_EXTERNAL");
            let unit = self
                .unit_of(r.await_unit_id.as_deref().unwrap())
                .await
                .unwrap();
            let i = self
                .interaction_of(unit.primary_interaction_id.as_deref().unwrap())
                .await
                .unwrap();
            (id, i)
        }

        /// POST complete with `body`.
        pub async fn complete_body(&self, body: Value) -> Resp {
            self.call(
                "POST",
                &format!("/tpf/control-plane/tenants/{TENANT}/interactions/complete"),
                CONTROL,
                Some(body),
            )
            .await
        }

        /// POST re-drive of `id` with an optional JSON body (admin token).
        pub async fn redrive(&self, id: &str, body: Option<Value>) -> Resp {
            self.call(
                "POST",
                &format!("/tpf/admin/tenants/{TENANT}/executions/{id}/redrive"),
                super::ADMIN,
                body,
            )
            .await
        }

        /// The queued (item, delay) pairs, taken out of the queue.
        pub fn drain_queue(&self) -> Vec<(String, u64)> {
            self.queue
                .drain()
                .into_iter()
                .map(|(i, d)| (i.execution_id, d))
                .collect()
        }
    }

    /// Writes `entry` straight into `reg` (no probe) with a `REGISTER`
    /// event, replacing any current entry of that worker.
    pub async fn put_worker_entry_in(reg: &dyn WorkerRegistry, entry: &WorkerEntry) {
        replace_worker_entry(reg, entry, true).await;
    }

    /// Writes `entry` into `reg` (create or replace, no probe) at the next
    /// state version, with a `REGISTER` event when `with_event`.
    pub async fn replace_worker_entry(
        reg: &dyn WorkerRegistry,
        entry: &WorkerEntry,
        with_event: bool,
    ) {
        let current = reg
            .get_worker(&entry.tenant_id, &entry.pipeline_id, &entry.worker_id)
            .await
            .unwrap();
        let mut entry = entry.clone();
        entry.state_version = current.as_ref().map_or(1, |c| c.state_version + 1);
        let event = with_event.then(|| WorkerEvent {
            event_type: WorkerEventType::Register,
            at_epoch_ms: entry.updated_at_epoch_ms,
            state_version: entry.state_version,
            snapshot: entry.clone(),
        });
        let w = reg
            .write_worker(&entry, current.map(|c| c.state_version), event.as_ref())
            .await
            .unwrap();
        assert_eq!(w, tpf_core::ports::WorkerWrite::Written);
    }

    /// The unit and interaction records of a scalar await (§7.5 shapes),
    /// as a worker would send them, for `execution` at `step`.
    #[allow(clippy::too_many_arguments)]
    pub fn await_records(
        tenant: &str,
        execution: &str,
        step: u64,
        unit_id: &str,
        interaction_id: &str,
        correlation_id: &str,
        now: i64,
        deadline: i64,
    ) -> (Value, Value) {
        let ttl = deadline / 1000 + 86_400;
        let unit = json!({
            "tenantId": tenant, "unitId": unit_id, "executionId": execution,
            "stepId": "AwaitStep", "stepIndex": step, "cardinality": "ONE_TO_ONE",
            "version": 1, "status": "WAITING_EXTERNAL", "primaryInteractionId": interaction_id,
            "expectedItemCount": null, "completedItemCount": 0, "completedItemKeys": [],
            "dispatchComplete": false, "createdAtEpochMs": now, "updatedAtEpochMs": now,
            "ttlEpochS": ttl
        });
        let interaction = json!({
            "tenantId": tenant, "executionId": execution, "stepId": "AwaitStep",
            "stepIndex": step, "outputType": "org.example.Decision",
            "interactionId": interaction_id, "correlationId": correlation_id,
            "causationId": null, "idempotencyKey": format!("{execution}:AwaitStep"),
            "version": 2, "status": "DISPATCHED",
            "requestPayload": {"question": "approve?"}, "responsePayload": null,
            "unitId": unit_id, "itemIndex": null, "actor": null, "assignee": null,
            "group": "kitchen", "transportType": "interaction-api", "transportMetadata": {},
            "deadlineEpochMs": deadline, "createdAtEpochMs": now, "updatedAtEpochMs": now,
            "ttlEpochS": ttl, "transportOutputType": "org.example.Decision"
        });
        (unit, interaction)
    }

    /// A `WAITING_EXTERNAL` result envelope suspending on `(unit, interaction)`.
    pub fn waiting_answer(unit: &Value, interaction: &Value) -> Value {
        json!({
            "outcome": "WAITING_EXTERNAL", "outputPayloads": [],
            "awaitSuspension": {
                "tenantId": unit["tenantId"], "executionId": unit["executionId"],
                "unitId": unit["unitId"], "stepIndex": unit["stepIndex"],
                "unit": unit, "interactions": [interaction]
            },
            "failure": null, "terminalOutputPublished": false, "terminalInputPassthrough": false
        })
    }

    /// A `COMPLETED` result envelope with `outputs`.
    pub fn completed_answer(outputs: Value) -> Value {
        json!({"outcome": "COMPLETED", "outputPayloads": outputs, "awaitSuspension": null, "failure": null})
    }

    /// A `FAILED` result envelope.
    pub fn failed_answer(class: &str, message: &str) -> Value {
        json!({"outcome": "FAILED", "outputPayloads": [], "awaitSuspension": null,
               "failure": {"failureClass": class, "message": message}})
    }

    /// Imports `(unit, interaction)` JSON records through the await store.
    pub async fn import_records(
        store: &dyn AwaitStore,
        unit: &Value,
        interaction: &Value,
        now: i64,
    ) -> ImportOutcome {
        let u: AwaitUnit = serde_json::from_value(unit.clone()).unwrap();
        let i: AwaitInteraction = serde_json::from_value(interaction.clone()).unwrap();
        store.import(&u, &i, now).await.unwrap()
    }

    /// A work queue whose every enqueue fails (an outage).
    #[derive(Debug, Default)]
    pub struct FailingQueue {
        pub attempts: AtomicUsize,
    }

    #[async_trait]
    impl WorkQueue for FailingQueue {
        async fn enqueue(&self, _item: &WorkItem, _delay_ms: u64) -> Result<(), StoreError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Unavailable("queue is down".into()))
        }
    }

    /// An execution store that counts calls and makes the next
    /// `lose_updates` updates lose their condition without writing.
    pub struct SpyExecutionStore {
        pub inner: Arc<dyn ExecutionStore>,
        pub calls: AtomicUsize,
        pub lose_updates: AtomicUsize,
    }

    impl SpyExecutionStore {
        pub fn new(inner: Arc<dyn ExecutionStore>) -> Self {
            SpyExecutionStore {
                inner,
                calls: AtomicUsize::new(0),
                lose_updates: AtomicUsize::new(0),
            }
        }
        fn count(&self) {
            self.calls.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl ExecutionStore for SpyExecutionStore {
        async fn create(
            &self,
            record: &ExecutionRecord,
            event: &HistoryEvent,
            key: Option<&KeyEntry>,
            now_ms: i64,
        ) -> Result<CreateExecution, StoreError> {
            self.count();
            self.inner.create(record, event, key, now_ms).await
        }
        async fn get(
            &self,
            tenant: &str,
            execution_id: &str,
            now_ms: i64,
        ) -> Result<Option<ExecutionRecord>, StoreError> {
            self.count();
            self.inner.get(tenant, execution_id, now_ms).await
        }
        async fn get_key(
            &self,
            tenant: &str,
            execution_key: &str,
            now_ms: i64,
        ) -> Result<Option<KeyEntry>, StoreError> {
            self.count();
            self.inner.get_key(tenant, execution_key, now_ms).await
        }
        async fn update(
            &self,
            next: &ExecutionRecord,
            expected_version: u64,
            event: &HistoryEvent,
            now_ms: i64,
        ) -> Result<Write, StoreError> {
            self.count();
            let lose = self
                .lose_updates
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if lose {
                return Ok(Write::Lost);
            }
            self.inner
                .update(next, expected_version, event, now_ms)
                .await
        }
        async fn history(
            &self,
            tenant: &str,
            execution_id: &str,
            after_version: Option<u64>,
            limit: usize,
            now_ms: i64,
        ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
            self.count();
            self.inner
                .history(tenant, execution_id, after_version, limit, now_ms)
                .await
        }
        async fn list(
            &self,
            tenant: &str,
            filter: &ExecutionFilter,
            after: Option<(i64, String)>,
            limit: usize,
            now_ms: i64,
        ) -> Result<Vec<ExecutionRecord>, StoreError> {
            self.count();
            self.inner.list(tenant, filter, after, limit, now_ms).await
        }
        async fn due(
            &self,
            now_ms: i64,
            limit: usize,
        ) -> Result<Vec<(String, String)>, StoreError> {
            self.count();
            self.inner.due(now_ms, limit).await
        }
    }

    /// An await store that, on the next `update_interaction`, first writes
    /// `competitor` (a rival completion winning the race between the
    /// caller's read and its write), then runs the caller's write.
    pub struct RacingAwaitStore {
        pub inner: Arc<dyn AwaitStore>,
        pub competitor: Mutex<Option<AwaitInteraction>>,
    }

    #[async_trait]
    impl AwaitStore for RacingAwaitStore {
        async fn get_unit(
            &self,
            tenant: &str,
            unit_id: &str,
            now_ms: i64,
        ) -> Result<Option<AwaitUnit>, StoreError> {
            self.inner.get_unit(tenant, unit_id, now_ms).await
        }
        async fn get_interaction(
            &self,
            tenant: &str,
            interaction_id: &str,
            now_ms: i64,
        ) -> Result<Option<AwaitInteraction>, StoreError> {
            self.inner
                .get_interaction(tenant, interaction_id, now_ms)
                .await
        }
        async fn get_by_correlation(
            &self,
            tenant: &str,
            correlation_id: &str,
            now_ms: i64,
        ) -> Result<Option<AwaitInteraction>, StoreError> {
            self.inner
                .get_by_correlation(tenant, correlation_id, now_ms)
                .await
        }
        async fn import(
            &self,
            unit: &AwaitUnit,
            interaction: &AwaitInteraction,
            now_ms: i64,
        ) -> Result<ImportOutcome, StoreError> {
            self.inner.import(unit, interaction, now_ms).await
        }
        async fn update_interaction(
            &self,
            next: &AwaitInteraction,
            expected_version: i64,
            now_ms: i64,
        ) -> Result<Write, StoreError> {
            let rival = self.competitor.lock().unwrap().take();
            if let Some(rival) = rival {
                let w = self
                    .inner
                    .update_interaction(&rival, rival.version - 1, now_ms)
                    .await?;
                assert_eq!(w, Write::Written, "the rival completion must win");
            }
            self.inner
                .update_interaction(next, expected_version, now_ms)
                .await
        }
        async fn set_settle_due(
            &self,
            tenant: &str,
            interaction_id: &str,
            expected_status: &str,
            settle_due_epoch_ms: Option<i64>,
            now_ms: i64,
        ) -> Result<Write, StoreError> {
            self.inner
                .set_settle_due(
                    tenant,
                    interaction_id,
                    expected_status,
                    settle_due_epoch_ms,
                    now_ms,
                )
                .await
        }
        async fn finish_unit(
            &self,
            tenant: &str,
            unit_id: &str,
            status: &str,
            now_ms: i64,
        ) -> Result<Write, StoreError> {
            self.inner
                .finish_unit(tenant, unit_id, status, now_ms)
                .await
        }
        async fn pending(
            &self,
            tenant: &str,
            filter: &PendingFilter,
            after: Option<(i64, String)>,
            limit: usize,
            now_ms: i64,
        ) -> Result<Vec<AwaitInteraction>, StoreError> {
            self.inner
                .pending(tenant, filter, after, limit, now_ms)
                .await
        }
        async fn settle_due(
            &self,
            now_ms: i64,
            limit: usize,
        ) -> Result<Vec<(String, String)>, StoreError> {
            self.inner.settle_due(now_ms, limit).await
        }
    }
}

// ---------------------------------------------------------------------------
// Engine conformance helpers (EXECUTION.md §11 WORK/FAIL/AWAIT/SWEEP/EXT):
// scripted result envelopes and suspensions, closure workers, direct record
// manipulation, and fault-injecting store/queue wrappers.
// ---------------------------------------------------------------------------

use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
use tpf_core::domain::execution::{ExecutionRecord, HistoryEvent};
use tpf_core::error::StoreError;
use tpf_core::ports::{AwaitStore, ImportOutcome, PendingFilter, WorkQueue, Write};

pub use tpf_core::actions::sweep_once::SweepSummary;

/// The transition codec encoding.
pub const ENC: &str = "application/tpf-transition+json";
/// The snapshot type of a fresh run's command payload.
pub const SNAPSHOT_TYPE: &str = "org.pipelineframework.orchestrator.ExecutionInputSnapshot";
/// Worker id of the scripted worker [`Harness::with_scripted`] registers.
pub const SCRIPTED_ID: &str = "w-1";

/// A fresh `QUEUED` execution `id` of `pipeline` pinned to
/// `release_version` (contract `race`): version 0, due at `now`, a 7-day
/// TTL, and a UNI input holding `order` as an `org.example.Order` envelope.
pub fn queued_record(
    tenant: &str,
    pipeline: &str,
    release_version: &str,
    id: &str,
    execution_key: String,
    order: &Value,
    now: i64,
) -> ExecutionRecord {
    use tpf_core::domain::execution::{ExecutionStatus, ResultShape};
    let input = json!({
        "shape": "UNI",
        "payload": envelope("org.example.Order", &order.to_string()),
        "items": []
    });
    ExecutionRecord {
        tenant_id: tenant.into(),
        execution_id: id.into(),
        execution_key,
        input_hash: "0".repeat(64),
        pipeline_id: pipeline.into(),
        contract_version: "race".into(),
        release_version: release_version.into(),
        result_shape: ResultShape::Single,
        status: ExecutionStatus::Queued,
        version: 0,
        current_step_index: 0,
        attempt: 0,
        lease_owner: None,
        lease_expires_epoch_ms: 0,
        next_due_epoch_ms: Some(now),
        last_transition_key: None,
        input_payload: serde_json::value::RawValue::from_string(input.to_string())
            .expect("valid JSON"),
        await_unit_id: None,
        result_payload: None,
        error_code: None,
        error_message: None,
        created_at_epoch_ms: now,
        updated_at_epoch_ms: now,
        ttl_epoch_s: now / 1000 + 7 * 86_400,
    }
}

/// A `COMPLETED` result envelope with `outputs`.
pub fn worker_completed(outputs: Value) -> Value {
    json!({"outcome": "COMPLETED", "outputPayloads": outputs, "awaitSuspension": null,
           "failure": null, "terminalOutputPublished": false, "terminalInputPassthrough": false})
}

/// A `FAILED` result envelope.
pub fn worker_failed(class: &str, message: Option<&str>) -> Value {
    json!({"outcome": "FAILED", "outputPayloads": [], "awaitSuspension": null,
           "failure": {"failureClass": class, "message": message},
           "terminalOutputPublished": false, "terminalInputPassthrough": false})
}

/// A `WAITING_EXTERNAL` result envelope carrying `suspension`.
pub fn worker_waiting(suspension: Value) -> Value {
    json!({"outcome": "WAITING_EXTERNAL", "outputPayloads": [], "awaitSuspension": suspension,
           "failure": null, "terminalOutputPublished": false, "terminalInputPassthrough": false})
}

/// An envelope of `type_id` whose payload text is `payload`.
pub fn envelope(type_id: &str, payload: &str) -> Value {
    json!({"payloadTypeId": type_id, "payloadEncoding": ENC, "payload": payload})
}

/// One await (unit + primary interaction) of a suspension, as §7.5 shows it.
#[derive(Debug, Clone)]
pub struct AwaitSpec {
    pub tenant_id: String,
    pub execution_id: String,
    pub unit_id: String,
    pub interaction_id: String,
    pub correlation_id: String,
    pub step_id: String,
    pub step_index: u64,
    pub output_type: String,
    pub deadline: i64,
    pub now: i64,
}

impl AwaitSpec {
    /// Fresh ids, step `step_index`, deadline `now` + 30 min.
    pub fn new(execution_id: &str, step_index: u64, now: i64) -> Self {
        let id = || uuid::Uuid::new_v4().to_string();
        AwaitSpec {
            tenant_id: TENANT.into(),
            execution_id: execution_id.into(),
            unit_id: id(),
            interaction_id: id(),
            correlation_id: id(),
            step_id: "ProcessAwaitRestaurantDecisionService".into(),
            step_index,
            output_type: "org.example.RestaurantDecision".into(),
            deadline: now + 1_800_000,
            now,
        }
    }

    /// The worker-side TTL (deadline + 1 day, in seconds).
    pub fn ttl_epoch_s(&self) -> i64 {
        self.deadline / 1000 + 86_400
    }

    /// The unit record of the snapshot.
    pub fn unit(&self) -> Value {
        json!({
            "tenantId": self.tenant_id, "unitId": self.unit_id, "executionId": self.execution_id,
            "stepId": self.step_id, "stepIndex": self.step_index, "cardinality": "ONE_TO_ONE",
            "version": 1, "status": "WAITING_EXTERNAL", "primaryInteractionId": self.interaction_id,
            "expectedItemCount": null, "completedItemCount": 0, "completedItemKeys": [],
            "dispatchComplete": false, "createdAtEpochMs": self.now, "updatedAtEpochMs": self.now,
            "ttlEpochS": self.ttl_epoch_s()
        })
    }

    /// The primary interaction record of the snapshot.
    pub fn interaction(&self) -> Value {
        json!({
            "tenantId": self.tenant_id, "executionId": self.execution_id, "stepId": self.step_id,
            "stepIndex": self.step_index, "outputType": self.output_type,
            "interactionId": self.interaction_id, "correlationId": self.correlation_id,
            "causationId": null, "idempotencyKey": format!("{}:{}", self.execution_id, self.step_id),
            "version": 2, "status": "DISPATCHED",
            "requestPayload": {"orderId": "9e2d4c6a-1b3f-4a5d-8c7e-0f1a2b3c4d5e", "customerName": "Ada Lovelace"},
            "responsePayload": null, "unitId": self.unit_id, "itemIndex": null, "actor": null,
            "assignee": null, "group": "kitchen", "transportType": "interaction-api",
            "transportMetadata": {}, "deadlineEpochMs": self.deadline,
            "createdAtEpochMs": self.now, "updatedAtEpochMs": self.now,
            "ttlEpochS": self.ttl_epoch_s(), "transportOutputType": self.output_type
        })
    }

    /// `{tenantId, executionId, unitId, stepIndex, unit, interactions}`.
    pub fn suspension(&self) -> Value {
        json!({
            "tenantId": self.tenant_id, "executionId": self.execution_id, "unitId": self.unit_id,
            "stepIndex": self.step_index, "unit": self.unit(), "interactions": [self.interaction()]
        })
    }

    /// The `WAITING_EXTERNAL` result envelope of this await.
    pub fn waiting(&self) -> Value {
        worker_waiting(self.suspension())
    }

    /// Imports this await straight into `store` (as a dispatcher would),
    /// without any execution write.
    pub async fn import_into(&self, store: &dyn AwaitStore) -> ImportOutcome {
        let raw = serde_json::value::RawValue::from_string(self.suspension().to_string()).unwrap();
        let valid = tpf_core::domain::awaits::validate_suspension(
            &raw,
            &self.tenant_id,
            &self.execution_id,
            0,
            self.now,
        )
        .unwrap();
        store
            .import(&valid.unit, &valid.interaction, self.now)
            .await
            .unwrap()
    }
}

/// One request a closure worker received.
#[derive(Debug, Clone)]
pub struct WorkerCall {
    /// The request path as received (endpoint prefix included).
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: axum::body::Bytes,
}

/// Serves `f` as a worker answering every path; returns its base URL.
pub async fn serve_worker_fn<F, Fut>(f: F) -> String
where
    F: Fn(WorkerCall) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, String)> + Send + 'static,
{
    let f = Arc::new(f);
    let app = Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let f = f.clone();
            async move {
                let (status, text) = f(WorkerCall {
                    path: uri.path().to_string(),
                    headers,
                    body,
                })
                .await;
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    text,
                )
            }
        },
    );
    serve(app).await
}

/// A URL on which nothing listens (a port just released).
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

impl ScriptedWorker {
    /// Queues a raw answer (any text, not necessarily JSON).
    pub fn answer_raw(&self, status: u16, text: &str) {
        self.answers
            .lock()
            .unwrap()
            .push((status, text.to_string()));
    }

    /// The request bodies received so far.
    pub fn received(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

impl Harness {
    /// A harness without the restaurant worker and with a scripted worker
    /// registered as [`SCRIPTED_ID`] for the demo release.
    pub async fn with_scripted(env: Vec<(&'static str, String)>) -> (Harness, ScriptedWorker) {
        let h = Harness::new(Options {
            env,
            restaurant_worker: false,
        })
        .await;
        let w = ScriptedWorker::default();
        let url = w.start().await;
        h.register_worker(SCRIPTED_ID, &url, &demo_release::DemoSpec::default())
            .await;
        (h, w)
    }

    /// Submits `submit_body("Ada Lovelace", None)`; returns the execution id.
    pub async fn submit_new(&self) -> String {
        self.submit(submit_body("Ada Lovelace", None)).await.ok()["executionId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Now on the harness clock.
    pub fn clock_ms(&self) -> i64 {
        tpf_core::ports::Clock::now_ms(self.clock.as_ref())
    }

    /// The stored record (panics when missing or expired).
    pub async fn must_record(&self, id: &str) -> ExecutionRecord {
        let store = self.executions.as_ref();
        tpf_core::ports::ExecutionStore::get(store, TENANT, id, self.clock_ms())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("execution {id} not found"))
    }

    /// The stored history, oldest first (empty when missing).
    pub async fn events(&self, id: &str) -> Vec<HistoryEvent> {
        let store = self.executions.as_ref();
        tpf_core::ports::ExecutionStore::history(store, TENANT, id, None, 100_000, self.clock_ms())
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// The stored interaction (None when missing or expired).
    pub async fn interaction_rec(&self, id: &str) -> Option<AwaitInteraction> {
        let store = self.awaits.as_ref();
        AwaitStore::get_interaction(store, TENANT, id, self.clock_ms())
            .await
            .unwrap()
    }

    /// The stored unit (None when missing or expired).
    pub async fn unit_rec(&self, id: &str) -> Option<AwaitUnit> {
        let store = self.awaits.as_ref();
        AwaitStore::get_unit(store, TENANT, id, self.clock_ms())
            .await
            .unwrap()
    }

    /// POST complete with `body`.
    pub async fn complete_json(&self, body: Value) -> Resp {
        let path = format!("/tpf/control-plane/tenants/{TENANT}/interactions/complete");
        self.call("POST", &path, CONTROL, Some(body)).await
    }

    /// A HEALTHY `rest` lifecycle record of `spec`'s release at `endpoint`
    /// with the example worker's artifact identity.
    pub fn entry_for(
        &self,
        worker_id: &str,
        endpoint: &str,
        spec: &demo_release::DemoSpec,
    ) -> tpf_core::domain::worker::WorkerEntry {
        let identity = restaurant_worker::config::WorkerIdentity::from_spec(spec);
        let now = self.clock_ms();
        tpf_core::domain::worker::WorkerEntry {
            tenant_id: TENANT.into(),
            pipeline_id: spec.pipeline_id.clone(),
            contract_version: spec.contract_version.clone(),
            release_version: spec.release_version.clone(),
            worker_id: worker_id.into(),
            protocol: "rest".into(),
            endpoint: endpoint.into(),
            artifact_id: identity.artifact_id,
            artifact_digest: identity.artifact_digest,
            registered_at_epoch_ms: now,
            last_heartbeat_at_epoch_ms: now,
            draining_since_epoch_ms: 0,
            state_version: 1,
            updated_at_epoch_ms: now,
        }
    }

    /// Writes `entry` into the worker registry as given (create or replace,
    /// no event, no probe).
    pub async fn store_worker(&self, entry: &tpf_core::domain::worker::WorkerEntry) {
        replace_worker_entry(self.worker_deps.registry.as_ref(), entry, false).await;
    }

    /// Registers and activates a release of `spec` whose artifact embeds
    /// `contract`; returns the artifact id and digest it pins.
    pub async fn activate_contract(
        &self,
        spec: &demo_release::DemoSpec,
        contract: &Value,
    ) -> (String, String) {
        let Root::Local(root) = &self.release_deps.roots[0] else {
            unreachable!()
        };
        let dir = std::path::Path::new(root)
            .join(format!("contract-{}", spec.pipeline_id))
            .join(&spec.release_version);
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = demo_release::artifact_zip(contract);
        std::fs::write(dir.join("app.jar"), &bytes).unwrap();
        let artifact_id = format!("{}-app", spec.pipeline_id);
        let digest = demo_release::digest(&bytes);
        let descriptor = json!({
            "schemaVersion": 1, "pipelineId": spec.pipeline_id,
            "contractVersion": spec.contract_version, "releaseVersion": spec.release_version,
            "artifacts": [{"artifactId": artifact_id, "kind": "jar", "uri": "app.jar", "digest": digest}]
        });
        let path = dir.join("pipeline-release.json");
        std::fs::write(&path, descriptor.to_string()).unwrap();
        let source = DescriptorSource::Location(path.to_str().unwrap().to_string());
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
        (artifact_id, digest)
    }

    /// History event types (`SUBMITTED`, …), from the history route.
    pub async fn event_types(&self, id: &str) -> Vec<String> {
        self.history(id)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    }

    /// Applies a domain transition to the stored record directly (simulating
    /// another actor); panics when the write is lost.
    pub async fn apply(
        &self,
        id: &str,
        f: impl FnOnce(&ExecutionRecord, i64) -> (ExecutionRecord, HistoryEvent),
    ) -> ExecutionRecord {
        let now = self.clock_ms();
        let r = self.must_record(id).await;
        let (next, event) = f(&r, now);
        let store = self.executions.as_ref();
        let w = tpf_core::ports::ExecutionStore::update(store, &next, r.version, &event, now)
            .await
            .unwrap();
        assert_eq!(w, Write::Written, "applied write lost");
        next
    }

    /// Another dispatcher (`owner`) claims the execution now (T2).
    pub async fn claim_as(&self, id: &str, owner: &str) -> ExecutionRecord {
        let lease = self.deps.settings.lease_ms;
        self.apply(id, |r, now| r.claim(now, owner, lease)).await
    }

    /// One `sweep_once` at the clock's now.
    pub async fn sweep(&self, limit: usize) -> SweepSummary {
        tpf_core::actions::sweep_once::run(&self.deps, limit).await
    }
}

/// The work item of `id` in the harness tenant.
pub fn work_item(id: &str) -> WorkItem {
    WorkItem {
        tenant_id: TENANT.into(),
        execution_id: id.into(),
    }
}

/// An await store wrapper that injects faults and races.
pub struct FaultyAwaits {
    pub inner: Arc<tpf_core::providers::memory::MemoryAwaitStore>,
    /// `settle_due` fails while set.
    pub fail_settle_due: std::sync::atomic::AtomicBool,
    /// `get_interaction` fails for these interaction ids.
    pub fail_get: Mutex<Vec<String>>,
    /// Written (with its `version − 1` as the expected version, and its unit
    /// finished `COMPLETED`) just before the next `TIMED_OUT` write, which
    /// therefore loses: a completion racing the timeout.
    pub race_time_out_with: Mutex<Option<AwaitInteraction>>,
}

impl FaultyAwaits {
    pub fn new(inner: Arc<tpf_core::providers::memory::MemoryAwaitStore>) -> Self {
        FaultyAwaits {
            inner,
            fail_settle_due: Default::default(),
            fail_get: Default::default(),
            race_time_out_with: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl AwaitStore for FaultyAwaits {
    async fn get_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitUnit>, StoreError> {
        self.inner.get_unit(tenant, unit_id, now_ms).await
    }
    async fn get_interaction(
        &self,
        tenant: &str,
        interaction_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        let failing = self.fail_get.lock().unwrap().clone();
        if failing.iter().any(|i| i == interaction_id) {
            return Err(StoreError::Unavailable("injected read failure".into()));
        }
        self.inner
            .get_interaction(tenant, interaction_id, now_ms)
            .await
    }
    async fn get_by_correlation(
        &self,
        tenant: &str,
        correlation_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        self.inner
            .get_by_correlation(tenant, correlation_id, now_ms)
            .await
    }
    async fn import(
        &self,
        unit: &AwaitUnit,
        interaction: &AwaitInteraction,
        now_ms: i64,
    ) -> Result<ImportOutcome, StoreError> {
        self.inner.import(unit, interaction, now_ms).await
    }
    async fn update_interaction(
        &self,
        next: &AwaitInteraction,
        expected_version: i64,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        if next.status == "TIMED_OUT" {
            let winner = self.race_time_out_with.lock().unwrap().take();
            if let Some(w) = winner {
                let won = self
                    .inner
                    .update_interaction(&w, w.version - 1, now_ms)
                    .await?;
                assert_eq!(won, Write::Written, "the racing completion must win");
                self.inner
                    .finish_unit(&w.tenant_id, &w.unit_id, "COMPLETED", now_ms)
                    .await?;
            }
        }
        self.inner
            .update_interaction(next, expected_version, now_ms)
            .await
    }
    async fn set_settle_due(
        &self,
        tenant: &str,
        interaction_id: &str,
        expected_status: &str,
        settle_due_epoch_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        self.inner
            .set_settle_due(
                tenant,
                interaction_id,
                expected_status,
                settle_due_epoch_ms,
                now_ms,
            )
            .await
    }
    async fn finish_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        self.inner
            .finish_unit(tenant, unit_id, status, now_ms)
            .await
    }
    async fn pending(
        &self,
        tenant: &str,
        filter: &PendingFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<AwaitInteraction>, StoreError> {
        self.inner
            .pending(tenant, filter, after, limit, now_ms)
            .await
    }
    async fn settle_due(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if self
            .fail_settle_due
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Unavailable("injected query failure".into()));
        }
        self.inner.settle_due(now_ms, limit).await
    }
}

/// A work queue wrapper whose enqueue fails for chosen execution ids.
pub struct FaultyQueue {
    pub inner: Arc<RecordingQueue>,
    pub fail_for: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl WorkQueue for FaultyQueue {
    async fn enqueue(&self, item: &WorkItem, delay_ms: u64) -> Result<(), StoreError> {
        if self.fail_for.lock().unwrap().contains(&item.execution_id) {
            return Err(StoreError::Unavailable("injected enqueue failure".into()));
        }
        self.inner.enqueue(item, delay_ms).await
    }
}

// ---------------------------------------------------------------------------
// Concurrency, fault and bad-input helpers (`engine_concurrency`,
// `engine_bad_input`): the engine over the `file` stores, and routers over
// an altered `AppState`.
// ---------------------------------------------------------------------------

impl Harness {
    /// The harness's engine deps with executions and awaits on the `file`
    /// stores rooted at `state_root` (release and worker registries,
    /// transport, queue, dead letters and clock stay the harness's).
    pub fn file_deps(&self, state_root: &std::path::Path) -> EngineDeps {
        use tpf_core::providers::file::{FileAwaitStore, FileExecutionStore};
        EngineDeps {
            executions: Arc::new(FileExecutionStore::new(state_root.to_path_buf())),
            awaits: Arc::new(FileAwaitStore::new(state_root.to_path_buf())),
            ..self.deps.clone()
        }
    }

    /// The control-plane router over `deps` with the harness's tokens and
    /// surfaces, after `alter` changed its `AppState` (allowed tenants, a
    /// disabled surface, an unresolvable token, …).
    pub fn router_altered(&self, deps: EngineDeps, alter: impl FnOnce(&mut AppState)) -> Router {
        let token = |t: &str| {
            Some(CachedSecret::new(
                SecretSource::Literal(t.into()),
                Arc::new(EnvSecretResolver),
            ))
        };
        let mut state = AppState {
            function: FunctionName::ControlPlane,
            control_plane_enabled: true,
            admin_enabled: true,
            control_plane_token: token(CONTROL),
            admin_token: token(ADMIN),
            allowed_tenants: None,
            releases: None,
            workers: None,
            engine: Some(deps),
        };
        alter(&mut state);
        router(Arc::new(state))
    }
}
