//! `dynamo` worker registry (`RELEASES.md` §6.6): table
//! `TPF_DYNAMO_WORKER_TABLE`, one partition per `(tenant, pipeline)`.
//!
//! | Item | `registry_sort` | `record_type` |
//! |---|---|---|
//! | current-state entry | `worker#<workerId>` | `WORKER` |
//! | audit event | `event#<workerId>#<stateVersion, 19 digits>` | `WORKER_EVENT` |
//!
//! An event holds `event_type` and `at_epoch_ms` plus the snapshot of the
//! entry under the entry's own attribute names (its `state_version` is the
//! event's).
//!
//! Writes:
//! - with an event (register, drain): one `TransactWriteItems` — `Put` of
//!   the entry conditioned on `attribute_not_exists(registry_key)` (first
//!   registration) or `state_version = :read`, and `Put` of the event with
//!   `attribute_not_exists(registry_key)`; a cancellation by a condition or
//!   a conflicting transaction is a lost race;
//! - without an event and an expected version (heartbeat): one `UpdateItem`
//!   setting `last_heartbeat_at_epoch_ms`, `state_version` and
//!   `updated_at_epoch_ms`, conditioned on `state_version = :read` and on
//!   every other stored member still equalling the caller's entry. When the
//!   caller changed more than those three members (no action does), the
//!   update cannot express the change: the failure returns the stored item
//!   (`ALL_OLD`) and, if its version is still the one read, the entry is
//!   written whole by a `PutItem` conditioned on `state_version = :read`;
//! - without an event and no expected version: `PutItem` with
//!   `attribute_not_exists(registry_key)`.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::{
    build_error, cancelled, get_n, get_s, is_key_part, n, pad19, query_collect, registry_key,
    require_key_part, s, sort_of, unavailable, Cancelled, Item, PK, SK,
};
use crate::domain::worker::{WorkerEntry, WorkerEvent, WorkerEventType};
use crate::error::StoreError;
use crate::ports::{WorkerRegistry, WorkerWrite};

const WORKER_PREFIX: &str = "worker#";
/// Sorts after every `worker#…` value (`$` follows `#`).
const WORKER_END: &str = "worker$";

const CREATE_IF_ABSENT: &str = "attribute_not_exists(registry_key)";
const SAME_VERSION: &str = "#sv = :read";

/// The entry's members a heartbeat leaves alone, as (attribute, value).
fn unchanged_members(
    e: &WorkerEntry,
) -> [(&'static str, aws_sdk_dynamodb::types::AttributeValue); 11] {
    [
        ("tenant_id", s(&e.tenant_id)),
        ("pipeline_id", s(&e.pipeline_id)),
        ("worker_id", s(&e.worker_id)),
        ("contract_version", s(&e.contract_version)),
        ("release_version", s(&e.release_version)),
        ("protocol", s(&e.protocol)),
        ("endpoint", s(&e.endpoint)),
        ("artifact_id", s(&e.artifact_id)),
        ("artifact_digest", s(&e.artifact_digest)),
        ("registered_at_epoch_ms", n(e.registered_at_epoch_ms)),
        ("draining_since_epoch_ms", n(e.draining_since_epoch_ms)),
    ]
}

/// Worker registry on one DynamoDB table (worker-lifecycle, control-plane
/// and dispatcher on AWS).
#[derive(Debug, Clone)]
pub struct DynamoWorkerRegistry {
    client: Client,
    table: String,
}

impl DynamoWorkerRegistry {
    /// The registry in `table` (the template's `WorkerTable`).
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// The stored entry item of `entry`'s worker (strongly consistent).
    async fn get_entry_item(&self, entry: &WorkerEntry) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(registry_key(&entry.tenant_id, &entry.pipeline_id)))
            .key(SK, s(worker_sort(&entry.worker_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(out.item)
    }

    /// Register or drain: entry and event in one transaction.
    async fn write_with_event(
        &self,
        entry: &WorkerEntry,
        expected: Option<u64>,
        event: &WorkerEvent,
    ) -> Result<WorkerWrite, StoreError> {
        let mut put_entry = Put::builder()
            .table_name(&self.table)
            .set_item(Some(entry_item(entry)));
        put_entry = match expected {
            None => put_entry.condition_expression(CREATE_IF_ABSENT),
            Some(read) => put_entry
                .condition_expression(SAME_VERSION)
                .expression_attribute_names("#sv", "state_version")
                .expression_attribute_values(":read", n(read)),
        };
        let put_event = Put::builder()
            .table_name(&self.table)
            .set_item(Some(event_item(event)))
            .condition_expression(CREATE_IF_ABSENT)
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(put_entry.build().map_err(build_error)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(put_event).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(WorkerWrite::Written),
            Err(e) => e,
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c))
                if cancelled(c.cancellation_reasons()) != Cancelled::Other =>
            {
                Ok(WorkerWrite::Conflict)
            }
            _ => Err(unavailable("TransactWriteItems", err)),
        }
    }

    /// The entry alone by `PutItem`: create-if-absent, or replace on the
    /// version read.
    async fn put_entry(
        &self,
        entry: &WorkerEntry,
        expected: Option<u64>,
    ) -> Result<WorkerWrite, StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entry_item(entry)));
        request = match expected {
            None => request.condition_expression(CREATE_IF_ABSENT),
            Some(read) => request
                .condition_expression(SAME_VERSION)
                .expression_attribute_names("#sv", "state_version")
                .expression_attribute_values(":read", n(read)),
        };
        match request.send().await {
            Ok(_) => Ok(WorkerWrite::Written),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_))
                | Some(PutItemError::TransactionConflictException(_)) => Ok(WorkerWrite::Conflict),
                _ => Err(unavailable("PutItem", e)),
            },
        }
    }

    /// Heartbeat: one conditional `UpdateItem` (see the module docs).
    async fn heartbeat(&self, entry: &WorkerEntry, read: u64) -> Result<WorkerWrite, StoreError> {
        if read.checked_add(1) != Some(entry.state_version) {
            // Not a single step: only a whole write expresses it.
            return self.put_entry(entry, Some(read)).await;
        }
        let mut condition = vec![SAME_VERSION.to_owned()];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(registry_key(&entry.tenant_id, &entry.pipeline_id)))
            .key(SK, s(worker_sort(&entry.worker_id)))
            .update_expression("SET #hb = :hb, #sv = :next, #ua = :ua")
            .expression_attribute_names("#hb", "last_heartbeat_at_epoch_ms")
            .expression_attribute_names("#sv", "state_version")
            .expression_attribute_names("#ua", "updated_at_epoch_ms")
            .expression_attribute_values(":hb", n(entry.last_heartbeat_at_epoch_ms))
            .expression_attribute_values(":next", n(entry.state_version))
            .expression_attribute_values(":ua", n(entry.updated_at_epoch_ms))
            .expression_attribute_values(":read", n(read))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (i, (name, value)) in unchanged_members(entry).into_iter().enumerate() {
            condition.push(format!("#m{i} = :m{i}"));
            request = request
                .expression_attribute_names(format!("#m{i}"), name)
                .expression_attribute_values(format!(":m{i}"), value);
        }
        let err = match request
            .condition_expression(condition.join(" AND "))
            .send()
            .await
        {
            Ok(_) => return Ok(WorkerWrite::Written),
            Err(e) => e,
        };
        match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                // `ALL_OLD` carries the stored item; read it where a
                // server leaves it out.
                let stored = match failed.item() {
                    Some(old) => Some(old.clone()),
                    None => self.get_entry_item(entry).await?,
                };
                let stored_version = stored
                    .as_ref()
                    .and_then(|old| get_n::<u64>(old, "state_version").ok());
                if stored_version == Some(read) {
                    // The version still matches, so the caller changed
                    // other members too: write the entry whole.
                    self.put_entry(entry, Some(read)).await
                } else {
                    Ok(WorkerWrite::Conflict)
                }
            }
            Some(UpdateItemError::TransactionConflictException(_)) => Ok(WorkerWrite::Conflict),
            _ => Err(unavailable("UpdateItem", err)),
        }
    }
}

fn worker_sort(worker: &str) -> String {
    format!("{WORKER_PREFIX}{worker}")
}

fn events_prefix(worker: &str) -> String {
    format!("event#{worker}#")
}

/// The entry's attributes (without keys and `record_type`).
fn entry_attributes(e: &WorkerEntry) -> Item {
    let mut item: Item = unchanged_members(e)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    item.insert(
        "last_heartbeat_at_epoch_ms".into(),
        n(e.last_heartbeat_at_epoch_ms),
    );
    item.insert("state_version".into(), n(e.state_version));
    item.insert("updated_at_epoch_ms".into(), n(e.updated_at_epoch_ms));
    item
}

fn entry_item(e: &WorkerEntry) -> Item {
    let mut item = entry_attributes(e);
    item.insert(PK.into(), s(registry_key(&e.tenant_id, &e.pipeline_id)));
    item.insert(SK.into(), s(worker_sort(&e.worker_id)));
    item.insert("record_type".into(), s("WORKER"));
    item
}

fn event_type_name(t: WorkerEventType) -> &'static str {
    match t {
        WorkerEventType::Register => "REGISTER",
        WorkerEventType::Drain => "DRAIN",
    }
}

fn event_item(ev: &WorkerEvent) -> Item {
    let snap = &ev.snapshot;
    let mut item = entry_attributes(snap);
    item.insert(
        PK.into(),
        s(registry_key(&snap.tenant_id, &snap.pipeline_id)),
    );
    item.insert(
        SK.into(),
        s(format!(
            "{}{}",
            events_prefix(&snap.worker_id),
            pad19(ev.state_version)
        )),
    );
    item.insert("record_type".into(), s("WORKER_EVENT"));
    item.insert("event_type".into(), s(event_type_name(ev.event_type)));
    item.insert("at_epoch_ms".into(), n(ev.at_epoch_ms));
    item
}

fn entry_from_item(item: &Item) -> Result<WorkerEntry, StoreError> {
    Ok(WorkerEntry {
        tenant_id: get_s(item, "tenant_id")?,
        pipeline_id: get_s(item, "pipeline_id")?,
        contract_version: get_s(item, "contract_version")?,
        release_version: get_s(item, "release_version")?,
        worker_id: get_s(item, "worker_id")?,
        protocol: get_s(item, "protocol")?,
        endpoint: get_s(item, "endpoint")?,
        artifact_id: get_s(item, "artifact_id")?,
        artifact_digest: get_s(item, "artifact_digest")?,
        registered_at_epoch_ms: get_n(item, "registered_at_epoch_ms")?,
        last_heartbeat_at_epoch_ms: get_n(item, "last_heartbeat_at_epoch_ms")?,
        draining_since_epoch_ms: get_n(item, "draining_since_epoch_ms")?,
        state_version: get_n(item, "state_version")?,
        updated_at_epoch_ms: get_n(item, "updated_at_epoch_ms")?,
    })
}

fn event_from_item(item: &Item) -> Result<WorkerEvent, StoreError> {
    let event_type = match get_s(item, "event_type")?.as_str() {
        "REGISTER" => WorkerEventType::Register,
        "DRAIN" => WorkerEventType::Drain,
        other => {
            return Err(StoreError::Unavailable(format!(
                "stored worker event has an unknown event_type {other:?}"
            )))
        }
    };
    let snapshot = entry_from_item(item)?;
    Ok(WorkerEvent {
        event_type,
        at_epoch_ms: get_n(item, "at_epoch_ms")?,
        state_version: snapshot.state_version,
        snapshot,
    })
}

/// Refuses an event that does not describe `entry` (a caller bug; the
/// stored event keeps one `state_version` for both).
fn check_event_matches(entry: &WorkerEntry, event: &WorkerEvent) -> Result<(), StoreError> {
    let s = &event.snapshot;
    if event.state_version == entry.state_version
        && s.state_version == entry.state_version
        && s.tenant_id == entry.tenant_id
        && s.pipeline_id == entry.pipeline_id
        && s.worker_id == entry.worker_id
    {
        Ok(())
    } else {
        Err(StoreError::Unavailable(
            "a worker event must snapshot the entry written with it".to_owned(),
        ))
    }
}

#[async_trait]
impl WorkerRegistry for DynamoWorkerRegistry {
    async fn get_worker(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Option<WorkerEntry>, StoreError> {
        if !(is_key_part(tenant) && is_key_part(pipeline) && is_key_part(worker)) {
            return Ok(None);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(registry_key(tenant, pipeline)))
            .key(SK, s(worker_sort(worker)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        out.item.as_ref().map(entry_from_item).transpose()
    }

    async fn write_worker(
        &self,
        entry: &WorkerEntry,
        expected_version: Option<u64>,
        event: Option<&WorkerEvent>,
    ) -> Result<WorkerWrite, StoreError> {
        require_key_part("a tenantId", &entry.tenant_id)?;
        require_key_part("a pipelineId", &entry.pipeline_id)?;
        require_key_part("a workerId", &entry.worker_id)?;
        match (expected_version, event) {
            (_, Some(event)) => {
                check_event_matches(entry, event)?;
                self.write_with_event(entry, expected_version, event).await
            }
            (Some(read), None) => self.heartbeat(entry, read).await,
            (None, None) => self.put_entry(entry, None).await,
        }
    }

    async fn list_workers(
        &self,
        tenant: &str,
        pipeline: &str,
        after_worker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkerEntry>, StoreError> {
        if !(is_key_part(tenant) && is_key_part(pipeline)) || limit == 0 {
            return Ok(Vec::new());
        }
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(true)
            .expression_attribute_values(":pk", s(registry_key(tenant, pipeline)));
        let query = match after_worker {
            None => query
                .key_condition_expression("registry_key = :pk AND begins_with(registry_sort, :p)")
                .expression_attribute_values(":p", s(WORKER_PREFIX)),
            // From the `after` worker (inclusive, skipped below) to the end
            // of the `worker#` range.
            Some(after) => query
                .key_condition_expression(
                    "registry_key = :pk AND registry_sort BETWEEN :from AND :to",
                )
                .expression_attribute_values(":from", s(worker_sort(after)))
                .expression_attribute_values(":to", s(WORKER_END)),
        };
        let skip = after_worker.map(worker_sort);
        query_collect(query, limit, |item| {
            if skip.as_deref() == Some(sort_of(&item)) {
                return Ok(None);
            }
            entry_from_item(&item).map(Some)
        })
        .await
    }

    async fn worker_events(
        &self,
        tenant: &str,
        pipeline: &str,
        worker: &str,
    ) -> Result<Vec<WorkerEvent>, StoreError> {
        if !(is_key_part(tenant) && is_key_part(pipeline) && is_key_part(worker)) {
            return Ok(Vec::new());
        }
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(true)
            .key_condition_expression("registry_key = :pk AND begins_with(registry_sort, :p)")
            .expression_attribute_values(":pk", s(registry_key(tenant, pipeline)))
            .expression_attribute_values(":p", s(events_prefix(worker)));
        query_collect(query, usize::MAX, |item| event_from_item(&item).map(Some)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> WorkerEntry {
        WorkerEntry {
            tenant_id: "acme".into(),
            pipeline_id: "orders".into(),
            contract_version: "c".into(),
            release_version: "r".into(),
            worker_id: "w-1".into(),
            protocol: "rest".into(),
            endpoint: "https://w".into(),
            artifact_id: String::new(),
            artifact_digest: String::new(),
            registered_at_epoch_ms: 1,
            last_heartbeat_at_epoch_ms: 2,
            draining_since_epoch_ms: 0,
            state_version: 12,
            updated_at_epoch_ms: 3,
        }
    }

    #[test]
    fn entries_and_events_use_the_spec_names_and_round_trip() {
        let e = entry();
        let item = entry_item(&e);
        assert_eq!(item["registry_key"], s("acme#orders"));
        assert_eq!(item["registry_sort"], s("worker#w-1"));
        assert_eq!(item["record_type"], s("WORKER"));
        assert_eq!(item["state_version"], n(12));
        assert_eq!(item.len(), 17);
        assert_eq!(entry_from_item(&item).unwrap(), e);

        let ev = WorkerEvent {
            event_type: WorkerEventType::Drain,
            at_epoch_ms: 3,
            state_version: 12,
            snapshot: e.clone(),
        };
        let item = event_item(&ev);
        assert_eq!(item["registry_sort"], s("event#w-1#0000000000000000012"));
        assert_eq!(item["record_type"], s("WORKER_EVENT"));
        assert_eq!(item["event_type"], s("DRAIN"));
        assert_eq!(item["at_epoch_ms"], n(3));
        assert_eq!(event_from_item(&item).unwrap(), ev);
    }
}
