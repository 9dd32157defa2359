//! Creating the registry tables as `RELEASES.md` §5 and §6.6 describe them
//! (tests, and scripts setting up a local or fresh account).
//!
//! | Table | Keys | Index | Billing |
//! |---|---|---|---|
//! | release registry | `registry_key` (S, hash), `registry_sort` (S, range) | LSI `created_index` on `created_sort` (S), projection ALL | on demand |
//! | worker registry | the same | — | on demand |
//!
//! Neither table has a TTL. The deployed tables come from `template.yaml`.

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use super::{build_error, unavailable, PK, SK};
use crate::error::StoreError;

/// Name of the release table's local secondary index.
pub const CREATED_INDEX: &str = "created_index";
/// Range key of [`CREATED_INDEX`].
pub const CREATED_SORT: &str = "created_sort";

/// How long to wait for a new table to become `ACTIVE`.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Creates the release registry table `name` unless it exists, and waits
/// until it is `ACTIVE`. An existing table is left as it is.
pub async fn create_release_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let index = LocalSecondaryIndex::builder()
        .index_name(CREATED_INDEX)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(CREATED_SORT, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_error)?;
    create(client, name, &[PK, SK, CREATED_SORT], Some(index)).await
}

/// Creates the worker registry table `name` unless it exists, and waits
/// until it is `ACTIVE`. An existing table is left as it is.
pub async fn create_worker_table(client: &Client, name: &str) -> Result<(), StoreError> {
    create(client, name, &[PK, SK], None).await
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(build_error)
}

async fn create(
    client: &Client,
    name: &str,
    string_attributes: &[&str],
    index: Option<LocalSecondaryIndex>,
) -> Result<(), StoreError> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .set_local_secondary_indexes(index.map(|i| vec![i]));
    for attribute in string_attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(*attribute)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) => {}
        Err(e) => return Err(unavailable("CreateTable", e)),
    }
    wait_active(client, name).await
}

async fn wait_active(client: &Client, name: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| unavailable("DescribeTable", e))?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
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
