//! What the `dynamo` execution and await stores share (`EXECUTION.md`
//! §10.5–§10.7): their settings, the key and attribute helpers of the two
//! state tables (`pk`/`sk`, TTL on `ttl`), the lost-write plumbing, the
//! sharded index queries, and the payload slots.
//!
//! **Payloads.** A slot's text is written before the owner write that
//! references it, content-addressed by `<hex>` = lowercase hex SHA-256 of its
//! UTF-8 bytes:
//!
//! - at most `threshold_bytes`: a payload item `pk = <tenantId>#<ownerId>`,
//!   `sk = payload#<slot>#<hex>`, attributes `txt` (S) and `ttl`, written by
//!   `PutItem` with `attribute_not_exists(pk) OR #ttl < :ttl` (a stored copy
//!   living at least as long counts as stored); reference `ddb:<hex>`;
//! - longer: the S3 object `<prefix>/<tenantId>/<ownerId>/<slot>-<hex>.json`
//!   (no prefix: `<tenantId>/…`), `PutObject` with `If-None-Match: *`,
//!   `ChecksumAlgorithm=SHA256` and the digest as `x-amz-checksum-sha256`;
//!   `412` means stored; reference `s3:<hex>`.
//!
//! Every read verifies the digest: a missing, expired or altered text is
//! [`StoreError::PayloadUnavailable`] naming the slot (the engine's
//! `PAYLOAD_UNAVAILABLE`, 503 `DEPENDENCY_UNAVAILABLE` over HTTP); a failing
//! call is [`StoreError::Unavailable`] (an outage). Path-style addressing
//! (moto, MinIO) is the S3 client's configuration, not ours.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{build_error, unavailable, Item};
use crate::error::StoreError;

/// Settings of the `dynamo` execution and await stores (`EXECUTION.md`
/// §10.1): `TPF_PAYLOAD_S3_BUCKET`, `TPF_PAYLOAD_S3_PREFIX`,
/// `TPF_PAYLOAD_S3_THRESHOLD_BYTES` and `TPF_DYNAMO_INDEX_SHARDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoStateSettings {
    /// Bucket of the payload texts longer than `threshold_bytes`.
    pub payload_bucket: String,
    /// Key prefix in that bucket (outer `/` removed here too; may be empty).
    pub payload_prefix: String,
    /// Texts longer than this many bytes go to S3 (1 024 to 358 400).
    pub threshold_bytes: usize,
    /// Shards of `due-index` and `settle-index` (1 to 16; out-of-range
    /// values are clamped).
    pub index_shards: u8,
}

/// Hash key attribute of both state tables.
pub(crate) const PK: &str = "pk";
/// Range key attribute of both state tables.
pub(crate) const SK: &str = "sk";
/// The DynamoDB TTL attribute (epoch seconds).
pub(crate) const TTL: &str = "ttl";

/// Largest interaction payload text stored inline as `json:<text>`.
pub(crate) const INLINE_MAX_BYTES: usize = 1024;

/// Most keys in one `BatchGetItem`.
const BATCH_GET_MAX: usize = 100;
/// Rounds of `UnprocessedKeys` retried before giving up.
const BATCH_GET_ROUNDS: u32 = 8;
/// Retries of an S3 put answered `409 ConditionalRequestConflict`.
const S3_CONFLICT_RETRIES: u32 = 3;

/// `<tenantId>#<name>`: unambiguous because the id rule excludes `#`.
pub(crate) fn pk_of(tenant: &str, name: &str) -> String {
    format!("{tenant}#{name}")
}

/// The name after the first `#` of a `pk`.
pub(crate) fn name_of_pk(pk: &str) -> Option<&str> {
    pk.split_once('#').map(|(_, name)| name)
}

/// True when `tenant` can start a `pk` (non-empty, no `#`).
pub(crate) fn is_tenant(tenant: &str) -> bool {
    !tenant.is_empty() && !tenant.contains('#')
}

/// Refuses a write for a tenant or id that cannot be part of a key.
pub(crate) fn require_key_part(what: &str, id: &str) -> Result<(), StoreError> {
    if is_tenant(id) {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "{what} must be non-empty and must not contain '#'"
        )))
    }
}

/// A time or count zero-padded to 19 digits (sortable as a string);
/// negative values count as 0.
pub(crate) fn pad19(n: i64) -> String {
    format!("{:019}", n.max(0))
}

/// `⌊now / 1000⌋`, the `:now_s` of every `live` condition.
pub(crate) fn now_s(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
}

/// The index shard of `id` among `shards` (§10.5): the first hex digit of
/// SHA-256(id), modulo `shards`, as one lowercase hex digit.
pub(crate) fn shard_of(id: &str, shards: u8) -> String {
    let first = Sha256::digest(id.as_bytes())[0] >> 4;
    let n = clamp_shards(shards);
    format!("{:x}", first % n)
}

/// `TPF_DYNAMO_INDEX_SHARDS` within 1–16.
pub(crate) fn clamp_shards(shards: u8) -> u8 {
    shards.clamp(1, 16)
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn malformed(name: &str) -> StoreError {
    StoreError::Unavailable(format!("a stored item has no valid attribute {name}"))
}

/// A required S attribute.
pub(crate) fn get_s(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(malformed(name)),
    }
}

/// An optional S attribute.
pub(crate) fn opt_s(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(malformed(name)),
    }
}

/// A required N attribute.
pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| malformed(name)),
        _ => Err(malformed(name)),
    }
}

/// An optional N attribute.
pub(crate) fn opt_n<T: std::str::FromStr>(
    item: &Item,
    name: &str,
) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| malformed(name)),
        Some(_) => Err(malformed(name)),
    }
}

/// Sets `name` to S `value` when there is one.
pub(crate) fn put_opt_s(item: &mut Item, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        item.insert(name.to_owned(), s(v));
    }
}

/// True when the item's `ttl` has not passed at `now_ms` (§3.9). An item
/// without a valid `ttl` counts as expired.
pub(crate) fn is_live(item: &Item, now_ms: i64) -> bool {
    matches!(get_n::<i64>(item, TTL), Ok(ttl) if ttl > now_s(now_ms))
}

/// The primary key of an item of the state tables.
pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    Item::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// `(pk, sk)` of an item, if both are strings.
pub(crate) fn key_of(item: &Item) -> Option<(String, String)> {
    match (item.get(PK), item.get(SK)) {
        (Some(AttributeValue::S(p)), Some(AttributeValue::S(k))) => Some((p.clone(), k.clone())),
        _ => None,
    }
}

/// How a conditional single-item write ended.
pub(crate) enum Conditional {
    Done,
    /// `ConditionalCheckFailedException`, with the item as it is
    /// (`ReturnValuesOnConditionCheckFailure=ALL_OLD`; `None` when absent).
    Failed(Option<Item>),
}

/// Splits a conditional failure from the other errors of a write.
pub(crate) fn conditional<O, E>(
    operation: &str,
    result: Result<O, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
    old: impl FnOnce(&E) -> Option<Option<Item>>,
) -> Result<Conditional, StoreError>
where
    E: std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(Conditional::Done),
        Err(e) => {
            if let Some(service) = e.as_service_error() {
                if let Some(item) = old(service) {
                    return Ok(Conditional::Failed(item));
                }
            }
            Err(unavailable(operation, e))
        }
    }
}

/// The `ALL_OLD` item of a failed `PutItem` condition.
pub(crate) fn put_failed(e: &PutItemError) -> Option<Option<Item>> {
    match e {
        PutItemError::ConditionalCheckFailedException(c) => Some(c.item().cloned()),
        _ => None,
    }
}

/// The `ALL_OLD` item of a failed `UpdateItem` condition.
pub(crate) fn update_failed(
    e: &aws_sdk_dynamodb::operation::update_item::UpdateItemError,
) -> Option<Option<Item>> {
    match e {
        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
            Some(c.item().cloned())
        }
        _ => None,
    }
}

/// An update expression, its condition and their placeholders: `#<attr>`
/// names every attribute, `:<attr>` the value it is set to.
#[derive(Debug, Default, Clone)]
pub(crate) struct Expr {
    sets: Vec<String>,
    removes: Vec<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// `#attr` (registered).
    pub(crate) fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#{attr}");
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    /// Registers the value `placeholder` (`:x`).
    pub(crate) fn value(&mut self, placeholder: &str, v: AttributeValue) {
        self.values.insert(placeholder.to_owned(), v);
    }

    /// `SET #attr = :attr`.
    pub(crate) fn set(&mut self, attr: &str, v: AttributeValue) {
        let name = self.name(attr);
        let placeholder = format!(":{attr}");
        self.value(&placeholder, v);
        self.sets.push(format!("{name} = {placeholder}"));
    }

    /// `SET #attr = :attr` when there is a value, else `REMOVE #attr`.
    pub(crate) fn set_or_remove(&mut self, attr: &str, v: Option<AttributeValue>) {
        match v {
            Some(v) => self.set(attr, v),
            None => self.remove(attr),
        }
    }

    /// A SET clause as written (its names and values registered apart).
    pub(crate) fn set_clause(&mut self, clause: impl Into<String>) {
        self.sets.push(clause.into());
    }

    /// `REMOVE #attr`.
    pub(crate) fn remove(&mut self, attr: &str) {
        let name = self.name(attr);
        self.removes.push(name);
    }

    /// `SET … REMOVE …`.
    pub(crate) fn update_expression(&self) -> String {
        let mut out = String::new();
        if !self.sets.is_empty() {
            out.push_str("SET ");
            out.push_str(&self.sets.join(", "));
        }
        if !self.removes.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("REMOVE ");
            out.push_str(&self.removes.join(", "));
        }
        out
    }
}

/// One action's outcome in a cancelled `TransactWriteItems`.
#[derive(Debug, Clone)]
pub(crate) struct Reason {
    /// `None`, `ConditionalCheckFailed`, `TransactionConflict`, …
    pub code: String,
    /// The item as it is, when the action asked for `ALL_OLD`.
    pub item: Option<Item>,
}

impl Reason {
    pub(crate) fn condition_failed(&self) -> bool {
        self.code == "ConditionalCheckFailed"
    }
    pub(crate) fn conflict(&self) -> bool {
        self.code == "TransactionConflict"
    }
    pub(crate) fn ok(&self) -> bool {
        self.code == "None" || self.code.is_empty()
    }
}

/// How a `TransactWriteItems` ended.
pub(crate) enum Transaction {
    Done,
    /// `TransactionCanceledException`: one reason per action, in order.
    Cancelled(Vec<Reason>),
}

/// Sends a prepared `TransactWriteItems` (with its `ClientRequestToken`).
pub(crate) async fn transact(
    request: aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder,
) -> Result<Transaction, StoreError> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match request.send().await {
        Ok(_) => Ok(Transaction::Done),
        Err(e) => {
            if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                e.as_service_error()
            {
                let reasons = c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| Reason {
                        code: r.code().unwrap_or("None").to_owned(),
                        item: r.item().cloned(),
                    })
                    .collect();
                return Ok(Transaction::Cancelled(reasons));
            }
            Err(unavailable("TransactWriteItems", e))
        }
    }
}

/// Consistent `GetItem` of `(pk, sk)`; `None` when absent.
pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    pk: String,
    sk: &str,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key(pk, sk)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| unavailable("GetItem", e))?;
    Ok(out.item)
}

/// Consistent `BatchGetItem` of `keys` (any number, any order, duplicates
/// allowed), following `UnprocessedKeys`; the items found, by `(pk, sk)`.
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    keys: &[(String, String)],
) -> Result<HashMap<(String, String), Item>, StoreError> {
    let mut found = HashMap::new();
    let mut unique: Vec<&(String, String)> = Vec::new();
    for k in keys {
        if !unique.contains(&k) {
            unique.push(k);
        }
    }
    for chunk in unique.chunks(BATCH_GET_MAX) {
        let mut pending: Vec<Item> = chunk
            .iter()
            .map(|(p, k)| key(p.clone(), k.clone()))
            .collect();
        let mut round = 0;
        while !pending.is_empty() {
            if round > 0 {
                if round >= BATCH_GET_ROUNDS {
                    return Err(StoreError::Unavailable(
                        "DynamoDB BatchGetItem left keys unprocessed".to_owned(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20 << round.min(6))).await;
            }
            round += 1;
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(build_error)?;
            let out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| unavailable("BatchGetItem", e))?;
            for item in out
                .responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default()
            {
                if let Some(k) = key_of(&item) {
                    found.insert(k, item);
                }
            }
            if let Some(left) = out.unprocessed_keys.and_then(|mut u| u.remove(table)) {
                pending = left.keys;
            }
        }
    }
    Ok(found)
}

/// One shard's stream of a time-ordered index.
struct ShardStream {
    shard: String,
    buffered: VecDeque<Item>,
    start: Option<Item>,
    done: bool,
}

/// A time-ordered sparse index spread over shards (`due-index`,
/// `settle-index`, §10.5): hash `hash_attr` = shard, range `range_attr` =
/// `<time, 19 digits>#<tenantId>#<id>`.
pub(crate) struct ShardedIndex<'a> {
    pub client: &'a Client,
    pub table: &'a str,
    pub index: &'a str,
    pub hash_attr: &'a str,
    pub range_attr: &'a str,
    pub shards: u8,
}

impl ShardedIndex<'_> {
    /// §10.7: per shard, `Query` `hash = :shard AND range < :upper`
    /// ascending (`:upper` = `now + 1`, 19 digits); the streams merged by the
    /// range value; the candidates read with a consistent `BatchGetItem`
    /// and kept when `keep` accepts the base item; at most `limit`
    /// `(tenantId, id)` pairs, in merged order.
    pub(crate) async fn due(
        &self,
        now_ms: i64,
        limit: usize,
        keep: impl Fn(&Item) -> Result<bool, StoreError>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let shards = clamp_shards(self.shards);
        let upper = pad19(now_ms.saturating_add(1));
        let page = (limit.div_ceil(usize::from(shards)) + 1).clamp(10, 1000) as i32;
        let mut streams: Vec<ShardStream> = (0..shards)
            .map(|i| ShardStream {
                shard: format!("{i:x}"),
                buffered: VecDeque::new(),
                start: None,
                done: false,
            })
            .collect();
        // ((tenantId, id), (pk, sk)) in merged order, not yet read.
        let mut candidates: Vec<((String, String), (String, String))> = Vec::new();
        loop {
            for stream in streams.iter_mut() {
                while stream.buffered.is_empty() && !stream.done {
                    self.fill(stream, &upper, page).await?;
                }
            }
            let next = streams
                .iter()
                .enumerate()
                .filter_map(|(i, st)| {
                    st.buffered
                        .front()
                        .map(|item| (i, range_of(item, self.range_attr)))
                })
                .min_by(|a, b| a.1.cmp(&b.1))
                .map(|(i, _)| i);
            let exhausted = next.is_none();
            if let Some(i) = next {
                let item = streams[i].buffered.pop_front().expect("a buffered head");
                let range = range_of(&item, self.range_attr);
                if let (Some(k), Some((tenant, id))) = (key_of(&item), ids_of_range(&range)) {
                    candidates.push(((tenant.to_owned(), id.to_owned()), k));
                }
            }
            let want = (limit - out.len()).min(BATCH_GET_MAX);
            if candidates.len() >= want || (exhausted && !candidates.is_empty()) {
                let keys: Vec<(String, String)> =
                    candidates.iter().map(|(_, k)| k.clone()).collect();
                let items = batch_get(self.client, self.table, &keys).await?;
                for (ids, k) in candidates.drain(..) {
                    let Some(item) = items.get(&k) else { continue };
                    if keep(item)? {
                        out.push(ids);
                        if out.len() == limit {
                            return Ok(out);
                        }
                    }
                }
            }
            if exhausted {
                return Ok(out);
            }
        }
    }

    async fn fill(
        &self,
        stream: &mut ShardStream,
        upper: &str,
        page: i32,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .query()
            .table_name(self.table)
            .index_name(self.index)
            .key_condition_expression("#h = :shard AND #r < :upper")
            .expression_attribute_names("#h", self.hash_attr)
            .expression_attribute_names("#r", self.range_attr)
            .expression_attribute_values(":shard", s(&stream.shard))
            .expression_attribute_values(":upper", s(upper))
            .scan_index_forward(true)
            .limit(page)
            .set_exclusive_start_key(stream.start.take())
            .send()
            .await
            .map_err(|e| unavailable("Query", e))?;
        stream.buffered.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => stream.start = Some(k),
            _ => stream.done = true,
        }
        Ok(())
    }
}

fn range_of(item: &Item, attr: &str) -> String {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    }
}

/// `(tenantId, id)` of a range value `<19 digits>#<tenantId>#<id>`.
pub(crate) fn ids_of_range(range: &str) -> Option<(&str, &str)> {
    let (_, rest) = range.split_once('#')?;
    rest.split_once('#')
}

/// The time at the start of a range value `<19 digits>#…`.
pub(crate) fn time_of_range(range: &str) -> Option<i64> {
    range.split_once('#')?.0.parse().ok()
}

/// The payload slots of §10.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Input,
    Result,
    Request,
    Response,
}

impl Slot {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Slot::Input => "input",
            Slot::Result => "result",
            Slot::Request => "request",
            Slot::Response => "response",
        }
    }
}

/// Lowercase hex SHA-256 of a text's UTF-8 bytes.
pub(crate) fn hex_digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Where the payload texts go: payload items in the owner's table, or
/// objects in the payload bucket.
#[derive(Debug, Clone)]
pub(crate) struct Payloads {
    ddb: Client,
    s3: aws_sdk_s3::Client,
    table: String,
    bucket: String,
    /// Without outer `/`; may be empty.
    prefix: String,
    threshold: usize,
}

/// A reference as stored in the owner item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference<'a> {
    Item(&'a str),
    Object(&'a str),
}

impl<'a> Reference<'a> {
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        if let Some(hex) = text.strip_prefix("ddb:") {
            Some(Reference::Item(hex))
        } else {
            text.strip_prefix("s3:").map(Reference::Object)
        }
    }
}

/// One payload to read: the owner, its slot and the stored reference.
#[derive(Debug, Clone)]
pub(crate) struct PayloadRef {
    pub tenant: String,
    pub owner: String,
    pub slot: Slot,
    pub reference: String,
}

impl Payloads {
    pub(crate) fn new(
        ddb: Client,
        s3: aws_sdk_s3::Client,
        table: String,
        settings: &DynamoStateSettings,
    ) -> Self {
        Self {
            ddb,
            s3,
            table,
            bucket: settings.payload_bucket.clone(),
            prefix: settings.payload_prefix.trim_matches('/').to_owned(),
            threshold: settings.threshold_bytes,
        }
    }

    /// The primary key of a payload item.
    pub(crate) fn item_key(tenant: &str, owner: &str, slot: Slot, hex: &str) -> (String, String) {
        (
            pk_of(tenant, owner),
            format!("payload#{}#{hex}", slot.as_str()),
        )
    }

    /// The object key of an S3 payload.
    pub(crate) fn object_key(&self, tenant: &str, owner: &str, slot: Slot, hex: &str) -> String {
        let tail = format!("{tenant}/{owner}/{}-{hex}.json", slot.as_str());
        if self.prefix.is_empty() {
            tail
        } else {
            format!("{}/{tail}", self.prefix)
        }
    }

    /// Stores `text` as slot `slot` of `owner` (items living until
    /// `ttl_epoch_s`) and returns its reference (`ddb:<hex>` / `s3:<hex>`).
    pub(crate) async fn put(
        &self,
        tenant: &str,
        owner: &str,
        slot: Slot,
        text: &str,
        ttl_epoch_s: i64,
    ) -> Result<String, StoreError> {
        let hex = hex_digest(text);
        if text.len() > self.threshold {
            self.put_object(tenant, owner, slot, text, &hex).await?;
            Ok(format!("s3:{hex}"))
        } else {
            self.put_item(tenant, owner, slot, text, &hex, ttl_epoch_s)
                .await?;
            Ok(format!("ddb:{hex}"))
        }
    }

    async fn put_item(
        &self,
        tenant: &str,
        owner: &str,
        slot: Slot,
        text: &str,
        hex: &str,
        ttl_epoch_s: i64,
    ) -> Result<(), StoreError> {
        let (pk, sk) = Self::item_key(tenant, owner, slot, hex);
        let mut item = key(pk, sk);
        item.insert("txt".to_owned(), s(text));
        item.insert(TTL.to_owned(), n(ttl_epoch_s));
        let result = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #ttl < :ttl")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":ttl", n(ttl_epoch_s))
            .send()
            .await;
        // "Exists" (with a TTL at least as long) counts as stored.
        match conditional("PutItem", result, put_failed)? {
            Conditional::Done | Conditional::Failed(_) => Ok(()),
        }
    }

    async fn put_object(
        &self,
        tenant: &str,
        owner: &str,
        slot: Slot,
        text: &str,
        hex: &str,
    ) -> Result<(), StoreError> {
        let object_key = self.object_key(tenant, owner, slot, hex);
        let digest = Sha256::digest(text.as_bytes());
        let checksum = base64::engine::general_purpose::STANDARD.encode(digest);
        let mut attempt = 0;
        loop {
            let result = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(&object_key)
                .if_none_match("*")
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(&checksum)
                .content_type("application/json")
                .content_length(text.len() as i64)
                .body(ByteStream::from(text.as_bytes().to_vec()))
                .send()
                .await;
            let Err(e) = result else { return Ok(()) };
            match s3_failure(&e) {
                S3Failure::Precondition => return Ok(()),
                S3Failure::Conflict if attempt < S3_CONFLICT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                _ => {
                    return Err(StoreError::Unavailable(format!(
                        "S3 PutObject of payload {object_key} failed: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )))
                }
            }
        }
    }

    /// The text behind `reference` of slot `slot` of `owner`, its digest
    /// verified.
    pub(crate) async fn get(
        &self,
        tenant: &str,
        owner: &str,
        slot: Slot,
        reference: &str,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        match Reference::parse(reference) {
            Some(Reference::Item(hex)) => {
                let (pk, sk) = Self::item_key(tenant, owner, slot, hex);
                let item = get_item(&self.ddb, &self.table, pk, &sk).await?;
                checked_item_text(item.as_ref(), owner, slot, hex, now_ms)
            }
            Some(Reference::Object(hex)) => self.get_object(tenant, owner, slot, hex).await,
            None => Err(unreadable(owner, slot, "has an unknown reference form")),
        }
    }

    /// Several payloads at once (one consistent `BatchGetItem` for the
    /// payload items, then the objects one by one), in the order asked.
    pub(crate) async fn get_many(
        &self,
        refs: &[PayloadRef],
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        for r in refs {
            if let Some(Reference::Item(hex)) = Reference::parse(&r.reference) {
                keys.push(Self::item_key(&r.tenant, &r.owner, r.slot, hex));
            }
        }
        let items = if keys.is_empty() {
            HashMap::new()
        } else {
            batch_get(&self.ddb, &self.table, &keys).await?
        };
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            let text = match Reference::parse(&r.reference) {
                Some(Reference::Item(hex)) => {
                    let k = Self::item_key(&r.tenant, &r.owner, r.slot, hex);
                    checked_item_text(items.get(&k), &r.owner, r.slot, hex, now_ms)?
                }
                Some(Reference::Object(hex)) => {
                    self.get_object(&r.tenant, &r.owner, r.slot, hex).await?
                }
                None => {
                    return Err(unreadable(
                        &r.owner,
                        r.slot,
                        "has an unknown reference form",
                    ))
                }
            };
            out.push(text);
        }
        Ok(out)
    }

    async fn get_object(
        &self,
        tenant: &str,
        owner: &str,
        slot: Slot,
        hex: &str,
    ) -> Result<String, StoreError> {
        let object_key = self.object_key(tenant, owner, slot, hex);
        let object = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                return Err(match s3_failure(&e) {
                    S3Failure::Missing => unreadable(owner, slot, "is missing from S3"),
                    _ => StoreError::Unavailable(format!(
                        "S3 GetObject of payload {object_key} failed: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )),
                })
            }
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("S3 payload {object_key} could not be read: {e}"))
            })?
            .into_bytes();
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| unreadable(owner, slot, "is not UTF-8"))?;
        verified(text, owner, slot, hex)
    }
}

fn unreadable(owner: &str, slot: Slot, why: &str) -> StoreError {
    StoreError::PayloadUnavailable(format!("the {} payload of {owner} {why}", slot.as_str()))
}

fn verified(text: String, owner: &str, slot: Slot, hex: &str) -> Result<String, StoreError> {
    if hex_digest(&text) == hex {
        Ok(text)
    } else {
        Err(unreadable(owner, slot, "does not match its digest"))
    }
}

fn checked_item_text(
    item: Option<&Item>,
    owner: &str,
    slot: Slot,
    hex: &str,
    now_ms: i64,
) -> Result<String, StoreError> {
    let Some(item) = item.filter(|i| is_live(i, now_ms)) else {
        return Err(unreadable(owner, slot, "is missing or expired"));
    };
    let text = get_s(item, "txt").map_err(|_| unreadable(owner, slot, "has no text"))?;
    verified(text, owner, slot, hex)
}

/// The text of a slot as stored in the owner item: `json:<text>` inline,
/// else a reference.
pub(crate) fn inline_text(stored: &str) -> Option<&str> {
    stored.strip_prefix("json:")
}

/// What an S3 failure means here.
enum S3Failure {
    Missing,
    Precondition,
    Conflict,
    Other,
}

fn s3_failure<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> S3Failure
where
    E: ProvideErrorMetadata,
{
    if let SdkError::ServiceError(service) = e {
        let status = service.raw().status().as_u16();
        return match (status, service.err().code()) {
            (404, _) | (_, Some("NoSuchKey" | "NotFound")) => S3Failure::Missing,
            (412, _) | (_, Some("PreconditionFailed")) => S3Failure::Precondition,
            (409, Some("ConditionalRequestConflict")) => S3Failure::Conflict,
            _ => S3Failure::Other,
        };
    }
    S3Failure::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_use_the_first_hex_digit_of_the_digest() {
        // SHA-256("e-1") starts with a known digit; one shard is always "0".
        let first = hex_digest("e-1").chars().next().unwrap();
        let d = first.to_digit(16).unwrap() as u8;
        assert_eq!(shard_of("e-1", 16), format!("{d:x}"));
        assert_eq!(shard_of("e-1", 1), "0");
        assert_eq!(shard_of("e-1", 3), format!("{:x}", d % 3));
        assert_eq!(shard_of("e-1", 0), "0");
    }

    #[test]
    fn ranges_and_padding() {
        assert_eq!(pad19(42), "0000000000000000042");
        assert_eq!(pad19(-5), "0000000000000000000");
        let r = format!("{}#acme#e-1", pad19(7));
        assert_eq!(ids_of_range(&r), Some(("acme", "e-1")));
        assert_eq!(time_of_range(&r), Some(7));
        assert_eq!(
            name_of_pk("acme#1:a:1:b:executionKey:k#x"),
            Some("1:a:1:b:executionKey:k#x")
        );
    }

    #[test]
    fn references_parse() {
        assert_eq!(Reference::parse("ddb:ab"), Some(Reference::Item("ab")));
        assert_eq!(Reference::parse("s3:cd"), Some(Reference::Object("cd")));
        assert_eq!(Reference::parse("json:{}"), None);
        assert_eq!(inline_text("json:{}"), Some("{}"));
    }
}
