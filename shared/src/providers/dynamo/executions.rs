//! `dynamo` execution store (`EXECUTION.md` §10.5–§10.7) on the execution
//! table (`TPF_DYNAMO_EXECUTION_TABLE`), keys `pk` = `<tenantId>#<name>`,
//! `sk`:
//!
//! | Item | name in `pk` | `sk` | Attributes |
//! |---|---|---|---|
//! | execution | `executionId` | `exec` | the short names of §10.5, `h`/`hb`, `dp`/`ds`/`cs` |
//! | history chunk | `executionId` | `hist#<first version, 19 digits>` | `h` (8 events), `ttl` |
//! | payload | `executionId` | `payload#<input\|result>#<hex>` | `txt`, `ttl` ([`super::payloads`]) |
//! | key entry | `executionKey` | `key` | `eid`, `ih`, `ca`, `ttl` |
//!
//! Writes (§10.6): T1 is a `PutItem` (key-less) or a `TransactWriteItems`
//! of the execution and its key entry (keyed), after the `input` payload;
//! T2–T9 are one conditional `UpdateItem` (`#v = :expv AND #ttl > :now_s`)
//! that sets the record's mutable attributes from the new record, removes
//! the null ones and appends the event to `h`. The change that would put a
//! ninth event into `h` is a `TransactWriteItems` of that update (with `h` =
//! [the event], `hb` = its version) and a `Put` of the chunk holding the
//! eight older events; a T4 that grows `ttl` extends the key entry, the
//! `input` payload item and every chunk in the same transaction. Both read
//! the item first (consistent `GetItem`): the chunk needs the eight events,
//! the TTL rule the stored `ttl`.
//!
//! Reads: `get` and `list` read the payloads behind `in` and `out` and
//! verify them; a missing or altered one fails the read with
//! [`StoreError::PayloadUnavailable`]. `get_for_dispatch` answers such a
//! record without its texts (input `null`, no result) and the reason, so
//! the dispatcher can still claim it and commit `PAYLOAD_UNAVAILABLE`
//! (§3.7); the changes never write `in`, so the reference stays as stored.
//!
//! Lost writes: a failed condition (or a transaction cancelled by one, or by
//! a conflict) is [`Write::Lost`], unless the item returned with it
//! (`ALL_OLD`) already holds this very change (same `v`, and this exact
//! event last in `h`): then it is the SDK's retry of a write that won, and
//! the answer is [`Write::Written`].

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use serde_json::value::RawValue;

use super::indexes::{DUE_INDEX, LIST_INDEX};
use super::payloads::{
    batch_get, clamp_shards, conditional, get_item, get_n, get_s, is_live, is_tenant, key, key_of,
    n, name_of_pk, now_s, opt_n, opt_s, pad19, pk_of, put_failed, put_opt_s, require_key_part, s,
    shard_of, transact, update_failed, Conditional, DynamoStateSettings, Expr, PayloadRef,
    Payloads, Reference, ShardedIndex, Slot, Transaction, PK, TTL,
};
use super::{build_error, unavailable, Item};
use crate::domain::execution::{
    EventType, ExecutionRecord, ExecutionStatus, HistoryEvent, KeyEntry, ResultShape,
};
use crate::error::StoreError;
use crate::ports::{CreateExecution, DispatchRecord, ExecutionFilter, ExecutionStore, Write};
use crate::providers::memory::executions::{check_create_args, check_update_args, page_history};

const EXEC_SK: &str = "exec";
const KEY_SK: &str = "key";
const HIST_PREFIX: &str = "hist#";
/// Events kept in the execution item (`h`).
const INLINE_EVENTS: u64 = 8;
/// Most actions in one `TransactWriteItems`.
const TX_MAX_ITEMS: usize = 100;
/// Attempts of a keyed T1 (stale key entries replaced, conflicts).
const CREATE_ATTEMPTS: usize = 4;
/// Attempts of a transaction whose optional items were refused.
const UPDATE_ATTEMPTS: usize = 3;

/// Execution store on DynamoDB (with large payloads in S3).
#[derive(Debug, Clone)]
pub struct DynamoExecutionStore {
    client: Client,
    table: String,
    payloads: Payloads,
    shards: u8,
}

impl DynamoExecutionStore {
    /// The store on `table` (the template's `ExecutionTable`),
    /// payloads per `settings`. `s3` must be configured for the payload
    /// bucket's endpoint (path-style addressing for local endpoints).
    pub fn new(
        client: Client,
        s3: aws_sdk_s3::Client,
        table: String,
        settings: DynamoStateSettings,
    ) -> Self {
        let payloads = Payloads::new(client.clone(), s3, table.clone(), &settings);
        Self {
            client,
            table,
            payloads,
            shards: clamp_shards(settings.index_shards),
        }
    }
}

fn hist_sk(first_version: u64) -> String {
    format!("{HIST_PREFIX}{}", pad19(first_version as i64))
}

/// `<executionKey>`'s form tells a keyed execution (`…:executionKey:<raw>`)
/// from a key-less one (`…:execution:<id>`, no key entry), after the two
/// length-prefixed segments of `EXECUTION.md` §2. An unparsable key counts
/// as keyed (the transaction then learns there is no entry).
pub(crate) fn is_keyed(execution_key: &str) -> bool {
    fn segment(rest: &str) -> Option<&str> {
        let (len, rest) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let end = match rest.char_indices().nth(len) {
            Some((i, _)) => i,
            None if rest.chars().count() == len => rest.len(),
            None => return None,
        };
        rest[end..].strip_prefix(':')
    }
    match segment(execution_key).and_then(segment) {
        Some(rest) => !rest.starts_with("execution:"),
        None => true,
    }
}

/// Serde name of a unit enum (`SCREAMING_SNAKE_CASE`).
fn enum_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn enum_parse<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        StoreError::Unavailable(format!("stored {what} has an unknown value {name:?}"))
    })
}

/// An event as an element of `h` (§10.5: short names, nulls absent).
fn event_av(e: &HistoryEvent) -> AttributeValue {
    let mut m = Item::new();
    m.insert("v".into(), n(e.version));
    m.insert("ty".into(), s(enum_name(&e.event_type)));
    m.insert("at".into(), n(e.at_epoch_ms));
    put_opt_s(&mut m, "ps", e.previous_status.map(|p| p.as_str()));
    m.insert("st".into(), s(e.status.as_str()));
    m.insert("si".into(), n(e.step_index));
    m.insert("att".into(), n(e.attempt));
    put_opt_s(&mut m, "tk", e.transition_key.as_deref());
    put_opt_s(&mut m, "ec", e.error_code.as_deref());
    put_opt_s(&mut m, "em", e.error_message.as_deref());
    put_opt_s(&mut m, "tr", e.terminal_reason.as_deref());
    if let Some(nd) = e.next_due_at_epoch_ms {
        m.insert("nd".into(), n(nd));
    }
    put_opt_s(&mut m, "ac", e.actor.as_deref());
    put_opt_s(&mut m, "rn", e.reason.as_deref());
    put_opt_s(&mut m, "lo", e.lease_owner.as_deref());
    put_opt_s(&mut m, "wid", e.worker_id.as_deref());
    put_opt_s(&mut m, "iid", e.interaction_id.as_deref());
    put_opt_s(&mut m, "uid", e.unit_id.as_deref());
    AttributeValue::M(m)
}

fn event_from(av: &AttributeValue) -> Result<HistoryEvent, StoreError> {
    let AttributeValue::M(m) = av else {
        return Err(StoreError::Unavailable(
            "a stored history event is not a map".to_owned(),
        ));
    };
    let status = |name: &str| -> Result<Option<ExecutionStatus>, StoreError> {
        opt_s(m, name)?
            .map(|v| enum_parse("event status", &v))
            .transpose()
    };
    Ok(HistoryEvent {
        version: get_n(m, "v")?,
        event_type: enum_parse::<EventType>("event type", &get_s(m, "ty")?)?,
        at_epoch_ms: get_n(m, "at")?,
        previous_status: status("ps")?,
        status: status("st")?.ok_or_else(|| {
            StoreError::Unavailable("a stored history event has no status".to_owned())
        })?,
        step_index: get_n(m, "si")?,
        attempt: get_n(m, "att")?,
        transition_key: opt_s(m, "tk")?,
        error_code: opt_s(m, "ec")?,
        error_message: opt_s(m, "em")?,
        terminal_reason: opt_s(m, "tr")?,
        next_due_at_epoch_ms: opt_n(m, "nd")?,
        actor: opt_s(m, "ac")?,
        reason: opt_s(m, "rn")?,
        lease_owner: opt_s(m, "lo")?,
        worker_id: opt_s(m, "wid")?,
        interaction_id: opt_s(m, "iid")?,
        unit_id: opt_s(m, "uid")?,
    })
}

/// The events of an `h` attribute.
fn events_of(item: &Item) -> Result<Vec<HistoryEvent>, StoreError> {
    match item.get("h") {
        Some(AttributeValue::L(list)) => list.iter().map(event_from).collect(),
        None => Ok(Vec::new()),
        Some(_) => Err(StoreError::Unavailable(
            "a stored history is not a list".to_owned(),
        )),
    }
}

/// `ds` (§10.5): present iff the status is `QUEUED`, `WAIT_RETRY` or `RUNNING`
/// (and a due time is set).
fn ds_of(r: &ExecutionRecord) -> Option<String> {
    let active = matches!(
        r.status,
        ExecutionStatus::Queued | ExecutionStatus::WaitRetry | ExecutionStatus::Running
    );
    r.next_due_epoch_ms
        .filter(|_| active)
        .map(|nd| format!("{}#{}#{}", pad19(nd), r.tenant_id, r.execution_id))
}

/// The attributes every change may set (`None`: removed).
fn mutable_attributes(
    r: &ExecutionRecord,
    result_ref: Option<&str>,
) -> Vec<(&'static str, Option<AttributeValue>)> {
    let opt = |v: Option<&String>| v.map(s);
    vec![
        ("st", Some(s(r.status.as_str()))),
        ("v", Some(n(r.version))),
        ("si", Some(n(r.current_step_index))),
        ("att", Some(n(r.attempt))),
        ("ua", Some(n(r.updated_at_epoch_ms))),
        (TTL, Some(n(r.ttl_epoch_s))),
        ("lo", opt(r.lease_owner.as_ref())),
        (
            "le",
            (r.lease_expires_epoch_ms != 0).then(|| n(r.lease_expires_epoch_ms)),
        ),
        ("nd", r.next_due_epoch_ms.map(n)),
        ("tk", opt(r.last_transition_key.as_ref())),
        ("au", opt(r.await_unit_id.as_ref())),
        ("out", result_ref.map(s)),
        ("ec", opt(r.error_code.as_ref())),
        ("em", opt(r.error_message.as_ref())),
        ("ds", ds_of(r).map(s)),
    ]
}

/// The whole execution item of T1.
fn execution_item(
    r: &ExecutionRecord,
    input_ref: &str,
    result_ref: Option<&str>,
    event: &HistoryEvent,
    shards: u8,
) -> Item {
    let mut item = key(pk_of(&r.tenant_id, &r.execution_id), EXEC_SK);
    item.insert("t".into(), s(&r.tenant_id));
    item.insert("ek".into(), s(&r.execution_key));
    item.insert("ih".into(), s(&r.input_hash));
    item.insert("pid".into(), s(&r.pipeline_id));
    item.insert("cv".into(), s(&r.contract_version));
    item.insert("rv".into(), s(&r.release_version));
    item.insert("rs".into(), s(r.result_shape.as_str()));
    item.insert("in".into(), s(input_ref));
    item.insert("ca".into(), n(r.created_at_epoch_ms));
    item.insert(
        "cs".into(),
        s(format!(
            "{}#{}",
            pad19(r.created_at_epoch_ms),
            r.execution_id
        )),
    );
    item.insert("dp".into(), s(shard_of(&r.execution_id, shards)));
    for (name, value) in mutable_attributes(r, result_ref) {
        if let Some(v) = value {
            item.insert(name.into(), v);
        }
    }
    item.insert("h".into(), AttributeValue::L(vec![event_av(event)]));
    item.insert("hb".into(), n(event.version));
    item
}

fn result_text(outputs: &[Box<RawValue>]) -> String {
    let parts: Vec<&str> = outputs.iter().map(|o| o.get()).collect();
    format!("[{}]", parts.join(","))
}

/// The record of an execution item and its payload texts.
fn record_from(
    item: &Item,
    input: String,
    result: Option<String>,
) -> Result<ExecutionRecord, StoreError> {
    let pk = get_s(item, PK)?;
    let execution_id = name_of_pk(&pk)
        .ok_or_else(|| StoreError::Unavailable("a stored execution has no id".to_owned()))?
        .to_owned();
    let input_payload = RawValue::from_string(input).map_err(|_| {
        StoreError::PayloadUnavailable(format!("the input payload of {execution_id} is not JSON"))
    })?;
    let result_payload = match result {
        Some(text) => Some(
            serde_json::from_str::<Vec<Box<RawValue>>>(&text).map_err(|_| {
                StoreError::PayloadUnavailable(format!(
                    "the result payload of {execution_id} is not a JSON array"
                ))
            })?,
        ),
        None => None,
    };
    Ok(ExecutionRecord {
        tenant_id: get_s(item, "t")?,
        execution_id,
        execution_key: get_s(item, "ek")?,
        input_hash: get_s(item, "ih")?,
        pipeline_id: get_s(item, "pid")?,
        contract_version: get_s(item, "cv")?,
        release_version: get_s(item, "rv")?,
        result_shape: enum_parse::<ResultShape>("result shape", &get_s(item, "rs")?)?,
        status: enum_parse::<ExecutionStatus>("status", &get_s(item, "st")?)?,
        version: get_n(item, "v")?,
        current_step_index: get_n(item, "si")?,
        attempt: get_n(item, "att")?,
        lease_owner: opt_s(item, "lo")?,
        lease_expires_epoch_ms: opt_n(item, "le")?.unwrap_or(0),
        next_due_epoch_ms: opt_n(item, "nd")?,
        last_transition_key: opt_s(item, "tk")?,
        input_payload,
        await_unit_id: opt_s(item, "au")?,
        result_payload,
        error_code: opt_s(item, "ec")?,
        error_message: opt_s(item, "em")?,
        created_at_epoch_ms: get_n(item, "ca")?,
        updated_at_epoch_ms: get_n(item, "ua")?,
        ttl_epoch_s: get_n(item, TTL)?,
    })
}

/// The payload references of an execution item (input, then result).
fn payload_refs(item: &Item) -> Result<Vec<PayloadRef>, StoreError> {
    let tenant = get_s(item, "t")?;
    let pk = get_s(item, PK)?;
    let owner = name_of_pk(&pk).unwrap_or_default().to_owned();
    let mut refs = vec![PayloadRef {
        tenant: tenant.clone(),
        owner: owner.clone(),
        slot: Slot::Input,
        reference: get_s(item, "in")?,
    }];
    if let Some(reference) = opt_s(item, "out")? {
        refs.push(PayloadRef {
            tenant,
            owner,
            slot: Slot::Result,
            reference,
        });
    }
    Ok(refs)
}

/// T2's guard on a stored item at `now` (live, claimable status, due, lease
/// free or expired).
fn claimable(item: &Item, now_ms: i64) -> Result<bool, StoreError> {
    if !is_live(item, now_ms) {
        return Ok(false);
    }
    let status = get_s(item, "st")?;
    if !matches!(status.as_str(), "QUEUED" | "WAIT_RETRY" | "RUNNING") {
        return Ok(false);
    }
    let due = opt_n::<i64>(item, "nd")?.is_some_and(|d| d <= now_ms);
    let free = opt_s(item, "lo")?.is_none() || opt_n::<i64>(item, "le")?.unwrap_or(0) <= now_ms;
    Ok(due && free)
}

/// True when `stored` already is the item T1 wrote (a retried create).
fn is_own_create(stored: &Item, written: &Item) -> bool {
    ["v", "ek", "ih", "ca", "h"]
        .iter()
        .all(|a| stored.get(*a) == written.get(*a))
}

/// True when `stored` already holds the change to `next` with `event` (a
/// write that won and whose response was lost): the same `v`, and this very
/// event (every member, not only `v`, `ty` and `at`: two dispatchers
/// claiming one version in the same millisecond differ only in `lo`) last
/// in `h`.
fn is_own_update(stored: &Item, next: &ExecutionRecord, event: &HistoryEvent) -> bool {
    if get_n::<u64>(stored, "v").ok() != Some(next.version) {
        return false;
    }
    match stored.get("h") {
        Some(AttributeValue::L(h)) => h.last() == Some(&event_av(event)),
        _ => false,
    }
}

fn key_entry_item(k: &KeyEntry) -> Item {
    let mut item = key(pk_of(&k.tenant_id, &k.execution_key), KEY_SK);
    item.insert("eid".into(), s(&k.execution_id));
    item.insert("ih".into(), s(&k.input_hash));
    item.insert("ca".into(), n(k.created_at_epoch_ms));
    item.insert(TTL.into(), n(k.ttl_epoch_s));
    item
}

fn key_entry_from(item: &Item, tenant: &str, execution_key: &str) -> Result<KeyEntry, StoreError> {
    Ok(KeyEntry {
        tenant_id: tenant.to_owned(),
        execution_key: execution_key.to_owned(),
        execution_id: get_s(item, "eid")?,
        input_hash: get_s(item, "ih")?,
        created_at_epoch_ms: get_n(item, "ca")?,
        ttl_epoch_s: get_n(item, TTL)?,
    })
}

fn put_action(
    table: &str,
    item: Item,
    condition: &str,
    names: &[(&str, &str)],
    values: Vec<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (p, a) in names {
        put = put.expression_attribute_names(*p, *a);
    }
    for (p, v) in values {
        put = put.expression_attribute_values(p, v);
    }
    Ok(TransactWriteItem::builder()
        .put(put.build().map_err(build_error)?)
        .build())
}

/// `SET #ttl = :ttl` on another item of the execution, conditioned by `condition`.
fn extend_action(
    table: &str,
    key_item: Item,
    ttl_epoch_s: i64,
    condition: &str,
    extra: Vec<(&str, &str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key_item))
        .update_expression("SET #ttl = :ttl")
        .condition_expression(condition)
        .expression_attribute_names("#pk", PK)
        .expression_attribute_names("#ttl", TTL)
        .expression_attribute_values(":ttl", n(ttl_epoch_s));
    for (name, attr, value) in extra {
        update = update
            .expression_attribute_names(name, attr)
            .expression_attribute_values(format!(":{}", &name[1..]), value);
    }
    Ok(TransactWriteItem::builder()
        .update(update.build().map_err(build_error)?)
        .build())
}

impl DynamoExecutionStore {
    async fn get_exec(&self, tenant: &str, id: &str) -> Result<Option<Item>, StoreError> {
        get_item(&self.client, &self.table, pk_of(tenant, id), EXEC_SK).await
    }

    /// The record of a live item, with its payloads read and verified.
    async fn load(&self, item: &Item, now_ms: i64) -> Result<ExecutionRecord, StoreError> {
        let refs = payload_refs(item)?;
        let input = self.payloads.get(
            &refs[0].tenant,
            &refs[0].owner,
            Slot::Input,
            &refs[0].reference,
            now_ms,
        );
        let (input, result) = match refs.get(1) {
            Some(r) => {
                let result =
                    self.payloads
                        .get(&r.tenant, &r.owner, Slot::Result, &r.reference, now_ms);
                let (i, o) = tokio::try_join!(input, result)?;
                (i, Some(o))
            }
            None => (input.await?, None),
        };
        record_from(item, input, result)
    }

    async fn create_keyless(&self, item: Item, now_ms: i64) -> Result<CreateExecution, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now_s")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now_s", n(now_s(now_ms)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match conditional("PutItem", result, put_failed)? {
            Conditional::Done => CreateExecution::Created,
            Conditional::Failed(Some(old)) if is_own_create(&old, &item) => {
                CreateExecution::Created
            }
            Conditional::Failed(_) => CreateExecution::IdTaken,
        })
    }

    async fn create_keyed(
        &self,
        item: Item,
        k: &KeyEntry,
        now_ms: i64,
    ) -> Result<CreateExecution, StoreError> {
        // A live entry whose execution is missing or expired is free: it
        // is replaced by naming it exactly (`eid` and `ttl`).
        let mut stale: Option<(String, i64)> = None;
        for attempt in 0..CREATE_ATTEMPTS {
            let exec = put_action(
                &self.table,
                item.clone(),
                "attribute_not_exists(#pk) OR #ttl <= :now_s",
                &[("#pk", PK), ("#ttl", TTL)],
                vec![(":now_s", n(now_s(now_ms)))],
            )?;
            let mut values = vec![(":now_s", n(now_s(now_ms)))];
            let condition = match &stale {
                None => "attribute_not_exists(#pk) OR #ttl <= :now_s",
                Some((eid, ttl)) => {
                    values.push((":stale_eid", s(eid)));
                    values.push((":stale_ttl", n(ttl)));
                    "attribute_not_exists(#pk) OR #ttl <= :now_s OR (#eid = :stale_eid AND #ttl = :stale_ttl)"
                }
            };
            let mut names = vec![("#pk", PK), ("#ttl", TTL)];
            if stale.is_some() {
                names.push(("#eid", "eid"));
            }
            let entry = put_action(&self.table, key_entry_item(k), condition, &names, values)?;
            let request = self
                .client
                .transact_write_items()
                .transact_items(exec)
                .transact_items(entry)
                .client_request_token(uuid::Uuid::new_v4().to_string());
            let reasons = match transact(request).await? {
                Transaction::Done => return Ok(CreateExecution::Created),
                Transaction::Cancelled(reasons) if reasons.len() == 2 => reasons,
                Transaction::Cancelled(reasons) => {
                    return Err(StoreError::Unavailable(format!(
                        "T1 transaction cancelled with {} reasons",
                        reasons.len()
                    )))
                }
            };
            if reasons[0].condition_failed() {
                return Ok(match &reasons[0].item {
                    Some(old) if is_own_create(old, &item) => CreateExecution::Created,
                    _ => CreateExecution::IdTaken,
                });
            }
            if reasons[1].condition_failed() {
                let holder = match &reasons[1].item {
                    Some(old) => Some(old.clone()),
                    None => {
                        get_item(
                            &self.client,
                            &self.table,
                            pk_of(&k.tenant_id, &k.execution_key),
                            KEY_SK,
                        )
                        .await?
                    }
                };
                let Some(holder) = holder.filter(|h| is_live(h, now_ms)) else {
                    continue;
                };
                let entry = key_entry_from(&holder, &k.tenant_id, &k.execution_key)?;
                let live_execution = self
                    .get_exec(&k.tenant_id, &entry.execution_id)
                    .await?
                    .is_some_and(|e| is_live(&e, now_ms));
                if live_execution {
                    return Ok(CreateExecution::KeyTaken(entry));
                }
                stale = Some((entry.execution_id, entry.ttl_epoch_s));
                continue;
            }
            if reasons.iter().any(|r| r.conflict()) {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                continue;
            }
            let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
            return Err(StoreError::Unavailable(format!(
                "T1 transaction cancelled: {codes:?}"
            )));
        }
        Err(StoreError::Unavailable(
            "T1 kept meeting concurrent writers of its key entry".to_owned(),
        ))
    }

    /// The `UpdateItem` of T2–T9 (and of the spill, with `h` replaced).
    fn change_expr(
        next: &ExecutionRecord,
        expected_version: u64,
        event: &HistoryEvent,
        result_ref: Option<&str>,
        spill: bool,
        now_ms: i64,
    ) -> (Expr, &'static str) {
        let mut expr = Expr::default();
        for (name, value) in mutable_attributes(next, result_ref) {
            expr.set_or_remove(name, value);
        }
        let ev = AttributeValue::L(vec![event_av(event)]);
        if spill {
            expr.set("h", ev);
            expr.set("hb", n(event.version));
        } else {
            let h = expr.name("h");
            expr.value(":ev", ev);
            expr.set_clause(format!("{h} = list_append({h}, :ev)"));
        }
        expr.value(":expv", n(expected_version));
        expr.value(":now_s", n(now_s(now_ms)));
        (expr, "#v = :expv AND #ttl > :now_s")
    }

    /// The other items a growing `ttl` extends (§3.9): the key entry (if
    /// keyed), the `input` payload item (if referenced as one) and every
    /// history chunk, oldest first.
    fn extensions(
        &self,
        next: &ExecutionRecord,
        current: &Item,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let ttl = next.ttl_epoch_s;
        let mut out = Vec::new();
        let pk = pk_of(&next.tenant_id, &next.execution_id);
        let hb: u64 = get_n(current, "hb")?;
        let mut first = 0;
        while first < hb {
            out.push(extend_action(
                &self.table,
                key(pk.clone(), hist_sk(first)),
                ttl,
                "attribute_exists(#pk)",
                vec![],
            )?);
            first += INLINE_EVENTS;
        }
        if let Some(Reference::Item(hex)) = Reference::parse(&get_s(current, "in")?) {
            let (p, k) = Payloads::item_key(&next.tenant_id, &next.execution_id, Slot::Input, hex);
            out.push(extend_action(
                &self.table,
                key(p, k),
                ttl,
                "attribute_exists(#pk)",
                vec![],
            )?);
        }
        if is_keyed(&next.execution_key) {
            out.push(extend_action(
                &self.table,
                key(pk_of(&next.tenant_id, &next.execution_key), KEY_SK),
                ttl,
                "attribute_exists(#pk) AND #eid = :eid AND #ttl < :ttl",
                vec![("#eid", "eid", s(&next.execution_id))],
            )?);
        }
        Ok(out)
    }

    /// The chunk `hist#<first>` holding the eight events of `h` that the
    /// change to `next` pushes out.
    fn spill_chunk(
        &self,
        next: &ExecutionRecord,
        current: &Item,
        now_ms: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let first = next.version - INLINE_EVENTS;
        let hb: u64 = get_n(current, "hb")?;
        let h = match current.get("h") {
            Some(AttributeValue::L(h)) => h.clone(),
            _ => Vec::new(),
        };
        if hb != first || h.len() as u64 != INLINE_EVENTS {
            return Err(StoreError::Unavailable(format!(
                "execution {} holds {} inline events from version {hb}, expected {INLINE_EVENTS} from {first}",
                next.execution_id,
                h.len()
            )));
        }
        let mut item = key(pk_of(&next.tenant_id, &next.execution_id), hist_sk(first));
        item.insert("h".into(), AttributeValue::L(h));
        item.insert(TTL.into(), n(next.ttl_epoch_s));
        put_action(
            &self.table,
            item,
            "attribute_not_exists(#pk) OR #ttl <= :now_s",
            &[("#pk", PK), ("#ttl", TTL)],
            vec![(":now_s", n(now_s(now_ms)))],
        )
    }

    /// A change that is one conditional `UpdateItem` of the execution item
    /// (a lost condition whose stored item is this very change — an SDK
    /// retry of a write that won — is `Written`).
    async fn plain_update(
        &self,
        next: &ExecutionRecord,
        event: &HistoryEvent,
        expr: &Expr,
        condition: &str,
    ) -> Result<Write, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                pk_of(&next.tenant_id, &next.execution_id),
                EXEC_SK,
            )))
            .update_expression(expr.update_expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match conditional("UpdateItem", result, update_failed)? {
            Conditional::Done => Write::Written,
            Conditional::Failed(Some(old)) if is_own_update(&old, next, event) => Write::Written,
            Conditional::Failed(_) => Write::Lost,
        })
    }

    /// A change that is a transaction: the spill and/or the TTL extension.
    #[allow(clippy::too_many_arguments)]
    async fn transact_change(
        &self,
        next: &ExecutionRecord,
        event: &HistoryEvent,
        expr: &Expr,
        condition: &str,
        chunk: Option<TransactWriteItem>,
        mut extensions: Vec<TransactWriteItem>,
    ) -> Result<Write, StoreError> {
        let pk = pk_of(&next.tenant_id, &next.execution_id);
        // At most 100 actions: the oldest chunks are extended on their own
        // first (harmless if the change then loses).
        let fixed = 1 + usize::from(chunk.is_some());
        while fixed + extensions.len() > TX_MAX_ITEMS {
            let oldest = extensions.remove(0);
            if let Some(u) = oldest.update {
                let result = self
                    .client
                    .update_item()
                    .table_name(u.table_name)
                    .set_key(Some(u.key))
                    .update_expression(u.update_expression)
                    .set_condition_expression(u.condition_expression)
                    .set_expression_attribute_names(u.expression_attribute_names)
                    .set_expression_attribute_values(u.expression_attribute_values)
                    .send()
                    .await;
                conditional("UpdateItem", result, update_failed)?;
            }
        }
        for _ in 0..UPDATE_ATTEMPTS {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), EXEC_SK)))
                .update_expression(expr.update_expression())
                .condition_expression(condition)
                .set_expression_attribute_names(Some(expr.names.clone()))
                .set_expression_attribute_values(Some(expr.values.clone()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_error)?;
            let mut request = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .client_request_token(uuid::Uuid::new_v4().to_string());
            if let Some(c) = &chunk {
                request = request.transact_items(c.clone());
            }
            for e in &extensions {
                request = request.transact_items(e.clone());
            }
            let reasons = match transact(request).await? {
                Transaction::Done => return Ok(Write::Written),
                Transaction::Cancelled(reasons) => reasons,
            };
            if let Some(own) = reasons.first().filter(|r| r.condition_failed()) {
                return Ok(match &own.item {
                    Some(old) if is_own_update(old, next, event) => Write::Written,
                    _ => Write::Lost,
                });
            }
            if reasons.iter().any(|r| r.conflict()) {
                return Ok(Write::Lost);
            }
            if chunk.is_some() && reasons.get(1).is_some_and(|r| r.condition_failed()) {
                return Err(StoreError::Unavailable(format!(
                    "history chunk {} of execution {} exists already",
                    hist_sk(next.version - INLINE_EVENTS),
                    next.execution_id
                )));
            }
            // An extension refused (a key entry now held by another
            // execution or already living longer, an item gone): drop it.
            let offset = fixed;
            let refused: Vec<usize> = reasons
                .iter()
                .enumerate()
                .skip(offset)
                .filter(|(_, r)| r.condition_failed())
                .map(|(i, _)| i - offset)
                .collect();
            if refused.is_empty() || reasons.iter().any(|r| !r.ok() && !r.condition_failed()) {
                let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
                return Err(StoreError::Unavailable(format!(
                    "transaction of execution {} cancelled: {codes:?}",
                    next.execution_id
                )));
            }
            for i in refused.into_iter().rev() {
                extensions.remove(i);
            }
        }
        Err(StoreError::Unavailable(format!(
            "transaction of execution {} kept being refused",
            next.execution_id
        )))
    }
}

#[async_trait]
impl ExecutionStore for DynamoExecutionStore {
    async fn create(
        &self,
        record: &ExecutionRecord,
        event: &HistoryEvent,
        key_entry: Option<&KeyEntry>,
        now_ms: i64,
    ) -> Result<CreateExecution, StoreError> {
        check_create_args(record, event, key_entry)?;
        require_key_part("a tenantId", &record.tenant_id)?;
        let (tenant, id) = (&record.tenant_id, &record.execution_id);
        // The payloads first: immutable, keyed by this execution's id.
        let input_ref = self
            .payloads
            .put(
                tenant,
                id,
                Slot::Input,
                record.input_payload.get(),
                record.ttl_epoch_s,
            )
            .await?;
        let result_ref = match &record.result_payload {
            Some(outputs) => Some(
                self.payloads
                    .put(
                        tenant,
                        id,
                        Slot::Result,
                        &result_text(outputs),
                        record.ttl_epoch_s,
                    )
                    .await?,
            ),
            None => None,
        };
        let item = execution_item(
            record,
            &input_ref,
            result_ref.as_deref(),
            event,
            self.shards,
        );
        match key_entry {
            None => self.create_keyless(item, now_ms).await,
            Some(k) => self.create_keyed(item, k, now_ms).await,
        }
    }

    async fn get(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        if !is_tenant(tenant) {
            return Ok(None);
        }
        match self.get_exec(tenant, execution_id).await? {
            Some(item) if is_live(&item, now_ms) => Ok(Some(self.load(&item, now_ms).await?)),
            _ => Ok(None),
        }
    }

    async fn get_state(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        if !is_tenant(tenant) {
            return Ok(None);
        }
        // No change writes `in` back, and a change of a record without
        // `result_payload` removes `out`: the callers change only records
        // that hold none (WAITING_EXTERNAL).
        match self.get_exec(tenant, execution_id).await? {
            Some(item) if is_live(&item, now_ms) => {
                Ok(Some(record_from(&item, "null".to_owned(), None)?))
            }
            _ => Ok(None),
        }
    }

    async fn get_for_dispatch(
        &self,
        tenant: &str,
        execution_id: &str,
        now_ms: i64,
    ) -> Result<Option<DispatchRecord>, StoreError> {
        if !is_tenant(tenant) {
            return Ok(None);
        }
        let Some(item) = self
            .get_exec(tenant, execution_id)
            .await?
            .filter(|i| is_live(i, now_ms))
        else {
            return Ok(None);
        };
        match self.load(&item, now_ms).await {
            Ok(record) => Ok(Some(DispatchRecord {
                record,
                unreadable_payload: None,
            })),
            // The record without its texts: no change writes `in` back, and
            // only a SUCCEEDED record (never claimed) holds `out`.
            Err(StoreError::PayloadUnavailable(why)) => Ok(Some(DispatchRecord {
                record: record_from(&item, "null".to_owned(), None)?,
                unreadable_payload: Some(why),
            })),
            Err(e) => Err(e),
        }
    }

    async fn get_key(
        &self,
        tenant: &str,
        execution_key: &str,
        now_ms: i64,
    ) -> Result<Option<KeyEntry>, StoreError> {
        if !is_tenant(tenant) {
            return Ok(None);
        }
        let Some(item) = get_item(
            &self.client,
            &self.table,
            pk_of(tenant, execution_key),
            KEY_SK,
        )
        .await?
        .filter(|i| is_live(i, now_ms)) else {
            return Ok(None);
        };
        let entry = key_entry_from(&item, tenant, execution_key)?;
        let live = self
            .get_exec(tenant, &entry.execution_id)
            .await?
            .is_some_and(|e| is_live(&e, now_ms));
        Ok(live.then_some(entry))
    }

    async fn update(
        &self,
        next: &ExecutionRecord,
        expected_version: u64,
        event: &HistoryEvent,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        check_update_args(next, expected_version, event)?;
        if !is_tenant(&next.tenant_id) {
            return Ok(Write::Lost);
        }
        let (tenant, id) = (&next.tenant_id, &next.execution_id);
        let spill = next.version % INLINE_EVENTS == 0;
        // A T4 may grow `ttl`: its plain `UpdateItem` is conditioned on the
        // stored `ttl` not growing, and the item it then returns (ALL_OLD)
        // decides the transaction, so it reads nothing first.
        let may_grow = next.status == ExecutionStatus::WaitingExternal;
        // The spill needs the eight events.
        let current = if spill {
            match self.get_exec(tenant, id).await? {
                Some(item)
                    if is_live(&item, now_ms)
                        && get_n::<u64>(&item, "v").ok() == Some(expected_version) =>
                {
                    Some(item)
                }
                _ => return Ok(Write::Lost),
            }
        } else {
            None
        };
        let result_ref = match &next.result_payload {
            Some(outputs) => Some(
                self.payloads
                    .put(
                        tenant,
                        id,
                        Slot::Result,
                        &result_text(outputs),
                        next.ttl_epoch_s,
                    )
                    .await?,
            ),
            None => None,
        };
        let (mut expr, condition) = Self::change_expr(
            next,
            expected_version,
            event,
            result_ref.as_deref(),
            spill,
            now_ms,
        );
        let (chunk, extensions) = match &current {
            Some(cur) => {
                let chunk = if spill {
                    Some(self.spill_chunk(next, cur, now_ms)?)
                } else {
                    None
                };
                let grows = next.ttl_epoch_s > get_n::<i64>(cur, TTL)?;
                let extensions = if grows {
                    self.extensions(next, cur)?
                } else {
                    Vec::new()
                };
                (chunk, extensions)
            }
            None => (None, Vec::new()),
        };
        if chunk.is_some() || !extensions.is_empty() {
            return self
                .transact_change(next, event, &expr, condition, chunk, extensions)
                .await;
        }
        if !(may_grow && current.is_none()) {
            return self.plain_update(next, event, &expr, condition).await;
        }
        // Without a read, a T4 holds as one `UpdateItem` only if `ttl` does
        // not grow (the usual case: a deadline within the TTL).
        let unguarded = expr.clone();
        let ttl = expr.name(TTL);
        expr.value(":grown_ttl", n(next.ttl_epoch_s));
        let guarded = format!("{condition} AND {ttl} >= :grown_ttl");
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk_of(tenant, id), EXEC_SK)))
            .update_expression(expr.update_expression())
            .condition_expression(guarded)
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional("UpdateItem", result, update_failed)? {
            Conditional::Done => Ok(Write::Written),
            Conditional::Failed(Some(old)) if is_own_update(&old, next, event) => {
                Ok(Write::Written)
            }
            // The change holds but grows `ttl`: decided on the item returned
            // (ALL_OLD) as on a read, the transaction extending the
            // execution's other items (or, with none, the plain change).
            Conditional::Failed(Some(old))
                if is_live(&old, now_ms)
                    && get_n::<u64>(&old, "v").ok() == Some(expected_version)
                    && get_n::<i64>(&old, TTL).is_ok_and(|t| t < next.ttl_epoch_s) =>
            {
                let extensions = self.extensions(next, &old)?;
                if extensions.is_empty() {
                    self.plain_update(next, event, &unguarded, condition).await
                } else {
                    self.transact_change(next, event, &unguarded, condition, None, extensions)
                        .await
                }
            }
            Conditional::Failed(_) => Ok(Write::Lost),
        }
    }

    async fn history(
        &self,
        tenant: &str,
        execution_id: &str,
        after_version: Option<u64>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
        if !is_tenant(tenant) {
            return Ok(None);
        }
        let Some(item) = self
            .get_exec(tenant, execution_id)
            .await?
            .filter(|i| is_live(i, now_ms))
        else {
            return Ok(None);
        };
        if limit == 0 {
            return Ok(Some(Vec::new()));
        }
        let hb: u64 = get_n(&item, "hb")?;
        let first = after_version.map_or(0, |a| a.saturating_add(1));
        let mut events = Vec::new();
        if first < hb {
            // Only the chunks holding versions first … first + limit − 1.
            let last = first.saturating_add(limit as u64 - 1).min(hb - 1);
            let pk = pk_of(tenant, execution_id);
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", super::payloads::SK)
                    .expression_attribute_values(":pk", s(&pk))
                    .expression_attribute_values(
                        ":lo",
                        s(hist_sk(first / INLINE_EVENTS * INLINE_EVENTS)),
                    )
                    .expression_attribute_values(
                        ":hi",
                        s(hist_sk(last / INLINE_EVENTS * INLINE_EVENTS)),
                    )
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| unavailable("Query", e))?;
                for chunk in page.items.unwrap_or_default() {
                    events.extend(events_of(&chunk)?);
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        events.extend(events_of(&item)?);
        let page = page_history(&events, after_version, limit);
        // Gapless from the first version asked for (a missing chunk is an outage).
        let gapless = page
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == first + i as u64);
        if !gapless {
            return Err(StoreError::Unavailable(format!(
                "the history of execution {execution_id} is incomplete"
            )));
        }
        Ok(Some(page))
    }

    async fn list(
        &self,
        tenant: &str,
        filter: &ExecutionFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        if !is_tenant(tenant) || limit == 0 {
            return Ok(Vec::new());
        }
        let mut selected: Vec<Item> = Vec::new();
        let mut start = None;
        loop {
            let want = (limit - selected.len()).saturating_add(1).clamp(10, 1000) as i32;
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(LIST_INDEX)
                .expression_attribute_names("#t", "t")
                .expression_attribute_values(":t", s(tenant))
                .scan_index_forward(false)
                .limit(want)
                .set_exclusive_start_key(start.take());
            query = match &after {
                Some((at, id)) => query
                    .key_condition_expression("#t = :t AND #cs < :after")
                    .expression_attribute_names("#cs", "cs")
                    .expression_attribute_values(":after", s(format!("{}#{id}", pad19(*at)))),
                None => query.key_condition_expression("#t = :t"),
            };
            let page = query.send().await.map_err(|e| unavailable("Query", e))?;
            let keys: Vec<(String, String)> = page
                .items
                .unwrap_or_default()
                .iter()
                .filter_map(key_of)
                .collect();
            let found = batch_get(&self.client, &self.table, &keys).await?;
            for k in &keys {
                let Some(item) = found.get(k) else { continue };
                if !is_live(item, now_ms) {
                    continue;
                }
                if let Some(status) = filter.status {
                    if get_s(item, "st")? != status.as_str() {
                        continue;
                    }
                }
                if let Some(pipeline) = &filter.pipeline_id {
                    if get_s(item, "pid")? != *pipeline {
                        continue;
                    }
                }
                selected.push(item.clone());
                if selected.len() == limit {
                    break;
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() && selected.len() < limit => start = Some(k),
                _ => break,
            }
        }
        // The payloads of the page at once.
        let mut refs = Vec::new();
        let mut counts = Vec::new();
        for item in &selected {
            let r = payload_refs(item)?;
            counts.push(r.len());
            refs.extend(r);
        }
        let mut texts = self.payloads.get_many(&refs, now_ms).await?.into_iter();
        let mut out = Vec::with_capacity(selected.len());
        for (item, count) in selected.iter().zip(counts) {
            let input = texts.next().unwrap_or_default();
            let result = if count > 1 { texts.next() } else { None };
            out.push(record_from(item, input, result)?);
        }
        Ok(out)
    }

    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        ShardedIndex {
            client: &self.client,
            table: &self.table,
            index: DUE_INDEX,
            hash_attr: "dp",
            range_attr: "ds",
            shards: self.shards,
        }
        .due(now_ms, limit, |item| claimable(item, now_ms))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::execution::{execution_key, keyless_execution_key};

    #[test]
    fn keyed_and_keyless_execution_keys_are_told_apart() {
        assert!(is_keyed(&execution_key("orders", "2025.01.0", "k:1")));
        assert!(is_keyed(&execution_key("a:b", "c", "execution:x")));
        assert!(!is_keyed(&keyless_execution_key(
            "orders",
            "2025.01.0",
            "e-1"
        )));
        assert!(!is_keyed(&keyless_execution_key("ä:x", "r", "e-1")));
        assert!(is_keyed("garbage"));
    }

    #[test]
    fn events_round_trip_with_short_names() {
        let e = HistoryEvent {
            version: 3,
            event_type: EventType::RetryScheduled,
            at_epoch_ms: 17,
            previous_status: Some(ExecutionStatus::Running),
            status: ExecutionStatus::WaitRetry,
            step_index: 1,
            attempt: 2,
            transition_key: Some("e:1:1".into()),
            error_code: Some("WORKER_TIMEOUT".into()),
            error_message: Some("slow".into()),
            terminal_reason: None,
            next_due_at_epoch_ms: Some(99),
            actor: None,
            reason: None,
            lease_owner: None,
            worker_id: Some("w".into()),
            interaction_id: None,
            unit_id: None,
        };
        let av = event_av(&e);
        let AttributeValue::M(m) = &av else { panic!() };
        assert_eq!(m.get("ty"), Some(&s("RETRY_SCHEDULED")));
        assert_eq!(m.get("ps"), Some(&s("RUNNING")));
        assert!(!m.contains_key("tr"));
        assert_eq!(event_from(&av).unwrap(), e);
    }
}
