//! stub

/// stub
pub struct MemoryReleaseRegistry;
