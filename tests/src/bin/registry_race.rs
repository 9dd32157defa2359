//! Drives the `file` registries from a separate process, so tests can run
//! several at once against one storage root (RRP-02, WL-09).
//!
//! ```text
//! registry_race <storage_root> <tenant> <pipeline> create <version> [<createdAtEpochMs>]
//!     prints CREATED | EXISTS
//! registry_race <storage_root> <tenant> <pipeline> append <version> <seq>
//!     prints APPENDED | SEQ_TAKEN | RELEASE_MISSING
//! registry_race <storage_root> <tenant> <pipeline> activate <version>
//!     appends ACTIVATED with seq = latest + 1, retrying on SEQ_TAKEN; prints the seq
//! registry_race <storage_root> <tenant> <pipeline> create-many <prefix> <n>
//!     creates <prefix>-0 … <prefix>-(n-1) (a target to kill mid-write); prints DONE
//! registry_race <storage_root> <tenant> <pipeline> register <worker>
//!     creates the worker at stateVersion 1 in <storage_root>/workers; prints REGISTERED | EXISTS
//! registry_race <storage_root> <tenant> <pipeline> heartbeat-loop <worker> <n>
//!     n read/write_worker changes (+1 stateVersion each, every fifth with a
//!     REGISTER event), retrying on Conflict; prints DONE <events written>
//! registry_race <storage_root> <tenant> <pipeline> register-action <descriptor path>
//!     runs the register_release action (file registry, local store, roots from
//!     RACE_REGISTRATION_ROOT); prints `200 <createdAtEpochMs>` or the error code
//! registry_race <storage_root> <tenant> <pipeline> activate-action <version>
//!     runs the activate_release action; prints `200` or the error code
//! registry_race <state_root> <tenant> <pipeline> complete <completion body JSON>
//!     runs the complete_interaction action for <tenant> on the `file`
//!     execution and await stores at <state_root> (memory registries, a
//!     no-op transport and queue, the system clock); prints
//!     `200 <duplicate>` or the error code
//! ```
//!
//! With `RACE_START_AT_MS` set (epoch ms), the operation waits until then,
//! so processes started one after another really run at the same time.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;
use tpf_core::actions::register_release::{self, DescriptorSource};
use tpf_core::actions::{activate_release, complete_interaction, EngineDeps, ReleaseDeps};
use tpf_core::config::{Config, FunctionName};
use tpf_core::domain::location::Root;
use tpf_core::domain::release::{ActivationEvent, ActivationType, ReleaseRecord};
use tpf_core::domain::worker::{WorkerEntry, WorkerEvent, WorkerEventType};
use tpf_core::domain::worker_protocol::{TransitionCommand, TransitionFailure, TransitionResult};
use tpf_core::ports::SystemClock;
use tpf_core::ports::{AppendOutcome, CreateOutcome, ReleaseRegistry, WorkerRegistry, WorkerWrite};
use tpf_core::ports::{ProbeError, WorkItem, WorkQueue, WorkerTransport};
use tpf_core::providers::dead_letters::LogDeadLetterSink;
use tpf_core::providers::file::{
    FileAwaitStore, FileExecutionStore, FileReleaseRegistry, FileWorkerRegistry,
    LocalArtifactStore, LocalLocationReader,
};
use tpf_core::providers::memory::{MemoryReleaseRegistry, MemoryWorkerRegistry};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sleeps until `RACE_START_AT_MS`, if given.
async fn wait_for_start() {
    if let Some(at) = std::env::var("RACE_START_AT_MS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        let wait = at - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }
}

/// A minimal release record.
fn record(tenant: &str, pipeline: &str, version: &str, created_at: i64) -> ReleaseRecord {
    ReleaseRecord {
        tenant_id: tenant.into(),
        pipeline_id: pipeline.into(),
        contract_version: "race".into(),
        release_version: version.into(),
        descriptor: serde_json::Map::new(),
        primary_artifact_id: "app".into(),
        primary_artifact_digest: String::new(),
        primary_artifact_uri: String::new(),
        primary_artifact_size_bytes: 0,
        primary_artifact_checksum: String::new(),
        contract: None,
        created_at_epoch_ms: created_at,
        content_hash: format!("race:{version}"),
        descriptor_location: "inline".into(),
        stored_artifacts: Vec::new(),
    }
}

/// A worker entry at `state_version`.
fn worker_entry(tenant: &str, pipeline: &str, worker: &str, state_version: u64) -> WorkerEntry {
    WorkerEntry {
        tenant_id: tenant.into(),
        pipeline_id: pipeline.into(),
        contract_version: "race".into(),
        release_version: "race".into(),
        worker_id: worker.into(),
        protocol: "local".into(),
        endpoint: String::new(),
        artifact_id: String::new(),
        artifact_digest: String::new(),
        registered_at_epoch_ms: now_ms(),
        last_heartbeat_at_epoch_ms: now_ms(),
        draining_since_epoch_ms: 0,
        state_version,
        updated_at_epoch_ms: now_ms(),
    }
}

fn register_event(entry: &WorkerEntry) -> WorkerEvent {
    WorkerEvent {
        event_type: WorkerEventType::Register,
        at_epoch_ms: entry.updated_at_epoch_ms,
        state_version: entry.state_version,
        snapshot: entry.clone(),
    }
}

/// The release actions' dependencies on the file providers under `root`.
fn action_deps(root: &std::path::Path) -> ReleaseDeps {
    let registration_root = std::env::var("RACE_REGISTRATION_ROOT").unwrap_or_default();
    ReleaseDeps {
        registry: Arc::new(FileReleaseRegistry::new(root.to_path_buf())),
        store: Arc::new(LocalArtifactStore::new(root.to_path_buf())),
        locations: Arc::new(LocalLocationReader),
        clock: Arc::new(SystemClock),
        roots: vec![Root::Local(registration_root)],
        max_artifact_bytes: 268_435_456,
    }
}

/// A transport that calls no worker (completion never dispatches).
struct NoTransport;

#[async_trait::async_trait]
impl WorkerTransport for NoTransport {
    async fn execute(
        &self,
        _endpoint: &str,
        _command: &TransitionCommand,
    ) -> Result<TransitionResult, TransitionFailure> {
        Err(TransitionFailure::new(
            "WORKER_UNREACHABLE",
            "registry_race calls no worker",
            true,
        ))
    }
    async fn capabilities(
        &self,
        _endpoint: &str,
    ) -> Result<tpf_core::domain::worker_protocol::WorkerCapabilities, ProbeError> {
        Err(ProbeError::Unreachable(
            "registry_race calls no worker".into(),
        ))
    }
}

/// A work queue that drops every item (the sweep would recover them).
struct NoQueue;

#[async_trait::async_trait]
impl WorkQueue for NoQueue {
    async fn enqueue(
        &self,
        _item: &WorkItem,
        _delay_ms: u64,
    ) -> Result<(), tpf_core::error::StoreError> {
        Ok(())
    }
}

/// The engine actions' dependencies on the `file` execution and await
/// stores under `state_root`; everything else is inert.
fn engine_deps(state_root: &std::path::Path) -> Result<EngineDeps, String> {
    let config = Config::from_lookup(FunctionName::ControlPlane, state_root, |k| {
        (k == "TPF_WORKER_SHARED_SECRET").then(|| "registry-race".to_string())
    })
    .map_err(|e| e.to_string())?;
    Ok(EngineDeps {
        executions: Arc::new(FileExecutionStore::new(state_root.to_path_buf())),
        awaits: Arc::new(FileAwaitStore::new(state_root.to_path_buf())),
        releases: Arc::new(MemoryReleaseRegistry::new()),
        workers: Arc::new(MemoryWorkerRegistry::new()),
        transport: Arc::new(NoTransport),
        queue: Arc::new(NoQueue),
        dead_letters: Arc::new(LogDeadLetterSink),
        clock: Arc::new(SystemClock),
        settings: Arc::new(config.engine),
        stale_after_ms: config.worker_stale_after_ms,
        resume_secret: None,
    })
}

fn usage() -> ExitCode {
    eprintln!("usage: registry_race <storage_root> <tenant> <pipeline> <op> <arg> [<arg>]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        return usage();
    }
    let (root, tenant, pipeline, op, arg) = (
        PathBuf::from(&args[0]),
        args[1].as_str(),
        args[2].as_str(),
        args[3].as_str(),
        args[4].as_str(),
    );
    let extra = args.get(5).map(String::as_str);
    let releases = FileReleaseRegistry::new(root.clone());
    let workers = FileWorkerRegistry::new(root.join("workers"));
    wait_for_start().await;

    match (op, extra) {
        ("complete", _) => {
            let deps = match engine_deps(&root) {
                Ok(deps) => deps,
                Err(e) => return fail(e),
            };
            let body: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(arg) {
                Ok(body) => body,
                Err(e) => return fail(e),
            };
            let outcome = match complete_interaction::parse_request(&body) {
                Ok(req) => complete_interaction::run(&deps, tenant, req).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(done) => println!("200 {}", done.duplicate),
                Err(e) => println!("{}", e.code.as_str()),
            }
        }
        ("register-action", _) | ("activate-action", _) => {
            let deps = action_deps(&root);
            let outcome = if op == "register-action" {
                let source = DescriptorSource::Location(arg.to_string());
                register_release::run(&deps, tenant, pipeline, source)
                    .await
                    .map(|v| format!("200 {}", v.record.created_at_epoch_ms))
            } else {
                activate_release::run(&deps, tenant, pipeline, arg)
                    .await
                    .map(|_| "200".to_string())
            };
            match outcome {
                Ok(line) => println!("{line}"),
                Err(e) => println!("{}", e.code.as_str()),
            }
        }
        ("create", _) => {
            let created_at = extra
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_736_936_000_000);
            match releases
                .create_release(&record(tenant, pipeline, arg, created_at))
                .await
            {
                Ok(CreateOutcome::Created) => println!("CREATED"),
                Ok(CreateOutcome::Exists(_)) => println!("EXISTS"),
                Err(e) => return fail(e),
            }
        }
        ("append", Some(seq)) => {
            let Ok(seq) = seq.parse() else { return usage() };
            let event = ActivationEvent {
                seq,
                event_type: ActivationType::Activated,
                release_version: arg.into(),
                previous_release_version: None,
                artifact_verified: true,
                activated_at_epoch_ms: now_ms(),
                at_epoch_ms: now_ms(),
                detail: None,
            };
            match releases.append_event(tenant, pipeline, &event).await {
                Ok(AppendOutcome::Appended) => println!("APPENDED"),
                Ok(AppendOutcome::SeqTaken) => println!("SEQ_TAKEN"),
                Ok(AppendOutcome::ReleaseMissing) => println!("RELEASE_MISSING"),
                Err(e) => return fail(e),
            }
        }
        ("activate", _) => loop {
            let latest = match releases.latest_event(tenant, pipeline).await {
                Ok(latest) => latest,
                Err(e) => return fail(e),
            };
            let at = now_ms();
            let event = ActivationEvent {
                seq: latest.as_ref().map_or(1, |e| e.seq + 1),
                event_type: ActivationType::Activated,
                release_version: arg.into(),
                previous_release_version: latest.map(|e| e.release_version),
                artifact_verified: true,
                activated_at_epoch_ms: at,
                at_epoch_ms: at,
                detail: None,
            };
            match releases.append_event(tenant, pipeline, &event).await {
                Ok(AppendOutcome::Appended) => {
                    println!("{}", event.seq);
                    break;
                }
                Ok(AppendOutcome::SeqTaken) => continue,
                Ok(AppendOutcome::ReleaseMissing) => {
                    println!("RELEASE_MISSING");
                    break;
                }
                Err(e) => return fail(e),
            }
        },
        ("create-many", Some(n)) => {
            let Ok(n) = n.parse::<u64>() else {
                return usage();
            };
            for i in 0..n {
                let version = format!("{arg}-{i}");
                if let Err(e) = releases
                    .create_release(&record(tenant, pipeline, &version, i as i64))
                    .await
                {
                    return fail(e);
                }
            }
            println!("DONE");
        }
        ("register", _) => {
            let entry = worker_entry(tenant, pipeline, arg, 1);
            match workers
                .write_worker(&entry, None, Some(&register_event(&entry)))
                .await
            {
                Ok(WorkerWrite::Written) => println!("REGISTERED"),
                Ok(WorkerWrite::Conflict) => println!("EXISTS"),
                Err(e) => return fail(e),
            }
        }
        ("heartbeat-loop", Some(n)) => {
            let Ok(n) = n.parse::<u64>() else {
                return usage();
            };
            let mut events = 0;
            for i in 0..n {
                loop {
                    let current = match workers.get_worker(tenant, pipeline, arg).await {
                        Ok(Some(current)) => current,
                        Ok(None) => {
                            eprintln!("worker {arg} is not registered");
                            return ExitCode::FAILURE;
                        }
                        Err(e) => return fail(e),
                    };
                    let next = WorkerEntry {
                        state_version: current.state_version + 1,
                        last_heartbeat_at_epoch_ms: now_ms()
                            .max(current.last_heartbeat_at_epoch_ms),
                        updated_at_epoch_ms: now_ms(),
                        ..current.clone()
                    };
                    let event = (i % 5 == 0).then(|| register_event(&next));
                    match workers
                        .write_worker(&next, Some(current.state_version), event.as_ref())
                        .await
                    {
                        Ok(WorkerWrite::Written) => {
                            events += usize::from(event.is_some());
                            break;
                        }
                        Ok(WorkerWrite::Conflict) => continue,
                        Err(e) => return fail(e),
                    }
                }
            }
            println!("DONE {events}");
        }
        _ => return usage(),
    }
    ExitCode::SUCCESS
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("registry_race: {e}");
    ExitCode::FAILURE
}
