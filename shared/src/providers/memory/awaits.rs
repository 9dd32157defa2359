//! `memory` await store (`EXECUTION.md` §8, §10.3): units, interactions and
//! correlation entries in maps behind one mutex; queries scan.
//!
//! The import decisions and the query selections are `pub(crate)` so the
//! `file` store applies exactly the same rules. Expired records are absent
//! to every read and write: an import over an expired unit, interaction or
//! correlation entry replaces it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::awaits::{AwaitInteraction, AwaitUnit, UNIT_WAITING};
use crate::domain::execution::is_expired;
use crate::error::StoreError;
use crate::ports::{AwaitStore, ImportOutcome, PendingFilter, Write};

/// The correlation entry `(tenantId, correlationId) → interactionId` (§10.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CorrelationEntry {
    pub tenant_id: String,
    pub correlation_id: String,
    pub interaction_id: String,
    pub ttl_epoch_s: i64,
}

impl CorrelationEntry {
    /// The entry of `interaction` (its correlation id and TTL).
    pub(crate) fn of(interaction: &AwaitInteraction) -> Self {
        Self {
            tenant_id: interaction.tenant_id.clone(),
            correlation_id: interaction.correlation_id.clone(),
            interaction_id: interaction.interaction_id.clone(),
            ttl_epoch_s: interaction.ttl_epoch_s,
        }
    }
}

/// Per-process await store for unit tests and single-process demos:
/// every condition is evaluated and applied under one lock.
#[derive(Debug, Default)]
pub struct MemoryAwaitStore {
    tenants: Mutex<HashMap<String, Tenant>>,
}

/// The await state of one tenant, each map keyed by its id.
#[derive(Debug, Default)]
struct Tenant {
    units: HashMap<String, AwaitUnit>,
    interactions: HashMap<String, AwaitInteraction>,
    correlations: HashMap<String, CorrelationEntry>,
}

impl MemoryAwaitStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tenant>> {
        // Every write checks before it changes anything, so a poisoned lock
        // never guards half-applied state.
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Refuses an import whose unit and interaction do not belong together
/// (a caller bug; the coordinator validated them, §8.3).
pub(crate) fn check_import_args(
    unit: &AwaitUnit,
    interaction: &AwaitInteraction,
) -> Result<(), StoreError> {
    if unit.tenant_id != interaction.tenant_id
        || interaction.unit_id != unit.unit_id
        || interaction.execution_id != unit.execution_id
    {
        return Err(StoreError::Unavailable(
            "an imported interaction must belong to the imported unit".to_owned(),
        ));
    }
    Ok(())
}

/// Refuses a `finish_unit` that would not end the wait (a caller bug).
pub(crate) fn check_finish_status(status: &str) -> Result<(), StoreError> {
    if status == UNIT_WAITING {
        return Err(StoreError::Unavailable(
            "finish_unit needs a terminal unit status".to_owned(),
        ));
    }
    Ok(())
}

/// Rule 1 of §8.3 for a live stored unit: the same execution and step
/// reuse it and its primary interaction (`primary`, when live); anything
/// else is a conflict.
pub(crate) fn existing_unit_outcome(
    stored: &AwaitUnit,
    snapshot: &AwaitUnit,
    primary: Option<AwaitInteraction>,
) -> ImportOutcome {
    if stored.execution_id != snapshot.execution_id {
        return ImportOutcome::Conflict(format!(
            "await unit {} belongs to another execution",
            stored.unit_id
        ));
    }
    if stored.step_index != snapshot.step_index {
        return ImportOutcome::Conflict(format!(
            "await unit {} belongs to step {} of this execution",
            stored.unit_id, stored.step_index
        ));
    }
    match primary {
        Some(primary) => ImportOutcome::Existing(stored.clone(), Box::new(primary)),
        None => ImportOutcome::Conflict(format!(
            "the primary interaction of await unit {} is missing or expired",
            stored.unit_id
        )),
    }
}

/// Why a live stored interaction with the imported id cannot be kept, if it
/// cannot (it belongs to another execution or unit).
pub(crate) fn interaction_conflict(
    stored: &AwaitInteraction,
    snapshot: &AwaitInteraction,
) -> Option<String> {
    (stored.execution_id != snapshot.execution_id || stored.unit_id != snapshot.unit_id).then(
        || {
            format!(
                "interaction {} belongs to another execution or unit",
                stored.interaction_id
            )
        },
    )
}

/// The conflict of a live correlation entry mapped to another interaction.
pub(crate) fn correlation_conflict(
    entry: &CorrelationEntry,
    interaction_id: &str,
) -> Option<String> {
    (entry.interaction_id != interaction_id).then(|| {
        format!(
            "correlationId {} is mapped to another interaction",
            entry.correlation_id
        )
    })
}

/// True when `stored` may be replaced by `update_interaction`: live, open
/// and at `expected_version`.
pub(crate) fn interaction_updatable(
    stored: &AwaitInteraction,
    expected_version: i64,
    now_ms: i64,
) -> bool {
    !is_expired(stored.ttl_epoch_s, now_ms)
        && stored.is_open()
        && stored.version == expected_version
}

/// The unit after `finish_unit`, or `None` when it is expired or no longer
/// `WAITING_EXTERNAL` (a terminal status is never overwritten).
pub(crate) fn finished_unit(stored: &AwaitUnit, status: &str, now_ms: i64) -> Option<AwaitUnit> {
    if is_expired(stored.ttl_epoch_s, now_ms) || stored.status != UNIT_WAITING {
        return None;
    }
    let mut next = stored.clone();
    next.status = status.to_owned();
    next.version += 1;
    next.updated_at_epoch_ms = now_ms;
    Some(next)
}

/// The pending list: open, live interactions matching `filter`, ordered by
/// (`deadlineEpochMs`, `interactionId`), strictly after `after`, at most `limit`.
pub(crate) fn select_pending<'a>(
    interactions: impl IntoIterator<Item = &'a AwaitInteraction>,
    filter: &PendingFilter,
    after: Option<&(i64, String)>,
    limit: usize,
    now_ms: i64,
) -> Vec<AwaitInteraction> {
    let matches = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    let mut out: Vec<&AwaitInteraction> = interactions
        .into_iter()
        .filter(|i| i.is_open() && !is_expired(i.ttl_epoch_s, now_ms))
        .filter(|i| filter.step_id.as_ref().is_none_or(|s| &i.step_id == s))
        .filter(|i| matches(&filter.assignee, &i.assignee) && matches(&filter.group, &i.group))
        .filter(|i| {
            after.is_none_or(|(at, id)| {
                (i.deadline_epoch_ms, i.interaction_id.as_str()) > (*at, id.as_str())
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.deadline_epoch_ms, &a.interaction_id).cmp(&(b.deadline_epoch_ms, &b.interaction_id))
    });
    out.into_iter().take(limit).cloned().collect()
}

/// The settle selection: live interactions with `settleDueEpochMs ≤ now`,
/// ordered by (`settleDueEpochMs`, `tenantId`, `interactionId`), at most `limit`.
pub(crate) fn select_settle_due<'a>(
    interactions: impl IntoIterator<Item = &'a AwaitInteraction>,
    now_ms: i64,
    limit: usize,
) -> Vec<(String, String)> {
    let mut due: Vec<(i64, &str, &str)> = interactions
        .into_iter()
        .filter(|i| !is_expired(i.ttl_epoch_s, now_ms))
        .filter_map(|i| {
            i.settle_due_epoch_ms
                .filter(|d| *d <= now_ms)
                .map(|d| (d, i.tenant_id.as_str(), i.interaction_id.as_str()))
        })
        .collect();
    due.sort();
    due.into_iter()
        .take(limit)
        .map(|(_, t, id)| (t.to_owned(), id.to_owned()))
        .collect()
}

/// A live record's clone.
fn live<T: Clone>(value: Option<&T>, ttl: impl Fn(&T) -> i64, now_ms: i64) -> Option<T> {
    value.filter(|v| !is_expired(ttl(v), now_ms)).cloned()
}

#[async_trait]
impl AwaitStore for MemoryAwaitStore {
    async fn get_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitUnit>, StoreError> {
        let map = self.lock();
        let unit = map.get(tenant).and_then(|t| t.units.get(unit_id));
        Ok(live(unit, |u| u.ttl_epoch_s, now_ms))
    }

    async fn get_interaction(
        &self,
        tenant: &str,
        interaction_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        let map = self.lock();
        let found = map
            .get(tenant)
            .and_then(|t| t.interactions.get(interaction_id));
        Ok(live(found, |i| i.ttl_epoch_s, now_ms))
    }

    async fn get_by_correlation(
        &self,
        tenant: &str,
        correlation_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        let map = self.lock();
        let Some(t) = map.get(tenant) else {
            return Ok(None);
        };
        let Some(entry) = live(
            t.correlations.get(correlation_id),
            |c| c.ttl_epoch_s,
            now_ms,
        ) else {
            return Ok(None);
        };
        Ok(live(
            t.interactions.get(&entry.interaction_id),
            |i| i.ttl_epoch_s,
            now_ms,
        ))
    }

    async fn import(
        &self,
        unit: &AwaitUnit,
        interaction: &AwaitInteraction,
        now_ms: i64,
    ) -> Result<ImportOutcome, StoreError> {
        check_import_args(unit, interaction)?;
        let mut map = self.lock();
        let t = map.entry(unit.tenant_id.clone()).or_default();
        // Rule 1: a live unit with this id decides.
        if let Some(stored) = live(t.units.get(&unit.unit_id), |u| u.ttl_epoch_s, now_ms) {
            let primary = stored
                .primary_interaction_id
                .as_ref()
                .and_then(|id| live(t.interactions.get(id), |i| i.ttl_epoch_s, now_ms));
            return Ok(existing_unit_outcome(&stored, unit, primary));
        }
        // The interaction: a live one of this execution and unit is kept.
        let stored = live(
            t.interactions.get(&interaction.interaction_id),
            |i| i.ttl_epoch_s,
            now_ms,
        );
        let kept = match stored {
            Some(stored) => {
                if let Some(why) = interaction_conflict(&stored, interaction) {
                    return Ok(ImportOutcome::Conflict(why));
                }
                stored
            }
            None => {
                t.interactions
                    .insert(interaction.interaction_id.clone(), interaction.clone());
                interaction.clone()
            }
        };
        // Its correlation entry: create-if-absent, or already this mapping.
        let entry = CorrelationEntry::of(&kept);
        match live(
            t.correlations.get(&entry.correlation_id),
            |c| c.ttl_epoch_s,
            now_ms,
        ) {
            Some(existing) => {
                if let Some(why) = correlation_conflict(&existing, &kept.interaction_id) {
                    return Ok(ImportOutcome::Conflict(why));
                }
            }
            None => {
                t.correlations.insert(entry.correlation_id.clone(), entry);
            }
        }
        t.units.insert(unit.unit_id.clone(), unit.clone());
        Ok(ImportOutcome::Imported)
    }

    async fn update_interaction(
        &self,
        next: &AwaitInteraction,
        expected_version: i64,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        let mut map = self.lock();
        let Some(stored) = map
            .get_mut(&next.tenant_id)
            .and_then(|t| t.interactions.get_mut(&next.interaction_id))
        else {
            return Ok(Write::Lost);
        };
        if !interaction_updatable(stored, expected_version, now_ms) {
            return Ok(Write::Lost);
        }
        *stored = next.clone();
        Ok(Write::Written)
    }

    async fn set_settle_due(
        &self,
        tenant: &str,
        interaction_id: &str,
        expected_status: &str,
        settle_due_epoch_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        let mut map = self.lock();
        let Some(stored) = map
            .get_mut(tenant)
            .and_then(|t| t.interactions.get_mut(interaction_id))
        else {
            return Ok(Write::Lost);
        };
        if is_expired(stored.ttl_epoch_s, now_ms) || stored.status != expected_status {
            return Ok(Write::Lost);
        }
        stored.settle_due_epoch_ms = settle_due_epoch_ms;
        Ok(Write::Written)
    }

    async fn finish_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        check_finish_status(status)?;
        let mut map = self.lock();
        let Some(stored) = map.get_mut(tenant).and_then(|t| t.units.get_mut(unit_id)) else {
            return Ok(Write::Lost);
        };
        match finished_unit(stored, status, now_ms) {
            Some(next) => {
                *stored = next;
                Ok(Write::Written)
            }
            None => Ok(Write::Lost),
        }
    }

    async fn pending(
        &self,
        tenant: &str,
        filter: &PendingFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<AwaitInteraction>, StoreError> {
        let map = self.lock();
        let Some(t) = map.get(tenant) else {
            return Ok(Vec::new());
        };
        Ok(select_pending(
            t.interactions.values(),
            filter,
            after.as_ref(),
            limit,
            now_ms,
        ))
    }

    async fn settle_due(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let map = self.lock();
        let all = map.values().flat_map(|t| t.interactions.values());
        Ok(select_settle_due(all, now_ms, limit))
    }
}
