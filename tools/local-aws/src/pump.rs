//! Plays, against `cargo lambda watch`, the two AWS services that call the
//! non-HTTP functions: Lambda's SQS event source mapping (receive a batch,
//! invoke the function with an `SqsEvent`, delete what it did not report in
//! `batchItemFailures`, leave the rest to the visibility timeout) and the
//! EventBridge schedule (invoke with a `Scheduled Event` at the template's
//! rate). Invocations go through the Lambda Invoke API that `cargo lambda
//! watch` serves at `/2015-03-31/functions/<name>/invocations`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{json, Value};
use std::time::Duration;

/// An invocation or queue call that failed; the pump logs it and goes on.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("invoke {function}: {message}")]
    Invoke { function: String, message: String },
    #[error("sqs: {0}")]
    Sqs(String),
}

/// Calls functions through the Lambda Invoke API of `cargo lambda watch`.
#[derive(Clone)]
pub struct Invoker {
    http: reqwest::Client,
    base: String,
}

impl Invoker {
    /// `base` is the emulator's address, e.g. `http://127.0.0.1:9000`. The
    /// timeout covers the first invocation, when `cargo lambda watch` may
    /// still be compiling the function.
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(900))
                .build()
                .expect("HTTP client"),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// Invokes `function` with `payload`; the function's response, or an
    /// error for a transport failure, a non-2xx answer or a function error.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, PumpError> {
        let failed = |message: String| PumpError::Invoke {
            function: function.to_string(),
            message,
        };
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.base);
        let response = self
            .http
            .post(&url)
            .json(payload)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body: Value = response
            .json()
            .await
            .map_err(|e| failed(format!("response is not JSON: {e}")))?;
        if !status.is_success() || function_error || body.get("errorType").is_some() {
            return Err(failed(format!("HTTP {status}: {body}")));
        }
        Ok(body)
    }
}

/// One SQS event source mapping: `queue_url` feeds `function` in batches of
/// `batch_size` (at most 10, as a ReceiveMessage call allows).
pub struct QueueSource {
    pub function: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    pub region: String,
}

impl QueueSource {
    /// Receives one batch (long poll of `wait_s` seconds), invokes the
    /// function and deletes the messages it processed. Returns how many
    /// messages were delivered.
    pub async fn poll_once(
        &self,
        sqs: &aws_sdk_sqs::Client,
        invoker: &Invoker,
        wait_s: i32,
    ) -> Result<usize, PumpError> {
        let received = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| PumpError::Sqs(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let mut event = SqsEvent::default();
        for m in &messages {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id.clone();
            record.receipt_handle = m.receipt_handle.clone();
            record.body = m.body.clone();
            record.md5_of_body = m.md5_of_body.clone();
            record.attributes = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect();
            record.event_source = Some("aws:sqs".to_string());
            record.event_source_arn = Some(self.queue_arn.clone());
            record.aws_region = Some(self.region.clone());
            event.records.push(record);
        }
        let payload = serde_json::to_value(&event).expect("SqsEvent serialises");
        let response = invoker.invoke(&self.function, &payload).await?;
        let response: SqsBatchResponse = serde_json::from_value(response).unwrap_or_default();
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<_> = messages
            .iter()
            .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            sqs.delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| {
                    PumpError::Sqs(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                })?;
        }
        if !failed.is_empty() {
            tracing::warn!(function = %self.function, failed = failed.len(), "batch items reported failed; left for redelivery");
        }
        Ok(messages.len())
    }

    /// Polls forever; errors are logged and retried after a pause.
    pub async fn run(self, sqs: aws_sdk_sqs::Client, invoker: Invoker) {
        loop {
            match self.poll_once(&sqs, &invoker, 2).await {
                Ok(n) if n > 0 => {
                    tracing::info!(function = %self.function, messages = n, "delivered")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "queue source");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The `Scheduled Event` EventBridge sends to a schedule's target.
pub fn scheduled_event(region: &str, account: &str) -> Value {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    json!({
        "version": "0",
        "id": format!("local-{now_ms}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": aws_sdk_sqs::primitives::DateTime::from_millis(now_ms)
            .fmt(aws_sdk_sqs::primitives::DateTimeFormat::DateTime)
            .unwrap_or_default(),
        "region": region,
        "resources": [],
        "detail": {}
    })
}

/// Invokes `function` with a scheduled event every `every`, forever.
pub async fn run_schedule(
    invoker: Invoker,
    function: String,
    every: Duration,
    region: String,
    account: String,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match invoker
            .invoke(&function, &scheduled_event(&region, &account))
            .await
        {
            Ok(summary) => tracing::info!(function = %function, %summary, "scheduled invocation"),
            Err(e) => tracing::warn!(error = %e, "scheduled invocation"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_event_has_the_eventbridge_shape() {
        let e = scheduled_event("eu-west-1", "123456789012");
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["source"], "aws.events");
        assert_eq!(e["region"], "eu-west-1");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
}
