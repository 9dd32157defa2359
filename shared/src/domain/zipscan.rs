//! Finding `META-INF/pipeline/pipeline-contract.json` inside a zip/jar
//! artifact (`RELEASES.md` §2.2). The `zip` crate keeps only the last of two
//! same-named entries, so the central directory is scanned for duplicates.

use std::io::{Read, Seek};

use crate::error::ApiError;

/// Name of the embedded contract entry.
pub const CONTRACT_ENTRY: &str = "META-INF/pipeline/pipeline-contract.json";

/// What an artifact holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipContract {
    /// No readable end-of-central-directory record: not a zip.
    NotZip,
    /// A zip without the entry.
    NoEntry,
    /// The entry's uncompressed bytes (≤ 1 MiB).
    Entry(Vec<u8>),
}

/// Inspects `source`. Entry present twice, encrypted, neither stored nor
/// deflated, or over 1 MiB → 400 `CONTRACT_INVALID`; read errors → 400
/// `ARTIFACT_UNREADABLE`.
pub fn find_contract<R: Read + Seek>(source: R) -> Result<ZipContract, ApiError> {
    let _ = source;
    todo!()
}
