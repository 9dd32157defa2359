//! `dynamo` await store (`EXECUTION.md` §10.5–§10.7) on the await table
//! (`TPF_DYNAMO_AWAIT_TABLE`, which may be the execution table: the `sk`
//! values are disjoint), keys `pk` = `<tenantId>#<name>`, `sk`:
//!
//! | Item | name in `pk` | `sk` | Attributes |
//! |---|---|---|---|
//! | unit | `unitId` | `unit` | `t`, `eid`, `sid`, `card`, `st`, `pii`, `si`, `v`, `eic`, `cic`, `ca`, `ua`, `ttl`, `cik` (L of S), `dc` (BOOL) |
//! | interaction | `interactionId` | `interaction` | the short names of §10.5; `req`/`res` are `json:<text>` up to 1 024 bytes, else a payload reference; index keys `pd`, `sp`, `ss` |
//! | correlation entry | `correlationId` | `correlation` | `iid`, `ttl` |
//! | payload | `interactionId` | `payload#<request\|response>#<hex>` | `txt`, `ttl` |
//!
//! `settleDueEpochMs` is stored only as `ss` =
//! `<settleDueEpochMs, 19 digits>#<tenantId>#<interactionId>`;
//! `transportMetadata` (`tm`) is kept as the exact JSON text it was given,
//! like the other providers keep it.
//!
//! Writes (§10.6): the import reads the unit (consistent `GetItem`), then
//! puts the interaction (`ALL_OLD`), its correlation entry and the unit,
//! one by one, each create-if-absent or over an expired item; completion
//! and timeout are one `UpdateItem` conditioned on the version, an open
//! status and `live`; settle/re-check and `finish_unit` are conditional
//! `UpdateItem`s on the status. Reads are consistent `GetItem`s; the pending
//! list queries `pending-index`, the settle selection `settle-index` per
//! shard (then a consistent `BatchGetItem`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use serde_json::value::RawValue;

use super::indexes::{PENDING_INDEX, SETTLE_INDEX};
use super::payloads::{
    clamp_shards, conditional, get_item, get_n, get_s, inline_text, is_live, is_tenant, key, n,
    name_of_pk, now_s, opt_n, opt_s, pad19, pk_of, put_failed, put_opt_s, require_key_part, s,
    shard_of, time_of_range, update_failed, Conditional, DynamoStateSettings, Expr, PayloadRef,
    Payloads, ShardedIndex, Slot, INLINE_MAX_BYTES, PK, TTL,
};
use super::{unavailable, Item};
use crate::domain::awaits::{AwaitInteraction, AwaitUnit, OPEN_STATUSES, UNIT_WAITING};
use crate::error::StoreError;
use crate::ports::{AwaitStore, ImportOutcome, PendingFilter, Write};
use crate::providers::memory::awaits::{
    check_finish_status, check_import_args, existing_unit_outcome, interaction_conflict,
};

const UNIT_SK: &str = "unit";
const INTERACTION_SK: &str = "interaction";
const CORRELATION_SK: &str = "correlation";

/// Await store on DynamoDB (with large payloads in S3).
#[derive(Debug, Clone)]
pub struct DynamoAwaitStore {
    client: Client,
    table: String,
    payloads: Payloads,
    shards: u8,
}

impl DynamoAwaitStore {
    /// The store on `table` (the template's `AwaitTable`),
    /// payloads per `settings`.
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

fn unit_item(u: &AwaitUnit) -> Item {
    let mut item = key(pk_of(&u.tenant_id, &u.unit_id), UNIT_SK);
    item.insert("t".into(), s(&u.tenant_id));
    item.insert("eid".into(), s(&u.execution_id));
    item.insert("sid".into(), s(&u.step_id));
    item.insert("card".into(), s(&u.cardinality));
    item.insert("st".into(), s(&u.status));
    put_opt_s(&mut item, "pii", u.primary_interaction_id.as_deref());
    item.insert("si".into(), n(u.step_index));
    item.insert("v".into(), n(u.version));
    if let Some(c) = u.expected_item_count {
        item.insert("eic".into(), n(c));
    }
    item.insert("cic".into(), n(u.completed_item_count));
    item.insert("ca".into(), n(u.created_at_epoch_ms));
    item.insert("ua".into(), n(u.updated_at_epoch_ms));
    item.insert(TTL.into(), n(u.ttl_epoch_s));
    item.insert(
        "cik".into(),
        AttributeValue::L(u.completed_item_keys.iter().map(s).collect()),
    );
    item.insert("dc".into(), AttributeValue::Bool(u.dispatch_complete));
    item
}

fn unit_from(item: &Item) -> Result<AwaitUnit, StoreError> {
    let pk = get_s(item, PK)?;
    let completed_item_keys = match item.get("cik") {
        None => Vec::new(),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(k) => Ok(k.clone()),
                _ => Err(StoreError::Unavailable(
                    "a stored unit has a non-string completed item key".to_owned(),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(StoreError::Unavailable(
                "a stored unit has no valid attribute cik".to_owned(),
            ))
        }
    };
    Ok(AwaitUnit {
        tenant_id: get_s(item, "t")?,
        unit_id: name_of_pk(&pk).unwrap_or_default().to_owned(),
        execution_id: get_s(item, "eid")?,
        step_id: get_s(item, "sid")?,
        step_index: get_n(item, "si")?,
        cardinality: get_s(item, "card")?,
        version: get_n(item, "v")?,
        status: get_s(item, "st")?,
        primary_interaction_id: opt_s(item, "pii")?,
        expected_item_count: opt_n(item, "eic")?,
        completed_item_count: opt_n(item, "cic")?.unwrap_or(0),
        completed_item_keys,
        dispatch_complete: matches!(item.get("dc"), Some(AttributeValue::Bool(true))),
        created_at_epoch_ms: get_n(item, "ca")?,
        updated_at_epoch_ms: get_n(item, "ua")?,
        ttl_epoch_s: get_n(item, TTL)?,
    })
}

/// `pd` (§10.5): present iff the interaction is open.
fn pd_of(i: &AwaitInteraction) -> Option<String> {
    i.is_open()
        .then(|| format!("{}#{}", pad19(i.deadline_epoch_ms), i.interaction_id))
}

/// `ss` (§10.5): present iff `settleDueEpochMs` is set.
fn ss_of(tenant: &str, interaction_id: &str, settle_due: Option<i64>) -> Option<String> {
    settle_due.map(|d| format!("{}#{tenant}#{interaction_id}", pad19(d)))
}

/// The whole interaction item of an import (`req`/`res` as stored).
fn interaction_item(
    i: &AwaitInteraction,
    req: Option<&str>,
    res: Option<&str>,
    shards: u8,
) -> Item {
    let mut item = key(pk_of(&i.tenant_id, &i.interaction_id), INTERACTION_SK);
    item.insert("t".into(), s(&i.tenant_id));
    item.insert("eid".into(), s(&i.execution_id));
    item.insert("sid".into(), s(&i.step_id));
    item.insert("ot".into(), s(&i.output_type));
    put_opt_s(&mut item, "tot", i.transport_output_type.as_deref());
    item.insert("cid".into(), s(&i.correlation_id));
    put_opt_s(&mut item, "caus", i.causation_id.as_deref());
    item.insert("ik".into(), s(&i.idempotency_key));
    item.insert("st".into(), s(&i.status));
    item.insert("uid".into(), s(&i.unit_id));
    put_opt_s(&mut item, "ac", i.actor.as_deref());
    put_opt_s(&mut item, "asg", i.assignee.as_deref());
    put_opt_s(&mut item, "grp", i.group.as_deref());
    item.insert("tt".into(), s(&i.transport_type));
    put_opt_s(
        &mut item,
        "tm",
        i.transport_metadata.as_deref().map(RawValue::get),
    );
    put_opt_s(&mut item, "cok", i.completion_idempotency_key.as_deref());
    put_opt_s(&mut item, "cph", i.completion_payload_hash.as_deref());
    put_opt_s(&mut item, "req", req);
    put_opt_s(&mut item, "res", res);
    item.insert("si".into(), n(i.step_index));
    item.insert("v".into(), n(i.version));
    if let Some(ii) = i.item_index {
        item.insert("ii".into(), n(ii));
    }
    item.insert("dl".into(), n(i.deadline_epoch_ms));
    item.insert("ca".into(), n(i.created_at_epoch_ms));
    item.insert("ua".into(), n(i.updated_at_epoch_ms));
    if let Some(cat) = i.completed_at_epoch_ms {
        item.insert("cat".into(), n(cat));
    }
    item.insert(TTL.into(), n(i.ttl_epoch_s));
    put_opt_s(&mut item, "pd", pd_of(i).as_deref());
    item.insert("sp".into(), s(shard_of(&i.interaction_id, shards)));
    put_opt_s(
        &mut item,
        "ss",
        ss_of(&i.tenant_id, &i.interaction_id, i.settle_due_epoch_ms).as_deref(),
    );
    item
}

fn raw(text: String, what: &str) -> Result<Box<RawValue>, StoreError> {
    RawValue::from_string(text)
        .map_err(|_| StoreError::Unavailable(format!("stored {what} is not JSON")))
}

fn interaction_from(
    item: &Item,
    request: Option<String>,
    response: Option<String>,
) -> Result<AwaitInteraction, StoreError> {
    let pk = get_s(item, PK)?;
    let settle_due = match opt_s(item, "ss")? {
        Some(ss) => Some(time_of_range(&ss).ok_or_else(|| {
            StoreError::Unavailable("a stored interaction has no valid attribute ss".to_owned())
        })?),
        None => None,
    };
    Ok(AwaitInteraction {
        tenant_id: get_s(item, "t")?,
        execution_id: get_s(item, "eid")?,
        step_id: get_s(item, "sid")?,
        step_index: get_n(item, "si")?,
        output_type: get_s(item, "ot")?,
        transport_output_type: opt_s(item, "tot")?,
        interaction_id: name_of_pk(&pk).unwrap_or_default().to_owned(),
        correlation_id: get_s(item, "cid")?,
        causation_id: opt_s(item, "caus")?,
        idempotency_key: get_s(item, "ik")?,
        version: get_n(item, "v")?,
        status: get_s(item, "st")?,
        request_payload: request.map(|t| raw(t, "requestPayload")).transpose()?,
        response_payload: response.map(|t| raw(t, "responsePayload")).transpose()?,
        unit_id: get_s(item, "uid")?,
        item_index: opt_n(item, "ii")?,
        actor: opt_s(item, "ac")?,
        assignee: opt_s(item, "asg")?,
        group: opt_s(item, "grp")?,
        transport_type: get_s(item, "tt")?,
        transport_metadata: opt_s(item, "tm")?
            .map(|t| raw(t, "transportMetadata"))
            .transpose()?,
        deadline_epoch_ms: get_n(item, "dl")?,
        created_at_epoch_ms: get_n(item, "ca")?,
        updated_at_epoch_ms: get_n(item, "ua")?,
        ttl_epoch_s: get_n(item, TTL)?,
        completion_idempotency_key: opt_s(item, "cok")?,
        completion_payload_hash: opt_s(item, "cph")?,
        completed_at_epoch_ms: opt_n(item, "cat")?,
        settle_due_epoch_ms: settle_due,
    })
}

/// A slot as the interaction item holds it.
enum Stored {
    Absent,
    Inline(String),
    Referenced(usize),
}

/// True when `stored` already holds the change to `next` (a write that won
/// and whose response was lost).
fn is_own_change(stored: &Item, next: &AwaitInteraction) -> bool {
    get_n::<i64>(stored, "v").ok() == Some(next.version)
        && get_s(stored, "st").ok().as_deref() == Some(next.status.as_str())
        && get_n::<i64>(stored, "ua").ok() == Some(next.updated_at_epoch_ms)
        && opt_s(stored, "ac").ok().flatten() == next.actor
        && opt_s(stored, "cok").ok().flatten() == next.completion_idempotency_key
}

impl DynamoAwaitStore {
    /// `json:<text>` up to 1 024 bytes, else the payload written and its
    /// reference.
    async fn slot_value(
        &self,
        i: &AwaitInteraction,
        slot: Slot,
        text: Option<&RawValue>,
    ) -> Result<Option<String>, StoreError> {
        let Some(text) = text.map(RawValue::get) else {
            return Ok(None);
        };
        if text.len() <= INLINE_MAX_BYTES {
            return Ok(Some(format!("json:{text}")));
        }
        let reference = self
            .payloads
            .put(&i.tenant_id, &i.interaction_id, slot, text, i.ttl_epoch_s)
            .await?;
        Ok(Some(reference))
    }

    /// The interactions of live items, their payloads read and verified.
    async fn load(&self, items: &[Item], now_ms: i64) -> Result<Vec<AwaitInteraction>, StoreError> {
        let mut refs = Vec::new();
        let mut slots = Vec::with_capacity(items.len());
        for item in items {
            let tenant = get_s(item, "t")?;
            let pk = get_s(item, PK)?;
            let owner = name_of_pk(&pk).unwrap_or_default().to_owned();
            let mut pair = Vec::with_capacity(2);
            for (attr, slot) in [("req", Slot::Request), ("res", Slot::Response)] {
                pair.push(match opt_s(item, attr)? {
                    None => Stored::Absent,
                    Some(v) => match inline_text(&v) {
                        Some(text) => Stored::Inline(text.to_owned()),
                        None => {
                            refs.push(PayloadRef {
                                tenant: tenant.clone(),
                                owner: owner.clone(),
                                slot,
                                reference: v,
                            });
                            Stored::Referenced(refs.len() - 1)
                        }
                    },
                });
            }
            slots.push(pair);
        }
        let mut texts: Vec<Option<String>> = if refs.is_empty() {
            Vec::new()
        } else {
            self.payloads
                .get_many(&refs, now_ms)
                .await?
                .into_iter()
                .map(Some)
                .collect()
        };
        let mut out = Vec::with_capacity(items.len());
        for (item, pair) in items.iter().zip(slots) {
            let mut resolved = pair.into_iter().map(|stored| match stored {
                Stored::Absent => None,
                Stored::Inline(text) => Some(text),
                Stored::Referenced(i) => texts[i].take(),
            });
            let request = resolved.next().flatten();
            let response = resolved.next().flatten();
            out.push(interaction_from(item, request, response)?);
        }
        Ok(out)
    }

    async fn live_item(
        &self,
        tenant: &str,
        name: &str,
        sk: &str,
        now_ms: i64,
    ) -> Result<Option<Item>, StoreError> {
        if !is_tenant(tenant) {
            return Ok(None);
        }
        Ok(get_item(&self.client, &self.table, pk_of(tenant, name), sk)
            .await?
            .filter(|i| is_live(i, now_ms)))
    }

    async fn live_interaction(
        &self,
        tenant: &str,
        interaction_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        match self
            .live_item(tenant, interaction_id, INTERACTION_SK, now_ms)
            .await?
        {
            Some(item) => Ok(self.load(&[item], now_ms).await?.pop()),
            None => Ok(None),
        }
    }

    /// Rule 1 of §8.3 for a live stored unit.
    async fn existing(
        &self,
        stored: &AwaitUnit,
        snapshot: &AwaitUnit,
        now_ms: i64,
    ) -> Result<ImportOutcome, StoreError> {
        let primary = match &stored.primary_interaction_id {
            Some(id) => self.live_interaction(&stored.tenant_id, id, now_ms).await?,
            None => None,
        };
        Ok(existing_unit_outcome(stored, snapshot, primary))
    }

    /// A create-if-absent (or over an expired item) `PutItem`, with
    /// `extra` ORed into the condition; the item found on failure.
    async fn put_new(
        &self,
        item: Item,
        extra: Option<(&str, &str, &str, AttributeValue)>,
        now_ms: i64,
    ) -> Result<Conditional, StoreError> {
        let mut condition = "attribute_not_exists(#pk) OR #ttl <= :now_s".to_owned();
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now_s", n(now_s(now_ms)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some((clause, name, attr, value)) = extra {
            condition.push_str(" OR ");
            condition.push_str(clause);
            request = request
                .expression_attribute_names(name, attr)
                .expression_attribute_values(format!(":{}", &name[1..]), value);
        }
        let result = request.condition_expression(condition).send().await;
        conditional("PutItem", result, put_failed)
    }
}

#[async_trait]
impl AwaitStore for DynamoAwaitStore {
    async fn get_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitUnit>, StoreError> {
        self.live_item(tenant, unit_id, UNIT_SK, now_ms)
            .await?
            .map(|i| unit_from(&i))
            .transpose()
    }

    async fn get_interaction(
        &self,
        tenant: &str,
        interaction_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        self.live_interaction(tenant, interaction_id, now_ms).await
    }

    async fn get_by_correlation(
        &self,
        tenant: &str,
        correlation_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        let Some(entry) = self
            .live_item(tenant, correlation_id, CORRELATION_SK, now_ms)
            .await?
        else {
            return Ok(None);
        };
        let interaction_id = get_s(&entry, "iid")?;
        self.live_interaction(tenant, &interaction_id, now_ms).await
    }

    async fn import(
        &self,
        unit: &AwaitUnit,
        interaction: &AwaitInteraction,
        now_ms: i64,
    ) -> Result<ImportOutcome, StoreError> {
        check_import_args(unit, interaction)?;
        require_key_part("a tenantId", &unit.tenant_id)?;
        let tenant = &unit.tenant_id;
        // Rule 1: a live unit with this id decides.
        if let Some(item) = self
            .live_item(tenant, &unit.unit_id, UNIT_SK, now_ms)
            .await?
        {
            return self.existing(&unit_from(&item)?, unit, now_ms).await;
        }
        // The interaction (after its referenced request payload).
        let req = self
            .slot_value(
                interaction,
                Slot::Request,
                interaction.request_payload.as_deref(),
            )
            .await?;
        let res = self
            .slot_value(
                interaction,
                Slot::Response,
                interaction.response_payload.as_deref(),
            )
            .await?;
        let item = interaction_item(interaction, req.as_deref(), res.as_deref(), self.shards);
        // The interaction whose correlation entry is written: this one, or
        // a live stored one of this execution and unit (kept).
        let (correlation_id, interaction_id, ttl) = match self.put_new(item, None, now_ms).await? {
            Conditional::Done => (
                interaction.correlation_id.clone(),
                interaction.interaction_id.clone(),
                interaction.ttl_epoch_s,
            ),
            Conditional::Failed(stored) => {
                let stored = match stored {
                    Some(s) => s,
                    None => match self
                        .live_item(tenant, &interaction.interaction_id, INTERACTION_SK, now_ms)
                        .await?
                    {
                        Some(s) => s,
                        None => {
                            return Err(StoreError::Unavailable(format!(
                                "interaction {} could not be imported",
                                interaction.interaction_id
                            )))
                        }
                    },
                };
                let kept = interaction_from(&stored, None, None)?;
                if let Some(why) = interaction_conflict(&kept, interaction) {
                    return Ok(ImportOutcome::Conflict(why));
                }
                (kept.correlation_id, kept.interaction_id, kept.ttl_epoch_s)
            }
        };
        // Its correlation entry: create-if-absent, or already this mapping.
        let mut entry = key(pk_of(tenant, &correlation_id), CORRELATION_SK);
        entry.insert("iid".into(), s(&interaction_id));
        entry.insert(TTL.into(), n(ttl));
        let mapped = ("#iid = :iid", "#iid", "iid", s(&interaction_id));
        if let Conditional::Failed(_) = self.put_new(entry, Some(mapped), now_ms).await? {
            return Ok(ImportOutcome::Conflict(format!(
                "correlationId {correlation_id} is mapped to another interaction"
            )));
        }
        // The unit last: an existing unit implies its interaction and entry.
        let written = unit_item(unit);
        match self.put_new(written, None, now_ms).await? {
            Conditional::Done => Ok(ImportOutcome::Imported),
            Conditional::Failed(stored) => {
                let stored = match stored {
                    Some(s) => s,
                    None => match self
                        .live_item(tenant, &unit.unit_id, UNIT_SK, now_ms)
                        .await?
                    {
                        Some(s) => s,
                        None => {
                            return Err(StoreError::Unavailable(format!(
                                "await unit {} could not be imported",
                                unit.unit_id
                            )))
                        }
                    },
                };
                let stored = unit_from(&stored)?;
                if stored == *unit {
                    // This import's own unit (a retried write that won).
                    return Ok(ImportOutcome::Imported);
                }
                self.existing(&stored, unit, now_ms).await
            }
        }
    }

    async fn update_interaction(
        &self,
        next: &AwaitInteraction,
        expected_version: i64,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        if !is_tenant(&next.tenant_id) {
            return Ok(Write::Lost);
        }
        let res = self
            .slot_value(next, Slot::Response, next.response_payload.as_deref())
            .await?;
        let mut expr = Expr::default();
        expr.set("st", s(&next.status));
        expr.set("v", n(next.version));
        expr.set("ua", n(next.updated_at_epoch_ms));
        expr.set_or_remove("res", res.map(s));
        expr.set_or_remove("ac", next.actor.as_ref().map(s));
        expr.set_or_remove("cok", next.completion_idempotency_key.as_ref().map(s));
        expr.set_or_remove("cph", next.completion_payload_hash.as_ref().map(s));
        expr.set_or_remove("cat", next.completed_at_epoch_ms.map(n));
        expr.set_or_remove(
            "ss",
            ss_of(
                &next.tenant_id,
                &next.interaction_id,
                next.settle_due_epoch_ms,
            )
            .map(s),
        );
        expr.set_or_remove("pd", pd_of(next).map(s));
        let ttl = expr.name(TTL);
        expr.value(":expv", n(expected_version));
        expr.value(":now_s", n(now_s(now_ms)));
        let mut open = Vec::new();
        for (i, status) in OPEN_STATUSES.iter().enumerate() {
            let placeholder = format!(":open{i}");
            expr.value(&placeholder, s(*status));
            open.push(placeholder);
        }
        let condition = format!(
            "#v = :expv AND #st IN ({}) AND {ttl} > :now_s",
            open.join(", ")
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                pk_of(&next.tenant_id, &next.interaction_id),
                INTERACTION_SK,
            )))
            .update_expression(expr.update_expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match conditional("UpdateItem", result, update_failed)? {
            Conditional::Done => Write::Written,
            Conditional::Failed(Some(old)) if is_own_change(&old, next) => Write::Written,
            Conditional::Failed(_) => Write::Lost,
        })
    }

    async fn set_settle_due(
        &self,
        tenant: &str,
        interaction_id: &str,
        expected_status: &str,
        settle_due_epoch_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        if !is_tenant(tenant) {
            return Ok(Write::Lost);
        }
        let mut expr = Expr::default();
        expr.set_or_remove(
            "ss",
            ss_of(tenant, interaction_id, settle_due_epoch_ms).map(s),
        );
        let st = expr.name("st");
        let ttl = expr.name(TTL);
        expr.value(":expst", s(expected_status));
        expr.value(":now_s", n(now_s(now_ms)));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk_of(tenant, interaction_id), INTERACTION_SK)))
            .update_expression(expr.update_expression())
            .condition_expression(format!("{st} = :expst AND {ttl} > :now_s"))
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .send()
            .await;
        Ok(match conditional("UpdateItem", result, update_failed)? {
            Conditional::Done => Write::Written,
            Conditional::Failed(_) => Write::Lost,
        })
    }

    async fn finish_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        check_finish_status(status)?;
        if !is_tenant(tenant) {
            return Ok(Write::Lost);
        }
        let mut expr = Expr::default();
        expr.set("st", s(status));
        expr.set("ua", n(now_ms));
        let v = expr.name("v");
        expr.value(":one", n(1));
        expr.set_clause(format!("{v} = {v} + :one"));
        let ttl = expr.name(TTL);
        expr.value(":waiting", s(UNIT_WAITING));
        expr.value(":now_s", n(now_s(now_ms)));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk_of(tenant, unit_id), UNIT_SK)))
            .update_expression(expr.update_expression())
            .condition_expression(format!("#st = :waiting AND {ttl} > :now_s"))
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .send()
            .await;
        Ok(match conditional("UpdateItem", result, update_failed)? {
            Conditional::Done => Write::Written,
            Conditional::Failed(_) => Write::Lost,
        })
    }

    async fn pending(
        &self,
        tenant: &str,
        filter: &PendingFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<AwaitInteraction>, StoreError> {
        if !is_tenant(tenant) || limit == 0 {
            return Ok(Vec::new());
        }
        let mut filters = vec!["#ttl > :now_s".to_owned()];
        let mut open = Vec::new();
        for i in 0..OPEN_STATUSES.len() {
            open.push(format!(":open{i}"));
        }
        filters.push(format!("#st IN ({})", open.join(", ")));
        let exact = [
            ("#sid", "sid", ":sid", filter.step_id.as_ref()),
            ("#asg", "asg", ":asg", filter.assignee.as_ref()),
            ("#grp", "grp", ":grp", filter.group.as_ref()),
        ];
        for (name, _, value, wanted) in &exact {
            if wanted.is_some() {
                filters.push(format!("{name} = {value}"));
            }
        }
        let mut matched: Vec<Item> = Vec::new();
        let mut start = None;
        loop {
            let want = (limit - matched.len()).saturating_add(1).clamp(10, 1000) as i32;
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .expression_attribute_names("#t", "t")
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_names("#st", "st")
                .expression_attribute_values(":t", s(tenant))
                .expression_attribute_values(":now_s", n(now_s(now_ms)))
                .filter_expression(filters.join(" AND "))
                .scan_index_forward(true)
                .limit(want)
                .set_exclusive_start_key(start.take());
            for (i, status) in OPEN_STATUSES.iter().enumerate() {
                query = query.expression_attribute_values(format!(":open{i}"), s(*status));
            }
            for (name, attr, value, wanted) in &exact {
                if let Some(w) = wanted {
                    query = query
                        .expression_attribute_names(*name, *attr)
                        .expression_attribute_values(*value, s(w.as_str()));
                }
            }
            query = match &after {
                Some((deadline, id)) => query
                    .key_condition_expression("#t = :t AND #pd > :after")
                    .expression_attribute_names("#pd", "pd")
                    .expression_attribute_values(":after", s(format!("{}#{id}", pad19(*deadline)))),
                None => query.key_condition_expression("#t = :t"),
            };
            let page = query.send().await.map_err(|e| unavailable("Query", e))?;
            for item in page.items.unwrap_or_default() {
                matched.push(item);
                if matched.len() == limit {
                    break;
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() && matched.len() < limit => start = Some(k),
                _ => break,
            }
        }
        self.load(&matched, now_ms).await
    }

    async fn settle_due(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        ShardedIndex {
            client: &self.client,
            table: &self.table,
            index: SETTLE_INDEX,
            hash_attr: "sp",
            range_attr: "ss",
            shards: self.shards,
        }
        .due(now_ms, limit, |item| {
            Ok(is_live(item, now_ms)
                && opt_s(item, "ss")?
                    .and_then(|ss| time_of_range(&ss))
                    .is_some_and(|due| due <= now_ms))
        })
        .await
    }
}
