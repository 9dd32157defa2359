//! The single-shot actions: each a function of (ports, request) → result,
//! safe to run twice, with no HTTP types. One file per action.

pub mod activate_release;
pub mod drain_worker;
pub mod get_active_release;
pub mod get_release;
pub mod heartbeat_worker;
pub mod list_activations;
pub mod list_releases;
pub mod list_workers;
pub mod register_release;
pub mod register_worker;
mod update_worker;

use std::sync::Arc;

use crate::domain::location::Root;
use crate::ports::{ArtifactStore, Clock, LocationReader, ReleaseRegistry, WorkerRegistry};

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

/// Attempts of a conditional write lost to concurrent writers before 409
/// `CONCURRENT_MODIFICATION` (`RELEASES.md` §3.4, §6.6).
pub const MAX_WRITE_ATTEMPTS: usize = 3;
