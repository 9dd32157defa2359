//! Opening a location beneath a registration root with Linux `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (`RELEASES.md` §3.1.2), so `..`
//! and symbolic-link escapes are refused by the kernel.

use std::fs::File;
use std::path::Path;

use rustix::fs::{fstat, open, openat2, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why a location could not be opened.
#[derive(Debug)]
pub enum BeneathError {
    /// Resolution would leave the root (absolute link, `..` above the root,
    /// more than 40 links): `LOCATION_NOT_ALLOWED`.
    Escapes,
    /// Missing, unreadable, or not a regular file: `*_UNREADABLE`.
    Unreadable,
}

/// How often a spurious `EAGAIN`/`EINTR` from `openat2` is retried.
const RETRIES: usize = 8;

/// Opens `rest` (relative segments joined by `/`) beneath the directory
/// `root`, read-only, non-blocking (so a FIFO cannot hang the call), and
/// checks through the same handle that it is a regular file.
pub fn open_beneath(root: &Path, rest: &str) -> Result<File, BeneathError> {
    let root_fd = open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| BeneathError::Unreadable)?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let mut attempt = 0;
    let fd = loop {
        match openat2(&root_fd, rest, flags, Mode::empty(), resolve) {
            Ok(fd) => break fd,
            // The kernel could not rule out a racing `..` escape, or a signal.
            Err(Errno::AGAIN | Errno::INTR) if attempt < RETRIES => attempt += 1,
            Err(Errno::XDEV | Errno::LOOP) => return Err(BeneathError::Escapes),
            Err(_) => return Err(BeneathError::Unreadable),
        }
    };
    let stat = fstat(&fd).map_err(|_| BeneathError::Unreadable)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(BeneathError::Unreadable);
    }
    Ok(File::from(fd))
}

/// Start-up probe: Err with a message when the kernel lacks `openat2`.
pub fn check_openat2() -> Result<(), String> {
    let root = open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open / to probe for openat2: {e}"))?;
    probe_with(|| {
        openat2(
            &root,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map(drop)
    })
}

/// Runs the `openat2` probe `call` and turns its failure into the start-up
/// message (separate so the failure path can be tested on a kernel that
/// has `openat2`).
fn probe_with(call: impl FnOnce() -> Result<(), Errno>) -> Result<(), String> {
    call().map_err(probe_error)
}

/// The start-up message for an `openat2` probe that failed with `e`: a
/// kernel older than 5.6 (`ENOSYS`), or a sandbox (seccomp) refusing it.
fn probe_error(e: Errno) -> String {
    match e {
        Errno::NOSYS => "this kernel lacks openat2 (Linux 5.6+), which release-admin needs to open registration locations safely"
            .to_owned(),
        e => format!(
            "openat2 is unavailable here ({e}); release-admin needs it (Linux 5.6+) to open registration locations safely"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn read(root: &Path, rest: &str) -> Result<String, BeneathError> {
        let mut s = String::new();
        open_beneath(root, rest)?.read_to_string(&mut s).unwrap();
        Ok(s)
    }

    /// `<tmp>/outside.txt` and `<tmp>/root/{a/b.txt, top.txt}`.
    fn layout() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("outside.txt"), "outside").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/b.txt"), "b").unwrap();
        std::fs::write(root.join("top.txt"), "top").unwrap();
        (tmp, root)
    }

    #[test]
    fn probe_finds_openat2() {
        assert_eq!(check_openat2(), Ok(()));
        assert_eq!(probe_with(|| Ok(())), Ok(()));
    }

    #[test]
    fn rac09_cfg02_a_kernel_or_sandbox_without_openat2_fails_start_up_with_a_message() {
        // ENOSYS: a kernel before Linux 5.6.
        let old_kernel = probe_with(|| Err(Errno::NOSYS)).unwrap_err();
        assert!(old_kernel.contains("lacks openat2"), "{old_kernel}");
        assert!(old_kernel.contains("Linux 5.6"), "{old_kernel}");
        assert!(old_kernel.contains("release-admin"), "{old_kernel}");
        // EPERM / EACCES: a seccomp filter refusing the call.
        for e in [Errno::PERM, Errno::ACCESS] {
            let sandboxed = probe_with(|| Err(e)).unwrap_err();
            assert!(sandboxed.contains("openat2 is unavailable"), "{sandboxed}");
            assert!(sandboxed.contains(&e.to_string()), "{sandboxed}");
            assert!(sandboxed.contains("release-admin"), "{sandboxed}");
            assert_eq!(sandboxed, probe_error(e));
        }
    }

    #[test]
    fn regular_files_open_beneath_the_root() {
        let (_tmp, root) = layout();
        assert_eq!(read(&root, "top.txt").unwrap(), "top");
        assert_eq!(read(&root, "a/b.txt").unwrap(), "b");
        // `..` that stays beneath the root is resolved by the kernel.
        assert_eq!(read(&root, "a/../top.txt").unwrap(), "top");
    }

    #[test]
    fn dot_dot_above_the_root_escapes() {
        let (_tmp, root) = layout();
        assert!(matches!(
            open_beneath(&root, "../outside.txt"),
            Err(BeneathError::Escapes)
        ));
        assert!(matches!(
            open_beneath(&root, "a/../../outside.txt"),
            Err(BeneathError::Escapes)
        ));
        assert!(matches!(
            open_beneath(&root, "/etc/passwd"),
            Err(BeneathError::Escapes)
        ));
    }

    #[test]
    fn absolute_symlinks_escape_even_to_inside_targets() {
        let (tmp, root) = layout();
        symlink(tmp.path().join("outside.txt"), root.join("abs-out")).unwrap();
        symlink(root.join("top.txt"), root.join("abs-in")).unwrap();
        symlink("/nonexistent/x", root.join("abs-missing")).unwrap();
        for link in ["abs-out", "abs-in", "abs-missing"] {
            assert!(
                matches!(open_beneath(&root, link), Err(BeneathError::Escapes)),
                "{link}"
            );
        }
    }

    #[test]
    fn relative_symlinks_climbing_out_escape() {
        let (_tmp, root) = layout();
        symlink("../outside.txt", root.join("rel-out")).unwrap();
        symlink("../../missing", root.join("a/rel-missing")).unwrap();
        assert!(matches!(
            open_beneath(&root, "rel-out"),
            Err(BeneathError::Escapes)
        ));
        assert!(matches!(
            open_beneath(&root, "a/rel-missing"),
            Err(BeneathError::Escapes)
        ));
    }

    #[test]
    fn relative_symlinks_staying_inside_are_followed() {
        let (_tmp, root) = layout();
        symlink("../top.txt", root.join("a/up")).unwrap();
        symlink("a/b.txt", root.join("down")).unwrap();
        symlink("a", root.join("dir-link")).unwrap();
        assert_eq!(read(&root, "a/up").unwrap(), "top");
        assert_eq!(read(&root, "down").unwrap(), "b");
        assert_eq!(read(&root, "dir-link/b.txt").unwrap(), "b");
    }

    #[test]
    fn link_loops_escape() {
        let (_tmp, root) = layout();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        assert!(matches!(
            open_beneath(&root, "loop1"),
            Err(BeneathError::Escapes)
        ));
    }

    #[test]
    fn missing_files_directories_and_fifos_are_unreadable() {
        let (_tmp, root) = layout();
        assert!(matches!(
            open_beneath(&root, "missing.txt"),
            Err(BeneathError::Unreadable)
        ));
        assert!(matches!(
            open_beneath(&root, "top.txt/x"),
            Err(BeneathError::Unreadable)
        ));
        assert!(matches!(
            open_beneath(&root, "a"),
            Err(BeneathError::Unreadable)
        ));
        assert!(matches!(
            open_beneath(&root, ""),
            Err(BeneathError::Unreadable)
        ));
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            root.join("fifo"),
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        // O_NONBLOCK: opening a FIFO without a writer returns at once.
        assert!(matches!(
            open_beneath(&root, "fifo"),
            Err(BeneathError::Unreadable)
        ));
        assert!(matches!(
            open_beneath(&root.join("missing-root"), "x"),
            Err(BeneathError::Unreadable)
        ));
        assert!(matches!(
            open_beneath(&root.join("top.txt"), "x"),
            Err(BeneathError::Unreadable)
        ));
    }
}
