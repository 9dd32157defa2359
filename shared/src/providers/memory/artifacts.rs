//! `memory` artifact store: objects in a map keyed by `<hex><ext>`, managed
//! URIs `memory:///sha256/<hex><ext>`. For tests, with hooks to damage
//! stored objects.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::ports::{ArtifactStore, StoreArtifactError, StoredObject, Verification};

/// Prefix of every managed URI of this store.
const URI_PREFIX: &str = "memory:///sha256/";

/// Per-process, content-addressed artifact store for unit tests.
#[derive(Debug, Default)]
pub struct MemoryArtifactStore {
    objects: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryArtifactStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The managed URI of the object `<hex><ext>`, so tests can address an
    /// object before it is stored.
    pub fn uri_for(hex: &str, ext: &str) -> String {
        format!("{URI_PREFIX}{hex}{ext}")
    }

    /// Test hook: sets the bytes behind `uri`, creating the object if absent
    /// (to plant a corrupt copy) or replacing it (to alter it; an empty
    /// vector truncates it — the object still exists). Use [`Self::remove`]
    /// to make it missing.
    pub fn tamper(&self, uri: &str, bytes: Vec<u8>) {
        if let Some(name) = uri.strip_prefix(URI_PREFIX) {
            self.lock().insert(name.to_owned(), bytes);
        }
    }

    /// Test hook: deletes the object behind `uri` (the store itself never deletes).
    pub fn remove(&self, uri: &str) {
        if let Some(name) = uri.strip_prefix(URI_PREFIX) {
            self.lock().remove(name);
        }
    }

    /// Test hook: the stored object names (`<hex><ext>`), sorted.
    pub fn object_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        names
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks stored `bytes` against `size_bytes` and `checksum` (§4.3 order).
fn check(bytes: &[u8], size_bytes: u64, checksum: &str) -> Verification {
    if bytes.len() as u64 != size_bytes {
        Verification::Failed("size differs")
    } else if format!("sha256:{}", sha256_hex(bytes)) != checksum {
        Verification::Failed("checksum differs")
    } else {
        Verification::Verified
    }
}

/// Reads all of `source` from its start.
fn read_source(mut source: File, limit: u64) -> Result<Vec<u8>, StoreArtifactError> {
    let unavailable =
        |e: std::io::Error| StoreError::Unavailable(format!("reading the artifact source: {e}"));
    source.seek(SeekFrom::Start(0)).map_err(unavailable)?;
    let mut bytes = Vec::new();
    // Read one byte past the expected size: more bytes means it changed.
    source
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unavailable)?;
    Ok(bytes)
}

#[async_trait]
impl ArtifactStore for MemoryArtifactStore {
    async fn store(
        &self,
        source: File,
        hex: &str,
        ext: &str,
        size_bytes: u64,
    ) -> Result<StoredObject, StoreArtifactError> {
        let bytes = tokio::task::spawn_blocking(move || read_source(source, size_bytes))
            .await
            .map_err(|e| StoreError::Unavailable(format!("artifact task failed: {e}")))??;
        if bytes.len() as u64 != size_bytes || sha256_hex(&bytes) != hex {
            return Err(StoreArtifactError::SourceChanged);
        }
        let checksum = format!("sha256:{hex}");
        let name = format!("{hex}{ext}");
        {
            let mut objects = self.lock();
            match objects.get(&name) {
                Some(existing) => {
                    if let Verification::Failed(reason) = check(existing, size_bytes, &checksum) {
                        return Err(StoreArtifactError::ExistingCorrupt(reason));
                    }
                }
                None => {
                    objects.insert(name.clone(), bytes);
                }
            }
        }
        Ok(StoredObject {
            uri: Self::uri_for(hex, ext),
            size_bytes,
            checksum,
        })
    }

    fn managed_uri(&self, hex: &str, ext: &str) -> String {
        Self::uri_for(hex, ext)
    }

    async fn verify(
        &self,
        uri: &str,
        size_bytes: u64,
        checksum: &str,
    ) -> Result<Verification, StoreError> {
        let scheme_is_memory = uri
            .split_once(':')
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("memory"));
        if !scheme_is_memory {
            return Ok(Verification::Failed("artifact store changed"));
        }
        let Some(name) = uri.strip_prefix(URI_PREFIX) else {
            return Ok(Verification::Failed("missing or unreadable"));
        };
        Ok(match self.lock().get(name) {
            None => Verification::Failed("missing or unreadable"),
            Some(bytes) => check(bytes, size_bytes, checksum),
        })
    }
}
