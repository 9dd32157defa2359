//! Shared harness of the in-process HTTP tests: builds a function's router
//! on chosen providers with a manual clock, and sends requests through it.
#![allow(dead_code)]

pub mod engine_dynamo;
pub mod moto;
pub mod serialized;
pub mod serialized_engine;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

use tpf_core::actions::{ReleaseDeps, WorkerDeps};
use tpf_core::config::{FunctionName, SecretRef, SecretSource};
use tpf_core::domain::location::Root;
use tpf_core::http::{router, AppState};
use tpf_core::ports::{ManualClock, ReleaseRegistry, WorkerRegistry};
use tpf_core::providers::file::{
    FileReleaseRegistry, FileWorkerRegistry, LocalArtifactStore, LocalLocationReader,
};
use tpf_core::providers::memory::MemoryWorkerRegistry;
use tpf_core::providers::secrets::{CachedSecret, EnvSecretResolver};

pub const ADMIN: &str = "admin-token";
pub const CONTROL: &str = "control-token";
pub const T0: i64 = 1_736_936_000_000;

/// A router plus handles on what it runs over.
pub struct TestApp {
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub releases: Option<ReleaseDeps>,
    pub workers: Option<WorkerDeps>,
    /// Keeps the state directory alive; `root` is its registration root.
    pub dir: tempfile::TempDir,
    pub root: std::path::PathBuf,
}

fn secret(v: &str) -> Option<CachedSecret> {
    Some(CachedSecret::new(
        SecretSource::Literal(v.into()),
        Arc::new(EnvSecretResolver),
    ))
}

/// Options that vary between tests.
pub struct Options {
    pub admin_enabled: bool,
    pub admin_token: Option<CachedSecret>,
    pub allowed_tenants: Option<Vec<String>>,
    pub stale_after_ms: u64,
    pub worker_registry: Option<Arc<dyn WorkerRegistry>>,
    pub release_registry: Option<Arc<dyn ReleaseRegistry>>,
    pub file_workers: bool,
    /// The capability probe (`TPF_WORKER_CAPABILITIES_CHECK=register`).
    pub probe: Option<Arc<dyn tpf_core::ports::WorkerTransport>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            admin_enabled: true,
            admin_token: secret(ADMIN),
            allowed_tenants: None,
            stale_after_ms: 120_000,
            worker_registry: None,
            release_registry: None,
            file_workers: false,
            probe: None,
        }
    }
}

/// An admin token given as an `env:` reference to `var`.
pub fn env_token(var: &str) -> Option<CachedSecret> {
    Some(CachedSecret::new(
        SecretSource::Reference(SecretRef::Env(var.into())),
        Arc::new(EnvSecretResolver),
    ))
}

fn build(function: FunctionName, opts: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("releases");
    std::fs::create_dir_all(&root).unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let releases = (function == FunctionName::ReleaseAdmin).then(|| ReleaseDeps {
        registry: opts
            .release_registry
            .clone()
            .unwrap_or_else(|| Arc::new(FileReleaseRegistry::new(dir.path().join("store")))),
        store: Arc::new(LocalArtifactStore::new(dir.path().join("store"))),
        locations: Arc::new(LocalLocationReader),
        clock: clock.clone(),
        roots: vec![Root::Local(root.to_str().unwrap().to_string())],
        max_artifact_bytes: 1_000_000,
    });
    let workers = (function == FunctionName::WorkerLifecycle).then(|| WorkerDeps {
        registry: opts.worker_registry.clone().unwrap_or_else(|| {
            if opts.file_workers {
                Arc::new(FileWorkerRegistry::new(dir.path().join("workers")))
            } else {
                Arc::new(MemoryWorkerRegistry::new())
            }
        }),
        clock: clock.clone(),
        stale_after_ms: opts.stale_after_ms,
        probe: opts.probe.clone(),
    });
    let state = AppState {
        function,
        control_plane_enabled: true,
        admin_enabled: opts.admin_enabled,
        control_plane_token: secret(CONTROL),
        admin_token: opts.admin_token,
        allowed_tenants: opts.allowed_tenants,
        releases: releases.clone(),
        workers: workers.clone(),
        engine: None,
    };
    TestApp {
        router: router(Arc::new(state)),
        clock,
        releases,
        workers,
        dir,
        root,
    }
}

impl TestApp {
    /// The same release-admin app (same state directory and clock) with
    /// its release dependencies changed, e.g. a failing store or no roots.
    pub fn with_release_deps(self, change: impl FnOnce(&mut ReleaseDeps)) -> TestApp {
        let mut deps = self.releases.clone().expect("a release-admin app");
        change(&mut deps);
        let state = AppState {
            function: FunctionName::ReleaseAdmin,
            control_plane_enabled: true,
            admin_enabled: true,
            control_plane_token: secret(CONTROL),
            admin_token: secret(ADMIN),
            allowed_tenants: None,
            releases: Some(deps.clone()),
            workers: None,
            engine: None,
        };
        TestApp {
            router: router(Arc::new(state)),
            releases: Some(deps),
            ..self
        }
    }
}

pub fn worker_app(opts: Options) -> TestApp {
    build(FunctionName::WorkerLifecycle, opts)
}

pub fn release_app(opts: Options) -> TestApp {
    build(FunctionName::ReleaseAdmin, opts)
}

pub fn control_plane_app(opts: Options) -> TestApp {
    build(FunctionName::ControlPlane, opts)
}

/// A response read back.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    /// Asserts status and error code, and the exact error body shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        let obj = self.body.as_object().expect("error body is an object");
        assert_eq!(
            obj.len(),
            2,
            "error body has exactly code and message: {}",
            self.body
        );
        assert!(obj["message"].is_string());
        assert!(self.headers.contains_key("x-request-id"));
    }
    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status.as_u16(), 200, "body: {}", self.body);
        &self.body
    }
}

/// A request under construction.
pub struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub fn req(method: &str, path: &str) -> Req {
    Req {
        method: method.parse().unwrap(),
        path: path.to_string(),
        headers: vec![],
        body: vec![],
    }
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn admin(self) -> Self {
        self.header("authorization", &format!("Bearer {ADMIN}"))
    }
    pub fn json(mut self, v: &Value) -> Self {
        self.body = serde_json::to_vec(v).unwrap();
        self.header("content-type", "application/json")
    }
    pub fn raw(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = bytes.into();
        self
    }
    pub async fn send(self, app: &TestApp) -> Resp {
        let mut b = Request::builder().method(self.method).uri(self.path);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let resp = app
            .router
            .clone()
            .oneshot(b.body(Body::from(self.body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(
            headers.get("content-type").map(|v| v.to_str().unwrap()),
            Some("application/json")
        );
        Resp {
            status,
            headers,
            body,
        }
    }
}

/// The refusals of a register route (`POST url`), each followed by
/// `nothing_stored`: 400 `INVALID_JSON` for `{` and for `duplicate` (a
/// member given twice), 415 `UNSUPPORTED_MEDIA_TYPE` for `valid` declared as
/// `text/plain`, and 401 `UNAUTHORIZED` for `valid` with no, a wrong, or the
/// control-plane token. `json_type` is the content type the other requests
/// declare (none: no header). Returns the 401 answers.
pub async fn assert_register_refusals<F, Fut>(
    app: &TestApp,
    url: &str,
    json_type: Option<&str>,
    valid: &[u8],
    duplicate: Vec<u8>,
    nothing_stored: F,
) -> Vec<Resp>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let typed = |r: Req| match json_type {
        Some(t) => r.header("content-type", t),
        None => r,
    };
    for body in [b"{".to_vec(), duplicate] {
        typed(req("POST", url).admin())
            .raw(body)
            .send(app)
            .await
            .assert_error(400, "INVALID_JSON");
        nothing_stored().await;
    }
    req("POST", url)
        .admin()
        .header("content-type", "text/plain")
        .raw(valid)
        .send(app)
        .await
        .assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    nothing_stored().await;
    let mut refused = Vec::new();
    for auth in [
        None,
        Some("Bearer wrong".to_string()),
        Some(format!("Bearer {CONTROL}")),
    ] {
        let mut r = typed(req("POST", url));
        if let Some(a) = &auth {
            r = r.header("authorization", a);
        }
        let r = r.raw(valid).send(app).await;
        r.assert_error(401, "UNAUTHORIZED");
        nothing_stored().await;
        refused.push(r);
    }
    refused
}

pub const RELEASES: &str = "/tpf/admin/tenants/acme/pipelines/restaurant-approval/releases";
pub const WORKERS: &str = "/tpf/admin/tenants/acme/pipelines/restaurant-approval/workers";
