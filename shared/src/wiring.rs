//! Building a function's providers and router from [`Config`], once per
//! cold start. The binaries in `functions/` call [`run_http_function`] and
//! nothing else.

use std::sync::Arc;

use std::time::Duration;

use crate::actions::{process_work_item, sweep_once, EngineDeps, ReleaseDeps, WorkerDeps};
use crate::config::{
    CapabilitiesCheck, Config, ConfigError, DeadLetterProvider, FunctionName, RegistryProvider,
    StateProvider, StorageProvider,
};
use crate::http::{router, AppState};
use crate::ports::{
    ArtifactStore, AwaitStore, Clock, DeadLetterSink, ExecutionStore, ReleaseRegistry,
    SecretResolver, SystemClock, WorkItem, WorkerRegistry,
};
use crate::providers::dead_letters::{FileDeadLetterSink, LogDeadLetterSink};
use crate::providers::file::{
    self, FileAwaitStore, FileExecutionStore, FileReleaseRegistry, FileWorkerRegistry,
    LocalArtifactStore, LocalLocationReader,
};
use crate::providers::http::RestWorkerTransport;
use crate::providers::memory::{
    MemoryAwaitStore, MemoryExecutionStore, MemoryReleaseRegistry, MemoryWorkerRegistry,
};
use crate::providers::queues::InlineQueue;
use crate::providers::secrets::{CachedSecret, EnvSecretResolver};

/// Builds the state of `config.function` with the real clock and the
/// `env:` secret resolver.
pub fn build_state(config: &Config) -> Result<AppState, ConfigError> {
    build_state_with(config, Arc::new(SystemClock), Arc::new(EnvSecretResolver))
}

/// [`build_state`] with an injected clock and secret resolver (tests).
pub fn build_state_with(
    config: &Config,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretResolver>,
) -> Result<AppState, ConfigError> {
    let secret = |s: &Option<crate::config::SecretSource>| {
        s.clone().map(|s| CachedSecret::new(s, secrets.clone()))
    };
    let releases = match config.function {
        FunctionName::ReleaseAdmin => {
            file::beneath::check_openat2().map_err(ConfigError)?;
            let registry: Arc<dyn ReleaseRegistry> = match config.releases_registry_provider {
                RegistryProvider::Memory => Arc::new(MemoryReleaseRegistry::new()),
                _ => Arc::new(FileReleaseRegistry::new(
                    config.releases_storage_root.clone(),
                )),
            };
            let store: Arc<dyn ArtifactStore> = match config.releases_storage_provider {
                StorageProvider::Local | StorageProvider::S3 => Arc::new(LocalArtifactStore::new(
                    config.releases_storage_root.clone(),
                )),
            };
            Some(ReleaseDeps {
                registry,
                store,
                locations: Arc::new(LocalLocationReader),
                clock: clock.clone(),
                roots: config.registration_roots.clone(),
                max_artifact_bytes: config.max_artifact_bytes,
            })
        }
        _ => None,
    };
    let workers = match config.function {
        FunctionName::WorkerLifecycle => {
            let registry: Arc<dyn WorkerRegistry> = match config.worker_lifecycle_provider {
                RegistryProvider::Memory => Arc::new(MemoryWorkerRegistry::new()),
                _ => Arc::new(FileWorkerRegistry::new(
                    config.worker_lifecycle_root.clone(),
                )),
            };
            let probe: Option<Arc<dyn crate::ports::WorkerTransport>> =
                match config.capabilities_check {
                    CapabilitiesCheck::Off => None,
                    CapabilitiesCheck::Register => {
                        Some(Arc::new(rest_transport(config, secrets.clone())?))
                    }
                };
            Some(WorkerDeps {
                registry,
                clock: clock.clone(),
                stale_after_ms: config.worker_stale_after_ms,
                probe,
            })
        }
        _ => None,
    };
    let engine = match config.function {
        FunctionName::ControlPlane => Some(build_engine(config, clock.clone(), secrets.clone())?),
        _ => None,
    };
    Ok(AppState {
        engine,
        function: config.function,
        control_plane_enabled: config.control_plane_enabled,
        admin_enabled: config.admin_enabled,
        control_plane_token: secret(&config.control_plane_token),
        admin_token: secret(&config.admin_token),
        allowed_tenants: config.allowed_tenants.clone(),
        releases,
        workers,
    })
}

/// The execution engine of the control-plane: stores, registries, REST
/// transport, the `inline` queue and the dead-letter sink. The queue's
/// consumer is started by [`start_background`].
fn build_engine(
    config: &Config,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretResolver>,
) -> Result<EngineDeps, ConfigError> {
    let e = &config.engine;
    let (executions, awaits): (Arc<dyn ExecutionStore>, Arc<dyn AwaitStore>) =
        match e.state_provider {
            StateProvider::Memory => (
                Arc::new(MemoryExecutionStore::new()),
                Arc::new(MemoryAwaitStore::new()),
            ),
            _ => (
                Arc::new(FileExecutionStore::new(e.state_root.clone())),
                Arc::new(FileAwaitStore::new(e.state_root.clone())),
            ),
        };
    let releases: Arc<dyn ReleaseRegistry> = match config.releases_registry_provider {
        RegistryProvider::Memory => Arc::new(MemoryReleaseRegistry::new()),
        _ => Arc::new(FileReleaseRegistry::new(
            config.releases_storage_root.clone(),
        )),
    };
    let workers: Arc<dyn WorkerRegistry> = match config.worker_lifecycle_provider {
        RegistryProvider::Memory => Arc::new(MemoryWorkerRegistry::new()),
        _ => Arc::new(FileWorkerRegistry::new(
            config.worker_lifecycle_root.clone(),
        )),
    };
    let secret = config.worker_shared_secret.clone().ok_or_else(|| {
        ConfigError(
            "set exactly one of TPF_WORKER_SHARED_SECRET and TPF_WORKER_SHARED_SECRET_REF".into(),
        )
    })?;
    let transport = RestWorkerTransport::new(
        CachedSecret::new(secret, secrets.clone()),
        Duration::from_millis(e.connect_timeout_ms),
        Duration::from_millis(e.request_timeout_ms),
        e.max_response_bytes,
        e.non_retryable_classes.clone(),
    )
    .map_err(ConfigError)?;
    let dead_letters: Arc<dyn DeadLetterSink> = match &e.dead_letters {
        DeadLetterProvider::File(path) => Arc::new(FileDeadLetterSink::new(path.clone())),
        _ => Arc::new(LogDeadLetterSink),
    };
    let (queue, receiver) = InlineQueue::channel();
    *INLINE_RECEIVER.lock().unwrap_or_else(|p| p.into_inner()) = Some(receiver);
    Ok(EngineDeps {
        executions,
        awaits,
        releases,
        workers,
        transport: Arc::new(transport),
        queue: Arc::new(queue),
        dead_letters,
        clock,
        settings: Arc::new(e.clone()),
        stale_after_ms: config.worker_stale_after_ms,
        resume_secret: e
            .resume_token_secret
            .clone()
            .map(|s| Arc::new(CachedSecret::new(s, secrets))),
    })
}

/// The signed REST worker transport (dispatch and capability probes).
fn rest_transport(
    config: &Config,
    secrets: Arc<dyn SecretResolver>,
) -> Result<RestWorkerTransport, ConfigError> {
    let e = &config.engine;
    let secret = config.worker_shared_secret.clone().ok_or_else(|| {
        ConfigError(
            "set exactly one of TPF_WORKER_SHARED_SECRET and TPF_WORKER_SHARED_SECRET_REF".into(),
        )
    })?;
    RestWorkerTransport::new(
        CachedSecret::new(secret, secrets),
        Duration::from_millis(e.connect_timeout_ms),
        Duration::from_millis(e.request_timeout_ms),
        e.max_response_bytes,
        e.non_retryable_classes.clone(),
    )
    .map_err(ConfigError)
}

/// The inline queue's receiving end, handed from [`build_engine`] to
/// [`start_background`] (one engine per process).
static INLINE_RECEIVER: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<WorkItem>>> =
    std::sync::Mutex::new(None);

/// Local background work of the control-plane (`EXECUTION.md` §10.9): the
/// inline queue's consumer runs `process_work_item` for each item, and a
/// timer runs `sweep_once` every `TPF_SWEEP_INTERVAL`.
pub fn start_background(engine: &EngineDeps) {
    if let Some(mut receiver) = INLINE_RECEIVER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        let deps = engine.clone();
        tokio::spawn(async move {
            while let Some(item) = receiver.recv().await {
                let deps = deps.clone();
                tokio::spawn(async move {
                    let body = serde_json::to_string(&item).unwrap_or_default();
                    if let Err(e) = process_work_item::run(&deps, &body).await {
                        // Not acknowledged: redeliver after a pause (the sweep also recovers it).
                        tracing::warn!(error = %e, "work item failed; retrying in 5 s");
                        let _ = deps.queue.enqueue(&item, 5_000).await;
                    }
                });
            }
        });
    }
    let deps = engine.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(
            deps.settings.sweep_interval_ms.max(1),
        ));
        loop {
            tick.tick().await;
            sweep_once::run(&deps, deps.settings.sweep_limit).await;
        }
    });
}

/// The whole `main` of an HTTP function: logging, configuration,
/// providers, then `lambda_http::run` with the router.
pub async fn run_http_function(function: FunctionName) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = Config::from_env(function)
        .and_then(|c| build_state(&c))
        .inspect_err(|e| {
            tracing::error!(function = function.as_str(), error = %e, "start-up failed");
        })?;
    if let Some(engine) = &state.engine {
        start_background(engine);
    }
    lambda_http::run(router(Arc::new(state))).await
}
