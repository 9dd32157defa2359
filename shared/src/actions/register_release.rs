//! `register_release` (`RELEASES.md` §3.1): read and validate a
//! `pipeline-release.json`, check every local artifact (digest, embedded
//! contract), store the artifacts content-addressed, then create the
//! release record create-if-absent. Identical retries do no artifact I/O.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use super::ReleaseDeps;
use crate::domain::contract::{check_identity, parse_contract, MAX_CONTRACT_BYTES};
use crate::domain::descriptor::{self, ArtifactDecl, ArtifactKind, ValidatedDescriptor};
use crate::domain::ijson::check_numbers;
use crate::domain::location::{self, final_segment, find_root, Location};
use crate::domain::release::{
    artifact_extension, ReleaseRecord, ReleaseView, StoredArtifact, MAX_RECORD_BYTES,
};
use crate::domain::strict_json::parse_object;
use crate::domain::values::char_len;
use crate::domain::zipscan::{find_contract, ZipContract};
use crate::error::{ApiError, ErrorCode};
use crate::ports::{CreateOutcome, OpenLocationError, StoreArtifactError};

/// Largest descriptor file, in bytes.
pub const MAX_DESCRIPTOR_BYTES: u64 = 262_144;

/// Where the descriptor comes from (§3.1.1).
#[derive(Debug, Clone)]
pub enum DescriptorSource {
    /// Mode (a)/(b): a location, as written (trimmed).
    Location(String),
    /// Mode (c): the descriptor object and its JSON text (for the I-JSON check).
    Inline {
        object: Map<String, Value>,
        text: String,
    },
}

/// Checks the request members (§3.1): exactly one of
/// `releaseDescriptorPath` and `releaseDescriptor`. `raw_body` is the body's
/// JSON text, from which the inline descriptor's own text is taken.
pub fn parse_request(
    body: &Map<String, Value>,
    raw_body: &[u8],
) -> Result<DescriptorSource, ApiError> {
    let path = match body.get("releaseDescriptorPath") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let t = s.trim();
            if char_len(t) > 4096 {
                return Err(ApiError::invalid_field(
                    "releaseDescriptorPath",
                    "must be at most 4096 characters",
                ));
            }
            (!t.is_empty()).then(|| t.to_string())
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "releaseDescriptorPath",
                "must be a string",
            ))
        }
    };
    let inline = match body.get("releaseDescriptor") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "releaseDescriptor",
                "must be a JSON object",
            ))
        }
    };
    match (path, inline) {
        (Some(_), Some(_)) => Err(ApiError::new(
            ErrorCode::InvalidField,
            "give either releaseDescriptorPath or releaseDescriptor, not both",
        )),
        (None, None) => Err(ApiError::missing("releaseDescriptorPath")),
        (Some(p), None) => Ok(DescriptorSource::Location(p)),
        (None, Some(object)) => {
            #[derive(serde::Deserialize)]
            struct Raw<'a> {
                #[serde(borrow, rename = "releaseDescriptor")]
                descriptor: &'a serde_json::value::RawValue,
            }
            let text = serde_json::from_slice::<Raw>(raw_body)
                .map(|r| r.descriptor.get().to_string())
                .unwrap_or_else(|_| Value::Object(object.clone()).to_string());
            Ok(DescriptorSource::Inline { object, text })
        }
    }
}

/// One local artifact after step 4: its open handle and what was learned.
struct CheckedArtifact {
    decl_index: usize,
    file: File,
    hex: String,
    ext: String,
    size: u64,
    contract: Option<Value>,
}

/// Registers a release of `(tenant, pipeline)`; 200 with the record.
pub async fn run(
    deps: &ReleaseDeps,
    tenant: &str,
    pipeline: &str,
    source: DescriptorSource,
) -> Result<ReleaseView, ApiError> {
    // 1. read the descriptor
    let (raw, base, descriptor_location) = match source {
        DescriptorSource::Location(written) => {
            let loc = location::parse_descriptor_location(&written)?;
            let bytes = read_descriptor(deps, &loc, &written).await?;
            let object = parse_descriptor_text(&bytes)?;
            (object, Some(loc), written)
        }
        DescriptorSource::Inline { object, text } => {
            check_numbers(&text).map_err(|why| ApiError::new(ErrorCode::InvalidDescriptor, why))?;
            (object, None, "inline".to_string())
        }
    };
    // 2. validate and normalise
    let desc = descriptor::validate(&raw, pipeline, base.as_ref(), &deps.roots)?;
    // 3. idempotency
    if let Some(existing) = deps
        .registry
        .get_release(tenant, pipeline, &desc.release_version)
        .await?
    {
        return same_or_conflict(deps, existing, &desc.content_hash).await;
    }
    // 4. check every local artifact
    let mut checked = Vec::new();
    for (i, decl) in desc
        .artifacts
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind.is_local())
    {
        checked.push(check_artifact(deps, i, decl, &desc).await?);
    }
    // 5. build the record
    let mut record = build_record(deps, tenant, &desc, &checked, descriptor_location);
    if record.bounded_size() > MAX_RECORD_BYTES {
        return Err(ApiError::new(
            ErrorCode::ReleaseTooLarge,
            "descriptor, contract and stored artifacts exceed 307200 bytes of JSON",
        ));
    }
    // 6. store each local artifact
    for (stored, c) in record.stored_artifacts.iter_mut().zip(checked) {
        let object = deps
            .store
            .store(c.file, &c.hex, &c.ext, c.size)
            .await
            .map_err(|e| match e {
                StoreArtifactError::ExistingCorrupt(reason) => ApiError::new(
                    ErrorCode::ReleaseArtifactUnverified,
                    format!(
                        "{}: the stored copy is corrupt ({reason})",
                        stored.artifact_id
                    ),
                ),
                StoreArtifactError::SourceChanged => ApiError::new(
                    ErrorCode::ArtifactDigestMismatch,
                    format!(
                        "{}: the artifact changed while it was being registered",
                        stored.artifact_id
                    ),
                ),
                StoreArtifactError::Store(e) => e.into(),
            })?;
        stored.uri = object.uri;
        stored.size_bytes = object.size_bytes;
        stored.checksum = object.checksum;
    }
    if let Some(primary) = record
        .stored_artifacts
        .iter()
        .find(|a| a.artifact_id == record.primary_artifact_id)
    {
        record.primary_artifact_uri = primary.uri.clone();
        record.primary_artifact_size_bytes = primary.size_bytes;
        record.primary_artifact_checksum = primary.checksum.clone();
    }
    // 7. create the record
    match deps.registry.create_release(&record).await? {
        CreateOutcome::Created => {
            tracing::info!(release = %record.release_version, "release registered");
            Ok(ReleaseView::derive(record, None))
        }
        CreateOutcome::Exists(winner) => same_or_conflict(deps, *winner, &desc.content_hash).await,
    }
}

async fn same_or_conflict(
    deps: &ReleaseDeps,
    existing: ReleaseRecord,
    hash: &str,
) -> Result<ReleaseView, ApiError> {
    if existing.content_hash != hash {
        return Err(ApiError::new(
            ErrorCode::ReleaseVersionConflict,
            format!(
                "Release version {} is already registered with different content",
                existing.release_version
            ),
        ));
    }
    let latest = deps
        .registry
        .latest_event(&existing.tenant_id, &existing.pipeline_id)
        .await?;
    Ok(ReleaseView::derive(existing, latest.as_ref()))
}

/// Parses located descriptor bytes: strict JSON object, I-JSON numbers.
fn parse_descriptor_text(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let invalid = |why: String| ApiError::new(ErrorCode::InvalidDescriptor, why);
    let object = parse_object(bytes).map_err(|e| invalid(format!("descriptor: {e}")))?;
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("descriptor is not UTF-8".into()))?;
    check_numbers(text).map_err(invalid)?;
    Ok(object)
}

fn open_error(e: OpenLocationError, written: &str, unreadable: ErrorCode) -> ApiError {
    match e {
        OpenLocationError::Escapes => ApiError::new(
            ErrorCode::LocationNotAllowed,
            format!("location '{written}' resolves outside its registration root"),
        ),
        OpenLocationError::Unreadable => ApiError::new(
            unreadable,
            format!("'{written}' is missing, not a regular file, or unreadable"),
        ),
        OpenLocationError::Store(e) => e.into(),
    }
}

async fn read_descriptor(
    deps: &ReleaseDeps,
    loc: &Location,
    written: &str,
) -> Result<Vec<u8>, ApiError> {
    let beneath = find_root(loc, written, &deps.roots)?;
    let (file, size) = deps
        .locations
        .open(beneath.root, &beneath.rest, MAX_DESCRIPTOR_BYTES)
        .await
        .map_err(|e| open_error(e, written, ErrorCode::DescriptorUnreadable))?;
    let too_large = || {
        ApiError::new(
            ErrorCode::DescriptorTooLarge,
            "descriptor is larger than 262144 bytes",
        )
    };
    if size > MAX_DESCRIPTOR_BYTES {
        return Err(too_large());
    }
    let written = written.to_string();
    let bytes = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        file.take(MAX_DESCRIPTOR_BYTES + 1)
            .read_to_end(&mut buf)
            .map(|_| buf)
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?
    .map_err(|_| {
        ApiError::new(
            ErrorCode::DescriptorUnreadable,
            format!("'{written}' could not be read"),
        )
    })?;
    if bytes.len() as u64 > MAX_DESCRIPTOR_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Step 4 for one local artifact: open, size, digest, contract.
async fn check_artifact(
    deps: &ReleaseDeps,
    decl_index: usize,
    decl: &ArtifactDecl,
    desc: &ValidatedDescriptor,
) -> Result<CheckedArtifact, ApiError> {
    let loc = decl.location.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::InternalError,
            "local artifact without a resolved location",
        )
    })?;
    let beneath = find_root(loc, &decl.uri, &deps.roots)?;
    let (file, size) = deps
        .locations
        .open(beneath.root, &beneath.rest, deps.max_artifact_bytes)
        .await
        .map_err(|e| open_error(e, &decl.uri, ErrorCode::ArtifactUnreadable))?;
    if size > deps.max_artifact_bytes {
        return Err(ApiError::new(
            ErrorCode::ArtifactTooLarge,
            format!(
                "{}: {size} bytes is over the limit of {}",
                decl.artifact_id, deps.max_artifact_bytes
            ),
        ));
    }
    let id = decl.artifact_id.clone();
    let kind = decl.kind;
    let (file, hex, contract_bytes) = tokio::task::spawn_blocking(move || inspect(file, kind, &id))
        .await
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))??;
    if format!("sha256:{hex}") != decl.digest {
        return Err(ApiError::new(
            ErrorCode::ArtifactDigestMismatch,
            format!(
                "{}: SHA-256 of the bytes differs from the declared digest",
                decl.artifact_id
            ),
        ));
    }
    let contract = match contract_bytes {
        Some(bytes) => {
            let c = parse_contract(&bytes)?;
            check_identity(&c, &desc.pipeline_id, &desc.contract_version)?;
            Some(c)
        }
        None => None,
    };
    Ok(CheckedArtifact {
        decl_index,
        file,
        hex,
        ext: artifact_extension(final_segment(loc)),
        size,
        contract,
    })
}

/// Hashes the whole file and extracts its contract bytes, if any.
fn inspect(
    mut file: File,
    kind: ArtifactKind,
    id: &str,
) -> Result<(File, String, Option<Vec<u8>>), ApiError> {
    let unreadable = || {
        ApiError::new(
            ErrorCode::ArtifactUnreadable,
            format!("{id}: could not be read"),
        )
    };
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|_| unreadable())?;
    let hex = hex::encode(hasher.finalize());
    file.seek(SeekFrom::Start(0)).map_err(|_| unreadable())?;
    let contract = match kind {
        ArtifactKind::PipelineContract => {
            let mut buf = Vec::new();
            (&mut file)
                .take(MAX_CONTRACT_BYTES as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|_| unreadable())?;
            if buf.len() > MAX_CONTRACT_BYTES {
                return Err(ApiError::new(
                    ErrorCode::ContractInvalid,
                    format!("{id}: contract is larger than 1048576 bytes"),
                ));
            }
            Some(buf)
        }
        _ => match find_contract(&mut file)? {
            ZipContract::Entry(bytes) => Some(bytes),
            ZipContract::NotZip | ZipContract::NoEntry if kind == ArtifactKind::Jar => {
                return Err(ApiError::new(
                    ErrorCode::ContractMissing,
                    format!("{id}: jar has no META-INF/pipeline/pipeline-contract.json"),
                ))
            }
            ZipContract::NotZip | ZipContract::NoEntry => None,
        },
    };
    file.seek(SeekFrom::Start(0)).map_err(|_| unreadable())?;
    Ok((file, hex, contract))
}

/// Step 5: the record, with managed URIs as the store will name them.
fn build_record(
    deps: &ReleaseDeps,
    tenant: &str,
    desc: &ValidatedDescriptor,
    checked: &[CheckedArtifact],
    descriptor_location: String,
) -> ReleaseRecord {
    // Primary (as TPF): the last contract-bearing artifact, else the first.
    let mut primary = 0;
    let mut primary_contract: Option<&Value> = None;
    for (i, _) in desc.artifacts.iter().enumerate() {
        let contract = checked
            .iter()
            .find(|c| c.decl_index == i)
            .and_then(|c| c.contract.as_ref());
        if i == 0 || contract.is_some() {
            primary = i;
            primary_contract = contract;
        }
    }
    let stored_artifacts: Vec<StoredArtifact> = checked
        .iter()
        .map(|c| {
            let decl = &desc.artifacts[c.decl_index];
            StoredArtifact {
                artifact_id: decl.artifact_id.clone(),
                kind: decl.kind_written.clone(),
                digest: decl.digest.clone(),
                uri: deps.store.managed_uri(&c.hex, &c.ext),
                size_bytes: c.size,
                checksum: format!("sha256:{}", c.hex),
            }
        })
        .collect();
    let p = &desc.artifacts[primary];
    let stored_primary = stored_artifacts
        .iter()
        .find(|s| s.artifact_id == p.artifact_id);
    ReleaseRecord {
        tenant_id: tenant.to_string(),
        pipeline_id: desc.pipeline_id.clone(),
        contract_version: desc.contract_version.clone(),
        release_version: desc.release_version.clone(),
        descriptor: desc.normalised.clone(),
        primary_artifact_id: p.artifact_id.clone(),
        primary_artifact_digest: p.digest.clone(),
        primary_artifact_uri: stored_primary.map(|s| s.uri.clone()).unwrap_or_default(),
        primary_artifact_size_bytes: stored_primary.map_or(0, |s| s.size_bytes),
        primary_artifact_checksum: stored_primary
            .map(|s| s.checksum.clone())
            .unwrap_or_default(),
        contract: primary_contract.cloned(),
        created_at_epoch_ms: deps.clock.now_ms(),
        content_hash: desc.content_hash.clone(),
        descriptor_location,
        stored_artifacts,
    }
}
