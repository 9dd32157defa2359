//! Building a function's providers and router from [`Config`], once per
//! cold start. The binaries in `functions/` call [`run_http_function`] and
//! nothing else.

use std::sync::Arc;

use std::time::Duration;

use crate::actions::register_release::MAX_DESCRIPTOR_BYTES;
use crate::actions::{process_work_item, sweep_once, EngineDeps, ReleaseDeps, WorkerDeps};
use crate::config::QueueProvider;
use crate::config::{
    CapabilitiesCheck, Config, ConfigError, DeadLetterProvider, DynamoSettings, FunctionName,
    RegistryProvider, StateProvider, StorageProvider,
};
use crate::domain::location::Root;
use crate::http::{router, AppState};
use crate::ports::{
    ArtifactStore, AwaitStore, Clock, DeadLetterSink, ExecutionStore, ReleaseRegistry,
    SecretResolver, SystemClock, WorkItem, WorkerRegistry,
};
use crate::ports::{LocationReader, WorkQueue};
use crate::providers::aws_secrets::AwsSecretResolver;
use crate::providers::dead_letters::{FileDeadLetterSink, LogDeadLetterSink};
use crate::providers::dynamo::{
    DynamoAwaitStore, DynamoExecutionStore, DynamoReleaseRegistry, DynamoStateSettings,
    DynamoWorkerRegistry,
};
use crate::providers::file::{
    self, FileAwaitStore, FileExecutionStore, FileReleaseRegistry, FileWorkerRegistry,
    LocalArtifactStore, LocalLocationReader,
};
use crate::providers::http::RestWorkerTransport;
use crate::providers::memory::{
    MemoryAwaitStore, MemoryExecutionStore, MemoryReleaseRegistry, MemoryWorkerRegistry,
};
use crate::providers::queues::InlineQueue;
use crate::providers::s3::{S3ArtifactStore, S3LocationReader};
use crate::providers::secrets::CachedSecret;
use crate::providers::sqs::{SqsDeadLetterSink, SqsWorkQueue};

/// Builds the state of `config.function` with the real clock and the
/// secret resolver of every scheme (`env:`, `ssm:`, `secretsmanager:`).
pub async fn build_state(config: &Config) -> Result<AppState, ConfigError> {
    build_state_with(
        config,
        Arc::new(SystemClock),
        Arc::new(AwsSecretResolver::from_env()),
    )
    .await
}

/// AWS clients of one cold start, each built on first use and shared by
/// every provider that needs it. The SDK's default chain (credentials,
/// region, `AWS_*` settings, profile files) is resolved once for all of
/// them: each `aws_config` load re-reads the environment and profile files
/// and builds its own HTTPS client (root certificates parsed again), which
/// is start-up time (BENCHMARKS.md, cold start).
struct AwsClients<'a> {
    config: &'a Config,
    dynamo_settings: &'a DynamoSettings,
    shared: tokio::sync::OnceCell<aws_config::SdkConfig>,
    dynamo: tokio::sync::OnceCell<aws_sdk_dynamodb::Client>,
    s3: tokio::sync::OnceCell<aws_sdk_s3::Client>,
    sqs: tokio::sync::OnceCell<aws_sdk_sqs::Client>,
}

impl<'a> AwsClients<'a> {
    fn new(config: &'a Config) -> Self {
        Self {
            config,
            dynamo_settings: &config.dynamo,
            shared: tokio::sync::OnceCell::new(),
            dynamo: tokio::sync::OnceCell::new(),
            s3: tokio::sync::OnceCell::new(),
            sqs: tokio::sync::OnceCell::new(),
        }
    }

    /// The SDK's default configuration, loaded on first use.
    async fn shared(&self) -> &aws_config::SdkConfig {
        self.shared
            .get_or_init(crate::providers::aws_sdk::load_config)
            .await
    }

    /// S3 with the `TPF_RELEASES_STORAGE_S3_*` region, endpoint and path style.
    async fn s3(&self) -> aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| async {
                let shared = self.shared().await;
                let s = &self.config.s3;
                crate::providers::s3::client(
                    shared,
                    s.region.as_deref().map(str::trim),
                    s.endpoint_override.as_deref().map(str::trim),
                    s.path_style_access,
                )
            })
            .await
            .clone()
    }

    /// SQS with `TPF_SQS_REGION` / `TPF_SQS_ENDPOINT_OVERRIDE`.
    async fn sqs(&self) -> aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| async {
                let shared = self.shared().await;
                let s = &self.config.engine.sqs;
                let mut builder = aws_sdk_sqs::config::Builder::from(shared);
                if let Some(region) = s.region.as_deref().map(str::trim) {
                    builder = builder.region(aws_sdk_sqs::config::Region::new(region.to_owned()));
                }
                if let Some(endpoint) = s.endpoint_override.as_deref().map(str::trim) {
                    builder = builder.endpoint_url(endpoint);
                }
                aws_sdk_sqs::Client::from_conf(builder.build())
            })
            .await
            .clone()
    }

    async fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        self.dynamo
            .get_or_init(|| async { dynamo_client_from(self.shared().await, self.dynamo_settings) })
            .await
            .clone()
    }
}

/// The DynamoDB client of the registries: the SDK's default chain
/// (credentials, region, `AWS_ENDPOINT_URL*`) with `TPF_DYNAMO_REGION` and
/// `TPF_DYNAMO_ENDPOINT_OVERRIDE` applied on top (DynamoDB only).
pub async fn dynamo_client(settings: &DynamoSettings) -> aws_sdk_dynamodb::Client {
    let shared = crate::providers::aws_sdk::load_config().await;
    dynamo_client_from(&shared, settings)
}

/// [`dynamo_client`] on an already loaded SDK configuration.
fn dynamo_client_from(
    shared: &aws_config::SdkConfig,
    settings: &DynamoSettings,
) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(shared);
    if let Some(region) = settings.region.as_deref().map(str::trim) {
        builder = builder.region(aws_sdk_dynamodb::config::Region::new(region.to_owned()));
    }
    if let Some(endpoint) = settings.endpoint_override.as_deref().map(str::trim) {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// The release registry `TPF_RELEASES_REGISTRY_PROVIDER` selects.
async fn release_registry(config: &Config, aws: &AwsClients<'_>) -> Arc<dyn ReleaseRegistry> {
    match config.releases_registry_provider {
        RegistryProvider::Memory => Arc::new(MemoryReleaseRegistry::new()),
        RegistryProvider::File => Arc::new(FileReleaseRegistry::new(
            config.releases_storage_root.clone(),
        )),
        RegistryProvider::Dynamo => Arc::new(DynamoReleaseRegistry::new(
            aws.dynamo().await,
            config.dynamo.release_table.clone(),
        )),
    }
}

/// The worker registry `TPF_WORKER_LIFECYCLE_PROVIDER` selects.
async fn worker_registry(config: &Config, aws: &AwsClients<'_>) -> Arc<dyn WorkerRegistry> {
    match config.worker_lifecycle_provider {
        RegistryProvider::Memory => Arc::new(MemoryWorkerRegistry::new()),
        RegistryProvider::File => Arc::new(FileWorkerRegistry::new(
            config.worker_lifecycle_root.clone(),
        )),
        RegistryProvider::Dynamo => Arc::new(DynamoWorkerRegistry::new(
            aws.dynamo().await,
            config.dynamo.worker_table.clone(),
        )),
    }
}

/// [`build_state`] with an injected clock and secret resolver (tests).
pub async fn build_state_with(
    config: &Config,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretResolver>,
) -> Result<AppState, ConfigError> {
    let secret = |s: &Option<crate::config::SecretSource>| {
        s.clone().map(|s| CachedSecret::new(s, secrets.clone()))
    };
    let aws = AwsClients::new(config);
    let releases = match config.function {
        FunctionName::ReleaseAdmin => {
            file::beneath::check_openat2().map_err(ConfigError)?;
            let registry = release_registry(config, &aws).await;
            let store: Arc<dyn ArtifactStore> = match config.releases_storage_provider {
                StorageProvider::Local => Arc::new(LocalArtifactStore::new(
                    config.releases_storage_root.clone(),
                )),
                StorageProvider::S3 => Arc::new(S3ArtifactStore::new(
                    aws.s3().await,
                    config.s3.bucket.clone().unwrap_or_default(),
                    config.s3.prefix.clone(),
                )),
            };
            let locations: Arc<dyn LocationReader> = if config
                .registration_roots
                .iter()
                .any(|r| matches!(r, Root::S3 { .. }))
            {
                Arc::new(
                    S3LocationReader::new(aws.s3().await)
                        .with_max_bytes(config.max_artifact_bytes.max(MAX_DESCRIPTOR_BYTES)),
                )
            } else {
                Arc::new(LocalLocationReader)
            };
            Some(ReleaseDeps {
                registry,
                store,
                locations,
                clock: clock.clone(),
                roots: config.registration_roots.clone(),
                max_artifact_bytes: config.max_artifact_bytes,
            })
        }
        _ => None,
    };
    let workers = match config.function {
        FunctionName::WorkerLifecycle => {
            let registry = worker_registry(config, &aws).await;
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
        FunctionName::ControlPlane | FunctionName::Dispatcher | FunctionName::Sweeper => {
            Some(build_engine(config, &aws, clock.clone(), secrets.clone()).await?)
        }
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
async fn build_engine(
    config: &Config,
    aws: &AwsClients<'_>,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretResolver>,
) -> Result<EngineDeps, ConfigError> {
    let e = &config.engine;
    let (executions, awaits): (Arc<dyn ExecutionStore>, Arc<dyn AwaitStore>) =
        match (e.state_provider, &e.dynamo_state) {
            (StateProvider::Memory, _) => (
                Arc::new(MemoryExecutionStore::new()),
                Arc::new(MemoryAwaitStore::new()),
            ),
            (StateProvider::Dynamo, Some(d)) => {
                let settings = DynamoStateSettings {
                    payload_bucket: d.payload_bucket.clone(),
                    payload_prefix: d.payload_prefix.clone(),
                    threshold_bytes: d.threshold_bytes,
                    index_shards: d.index_shards,
                };
                let (ddb, s3) = (aws.dynamo().await, aws.s3().await);
                (
                    Arc::new(DynamoExecutionStore::new(
                        ddb.clone(),
                        s3.clone(),
                        d.execution_table.clone(),
                        settings.clone(),
                    )),
                    Arc::new(DynamoAwaitStore::new(
                        ddb,
                        s3,
                        d.await_table.clone(),
                        settings,
                    )),
                )
            }
            _ => (
                Arc::new(FileExecutionStore::new(e.state_root.clone())),
                Arc::new(FileAwaitStore::new(e.state_root.clone())),
            ),
        };
    let releases = release_registry(config, aws).await;
    let workers = worker_registry(config, aws).await;
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
        DeadLetterProvider::Log => Arc::new(LogDeadLetterSink),
        DeadLetterProvider::File(path) => Arc::new(FileDeadLetterSink::new(path.clone())),
        DeadLetterProvider::Sqs(url) => {
            Arc::new(SqsDeadLetterSink::new(aws.sqs().await, url.clone()))
        }
    };
    let queue: Arc<dyn WorkQueue> = match &e.queue {
        QueueProvider::Inline => {
            let (queue, receiver) = InlineQueue::channel();
            *INLINE_RECEIVER.lock().unwrap_or_else(|p| p.into_inner()) = Some(receiver);
            Arc::new(queue)
        }
        QueueProvider::Sqs(url) => Arc::new(SqsWorkQueue::new(aws.sqs().await, url.clone())),
    };
    Ok(EngineDeps {
        executions,
        awaits,
        releases,
        workers,
        transport: Arc::new(transport),
        queue,
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
    // Only with the inline queue: on AWS the dispatcher and sweeper
    // functions do this work.
    let Some(mut receiver) = INLINE_RECEIVER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        return;
    };
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

/// Logging and the engine of a non-HTTP function; start-up failures are
/// logged and returned.
async fn engine_for(function: FunctionName) -> Result<EngineDeps, lambda_runtime::Error> {
    crate::telemetry::init();
    let state = match Config::from_env(function) {
        Ok(config) => build_state(&config).await,
        Err(e) => Err(e),
    }
    .inspect_err(
        |e| tracing::error!(function = function.as_str(), error = %e, "start-up failed"),
    )?;
    state.engine.ok_or_else(|| "no engine was built".into())
}

/// The whole `main` of the dispatcher: SQS events → `process_work_item`
/// per message, with a partial batch failure response.
pub async fn run_dispatcher() -> Result<(), lambda_runtime::Error> {
    let deps = engine_for(FunctionName::Dispatcher).await?;
    let deps = &deps;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(crate::lambda_events::dispatch_batch(deps, event.payload).await)
        },
    ))
    .await
}

/// The whole `main` of the sweeper: each scheduled event runs one sweep.
pub async fn run_sweeper() -> Result<(), lambda_runtime::Error> {
    let deps = engine_for(FunctionName::Sweeper).await?;
    let deps = &deps;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(crate::lambda_events::sweep_tick(deps).await)
        },
    ))
    .await
}

/// The whole `main` of an HTTP function: logging, configuration,
/// providers, then `lambda_http::run` with the router.
pub async fn run_http_function(function: FunctionName) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = match Config::from_env(function) {
        Ok(config) => build_state(&config).await,
        Err(e) => Err(e),
    }
    .inspect_err(|e| {
        tracing::error!(function = function.as_str(), error = %e, "start-up failed");
    })?;
    if let Some(engine) = &state.engine {
        start_background(engine);
    }
    lambda_http::run(router(Arc::new(state))).await
}
