//! `file` execution store (`EXECUTION.md` §10.4, an Extension):
//!
//! ```text
//! <state_root>/<tenantId>/.lock                                    advisory lock of the tenant's state
//! <state_root>/<tenantId>/executions/<executionId>.json            §3.1 record plus "history": [events]
//! <state_root>/<tenantId>/keys/<hex SHA-256 of executionKey>.json  key entry, executionKey included
//! ```
//!
//! Every conditional write holds an exclusive `flock` on the tenant's
//! `.lock` (shared with the await store) from its read to its last write,
//! taken on the blocking pool. Files are written as `.<name>.<uuid>.tmp` in
//! the target directory, then renamed over the target (replace) or linked
//! to it (create-if-absent); nothing is `fsync`ed. Readers take no lock.
//!
//! Multi-file writes are ordered so that a crash in between leaves a state
//! the rules accept: T1 writes the key entry, then the execution (a key
//! entry pointing to a missing execution is free); an update that grows the
//! TTL writes the extended key entry first.
//!
//! Case rule (`RELEASES.md` §5): records carry their ids; a file whose ids
//! differ from the requested ones is absent to readers and to updates, and
//! a create landing on one answers [`StoreError::CaseCollision`].
//!
//! Decision (as the `memory` store): an expired execution is absent to T1
//! too, so a create with its id replaces it with a fresh record and history.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::fsutil::{
    blocking, io_error, is_short_component, json_stems, lock_exclusive, read_json, subdir_names,
    to_json, PendingFile,
};
use crate::domain::execution::{ExecutionRecord, HistoryEvent, KeyEntry};
use crate::error::StoreError;
use crate::ports::{CreateExecution, ExecutionFilter, ExecutionStore, Write};
use crate::providers::memory::executions::{
    check_create_args, check_update_args, key_is_held, page_history, select_due, select_list,
};

/// Execution store on the local file system, shared safely by several
/// processes (the local default of the coordinator functions).
#[derive(Debug, Clone)]
pub struct FileExecutionStore {
    root: PathBuf,
}

impl FileExecutionStore {
    /// Store rooted at `state_root` (`TPF_STATE_ROOT`); directories are
    /// created on first write.
    pub fn new(state_root: PathBuf) -> Self {
        Self { root: state_root }
    }
}

/// Err(Unavailable) naming `what` when `id` cannot be a file name here.
pub(super) fn require_name(what: &str, id: &str) -> Result<(), StoreError> {
    if is_short_component(id) {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "refusing to store {what} that is not a plain file name"
        )))
    }
}

/// The temporary of `dir/name`, created before the caller takes the tenant
/// lock (see [`PendingFile`]).
pub(super) fn pending(dir: &Path, name: &str) -> Result<PendingFile, StoreError> {
    PendingFile::new(dir, name)
        .map_err(|e| io_error("creating a temporary for", &dir.join(name), e))
}

/// `file`'s target written create-if-absent, or replaced when
/// `replace_existing` (the file there is expired). `Ok(false)`: a file
/// appeared meanwhile.
pub(super) fn write_free_pending(
    file: PendingFile,
    bytes: &[u8],
    replace_existing: bool,
) -> Result<bool, StoreError> {
    let target = file.target();
    if replace_existing {
        file.replace(bytes)
            .map_err(|e| io_error("replacing", &target, e))?;
        Ok(true)
    } else {
        file.create_if_absent(bytes)
            .map_err(|e| io_error("creating", &target, e))
    }
}

/// [`write_free_pending`] through a temporary created now.
pub(super) fn write_free(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    replace_existing: bool,
) -> Result<bool, StoreError> {
    write_free_pending(pending(dir, name)?, bytes, replace_existing)
}

/// `file`'s target replaced atomically.
pub(super) fn write_replace_pending(file: PendingFile, bytes: &[u8]) -> Result<(), StoreError> {
    let target = file.target();
    file.replace(bytes)
        .map_err(|e| io_error("replacing", &target, e))
}

/// `dir/name` replaced atomically through a temporary created now.
pub(super) fn write_replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    write_replace_pending(pending(dir, name)?, bytes)
}

fn json_name(id: &str) -> String {
    format!("{id}.json")
}

/// The key entry's file name: the hex SHA-256 of the key (a raw key may
/// hold any character).
fn key_name(execution_key: &str) -> String {
    format!(
        "{}.json",
        hex::encode(Sha256::digest(execution_key.as_bytes()))
    )
}

/// One execution file: the record and the bytes it was read from (the
/// history is parsed only when needed).
struct ExecutionFile {
    record: ExecutionRecord,
    bytes: Vec<u8>,
}

/// The `history` member of an execution file (the record's members are
/// skipped).
#[derive(Deserialize)]
struct HistoryPart {
    history: Vec<HistoryEvent>,
}

impl ExecutionFile {
    fn history(&self, path: &Path) -> Result<Vec<HistoryEvent>, StoreError> {
        serde_json::from_slice::<HistoryPart>(&self.bytes)
            .map(|h| h.history)
            .map_err(|e| StoreError::Unavailable(format!("corrupt record {}: {e}", path.display())))
    }

    fn is_for(&self, tenant: &str, execution_id: &str) -> bool {
        self.record.tenant_id == tenant && self.record.execution_id == execution_id
    }
}

/// The bytes of an execution file: the record's JSON object with
/// `"history"` appended as its last member. (Payloads are raw JSON text,
/// so the record is not rebuilt through a `Value`, which would not keep
/// their exact text.)
fn execution_bytes(
    record: &ExecutionRecord,
    history: &[HistoryEvent],
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = to_json(record)?;
    if bytes.len() < 2 || bytes.pop() != Some(b'}') {
        return Err(StoreError::Unavailable(
            "an execution record must serialise as a JSON object".to_owned(),
        ));
    }
    bytes.extend_from_slice(b",\"history\":");
    bytes.extend_from_slice(&to_json(&history)?);
    bytes.push(b'}');
    Ok(bytes)
}

/// Paths of one tenant's state.
#[derive(Debug, Clone)]
struct TenantDirs {
    tenant: PathBuf,
}

impl TenantDirs {
    fn new(root: &Path, tenant: &str) -> Self {
        Self {
            tenant: root.join(tenant),
        }
    }
    fn executions(&self) -> PathBuf {
        self.tenant.join("executions")
    }
    fn keys(&self) -> PathBuf {
        self.tenant.join("keys")
    }

    /// The stored execution file as is (ids not checked).
    fn read_execution(&self, execution_id: &str) -> Result<Option<ExecutionFile>, StoreError> {
        let path = self.executions().join(json_name(execution_id));
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading", &path, e)),
        };
        let record = serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Unavailable(format!("corrupt record {}: {e}", path.display()))
        })?;
        Ok(Some(ExecutionFile { record, bytes }))
    }

    /// The execution `(tenant, execution_id)` when stored for exactly these
    /// ids and live.
    fn live_execution(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<ExecutionFile>, StoreError> {
        if !is_short_component(execution_id) {
            return Ok(None);
        }
        Ok(self
            .read_execution(execution_id)?
            .filter(|f| f.is_for(tenant, execution_id) && !f.record.is_expired(now_ms)))
    }

    /// The stored key entry of `execution_key` as is (tenant not checked).
    fn read_key(&self, execution_key: &str) -> Result<Option<KeyEntry>, StoreError> {
        read_json(&self.keys().join(key_name(execution_key)))
    }

    /// The key entry holding `execution_key` now (live, its execution live).
    fn held_key(
        &self,
        tenant: &str,
        execution_key: &str,
        now_ms: i64,
    ) -> Result<Option<KeyEntry>, StoreError> {
        let Some(entry) = self
            .read_key(execution_key)?
            .filter(|e| e.tenant_id == tenant && e.execution_key == execution_key)
        else {
            return Ok(None);
        };
        let execution_live = self
            .live_execution(tenant, &entry.execution_id, now_ms)?
            .is_some();
        Ok(key_is_held(&entry, now_ms, |_| execution_live).then_some(entry))
    }

    /// Every live execution file of this directory stored under its own id.
    fn all_records(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut out = Vec::new();
        for id in json_stems(&self.executions())? {
            if let Some(f) = self.read_execution(&id)? {
                if f.record.execution_id == id {
                    out.push(f.record);
                }
            }
        }
        Ok(out)
    }
}

/// T1 under the tenant lock.
fn create_locked(
    dirs: &TenantDirs,
    file: PendingFile,
    record: &ExecutionRecord,
    event: &HistoryEvent,
    key: Option<&KeyEntry>,
    now_ms: i64,
) -> Result<CreateExecution, StoreError> {
    let (tenant, id) = (&record.tenant_id, &record.execution_id);
    let existing = dirs.read_execution(id)?;
    if let Some(f) = &existing {
        if !f.is_for(tenant, id) {
            return Err(StoreError::CaseCollision(format!("executionId {id}")));
        }
        if !f.record.is_expired(now_ms) {
            return Ok(CreateExecution::IdTaken);
        }
    }
    if let Some(key) = key {
        if let Some(stored) = dirs.read_key(&key.execution_key)? {
            if stored.tenant_id != *tenant {
                return Err(StoreError::CaseCollision(format!("tenantId {tenant}")));
            }
        }
        if let Some(held) = dirs.held_key(tenant, &key.execution_key, now_ms)? {
            return Ok(CreateExecution::KeyTaken(held));
        }
        // The key entry first: one pointing to a missing execution is free.
        write_replace(&dirs.keys(), &key_name(&key.execution_key), &to_json(key)?)?;
    }
    let bytes = execution_bytes(record, std::slice::from_ref(event))?;
    if write_free_pending(file, &bytes, existing.is_some())? {
        Ok(CreateExecution::Created)
    } else {
        Ok(CreateExecution::IdTaken)
    }
}

/// T2–T9 under the tenant lock.
fn update_locked(
    dirs: &TenantDirs,
    file: PendingFile,
    next: &ExecutionRecord,
    expected_version: u64,
    event: &HistoryEvent,
    now_ms: i64,
) -> Result<Write, StoreError> {
    let (tenant, id) = (&next.tenant_id, &next.execution_id);
    let Some(current) = dirs.read_execution(id)? else {
        return Ok(Write::Lost);
    };
    if !current.is_for(tenant, id)
        || current.record.is_expired(now_ms)
        || current.record.version != expected_version
    {
        return Ok(Write::Lost);
    }
    let path = dirs.executions().join(json_name(id));
    let mut history = current.history(&path)?;
    if history.iter().any(|e| e.version == event.version) {
        return Ok(Write::Lost);
    }
    if next.ttl_epoch_s > current.record.ttl_epoch_s {
        // The key entry first, so a key never expires before its execution.
        let key = &current.record.execution_key;
        if let Some(mut entry) = dirs.read_key(key)?.filter(|e| {
            e.tenant_id == *tenant
                && e.execution_key == *key
                && e.execution_id == *id
                && e.ttl_epoch_s < next.ttl_epoch_s
        }) {
            entry.ttl_epoch_s = next.ttl_epoch_s;
            write_replace(&dirs.keys(), &key_name(key), &to_json(&entry)?)?;
        }
    }
    history.push(event.clone());
    write_replace_pending(file, &execution_bytes(next, &history)?)?;
    Ok(Write::Written)
}

#[async_trait]
impl ExecutionStore for FileExecutionStore {
    async fn create(
        &self,
        record: &ExecutionRecord,
        event: &HistoryEvent,
        key: Option<&KeyEntry>,
        now_ms: i64,
    ) -> Result<CreateExecution, StoreError> {
        require_name("a tenantId", &record.tenant_id)?;
        require_name("an executionId", &record.execution_id)?;
        check_create_args(record, event, key)?;
        let dirs = TenantDirs::new(&self.root, &record.tenant_id);
        let (record, event, key) = (record.clone(), event.clone(), key.cloned());
        blocking(move || {
            // The execution's temporary before the lock (see `PendingFile`).
            let file = pending(&dirs.executions(), &json_name(&record.execution_id))?;
            let _lock = lock_exclusive(&dirs.tenant)?;
            create_locked(&dirs, file, &record, &event, key.as_ref(), now_ms)
            // `_lock` is dropped here: closing the file releases the flock.
        })
        .await?
    }

    async fn get(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        if !is_short_component(tenant) {
            return Ok(None);
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, id) = (tenant.to_owned(), execution_id.to_owned());
        blocking(move || Ok(dirs.live_execution(&tenant, &id, now_ms)?.map(|f| f.record))).await?
    }

    async fn get_key(
        &self,
        tenant: &str,
        execution_key: &str,
        now_ms: i64,
    ) -> Result<Option<KeyEntry>, StoreError> {
        if !is_short_component(tenant) {
            return Ok(None);
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, key) = (tenant.to_owned(), execution_key.to_owned());
        blocking(move || dirs.held_key(&tenant, &key, now_ms)).await?
    }

    async fn update(
        &self,
        next: &ExecutionRecord,
        expected_version: u64,
        event: &HistoryEvent,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        check_update_args(next, expected_version, event)?;
        if !(is_short_component(&next.tenant_id) && is_short_component(&next.execution_id)) {
            return Ok(Write::Lost);
        }
        let dirs = TenantDirs::new(&self.root, &next.tenant_id);
        let (next, event) = (next.clone(), event.clone());
        blocking(move || {
            // The execution's temporary before the lock (see `PendingFile`).
            let file = pending(&dirs.executions(), &json_name(&next.execution_id))?;
            let _lock = lock_exclusive(&dirs.tenant)?;
            update_locked(&dirs, file, &next, expected_version, &event, now_ms)
        })
        .await?
    }

    async fn history(
        &self,
        tenant: &str,
        execution_id: &str,
        after_version: Option<u64>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
        if !is_short_component(tenant) {
            return Ok(None);
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, id) = (tenant.to_owned(), execution_id.to_owned());
        blocking(move || {
            let Some(f) = dirs.live_execution(&tenant, &id, now_ms)? else {
                return Ok(None);
            };
            let history = f.history(&dirs.executions().join(json_name(&id)))?;
            Ok(Some(page_history(&history, after_version, limit)))
        })
        .await?
    }

    async fn list(
        &self,
        tenant: &str,
        filter: &ExecutionFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        if !is_short_component(tenant) || limit == 0 {
            return Ok(Vec::new());
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, filter) = (tenant.to_owned(), filter.clone());
        blocking(move || {
            let records = dirs.all_records()?;
            let mine = records.iter().filter(|r| r.tenant_id == tenant);
            Ok(select_list(mine, &filter, after.as_ref(), limit, now_ms))
        })
        .await?
    }

    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let root = self.root.clone();
        blocking(move || {
            let mut records = Vec::new();
            for tenant in subdir_names(&root)? {
                records.extend(TenantDirs::new(&root, &tenant).all_records()?);
            }
            Ok(select_due(&records, now_ms, limit))
        })
        .await?
    }
}
