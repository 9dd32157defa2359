//! `memory` providers: maps behind one mutex, per process. For tests only.

mod artifacts;
mod releases;
mod workers;

pub use artifacts::MemoryArtifactStore;
pub use releases::MemoryReleaseRegistry;
pub use workers::MemoryWorkerRegistry;
