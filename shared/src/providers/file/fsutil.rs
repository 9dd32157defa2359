//! Blocking file helpers shared by the `file` providers (`RELEASES.md` §5
//! "File writes"): records go to a `.tmp-<uuid>` file in the target
//! directory and are then linked (create-if-absent) or renamed (replace)
//! into place, so a crashed process never leaves a half-written record.
//! Records are not `fsync`ed. Readers skip names starting with `.`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StoreError;

/// Runs blocking file I/O on tokio's blocking pool, so async callers never
/// stall a runtime worker thread.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("file store task failed: {e}")))
}

/// True when `id` can be used verbatim as one path component: not empty,
/// not starting with `.` (readers skip those), no `/` or NUL, at most 255
/// bytes. The HTTP layer's id rule is stricter; this is defence in depth.
pub(crate) fn is_component(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && !id.bytes().any(|b| b == b'/' || b == 0)
}

/// Err(Unavailable) naming `what` when `id` is not a storable component.
pub(crate) fn require_component(what: &str, id: &str) -> Result<(), StoreError> {
    if is_component(id) {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "refusing to store {what} that is not a plain file name"
        )))
    }
}

/// A number as the 19-digit, zero-padded file stem the layouts use.
pub(crate) fn pad19(n: u64) -> String {
    format!("{n:019}")
}

/// A fresh temporary file name in the `.tmp-<uuid>` form readers skip.
pub(crate) fn temp_name() -> String {
    format!(".tmp-{}", uuid::Uuid::new_v4())
}

/// Creates `dir` (and parents) and writes `bytes` to a new temporary file in
/// it; returns the temporary's path.
fn write_temp(dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(temp_name());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    if let Err(e) = file.write_all(bytes) {
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Links `from` to `to` without ever replacing `to`: `link(2)`, or
/// `renameat2(RENAME_NOREPLACE)` on file systems without hard links.
/// `Ok(false)` when `to` already exists.
pub(crate) fn link_no_replace(from: &Path, to: &Path) -> io::Result<bool> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if links_unsupported(&e) => {
            // The caller still unlinks `from`; after a rename it is gone,
            // which that unlink tolerates.
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                from,
                rustix::fs::CWD,
                to,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => Ok(true),
                Err(rustix::io::Errno::EXIST) => Ok(false),
                Err(errno) => Err(errno.into()),
            }
        }
        Err(e) => Err(e),
    }
}

/// `link(2)` failures that mean "this file system has no hard links".
fn links_unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    [Errno::PERM, Errno::OPNOTSUPP, Errno::NOSYS, Errno::MLINK]
        .iter()
        .any(|errno| errno.raw_os_error() == code)
}

/// Writes `bytes` as `dir/name` only if that name is absent (temporary file,
/// then link; the temporary is unlinked after). `Ok(false)`: it existed.
pub(crate) fn create_if_absent(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<bool> {
    let tmp = write_temp(dir, bytes)?;
    let linked = link_no_replace(&tmp, &dir.join(name));
    // Already gone after a rename fallback; a leftover is harmless anyway
    // (readers skip dot-files).
    let _ = fs::remove_file(&tmp);
    linked
}

/// Writes `bytes` as `dir/name`, replacing any previous file atomically
/// (temporary file, then `rename(2)`).
pub(crate) fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(dir, bytes)?;
    fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The temporary name `.<name>.<uuid>.tmp` of `EXECUTION.md` §10.4 (readers
/// skip it: it starts with `.`).
pub(crate) fn named_temp(name: &str) -> String {
    format!(".{name}.{}.tmp", uuid::Uuid::new_v4())
}

/// True when `id` is a component whose `.<id>.json.<uuid>.tmp` temporary
/// still fits in one file name (255 bytes): [`is_component`], ≤ 200 bytes.
pub(crate) fn is_short_component(id: &str) -> bool {
    is_component(id) && id.len() <= 200
}

/// Creates `dir` (and parents) and writes `bytes` to the new temporary
/// `.<name>.<uuid>.tmp` in it; returns the temporary's path.
fn write_named_temp(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(named_temp(name));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    if let Err(e) = file.write_all(bytes) {
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// [`create_if_absent`] through a `.<name>.<uuid>.tmp` temporary
/// (`EXECUTION.md` §10.4). `Ok(false)`: `dir/name` existed.
pub(crate) fn create_if_absent_named(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<bool> {
    let tmp = write_named_temp(dir, name, bytes)?;
    let linked = link_no_replace(&tmp, &dir.join(name));
    let _ = fs::remove_file(&tmp);
    linked
}

/// [`replace`] through a `.<name>.<uuid>.tmp` temporary (`EXECUTION.md` §10.4).
pub(crate) fn replace_named(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_named_temp(dir, name, bytes)?;
    fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Serialises a stored value as compact JSON.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value)
        .map_err(|e| StoreError::Unavailable(format!("cannot serialise a record: {e}")))
}

/// Reads and parses one JSON file; `None` when it (or its directory) does
/// not exist. An unparsable file is an outage: writes are atomic, so it
/// can only be damage from outside.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("reading", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Unavailable(format!("corrupt record {}: {e}", path.display())))
}

/// The stems of the `*.json` files in `dir`, byte-ordered; names starting
/// with `.` (temporaries, the lock) are skipped. A missing directory is empty.
pub(crate) fn json_stems(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("listing", dir, e)),
    };
    let mut stems = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing", dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if let Some(stem) = name.strip_suffix(".json") {
            if !stem.is_empty() {
                stems.push(stem.to_owned());
            }
        }
    }
    stems.sort();
    Ok(stems)
}

/// The numbers of the `<19 digits>.json` files in `dir`, ascending.
pub(crate) fn numbered_stems(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut numbers: Vec<u64> = json_stems(dir)?
        .iter()
        .filter(|s| s.len() == 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|s| s.parse().ok())
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// The names of the subdirectories of `dir` that are plain components
/// (not starting with `.`), byte-ordered. A missing directory is empty.
pub(crate) fn subdir_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("listing", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing", dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && is_component(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Opens (creating) `dir/.lock` and takes an exclusive `flock` on it,
/// waiting as long as needed; the lock is released when the file is dropped.
pub(crate) fn lock_exclusive(dir: &Path) -> Result<File, StoreError> {
    fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error("opening", &path, e))?;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(io_error("locking", &path, errno.into())),
        }
    }
}

/// An I/O failure as the store outage it is, naming the operation and path.
pub(crate) fn io_error(doing: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Unavailable(format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_if_absent_never_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        assert!(create_if_absent(dir.path(), "a.json", b"1").unwrap());
        assert!(!create_if_absent(dir.path(), "a.json", b"2").unwrap());
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"1");
        replace(dir.path(), "a.json", b"3").unwrap();
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"3");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn listings_skip_dot_files_and_order_numbers() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            ".tmp-x",
            ".lock",
            "0000000000000000010.json",
            "0000000000000000002.json",
            "x.txt",
        ] {
            fs::write(dir.path().join(name), b"{}").unwrap();
        }
        assert_eq!(numbered_stems(dir.path()).unwrap(), vec![2, 10]);
        assert!(json_stems(&dir.path().join("missing")).unwrap().is_empty());
        assert!(!is_component(".x") && !is_component("a/b") && !is_component(""));
        assert_eq!(pad19(7), "0000000000000000007");
    }
}
