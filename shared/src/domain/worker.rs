//! Worker lifecycle records and their derived state (`RELEASES.md` §6.5–§6.6).

use serde::{Deserialize, Serialize};

/// Stored current-state entry of one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerEntry {
    pub tenant_id: String,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub worker_id: String,
    pub protocol: String,
    pub endpoint: String,
    pub artifact_id: String,
    pub artifact_digest: String,
    pub registered_at_epoch_ms: i64,
    pub last_heartbeat_at_epoch_ms: i64,
    pub draining_since_epoch_ms: i64,
    /// 1 at first registration, +1 per change (heartbeats included).
    pub state_version: u64,
    pub updated_at_epoch_ms: i64,
}

/// Kind of an audit event of the worker log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkerEventType {
    Register,
    Drain,
}

/// Append-only audit event: written atomically with the entry it snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerEvent {
    #[serde(rename = "type")]
    pub event_type: WorkerEventType,
    pub at_epoch_ms: i64,
    pub state_version: u64,
    pub snapshot: WorkerEntry,
}

/// Derived lifecycle state; `STALE` is never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkerState {
    Healthy,
    Stale,
    Draining,
    /// Reserved, as in TPF: never produced, never eligible.
    Unavailable,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Healthy => "HEALTHY",
            WorkerState::Stale => "STALE",
            WorkerState::Draining => "DRAINING",
            WorkerState::Unavailable => "UNAVAILABLE",
        }
    }
}

impl WorkerEntry {
    /// State at `now` with staleness bound `stale_after_ms` (0 disables), §6.5.
    pub fn state_at(&self, now: i64, stale_after_ms: u64) -> WorkerState {
        if self.draining_since_epoch_ms > 0 {
            WorkerState::Draining
        } else if stale_after_ms > 0
            && (now as i128 - self.last_heartbeat_at_epoch_ms as i128) > stale_after_ms as i128
        {
            WorkerState::Stale
        } else {
            WorkerState::Healthy
        }
    }

    /// The 13-member record TPF clients read.
    pub fn view(&self, now: i64, stale_after_ms: u64) -> WorkerView {
        WorkerView {
            tenant_id: self.tenant_id.clone(),
            pipeline_id: self.pipeline_id.clone(),
            contract_version: self.contract_version.clone(),
            release_version: self.release_version.clone(),
            worker_id: self.worker_id.clone(),
            protocol: self.protocol.clone(),
            endpoint: self.endpoint.clone(),
            artifact_id: self.artifact_id.clone(),
            artifact_digest: self.artifact_digest.clone(),
            state: self.state_at(now, stale_after_ms),
            registered_at_epoch_ms: self.registered_at_epoch_ms,
            last_heartbeat_at_epoch_ms: self.last_heartbeat_at_epoch_ms,
            draining_since_epoch_ms: self.draining_since_epoch_ms,
        }
    }
}

/// Response shape of every worker endpoint: exactly TPF's 13 members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    pub tenant_id: String,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub worker_id: String,
    pub protocol: String,
    pub endpoint: String,
    pub artifact_id: String,
    pub artifact_digest: String,
    pub state: WorkerState,
    pub registered_at_epoch_ms: i64,
    pub last_heartbeat_at_epoch_ms: i64,
    pub draining_since_epoch_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hb: i64, draining: i64) -> WorkerEntry {
        WorkerEntry {
            tenant_id: "t".into(),
            pipeline_id: "p".into(),
            contract_version: "c".into(),
            release_version: "r".into(),
            worker_id: "w".into(),
            protocol: "rest".into(),
            endpoint: String::new(),
            artifact_id: String::new(),
            artifact_digest: String::new(),
            registered_at_epoch_ms: hb,
            last_heartbeat_at_epoch_ms: hb,
            draining_since_epoch_ms: draining,
            state_version: 1,
            updated_at_epoch_ms: hb,
        }
    }

    #[test]
    fn wl07_staleness_is_strictly_after_the_bound() {
        let e = entry(1000, 0);
        assert_eq!(e.state_at(2000, 1000), WorkerState::Healthy);
        assert_eq!(e.state_at(2001, 1000), WorkerState::Stale);
        assert_eq!(e.state_at(i64::MAX, 0), WorkerState::Healthy);
    }

    #[test]
    fn draining_wins_over_staleness() {
        assert_eq!(entry(1000, 5).state_at(99_999, 1000), WorkerState::Draining);
    }
}
