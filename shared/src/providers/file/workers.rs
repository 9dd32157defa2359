//! stub

/// stub
pub struct FileWorkerRegistry;
