//! Opening a location beneath a registration root with Linux `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (`RELEASES.md` §3.1.2), so `..`
//! and symbolic-link escapes are refused by the kernel.

use std::fs::File;
use std::path::Path;

/// Why a location could not be opened.
#[derive(Debug)]
pub enum BeneathError {
    /// Resolution would leave the root (absolute link, `..` above the root,
    /// more than 40 links): `LOCATION_NOT_ALLOWED`.
    Escapes,
    /// Missing, unreadable, or not a regular file: `*_UNREADABLE`.
    Unreadable,
}

/// Opens `rest` (relative segments joined by `/`) beneath the directory
/// `root`, read-only, non-blocking (so a FIFO cannot hang the call), and
/// checks through the same handle that it is a regular file.
pub fn open_beneath(root: &Path, rest: &str) -> Result<File, BeneathError> {
    let _ = (root, rest);
    todo!()
}

/// Start-up probe: Err with a message when the kernel lacks `openat2`.
pub fn check_openat2() -> Result<(), String> {
    todo!()
}
