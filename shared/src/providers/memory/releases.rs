//! `memory` release registry (`RELEASES.md` §5): maps behind one mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::domain::release::{ActivationEvent, ReleaseListKey, ReleaseRecord};
use crate::error::StoreError;
use crate::ports::{AppendOutcome, CreateOutcome, ReleaseRegistry};

/// Per-process release registry for unit tests: every operation is one
/// critical section, so create-if-absent and append are trivially atomic.
#[derive(Debug, Default)]
pub struct MemoryReleaseRegistry {
    pipelines: Mutex<HashMap<(String, String), Pipeline>>,
}

#[derive(Debug, Default)]
struct Pipeline {
    releases: HashMap<String, ReleaseRecord>,
    events: BTreeMap<u64, ActivationEvent>,
}

impl MemoryReleaseRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Pipeline>> {
        // A panic elsewhere cannot leave the maps half-updated (each
        // operation is one insert), so a poisoned lock is still usable.
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(tenant: &str, pipeline: &str) -> (String, String) {
    (tenant.to_owned(), pipeline.to_owned())
}

#[async_trait]
impl ReleaseRegistry for MemoryReleaseRegistry {
    async fn create_release(&self, record: &ReleaseRecord) -> Result<CreateOutcome, StoreError> {
        let mut map = self.lock();
        let p = map
            .entry(key(&record.tenant_id, &record.pipeline_id))
            .or_default();
        if let Some(existing) = p.releases.get(&record.release_version) {
            return Ok(CreateOutcome::Exists(Box::new(existing.clone())));
        }
        p.releases
            .insert(record.release_version.clone(), record.clone());
        Ok(CreateOutcome::Created)
    }

    async fn get_release(
        &self,
        tenant: &str,
        pipeline: &str,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError> {
        Ok(self
            .lock()
            .get(&key(tenant, pipeline))
            .and_then(|p| p.releases.get(version).cloned()))
    }

    async fn list_releases(
        &self,
        tenant: &str,
        pipeline: &str,
        after: Option<&ReleaseListKey>,
        limit: usize,
    ) -> Result<Vec<ReleaseRecord>, StoreError> {
        let map = self.lock();
        let Some(p) = map.get(&key(tenant, pipeline)) else {
            return Ok(Vec::new());
        };
        let mut records: Vec<&ReleaseRecord> = p
            .releases
            .values()
            .filter(|r| after.is_none_or(|a| r.list_key() > *a))
            .collect();
        records.sort_by_key(|r| r.list_key());
        Ok(records.into_iter().take(limit).cloned().collect())
    }

    async fn latest_event(
        &self,
        tenant: &str,
        pipeline: &str,
    ) -> Result<Option<ActivationEvent>, StoreError> {
        Ok(self
            .lock()
            .get(&key(tenant, pipeline))
            .and_then(|p| p.events.values().next_back().cloned()))
    }

    async fn append_event(
        &self,
        tenant: &str,
        pipeline: &str,
        event: &ActivationEvent,
    ) -> Result<AppendOutcome, StoreError> {
        let mut map = self.lock();
        let Some(p) = map.get_mut(&key(tenant, pipeline)) else {
            return Ok(AppendOutcome::ReleaseMissing);
        };
        if !p.releases.contains_key(&event.release_version) {
            return Ok(AppendOutcome::ReleaseMissing);
        }
        if p.events.contains_key(&event.seq) {
            return Ok(AppendOutcome::SeqTaken);
        }
        p.events.insert(event.seq, event.clone());
        Ok(AppendOutcome::Appended)
    }

    async fn list_events(
        &self,
        tenant: &str,
        pipeline: &str,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ActivationEvent>, StoreError> {
        let map = self.lock();
        let Some(p) = map.get(&key(tenant, pipeline)) else {
            return Ok(Vec::new());
        };
        let start = after_seq.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(p.events
            .range((start, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}
