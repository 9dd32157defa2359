//! Creates the template's tables, buckets and queues on a local AWS peer
//! (moto), and the SSM parameters and Secrets Manager secrets the functions'
//! `*_REF` variables name, from local values. Every step tolerates a
//! resource that already exists, so provisioning twice is harmless.
//!
//! Physical names follow CloudFormation's habit of prefixing the stack name:
//! `<stack>-<LogicalId>` for tables and queues, the same in lower case for
//! buckets (S3 names are lower case).

use crate::template::{
    BucketSpec, Context, Physical, QueueSpec, TableSpec, Template, TemplateError,
};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    BucketVersioningStatus, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    VersioningConfiguration,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::BTreeMap;

/// The account id moto answers with (and the one ARNs are built with).
pub const LOCAL_ACCOUNT: &str = "123456789012";

/// A step of provisioning that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{what}: {message}")]
    Aws { what: String, message: String },
}

fn aws<E: std::error::Error>(what: impl Into<String>) -> impl FnOnce(E) -> ProvisionError {
    let what = what.into();
    move |e| ProvisionError::Aws {
        what,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

/// The clients provisioning needs, built once from one SDK configuration.
pub struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    /// Clients for `sdk`; S3 uses path-style addressing (local peers have no
    /// virtual-host DNS).
    pub fn new(sdk: &SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
        }
    }

    /// The SQS client (the event-source pump reuses it).
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }
}

/// Physical name of a table or queue.
pub fn physical_name(stack: &str, logical_id: &str) -> String {
    format!("{stack}-{logical_id}")
}

/// Physical name of a bucket.
pub fn bucket_name(stack: &str, logical_id: &str) -> String {
    format!("{stack}-{logical_id}").to_ascii_lowercase()
}

/// Creates every table, bucket and queue of `template` for stack `stack`
/// and returns the evaluation context naming them.
pub async fn provision(
    template: &Template,
    clients: &Clients,
    stack: &str,
    region: &str,
) -> Result<Context, ProvisionError> {
    let mut ctx = Context {
        stack: stack.to_string(),
        region: region.to_string(),
        account: LOCAL_ACCOUNT.to_string(),
        physical: BTreeMap::new(),
    };
    for table in template.tables()? {
        let p = create_table(
            &clients.dynamodb,
            &table,
            &physical_name(stack, &table.logical_id),
        )
        .await?;
        ctx.physical.insert(table.logical_id, p);
    }
    for bucket in template.buckets()? {
        let p = create_bucket(
            &clients.s3,
            &bucket,
            &bucket_name(stack, &bucket.logical_id),
        )
        .await?;
        ctx.physical.insert(bucket.logical_id, p);
    }
    for queue in template.queues()? {
        let p = create_queue(
            &clients.sqs,
            &queue,
            &physical_name(stack, &queue.logical_id),
            &ctx,
        )
        .await?;
        ctx.physical.insert(queue.logical_id, p);
    }
    Ok(ctx)
}

fn key_elements(
    keys: &[crate::template::KeyElement],
) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(aws("key schema"))
        })
        .collect()
}

/// Creates table `name` as `spec` defines it (on demand, keys, indexes,
/// TTL); an existing table is left as it is.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    spec: &TableSpec,
    name: &str,
) -> Result<Physical, ProvisionError> {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_elements(&spec.keys)?));
    for (attribute, ty) in &spec.attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(ty.as_str()))
                .build()
                .map_err(aws("attribute definition"))?,
        );
    }
    for index in &spec.global_indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_elements(&index.keys)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.as_str()))
                        .build(),
                )
                .build()
                .map_err(aws("global index"))?,
        );
    }
    for index in &spec.local_indexes {
        req = req.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_elements(&index.keys)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.as_str()))
                        .build(),
                )
                .build()
                .map_err(aws("local index"))?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(aws(format!("CreateTable {name}"))(e)),
    }
    if let Some(attribute) = &spec.ttl_attribute {
        let enabled = client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .map_err(aws("ttl"))?,
            )
            .send()
            .await;
        // Enabling TTL twice is refused (a service error): the table has it.
        if let Err(e) = enabled {
            if e.as_service_error().is_none() {
                return Err(aws(format!("UpdateTimeToLive {name}"))(e));
            }
        }
    }
    let described = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(aws(format!("DescribeTable {name}")))?;
    let arn = described
        .table()
        .and_then(|t| t.table_arn())
        .unwrap_or_default()
        .to_string();
    Ok(Physical {
        reference: name.to_string(),
        arn,
    })
}

async fn create_bucket(
    client: &aws_sdk_s3::Client,
    spec: &BucketSpec,
    name: &str,
) -> Result<Physical, ProvisionError> {
    match client.create_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) => {}
        Err(e) => return Err(aws(format!("CreateBucket {name}"))(e)),
    }
    if spec.versioned {
        client
            .put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(aws(format!("PutBucketVersioning {name}")))?;
    }
    if let Some(algorithm) = &spec.encryption {
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::from(algorithm.as_str()))
                    .build()
                    .map_err(aws("encryption"))?,
            )
            .build();
        client
            .put_bucket_encryption()
            .bucket(name)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()
                    .map_err(aws("encryption"))?,
            )
            .send()
            .await
            .map_err(aws(format!("PutBucketEncryption {name}")))?;
    }
    if spec.public_access_blocked {
        client
            .put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .block_public_policy(true)
                    .ignore_public_acls(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(aws(format!("PutPublicAccessBlock {name}")))?;
    }
    Ok(Physical {
        reference: name.to_string(),
        arn: format!("arn:aws:s3:::{name}"),
    })
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    spec: &QueueSpec,
    name: &str,
    ctx: &Context,
) -> Result<Physical, ProvisionError> {
    let mut req = client.create_queue().queue_name(name);
    if let Some(v) = spec.visibility_timeout_s {
        req = req.attributes(QueueAttributeName::VisibilityTimeout, v.to_string());
    }
    if let Some(v) = spec.retention_s {
        req = req.attributes(QueueAttributeName::MessageRetentionPeriod, v.to_string());
    }
    if let Some((target, max)) = &spec.redrive {
        let Some(dlq) = ctx.physical.get(target) else {
            return Err(ProvisionError::Aws {
                what: format!("CreateQueue {name}"),
                message: format!("dead-letter queue {target} was not created"),
            });
        };
        let policy = serde_json::json!({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": max});
        req = req.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = req
        .send()
        .await
        .map_err(aws(format!("CreateQueue {name}")))?
        .queue_url
        .unwrap_or_default();
    let attributes = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(aws(format!("GetQueueAttributes {name}")))?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    Ok(Physical {
        reference: url,
        arn,
    })
}

/// For each `<NAME>_REF` variable of `env` whose value is `ssm:<name>` or
/// `secretsmanager:<name>` and whose `<NAME>` has a local value in
/// `values`, stores that value there (SSM `SecureString`, Secrets Manager
/// `SecretString`; an existing one is overwritten with the local value).
/// Returns the `_REF` variables left without a value (the caller drops
/// them, so the functions do not try to resolve a secret that is not there).
pub async fn store_secrets(
    clients: &Clients,
    env: &[(String, String)],
    values: &BTreeMap<String, String>,
) -> Result<Vec<String>, ProvisionError> {
    let mut unresolved = Vec::new();
    for (var, reference) in env {
        let Some(base) = var.strip_suffix("_REF") else {
            continue;
        };
        let Some(value) = values.get(base) else {
            unresolved.push(var.clone());
            continue;
        };
        if let Some(name) = reference.strip_prefix("ssm:") {
            clients
                .ssm
                .put_parameter()
                .name(name)
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .overwrite(true)
                .send()
                .await
                .map_err(aws(format!("PutParameter {name}")))?;
        } else if let Some(name) = reference.strip_prefix("secretsmanager:") {
            let created = clients
                .secrets
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_exists_exception()) =>
                {
                    clients
                        .secrets
                        .put_secret_value()
                        .secret_id(name)
                        .secret_string(value)
                        .send()
                        .await
                        .map_err(aws(format!("PutSecretValue {name}")))?;
                }
                Err(e) => return Err(aws(format!("CreateSecret {name}"))(e)),
            }
        } else {
            unresolved.push(var.clone());
        }
    }
    Ok(unresolved)
}
