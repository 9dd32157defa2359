//! Creating the execution and await tables as `EXECUTION.md` §10.5
//! describes them (tests, and the local AWS mode; the deployed tables come
//! from `template.yaml`):
//!
//! | Table | Keys | TTL | Global secondary indexes |
//! |---|---|---|---|
//! | execution | `pk` (S, hash), `sk` (S, range) | `ttl` | `due-index` (`dp`, `ds`, KEYS_ONLY), `list-index` (`t`, `cs`, KEYS_ONLY) |
//! | await | the same | `ttl` | `pending-index` (`t`, `pd`, ALL), `settle-index` (`sp`, `ss`, KEYS_ONLY) |
//!
//! Both on demand. Both variables may name one table, which then has all
//! four indexes: each function creates the table if it is missing, adds the
//! indexes it lacks (`UpdateTable`, one at a time) and enables the TTL, so
//! calling both on one name gives the shared table.

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::payloads::{PK, SK, TTL};
use super::{build_error, unavailable};
use crate::error::StoreError;

/// Due executions (§5.4 phase 2): hash `dp`, range `ds`, KEYS_ONLY.
pub const DUE_INDEX: &str = "due-index";
/// The execution list (`API.md` §3.1): hash `t`, range `cs`, KEYS_ONLY.
pub const LIST_INDEX: &str = "list-index";
/// The pending list (`API.md` §2.4): hash `t`, range `pd`, ALL.
pub const PENDING_INDEX: &str = "pending-index";
/// Settle-due interactions (§5.4 phase 1): hash `sp`, range `ss`, KEYS_ONLY.
pub const SETTLE_INDEX: &str = "settle-index";

/// How long to wait for a table or index to become `ACTIVE`.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// One index of §10.5.
struct IndexSpec {
    name: &'static str,
    hash: &'static str,
    range: &'static str,
    projection: ProjectionType,
}

const EXECUTION_INDEXES: [IndexSpec; 2] = [
    IndexSpec {
        name: DUE_INDEX,
        hash: "dp",
        range: "ds",
        projection: ProjectionType::KeysOnly,
    },
    IndexSpec {
        name: LIST_INDEX,
        hash: "t",
        range: "cs",
        projection: ProjectionType::KeysOnly,
    },
];

const AWAIT_INDEXES: [IndexSpec; 2] = [
    IndexSpec {
        name: PENDING_INDEX,
        hash: "t",
        range: "pd",
        projection: ProjectionType::All,
    },
    IndexSpec {
        name: SETTLE_INDEX,
        hash: "sp",
        range: "ss",
        projection: ProjectionType::KeysOnly,
    },
];

/// Creates the execution table `name` (or adds what an existing one lacks)
/// and waits until it and its indexes are `ACTIVE`.
pub async fn create_execution_table(client: &Client, name: &str) -> Result<(), StoreError> {
    ensure(client, name, &EXECUTION_INDEXES).await
}

/// Creates the await table `name` (or adds what an existing one lacks) and
/// waits until it and its indexes are `ACTIVE`.
pub async fn create_await_table(client: &Client, name: &str) -> Result<(), StoreError> {
    ensure(client, name, &AWAIT_INDEXES).await
}

/// One table serving as both (`TPF_DYNAMO_EXECUTION_TABLE` =
/// `TPF_DYNAMO_AWAIT_TABLE`): all four indexes.
pub async fn create_shared_state_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let all = [
        &EXECUTION_INDEXES[0],
        &EXECUTION_INDEXES[1],
        &AWAIT_INDEXES[0],
        &AWAIT_INDEXES[1],
    ];
    ensure_refs(client, name, &all).await
}

async fn ensure(client: &Client, name: &str, indexes: &[IndexSpec]) -> Result<(), StoreError> {
    let refs: Vec<&IndexSpec> = indexes.iter().collect();
    ensure_refs(client, name, &refs).await
}

async fn ensure_refs(
    client: &Client,
    name: &str,
    indexes: &[&IndexSpec],
) -> Result<(), StoreError> {
    if describe(client, name).await?.is_none() {
        create(client, name, indexes).await?;
    }
    // Existing (or created meanwhile by another caller): add what it lacks.
    wait_active(client, name).await?;
    let table = describe(client, name).await?.ok_or_else(|| {
        StoreError::Unavailable(format!("table {name} vanished while it was being set up"))
    })?;
    let existing: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name().map(str::to_owned))
        .collect();
    for spec in indexes
        .iter()
        .filter(|s| !existing.iter().any(|e| e == s.name))
    {
        add_index(client, name, spec).await?;
    }
    enable_ttl(client, name).await
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(build_error)
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

fn projection(spec: &IndexSpec) -> Projection {
    Projection::builder()
        .projection_type(spec.projection.clone())
        .build()
}

async fn create(client: &Client, name: &str, indexes: &[&IndexSpec]) -> Result<(), StoreError> {
    let mut attributes: Vec<&str> = vec![PK, SK];
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?);
    for spec in indexes {
        for attribute in [spec.hash, spec.range] {
            if !attributes.contains(&attribute) {
                attributes.push(attribute);
            }
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(spec.name)
                .key_schema(key(spec.hash, KeyType::Hash)?)
                .key_schema(key(spec.range, KeyType::Range)?)
                .projection(projection(spec))
                .build()
                .map_err(build_error)?,
        );
    }
    for attribute in attributes {
        request = request.attribute_definitions(string_attribute(attribute)?);
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable("CreateTable", e)),
    }
}

async fn add_index(client: &Client, name: &str, spec: &IndexSpec) -> Result<(), StoreError> {
    wait_active(client, name).await?;
    let action = CreateGlobalSecondaryIndexAction::builder()
        .index_name(spec.name)
        .key_schema(key(spec.hash, KeyType::Hash)?)
        .key_schema(key(spec.range, KeyType::Range)?)
        .projection(projection(spec))
        .build()
        .map_err(build_error)?;
    client
        .update_table()
        .table_name(name)
        .attribute_definitions(string_attribute(spec.hash)?)
        .attribute_definitions(string_attribute(spec.range)?)
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder().create(action).build(),
        )
        .send()
        .await
        .map_err(|e| unavailable("UpdateTable", e))?;
    wait_active(client, name).await
}

async fn describe(client: &Client, name: &str) -> Result<Option<TableDescription>, StoreError> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(out.table),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DescribeTableError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(unavailable("DescribeTable", e)),
    }
}

/// Waits until the table and every index are `ACTIVE`.
async fn wait_active(client: &Client, name: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        if let Some(table) = describe(client, name).await? {
            let indexes_active = table
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if table.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "table {name} is not ACTIVE after {} s",
                ACTIVE_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn enable_ttl(client: &Client, name: &str) -> Result<(), StoreError> {
    let described = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| unavailable("DescribeTimeToLive", e))?;
    let status = described
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(TTL)
        .enabled(true)
        .build()
        .map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| unavailable("UpdateTimeToLive", e))?;
    Ok(())
}
