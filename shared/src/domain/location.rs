//! Descriptor and artifact locations and the registration roots
//! (`RELEASES.md` §3.1.2): lexical rules only, nothing is touched here.

use crate::error::ApiError;

/// A location in one of the accepted forms, after joining and decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// L1: `s3://<bucket>/<key>`.
    S3 { bucket: String, key: String },
    /// L2 (or L3/L4 resolved to L2): an absolute path such as `/srv/releases/a/b.json`.
    Local(String),
}

/// One entry of `TPF_RELEASES_REGISTRATION_ROOTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// An absolute directory, as configured with any trailing `/` removed.
    Local(String),
    /// `s3://bucket[/prefix]`, prefix empty or ending with `/`.
    S3 { bucket: String, prefix: String },
}

/// A location found beneath a root: the root and the remaining relative
/// segments joined with `/` (for `Local`, what `openat2` receives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beneath<'a> {
    pub root: &'a Root,
    pub rest: String,
}

/// Parses one root entry (already trimmed, non-empty). Syntax only: the
/// caller checks that a local root is an existing directory.
pub fn parse_root(entry: &str) -> Result<Root, String> {
    let _ = entry;
    todo!()
}

/// Parses `releaseDescriptorPath` (already trimmed, ≤ 4096 chars): L1 or L2.
/// Any failure → 400 `LOCATION_NOT_ALLOWED` quoting the location as written.
pub fn parse_descriptor_location(written: &str) -> Result<Location, ApiError> {
    let _ = written;
    todo!()
}

/// Resolves an artifact `uri` (L1–L4) against the descriptor's location
/// (`None` for an inline descriptor: relative URIs are refused).
/// Failures → 400 `LOCATION_NOT_ALLOWED`.
pub fn resolve_artifact_location(uri: &str, base: Option<&Location>) -> Result<Location, ApiError> {
    let _ = (uri, base);
    todo!()
}

/// Finds the longest root `location` is beneath, else 400 `LOCATION_NOT_ALLOWED`.
pub fn find_root<'a>(
    location: &Location,
    written: &str,
    roots: &'a [Root],
) -> Result<Beneath<'a>, ApiError> {
    let _ = (location, written, roots);
    todo!()
}

/// The final segment of a location (for the artifact store's extension rule).
pub fn final_segment(location: &Location) -> &str {
    match location {
        Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or(key),
        Location::Local(p) => p.rsplit('/').next().unwrap_or(p),
    }
}
