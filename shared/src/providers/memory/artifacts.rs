//! stub

/// stub
pub struct MemoryArtifactStore;
