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
/// (`RELEASES.md` §3.1.2): local roots through `openat2`, S3 roots by
/// spooling the object to ephemeral storage.
#[async_trait]
pub trait LocationReader: Send + Sync {
    /// Opens `rest` beneath `root` for reading; returns the handle and the
    /// size the handle reports (`stat` / `ContentLength`). An object larger
    /// than `max_bytes` is reported with its size but not read (the caller
    /// refuses it "unread").
    async fn open(
        &self,
        root: &Root,
        rest: &str,
        max_bytes: u64,
    ) -> Result<(File, u64), OpenLocationError>;
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

/// Why a capabilities probe got no valid answer (`RELEASES.md` §6.1).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Connect failure, timeout, non-2xx, malformed JSON: 503 `WORKER_UNREACHABLE`.
    #[error("worker unreachable: {0}")]
    Unreachable(String),
    /// The worker shared secret cannot be resolved: 503 `DEPENDENCY_UNAVAILABLE`.
    #[error("worker shared secret unavailable")]
    SecretUnavailable,
}

/// Calls workers over their protocol (`EXECUTION.md` §7): REST today,
/// Lambda invoke later. Implementations sign every call.
#[async_trait]
pub trait WorkerTransport: Send + Sync {
    /// One execute call at `endpoint`; the valid result envelope, or the
    /// classified failure of §3.7/§7.7.
    async fn execute(
        &self,
        endpoint: &str,
        command: &crate::domain::worker_protocol::TransitionCommand,
    ) -> Result<
        crate::domain::worker_protocol::TransitionResult,
        crate::domain::worker_protocol::TransitionFailure,
    >;
    /// The signed capabilities probe of §7.8 (5 s request timeout).
    async fn capabilities(
        &self,
        endpoint: &str,
    ) -> Result<crate::domain::worker_protocol::WorkerCapabilities, ProbeError>;
}

/// Outcome of a conditional write of an execution or await record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Written,
    /// The condition failed (another writer won, or the record is gone/expired).
    Lost,
}

/// Outcome of T1 (create an execution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateExecution {
    Created,
    /// A live key entry (pointing to a live execution) already holds the key.
    KeyTaken(crate::domain::execution::KeyEntry),
    /// An execution with this id exists (an id collision).
    IdTaken,
}

/// A record read by [`ExecutionStore::get_for_dispatch`].
#[derive(Debug, Clone)]
pub struct DispatchRecord {
    /// The record. With `unreadable_payload` set, its `input_payload` is
    /// `null` and its `result_payload` `None`; neither is ever written back
    /// (the changes of T2–T9 keep the stored input, and a claimable record
    /// has no result).
    pub record: crate::domain::execution::ExecutionRecord,
    /// Why the stored input or result cannot be read (the message of the
    /// [`StoreError::PayloadUnavailable`] that `get` would return).
    pub unreadable_payload: Option<String>,
}

/// Filters of the execution list (`API.md` §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFilter {
    pub status: Option<crate::domain::execution::ExecutionStatus>,
    pub pipeline_id: Option<String>,
}

/// Executions, their key entries and history (`EXECUTION.md` §3, §10.2).
/// Every write is conditional; expired records (`ttlEpochS ≤ now/1000`) are
/// invisible to every read and write.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// T1: create `record` with its `SUBMITTED` event and, when `key` is
    /// given, the key entry, atomically. The key is free when absent or
    /// pointing to a missing or expired execution.
    async fn create(
        &self,
        record: &crate::domain::execution::ExecutionRecord,
        event: &crate::domain::execution::HistoryEvent,
        key: Option<&crate::domain::execution::KeyEntry>,
        now_ms: i64,
    ) -> Result<CreateExecution, StoreError>;
    /// Strongly consistent read; `None` when missing or expired.
    async fn get(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<crate::domain::execution::ExecutionRecord>, StoreError>;
    /// [`ExecutionStore::get`] without the payload texts, for a change that
    /// needs only the record's state and writes no payload (the parent
    /// follow-up of an interaction, T7/T8 of `EXECUTION.md` §8.6): the
    /// `input` payload is the JSON `null` and the result absent. A store
    /// that keeps payloads apart saves their reads (`dynamo`: one
    /// `GetItem` per follow-up instead of two); the default, for the stores
    /// that keep them inside the record, is `get`.
    async fn get_state(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<crate::domain::execution::ExecutionRecord>, StoreError> {
        self.get(tenant, execution_id, now_ms).await
    }
    /// [`ExecutionStore::get`] for the dispatcher (`EXECUTION.md` §5.2): a
    /// record whose stored payloads cannot be read
    /// ([`StoreError::PayloadUnavailable`]) is still returned, so the claim
    /// and the `PAYLOAD_UNAVAILABLE` failure (§3.7) can be committed on it.
    /// Every other error fails the read as in `get`. The default suits the
    /// stores that keep payloads inside the record (they never meet such a
    /// payload) and decorators, which then behave as their `get`.
    async fn get_for_dispatch(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<DispatchRecord>, StoreError> {
        Ok(self
            .get(tenant, execution_id, now_ms)
            .await?
            .map(|record| DispatchRecord {
                record,
                unreadable_payload: None,
            }))
    }
    /// The live key entry of `execution_key` whose execution is live.
    async fn get_key(
        &self,
        tenant: &str,
        execution_key: &str,
        now_ms: i64,
    ) -> Result<Option<crate::domain::execution::KeyEntry>, StoreError>;
    /// T2–T9: replaces the record with `next` if the stored version is still
    /// `expected_version` and the record is live, appending `event` (whose
    /// version is `next.version`) atomically. When `next.ttl_epoch_s` grew,
    /// the key entry's TTL grows with it (written first).
    async fn update(
        &self,
        next: &crate::domain::execution::ExecutionRecord,
        expected_version: u64,
        event: &crate::domain::execution::HistoryEvent,
        now_ms: i64,
    ) -> Result<Write, StoreError>;
    /// History oldest first, versions strictly after `after_version`, at most
    /// `limit`; `None` when the execution is missing or expired.
    async fn history(
        &self,
        tenant: &str,
        execution_id: &str,
        after_version: Option<u64>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Option<Vec<crate::domain::execution::HistoryEvent>>, StoreError>;
    /// Live executions of `tenant`, newest first (`createdAtEpochMs`, then
    /// `executionId`, both descending), strictly after `after`, filtered, at most `limit`.
    async fn list(
        &self,
        tenant: &str,
        filter: &ExecutionFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<crate::domain::execution::ExecutionRecord>, StoreError>;
    /// Claimable executions of every tenant (T2's guard at `now`), ordered by
    /// (`nextDueEpochMs`, `tenantId`, `executionId`), at most `limit`: (tenant, id).
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
}

/// Outcome of importing a suspension (`EXECUTION.md` §8.3).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a rare, short-lived return value
pub enum ImportOutcome {
    /// Interaction, correlation entry and unit were created.
    Imported,
    /// A live unit of the same execution and step existed: it and its
    /// primary interaction are used instead of the snapshot.
    Existing(
        crate::domain::awaits::AwaitUnit,
        Box<crate::domain::awaits::AwaitInteraction>,
    ),
    /// The unit belongs to another execution, or the correlation id maps to
    /// another interaction: `AWAIT_SUSPENSION_INVALID` with this reason.
    Conflict(String),
}

/// Filters of the pending list (`API.md` §2.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingFilter {
    pub step_id: Option<String>,
    pub assignee: Option<String>,
    pub group: Option<String>,
}

/// Await units, interactions and correlation entries (`EXECUTION.md` §8).
#[async_trait]
pub trait AwaitStore: Send + Sync {
    async fn get_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        now_ms: i64,
    ) -> Result<Option<crate::domain::awaits::AwaitUnit>, StoreError>;
    async fn get_interaction(
        &self,
        tenant: &str,
        interaction_id: &str,
        now_ms: i64,
    ) -> Result<Option<crate::domain::awaits::AwaitInteraction>, StoreError>;
    /// Resolves the correlation entry, then reads the interaction.
    async fn get_by_correlation(
        &self,
        tenant: &str,
        correlation_id: &str,
        now_ms: i64,
    ) -> Result<Option<crate::domain::awaits::AwaitInteraction>, StoreError>;
    /// §8.3: read the unit (rule 1); else create-if-absent the interaction,
    /// its correlation entry, then the unit, in that order.
    async fn import(
        &self,
        unit: &crate::domain::awaits::AwaitUnit,
        interaction: &crate::domain::awaits::AwaitInteraction,
        now_ms: i64,
    ) -> Result<ImportOutcome, StoreError>;
    /// Complete or time out: replaces the interaction with `next` if the
    /// stored version is `expected_version`, its status is open and it is live.
    async fn update_interaction(
        &self,
        next: &crate::domain::awaits::AwaitInteraction,
        expected_version: i64,
        now_ms: i64,
    ) -> Result<Write, StoreError>;
    /// Settle (`None`) or re-check later (`Some(due)`): sets
    /// `settleDueEpochMs` if the status is still `expected_status`; `version`
    /// and `updatedAtEpochMs` unchanged.
    async fn set_settle_due(
        &self,
        tenant: &str,
        interaction_id: &str,
        expected_status: &str,
        settle_due_epoch_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Write, StoreError>;
    /// Unit `WAITING_EXTERNAL` → `status` (version + 1); `Lost` when the
    /// unit is already terminal, missing or expired (never overwritten).
    async fn finish_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<Write, StoreError>;
    /// Open, live interactions of `tenant` matching `filter`, ordered by
    /// (`deadlineEpochMs`, `interactionId`), strictly after `after`, at most `limit`.
    async fn pending(
        &self,
        tenant: &str,
        filter: &PendingFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<crate::domain::awaits::AwaitInteraction>, StoreError>;
    /// Live interactions of every tenant with `settleDueEpochMs ≤ now`,
    /// ordered by (`settleDueEpochMs`, `tenantId`, `interactionId`), at most `limit`.
    async fn settle_due(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError>;
}

/// A work item: the record is the source of truth (`EXECUTION.md` §9.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkItem {
    pub tenant_id: String,
    pub execution_id: String,
}

/// The work queue (`EXECUTION.md` §9.1): at-least-once, unordered.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Delivers `item` after `delay_ms` (0 = now).
    async fn enqueue(&self, item: &WorkItem, delay_ms: u64) -> Result<(), StoreError>;
}

/// Where terminal failures are published (`EXECUTION.md` §3.8, §9.2).
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    async fn publish(
        &self,
        envelope: &crate::domain::dead_letter::DeadLetter,
    ) -> Result<(), StoreError>;
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
