//! The dead-letter envelope published after a terminal failure
//! (`EXECUTION.md` §3.8), members as TPF.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::execution::ExecutionRecord;

/// One terminal failure, as evidence (never read back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub tenant_id: String,
    pub execution_id: String,
    pub execution_key: String,
    pub correlation_id: String,
    pub transition_key: String,
    pub resource_type: String,
    pub resource_name: String,
    pub transport: String,
    pub platform: String,
    pub terminal_status: String,
    pub terminal_reason: String,
    pub error_code: String,
    pub error_message: String,
    pub retryable: bool,
    pub retries_observed: u64,
    pub created_at_epoch_ms: i64,
}

impl DeadLetter {
    /// The envelope of `failed` (the record after T6/T8), with the pinned
    /// contract's `transport`/`platform`.
    pub fn of(
        failed: &ExecutionRecord,
        contract: Option<&Value>,
        terminal_reason: &str,
        retryable: bool,
        now: i64,
    ) -> Self {
        let member = |name: &str| {
            contract
                .and_then(|c| c.get(name))
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .unwrap_or("UNKNOWN")
                .to_string()
        };
        DeadLetter {
            tenant_id: failed.tenant_id.clone(),
            execution_id: failed.execution_id.clone(),
            execution_key: failed.execution_key.clone(),
            correlation_id: failed.execution_key.clone(),
            transition_key: failed.last_transition_key.clone().unwrap_or_default(),
            resource_type: "tpf.orchestrator.execution".into(),
            resource_name: "OrchestratorService/Run".into(),
            transport: member("transport"),
            platform: member("platform"),
            terminal_status: "FAILED".into(),
            terminal_reason: terminal_reason.into(),
            error_code: failed.error_code.clone().unwrap_or_default(),
            error_message: failed.error_message.clone().unwrap_or_default(),
            retryable,
            retries_observed: failed.attempt,
            created_at_epoch_ms: now,
        }
    }
}
