//! stub

/// stub
pub struct MemoryWorkerRegistry;
