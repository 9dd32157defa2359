//! The dispatcher and sweeper entry points as AWS would drive them: SQS
//! events built from work items (partial batch failures) and schedule ticks.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use std::sync::Arc;
use tpf_core::domain::execution::ExecutionStatus;
use tpf_core::lambda_events::{dispatch_batch, sweep_tick};
use tpf_core::ports::WorkItem;
use tpf_tests::*;

fn message(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_string());
    m.body = Some(body.to_string());
    m
}

fn event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = messages;
    e
}

#[tokio::test]
async fn a_batch_processes_every_message_and_reports_only_outages() {
    let h = Harness::new(Options::default()).await;
    let id = h.submit(submit_body("Ada Lovelace", None)).await.ok()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    h.queue.drain();
    let item = serde_json::to_string(&WorkItem {
        tenant_id: TENANT.into(),
        execution_id: id.clone(),
    })
    .unwrap();
    let response = dispatch_batch(
        &h.deps,
        event(vec![
            message("m1", &item),
            message("m2", "not json"),
            message("m3", &item),
        ]),
    )
    .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a malformed message is acknowledged and dropped"
    );
    assert_eq!(h.status(&id).await["status"], "WAITING_EXTERNAL");
    // A store outage: the message is reported for redelivery, the others are not.
    let mut deps = h.deps.clone();
    deps.executions = Arc::new(DownExecutions);
    let response = dispatch_batch(
        &deps,
        event(vec![message("ok", "garbage"), message("down", &item)]),
    )
    .await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec!["down".to_string()]);
}

#[tokio::test]
async fn a_schedule_tick_enqueues_due_executions() {
    let h = Harness::new(Options::default()).await;
    let id = h.submit(submit_body("Ada Lovelace", None)).await.ok()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    h.queue.drain(); // the submit's own enqueue is lost
    let summary = sweep_tick(&h.deps).await;
    assert_eq!(summary.enqueued, 1);
    let items = h.queue.drain();
    assert_eq!(items[0].0.execution_id, id);
    for (item, _) in items {
        assert_eq!(
            h.process(&item).await,
            Processed::Committed(ExecutionStatus::WaitingExternal)
        );
    }
}

/// An execution store that is always down.
struct DownExecutions;

#[async_trait::async_trait]
impl tpf_core::ports::ExecutionStore for DownExecutions {
    async fn create(
        &self,
        _: &tpf_core::domain::execution::ExecutionRecord,
        _: &tpf_core::domain::execution::HistoryEvent,
        _: Option<&tpf_core::domain::execution::KeyEntry>,
        _: i64,
    ) -> Result<tpf_core::ports::CreateExecution, tpf_core::error::StoreError> {
        Err(down())
    }
    async fn get(
        &self,
        _: &str,
        _: &str,
        _: i64,
    ) -> Result<Option<tpf_core::domain::execution::ExecutionRecord>, tpf_core::error::StoreError>
    {
        Err(down())
    }
    async fn get_key(
        &self,
        _: &str,
        _: &str,
        _: i64,
    ) -> Result<Option<tpf_core::domain::execution::KeyEntry>, tpf_core::error::StoreError> {
        Err(down())
    }
    async fn update(
        &self,
        _: &tpf_core::domain::execution::ExecutionRecord,
        _: u64,
        _: &tpf_core::domain::execution::HistoryEvent,
        _: i64,
    ) -> Result<tpf_core::ports::Write, tpf_core::error::StoreError> {
        Err(down())
    }
    async fn history(
        &self,
        _: &str,
        _: &str,
        _: Option<u64>,
        _: usize,
        _: i64,
    ) -> Result<Option<Vec<tpf_core::domain::execution::HistoryEvent>>, tpf_core::error::StoreError>
    {
        Err(down())
    }
    async fn list(
        &self,
        _: &str,
        _: &tpf_core::ports::ExecutionFilter,
        _: Option<(i64, String)>,
        _: usize,
        _: i64,
    ) -> Result<Vec<tpf_core::domain::execution::ExecutionRecord>, tpf_core::error::StoreError>
    {
        Err(down())
    }
    async fn due(
        &self,
        _: i64,
        _: usize,
    ) -> Result<Vec<(String, String)>, tpf_core::error::StoreError> {
        Err(down())
    }
}

fn down() -> tpf_core::error::StoreError {
    tpf_core::error::StoreError::Unavailable("down".into())
}
