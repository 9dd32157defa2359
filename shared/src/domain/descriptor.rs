//! `pipeline-release.json` (`RELEASES.md` §2.1): validation, normalisation
//! and the content identity hash (§2.3).

use serde_json::{Map, Value};

use crate::domain::location::{Location, Root};
use crate::error::ApiError;

/// Artifact kinds of §2.1, matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    Jar,
    LambdaZip,
    LocalFile,
    NativeBinary,
    PipelineContract,
    ContainerImage,
    LambdaImage,
    ExternalEndpoint,
}

impl ArtifactKind {
    /// Local kinds are read, hashed and stored at registration.
    pub fn is_local(self) -> bool {
        !matches!(
            self,
            ArtifactKind::ContainerImage | ArtifactKind::LambdaImage | ArtifactKind::ExternalEndpoint
        )
    }
}

/// One validated artifact declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactDecl {
    pub artifact_id: String,
    pub kind: ArtifactKind,
    /// The kind as written (trimmed), which is what is stored.
    pub kind_written: String,
    /// Trimmed `uri` as written.
    pub uri: String,
    pub digest: String,
    /// For local kinds: the resolved location (checked beneath a root).
    pub location: Option<Location>,
}

/// A descriptor that passed §2.1.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedDescriptor {
    /// Normalised descriptor (stored and returned as `descriptor`).
    pub normalised: Map<String, Value>,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub artifacts: Vec<ArtifactDecl>,
    /// §2.3: lowercase hex SHA-256 of the JCS text of the identity view.
    pub content_hash: String,
}

/// Validates and normalises a descriptor object (already strict-parsed and
/// I-JSON-checked). `path_pipeline_id` is the route's pipeline; `base` the
/// descriptor's own location (`None` inline); `roots` the registration roots.
pub fn validate(
    raw: &Map<String, Value>,
    path_pipeline_id: &str,
    base: Option<&Location>,
    roots: &[Root],
) -> Result<ValidatedDescriptor, ApiError> {
    let _ = (raw, path_pipeline_id, base, roots);
    todo!()
}

/// §2.3: identity view (kinds lower-cased, local `uri`s removed), JCS, SHA-256.
pub fn content_hash(normalised: &Map<String, Value>) -> String {
    let _ = normalised;
    todo!()
}
