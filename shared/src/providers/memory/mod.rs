//! `memory` providers: maps behind one mutex, per process. For tests only.

mod artifacts;
pub(crate) mod awaits;
pub(crate) mod executions;
mod releases;
mod workers;

pub use artifacts::MemoryArtifactStore;
pub use awaits::MemoryAwaitStore;
pub use executions::MemoryExecutionStore;
pub use releases::MemoryReleaseRegistry;
pub use workers::MemoryWorkerRegistry;
