//! stub

/// stub
pub struct FileReleaseRegistry;
