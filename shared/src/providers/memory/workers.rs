//! `memory` worker registry (`RELEASES.md` §6.6): maps behind one mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::domain::worker::{WorkerEntry, WorkerEvent};
use crate::error::StoreError;
use crate::ports::{WorkerRegistry, WorkerWrite};

/// Per-process worker registry for unit tests: the compare of
/// `stateVersion` and the writes of entry and event happen under one lock.
#[derive(Debug, Default)]
pub struct MemoryWorkerRegistry {
    pipelines: Mutex<HashMap<(String, String), Pipeline>>,
}

#[derive(Debug, Default)]
struct Pipeline {
    /// Keyed by `workerId`; `String` order is byte order.
    entries: BTreeMap<String, WorkerEntry>,
    /// Per worker, keyed by `stateVersion`.
    events: HashMap<String, BTreeMap<u64, WorkerEvent>>,
}

impl MemoryWorkerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Pipeline>> {
        // Each write checks everything before changing anything, so a
        // poisoned lock never guards half-applied state.
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(tenant: &str, pipeline: &str) -> (String, String) {
    (tenant.to_owned(), pipeline.to_owned())
}

/// Refuses an event that does not describe `entry` (a caller bug that
/// would break the roll-forward of the `file` provider).
fn check_event_matches(entry: &WorkerEntry, event: &WorkerEvent) -> Result<(), StoreError> {
    let s = &event.snapshot;
    if event.state_version == entry.state_version
        && s.state_version == entry.state_version
        && s.tenant_id == entry.tenant_id
        && s.pipeline_id == entry.pipeline_id
        && s.worker_id == entry.worker_id
    {
        Ok(())
    } else {
        Err(StoreError::Unavailable(
            "a worker event must snapshot the entry written with it".to_owned(),
        ))
    }
}

#[async_trait]
impl WorkerRegistry for MemoryWorkerRegistry {
    async fn get_worker(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Option<WorkerEntry>, StoreError> {
        Ok(self
            .lock()
            .get(&key(tenant, pipeline))
            .and_then(|p| p.entries.get(worker).cloned()))
    }

    async fn write_worker(
        &self,
        entry: &WorkerEntry,
        expected_version: Option<u64>,
        event: Option<&WorkerEvent>,
    ) -> Result<WorkerWrite, StoreError> {
        if let Some(event) = event {
            check_event_matches(entry, event)?;
        }
        let mut map = self.lock();
        let p = map
            .entry(key(&entry.tenant_id, &entry.pipeline_id))
            .or_default();
        let current = p.entries.get(&entry.worker_id).map(|e| e.state_version);
        if current != expected_version {
            return Ok(WorkerWrite::Conflict);
        }
        if let Some(event) = event {
            let log = p.events.entry(entry.worker_id.clone()).or_default();
            if log.contains_key(&event.state_version) {
                return Ok(WorkerWrite::Conflict);
            }
            log.insert(event.state_version, event.clone());
        }
        p.entries.insert(entry.worker_id.clone(), entry.clone());
        Ok(WorkerWrite::Written)
    }

    async fn list_workers(
        &self,
        tenant: &str,
        pipeline: &str,
        after_worker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkerEntry>, StoreError> {
        let map = self.lock();
        let Some(p) = map.get(&key(tenant, pipeline)) else {
            return Ok(Vec::new());
        };
        Ok(p.entries
            .iter()
            .filter(|(id, _)| after_worker.is_none_or(|a| id.as_str() > a))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn worker_events(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Vec<WorkerEvent>, StoreError> {
        Ok(self
            .lock()
            .get(&key(tenant, pipeline))
            .and_then(|p| p.events.get(worker))
            .map(|log| log.values().cloned().collect())
            .unwrap_or_default())
    }
}
