//! A `moto_server` (PyPI `moto[server]`) on a free loopback port: the real
//! DynamoDB/S3/SQS/SSM/Secrets Manager wire peer of the AWS provider tests.
//! `infra/test.sh` installs it and exports `TPF_MOTO_SERVER`; the server is
//! shared by the tests of one binary and stopped when the process exits.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    pub endpoint: String,
    _child: Option<ChildGuard>,
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto_binary() -> String {
    if let Ok(p) = std::env::var("TPF_MOTO_SERVER") {
        return p;
    }
    // The project venv at the workspace root, above whichever crate runs.
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(local) = crate_dir
        .ancestors()
        .map(|dir| dir.join(".venv/bin/moto_server"))
        .find(|p| p.exists())
    {
        return local.to_string_lossy().into_owned();
    }
    panic!("moto_server not found: run infra/test.sh (it installs moto[server] into .venv) or set TPF_MOTO_SERVER");
}

fn start() -> Moto {
    // infra/test.sh starts one server for the whole run.
    if let Ok(endpoint) = std::env::var("TPF_MOTO_ENDPOINT") {
        return Moto {
            endpoint,
            _child: None,
        };
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A watchdog shell stops moto when this test process ends (statics are
    // never dropped at exit).
    let script = format!(
        "{} -H 127.0.0.1 -p {port} & m=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $m",
        moto_binary(),
        std::process::id()
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: Some(guard),
    }
}

/// The process-wide moto server, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

/// An SDK configuration for moto: static test credentials, us-east-1. (Shared
/// with tools/local-aws, which has no tpf-core: the SDK default HTTPS client,
/// enabled by that crate.)
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto().endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await
}

/// A name unique in this process (tables, buckets, queues per test).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Creates table `name` as `template.yaml` defines `logical_id`: the
/// template is the one definition of the tables, so every DynamoDB test
/// runs on the deployed layout.
pub async fn create_template_table(
    client: &aws_sdk_dynamodb::Client,
    logical_id: &str,
    name: &str,
) -> Result<(), String> {
    let template =
        tpf_local_aws::template::Template::of_this_repository().map_err(|e| e.to_string())?;
    let spec = template.table(logical_id).map_err(|e| e.to_string())?;
    tpf_local_aws::provision::create_table(client, &spec, name)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The template's `ExecutionTable` under `name`.
pub async fn create_execution_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), String> {
    create_template_table(client, "ExecutionTable", name).await
}

/// The template's `AwaitTable` under `name`.
pub async fn create_await_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), String> {
    create_template_table(client, "AwaitTable", name).await
}

/// The template's `ReleaseTable` under `name`.
pub async fn create_release_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), String> {
    create_template_table(client, "ReleaseTable", name).await
}

/// The template's `WorkerTable` under `name`.
pub async fn create_worker_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), String> {
    create_template_table(client, "WorkerTable", name).await
}

/// One table holding executions and awaits (`TPF_DYNAMO_AWAIT_TABLE` naming
/// the execution table): the union of the template's two engine tables.
pub async fn create_shared_state_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), String> {
    let template =
        tpf_local_aws::template::Template::of_this_repository().map_err(|e| e.to_string())?;
    let executions = template
        .table("ExecutionTable")
        .map_err(|e| e.to_string())?;
    let awaits = template.table("AwaitTable").map_err(|e| e.to_string())?;
    tpf_local_aws::provision::create_table(client, &executions.merged(&awaits), name)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Fresh, uniquely named engine resources: the template's four tables and a
/// payload bucket (names: executions, awaits, releases, workers, bucket).
pub async fn create_engine_resources(
    ddb: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
) -> (String, String, String, String, String) {
    let names = (
        unique("executions"),
        unique("awaits"),
        unique("releases"),
        unique("workers"),
    );
    let (a, b, c, d) = tokio::join!(
        create_execution_table(ddb, &names.0),
        create_await_table(ddb, &names.1),
        create_release_table(ddb, &names.2),
        create_worker_table(ddb, &names.3),
    );
    for created in [a, b, c, d] {
        created.unwrap();
    }
    let bucket = unique("payloads");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    (names.0, names.1, names.2, names.3, bucket)
}
