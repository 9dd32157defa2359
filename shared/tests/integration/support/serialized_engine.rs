//! Execution and await store decorators that run one port call at a time,
//! for the `dynamo` stores on moto (the registry twins are in
//! `serialized.rs`, which explains why: `moto_server` serves concurrent
//! requests without locking, and a cancelled `TransactWriteItems` restores a
//! copy of the whole table, erasing what other requests wrote meanwhile).
//!
//! Serialising whole calls keeps the races the conformance cases are about
//! (tasks still interleave between their reads and their conditional
//! writes, and only the DynamoDB conditions decide who wins); what it gives
//! up is interleaving *inside* one call (e.g. two imports between their
//! interaction and unit writes), which moto cannot run faithfully.
#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use tpf_core::domain::awaits::{AwaitInteraction, AwaitUnit};
use tpf_core::domain::execution::{ExecutionRecord, HistoryEvent, KeyEntry};
use tpf_core::error::StoreError;
use tpf_core::ports::{
    AwaitStore, CreateExecution, ExecutionFilter, ExecutionStore, ImportOutcome, PendingFilter,
    Write,
};

/// An execution store whose calls run one at a time.
pub struct SerializedExecutions {
    inner: Arc<dyn ExecutionStore>,
    lock: Mutex<()>,
}

impl SerializedExecutions {
    pub fn new(inner: impl ExecutionStore + 'static) -> Self {
        Self {
            inner: Arc::new(inner),
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl ExecutionStore for SerializedExecutions {
    async fn create(
        &self,
        record: &ExecutionRecord,
        event: &HistoryEvent,
        key: Option<&KeyEntry>,
        now_ms: i64,
    ) -> Result<CreateExecution, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.create(record, event, key, now_ms).await
    }
    async fn get(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.get(tenant, execution_id, now_ms).await
    }
    async fn get_key(
        &self,
        tenant: &str,
        execution_key: &str,
        now_ms: i64,
    ) -> Result<Option<KeyEntry>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.get_key(tenant, execution_key, now_ms).await
    }
    async fn update(
        &self,
        next: &ExecutionRecord,
        expected_version: u64,
        event: &HistoryEvent,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .update(next, expected_version, event, now_ms)
            .await
    }
    async fn history(
        &self,
        tenant: &str,
        execution_id: &str,
        after_version: Option<u64>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .history(tenant, execution_id, after_version, limit, now_ms)
            .await
    }
    async fn list(
        &self,
        tenant: &str,
        filter: &ExecutionFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.list(tenant, filter, after, limit, now_ms).await
    }
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.due(now_ms, limit).await
    }
}

/// An await store whose calls run one at a time.
pub struct SerializedAwaits {
    inner: Arc<dyn AwaitStore>,
    lock: Mutex<()>,
}

impl SerializedAwaits {
    pub fn new(inner: impl AwaitStore + 'static) -> Self {
        Self {
            inner: Arc::new(inner),
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl AwaitStore for SerializedAwaits {
    async fn get_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitUnit>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.get_unit(tenant, unit_id, now_ms).await
    }
    async fn get_interaction(
        &self,
        tenant: &str,
        interaction_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .get_interaction(tenant, interaction_id, now_ms)
            .await
    }
    async fn get_by_correlation(
        &self,
        tenant: &str,
        correlation_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .get_by_correlation(tenant, correlation_id, now_ms)
            .await
    }
    async fn import(
        &self,
        unit: &AwaitUnit,
        interaction: &AwaitInteraction,
        now_ms: i64,
    ) -> Result<ImportOutcome, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.import(unit, interaction, now_ms).await
    }
    async fn update_interaction(
        &self,
        next: &AwaitInteraction,
        expected_version: i64,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .update_interaction(next, expected_version, now_ms)
            .await
    }
    async fn set_settle_due(
        &self,
        tenant: &str,
        interaction_id: &str,
        expected_status: &str,
        settle_due_epoch_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .set_settle_due(
                tenant,
                interaction_id,
                expected_status,
                settle_due_epoch_ms,
                now_ms,
            )
            .await
    }
    async fn finish_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .finish_unit(tenant, unit_id, status, now_ms)
            .await
    }
    async fn pending(
        &self,
        tenant: &str,
        filter: &PendingFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<AwaitInteraction>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner
            .pending(tenant, filter, after, limit, now_ms)
            .await
    }
    async fn settle_due(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let _one = self.lock.lock().await;
        self.inner.settle_due(now_ms, limit).await
    }
}
