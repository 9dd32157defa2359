//! The stacks the load driver runs against, each built through the same
//! wiring the Lambda binaries use (`tpf_core::wiring::build_state_with` on a
//! `Config` read from a variable map), so the driver measures the real
//! routers, actions and providers rather than a test double:
//!
//! - `memory`: memory stores and registries, the `inline` queue consumed
//!   in-process by `wiring::start_background` (as the control-plane does
//!   locally, with its sweep timer);
//! - `file`: the same on the `file` providers under a temporary state
//!   directory (the local default);
//! - `moto`: the `dynamo`, `s3` and `sqs` providers against a `moto_server`
//!   on a free loopback port, resources provisioned from `template.yaml` by
//!   `tpf-local-aws`, and the template's SQS event source and sweeper
//!   schedule played by `tpf-local-aws`'s pump against an in-process Lambda
//!   Invoke endpoint that runs the dispatcher's and sweeper's handlers
//!   (`tpf_core::lambda_events`).
//!
//! Every stack gets the example restaurant worker served on a loopback
//! socket, the demo release registered and activated, and the worker
//! registered, through the release-admin and worker-lifecycle actions.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use tpf_core::actions::register_release::DescriptorSource;
use tpf_core::actions::register_worker::RegisterWorker;
use tpf_core::actions::{
    activate_release, heartbeat_worker, register_release, register_worker, EngineDeps,
};
use tpf_core::config::{Config, FunctionName};
use tpf_core::http::{router, AppState};
use tpf_core::ports::SystemClock;
use tpf_core::providers::secrets::EnvSecretResolver;

use super::LoadError;

/// Tenant of every execution the driver submits.
pub const TENANT: &str = "acme";
/// Control-plane bearer token of the stacks the driver builds.
pub const CONTROL_TOKEN: &str = "load-control-token";
/// Admin bearer token of the stacks the driver builds.
pub const ADMIN_TOKEN: &str = "load-admin-token";
/// Shared secret between the coordinator and the example worker.
pub const WORKER_SECRET: &str = "load-worker-secret";
/// How often the example worker's registration is refreshed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(20);
/// Region of the moto stack.
const REGION: &str = "us-east-1";
/// Stack name of the moto resources (`<stack>-<LogicalId>`).
const MOTO_STACK: &str = "tpf-load";

/// Which providers a stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    /// Memory stores and registries, inline queue.
    Memory,
    /// File stores and registries, inline queue.
    File,
    /// DynamoDB, S3 and SQS on moto.
    Moto,
}

impl StackKind {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            StackKind::Memory => "memory",
            StackKind::File => "file",
            StackKind::Moto => "moto",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<StackKind> {
        match name {
            "memory" => Some(StackKind::Memory),
            "file" => Some(StackKind::File),
            "moto" => Some(StackKind::Moto),
            _ => None,
        }
    }
}

/// Options of a stack that are not the provider choice.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// SQS pollers of the moto stack (Lambda runs several per event source).
    pub pollers: usize,
    /// `TPF_SWEEP_INTERVAL` / sweeper schedule, in seconds.
    pub sweep_every_s: u64,
}

/// A running stack: the control-plane router and whatever keeps it alive.
pub struct Stack {
    pub kind: StackKind,
    /// The control-plane function's router (submit, status, history,
    /// pending, complete).
    pub router: Router,
    /// Base URL of the example worker.
    pub worker_url: String,
    /// Temporary state directory (removed on drop).
    _dir: tempfile::TempDir,
    /// The moto server, when this stack started one.
    _moto: Option<MotoServer>,
    /// Background tasks (pollers, schedule, worker server), aborted on drop.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A `moto_server` child process, stopped on drop; a watchdog shell also
/// stops it if this process dies first.
struct MotoServer {
    endpoint: String,
    child: Option<Child>,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `TPF_MOTO_SERVER`, else the project venv's `moto_server`.
fn moto_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TPF_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(".venv/bin/moto_server"))
        .find(|p| p.exists())
}

/// Starts `moto_server` on a free loopback port, or uses
/// `TPF_MOTO_ENDPOINT` when set.
async fn start_moto() -> Result<MotoServer, LoadError> {
    if let Ok(endpoint) = std::env::var("TPF_MOTO_ENDPOINT") {
        return Ok(MotoServer {
            endpoint,
            child: None,
        });
    }
    let binary = moto_binary().ok_or_else(|| {
        LoadError::Setup(
            "moto_server not found: `source infra/lib.sh && ensure_moto`, or set TPF_MOTO_SERVER / TPF_MOTO_ENDPOINT".into(),
        )
    })?;
    let port = StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| LoadError::Setup(format!("free port: {e}")))?
        .port();
    // The shell's `$1`/`$2`/`$3` keep the path out of the script text.
    let script = "\"$1\" -H 127.0.0.1 -p \"$2\" & m=$!; while kill -0 \"$3\" 2>/dev/null; do sleep 1; done; kill $m";
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(&binary)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| LoadError::Setup(format!("start {}: {e}", binary.display())))?;
    let server = MotoServer {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err(LoadError::Setup(format!(
                "moto_server did not start on port {port}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(server)
}

/// The variables every stack shares: surfaces on, literal tokens and
/// worker secret, local roots under `dir`.
fn base_vars(dir: &Path, sweep_every_s: u64) -> HashMap<String, String> {
    let p = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
    HashMap::from([
        ("TPF_CONTROL_PLANE_ENABLED".into(), "true".into()),
        ("TPF_ADMIN_ENABLED".into(), "true".into()),
        ("TPF_CONTROL_PLANE_TOKEN".into(), CONTROL_TOKEN.into()),
        ("TPF_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("TPF_WORKER_SHARED_SECRET".into(), WORKER_SECRET.into()),
        ("TPF_STATE_ROOT".into(), p("state")),
        ("TPF_RELEASES_STORAGE_ROOT".into(), p("store")),
        ("TPF_WORKER_LIFECYCLE_ROOT".into(), p("workers")),
        ("TPF_RELEASES_REGISTRATION_ROOTS".into(), p("releases")),
        ("TPF_SWEEP_INTERVAL".into(), format!("PT{sweep_every_s}S")),
    ])
}

/// Builds the state of `function` from `vars` through the real wiring.
async fn state_of(
    function: FunctionName,
    dir: &Path,
    vars: &HashMap<String, String>,
) -> Result<AppState, LoadError> {
    let config = Config::from_lookup(function, dir, |k| vars.get(k).cloned())
        .map_err(|e| LoadError::Setup(e.to_string()))?;
    tpf_core::wiring::build_state_with(&config, Arc::new(SystemClock), Arc::new(EnvSecretResolver))
        .await
        .map_err(|e| LoadError::Setup(e.to_string()))
}

/// Serves `router` on a free loopback port; returns its base URL and task.
pub async fn serve(router: Router) -> Result<(String, tokio::task::JoinHandle<()>), LoadError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| LoadError::Setup(format!("bind: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| LoadError::Setup(format!("bind: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "server stopped");
        }
    });
    Ok((format!("http://{addr}"), task))
}

/// The Lambda Invoke API of the dispatcher and sweeper, in process: an SQS
/// event (it has `Records`) runs `dispatch_batch`, anything else one sweep.
fn invoke_router(engine: EngineDeps) -> Router {
    async fn invoke(State(deps): State<Arc<EngineDeps>>, Json(event): Json<Value>) -> Json<Value> {
        if event.get("Records").is_some() {
            let event = serde_json::from_value(event).unwrap_or_default();
            let response = tpf_core::lambda_events::dispatch_batch(&deps, event).await;
            Json(serde_json::to_value(response).unwrap_or(Value::Null))
        } else {
            let summary = tpf_core::lambda_events::sweep_tick(&deps).await;
            Json(serde_json::to_value(summary).unwrap_or(Value::Null))
        }
    }
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .with_state(Arc::new(engine))
}

/// Provisions `template.yaml` on moto and returns the functions'
/// environment (its `Globals`), with the local overrides: literal tokens
/// and secret instead of the SSM / Secrets Manager references, every client
/// pointed at moto, and a local registration root.
async fn moto_vars(
    endpoint: &str,
    dir: &Path,
    sweep_every_s: u64,
) -> Result<(HashMap<String, String>, tpf_local_aws::template::Template), LoadError> {
    let template = tpf_local_aws::template::Template::of_this_repository()
        .map_err(|e| LoadError::Setup(format!("template.yaml: {e}")))?;
    let sdk = tpf_core::providers::aws_sdk::config_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .test_credentials()
        .load()
        .await;
    let clients = tpf_local_aws::provision::Clients::new(&sdk);
    let ctx = tpf_local_aws::provision::provision(&template, &clients, MOTO_STACK, REGION)
        .await
        .map_err(|e| LoadError::Setup(format!("provision: {e}")))?;
    let env = template
        .function_environment(&ctx)
        .map_err(|e| LoadError::Setup(format!("template environment: {e}")))?;
    let mut vars = base_vars(dir, sweep_every_s);
    for (name, value) in env {
        if name.ends_with("_REF") || name == "RUST_LOG" {
            continue;
        }
        if name == "TPF_RELEASES_REGISTRATION_ROOTS" {
            continue;
        }
        vars.insert(name, value);
    }
    for name in [
        "TPF_DYNAMO_ENDPOINT_OVERRIDE",
        "TPF_SQS_ENDPOINT_OVERRIDE",
        "TPF_RELEASES_STORAGE_S3_ENDPOINT_OVERRIDE",
    ] {
        vars.insert(name.into(), endpoint.into());
    }
    vars.insert(
        "TPF_RELEASES_STORAGE_S3_PATH_STYLE_ACCESS".into(),
        "true".into(),
    );
    vars.insert("TPF_DYNAMO_REGION".into(), REGION.into());
    vars.insert("TPF_SQS_REGION".into(), REGION.into());
    vars.insert("TPF_RELEASES_STORAGE_S3_REGION".into(), REGION.into());
    Ok((vars, template))
}

/// Plays the template's SQS event sources (`pollers` pollers each) and its
/// schedules against the in-process invoke endpoint at `invoke_base`.
async fn event_sources(
    template: &tpf_local_aws::template::Template,
    endpoint: &str,
    invoke_base: &str,
    opts: &StackOptions,
) -> Result<Vec<tokio::task::JoinHandle<()>>, LoadError> {
    use tpf_local_aws::template::EventSource;
    let sdk = tpf_core::providers::aws_sdk::config_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .test_credentials()
        .load()
        .await;
    let clients = tpf_local_aws::provision::Clients::new(&sdk);
    let invoker = tpf_local_aws::pump::Invoker::new(invoke_base);
    let mut tasks = Vec::new();
    let sources = template
        .event_sources()
        .map_err(|e| LoadError::Setup(format!("template event sources: {e}")))?;
    for source in sources {
        match source {
            EventSource::Sqs {
                function,
                queue,
                batch_size,
            } => {
                let name = tpf_local_aws::provision::physical_name(MOTO_STACK, &queue);
                let url = clients
                    .sqs()
                    .get_queue_url()
                    .queue_name(&name)
                    .send()
                    .await
                    .map_err(|e| LoadError::Setup(format!("GetQueueUrl {name}: {e}")))?
                    .queue_url
                    .unwrap_or_default();
                for _ in 0..opts.pollers.max(1) {
                    let source = tpf_local_aws::pump::QueueSource {
                        function: function.clone(),
                        queue_url: url.clone(),
                        queue_arn: format!(
                            "arn:aws:sqs:{REGION}:{}:{name}",
                            tpf_local_aws::provision::LOCAL_ACCOUNT
                        ),
                        batch_size: i32::try_from(batch_size).unwrap_or(10),
                        region: REGION.to_string(),
                    };
                    tasks.push(tokio::spawn(
                        source.run(clients.sqs().clone(), invoker.clone()),
                    ));
                }
            }
            EventSource::Schedule { function, .. } => {
                tasks.push(tokio::spawn(tpf_local_aws::pump::run_schedule(
                    invoker.clone(),
                    function,
                    Duration::from_secs(opts.sweep_every_s.max(1)),
                    REGION.to_string(),
                    tpf_local_aws::provision::LOCAL_ACCOUNT.to_string(),
                )));
            }
        }
    }
    Ok(tasks)
}

impl Stack {
    /// Builds and starts a stack of `kind`: providers, background work,
    /// the example worker, the demo release and the worker's registration.
    pub async fn start(kind: StackKind, opts: &StackOptions) -> Result<Stack, LoadError> {
        let dir = tempfile::Builder::new()
            .prefix("tpf-load-")
            .tempdir()
            .map_err(|e| LoadError::Setup(format!("temp dir: {e}")))?;
        std::fs::create_dir_all(dir.path().join("releases"))
            .map_err(|e| LoadError::Setup(format!("releases dir: {e}")))?;
        let mut tasks = Vec::new();
        let mut moto = None;
        let mut template = None;
        let vars = match kind {
            StackKind::Memory | StackKind::File => {
                let mut vars = base_vars(dir.path(), opts.sweep_every_s);
                let provider = kind.as_str();
                for name in [
                    "TPF_STATE_PROVIDER",
                    "TPF_RELEASES_REGISTRY_PROVIDER",
                    "TPF_WORKER_LIFECYCLE_PROVIDER",
                ] {
                    vars.insert(name.into(), provider.into());
                }
                vars
            }
            StackKind::Moto => {
                let server = start_moto().await?;
                let (vars, t) = moto_vars(&server.endpoint, dir.path(), opts.sweep_every_s).await?;
                template = Some(t);
                moto = Some(server);
                vars
            }
        };

        let control = state_of(FunctionName::ControlPlane, dir.path(), &vars).await?;
        let engine = control
            .engine
            .clone()
            .ok_or_else(|| LoadError::Setup("control-plane built no engine".into()))?;
        let mut release_deps = state_of(FunctionName::ReleaseAdmin, dir.path(), &vars)
            .await?
            .releases
            .ok_or_else(|| LoadError::Setup("release-admin built no release deps".into()))?;
        let mut worker_deps = state_of(FunctionName::WorkerLifecycle, dir.path(), &vars)
            .await?
            .workers
            .ok_or_else(|| LoadError::Setup("worker-lifecycle built no worker deps".into()))?;
        if kind == StackKind::Memory {
            // Memory registries live in one function's process: share the
            // control-plane's, as one process would.
            release_deps.registry = engine.releases.clone();
            worker_deps.registry = engine.workers.clone();
        }

        match (kind, &moto, &template) {
            (StackKind::Moto, Some(server), Some(template)) => {
                let dispatcher = state_of(FunctionName::Dispatcher, dir.path(), &vars)
                    .await?
                    .engine
                    .ok_or_else(|| LoadError::Setup("dispatcher built no engine".into()))?;
                let (invoke_base, task) = serve(invoke_router(dispatcher)).await?;
                tasks.push(task);
                tasks.extend(event_sources(template, &server.endpoint, &invoke_base, opts).await?);
            }
            _ => tpf_core::wiring::start_background(&engine),
        }

        let worker_config = restaurant_worker::WorkerConfig::new(
            restaurant_worker::SecretSource::Value(WORKER_SECRET.into()),
        );
        let (worker_url, task) = serve(restaurant_worker::router(worker_config)).await?;
        tasks.push(task);

        let spec = demo_release::DemoSpec::default();
        let demo = demo_release::write_release(&dir.path().join("releases"), &spec)
            .map_err(|e| LoadError::Setup(format!("demo release: {e}")))?;
        let source =
            DescriptorSource::Location(demo.descriptor_path.to_string_lossy().into_owned());
        register_release::run(&release_deps, TENANT, &spec.pipeline_id, source)
            .await
            .map_err(|e| LoadError::Setup(format!("register release: {e:?}")))?;
        activate_release::run(
            &release_deps,
            TENANT,
            &spec.pipeline_id,
            &spec.release_version,
        )
        .await
        .map_err(|e| LoadError::Setup(format!("activate release: {e:?}")))?;
        let identity = restaurant_worker::WorkerIdentity::from_spec(&spec);
        let registration = RegisterWorker {
            worker_id: "kitchen-1".into(),
            contract_version: spec.contract_version.clone(),
            release_version: spec.release_version.clone(),
            protocol: "rest".into(),
            endpoint: worker_url.clone(),
            artifact_id: identity.artifact_id,
            artifact_digest: identity.artifact_digest,
        };
        register_worker::run(&worker_deps, TENANT, &spec.pipeline_id, registration)
            .await
            .map_err(|e| LoadError::Setup(format!("register worker: {e:?}")))?;
        // A live worker heartbeats (else it turns STALE after
        // TPF_WORKER_LIFECYCLE_STALE_AFTER and submits answer 503).
        let pipeline = spec.pipeline_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) =
                    heartbeat_worker::run(&worker_deps, TENANT, &pipeline, "kitchen-1").await
                {
                    tracing::warn!(error = ?e, "worker heartbeat failed");
                }
            }
        }));

        Ok(Stack {
            kind,
            router: router(Arc::new(control)),
            worker_url,
            _dir: dir,
            _moto: moto,
            tasks,
        })
    }
}
