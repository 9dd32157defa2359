//! `dynamo` release registry (`RELEASES.md` §5): table
//! `TPF_DYNAMO_RELEASE_TABLE`, one partition per `(tenant, pipeline)`.
//!
//! | Item | `registry_sort` |
//! |---|---|
//! | release | `release#<releaseVersion>`, plus `created_sort` = `<createdAtEpochMs, 19 digits>#<releaseVersion>` for the LSI `created_index` |
//! | activation event | `activation#<seq, 19 digits>` |
//!
//! Requests: `create_release` = `PutItem` with `attribute_not_exists(registry_key)`
//! (the existing item comes back with the failure, `ALL_OLD`; `GetItem`
//! otherwise); `append_event` = `TransactWriteItems` of exactly a
//! `ConditionCheck` of the release and a `Put` of the event; reads are
//! `GetItem`/`Query` with `ConsistentRead=true`. Nothing is ever updated or
//! deleted.
//!
//! Stored forms: `descriptor_json`, `stored_artifacts_json` and
//! `contract_json` (absent when there is no contract) are compact JSON;
//! `previous_release_version` and `detail` are `""` when null.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;

use super::indexes::{CREATED_INDEX, CREATED_SORT};
use super::{
    build_error, cancelled, get_bool, get_n, get_s, is_key_part, n, opt_s, pad19, query_collect,
    registry_key, require_key_part, s, sort_of, unavailable, Cancelled, Item, PK, SK,
};
use crate::domain::release::{ActivationEvent, ActivationType, ReleaseListKey, ReleaseRecord};
use crate::error::StoreError;
use crate::ports::{AppendOutcome, CreateOutcome, ReleaseRegistry};

const RELEASE_PREFIX: &str = "release#";
const ACTIVATION_PREFIX: &str = "activation#";
/// Sorts after every `activation#…` value (`$` follows `#`).
const ACTIVATION_END: &str = "activation$";

/// How often a `PutItem` meeting a concurrent transaction is tried.
const CREATE_ATTEMPTS: usize = 3;

/// Release registry on one DynamoDB table (release-admin, control-plane
/// and dispatcher on AWS).
#[derive(Debug, Clone)]
pub struct DynamoReleaseRegistry {
    client: Client,
    table: String,
}

impl DynamoReleaseRegistry {
    /// The registry in `table` (the template's `ReleaseTable`).
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    async fn get_item(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(out.item)
    }
}

fn release_sort(version: &str) -> String {
    format!("{RELEASE_PREFIX}{version}")
}

fn activation_sort(seq: u64) -> String {
    format!("{ACTIVATION_PREFIX}{}", pad19(seq))
}

/// `created_sort`: `<createdAtEpochMs, 19 digits>#<releaseVersion>`; ordered
/// as the release list is (times before 1970 count as 0).
fn created_sort(created_at_epoch_ms: i64, version: &str) -> String {
    format!(
        "{}#{version}",
        pad19(u64::try_from(created_at_epoch_ms).unwrap_or(0))
    )
}

fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Unavailable(format!("cannot serialise {what}: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Unavailable(format!("stored {what} is not valid JSON: {e}")))
}

fn release_item(r: &ReleaseRecord) -> Result<Item, StoreError> {
    let mut item = Item::from([
        (PK.into(), s(registry_key(&r.tenant_id, &r.pipeline_id))),
        (SK.into(), s(release_sort(&r.release_version))),
        ("record_type".into(), s("RELEASE")),
        (
            CREATED_SORT.into(),
            s(created_sort(r.created_at_epoch_ms, &r.release_version)),
        ),
        ("tenant_id".into(), s(&r.tenant_id)),
        ("pipeline_id".into(), s(&r.pipeline_id)),
        ("contract_version".into(), s(&r.contract_version)),
        ("release_version".into(), s(&r.release_version)),
        ("content_hash".into(), s(&r.content_hash)),
        ("descriptor_location".into(), s(&r.descriptor_location)),
        (
            "descriptor_json".into(),
            s(to_json("the descriptor", &r.descriptor)?),
        ),
        (
            "stored_artifacts_json".into(),
            s(to_json("storedArtifacts", &r.stored_artifacts)?),
        ),
        ("primary_artifact_id".into(), s(&r.primary_artifact_id)),
        (
            "primary_artifact_digest".into(),
            s(&r.primary_artifact_digest),
        ),
        ("primary_artifact_uri".into(), s(&r.primary_artifact_uri)),
        (
            "primary_artifact_checksum".into(),
            s(&r.primary_artifact_checksum),
        ),
        (
            "primary_artifact_size_bytes".into(),
            n(r.primary_artifact_size_bytes),
        ),
        ("created_at_epoch_ms".into(), n(r.created_at_epoch_ms)),
    ]);
    if let Some(contract) = r.contract.as_ref().filter(|c| !c.is_null()) {
        item.insert(
            "contract_json".into(),
            s(to_json("the contract", contract)?),
        );
    }
    Ok(item)
}

fn release_from_item(item: &Item) -> Result<ReleaseRecord, StoreError> {
    let contract = match opt_s(item, "contract_json")? {
        Some(text) => {
            Some(from_json::<serde_json::Value>("contract_json", &text)?).filter(|c| !c.is_null())
        }
        None => None,
    };
    Ok(ReleaseRecord {
        tenant_id: get_s(item, "tenant_id")?,
        pipeline_id: get_s(item, "pipeline_id")?,
        contract_version: get_s(item, "contract_version")?,
        release_version: get_s(item, "release_version")?,
        descriptor: from_json("descriptor_json", &get_s(item, "descriptor_json")?)?,
        primary_artifact_id: get_s(item, "primary_artifact_id")?,
        primary_artifact_digest: get_s(item, "primary_artifact_digest")?,
        primary_artifact_uri: get_s(item, "primary_artifact_uri")?,
        primary_artifact_size_bytes: get_n(item, "primary_artifact_size_bytes")?,
        primary_artifact_checksum: get_s(item, "primary_artifact_checksum")?,
        contract,
        created_at_epoch_ms: get_n(item, "created_at_epoch_ms")?,
        content_hash: get_s(item, "content_hash")?,
        descriptor_location: get_s(item, "descriptor_location")?,
        stored_artifacts: from_json(
            "stored_artifacts_json",
            &get_s(item, "stored_artifacts_json")?,
        )?,
    })
}

fn event_type_name(t: ActivationType) -> &'static str {
    match t {
        ActivationType::Activated => "ACTIVATED",
        ActivationType::ArtifactUnverified => "ARTIFACT_UNVERIFIED",
        ActivationType::ArtifactReverified => "ARTIFACT_REVERIFIED",
    }
}

fn event_type_from(name: &str) -> Result<ActivationType, StoreError> {
    match name {
        "ACTIVATED" => Ok(ActivationType::Activated),
        "ARTIFACT_UNVERIFIED" => Ok(ActivationType::ArtifactUnverified),
        "ARTIFACT_REVERIFIED" => Ok(ActivationType::ArtifactReverified),
        other => Err(StoreError::Unavailable(format!(
            "stored activation event has an unknown event_type {other:?}"
        ))),
    }
}

fn event_item(tenant: &str, pipeline: &str, e: &ActivationEvent) -> Item {
    Item::from([
        (PK.into(), s(registry_key(tenant, pipeline))),
        (SK.into(), s(activation_sort(e.seq))),
        ("record_type".into(), s("ACTIVATION")),
        ("seq".into(), n(e.seq)),
        ("activated_at_epoch_ms".into(), n(e.activated_at_epoch_ms)),
        ("at_epoch_ms".into(), n(e.at_epoch_ms)),
        ("event_type".into(), s(event_type_name(e.event_type))),
        ("release_version".into(), s(&e.release_version)),
        (
            "previous_release_version".into(),
            s(e.previous_release_version.clone().unwrap_or_default()),
        ),
        ("detail".into(), s(e.detail.clone().unwrap_or_default())),
        (
            "artifact_verified".into(),
            aws_sdk_dynamodb::types::AttributeValue::Bool(e.artifact_verified),
        ),
    ])
}

fn none_if_empty(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

fn event_from_item(item: &Item) -> Result<ActivationEvent, StoreError> {
    Ok(ActivationEvent {
        seq: get_n(item, "seq")?,
        event_type: event_type_from(&get_s(item, "event_type")?)?,
        release_version: get_s(item, "release_version")?,
        previous_release_version: none_if_empty(get_s(item, "previous_release_version")?),
        artifact_verified: get_bool(item, "artifact_verified")?,
        activated_at_epoch_ms: get_n(item, "activated_at_epoch_ms")?,
        at_epoch_ms: get_n(item, "at_epoch_ms")?,
        detail: none_if_empty(get_s(item, "detail")?),
    })
}

#[async_trait]
impl ReleaseRegistry for DynamoReleaseRegistry {
    async fn create_release(&self, record: &ReleaseRecord) -> Result<CreateOutcome, StoreError> {
        require_key_part("a tenantId", &record.tenant_id)?;
        require_key_part("a pipelineId", &record.pipeline_id)?;
        require_key_part("a releaseVersion", &record.release_version)?;
        let item = release_item(record)?;
        for _ in 0..CREATE_ATTEMPTS {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(registry_key)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(CreateOutcome::Created),
                Err(e) => e,
            };
            match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let existing = match failed.item() {
                        Some(old) => Some(old.clone()),
                        None => {
                            self.get_item(
                                registry_key(&record.tenant_id, &record.pipeline_id),
                                release_sort(&record.release_version),
                            )
                            .await?
                        }
                    };
                    return match existing {
                        Some(old) => Ok(CreateOutcome::Exists(Box::new(release_from_item(&old)?))),
                        None => Err(StoreError::Unavailable(
                            "a release item failed attribute_not_exists but cannot be read".into(),
                        )),
                    };
                }
                // An activation checking this (absent) release at the same
                // moment: try again.
                Some(PutItemError::TransactionConflictException(_)) => continue,
                _ => return Err(unavailable("PutItem", err)),
            }
        }
        Err(StoreError::Unavailable(
            "PutItem of a release kept meeting concurrent transactions".into(),
        ))
    }

    async fn get_release(
        &self,
        tenant: &str,
        pipeline: &str,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError> {
        if !(is_key_part(tenant) && is_key_part(pipeline) && is_key_part(version)) {
            return Ok(None);
        }
        self.get_item(registry_key(tenant, pipeline), release_sort(version))
            .await?
            .map(|item| release_from_item(&item))
            .transpose()
    }

    async fn list_releases(
        &self,
        tenant: &str,
        pipeline: &str,
        after: Option<&ReleaseListKey>,
        limit: usize,
    ) -> Result<Vec<ReleaseRecord>, StoreError> {
        if !(is_key_part(tenant) && is_key_part(pipeline)) || limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(CREATED_INDEX)
            .scan_index_forward(true)
            .expression_attribute_values(":pk", s(registry_key(tenant, pipeline)));
        query = match after {
            None => query.key_condition_expression("registry_key = :pk"),
            Some(a) => query
                .key_condition_expression("registry_key = :pk AND created_sort > :after")
                .expression_attribute_values(
                    ":after",
                    s(created_sort(a.created_at_epoch_ms, &a.release_version)),
                ),
        };
        query_collect(query, limit, |item| release_from_item(&item).map(Some)).await
    }

    async fn latest_event(
        &self,
        tenant: &str,
        pipeline: &str,
    ) -> Result<Option<ActivationEvent>, StoreError> {
        if !(is_key_part(tenant) && is_key_part(pipeline)) {
            return Ok(None);
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("registry_key = :pk AND begins_with(registry_sort, :p)")
            .expression_attribute_values(":pk", s(registry_key(tenant, pipeline)))
            .expression_attribute_values(":p", s(ACTIVATION_PREFIX))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("Query", e))?;
        out.items
            .unwrap_or_default()
            .first()
            .map(event_from_item)
            .transpose()
    }

    async fn append_event(
        &self,
        tenant: &str,
        pipeline: &str,
        event: &ActivationEvent,
    ) -> Result<AppendOutcome, StoreError> {
        require_key_part("a tenantId", tenant)?;
        require_key_part("a pipelineId", pipeline)?;
        if !is_key_part(&event.release_version) {
            return Ok(AppendOutcome::ReleaseMissing);
        }
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PK, s(registry_key(tenant, pipeline)))
            .key(SK, s(release_sort(&event.release_version)))
            .condition_expression("attribute_exists(registry_key)")
            .build()
            .map_err(build_error)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(event_item(tenant, pipeline, event)))
            .condition_expression("attribute_not_exists(registry_key)")
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(AppendOutcome::Appended),
            Err(e) => e,
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                match cancelled(c.cancellation_reasons()) {
                    Cancelled::Condition(0) => Ok(AppendOutcome::ReleaseMissing),
                    Cancelled::Condition(_) | Cancelled::Conflict => Ok(AppendOutcome::SeqTaken),
                    Cancelled::Other => Err(unavailable("TransactWriteItems", err)),
                }
            }
            _ => Err(unavailable("TransactWriteItems", err)),
        }
    }

    async fn list_events(
        &self,
        tenant: &str,
        pipeline: &str,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ActivationEvent>, StoreError> {
        if !(is_key_part(tenant) && is_key_part(pipeline)) || limit == 0 {
            return Ok(Vec::new());
        }
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(true)
            .expression_attribute_values(":pk", s(registry_key(tenant, pipeline)));
        let query = match after_seq {
            None => query
                .key_condition_expression("registry_key = :pk AND begins_with(registry_sort, :p)")
                .expression_attribute_values(":p", s(ACTIVATION_PREFIX)),
            // From the `after` event (inclusive, skipped below) to the end
            // of the `activation#` range.
            Some(after) => query
                .key_condition_expression(
                    "registry_key = :pk AND registry_sort BETWEEN :from AND :to",
                )
                .expression_attribute_values(":from", s(activation_sort(after)))
                .expression_attribute_values(":to", s(ACTIVATION_END)),
        };
        let skip = after_seq.map(activation_sort);
        query_collect(query, limit, |item| {
            if skip.as_deref() == Some(sort_of(&item)) {
                return Ok(None);
            }
            event_from_item(&item).map(Some)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_sort_orders_as_the_list() {
        assert_eq!(created_sort(200, "2.0"), "0000000000000000200#2.0");
        assert!(created_sort(200, "10.0") < created_sort(200, "2.0"));
        assert!(created_sort(99, "z") < created_sort(100, "a"));
        assert_eq!(created_sort(-5, "a"), "0000000000000000000#a");
    }

    #[test]
    fn items_round_trip_and_use_the_spec_names() {
        let record = ReleaseRecord {
            tenant_id: "acme".into(),
            pipeline_id: "orders".into(),
            contract_version: "c1".into(),
            release_version: "1.0".into(),
            descriptor: json!({"b": 1, "a": [true, null]})
                .as_object()
                .unwrap()
                .clone(),
            primary_artifact_id: "app".into(),
            primary_artifact_digest: "sha256:x".into(),
            primary_artifact_uri: String::new(),
            primary_artifact_size_bytes: 0,
            primary_artifact_checksum: String::new(),
            contract: None,
            created_at_epoch_ms: 7,
            content_hash: "sha256:h".into(),
            descriptor_location: "inline".into(),
            stored_artifacts: vec![],
        };
        let item = release_item(&record).unwrap();
        assert_eq!(item["registry_key"], s("acme#orders"));
        assert_eq!(item["registry_sort"], s("release#1.0"));
        assert_eq!(item["record_type"], s("RELEASE"));
        assert_eq!(item["created_sort"], s("0000000000000000007#1.0"));
        assert_eq!(item["descriptor_json"], s(r#"{"b":1,"a":[true,null]}"#));
        assert_eq!(item["stored_artifacts_json"], s("[]"));
        assert!(!item.contains_key("contract_json"));
        assert_eq!(release_from_item(&item).unwrap(), record);

        let event = ActivationEvent {
            seq: 3,
            event_type: ActivationType::Activated,
            release_version: "1.0".into(),
            previous_release_version: None,
            artifact_verified: true,
            activated_at_epoch_ms: 5,
            at_epoch_ms: 5,
            detail: None,
        };
        let item = event_item("acme", "orders", &event);
        assert_eq!(item["registry_sort"], s("activation#0000000000000000003"));
        assert_eq!(item["record_type"], s("ACTIVATION"));
        assert_eq!(item["event_type"], s("ACTIVATED"));
        assert_eq!(item["previous_release_version"], s(""));
        assert_eq!(item["detail"], s(""));
        assert_eq!(event_from_item(&item).unwrap(), event);
    }
}
