//! SQS providers (`EXECUTION.md` §9.1–§9.2): the work queue (one
//! `SendMessage` per item, `DelaySeconds` rounded up and capped at 900 — a
//! longer delay is completed by the dispatcher's early-message rule and the
//! sweep) and the `sqs` dead-letter sink.

use async_trait::async_trait;

use crate::domain::dead_letter::DeadLetter;
use crate::error::StoreError;
use crate::ports::{DeadLetterSink, WorkItem, WorkQueue};

/// `DelaySeconds` for a delay of `ms`: 0 for now, else min(900, ⌈ms/1000⌉).
pub fn delay_seconds(ms: u64) -> i32 {
    ms.div_ceil(1000).min(900) as i32
}

fn outage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("sqs: {e}"))
}

/// The work queue on a standard SQS queue.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsWorkQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    async fn enqueue(&self, item: &WorkItem, delay_ms: u64) -> Result<(), StoreError> {
        let body = serde_json::to_string(item).map_err(outage)?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay_seconds(delay_ms))
            .send()
            .await
            .map_err(|e| outage(aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}

/// The `sqs` dead-letter sink: the envelope JSON as the message body.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetterSink {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

#[async_trait]
impl DeadLetterSink for SqsDeadLetterSink {
    async fn publish(&self, envelope: &DeadLetter) -> Result<(), StoreError> {
        let body = serde_json::to_string(envelope).map_err(outage)?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| outage(aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto04_delay_seconds_round_up_and_cap_at_900() {
        assert_eq!(delay_seconds(0), 0);
        assert_eq!(delay_seconds(1), 1);
        assert_eq!(delay_seconds(1000), 1);
        assert_eq!(delay_seconds(1001), 2);
        assert_eq!(delay_seconds(10_000), 10);
        assert_eq!(delay_seconds(900_000), 900);
        assert_eq!(delay_seconds(1_800_000), 900);
    }
}
