//! The capabilities the actions need, as traits. Each has a `memory`
//! implementation for tests and a `file` one for local runs; the AWS issue
//! adds DynamoDB/S3 implementations behind the same traits.

use async_trait::async_trait;
use std::fs::File;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::location::Root;
use crate::domain::release::{ActivationEvent, ReleaseListKey, ReleaseRecord};
use crate::domain::worker::{WorkerEntry, WorkerEvent};
use crate::error::StoreError;

/// Outcome of a create-if-absent of a release record.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created,
    /// A record with this `releaseVersion` already exists; here it is.
    Exists(Box<ReleaseRecord>),
}

/// Outcome of appending an activation event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended,
    /// Another writer took this `seq` first.
    SeqTaken,
    /// The release the event names does not exist.
    ReleaseMissing,
}

/// Immutable release records and append-only activation events per
/// `(tenantId, pipelineId)` (`RELEASES.md` §5). All reads are strongly consistent.
#[async_trait]
pub trait ReleaseRegistry: Send + Sync {
    /// Create-if-absent on `releaseVersion`.
    async fn create_release(&self, record: &ReleaseRecord) -> Result<CreateOutcome, StoreError>;
    async fn get_release(
        &self,
        tenant: &str,
        pipeline: &str,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError>;
    /// Records ordered by (`createdAtEpochMs`, `releaseVersion`), strictly
    /// after `after`, at most `limit` of them.
    async fn list_releases(
        &self,
        tenant: &str,
        pipeline: &str,
        after: Option<&ReleaseListKey>,
        limit: usize,
    ) -> Result<Vec<ReleaseRecord>, StoreError>;
    /// The event with the highest `seq`.
    async fn latest_event(
        &self,
        tenant: &str,
        pipeline: &str,
    ) -> Result<Option<ActivationEvent>, StoreError>;
    /// Atomically: create-if-absent on `seq`, and require the named release.
    async fn append_event(
        &self,
        tenant: &str,
        pipeline: &str,
        event: &ActivationEvent,
    ) -> Result<AppendOutcome, StoreError>;
    /// Events ordered by `seq`, strictly after `after_seq`, at most `limit`.
    async fn list_events(
        &self,
        tenant: &str,
        pipeline: &str,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ActivationEvent>, StoreError>;
}

/// Where a stored artifact lives and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Managed URI (`file://…`, `s3://…`).
    pub uri: String,
    pub size_bytes: u64,
    /// `sha256:<hex>` of the stored bytes.
    pub checksum: String,
}

/// Result of checking a stored artifact against its record (`RELEASES.md` §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Verified,
    /// The reason: `missing or unreadable`, `size differs`,
    /// `checksum differs` or `artifact store changed`.
    Failed(&'static str),
}

/// Failure to store an artifact.
#[derive(Debug, thiserror::Error)]
pub enum StoreArtifactError {
    /// An object already stored under this content address has other bytes (409).
    #[error("the stored copy is corrupt: {0}")]
    ExistingCorrupt(&'static str),
    /// The source's bytes are not the ones checked before (they changed meanwhile).
    #[error("artifact changed while it was being registered")]
    SourceChanged,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Content-addressed artifact store: create-if-absent, never overwrite,
/// never delete (`RELEASES.md` §4).
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Stores the bytes of `source` (read from its start) under
    /// `<hex><ext>`, where `hex` is the already-computed SHA-256 of those
    /// bytes. An existing object is verified and reused.
    async fn store(
        &self,
        source: File,
        hex: &str,
        ext: &str,
        size_bytes: u64,
    ) -> Result<StoredObject, StoreArtifactError>;
    /// The managed URI an object `<hex><ext>` gets (deterministic; used to
    /// bound the record's size before anything is stored).
    fn managed_uri(&self, hex: &str, ext: &str) -> String;
    /// Checks the object behind `uri` against size and checksum.
    async fn verify(
        &self,
        uri: &str,
        size_bytes: u64,
        checksum: &str,
    ) -> Result<Verification, StoreError>;
}

/// Why a location beneath a registration root could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenLocationError {
    /// Resolution leaves the root (absolute link, `..` above it, too many links).
    #[error("location resolves outside its root")]
    Escapes,
    /// Missing, not a regular file/object, or unreadable.
    #[error("location is missing or unreadable")]
    Unreadable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens descriptor and artifact locations beneath registration roots
/// (`RELEASES.md` §3.1.2): local roots through `openat2`, S3 roots (later)
/// by spooling the object to ephemeral storage.
#[async_trait]
pub trait LocationReader: Send + Sync {
    /// Opens `rest` beneath `root` for reading; returns the handle and the
    /// size the handle reports (`stat` / `ContentLength`).
    async fn open(&self, root: &Root, rest: &str) -> Result<(File, u64), OpenLocationError>;
}

/// Outcome of a conditional write of a worker entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerWrite {
    Written,
    /// The entry's `stateVersion` was not the expected one (lost race).
    Conflict,
}

/// Current-state entries and append-only audit events of workers
/// (`RELEASES.md` §6.6). Reads are strongly consistent.
#[async_trait]
pub trait WorkerRegistry: Send + Sync {
    async fn get_worker(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Option<WorkerEntry>, StoreError>;
    /// Writes `entry` if the stored `stateVersion` equals `expected_version`
    /// (`None`: create-if-absent). With `event` (register, drain) the event
    /// is written atomically with the entry; without (heartbeat) the entry
    /// alone is updated.
    async fn write_worker(
        &self,
        entry: &WorkerEntry,
        expected_version: Option<u64>,
        event: Option<&WorkerEvent>,
    ) -> Result<WorkerWrite, StoreError>;
    /// Entries ordered by `workerId` (byte order), strictly after
    /// `after_worker`, at most `limit`.
    async fn list_workers(
        &self,
        tenant: &str,
        pipeline: &str,
        after_worker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkerEntry>, StoreError>;
    /// The audit log of one worker, oldest first.
    async fn worker_events(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Vec<WorkerEvent>, StoreError>;
}

/// The acting function's clock, injectable so tests control time.
pub trait Clock: Send + Sync {
    /// Now, in epoch milliseconds.
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock tests set and advance by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self(AtomicI64::new(now_ms))
    }
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Resolves a secret reference (`env:`, `ssm:`, `secretsmanager:`).
#[async_trait]
pub trait SecretResolver: Send + Sync {
    /// The secret's value, or `None` when it cannot be resolved now.
    async fn resolve(&self, reference: &crate::config::SecretRef) -> Option<String>;
}
