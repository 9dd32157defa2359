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
    PendingFile::with_temp(dir, name, temp_name())?.create_if_absent(bytes)
}

/// Writes `bytes` as `dir/name`, replacing any previous file atomically
/// (temporary file, then `rename(2)`).
pub(crate) fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    PendingFile::with_temp(dir, name, temp_name())?.replace(bytes)
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

/// A record about to be written: its temporary `.<name>.<uuid>.tmp`
/// (`EXECUTION.md` §10.4), created empty in the target directory, then
/// filled and renamed or linked into place by [`PendingFile::replace`] /
/// [`PendingFile::create_if_absent`]. Dropped unused, the temporary is
/// unlinked.
///
/// Why it is a value: a conditional writer creates it *before* it takes the
/// tenant lock, so allocating the inode (the costliest step of a write on
/// ext4, worse without a journal, where the allocator skips every inode
/// freed in the last seconds) runs outside the critical section that all
/// writers of a tenant share (BENCHMARKS.md, throughput of the file stack).
#[derive(Debug)]
pub(crate) struct PendingFile {
    dir: PathBuf,
    name: String,
    temp: PathBuf,
    file: Option<File>,
    /// Set once the temporary was renamed into place (nothing to unlink).
    renamed: bool,
}

impl PendingFile {
    /// Creates `dir` (and parents) and the empty temporary of `dir/name`.
    pub(crate) fn new(dir: &Path, name: &str) -> io::Result<Self> {
        Self::with_temp(dir, name, named_temp(name))
    }

    /// [`PendingFile::new`] with the temporary named `temp_name` (the
    /// registries' `.tmp-<uuid>` form).
    fn with_temp(dir: &Path, name: &str, temp_name: String) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let temp = dir.join(temp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            temp,
            file: Some(file),
            renamed: false,
        })
    }

    /// The target path `dir/name`.
    pub(crate) fn target(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Writes `bytes` into the temporary and closes it.
    fn fill(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.take() {
            Some(mut file) => file.write_all(bytes),
            None => Err(io::Error::other("temporary file already used")),
        }
    }

    /// Writes `bytes` as `dir/name`, replacing any previous file atomically
    /// (`rename(2)`).
    pub(crate) fn replace(mut self, bytes: &[u8]) -> io::Result<()> {
        self.fill(bytes)?;
        fs::rename(&self.temp, self.target())?;
        self.renamed = true;
        Ok(())
        // On failure, drop unlinks the temporary.
    }

    /// Writes `bytes` as `dir/name` only if that name is absent (link, then
    /// the temporary is unlinked). `Ok(false)`: it existed.
    pub(crate) fn create_if_absent(mut self, bytes: &[u8]) -> io::Result<bool> {
        self.fill(bytes)?;
        link_no_replace(&self.temp, &self.target())
        // Drop unlinks the temporary (already gone after a rename fallback).
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.renamed {
            // A leftover after a failed unlink is harmless: readers skip
            // dot-files.
            let _ = fs::remove_file(&self.temp);
        }
    }
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

/// The exclusive lock of one state directory: the in-process gate of that
/// directory, then the `flock` of `dir/.lock`. Dropping it releases both
/// (the file first).
#[derive(Debug)]
pub(crate) struct DirLock {
    // Field order is drop order: the flock is released before the gate.
    _file: File,
    _gate: std::sync::MutexGuard<'static, ()>,
}

/// The in-process gate of `dir`: one mutex per lock directory for the life
/// of the process (a handful: one per tenant, one per pipeline's workers).
///
/// Why: `flock` alone serialises writers of several processes, but every
/// writer of this process would park a blocking-pool thread on it and each
/// release wakes all of them to race again. The gate queues this process's
/// writers on a futex that hands over to one waiter, so at most one thread
/// per process waits on the `flock`, which then only arbitrates between
/// processes (BENCHMARKS.md, throughput of the file stack).
fn gate(dir: &Path) -> &'static std::sync::Mutex<()> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    type Gates = Mutex<HashMap<PathBuf, &'static Mutex<()>>>;
    static GATES: LazyLock<Gates> = LazyLock::new(Default::default);
    let mut gates = GATES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    gates
        .entry(dir.to_owned())
        // Leaked on purpose: lives as long as the process, like the map.
        .or_insert_with(|| Box::leak(Box::new(Mutex::new(()))))
}

/// Takes the in-process gate of `dir`, then opens (creating) `dir/.lock`
/// and takes an exclusive `flock` on it, waiting as long as needed; both
/// are released when the returned lock is dropped.
pub(crate) fn lock_exclusive(dir: &Path) -> Result<DirLock, StoreError> {
    // A writer that panicked under the gate left no partial write behind
    // (writes are atomic renames), so a poisoned gate is still usable.
    let gate = gate(dir)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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
            Ok(()) => {
                return Ok(DirLock {
                    _file: file,
                    _gate: gate,
                })
            }
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
    fn a_pending_file_dropped_unused_leaves_nothing_and_a_used_one_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        drop(PendingFile::new(dir.path(), "a.json").unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        PendingFile::new(dir.path(), "a.json")
            .unwrap()
            .replace(b"1")
            .unwrap();
        assert!(!PendingFile::new(dir.path(), "a.json")
            .unwrap()
            .create_if_absent(b"2")
            .unwrap());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"1");
    }

    /// Read-modify-write of one counter file by threads of one process under
    /// `lock_exclusive` (gate + flock) loses no increment.
    #[test]
    fn the_directory_lock_serialises_writers_of_one_process() {
        let dir = tempfile::tempdir().unwrap();
        replace(dir.path(), "n.json", b"0").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _lock = lock_exclusive(&dir).unwrap();
                        let n: u64 = read_json(&dir.join("n.json")).unwrap().unwrap();
                        std::thread::yield_now();
                        replace(&dir, "n.json", (n + 1).to_string().as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n: u64 = read_json(&dir.path().join("n.json")).unwrap().unwrap();
        assert_eq!(n, 200);
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
