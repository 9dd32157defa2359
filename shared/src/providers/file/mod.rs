//! `file` providers: the local default, safe with several processes at
//! once (`cargo lambda watch` runs each function as its own process).
//!
//! Records are written to a `.tmp-<uuid>` file in the target directory and
//! linked (create-if-absent) or renamed (replace) into place; the worker
//! registry serialises its read-modify-write under an exclusive `flock`.

mod artifacts;
mod awaits;
pub mod beneath;
mod executions;
mod fsutil;
mod locations;
mod releases;
mod workers;

pub use artifacts::LocalArtifactStore;
pub use awaits::FileAwaitStore;
pub use executions::FileExecutionStore;
pub use locations::LocalLocationReader;
pub use releases::FileReleaseRegistry;
pub use workers::FileWorkerRegistry;
