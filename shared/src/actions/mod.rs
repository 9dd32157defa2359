//! The single-shot actions: each a function of (ports, request) → result,
//! safe to run twice, with no HTTP types. One file per action.

pub mod activate_release;
pub mod complete_interaction;
pub mod drain_worker;
mod follow_up;
pub mod get_active_release;
pub mod get_execution;
pub mod get_release;
pub mod heartbeat_worker;
pub mod list_activations;
pub mod list_executions;
pub mod list_pending;
pub mod list_releases;
pub mod list_workers;
pub mod process_work_item;
pub mod redrive_execution;
pub mod register_release;
pub mod register_worker;
pub mod submit_execution;
pub mod sweep_once;
mod update_worker;

use std::sync::Arc;

use crate::config::EngineSettings;
use crate::domain::location::Root;
use crate::ports::{
    ArtifactStore, AwaitStore, Clock, DeadLetterSink, ExecutionStore, LocationReader,
    ReleaseRegistry, WorkQueue, WorkerRegistry, WorkerTransport,
};
use crate::providers::secrets::CachedSecret;

/// What the release actions need.
#[derive(Clone)]
pub struct ReleaseDeps {
    pub registry: Arc<dyn ReleaseRegistry>,
    pub store: Arc<dyn ArtifactStore>,
    /// Opens descriptor and artifact locations beneath the roots.
    pub locations: Arc<dyn LocationReader>,
    pub clock: Arc<dyn Clock>,
    /// `TPF_RELEASES_REGISTRATION_ROOTS`.
    pub roots: Vec<Root>,
    /// `TPF_RELEASES_MAX_ARTIFACT_BYTES`.
    pub max_artifact_bytes: u64,
}

/// What the worker lifecycle actions need.
#[derive(Clone)]
pub struct WorkerDeps {
    pub registry: Arc<dyn WorkerRegistry>,
    pub clock: Arc<dyn Clock>,
    /// `TPF_WORKER_LIFECYCLE_STALE_AFTER` in ms; 0 disables staleness.
    pub stale_after_ms: u64,
    /// The capability probe of `RELEASES.md` §6.1: `Some` with
    /// `TPF_WORKER_CAPABILITIES_CHECK=register`, `None` with `off`.
    pub probe: Option<Arc<dyn WorkerTransport>>,
}

/// What the execution actions (submit, dispatch, awaits, sweep, re-drive) need.
#[derive(Clone)]
pub struct EngineDeps {
    pub executions: Arc<dyn ExecutionStore>,
    pub awaits: Arc<dyn AwaitStore>,
    pub releases: Arc<dyn ReleaseRegistry>,
    pub workers: Arc<dyn WorkerRegistry>,
    pub transport: Arc<dyn WorkerTransport>,
    pub queue: Arc<dyn WorkQueue>,
    pub dead_letters: Arc<dyn DeadLetterSink>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<EngineSettings>,
    /// `TPF_WORKER_LIFECYCLE_STALE_AFTER` in ms.
    pub stale_after_ms: u64,
    /// `TPF_RESUME_TOKEN_SECRET`/`_REF`, when configured.
    pub resume_secret: Option<Arc<CachedSecret>>,
}

/// Reads every lifecycle record of `(tenant, pipeline)` (pages of 1000).
pub(crate) async fn all_workers(
    workers: &dyn WorkerRegistry,
    tenant: &str,
    pipeline: &str,
) -> Result<Vec<crate::domain::worker::WorkerEntry>, crate::error::StoreError> {
    let mut out: Vec<crate::domain::worker::WorkerEntry> = Vec::new();
    loop {
        let after = out.last().map(|w| w.worker_id.clone());
        let page = workers
            .list_workers(tenant, pipeline, after.as_deref(), 1000)
            .await?;
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// `limit` and `cursor` of a list request (`API.md` §1.9).
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<String>,
}

/// One page of a list and the cursor of the next, if more exist.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `items` read with `limit + 1`: keeps `limit` of them and,
    /// when more exist, the cursor of the last one kept.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(cursor_of)
        } else {
            None
        };
        Page { items, next_cursor }
    }

    /// The same page with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// Attempts of a conditional write lost to concurrent writers before 409
/// `CONCURRENT_MODIFICATION` (`RELEASES.md` §3.4, §6.6).
pub const MAX_WRITE_ATTEMPTS: usize = 3;
