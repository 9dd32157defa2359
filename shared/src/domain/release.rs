//! Release records and activation events (`RELEASES.md` §3.2, §3.4), and
//! the derivation of their computed members from the latest event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One local-kind artifact as stored in the artifact store (`storedArtifacts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredArtifact {
    pub artifact_id: String,
    pub kind: String,
    pub digest: String,
    pub uri: String,
    pub size_bytes: u64,
    pub checksum: String,
}

/// The immutable, stored part of a release record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    pub tenant_id: String,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub descriptor: Map<String, Value>,
    pub primary_artifact_id: String,
    pub primary_artifact_digest: String,
    pub primary_artifact_uri: String,
    pub primary_artifact_size_bytes: u64,
    pub primary_artifact_checksum: String,
    pub contract: Option<Value>,
    pub created_at_epoch_ms: i64,
    pub content_hash: String,
    pub descriptor_location: String,
    pub stored_artifacts: Vec<StoredArtifact>,
}

/// Bound on compact JSON of `descriptor` + `contract` + `storedArtifacts`.
pub const MAX_RECORD_BYTES: usize = 307_200;

impl ReleaseRecord {
    /// Size that `RELEASE_TOO_LARGE` bounds (`RELEASES.md` §3.2).
    pub fn bounded_size(&self) -> usize {
        compact_len(&self.descriptor)
            + compact_len(&self.contract)
            + compact_len(&self.stored_artifacts)
    }

    /// Sort key of the release list: (`createdAtEpochMs`, `releaseVersion`).
    pub fn list_key(&self) -> ReleaseListKey {
        ReleaseListKey {
            created_at_epoch_ms: self.created_at_epoch_ms,
            release_version: self.release_version.clone(),
        }
    }
}

fn compact_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// Position in the release list; ordered as the list is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReleaseListKey {
    pub created_at_epoch_ms: i64,
    pub release_version: String,
}

/// Kind of an activation event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivationType {
    Activated,
    ArtifactUnverified,
    ArtifactReverified,
}

/// One append-only activation event of a `(tenant, pipeline)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationEvent {
    pub seq: u64,
    #[serde(rename = "type")]
    pub event_type: ActivationType,
    pub release_version: String,
    pub previous_release_version: Option<String>,
    pub artifact_verified: bool,
    pub activated_at_epoch_ms: i64,
    pub at_epoch_ms: i64,
    pub detail: Option<String>,
}

/// Status of a release, derived from the latest activation event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReleaseStatus {
    Registered,
    Active,
}

/// A release record with its derived members, as every endpoint returns it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    #[serde(flatten)]
    pub record: ReleaseRecord,
    pub status: ReleaseStatus,
    pub updated_at_epoch_ms: i64,
    pub activated_at_epoch_ms: i64,
    pub artifact_verified: bool,
}

impl ReleaseView {
    /// Derives status and times from `latest`, the pipeline's latest event (§3.2).
    pub fn derive(record: ReleaseRecord, latest: Option<&ActivationEvent>) -> Self {
        match latest {
            Some(e) if e.release_version == record.release_version => ReleaseView {
                status: ReleaseStatus::Active,
                updated_at_epoch_ms: e.activated_at_epoch_ms,
                activated_at_epoch_ms: e.activated_at_epoch_ms,
                artifact_verified: e.artifact_verified,
                record,
            },
            _ => ReleaseView {
                status: ReleaseStatus::Registered,
                updated_at_epoch_ms: record.created_at_epoch_ms,
                activated_at_epoch_ms: 0,
                artifact_verified: true,
                record,
            },
        }
    }
}

/// The artifact store's extension for a source's final segment (§4.1):
/// `.` + the text after its last `.` when that is 1–16 ASCII letters or
/// digits, else `.artifact` (`app.jar` → `.jar`, `x.tar.gz` → `.gz`).
pub fn artifact_extension(final_segment: &str) -> String {
    match final_segment.rsplit_once('.') {
        Some((_, ext))
            if (1..=16).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            format!(".{ext}")
        }
        _ => ".artifact".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn art01_extension_rule() {
        assert_eq!(artifact_extension("app.jar"), ".jar");
        assert_eq!(artifact_extension("x.tar.gz"), ".gz");
        assert_eq!(artifact_extension("worker"), ".artifact");
        assert_eq!(artifact_extension("a.toolongextension17"), ".artifact");
        assert_eq!(artifact_extension("a.ext-1"), ".artifact");
        assert_eq!(artifact_extension("a."), ".artifact");
    }
}
