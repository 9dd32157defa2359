//! Registry decorators that run one port call at a time, for the `dynamo`
//! providers on moto.
//!
//! Why: DynamoDB applies each request atomically; `moto_server` does not
//! when requests arrive concurrently. It serves each on its own thread
//! without locking, so a condition can be checked and then overtaken, and a
//! cancelled `TransactWriteItems` rolls back by restoring a copy of the
//! whole table taken when it started — erasing writes other requests made
//! meanwhile (`moto/dynamodb/models/__init__.py::transact_write_items`). A
//! concurrent test then "loses" updates DynamoDB would keep.
//!
//! Each provider call here issues one request (two only on the rare
//! fallback paths), so serialising calls gives moto DynamoDB's per-request
//! atomicity while keeping the races the tests are about: tasks still
//! interleave between their reads and their conditional writes, and only
//! the DynamoDB conditions decide who wins.
#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use tpf_core::domain::release::{ActivationEvent, ReleaseListKey, ReleaseRecord};
use tpf_core::domain::worker::{WorkerEntry, WorkerEvent};
use tpf_core::error::StoreError;
use tpf_core::ports::{AppendOutcome, CreateOutcome, ReleaseRegistry, WorkerRegistry, WorkerWrite};

/// A release registry whose calls run one at a time.
pub struct SerializedReleases {
    inner: Arc<dyn ReleaseRegistry>,
    lock: Mutex<()>,
}

impl SerializedReleases {
    pub fn new(inner: impl ReleaseRegistry + 'static) -> Self {
        Self {
            inner: Arc::new(inner),
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl ReleaseRegistry for SerializedReleases {
    async fn create_release(&self, record: &ReleaseRecord) -> Result<CreateOutcome, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.create_release(record).await
    }
    async fn get_release(
        &self,
        tenant: &str,
        pipeline: &str,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.get_release(tenant, pipeline, version).await
    }
    async fn list_releases(
        &self,
        tenant: &str,
        pipeline: &str,
        after: Option<&ReleaseListKey>,
        limit: usize,
    ) -> Result<Vec<ReleaseRecord>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .list_releases(tenant, pipeline, after, limit)
            .await
    }
    async fn latest_event(
        &self,
        tenant: &str,
        pipeline: &str,
    ) -> Result<Option<ActivationEvent>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.latest_event(tenant, pipeline).await
    }
    async fn append_event(
        &self,
        tenant: &str,
        pipeline: &str,
        event: &ActivationEvent,
    ) -> Result<AppendOutcome, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.append_event(tenant, pipeline, event).await
    }
    async fn list_events(
        &self,
        tenant: &str,
        pipeline: &str,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ActivationEvent>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .list_events(tenant, pipeline, after_seq, limit)
            .await
    }
}

/// A worker registry whose calls run one at a time.
pub struct SerializedWorkers {
    inner: Arc<dyn WorkerRegistry>,
    lock: Mutex<()>,
}

impl SerializedWorkers {
    pub fn new(inner: impl WorkerRegistry + 'static) -> Self {
        Self {
            inner: Arc::new(inner),
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl WorkerRegistry for SerializedWorkers {
    async fn get_worker(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Option<WorkerEntry>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.get_worker(tenant, pipeline, worker).await
    }
    async fn write_worker(
        &self,
        entry: &WorkerEntry,
        expected_version: Option<u64>,
        event: Option<&WorkerEvent>,
    ) -> Result<WorkerWrite, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .write_worker(entry, expected_version, event)
            .await
    }
    async fn list_workers(
        &self,
        tenant: &str,
        pipeline: &str,
        after_worker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkerEntry>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .list_workers(tenant, pipeline, after_worker, limit)
            .await
    }
    async fn worker_events(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Vec<WorkerEvent>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.worker_events(tenant, pipeline, worker).await
    }
}
