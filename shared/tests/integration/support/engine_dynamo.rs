//! The `dynamo` execution and await stores on moto: a fresh, uniquely
//! named table and payload bucket per call.
#![allow(dead_code)]

use tpf_core::providers::dynamo::{DynamoAwaitStore, DynamoExecutionStore, DynamoStateSettings};

use super::moto;

/// Which table layout to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    Execution,
    Await,
    /// One table for both (all four indexes).
    Shared,
}

/// Clients, table and settings of one test.
#[derive(Clone)]
pub struct EngineAws {
    pub ddb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub table: String,
    pub settings: DynamoStateSettings,
}

impl EngineAws {
    pub fn executions(&self) -> DynamoExecutionStore {
        DynamoExecutionStore::new(
            self.ddb.clone(),
            self.s3.clone(),
            self.table.clone(),
            self.settings.clone(),
        )
    }

    pub fn awaits(&self) -> DynamoAwaitStore {
        DynamoAwaitStore::new(
            self.ddb.clone(),
            self.s3.clone(),
            self.table.clone(),
            self.settings.clone(),
        )
    }
}

/// A new table of kind `tables` and a new bucket; payloads longer than
/// `threshold` bytes go to S3; `shards` index shards.
pub async fn engine_aws(tables: Tables, shards: u8, threshold: usize) -> EngineAws {
    let config = moto::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let table = moto::unique("engine");
    match tables {
        Tables::Execution => moto::create_execution_table(&ddb, &table).await.unwrap(),
        Tables::Await => moto::create_await_table(&ddb, &table).await.unwrap(),
        Tables::Shared => moto::create_shared_state_table(&ddb, &table).await.unwrap(),
    }
    let bucket = moto::unique("payloads");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    EngineAws {
        ddb,
        s3,
        table,
        settings: DynamoStateSettings {
            payload_bucket: bucket,
            payload_prefix: "tpf/payloads".into(),
            threshold_bytes: threshold,
            index_shards: shards,
        },
    }
}

/// [`engine_aws`] from synchronous code running on a multi-thread runtime
/// (the conformance fixtures).
pub fn engine_aws_blocking(tables: Tables, shards: u8, threshold: usize) -> EngineAws {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(engine_aws(tables, shards, threshold))
    })
}
