//! The execution record, its state machine and history (`EXECUTION.md`
//! §2–§3): identity rules, the transitions T1–T9 as pure functions that
//! return the next record and its one history event, retry delays, and the
//! status views the API returns.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::domain::values::char_len;

/// `ExecutionStatus` (`API.md` §1.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Queued,
    Running,
    WaitingExternal,
    WaitRetry,
    Succeeded,
    Failed,
    Dlq,
}

impl ExecutionStatus {
    /// `SUCCEEDED`, `FAILED`, `DLQ`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Dlq)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::WaitingExternal => "WAITING_EXTERNAL",
            Self::WaitRetry => "WAIT_RETRY",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Dlq => "DLQ",
        }
    }
    /// Exact spelling only (`API.md` §3.1 `status` filter).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::WaitingExternal,
            Self::WaitRetry,
            Self::Succeeded,
            Self::Failed,
            Self::Dlq,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Result shape of an execution (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResultShape {
    Single,
    MaterializedMulti,
}

impl ResultShape {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "SINGLE",
            Self::MaterializedMulti => "MATERIALIZED_MULTI",
        }
    }

    /// §2: fold over the contract's steps ordered by `index`, from `SINGLE`.
    pub fn from_contract(contract: Option<&Value>) -> Self {
        let mut steps = contract_steps(contract);
        steps.sort_by_key(|(i, _)| *i);
        steps.into_iter().fold(Self::Single, |shape, (_, step)| {
            let card = step
                .get("cardinality")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            match card.as_str() {
                "ONE_TO_MANY" | "MANY_TO_MANY" | "EXPANSION" => Self::MaterializedMulti,
                "MANY_TO_ONE" | "REDUCTION" => Self::Single,
                _ => shape,
            }
        })
    }
}

/// The contract's steps with their `index` (absent `steps` = none).
pub fn contract_steps(contract: Option<&Value>) -> Vec<(u64, &Value)> {
    contract
        .and_then(|c| c.get("steps"))
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|s| Some((s.get("index")?.as_u64()?, s)))
                .collect()
        })
        .unwrap_or_default()
}

/// `inputTypeId` of the step with the lowest index, if any.
pub fn first_input_type(contract: Option<&Value>) -> Option<String> {
    contract_steps(contract)
        .into_iter()
        .min_by_key(|(i, _)| *i)
        .and_then(|(_, s)| {
            s.get("inputTypeId")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

/// §2 execution key for a keyed submission.
pub fn execution_key(pipeline: &str, release: &str, raw_key: &str) -> String {
    format!(
        "{}:{}:{}:{}:executionKey:{}",
        char_len(pipeline),
        pipeline,
        char_len(release),
        release,
        raw_key
    )
}

/// §2 execution key of a key-less submission (no key entry is written).
pub fn keyless_execution_key(pipeline: &str, release: &str, execution_id: &str) -> String {
    format!(
        "{}:{}:{}:{}:execution:{}",
        char_len(pipeline),
        pipeline,
        char_len(release),
        release,
        execution_id
    )
}

/// History event types (`API.md` §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Submitted,
    Claimed,
    WaitingExternal,
    Resumed,
    RetryScheduled,
    Succeeded,
    Failed,
    Redriven,
}

/// One history event, keyed by the version it produced (`API.md` §3.2).
/// Every member is always serialised (null where unset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub at_epoch_ms: i64,
    pub previous_status: Option<ExecutionStatus>,
    pub status: ExecutionStatus,
    pub step_index: u64,
    pub attempt: u64,
    pub transition_key: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub terminal_reason: Option<String>,
    pub next_due_at_epoch_ms: Option<i64>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub lease_owner: Option<String>,
    pub worker_id: Option<String>,
    pub interaction_id: Option<String>,
    pub unit_id: Option<String>,
}

/// The execution record (§3.1). Payloads are raw JSON text: the input
/// snapshot and the worker's output envelopes are stored verbatim.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    pub tenant_id: String,
    pub execution_id: String,
    pub execution_key: String,
    pub input_hash: String,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub result_shape: ResultShape,
    pub status: ExecutionStatus,
    pub version: u64,
    pub current_step_index: u64,
    pub attempt: u64,
    pub lease_owner: Option<String>,
    pub lease_expires_epoch_ms: i64,
    pub next_due_epoch_ms: Option<i64>,
    pub last_transition_key: Option<String>,
    /// The stored snapshot `{"shape","payload","items"}` (§4.5).
    pub input_payload: Box<RawValue>,
    pub await_unit_id: Option<String>,
    pub result_payload: Option<Vec<Box<RawValue>>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at_epoch_ms: i64,
    pub updated_at_epoch_ms: i64,
    /// Epoch **seconds**.
    pub ttl_epoch_s: i64,
}

/// The key entry of a keyed execution (§10.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyEntry {
    pub tenant_id: String,
    pub execution_key: String,
    pub execution_id: String,
    pub input_hash: String,
    pub created_at_epoch_ms: i64,
    pub ttl_epoch_s: i64,
}

/// Largest stored `errorMessage`, in characters.
pub const MAX_ERROR_MESSAGE: usize = 512;
/// Largest stored `errorCode`, in characters.
pub const MAX_ERROR_CODE: usize = 128;

/// Cuts to the first `n` Unicode scalar values.
pub fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// True once `ttl_epoch_s ≤ ⌊now / 1000⌋` (§3.9).
pub fn is_expired(ttl_epoch_s: i64, now_ms: i64) -> bool {
    ttl_epoch_s <= now_ms.div_euclid(1000)
}

impl ExecutionRecord {
    /// Invisible to every read, claim and write once expired.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        is_expired(self.ttl_epoch_s, now_ms)
    }

    /// The claim guard of T2 at `now` (the record must also be live).
    pub fn is_claimable(&self, now_ms: i64) -> bool {
        matches!(
            self.status,
            ExecutionStatus::Queued | ExecutionStatus::WaitRetry | ExecutionStatus::Running
        ) && self.next_due_epoch_ms.is_some_and(|d| d <= now_ms)
            && (self.lease_owner.is_none() || self.lease_expires_epoch_ms <= now_ms)
            && !self.is_expired(now_ms)
    }

    /// `<executionId>:<currentStepIndex>:<attempt>`.
    pub fn transition_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.execution_id, self.current_step_index, self.attempt
        )
    }

    /// The event skeleton of a change from `self` to `next`.
    fn event(&self, next: &ExecutionRecord, event_type: EventType) -> HistoryEvent {
        HistoryEvent {
            version: next.version,
            event_type,
            at_epoch_ms: next.updated_at_epoch_ms,
            previous_status: Some(self.status),
            status: next.status,
            step_index: next.current_step_index,
            attempt: next.attempt,
            transition_key: None,
            error_code: None,
            error_message: None,
            terminal_reason: None,
            next_due_at_epoch_ms: None,
            actor: None,
            reason: None,
            lease_owner: None,
            worker_id: None,
            interaction_id: None,
            unit_id: None,
        }
    }

    fn bumped(&self, now: i64, status: ExecutionStatus) -> ExecutionRecord {
        let mut next = self.clone();
        next.version = self.version + 1;
        next.updated_at_epoch_ms = now;
        next.status = status;
        next
    }

    /// The `SUBMITTED` event of a freshly built record (T1, version 0).
    pub fn submitted_event(&self) -> HistoryEvent {
        let mut e = self.event(self, EventType::Submitted);
        e.previous_status = None;
        e
    }

    /// T2 claim by `owner` for `lease_ms`.
    pub fn claim(&self, now: i64, owner: &str, lease_ms: i64) -> (ExecutionRecord, HistoryEvent) {
        let mut next = self.bumped(now, ExecutionStatus::Running);
        next.lease_owner = Some(owner.to_string());
        next.lease_expires_epoch_ms = now + lease_ms;
        let mut e = self.event(&next, EventType::Claimed);
        e.transition_key = Some(self.transition_key());
        e.lease_owner = Some(owner.to_string());
        (next, e)
    }

    fn clear_lease(next: &mut ExecutionRecord) {
        next.lease_owner = None;
        next.lease_expires_epoch_ms = 0;
    }

    /// T3 succeed with `outputs`.
    pub fn succeed(
        &self,
        now: i64,
        outputs: Vec<Box<RawValue>>,
        worker_id: Option<&str>,
    ) -> (ExecutionRecord, HistoryEvent) {
        let key = self.transition_key();
        let mut next = self.bumped(now, ExecutionStatus::Succeeded);
        next.result_payload = Some(outputs);
        next.last_transition_key = Some(key.clone());
        Self::clear_lease(&mut next);
        next.error_code = None;
        next.error_message = None;
        next.await_unit_id = None;
        next.next_due_epoch_ms = Some(now);
        let mut e = self.event(&next, EventType::Succeeded);
        e.transition_key = Some(key);
        e.worker_id = worker_id.map(str::to_string);
        (next, e)
    }

    /// T4 wait on `unit_id` at `step_index`; the TTL grows to `ttl_epoch_s`.
    pub fn wait(
        &self,
        now: i64,
        step_index: u64,
        unit_id: &str,
        interaction_id: &str,
        ttl_epoch_s: i64,
        worker_id: Option<&str>,
    ) -> (ExecutionRecord, HistoryEvent) {
        let key = self.transition_key();
        let mut next = self.bumped(now, ExecutionStatus::WaitingExternal);
        next.current_step_index = step_index;
        next.await_unit_id = Some(unit_id.to_string());
        next.next_due_epoch_ms = None;
        next.last_transition_key = Some(key.clone());
        Self::clear_lease(&mut next);
        next.result_payload = None;
        next.error_code = None;
        next.error_message = None;
        next.ttl_epoch_s = self.ttl_epoch_s.max(ttl_epoch_s);
        let mut e = self.event(&next, EventType::WaitingExternal);
        e.transition_key = Some(key);
        e.worker_id = worker_id.map(str::to_string);
        e.interaction_id = Some(interaction_id.to_string());
        e.unit_id = Some(unit_id.to_string());
        (next, e)
    }

    /// T5 schedule a retry as `attempt` due at `next_due`.
    pub fn schedule_retry(
        &self,
        now: i64,
        attempt: u64,
        next_due: i64,
        code: &str,
        message: &str,
        worker_id: Option<&str>,
    ) -> (ExecutionRecord, HistoryEvent) {
        let key = self.transition_key();
        let mut next = self.bumped(now, ExecutionStatus::WaitRetry);
        next.attempt = attempt;
        next.next_due_epoch_ms = Some(next_due);
        next.last_transition_key = Some(key.clone());
        next.error_code = Some(cut(code, MAX_ERROR_CODE));
        next.error_message = Some(cut(message, MAX_ERROR_MESSAGE));
        Self::clear_lease(&mut next);
        next.result_payload = None;
        let mut e = self.event(&next, EventType::RetryScheduled);
        e.transition_key = Some(key);
        e.error_code = next.error_code.clone();
        e.error_message = next.error_message.clone();
        e.next_due_at_epoch_ms = Some(next_due);
        e.worker_id = worker_id.map(str::to_string);
        (next, e)
    }

    /// T6 fail terminally with `terminal_reason`.
    pub fn fail(
        &self,
        now: i64,
        code: &str,
        message: &str,
        terminal_reason: &str,
        worker_id: Option<&str>,
    ) -> (ExecutionRecord, HistoryEvent) {
        let key = self.transition_key();
        let mut next = self.bumped(now, ExecutionStatus::Failed);
        next.error_code = Some(cut(code, MAX_ERROR_CODE));
        next.error_message = Some(cut(message, MAX_ERROR_MESSAGE));
        next.last_transition_key = Some(key.clone());
        next.next_due_epoch_ms = Some(now);
        Self::clear_lease(&mut next);
        next.result_payload = None;
        let mut e = self.event(&next, EventType::Failed);
        e.transition_key = Some(key);
        e.error_code = next.error_code.clone();
        e.error_message = next.error_message.clone();
        e.terminal_reason = Some(terminal_reason.to_string());
        e.worker_id = worker_id.map(str::to_string);
        (next, e)
    }

    /// T7 release an await: queued at `step_index + 1`, `awaitUnitId` kept.
    pub fn release_await(
        &self,
        now: i64,
        step_index: u64,
        interaction_id: &str,
        actor: Option<&str>,
    ) -> (ExecutionRecord, HistoryEvent) {
        let mut next = self.bumped(now, ExecutionStatus::Queued);
        next.current_step_index = step_index + 1;
        next.next_due_epoch_ms = Some(now);
        Self::clear_lease(&mut next);
        next.result_payload = None;
        next.error_code = None;
        next.error_message = None;
        let mut e = self.event(&next, EventType::Resumed);
        e.actor = actor.map(str::to_string);
        e.interaction_id = Some(interaction_id.to_string());
        e.unit_id = self.await_unit_id.clone();
        (next, e)
    }

    /// T8 fail an await with `code` (`AWAIT_TIMEOUT`, …).
    pub fn fail_await(
        &self,
        now: i64,
        code: &str,
        message: &str,
        terminal_reason: &str,
        interaction_id: &str,
    ) -> (ExecutionRecord, HistoryEvent) {
        let key = self.transition_key();
        let mut next = self.bumped(now, ExecutionStatus::Failed);
        next.error_code = Some(code.to_string());
        next.error_message = Some(cut(message, MAX_ERROR_MESSAGE));
        next.last_transition_key = Some(key.clone());
        next.next_due_epoch_ms = Some(now);
        Self::clear_lease(&mut next);
        next.result_payload = None;
        let mut e = self.event(&next, EventType::Failed);
        e.transition_key = Some(key);
        e.error_code = next.error_code.clone();
        e.error_message = next.error_message.clone();
        e.terminal_reason = Some(terminal_reason.to_string());
        e.interaction_id = Some(interaction_id.to_string());
        e.unit_id = self.await_unit_id.clone();
        (next, e)
    }

    /// T9 re-drive from `expected_version`.
    pub fn redrive(
        &self,
        now: i64,
        expected_version: u64,
        reason: &str,
        actor: &str,
    ) -> (ExecutionRecord, HistoryEvent) {
        let key = format!("redrive:{}:{}", self.execution_id, expected_version);
        let mut next = self.bumped(now, ExecutionStatus::Queued);
        next.attempt = self.attempt + 1;
        next.next_due_epoch_ms = Some(now);
        next.last_transition_key = Some(key.clone());
        Self::clear_lease(&mut next);
        next.result_payload = None;
        next.error_code = None;
        next.error_message = None;
        let mut e = self.event(&next, EventType::Redriven);
        e.transition_key = Some(key);
        e.actor = Some(actor.to_string());
        e.reason = Some(reason.to_string());
        (next, e)
    }
}

/// Error codes of await failures, which re-drive refuses (T9).
pub const AWAIT_FAILURE_CODES: [&str; 4] = [
    "AWAIT_TIMEOUT",
    "AWAIT_FAILED",
    "AWAIT_CANCELLED",
    "AWAIT_EXPIRED",
];

/// §3.6: `min(base × max(1, multiplier)^(n−1), 30 min)` in ms.
pub fn retry_delay_ms(base_ms: u64, multiplier: f64, n: u64) -> u64 {
    let m = if multiplier.is_finite() {
        multiplier.max(1.0)
    } else {
        1.0
    };
    let exp = n.saturating_sub(1).min(64) as i32;
    let delay = base_ms as f64 * m.powi(exp);
    delay.min(30.0 * 60_000.0) as u64
}

/// `ExecutionStatusDto` (`API.md` §1.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatusDto {
    pub execution_id: String,
    pub status: ExecutionStatus,
    pub step_index: u64,
    pub attempt: u64,
    pub version: u64,
    pub next_due_at_epoch_ms: Option<i64>,
    pub updated_at_epoch_ms: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl From<&ExecutionRecord> for ExecutionStatusDto {
    fn from(r: &ExecutionRecord) -> Self {
        ExecutionStatusDto {
            execution_id: r.execution_id.clone(),
            status: r.status,
            step_index: r.current_step_index,
            attempt: r.attempt,
            version: r.version,
            next_due_at_epoch_ms: if r.status == ExecutionStatus::WaitingExternal {
                None
            } else {
                r.next_due_epoch_ms
            },
            updated_at_epoch_ms: r.updated_at_epoch_ms,
            error_code: r.error_code.clone(),
            error_message: r.error_message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_keys_are_length_prefixed() {
        assert_eq!(
            execution_key("restaurant-approval", "2025.01.0", "order-5b0e2c1a"),
            "19:restaurant-approval:9:2025.01.0:executionKey:order-5b0e2c1a"
        );
        assert_ne!(
            execution_key("a:b", "c", "k"),
            execution_key("a", "b:c", "k")
        );
    }

    #[test]
    fn fail02_retry_delays_double_and_cap_at_30_minutes() {
        assert_eq!(retry_delay_ms(10_000, 2.0, 1), 10_000);
        assert_eq!(retry_delay_ms(10_000, 2.0, 2), 20_000);
        assert_eq!(retry_delay_ms(10_000, 2.0, 3), 40_000);
        assert_eq!(retry_delay_ms(10_000, 2.0, 30), 1_800_000);
        assert_eq!(retry_delay_ms(10_000, 0.5, 3), 10_000);
    }

    #[test]
    fn sub15_result_shape_folds_cardinalities() {
        let c = serde_json::json!({"steps": [
            {"index": 1, "cardinality": "many_to_one"},
            {"index": 0, "cardinality": "EXPANSION"},
        ]});
        assert_eq!(ResultShape::from_contract(Some(&c)), ResultShape::Single);
        let c = serde_json::json!({"steps": [{"index": 0, "cardinality": "ONE_TO_MANY"}, {"index": 1}]});
        assert_eq!(
            ResultShape::from_contract(Some(&c)),
            ResultShape::MaterializedMulti
        );
        assert_eq!(ResultShape::from_contract(None), ResultShape::Single);
    }
}
