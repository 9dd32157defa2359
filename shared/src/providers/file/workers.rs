//! `file` worker registry (`RELEASES.md` §6.6, an Extension):
//!
//! ```text
//! <root>/<tenantId>/<pipelineId>/.lock
//! <root>/<tenantId>/<pipelineId>/workers/<workerId>.json                  entry
//! <root>/<tenantId>/<pipelineId>/events/<workerId>/<stateVersion, 19 digits>.json
//! ```
//!
//! Every change holds an exclusive `flock` on `.lock` for its whole
//! read-compare-write, so processes sharing the root lose no update. Under
//! the lock a change first rolls forward an event for `stateVersion + 1`
//! left by a register or drain that crashed between its event write and its
//! entry write (WL-10), then compares, then creates its event (if any) and
//! replaces the entry (temporary file + `rename`). Readers take no lock: the
//! entry is always replaced atomically.
//!
//! Case rule: entries and event snapshots carry their ids; a file whose
//! stored ids differ from the requested ones is absent to readers, and a
//! write landing on one answers [`StoreError::CaseCollision`].

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::fsutil::{
    blocking, create_if_absent, io_error, is_component, json_stems, lock_exclusive, numbered_stems,
    pad19, read_json, replace, require_component, to_json,
};
use crate::domain::worker::{WorkerEntry, WorkerEvent};
use crate::error::StoreError;
use crate::ports::{WorkerRegistry, WorkerWrite};

/// Worker registry on the local file system, shared safely by several
/// processes (the local default of worker-lifecycle and control-plane).
#[derive(Debug, Clone)]
pub struct FileWorkerRegistry {
    root: PathBuf,
}

impl FileWorkerRegistry {
    /// Registry rooted at `root` (`TPF_WORKER_LIFECYCLE_ROOT`); directories
    /// are created on first write.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn pipeline_dir(&self, tenant: &str, pipeline: &str) -> PathBuf {
        self.root.join(tenant).join(pipeline)
    }
}

/// True when `e` was stored for exactly these ids.
fn is_for(e: &WorkerEntry, tenant: &str, pipeline: &str, worker: &str) -> bool {
    e.tenant_id == tenant && e.pipeline_id == pipeline && e.worker_id == worker
}

fn entry_name(worker: &str) -> String {
    format!("{worker}.json")
}

fn event_name(state_version: u64) -> String {
    format!("{}.json", pad19(state_version))
}

/// The stored entry file as is (ids not checked).
fn read_entry_raw(dir: &Path, worker: &str) -> Result<Option<WorkerEntry>, StoreError> {
    read_json(&dir.join("workers").join(entry_name(worker)))
}

/// The event stored as `state_version`, if it is one of this worker's.
fn read_event(
    events: &Path,
    tenant: &str,
    pipeline: &str,
    worker: &str,
    state_version: u64,
) -> Result<Option<WorkerEvent>, StoreError> {
    let event: Option<WorkerEvent> = read_json(&events.join(event_name(state_version)))?;
    Ok(event.filter(|e| {
        e.state_version == state_version
            && e.snapshot.state_version == state_version
            && is_for(&e.snapshot, tenant, pipeline, worker)
    }))
}

/// Refuses an event that does not describe `entry`: the roll-forward
/// trusts an event's snapshot to be the entry written with it.
fn check_event_matches(entry: &WorkerEntry, event: &WorkerEvent) -> Result<(), StoreError> {
    if event.state_version == entry.state_version
        && event.snapshot.state_version == entry.state_version
        && is_for(
            &event.snapshot,
            &entry.tenant_id,
            &entry.pipeline_id,
            &entry.worker_id,
        )
    {
        Ok(())
    } else {
        Err(StoreError::Unavailable(
            "a worker event must snapshot the entry written with it".to_owned(),
        ))
    }
}

/// The whole change, run with the pipeline's `.lock` held.
fn write_locked(
    dir: &Path,
    entry: &WorkerEntry,
    expected_version: Option<u64>,
    event: Option<&WorkerEvent>,
) -> Result<WorkerWrite, StoreError> {
    let (tenant, pipeline, worker) = (&entry.tenant_id, &entry.pipeline_id, &entry.worker_id);
    let workers = dir.join("workers");
    let events = dir.join("events").join(worker);
    let name = entry_name(worker);

    let mut current = match read_entry_raw(dir, worker)? {
        Some(e) if !is_for(&e, tenant, pipeline, worker) => {
            return Err(StoreError::CaseCollision(format!("workerId {worker}")));
        }
        other => other,
    };

    // Roll forward events a crashed register or drain wrote without its entry.
    let mut rolled = false;
    loop {
        let next = current.as_ref().map_or(1, |e| e.state_version + 1);
        match read_event(&events, tenant, pipeline, worker, next)? {
            Some(ev) => {
                current = Some(ev.snapshot);
                rolled = true;
            }
            None => break,
        }
    }
    if let (true, Some(rolled_entry)) = (rolled, current.as_ref()) {
        // Persist at once, so readers see the repaired entry even if this
        // change then loses its compare.
        replace(&workers, &name, &to_json(rolled_entry)?)
            .map_err(|e| io_error("replacing", &workers.join(&name), e))?;
    }

    if current.as_ref().map(|e| e.state_version) != expected_version {
        return Ok(WorkerWrite::Conflict);
    }
    if let Some(event) = event {
        let event_file = event_name(event.state_version);
        let created = create_if_absent(&events, &event_file, &to_json(event)?)
            .map_err(|e| io_error("creating", &events.join(&event_file), e))?;
        if !created {
            return Ok(WorkerWrite::Conflict);
        }
    }
    replace(&workers, &name, &to_json(entry)?)
        .map_err(|e| io_error("replacing", &workers.join(&name), e))?;
    Ok(WorkerWrite::Written)
}

#[async_trait]
impl WorkerRegistry for FileWorkerRegistry {
    async fn get_worker(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Option<WorkerEntry>, StoreError> {
        if !(is_component(tenant) && is_component(pipeline) && is_component(worker)) {
            return Ok(None);
        }
        let dir = self.pipeline_dir(tenant, pipeline);
        let (tenant, pipeline, worker) =
            (tenant.to_owned(), pipeline.to_owned(), worker.to_owned());
        blocking(move || {
            Ok(read_entry_raw(&dir, &worker)?.filter(|e| is_for(e, &tenant, &pipeline, &worker)))
        })
        .await?
    }

    async fn write_worker(
        &self,
        entry: &WorkerEntry,
        expected_version: Option<u64>,
        event: Option<&WorkerEvent>,
    ) -> Result<WorkerWrite, StoreError> {
        require_component("a tenantId", &entry.tenant_id)?;
        require_component("a pipelineId", &entry.pipeline_id)?;
        require_component("a workerId", &entry.worker_id)?;
        if let Some(event) = event {
            check_event_matches(entry, event)?;
        }
        let dir = self.pipeline_dir(&entry.tenant_id, &entry.pipeline_id);
        let (entry, event) = (entry.clone(), event.cloned());
        blocking(move || {
            let _lock = lock_exclusive(&dir)?;
            write_locked(&dir, &entry, expected_version, event.as_ref())
            // `_lock` is dropped here: closing the file releases the flock.
        })
        .await?
    }

    async fn list_workers(
        &self,
        tenant: &str,
        pipeline: &str,
        after_worker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkerEntry>, StoreError> {
        if !(is_component(tenant) && is_component(pipeline)) || limit == 0 {
            return Ok(Vec::new());
        }
        let dir = self.pipeline_dir(tenant, pipeline);
        let (tenant, pipeline) = (tenant.to_owned(), pipeline.to_owned());
        let after = after_worker.map(str::to_owned);
        blocking(move || {
            let mut entries = Vec::new();
            for worker in json_stems(&dir.join("workers"))? {
                if after.as_ref().is_some_and(|a| worker <= *a) {
                    continue;
                }
                let entry = read_entry_raw(&dir, &worker)?;
                if let Some(e) = entry.filter(|e| is_for(e, &tenant, &pipeline, &worker)) {
                    entries.push(e);
                    if entries.len() == limit {
                        break;
                    }
                }
            }
            Ok(entries)
        })
        .await?
    }

    async fn worker_events(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Vec<WorkerEvent>, StoreError> {
        if !(is_component(tenant) && is_component(pipeline) && is_component(worker)) {
            return Ok(Vec::new());
        }
        let events = self
            .pipeline_dir(tenant, pipeline)
            .join("events")
            .join(worker);
        let (tenant, pipeline, worker) =
            (tenant.to_owned(), pipeline.to_owned(), worker.to_owned());
        blocking(move || {
            let mut out = Vec::new();
            for version in numbered_stems(&events)? {
                if let Some(e) = read_event(&events, &tenant, &pipeline, &worker, version)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await?
    }
}
