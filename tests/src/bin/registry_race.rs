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
//! registry_race <state_root> <tenant> <pipeline> exec-loop <execution_id> <n>
//!     on the `file` execution store (STORE-06, a target to kill mid-write):
//!     creates <execution_id> with key `<execution_id>-key` unless it exists,
//!     then n rounds of: claim it (T2), schedule a retry (T5), each growing
//!     its TTL by one second (so the key entry is rewritten first), then
//!     create `<execution_id>-c<version>` keyed `<execution_id>-k<version>`
//!     (T1: key entry, then record); prints `DONE <version>`
//! registry_race <state_root> <tenant> <pipeline> await-loop <prefix> <n>
//!     on the `file` await store (STORE-06): n rounds of: import unit
//!     `<prefix>-u<i>` with interaction `<prefix>-i<i>` and correlation
//!     `<prefix>-c<i>` (interaction, correlation, unit), complete the
//!     interaction (version 2 → 3), finish the unit; prints `DONE`
//! registry_race <root> <tenant> <pipeline> dispatch <execution_id>
//!     runs `process_work_item` for the execution once: execution and await
//!     stores `file` at <root>/state, release registry `file` at <root>,
//!     worker registry `file` at <root>/workers, the REST transport with
//!     the engine settings and worker secret of the environment (`TPF_*`),
//!     the system clock; prints the outcome (`Committed(WaitRetry)`, …)
//! ```
//!
//! With `RACE_START_AT_MS` set (epoch ms), the operation waits until then,
//! so processes started one after another really run at the same time.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;
use tpf_core::actions::register_release::{self, DescriptorSource};
use tpf_core::actions::{
    activate_release, complete_interaction, process_work_item, EngineDeps, ReleaseDeps,
};
use tpf_core::config::{Config, FunctionName};
use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
use tpf_core::domain::execution::{execution_key, KeyEntry};
use tpf_core::domain::location::Root;
use tpf_core::domain::release::{ActivationEvent, ActivationType, ReleaseRecord};
use tpf_core::domain::worker::{WorkerEntry, WorkerEvent, WorkerEventType};
use tpf_core::domain::worker_protocol::{TransitionCommand, TransitionFailure, TransitionResult};
use tpf_core::ports::SystemClock;
use tpf_core::ports::{AppendOutcome, CreateOutcome, ReleaseRegistry, WorkerRegistry, WorkerWrite};
use tpf_core::ports::{AwaitStore, CreateExecution, ExecutionStore, ImportOutcome, Write};
use tpf_core::ports::{ProbeError, WorkItem, WorkQueue, WorkerTransport};
use tpf_core::providers::dead_letters::LogDeadLetterSink;
use tpf_core::providers::file::{
    FileAwaitStore, FileExecutionStore, FileReleaseRegistry, FileWorkerRegistry,
    LocalArtifactStore, LocalLocationReader,
};
use tpf_core::providers::http::RestWorkerTransport;
use tpf_core::providers::memory::{MemoryReleaseRegistry, MemoryWorkerRegistry};
use tpf_core::providers::secrets::{CachedSecret, EnvSecretResolver};

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
/// stores under `state_root` with `config`'s engine settings; everything
/// else is inert.
fn file_engine_deps(state_root: &std::path::Path, config: Config) -> EngineDeps {
    EngineDeps {
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
    }
}

/// [`file_engine_deps`] with the default engine settings.
fn engine_deps(state_root: &std::path::Path) -> Result<EngineDeps, String> {
    let config = Config::from_lookup(FunctionName::ControlPlane, state_root, |k| {
        (k == "TPF_WORKER_SHARED_SECRET").then(|| "registry-race".to_string())
    })
    .map_err(|e| e.to_string())?;
    Ok(file_engine_deps(state_root, config))
}

/// The dispatcher's dependencies for `dispatch` (see the module docs).
fn dispatch_deps(root: &std::path::Path) -> Result<EngineDeps, String> {
    let state_root = root.join("state");
    let config = Config::from_lookup(FunctionName::ControlPlane, &state_root, |k| {
        std::env::var(k).ok()
    })
    .map_err(|e| e.to_string())?;
    let e = &config.engine;
    let secret = config
        .worker_shared_secret
        .clone()
        .ok_or("set TPF_WORKER_SHARED_SECRET")?;
    let transport = RestWorkerTransport::new(
        CachedSecret::new(secret, Arc::new(EnvSecretResolver)),
        Duration::from_millis(e.connect_timeout_ms),
        Duration::from_millis(e.request_timeout_ms),
        e.max_response_bytes,
        e.non_retryable_classes.clone(),
    )?;
    Ok(EngineDeps {
        releases: Arc::new(FileReleaseRegistry::new(root.to_path_buf())),
        workers: Arc::new(FileWorkerRegistry::new(root.join("workers"))),
        transport: Arc::new(transport),
        ..file_engine_deps(&state_root, config)
    })
}

/// Creates the `QUEUED` execution `id` keyed `raw_key` (record and key
/// entry) in `store`.
async fn create_execution(
    store: &FileExecutionStore,
    tenant: &str,
    pipeline: &str,
    id: &str,
    raw_key: &str,
    now: i64,
) -> Result<(), String> {
    let key = execution_key(pipeline, "race", raw_key);
    let record = tpf_tests::queued_record(
        tenant,
        pipeline,
        "race",
        id,
        key.clone(),
        &serde_json::json!({"id": id}),
        now,
    );
    let entry = KeyEntry {
        tenant_id: tenant.into(),
        execution_key: key,
        execution_id: id.into(),
        input_hash: record.input_hash.clone(),
        created_at_epoch_ms: now,
        ttl_epoch_s: record.ttl_epoch_s,
    };
    let created = store
        .create(&record, &record.submitted_event(), Some(&entry), now)
        .await
        .map_err(|e| e.to_string())?;
    if created != CreateExecution::Created {
        return Err(format!("creating {id}: {created:?}"));
    }
    Ok(())
}

/// `Ok` when the store wrote; the store's error or the lost write as text.
fn written(what: &str, w: Result<Write, tpf_core::error::StoreError>) -> Result<(), String> {
    match w.map_err(|e| e.to_string())? {
        Write::Written => Ok(()),
        Write::Lost => Err(format!("{what}: the write was lost")),
    }
}

/// `exec-loop` (see the module docs); returns the execution's last version.
async fn exec_loop(
    root: &std::path::Path,
    tenant: &str,
    pipeline: &str,
    id: &str,
    rounds: u64,
) -> Result<u64, String> {
    let store = FileExecutionStore::new(root.to_path_buf());
    let err = |e: tpf_core::error::StoreError| e.to_string();
    let now = now_ms();
    if store.get(tenant, id, now).await.map_err(err)?.is_none() {
        create_execution(&store, tenant, pipeline, id, &format!("{id}-key"), now).await?;
    }
    let mut version = 0;
    for _ in 0..rounds {
        let now = now_ms();
        let r = store
            .get(tenant, id, now)
            .await
            .map_err(err)?
            .ok_or_else(|| format!("{id} vanished"))?;
        let (mut claimed, event) = r.claim(now, "dispatch-exec-loop", 60_000);
        claimed.ttl_epoch_s += 1;
        written(
            "claim",
            store.update(&claimed, r.version, &event, now).await,
        )?;
        let (mut retry, event) = claimed.schedule_retry(
            now,
            claimed.attempt + 1,
            now,
            "EXEC_LOOP",
            "exec-loop round",
            None,
        );
        retry.ttl_epoch_s += 1;
        written(
            "retry",
            store.update(&retry, claimed.version, &event, now).await,
        )?;
        version = retry.version;
        let child = format!("{id}-c{version}");
        create_execution(
            &store,
            tenant,
            pipeline,
            &child,
            &format!("{id}-k{version}"),
            now,
        )
        .await?;
    }
    Ok(version)
}

/// `await-loop` (see the module docs).
async fn await_loop(
    root: &std::path::Path,
    tenant: &str,
    prefix: &str,
    rounds: u64,
) -> Result<(), String> {
    let store = FileAwaitStore::new(root.to_path_buf());
    let err = |e: tpf_core::error::StoreError| e.to_string();
    for i in 0..rounds {
        let now = now_ms();
        let mut spec = tpf_tests::AwaitSpec::new(&format!("{prefix}-e{i}"), 2, now);
        spec.tenant_id = tenant.into();
        spec.unit_id = format!("{prefix}-u{i}");
        spec.interaction_id = format!("{prefix}-i{i}");
        spec.correlation_id = format!("{prefix}-c{i}");
        let unit: AwaitUnit = serde_json::from_value(spec.unit()).map_err(|e| e.to_string())?;
        let interaction: AwaitInteraction =
            serde_json::from_value(spec.interaction()).map_err(|e| e.to_string())?;
        match store.import(&unit, &interaction, now).await.map_err(err)? {
            ImportOutcome::Imported => {}
            other => return Err(format!("import {i}: {other:?}")),
        }
        let mut done = interaction.clone();
        done.status = "COMPLETED".into();
        done.version = interaction.version + 1;
        done.response_payload = Some(
            serde_json::value::RawValue::from_string(
                serde_json::json!({"approved": true, "round": i}).to_string(),
            )
            .expect("valid JSON"),
        );
        done.actor = Some("await-loop".into());
        done.completion_idempotency_key = Some(format!("{prefix}-k{i}"));
        done.completed_at_epoch_ms = Some(now);
        done.settle_due_epoch_ms = Some(now);
        done.updated_at_epoch_ms = now;
        written(
            "complete",
            store
                .update_interaction(&done, interaction.version, now)
                .await,
        )?;
        written(
            "finish unit",
            store
                .finish_unit(tenant, &unit.unit_id, "COMPLETED", now)
                .await,
        )?;
        written(
            "settle",
            store
                .set_settle_due(tenant, &done.interaction_id, "COMPLETED", None, now)
                .await,
        )?;
    }
    Ok(())
}

/// `dispatch` (see the module docs): the outcome's line.
async fn dispatch(root: &std::path::Path, tenant: &str, id: &str) -> Result<String, String> {
    let deps = dispatch_deps(root)?;
    let item = WorkItem {
        tenant_id: tenant.into(),
        execution_id: id.into(),
    };
    let message = serde_json::to_string(&item).expect("a work item serialises");
    let outcome = process_work_item::run(&deps, &message)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{outcome:?}"))
}

/// `complete` (see the module docs): `200 <duplicate>` or the error code.
async fn complete(root: &std::path::Path, tenant: &str, body: &str) -> Result<String, String> {
    let deps = engine_deps(root)?;
    let body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body).map_err(|e| e.to_string())?;
    let outcome = match complete_interaction::parse_request(&body) {
        Ok(req) => complete_interaction::run(&deps, tenant, req).await,
        Err(e) => Err(e),
    };
    Ok(match outcome {
        Ok(done) => format!("200 {}", done.duplicate),
        Err(e) => e.code.as_str().to_string(),
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
        ("exec-loop", Some(n)) | ("await-loop", Some(n)) => {
            let Ok(n) = n.parse::<u64>() else {
                return usage();
            };
            let done = if op == "exec-loop" {
                exec_loop(&root, tenant, pipeline, arg, n)
                    .await
                    .map(|v| format!("DONE {v}"))
            } else {
                await_loop(&root, tenant, arg, n)
                    .await
                    .map(|()| "DONE".to_string())
            };
            match done {
                Ok(line) => println!("{line}"),
                Err(e) => return fail(e),
            }
        }
        ("dispatch", _) | ("complete", _) => {
            let line = if op == "dispatch" {
                dispatch(&root, tenant, arg).await
            } else {
                complete(&root, tenant, arg).await
            };
            match line {
                Ok(line) => println!("{line}"),
                Err(e) => return fail(e),
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
