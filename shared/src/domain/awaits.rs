//! Await units and interactions (`EXECUTION.md` §8.1–§8.2), the checks of
//! an imported suspension (§8.3), and the pending-list view (`API.md` §1.10).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::ids::is_valid_id;
use crate::domain::worker_protocol::TransitionFailure;

/// Unit status `WAITING_EXTERNAL` (the only non-terminal one).
pub const UNIT_WAITING: &str = "WAITING_EXTERNAL";
/// Open interaction statuses.
pub const OPEN_STATUSES: [&str; 3] = ["WAITING", "DISPATCHING", "DISPATCHED"];

/// True for `WAITING`, `DISPATCHING`, `DISPATCHED`.
pub fn is_open(status: &str) -> bool {
    OPEN_STATUSES.contains(&status)
}

/// One await boundary of one execution (§8.1), fields as TPF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwaitUnit {
    pub tenant_id: String,
    pub unit_id: String,
    pub execution_id: String,
    pub step_id: String,
    pub step_index: u64,
    pub cardinality: String,
    pub version: i64,
    pub status: String,
    pub primary_interaction_id: Option<String>,
    pub expected_item_count: Option<i64>,
    #[serde(default)]
    pub completed_item_count: i64,
    #[serde(default)]
    pub completed_item_keys: Vec<String>,
    #[serde(default)]
    pub dispatch_complete: bool,
    pub created_at_epoch_ms: i64,
    pub updated_at_epoch_ms: i64,
    pub ttl_epoch_s: i64,
}

/// One externally visible request (§8.2) with the coordinator-owned fields.
/// `requestPayload`/`responsePayload`/`transportMetadata` are kept as raw
/// JSON text (stored as sent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwaitInteraction {
    pub tenant_id: String,
    pub execution_id: String,
    pub step_id: String,
    pub step_index: u64,
    pub output_type: String,
    #[serde(default)]
    pub transport_output_type: Option<String>,
    pub interaction_id: String,
    pub correlation_id: String,
    #[serde(default)]
    pub causation_id: Option<String>,
    pub idempotency_key: String,
    pub version: i64,
    pub status: String,
    pub request_payload: Option<Box<RawValue>>,
    pub response_payload: Option<Box<RawValue>>,
    pub unit_id: String,
    #[serde(default)]
    pub item_index: Option<i64>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    pub transport_type: String,
    #[serde(default)]
    pub transport_metadata: Option<Box<RawValue>>,
    pub deadline_epoch_ms: i64,
    pub created_at_epoch_ms: i64,
    pub updated_at_epoch_ms: i64,
    pub ttl_epoch_s: i64,
    // Coordinator-owned (never sent to workers or listed).
    #[serde(default)]
    pub completion_idempotency_key: Option<String>,
    #[serde(default)]
    pub completion_payload_hash: Option<String>,
    #[serde(default)]
    pub completed_at_epoch_ms: Option<i64>,
    #[serde(default)]
    pub settle_due_epoch_ms: Option<i64>,
}

impl AwaitInteraction {
    pub fn is_open(&self) -> bool {
        is_open(&self.status)
    }
}

/// The suspension a worker returns with `WAITING_EXTERNAL` (§7.5).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    pub tenant_id: Option<String>,
    pub execution_id: Option<String>,
    pub unit_id: Option<String>,
    pub step_index: Option<i64>,
    pub unit: Option<Box<RawValue>>,
    #[serde(default)]
    pub interactions: Option<Vec<Box<RawValue>>>,
}

/// A suspension that passed §8.3: the unit and its primary interaction,
/// with TTLs and coordinator-owned fields set for import at `now`.
#[derive(Debug, Clone)]
pub struct ValidSuspension {
    pub unit: AwaitUnit,
    pub interaction: AwaitInteraction,
}

fn invalid(why: impl Into<String>) -> TransitionFailure {
    TransitionFailure::new("AWAIT_SUSPENSION_INVALID", why, false)
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// §8.3: checks the suspension text against the command that was sent
/// (`tenant`, `execution`, `current_step`); failures are non-retryable.
pub fn validate_suspension(
    text: &RawValue,
    tenant: &str,
    execution: &str,
    current_step: u64,
    now: i64,
) -> Result<ValidSuspension, TransitionFailure> {
    let s: Suspension = serde_json::from_str(text.get())
        .map_err(|_| invalid("awaitSuspension is not a suspension object"))?;
    let interactions = s.interactions.unwrap_or_default();
    let unit_value: Option<serde_json::Value> = match &s.unit {
        Some(u) if u.get() != "null" => {
            Some(serde_json::from_str(u.get()).map_err(|_| invalid("unit is not JSON"))?)
        }
        _ => None,
    };
    // Itemized / aggregate awaits (checked first when the shape is there).
    if let Some(u) = unit_value.as_ref().filter(|u| u.is_object()) {
        if !interactions.is_empty() {
            let itemized = interactions.iter().any(|i| {
                serde_json::from_str::<serde_json::Value>(i.get())
                    .ok()
                    .and_then(|v| v.get("itemIndex").cloned())
                    .is_some_and(|v| !v.is_null())
            });
            let no_primary = u.get("primaryInteractionId").is_none_or(|p| p.is_null());
            if interactions.len() > 1 || itemized || no_primary {
                return Err(TransitionFailure::new(
                    "ITEMIZED_AWAIT_UNSUPPORTED",
                    format!(
                        "itemized or multi-interaction await of unit {} at step {} is not supported",
                        u.get("unitId").and_then(|v| v.as_str()).unwrap_or("?"),
                        u.get("stepId").and_then(|v| v.as_str()).unwrap_or("?"),
                    ),
                    false,
                ));
            }
        }
    }
    let Some(unit_value) = unit_value else {
        return Err(invalid("unit is missing"));
    };
    let Some(first) = interactions.first() else {
        return Err(invalid("interactions is empty"));
    };
    let mut unit: AwaitUnit = serde_json::from_value(unit_value)
        .map_err(|e| invalid(format!("unit is malformed: {e}")))?;
    let mut interaction: AwaitInteraction = serde_json::from_str(first.get())
        .map_err(|e| invalid(format!("interaction is malformed: {e}")))?;
    let eq = |a: &Option<String>, b: &str| a.as_deref() == Some(b);
    if !eq(&s.tenant_id, tenant) || unit.tenant_id != tenant || interaction.tenant_id != tenant {
        return Err(invalid("tenantId does not match the command"));
    }
    if !eq(&s.execution_id, execution)
        || unit.execution_id != execution
        || interaction.execution_id != execution
    {
        return Err(invalid("executionId does not match the command"));
    }
    if !eq(&s.unit_id, &unit.unit_id) || !is_valid_id(&unit.unit_id) {
        return Err(invalid("unit.unitId does not match unitId"));
    }
    if s.step_index != Some(unit.step_index as i64) || unit.step_index < current_step {
        return Err(invalid(
            "stepIndex does not match the unit or precedes the current step",
        ));
    }
    if unit.primary_interaction_id.as_deref() != Some(interaction.interaction_id.as_str())
        || !is_valid_id(&interaction.interaction_id)
    {
        return Err(invalid(
            "interactionId is not the unit's primaryInteractionId",
        ));
    }
    if interaction.unit_id != unit.unit_id
        || interaction.step_id != unit.step_id
        || interaction.step_index != unit.step_index
    {
        return Err(invalid(
            "interaction unitId, stepId or stepIndex does not match the unit",
        ));
    }
    if blank(&interaction.output_type)
        || blank(&interaction.idempotency_key)
        || !is_valid_id(&interaction.correlation_id)
    {
        return Err(invalid(
            "outputType, correlationId or idempotencyKey is blank or invalid",
        ));
    }
    if blank(&unit.step_id) {
        return Err(invalid("stepId is blank"));
    }
    if interaction.deadline_epoch_ms <= interaction.created_at_epoch_ms {
        return Err(invalid("deadlineEpochMs is not after createdAtEpochMs"));
    }
    let transport_output = interaction
        .transport_output_type
        .clone()
        .unwrap_or_else(|| interaction.output_type.clone());
    let has_projector = interaction
        .transport_metadata
        .as_ref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m.get()).ok())
        .is_some_and(|m| m.get("tpf.await.completion.projector").is_some());
    if transport_output != interaction.output_type || has_projector {
        return Err(TransitionFailure::new(
            "AWAIT_ADAPTER_UNSUPPORTED",
            "await needs a transport adapter or completion projector",
            false,
        ));
    }
    // §3.9 TTLs and the coordinator-owned fields.
    let deadline_s = (interaction.deadline_epoch_ms + 999).div_euclid(1000);
    interaction.ttl_epoch_s = interaction.ttl_epoch_s.max(deadline_s + 86_400);
    unit.ttl_epoch_s = unit.ttl_epoch_s.max(interaction.ttl_epoch_s);
    interaction.transport_output_type = Some(transport_output);
    interaction.completion_idempotency_key = None;
    interaction.completion_payload_hash = None;
    interaction.completed_at_epoch_ms = None;
    interaction.settle_due_epoch_ms = Some(if interaction.is_open() {
        interaction.deadline_epoch_ms
    } else {
        now
    });
    Ok(ValidSuspension { unit, interaction })
}

/// `AwaitInteractionDto` (`API.md` §1.10): the pending list's item.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InteractionDto<'a> {
    pub interaction_id: &'a str,
    pub correlation_id: &'a str,
    pub execution_id: &'a str,
    pub step_id: &'a str,
    pub step_index: u64,
    pub output_type: &'a str,
    pub status: &'a str,
    pub request_payload: Option<&'a RawValue>,
    pub assignee: Option<&'a str>,
    pub group: Option<&'a str>,
    pub transport_type: &'a str,
    pub transport_metadata: &'a RawValue,
    pub deadline_epoch_ms: i64,
    pub created_at_epoch_ms: i64,
    pub updated_at_epoch_ms: i64,
}

impl AwaitInteraction {
    /// The pending-list view (15 members).
    pub fn dto(&self) -> InteractionDto<'_> {
        static EMPTY: std::sync::LazyLock<Box<RawValue>> =
            std::sync::LazyLock::new(|| RawValue::from_string("{}".into()).expect("valid JSON"));
        InteractionDto {
            interaction_id: &self.interaction_id,
            correlation_id: &self.correlation_id,
            execution_id: &self.execution_id,
            step_id: &self.step_id,
            step_index: self.step_index,
            output_type: &self.output_type,
            status: &self.status,
            request_payload: self.request_payload.as_deref(),
            assignee: self.assignee.as_deref(),
            group: self.group.as_deref(),
            transport_type: &self.transport_type,
            transport_metadata: self.transport_metadata.as_deref().unwrap_or(&EMPTY),
            deadline_epoch_ms: self.deadline_epoch_ms,
            created_at_epoch_ms: self.created_at_epoch_ms,
            updated_at_epoch_ms: self.updated_at_epoch_ms,
        }
    }
}
