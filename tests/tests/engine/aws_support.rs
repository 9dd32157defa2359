//! The one AWS engine harness of this test binary: the engine of a
//! [`Harness`] rewired onto the DynamoDB/S3/SQS providers over moto, on
//! fresh, uniquely named tables, payload bucket and queues, with the demo
//! release activated and the example worker registered in the DynamoDB
//! registries. The AWS tests (`aws_flow`, its STORE-08 write counts,
//! `aws_faults`, `aws_requests`) differ only in how the engine's SDK clients
//! are customised (a request log, a fault interceptor, the retry policy) and
//! in the payload settings, so they all build here.

use crate::moto;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::SharedInterceptor;
use serde_json::Value;
use std::sync::Arc;
use tpf_core::actions::{ReleaseDeps, WorkerDeps};
use tpf_core::lambda_events::dispatch_batch;
use tpf_core::providers::dynamo::{
    DynamoAwaitStore, DynamoExecutionStore, DynamoReleaseRegistry, DynamoStateSettings,
    DynamoWorkerRegistry,
};
use tpf_core::providers::sqs::{SqsDeadLetterSink, SqsWorkQueue};
use tpf_tests::*;

/// Which AWS service a client serves (handed to interceptor factories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Dynamodb,
    S3,
    Sqs,
}

impl Service {
    /// The service's lower-case name, as `RequestLog` records it.
    pub fn name(self) -> &'static str {
        match self {
            Service::Dynamodb => "dynamodb",
            Service::S3 => "s3",
            Service::Sqs => "sqs",
        }
    }
}

/// The `SqsEvent` Lambda's event source would hand the dispatcher for these
/// received messages (id and body; the rest is not read).
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.body = m.body.clone();
            r
        })
        .collect();
    event
}

/// The engine with every one of its clients recording into the returned
/// log (cleared after set-up), for the request-count tests; `worker`: the
/// example restaurant worker when `None`, else this URL. §10.1's defaults:
/// payloads inline up to 8 KiB, one index shard.
pub async fn counted_engine(
    worker: Option<String>,
) -> (AwsEngine, tpf_core::providers::aws_requests::RequestLog) {
    let log = tpf_core::providers::aws_requests::RequestLog::new();
    let recorder = log.clone();
    let e = aws_engine(AwsOptions {
        worker_url: worker,
        interceptors: vec![Box::new(move |_| {
            SharedInterceptor::new(recorder.interceptor())
        })],
        ..AwsOptions::default()
    })
    .await;
    log.clear();
    (e, log)
}

/// Builds the interceptor one engine client of `Service` carries.
pub type InterceptorFactory = Box<dyn Fn(Service) -> SharedInterceptor + Send + Sync>;

/// How the engine's clients and settings differ from the defaults.
pub struct AwsOptions {
    /// Engine settings overridden through the harness environment.
    pub env: Vec<(&'static str, String)>,
    /// Payloads above this go to S3 (§10.1; default 8 KiB).
    pub threshold_bytes: usize,
    /// Index shards of the status/await indexes (§10.1; default 1).
    pub index_shards: u8,
    /// The worker registered as `kitchen-1`: the harness's example worker
    /// when `None`.
    pub worker_url: Option<String>,
    /// Interceptors every engine client carries, in order.
    pub interceptors: Vec<InterceptorFactory>,
    /// The engine clients' retry policy (the SDK's default when `None`).
    pub retry: Option<RetryConfig>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            env: vec![],
            threshold_bytes: 8192,
            index_shards: 1,
            worker_url: None,
            interceptors: vec![],
            retry: None,
        }
    }
}

/// The harness on the AWS providers, with plain (uncustomised) clients to
/// set up, inspect and drive it.
pub struct AwsEngine {
    pub h: Harness,
    /// Plain clients: their requests meet no interceptor of the engine's.
    pub ddb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub executions_table: String,
    pub awaits_table: String,
    pub releases_table: String,
    pub workers_table: String,
    pub settings: DynamoStateSettings,
    pub work_url: String,
    pub dlq_url: String,
}

async fn queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(moto::unique(prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Builds the engine on fresh AWS resources as `options` say.
pub async fn aws_engine(options: AwsOptions) -> AwsEngine {
    let sdk = moto::sdk_config().await;
    let plain_ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let plain_s3 = tpf_core::providers::s3::client(&sdk, None, None, true);
    let plain_sqs = aws_sdk_sqs::Client::new(&sdk);

    let ddb = {
        let mut b = aws_sdk_dynamodb::config::Builder::from(&sdk);
        for f in &options.interceptors {
            b.push_interceptor(f(Service::Dynamodb));
        }
        if let Some(r) = &options.retry {
            b.set_retry_config(Some(r.clone()));
        }
        aws_sdk_dynamodb::Client::from_conf(b.build())
    };
    let s3 = {
        let mut b = plain_s3.config().to_builder();
        for f in &options.interceptors {
            b.push_interceptor(f(Service::S3));
        }
        if let Some(r) = &options.retry {
            b.set_retry_config(Some(r.clone()));
        }
        aws_sdk_s3::Client::from_conf(b.build())
    };
    let sqs = {
        let mut b = aws_sdk_sqs::config::Builder::from(&sdk);
        for f in &options.interceptors {
            b.push_interceptor(f(Service::Sqs));
        }
        if let Some(r) = &options.retry {
            b.set_retry_config(Some(r.clone()));
        }
        aws_sdk_sqs::Client::from_conf(b.build())
    };

    let (executions_table, awaits_table, releases_table, workers_table, bucket) =
        moto::create_engine_resources(&plain_ddb, &plain_s3).await;
    let settings = DynamoStateSettings {
        payload_bucket: bucket,
        payload_prefix: "tpf/payloads".into(),
        threshold_bytes: options.threshold_bytes,
        index_shards: options.index_shards,
    };
    let work_url = queue(&plain_sqs, "work").await;
    let dlq_url = queue(&plain_sqs, "dead-letters").await;

    let mut h = Harness::new(Options {
        env: options.env,
        restaurant_worker: false,
    })
    .await;
    let releases = Arc::new(DynamoReleaseRegistry::new(
        ddb.clone(),
        releases_table.clone(),
    ));
    let workers = Arc::new(DynamoWorkerRegistry::new(
        ddb.clone(),
        workers_table.clone(),
    ));
    let deps = tpf_core::actions::EngineDeps {
        executions: Arc::new(DynamoExecutionStore::new(
            ddb.clone(),
            s3.clone(),
            executions_table.clone(),
            settings.clone(),
        )),
        awaits: Arc::new(DynamoAwaitStore::new(
            ddb.clone(),
            s3.clone(),
            awaits_table.clone(),
            settings.clone(),
        )),
        releases: releases.clone(),
        workers: workers.clone(),
        queue: Arc::new(SqsWorkQueue::new(sqs.clone(), work_url.clone())),
        dead_letters: Arc::new(SqsDeadLetterSink::new(sqs, dlq_url.clone())),
        ..h.deps.clone()
    };
    h.deps = deps.clone();
    h.release_deps = ReleaseDeps {
        registry: releases,
        ..h.release_deps.clone()
    };
    h.worker_deps = WorkerDeps {
        registry: workers,
        ..h.worker_deps.clone()
    };
    // Release-admin and worker-lifecycle routes on the same registries.
    let (release_deps, worker_deps) = (h.release_deps.clone(), h.worker_deps.clone());
    h.router = h.router_altered(deps, |s| {
        s.releases = Some(release_deps);
        s.workers = Some(worker_deps);
    });
    let spec = demo_release::DemoSpec::default();
    h.activate_demo_release(&spec).await;
    let url = options.worker_url.unwrap_or_else(|| h.worker_url.clone());
    h.register_worker("kitchen-1", &url, &spec).await;
    AwsEngine {
        h,
        ddb: plain_ddb,
        s3: plain_s3,
        sqs: plain_sqs,
        executions_table,
        awaits_table,
        releases_table,
        workers_table,
        settings,
        work_url,
        dlq_url,
    }
}

impl AwsEngine {
    /// Receives what is visible on `url` now (everything, in pages of 10).
    pub async fn receive(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        loop {
            let page = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    /// One dispatcher invocation as Lambda's SQS event source makes it (on
    /// the plain client): the visible work messages as one `SqsEvent`, then
    /// the batch's successes deleted. Asserts no batch item failure; returns
    /// the bodies dispatched.
    pub async fn dispatch(&self) -> Vec<Value> {
        let messages = self.receive(&self.work_url).await;
        let response = dispatch_batch(&self.h.deps, sqs_event(&messages)).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "batch failures: {:?}",
            response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect::<Vec<_>>()
        );
        self.consume(&self.work_url, &messages).await
    }

    /// The messages now on the dead-letter queue (consumed), as JSON.
    pub async fn dead_letters(&self) -> Vec<Value> {
        let messages = self.receive(&self.dlq_url).await;
        self.consume(&self.dlq_url, &messages).await
    }

    /// Deletes received `messages` from the queue at `url` (on the plain
    /// client) and returns their bodies as JSON.
    async fn consume(&self, url: &str, messages: &[aws_sdk_sqs::types::Message]) -> Vec<Value> {
        for m in messages {
            self.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
        messages
            .iter()
            .map(|m| serde_json::from_str(m.body.as_deref().unwrap()).unwrap())
            .collect()
    }
}
