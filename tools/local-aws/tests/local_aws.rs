//! The local AWS mode against a real `moto_server` and real sockets:
//! template.yaml's resources are created as the template defines them, the
//! functions' environment names them, secrets are stored, and the pump
//! plays Lambda's SQS event source (partial batch failures) and the
//! EventBridge schedule against an HTTP server speaking the Invoke API.

#[path = "../../../shared/tests/integration/support/moto.rs"]
mod moto;

use aws_sdk_dynamodb::types::{ProjectionType, TimeToLiveStatus};
use aws_sdk_sqs::types::QueueAttributeName;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tpf_local_aws::provision::{self, Clients};
use tpf_local_aws::pump::{Invoker, QueueSource};
use tpf_local_aws::template::Template;

fn template() -> Template {
    Template::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../template.yaml"
    )))
    .unwrap()
}

async fn clients() -> (Clients, aws_config::SdkConfig) {
    let sdk = moto::sdk_config().await;
    (Clients::new(&sdk), sdk)
}

#[tokio::test]
async fn provisioning_creates_every_table_bucket_and_queue_as_the_template_defines_them() {
    let (clients, sdk) = clients().await;
    let t = template();
    let stack = moto::unique("prov");
    let ctx = provision::provision(&t, &clients, &stack, "us-east-1")
        .await
        .unwrap();
    // Twice is harmless: everything already exists.
    let again = provision::provision(&t, &clients, &stack, "us-east-1")
        .await
        .unwrap();
    assert_eq!(ctx.physical, again.physical);

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = t.tables().unwrap();
    assert_eq!(
        tables.len(),
        4,
        "release, worker, execution and await tables"
    );
    for spec in &tables {
        let name = provision::physical_name(&stack, &spec.logical_id);
        let d = ddb.describe_table().table_name(&name).send().await.unwrap();
        let d = d.table().unwrap();
        let keys: Vec<(String, String)> = d
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_string(),
                    k.key_type().as_str().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = spec
            .keys
            .iter()
            .map(|k| (k.attribute.clone(), k.key_type.clone()))
            .collect();
        assert_eq!(keys, want, "{name} key schema");
        let mut gsis: Vec<(String, Vec<String>, String)> = d
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                (
                    i.index_name().unwrap().to_string(),
                    i.key_schema()
                        .iter()
                        .map(|k| k.attribute_name().to_string())
                        .collect(),
                    i.projection()
                        .and_then(|p| p.projection_type())
                        .unwrap_or(&ProjectionType::All)
                        .as_str()
                        .to_string(),
                )
            })
            .collect();
        gsis.sort();
        let mut want_gsis: Vec<(String, Vec<String>, String)> = spec
            .global_indexes
            .iter()
            .map(|i| {
                (
                    i.name.clone(),
                    i.keys.iter().map(|k| k.attribute.clone()).collect(),
                    i.projection.clone(),
                )
            })
            .collect();
        want_gsis.sort();
        assert_eq!(gsis, want_gsis, "{name} global indexes");
        let lsis: Vec<&str> = d
            .local_secondary_indexes()
            .iter()
            .filter_map(|i| i.index_name())
            .collect();
        let want_lsis: Vec<&str> = spec.local_indexes.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(lsis, want_lsis, "{name} local indexes");
        let ttl = ddb
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        match &spec.ttl_attribute {
            Some(a) => {
                assert_eq!(
                    ttl.time_to_live_status(),
                    Some(&TimeToLiveStatus::Enabled),
                    "{name}"
                );
                assert_eq!(ttl.attribute_name(), Some(a.as_str()), "{name}");
            }
            None => assert_ne!(
                ttl.time_to_live_status(),
                Some(&TimeToLiveStatus::Enabled),
                "{name}"
            ),
        }
    }
    let executions = t
        .tables()
        .unwrap()
        .into_iter()
        .find(|s| s.logical_id == "ExecutionTable")
        .unwrap();
    assert_eq!(executions.ttl_attribute.as_deref(), Some("ttl"));
    assert!(executions
        .global_indexes
        .iter()
        .any(|i| i.name == "due-index"));

    // Queues: visibility timeout and the redrive policy to their DLQ.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let work = &ctx.physical["WorkQueue"];
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&work.reference)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "300");
    let redrive: Value = serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"],
        ctx.physical["WorkQueueDeadLetterQueue"].arn.as_str()
    );
    assert_eq!(redrive["maxReceiveCount"].to_string(), "5");

    // The bucket: versioning, default encryption, public access blocked.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = provision::bucket_name(&stack, "StorageBucket");
    assert_eq!(ctx.physical["StorageBucket"].reference, bucket);
    // Versioning, shown by behaviour (moto's GetBucketVersioning answer has
    // a root element the SDK refuses): two writes of a key keep two versions.
    for body in ["v1", "v2"] {
        s3.put_object()
            .bucket(&bucket)
            .key("probe")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let versions = s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix("probe")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2);
    let pab = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(pab.block_public_acls(), Some(true));
    assert_eq!(pab.restrict_public_buckets(), Some(true));
    let enc = s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );

    // The functions' environment names exactly these resources.
    let env: BTreeMap<String, String> = t.function_environment(&ctx).unwrap().into_iter().collect();
    assert_eq!(
        env["TPF_DYNAMO_EXECUTION_TABLE"],
        format!("{stack}-ExecutionTable")
    );
    assert_eq!(env["TPF_DYNAMO_AWAIT_TABLE"], format!("{stack}-AwaitTable"));
    assert_eq!(env["TPF_QUEUE_URL"], work.reference);
    assert_eq!(
        env["TPF_DLQ_URL"],
        ctx.physical["DeadLetterSinkQueue"].reference
    );
    assert_eq!(
        env["TPF_RELEASES_REGISTRATION_ROOTS"],
        format!("s3://{bucket}/releases/")
    );
    assert!(
        !env.contains_key("TPF_RESUME_TOKEN_SECRET_REF"),
        "the !If took the AWS::NoValue branch"
    );
}

#[tokio::test]
async fn the_env_file_stores_local_secrets_and_unsets_what_it_cannot_resolve() {
    let (clients, sdk) = clients().await;
    let t = template();
    let stack = moto::unique("env");
    let values: BTreeMap<String, String> = [
        ("TPF_ADMIN_TOKEN", "admin-local"),
        ("TPF_WORKER_SHARED_SECRET", "secret-local"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .into_iter()
    .collect();
    let text = tpf_local_aws::provision_env(&t, &clients, &stack, "us-east-1", &values)
        .await
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"export TPF_ADMIN_TOKEN_REF='ssm:/tpf/admin-token'"),
        "{text}"
    );
    assert!(lines.contains(&"unset TPF_ADMIN_TOKEN"), "{text}");
    // No local control-plane token given: its reference is dropped.
    assert!(
        lines.contains(&"unset TPF_CONTROL_PLANE_TOKEN_REF"),
        "{text}"
    );
    assert!(!text.contains("TPF_CONTROL_PLANE_TOKEN_REF='"), "{text}");
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let p = ssm
        .get_parameter()
        .name("/tpf/admin-token")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(p.parameter().unwrap().value(), Some("admin-local"));
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let s = sm
        .get_secret_value()
        .secret_id("tpf/worker-shared-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(s.secret_string(), Some("secret-local"));
}

/// An HTTP server speaking the Lambda Invoke API: records every payload;
/// `dispatcher` reports the messages whose body is `"fail"` as batch item
/// failures, `broken` answers 500.
#[derive(Clone, Default)]
struct FakeLambda {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn invoke(
    State(fake): State<FakeLambda>,
    Path(function): Path<String>,
    Json(event): Json<Value>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    fake.calls
        .lock()
        .unwrap()
        .push((function.clone(), event.clone()));
    if function == "broken" {
        return Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
    let failures: Vec<Value> = event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["body"] == "fail")
        .map(|r| json!({"itemIdentifier": r["messageId"]}))
        .collect();
    Ok(Json(json!({"batchItemFailures": failures})))
}

async fn fake_lambda() -> (FakeLambda, String) {
    let fake = FakeLambda::default();
    let app = Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, base)
}

async fn queue_with(sqs: &aws_sdk_sqs::Client, bodies: &[&str]) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(moto::unique("pump"))
        .attributes(QueueAttributeName::VisibilityTimeout, "0")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for b in bodies {
        sqs.send_message()
            .queue_url(&url)
            .message_body(*b)
            .send()
            .await
            .unwrap();
    }
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    (url, arn)
}

async fn bodies_left(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let got = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let mut bodies: Vec<String> = got
        .messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_string))
        .collect();
    bodies.sort();
    bodies
}

#[tokio::test]
async fn the_pump_delivers_an_sqs_event_and_deletes_only_what_the_function_did_not_report() {
    let (_, sdk) = clients().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (url, arn) = queue_with(&sqs, &["ok-1", "fail", "ok-2"]).await;
    let (fake, base) = fake_lambda().await;
    let source = QueueSource {
        function: "dispatcher".into(),
        queue_url: url.clone(),
        queue_arn: arn.clone(),
        batch_size: 10,
        region: "us-east-1".into(),
    };
    let mut delivered = 0;
    // moto may hand out fewer than all visible messages per receive.
    for _ in 0..5 {
        delivered += source
            .poll_once(&sqs, &Invoker::new(&base), 1)
            .await
            .unwrap();
        if delivered >= 3 {
            break;
        }
    }
    assert!(delivered >= 3, "{delivered}");
    let calls = fake.calls.lock().unwrap().clone();
    let first = &calls[0];
    assert_eq!(first.0, "dispatcher");
    let record = &first.1["Records"][0];
    assert_eq!(record["eventSource"], "aws:sqs");
    assert_eq!(record["eventSourceARN"], arn.as_str());
    assert!(record["receiptHandle"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    assert!(record["attributes"]["ApproximateReceiveCount"]
        .as_str()
        .is_some());
    // Only the reported failure is left on the queue.
    assert_eq!(bodies_left(&sqs, &url).await, ["fail"]);
}

#[tokio::test]
async fn a_failed_invocation_leaves_the_whole_batch_for_redelivery() {
    let (_, sdk) = clients().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (url, arn) = queue_with(&sqs, &["a", "b"]).await;
    let (fake, base) = fake_lambda().await;
    let source = QueueSource {
        function: "broken".into(),
        queue_url: url.clone(),
        queue_arn: arn,
        batch_size: 10,
        region: "us-east-1".into(),
    };
    let err = source
        .poll_once(&sqs, &Invoker::new(&base), 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
    assert_eq!(fake.calls.lock().unwrap().len(), 1);
    let mut left = Vec::new();
    for _ in 0..5 {
        left.extend(bodies_left(&sqs, &url).await);
        left.sort();
        left.dedup();
        if left.len() == 2 {
            break;
        }
    }
    assert_eq!(left, ["a", "b"]);
}

#[tokio::test]
async fn the_schedule_invokes_its_function_with_a_scheduled_event() {
    let (fake, base) = fake_lambda().await;
    let task = tokio::spawn(tpf_local_aws::pump::run_schedule(
        Invoker::new(&base),
        "sweeper".into(),
        Duration::from_secs(1),
        "eu-west-1".into(),
        "123456789012".into(),
    ));
    let mut waited = 0;
    while fake.calls.lock().unwrap().len() < 2 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    task.abort();
    let calls = fake.calls.lock().unwrap().clone();
    assert!(calls.len() >= 2, "two ticks within 10 s: {calls:?}");
    assert_eq!(calls[0].0, "sweeper");
    assert_eq!(calls[0].1["detail-type"], "Scheduled Event");
    assert_eq!(calls[0].1["region"], "eu-west-1");
}
