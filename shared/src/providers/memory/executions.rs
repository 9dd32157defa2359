//! `memory` execution store (`EXECUTION.md` §10.3): maps behind one mutex,
//! each record's history inside its entry, queries scan.
//!
//! The argument checks and the query selections (list, due, history paging)
//! are `pub(crate)` so the `file` store applies exactly the same rules.
//!
//! Decision: an expired record is absent to every write too, so T1 over an
//! expired execution with the same id creates a fresh record (and history)
//! in its place instead of answering `IdTaken`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::domain::execution::{is_expired, ExecutionRecord, HistoryEvent, KeyEntry};
use crate::error::StoreError;
use crate::ports::{CreateExecution, ExecutionFilter, ExecutionStore, Write};

/// Per-process execution store for unit tests and single-process demos:
/// every condition is evaluated and applied under one lock.
#[derive(Debug, Default)]
pub struct MemoryExecutionStore {
    tenants: Mutex<HashMap<String, Tenant>>,
}

/// The state of one tenant.
#[derive(Debug, Default)]
struct Tenant {
    /// Keyed by `executionId`.
    executions: HashMap<String, Stored>,
    /// Keyed by `executionKey`.
    keys: HashMap<String, KeyEntry>,
}

/// A record and its history, oldest first.
#[derive(Debug)]
struct Stored {
    record: ExecutionRecord,
    history: Vec<HistoryEvent>,
}

impl MemoryExecutionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tenant>> {
        // Every write checks before it changes anything, so a poisoned lock
        // never guards half-applied state.
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Refuses T1 arguments that do not belong together (a caller bug).
pub(crate) fn check_create_args(
    record: &ExecutionRecord,
    event: &HistoryEvent,
    key: Option<&KeyEntry>,
) -> Result<(), StoreError> {
    if event.version != record.version {
        return Err(StoreError::Unavailable(
            "the SUBMITTED event must carry the record's version".to_owned(),
        ));
    }
    if let Some(k) = key {
        if k.tenant_id != record.tenant_id
            || k.execution_id != record.execution_id
            || k.execution_key != record.execution_key
        {
            return Err(StoreError::Unavailable(
                "a key entry must name its execution's tenant, id and key".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Refuses update arguments that would break the gapless history (a
/// caller bug): `next.version` must be `expected + 1` and the event's.
pub(crate) fn check_update_args(
    next: &ExecutionRecord,
    expected_version: u64,
    event: &HistoryEvent,
) -> Result<(), StoreError> {
    if event.version != next.version || next.version != expected_version + 1 {
        return Err(StoreError::Unavailable(format!(
            "an update from version {expected_version} must write version {} with its event (got record {}, event {})",
            expected_version + 1,
            next.version,
            event.version
        )));
    }
    Ok(())
}

/// True when the stored key entry holds its key now: live, and pointing to
/// an execution `live_execution` reports live.
pub(crate) fn key_is_held(
    entry: &KeyEntry,
    now_ms: i64,
    live_execution: impl FnOnce(&str) -> bool,
) -> bool {
    !is_expired(entry.ttl_epoch_s, now_ms) && live_execution(&entry.execution_id)
}

/// History paging: versions strictly after `after_version`, at most `limit`.
pub(crate) fn page_history(
    history: &[HistoryEvent],
    after_version: Option<u64>,
    limit: usize,
) -> Vec<HistoryEvent> {
    history
        .iter()
        .filter(|e| after_version.is_none_or(|a| e.version > a))
        .take(limit)
        .cloned()
        .collect()
}

/// The execution list: live records matching `filter`, newest first by
/// (`createdAtEpochMs`, `executionId`) descending, strictly after `after`
/// in that order, at most `limit`.
pub(crate) fn select_list<'a>(
    records: impl IntoIterator<Item = &'a ExecutionRecord>,
    filter: &ExecutionFilter,
    after: Option<&(i64, String)>,
    limit: usize,
    now_ms: i64,
) -> Vec<ExecutionRecord> {
    let mut out: Vec<&ExecutionRecord> = records
        .into_iter()
        .filter(|r| !r.is_expired(now_ms))
        .filter(|r| filter.status.is_none_or(|s| r.status == s))
        .filter(|r| {
            filter
                .pipeline_id
                .as_deref()
                .is_none_or(|p| r.pipeline_id == p)
        })
        .filter(|r| {
            after.is_none_or(|(at, id)| {
                (r.created_at_epoch_ms, r.execution_id.as_str()) < (*at, id.as_str())
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (b.created_at_epoch_ms, &b.execution_id).cmp(&(a.created_at_epoch_ms, &a.execution_id))
    });
    out.into_iter().take(limit).cloned().collect()
}

/// The due selection: claimable records (T2's guard at `now`, live),
/// ordered by (`nextDueEpochMs`, `tenantId`, `executionId`), at most `limit`.
pub(crate) fn select_due<'a>(
    records: impl IntoIterator<Item = &'a ExecutionRecord>,
    now_ms: i64,
    limit: usize,
) -> Vec<(String, String)> {
    let mut due: Vec<(i64, &str, &str)> = records
        .into_iter()
        .filter(|r| r.is_claimable(now_ms))
        .map(|r| {
            (
                r.next_due_epoch_ms.unwrap_or(i64::MIN),
                r.tenant_id.as_str(),
                r.execution_id.as_str(),
            )
        })
        .collect();
    due.sort();
    due.into_iter()
        .take(limit)
        .map(|(_, t, id)| (t.to_owned(), id.to_owned()))
        .collect()
}

#[async_trait]
impl ExecutionStore for MemoryExecutionStore {
    async fn create(
        &self,
        record: &ExecutionRecord,
        event: &HistoryEvent,
        key: Option<&KeyEntry>,
        now_ms: i64,
    ) -> Result<CreateExecution, StoreError> {
        check_create_args(record, event, key)?;
        let mut map = self.lock();
        let Tenant { executions, keys } = map.entry(record.tenant_id.clone()).or_default();
        if executions
            .get(&record.execution_id)
            .is_some_and(|s| !s.record.is_expired(now_ms))
        {
            return Ok(CreateExecution::IdTaken);
        }
        if let Some(key) = key {
            if let Some(held) = keys.get(&key.execution_key).filter(|e| {
                key_is_held(e, now_ms, |id| {
                    executions
                        .get(id)
                        .is_some_and(|s| !s.record.is_expired(now_ms))
                })
            }) {
                return Ok(CreateExecution::KeyTaken(held.clone()));
            }
            keys.insert(key.execution_key.clone(), key.clone());
        }
        executions.insert(
            record.execution_id.clone(),
            Stored {
                record: record.clone(),
                history: vec![event.clone()],
            },
        );
        Ok(CreateExecution::Created)
    }

    async fn get(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self
            .lock()
            .get(tenant)
            .and_then(|t| t.executions.get(execution_id))
            .filter(|s| !s.record.is_expired(now_ms))
            .map(|s| s.record.clone()))
    }

    async fn get_key(
        &self,
        tenant: &str,
        execution_key: &str,
        now_ms: i64,
    ) -> Result<Option<KeyEntry>, StoreError> {
        let map = self.lock();
        let Some(t) = map.get(tenant) else {
            return Ok(None);
        };
        Ok(t.keys
            .get(execution_key)
            .filter(|e| {
                key_is_held(e, now_ms, |id| {
                    t.executions
                        .get(id)
                        .is_some_and(|s| !s.record.is_expired(now_ms))
                })
            })
            .cloned())
    }

    async fn update(
        &self,
        next: &ExecutionRecord,
        expected_version: u64,
        event: &HistoryEvent,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        check_update_args(next, expected_version, event)?;
        let mut map = self.lock();
        let Some(Tenant { executions, keys }) = map.get_mut(&next.tenant_id) else {
            return Ok(Write::Lost);
        };
        let Some(stored) = executions.get_mut(&next.execution_id) else {
            return Ok(Write::Lost);
        };
        if stored.record.is_expired(now_ms) || stored.record.version != expected_version {
            return Ok(Write::Lost);
        }
        if next.ttl_epoch_s > stored.record.ttl_epoch_s {
            if let Some(entry) = keys
                .get_mut(&stored.record.execution_key)
                .filter(|e| e.execution_id == next.execution_id)
            {
                entry.ttl_epoch_s = entry.ttl_epoch_s.max(next.ttl_epoch_s);
            }
        }
        stored.record = next.clone();
        stored.history.push(event.clone());
        Ok(Write::Written)
    }

    async fn history(
        &self,
        tenant: &str,
        execution_id: &str,
        after_version: Option<u64>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
        Ok(self
            .lock()
            .get(tenant)
            .and_then(|t| t.executions.get(execution_id))
            .filter(|s| !s.record.is_expired(now_ms))
            .map(|s| page_history(&s.history, after_version, limit)))
    }

    async fn list(
        &self,
        tenant: &str,
        filter: &ExecutionFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let map = self.lock();
        let Some(t) = map.get(tenant) else {
            return Ok(Vec::new());
        };
        let records = t.executions.values().map(|s| &s.record);
        Ok(select_list(records, filter, after.as_ref(), limit, now_ms))
    }

    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        let map = self.lock();
        let records = map
            .values()
            .flat_map(|t| t.executions.values().map(|s| &s.record));
        Ok(select_due(records, now_ms, limit))
    }
}
