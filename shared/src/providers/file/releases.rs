//! `file` release registry (`RELEASES.md` §5):
//!
//! ```text
//! <storage_root>/registry/<tenantId>/<pipelineId>/releases/<releaseVersion>.json
//! <storage_root>/registry/<tenantId>/<pipelineId>/activations/<seq, 19 digits>.json
//! ```
//!
//! Both kinds of file are only ever created (temporary file + `link`), never
//! rewritten, so several processes share the directory without locks.
//!
//! Case rule: every file carries the ids it was written for (records have
//! `tenantId`/`pipelineId`/`releaseVersion`; events are stored with
//! `tenantId`/`pipelineId` next to their members). A file whose stored ids
//! differ from the requested ones — what a case-insensitive file system
//! returns for `V1` when `v1` is stored — is treated as absent, and a create
//! landing on such a file answers [`StoreError::CaseCollision`].

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::fsutil::{
    blocking, create_if_absent, io_error, is_component, json_stems, numbered_stems, pad19,
    read_json, require_component, to_json,
};
use crate::domain::release::{ActivationEvent, ReleaseListKey, ReleaseRecord};
use crate::error::StoreError;
use crate::ports::{AppendOutcome, CreateOutcome, ReleaseRegistry};

/// Release registry on the local file system, shared safely by several
/// processes (the local default of release-admin and control-plane).
#[derive(Debug, Clone)]
pub struct FileReleaseRegistry {
    /// `<storage_root>/registry`.
    root: PathBuf,
}

/// An activation event as stored: the event's members plus the ids of the
/// pipeline it belongs to, so a case-folded directory is detected on read.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEvent {
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    pipeline_id: Option<String>,
    #[serde(flatten)]
    event: ActivationEvent,
}

impl StoredEvent {
    /// The event, if it was written for `(tenant, pipeline)` under `seq`.
    fn into_event_for(self, tenant: &str, pipeline: &str, seq: u64) -> Option<ActivationEvent> {
        let owner_matches = self.tenant_id.as_deref().is_none_or(|t| t == tenant)
            && self.pipeline_id.as_deref().is_none_or(|p| p == pipeline);
        (owner_matches && self.event.seq == seq).then_some(self.event)
    }
}

impl FileReleaseRegistry {
    /// Registry rooted at `<storage_root>/registry`; directories are created
    /// on first write.
    pub fn new(storage_root: PathBuf) -> Self {
        Self {
            root: storage_root.join("registry"),
        }
    }

    fn pipeline_dir(&self, tenant: &str, pipeline: &str) -> PathBuf {
        self.root.join(tenant).join(pipeline)
    }
}

fn release_file(pipeline_dir: &Path, version: &str) -> PathBuf {
    pipeline_dir
        .join("releases")
        .join(format!("{version}.json"))
}

/// Reads one release; `None` when absent or stored for other ids (case rule).
fn read_release(
    pipeline_dir: &Path,
    tenant: &str,
    pipeline: &str,
    version: &str,
) -> Result<Option<ReleaseRecord>, StoreError> {
    let record: Option<ReleaseRecord> = read_json(&release_file(pipeline_dir, version))?;
    Ok(record.filter(|r| {
        r.tenant_id == tenant && r.pipeline_id == pipeline && r.release_version == version
    }))
}

/// Reads the event stored as `seq`; `None` when absent or foreign.
fn read_event(
    activations: &Path,
    tenant: &str,
    pipeline: &str,
    seq: u64,
) -> Result<Option<ActivationEvent>, StoreError> {
    let stored: Option<StoredEvent> = read_json(&activations.join(format!("{}.json", pad19(seq))))?;
    Ok(stored.and_then(|s| s.into_event_for(tenant, pipeline, seq)))
}

#[async_trait]
impl ReleaseRegistry for FileReleaseRegistry {
    async fn create_release(&self, record: &ReleaseRecord) -> Result<CreateOutcome, StoreError> {
        require_component("a tenantId", &record.tenant_id)?;
        require_component("a pipelineId", &record.pipeline_id)?;
        require_component("a releaseVersion", &record.release_version)?;
        let bytes = to_json(record)?;
        let dir = self.pipeline_dir(&record.tenant_id, &record.pipeline_id);
        let (tenant, pipeline, version) = (
            record.tenant_id.clone(),
            record.pipeline_id.clone(),
            record.release_version.clone(),
        );
        blocking(move || {
            let releases = dir.join("releases");
            let name = format!("{version}.json");
            let created = create_if_absent(&releases, &name, &bytes)
                .map_err(|e| io_error("creating", &releases.join(&name), e))?;
            if created {
                return Ok(CreateOutcome::Created);
            }
            let existing: Option<ReleaseRecord> = read_json(&releases.join(&name))?;
            match existing {
                Some(r)
                    if r.tenant_id == tenant
                        && r.pipeline_id == pipeline
                        && r.release_version == version =>
                {
                    Ok(CreateOutcome::Exists(Box::new(r)))
                }
                Some(_) => Err(StoreError::CaseCollision(format!(
                    "releaseVersion {version}"
                ))),
                None => Err(StoreError::Unavailable(format!(
                    "release file {name} exists but cannot be read"
                ))),
            }
        })
        .await?
    }

    async fn get_release(
        &self,
        tenant: &str,
        pipeline: &str,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError> {
        if !(is_component(tenant) && is_component(pipeline) && is_component(version)) {
            return Ok(None);
        }
        let dir = self.pipeline_dir(tenant, pipeline);
        let (tenant, pipeline, version) =
            (tenant.to_owned(), pipeline.to_owned(), version.to_owned());
        blocking(move || read_release(&dir, &tenant, &pipeline, &version)).await?
    }

    async fn list_releases(
        &self,
        tenant: &str,
        pipeline: &str,
        after: Option<&ReleaseListKey>,
        limit: usize,
    ) -> Result<Vec<ReleaseRecord>, StoreError> {
        if !(is_component(tenant) && is_component(pipeline)) || limit == 0 {
            return Ok(Vec::new());
        }
        let dir = self.pipeline_dir(tenant, pipeline);
        let (tenant, pipeline, after) = (tenant.to_owned(), pipeline.to_owned(), after.cloned());
        blocking(move || {
            let mut records = Vec::new();
            for version in json_stems(&dir.join("releases"))? {
                if let Some(r) = read_release(&dir, &tenant, &pipeline, &version)? {
                    records.push(r);
                }
            }
            records.sort_by_key(ReleaseRecord::list_key);
            Ok(records
                .into_iter()
                .filter(|r| after.as_ref().is_none_or(|a| r.list_key() > *a))
                .take(limit)
                .collect())
        })
        .await?
    }

    async fn latest_event(
        &self,
        tenant: &str,
        pipeline: &str,
    ) -> Result<Option<ActivationEvent>, StoreError> {
        if !(is_component(tenant) && is_component(pipeline)) {
            return Ok(None);
        }
        let activations = self.pipeline_dir(tenant, pipeline).join("activations");
        let (tenant, pipeline) = (tenant.to_owned(), pipeline.to_owned());
        blocking(move || match numbered_stems(&activations)?.last() {
            // The highest-numbered file decides; if it belongs to a
            // case-folded other pipeline, this one has none of its own.
            Some(&seq) => read_event(&activations, &tenant, &pipeline, seq),
            None => Ok(None),
        })
        .await?
    }

    async fn append_event(
        &self,
        tenant: &str,
        pipeline: &str,
        event: &ActivationEvent,
    ) -> Result<AppendOutcome, StoreError> {
        require_component("a tenantId", tenant)?;
        require_component("a pipelineId", pipeline)?;
        if !is_component(&event.release_version) {
            return Ok(AppendOutcome::ReleaseMissing);
        }
        let stored = StoredEvent {
            tenant_id: Some(tenant.to_owned()),
            pipeline_id: Some(pipeline.to_owned()),
            event: event.clone(),
        };
        let bytes = to_json(&stored)?;
        let dir = self.pipeline_dir(tenant, pipeline);
        let (tenant, pipeline) = (tenant.to_owned(), pipeline.to_owned());
        let (version, seq) = (event.release_version.clone(), event.seq);
        blocking(move || {
            // Records are never deleted, so checking first and creating
            // second is as good as one atomic step.
            if read_release(&dir, &tenant, &pipeline, &version)?.is_none() {
                return Ok(AppendOutcome::ReleaseMissing);
            }
            let activations = dir.join("activations");
            let name = format!("{}.json", pad19(seq));
            match create_if_absent(&activations, &name, &bytes) {
                Ok(true) => Ok(AppendOutcome::Appended),
                Ok(false) => Ok(AppendOutcome::SeqTaken),
                Err(e) => Err(io_error("creating", &activations.join(&name), e)),
            }
        })
        .await?
    }

    async fn list_events(
        &self,
        tenant: &str,
        pipeline: &str,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ActivationEvent>, StoreError> {
        if !(is_component(tenant) && is_component(pipeline)) || limit == 0 {
            return Ok(Vec::new());
        }
        let activations = self.pipeline_dir(tenant, pipeline).join("activations");
        let (tenant, pipeline) = (tenant.to_owned(), pipeline.to_owned());
        blocking(move || {
            let mut events = Vec::new();
            for seq in numbered_stems(&activations)? {
                if after_seq.is_some_and(|a| seq <= a) {
                    continue;
                }
                if let Some(e) = read_event(&activations, &tenant, &pipeline, seq)? {
                    events.push(e);
                    if events.len() == limit {
                        break;
                    }
                }
            }
            Ok(events)
        })
        .await?
    }
}
