//! `local` artifact store (`RELEASES.md` §4): objects at
//! `<storage_root>/artifacts/<hex><ext>`, managed URI `file://` + the
//! absolute path with bytes outside `A-Za-z0-9-._~/` percent-encoded.
//!
//! Storing is create-if-absent and never overwrites: the bytes go to
//! `artifacts/.tmp-<uuid>` (hashed on the way), which is `fsync`ed, made
//! read-only and linked into place; the directory is `fsync`ed after. An
//! object already there is verified in full and reused, or reported corrupt.
//!
//! Outages: verification treats everything about the object itself (gone,
//! unreadable, not a regular file, a read error while hashing) as
//! `missing or unreadable`. Only a failure to inspect the directory holding
//! the object for a reason other than "absent", "permission denied", "not a
//! directory" or "symlink loop" (e.g. `EIO`, a stale network mount) is an
//! outage ([`StoreError::Unavailable`], 503): then the store, not the
//! object, is what is broken.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use super::fsutil::{blocking, link_no_replace, temp_name};
use crate::error::StoreError;
use crate::ports::{ArtifactStore, StoreArtifactError, StoredObject, Verification};

/// Bytes kept verbatim in a managed `file:` URI: `A-Za-z0-9-._~/`.
const URI_PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Read buffer for copying and hashing.
const CHUNK: usize = 64 * 1024;

/// Content-addressed artifact store on the local file system (the `local`
/// provider of release-admin).
#[derive(Debug, Clone)]
pub struct LocalArtifactStore {
    /// Absolute `<storage_root>/artifacts`.
    dir: PathBuf,
}

impl LocalArtifactStore {
    /// Store under `<storage_root>/artifacts`; a relative root is made
    /// absolute against the current directory now, since URIs are absolute.
    pub fn new(storage_root: PathBuf) -> Self {
        let root = std::path::absolute(&storage_root).unwrap_or(storage_root);
        Self {
            dir: root.join("artifacts"),
        }
    }

    /// The managed URI of an object path.
    fn uri_of(path: &Path) -> String {
        format!(
            "file://{}",
            percent_encode(path.as_os_str().as_bytes(), URI_PATH_SET)
        )
    }
}

/// The path a managed `file:` URI names; `None` if it has an authority,
/// is not absolute or is not a URI of this store's form.
fn path_of_uri(rest_after_scheme: &str) -> Option<PathBuf> {
    let encoded = rest_after_scheme.strip_prefix("//")?;
    if !encoded.starts_with('/') {
        return None;
    }
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    if bytes.contains(&0) {
        return None;
    }
    Some(PathBuf::from(OsString::from_vec(bytes)))
}

/// `.` + 1–16 ASCII letters/digits (the only extensions §4.1 produces).
fn is_valid_ext(ext: &str) -> bool {
    ext.strip_prefix('.').is_some_and(|rest| {
        (1..=16).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Opens an object for reading without following a final symbolic link and
/// without blocking on a FIFO; `None` when that fails or it is not a regular file.
fn open_regular(path: &Path) -> Option<(File, u64)> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let file = File::from(fd);
    let meta = file.metadata().ok()?;
    meta.is_file().then_some((file, meta.len()))
}

/// §4.3 local check of the object at `path`: a regular file, its size, a
/// full re-hash. Never an outage (see the module doc).
fn check_object(path: &Path, size_bytes: u64, checksum: &str) -> Verification {
    let Some((mut file, len)) = open_regular(path) else {
        return Verification::Failed("missing or unreadable");
    };
    if len != size_bytes {
        return Verification::Failed("size differs");
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Verification::Failed("missing or unreadable"),
        }
    }
    if total != size_bytes {
        // Changed size while being read.
        Verification::Failed("size differs")
    } else if format!("sha256:{}", hex::encode(hasher.finalize())) != checksum {
        Verification::Failed("checksum differs")
    } else {
        Verification::Verified
    }
}

/// Deletes the temporary file when the store attempt ends, however it ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn unavailable(doing: &str, path: &Path, e: io::Error) -> StoreArtifactError {
    StoreArtifactError::Store(StoreError::Unavailable(format!(
        "{doing} {}: {e}",
        path.display()
    )))
}

/// The blocking body of [`LocalArtifactStore::store`].
fn store_blocking(
    dir: &Path,
    mut source: File,
    hex: &str,
    ext: &str,
    size_bytes: u64,
) -> Result<StoredObject, StoreArtifactError> {
    if !is_valid_ext(ext) {
        return Err(StoreArtifactError::Store(StoreError::Unavailable(
            "refusing an artifact extension outside the naming rule".to_owned(),
        )));
    }
    fs::create_dir_all(dir).map_err(|e| unavailable("creating", dir, e))?;
    let tmp_path = dir.join(temp_name());
    let mut tmp = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp_path)
        .map_err(|e| unavailable("creating", &tmp_path, e))?;
    let tmp_guard = TempFile(tmp_path);
    let tmp_path = &tmp_guard.0;

    // Copy from offset 0 while hashing; stop once more than `size_bytes` came.
    source
        .seek(SeekFrom::Start(0))
        .map_err(|e| unavailable("reading the artifact source", tmp_path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    while total <= size_bytes {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unavailable("reading the artifact source for", tmp_path, e)),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        tmp.write_all(&buf[..n])
            .map_err(|e| unavailable("writing", tmp_path, e))?;
    }
    if total != size_bytes || hex::encode(hasher.finalize()) != hex {
        return Err(StoreArtifactError::SourceChanged);
    }
    tmp.sync_all()
        .map_err(|e| unavailable("syncing", tmp_path, e))?;
    tmp.set_permissions(Permissions::from_mode(0o444))
        .map_err(|e| unavailable("protecting", tmp_path, e))?;
    drop(tmp);

    let checksum = format!("sha256:{hex}");
    let target = dir.join(format!("{hex}{ext}"));
    let mut attempts = 0;
    loop {
        attempts += 1;
        if link_no_replace(tmp_path, &target).map_err(|e| unavailable("linking", &target, e))? {
            break;
        }
        match check_object(&target, size_bytes, &checksum) {
            Verification::Verified => break,
            // Gone between our link and our check (only by outside hands:
            // the store never deletes): link again.
            Verification::Failed(_)
                if attempts < 3
                    && fs::symlink_metadata(&target)
                        .is_err_and(|e| e.kind() == io::ErrorKind::NotFound) => {}
            Verification::Failed(reason) => {
                return Err(StoreArtifactError::ExistingCorrupt(reason))
            }
        }
    }
    drop(tmp_guard);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| unavailable("syncing", dir, e))?;
    Ok(StoredObject {
        uri: LocalArtifactStore::uri_of(&target),
        size_bytes,
        checksum,
    })
}

/// Is an error inspecting the object's directory an outage of the store?
fn is_outage(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let benign = [
        Errno::NOENT,
        Errno::ACCESS,
        Errno::PERM,
        Errno::NOTDIR,
        Errno::LOOP,
        Errno::NAMETOOLONG,
    ];
    !e.raw_os_error()
        .is_some_and(|code| benign.iter().any(|b| b.raw_os_error() == code))
}

#[async_trait]
impl ArtifactStore for LocalArtifactStore {
    async fn store(
        &self,
        source: File,
        hex: &str,
        ext: &str,
        size_bytes: u64,
    ) -> Result<StoredObject, StoreArtifactError> {
        let dir = self.dir.clone();
        let (hex, ext) = (hex.to_owned(), ext.to_owned());
        blocking(move || store_blocking(&dir, source, &hex, &ext, size_bytes)).await?
    }

    fn managed_uri(&self, hex: &str, ext: &str) -> String {
        Self::uri_of(&self.dir.join(format!("{hex}{ext}")))
    }

    async fn verify(
        &self,
        uri: &str,
        size_bytes: u64,
        checksum: &str,
    ) -> Result<Verification, StoreError> {
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Ok(Verification::Failed("artifact store changed"));
        };
        if !scheme.eq_ignore_ascii_case("file") {
            return Ok(Verification::Failed("artifact store changed"));
        }
        let Some(path) = path_of_uri(rest) else {
            return Ok(Verification::Failed("missing or unreadable"));
        };
        let checksum = checksum.to_owned();
        blocking(move || {
            if let Some(parent) = path.parent() {
                if let Err(e) = fs::metadata(parent) {
                    if is_outage(&e) {
                        return Err(StoreError::Unavailable(format!(
                            "inspecting {}: {e}",
                            parent.display()
                        )));
                    }
                }
            }
            Ok(check_object(&path, size_bytes, &checksum))
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_percent_encode_upper_case_outside_the_unreserved_set() {
        let uri = LocalArtifactStore::uri_of(Path::new("/srv/a b+é/x~y_z-1.jar"));
        assert_eq!(uri, "file:///srv/a%20b%2B%C3%A9/x~y_z-1.jar");
        assert_eq!(
            path_of_uri(uri.strip_prefix("file:").unwrap()).unwrap(),
            PathBuf::from("/srv/a b+é/x~y_z-1.jar")
        );
        assert!(path_of_uri("//host/x").is_none());
        assert!(path_of_uri("/x").is_none());
    }

    #[test]
    fn extensions_follow_the_naming_rule() {
        assert!(is_valid_ext(".jar") && is_valid_ext(".artifact"));
        assert!(!is_valid_ext("jar") && !is_valid_ext(".") && !is_valid_ext("./x"));
        assert!(!is_valid_ext(&format!(".{}", "a".repeat(17))));
    }
}
