//! The `sqs` work queue and dead-letter sink against moto (EXECUTION.md
//! §9.1–§9.2, PROTO-04, FAIL-10 `sqs`).

use crate::support::moto;

use tpf_core::ports::{DeadLetterSink, WorkItem, WorkQueue};
use tpf_core::providers::sqs::{SqsDeadLetterSink, SqsWorkQueue};

async fn queue() -> (aws_sdk_sqs::Client, String) {
    let client = aws_sdk_sqs::Client::new(&moto::sdk_config().await);
    let url = client
        .create_queue()
        .queue_name(moto::unique("work"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (client, url)
}

async fn receive(client: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let out = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    out.messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect()
}

#[tokio::test]
async fn proto04_immediate_items_arrive_at_once_and_delayed_ones_later() {
    let (client, url) = queue().await;
    let q = SqsWorkQueue::new(client.clone(), url.clone());
    let now = WorkItem {
        tenant_id: "acme".into(),
        execution_id: "e-now".into(),
    };
    let later = WorkItem {
        tenant_id: "acme".into(),
        execution_id: "e-later".into(),
    };
    q.enqueue(&now, 0).await.unwrap();
    q.enqueue(&later, 1_500).await.unwrap(); // DelaySeconds 2
    let bodies = receive(&client, &url).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let item: WorkItem = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(item, now, "the body is exactly the work item");
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    let bodies = receive(&client, &url).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(serde_json::from_str::<WorkItem>(&bodies[0]).unwrap(), later);
}

#[tokio::test]
async fn fail10_sqs_sink_sends_one_message_with_the_envelope() {
    let (client, url) = queue().await;
    let sink = SqsDeadLetterSink::new(client.clone(), url.clone());
    let letter: tpf_core::domain::dead_letter::DeadLetter = serde_json::from_value(serde_json::json!({
        "tenantId": "acme", "executionId": "e1", "executionKey": "k", "correlationId": "k", "transitionKey": "e1:0:0",
        "resourceType": "tpf.orchestrator.execution", "resourceName": "OrchestratorService/Run", "transport": "REST",
        "platform": "UNKNOWN", "terminalStatus": "FAILED", "terminalReason": "non_retryable", "errorCode": "NonRetryableException",
        "errorMessage": "m", "retryable": false, "retriesObserved": 0, "createdAtEpochMs": 1
    }))
    .unwrap();
    sink.publish(&letter).await.unwrap();
    let bodies = receive(&client, &url).await;
    assert_eq!(bodies.len(), 1);
    let got: tpf_core::domain::dead_letter::DeadLetter = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(got, letter);
}

#[tokio::test]
async fn an_unreachable_queue_is_an_outage() {
    let (client, _) = queue().await;
    let q = SqsWorkQueue::new(client, "http://127.0.0.1:1/000000000000/missing".into());
    let item = WorkItem {
        tenant_id: "acme".into(),
        execution_id: "e".into(),
    };
    assert!(matches!(
        q.enqueue(&item, 0).await,
        Err(tpf_core::error::StoreError::Unavailable(_))
    ));
}
