//! stub

/// stub
pub struct LocalArtifactStore;
