//! Accounting of the AWS requests a client makes: a [`RequestLog`] whose
//! [`RequestLog::interceptor`] is attached to any SDK client (DynamoDB, S3,
//! SQS, …) and records, per request the application sends, the service,
//! the operation, what it addresses and how it ended.
//!
//! One record per *request* (one `send()`), not per HTTP attempt: the SDK's
//! own retries are counted in [`AwsRequest::attempts`]. This is the unit of
//! `EXECUTION.md` §10.8 ("write requests", items in parentheses) and of
//! billing (DynamoDB bills each attempt that reaches the table, so
//! `attempts` is kept too).
//!
//! ```no_run
//! # async fn demo(sdk: &aws_config::SdkConfig) {
//! use tpf_core::providers::aws_requests::RequestLog;
//!
//! let log = RequestLog::new();
//! let ddb = aws_sdk_dynamodb::Client::from_conf(
//!     aws_sdk_dynamodb::config::Builder::from(sdk)
//!         .interceptor(log.interceptor())
//!         .build(),
//! );
//! // … use `ddb` (and S3 / SQS clients carrying the same interceptor) …
//! let requests = log.take();
//! let writes = requests.iter().filter(|r| r.is_dynamo_write()).count();
//! # let _ = (ddb, writes);
//! # }
//! ```
//!
//! The interceptor only reads: it never changes a request, a response or
//! the retry behaviour, and a request it cannot classify is still recorded
//! (with the operation name the SDK gives it).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreAppend};

/// Operation-name prefixes of the requests that change state (see
/// [`AwsRequest::is_write`]).
const WRITE_PREFIXES: &[&str] = &[
    "Put",
    "Update",
    "Delete",
    "TransactWrite",
    "BatchWrite",
    "Copy",
    "Create",
    "Complete",
    "Abort",
    "Upload",
    "Send",
    "Change",
    "Purge",
    "Tag",
    "Untag",
    "Restore",
    "Set",
    "Add",
    "Remove",
];

/// One item a DynamoDB write request writes (or checks): the single item
/// of `PutItem` / `UpdateItem` / `DeleteItem`, or one action of a
/// `TransactWriteItems` / one request of a `BatchWriteItem`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    /// `Put`, `Update`, `Delete` or `ConditionCheck`.
    pub action: &'static str,
    /// The table written.
    pub table: Option<String>,
    /// The `ConditionExpression`, verbatim (placeholders unresolved).
    pub condition: Option<String>,
    /// `ReturnValuesOnConditionCheckFailure=ALL_OLD` was asked for.
    pub all_old_on_failure: bool,
}

/// One request as the application sent it (one `send()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsRequest {
    /// Lower-case service name as the SDK names it: `dynamodb`, `s3`,
    /// `sqs`, `ssm`, `secretsmanager`, …
    pub service: String,
    /// The operation: `PutItem`, `UpdateItem`, `TransactWriteItems`,
    /// `GetItem`, `Query`, `PutObject`, `GetObject`, `SendMessage`, …
    pub operation: String,
    /// What it addresses: the DynamoDB table (for a transaction or a batch,
    /// the table all its items share; `None` when they span several), the
    /// S3 bucket, the SQS queue URL. `None` for other requests.
    pub target: Option<String>,
    /// Items the request names: the actions of a `TransactWriteItems` /
    /// `TransactGetItems`, the requests of a `BatchWriteItem`, the keys of
    /// a `BatchGetItem`, the entries of an SQS batch, the objects of an S3
    /// `DeleteObjects`; 1 for every other request.
    pub items: usize,
    /// DynamoDB writes only: each item written, with its condition.
    pub item_writes: Vec<ItemWrite>,
    /// DynamoDB reads: `ConsistentRead` (`GetItem`, `Query`, `Scan`; for a
    /// `BatchGetItem` true only when every table is read consistently).
    pub consistent_read: Option<bool>,
    /// The `ClientRequestToken` of a `TransactWriteItems`.
    pub client_request_token: Option<String>,
    /// HTTP attempts the SDK made (its retries included); 0 when the
    /// request failed before it was sent.
    pub attempts: u32,
    /// How it ended; `None` while in flight.
    pub outcome: Option<Outcome>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The operation's output was returned.
    Ok,
    /// An error was returned: the HTTP status of the last response (if one
    /// came) and the service's error code when the body names it (e.g.
    /// `ConditionalCheckFailedException`, `PreconditionFailed`).
    Err {
        status: Option<u16>,
        code: Option<String>,
    },
}

impl AwsRequest {
    /// True for a request that changes state: its operation name starts
    /// with a mutating verb (`Put…`, `Update…`, `Delete…`,
    /// `TransactWrite…`, `BatchWrite…`, `Copy…`, `Create…`, `Send…`, …).
    /// `ReceiveMessage`, `Get…`, `Head…`, `List…`, `Query`, `Scan`,
    /// `BatchGetItem` and `TransactGetItems` are reads.
    pub fn is_write(&self) -> bool {
        WRITE_PREFIXES.iter().any(|p| self.operation.starts_with(p))
    }

    /// True for a request that does not change state.
    pub fn is_read(&self) -> bool {
        !self.is_write()
    }

    /// True for a DynamoDB write request in the sense of `EXECUTION.md`
    /// §10.8: `PutItem`, `UpdateItem`, `DeleteItem`, `TransactWriteItems`,
    /// `BatchWriteItem`.
    pub fn is_dynamo_write(&self) -> bool {
        self.service == "dynamodb" && self.is_write()
    }

    /// True when the request was made by `service` (lower case).
    pub fn is(&self, service: &str, operation: &str) -> bool {
        self.service == service && self.operation == operation
    }

    /// True when it ended with an error.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Some(Outcome::Err { .. }))
    }

    /// The error code it ended with, if any.
    pub fn error_code(&self) -> Option<&str> {
        match &self.outcome {
            Some(Outcome::Err { code, .. }) => code.as_deref(),
            _ => None,
        }
    }

    /// `Operation`, or `Operation(n)` when it names several items: the
    /// notation of `EXECUTION.md` §10.8, handy in assertions.
    pub fn label(&self) -> String {
        if self.items == 1 && !self.is_multi_item() {
            self.operation.clone()
        } else {
            format!("{}({})", self.operation, self.items)
        }
    }

    fn is_multi_item(&self) -> bool {
        self.operation.starts_with("Transact")
            || self.operation.starts_with("Batch")
            || self.operation.ends_with("Batch")
            || self.operation == "DeleteObjects"
    }
}

impl fmt::Display for AwsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.label())
    }
}

/// Totals of a list of requests (see [`RequestLog::tally`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// All requests.
    pub requests: usize,
    /// Requests that change state ([`AwsRequest::is_write`]).
    pub writes: usize,
    /// Items those writes name ([`AwsRequest::items`]).
    pub write_items: usize,
    /// Requests that do not.
    pub reads: usize,
    /// HTTP attempts of all requests (≥ `requests` when the SDK retried).
    pub attempts: usize,
    /// Requests per `(service, operation)`.
    pub by_operation: BTreeMap<(String, String), usize>,
}

impl Tally {
    /// The totals of `requests`.
    pub fn of<'a>(requests: impl IntoIterator<Item = &'a AwsRequest>) -> Self {
        let mut t = Tally::default();
        for r in requests {
            t.requests += 1;
            if r.is_write() {
                t.writes += 1;
                t.write_items += r.items;
            } else {
                t.reads += 1;
            }
            t.attempts += r.attempts as usize;
            *t.by_operation
                .entry((r.service.clone(), r.operation.clone()))
                .or_default() += 1;
        }
        t
    }

    /// Requests of `(service, operation)`.
    pub fn count(&self, service: &str, operation: &str) -> usize {
        self.by_operation
            .get(&(service.to_owned(), operation.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// The requests recorded by the interceptors of one log. Cheap to clone:
/// clones share the records. Attach [`RequestLog::interceptor`] to every
/// client whose requests it should see.
#[derive(Clone, Default)]
pub struct RequestLog {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    records: Mutex<Vec<(u64, AwsRequest)>>,
}

impl fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLog")
            .field("requests", &self.lock().len())
            .finish()
    }
}

impl RequestLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An interceptor recording into this log, for
    /// `aws_sdk_dynamodb::config::Builder::interceptor` (and the S3, SQS, …
    /// twins), or `.customize().interceptor(…)` on one request.
    pub fn interceptor(&self) -> RequestInterceptor {
        RequestInterceptor { log: self.clone() }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, AwsRequest)>> {
        self.inner
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The requests recorded so far, oldest first (in the order they were
    /// sent; a request still in flight has no outcome yet).
    pub fn snapshot(&self) -> Vec<AwsRequest> {
        self.lock().iter().map(|(_, r)| r.clone()).collect()
    }

    /// The requests recorded so far, removed from the log.
    pub fn take(&self) -> Vec<AwsRequest> {
        std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Requests recorded so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The totals of the requests recorded so far.
    pub fn tally(&self) -> Tally {
        Tally::of(self.lock().iter().map(|(_, r)| r))
    }

    /// DynamoDB write requests recorded so far (§10.8's count).
    pub fn dynamo_writes(&self) -> usize {
        self.lock()
            .iter()
            .filter(|(_, r)| r.is_dynamo_write())
            .count()
    }

    /// Items those DynamoDB writes name (§10.8's count in parentheses).
    pub fn dynamo_write_items(&self) -> usize {
        self.lock()
            .iter()
            .filter(|(_, r)| r.is_dynamo_write())
            .map(|(_, r)| r.items)
            .sum()
    }

    fn start(&self, request: AwsRequest) -> u64 {
        let seq = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((seq, request));
        seq
    }

    fn update(&self, seq: u64, f: impl FnOnce(&mut AwsRequest)) {
        // Recent requests are at the end; a record taken or cleared
        // meanwhile is simply not updated.
        if let Some((_, r)) = self.lock().iter_mut().rev().find(|(s, _)| *s == seq) {
            f(r);
        }
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
}

/// The SDK interceptor of a [`RequestLog`].
#[derive(Debug, Clone)]
pub struct RequestInterceptor {
    log: RequestLog,
}

/// Which record of which log an execution is (kept in the execution's
/// config bag; several logs may watch one client).
#[derive(Debug, Clone)]
struct Recorded {
    log: usize,
    seq: u64,
}

impl Storable for Recorded {
    type Storer = StoreAppend<Self>;
}

impl RequestInterceptor {
    fn recorded(&self, cfg: &ConfigBag) -> Option<u64> {
        let me = self.log.id();
        cfg.load::<Recorded>().find(|r| r.log == me).map(|r| r.seq)
    }
}

impl Intercept for RequestInterceptor {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    // Once per execution, after the operation's configuration (which holds
    // its `Metadata`) is applied: `read_before_execution` of a client-level
    // interceptor runs before that.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(m) => (m.service().to_ascii_lowercase(), m.name().to_owned()),
            None => ("unknown".to_owned(), "Unknown".to_owned()),
        };
        let mut request = AwsRequest {
            service,
            operation,
            target: None,
            items: 1,
            item_writes: Vec::new(),
            consistent_read: None,
            client_request_token: None,
            attempts: 0,
            outcome: None,
        };
        describe(context.input(), &mut request);
        let seq = self.log.start(request);
        cfg.interceptor_state().store_append(Recorded {
            log: self.log.id(),
            seq,
        });
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(seq) = self.recorded(cfg) {
            self.log.update(seq, |r| r.attempts += 1);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(seq) = self.recorded(cfg) else {
            return Ok(());
        };
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => Outcome::Ok,
            _ => {
                let response = context.response();
                Outcome::Err {
                    status: response.map(|r| r.status().as_u16()),
                    code: response.and_then(|r| r.body().bytes()).and_then(error_code),
                }
            }
        };
        self.log.update(seq, |r| r.outcome = Some(outcome));
        Ok(())
    }
}

/// The error code an AWS error body names: `__type` of a JSON body (after
/// its last `#`), or the `<Code>` of an XML one.
fn error_code(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let t = v.get("__type").or_else(|| v.get("code"))?.as_str()?;
        let t = t.rsplit('#').next().unwrap_or(t);
        // `x-amzn-query-error`-style `Code:Sender` suffixes are not codes.
        return Some(t.split(':').next().unwrap_or(t).to_owned());
    }
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].trim().to_owned())
}

/// Fills target, items and the DynamoDB details from the operation input.
fn describe(input: &Input, r: &mut AwsRequest) {
    match r.service.as_str() {
        "dynamodb" => describe_dynamo(input, r),
        "s3" => describe_s3(input, r),
        "sqs" => describe_sqs(input, r),
        _ => {}
    }
}

fn one_table<'a>(tables: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let mut found: Option<&str> = None;
    for t in tables {
        match (found, t) {
            (_, None) => return None,
            (None, Some(t)) => found = Some(t),
            (Some(f), Some(t)) if f == t => {}
            _ => return None,
        }
    }
    found.map(str::to_owned)
}

fn describe_dynamo(input: &Input, r: &mut AwsRequest) {
    use aws_sdk_dynamodb::operation::{
        batch_get_item::BatchGetItemInput, batch_write_item::BatchWriteItemInput,
        delete_item::DeleteItemInput, get_item::GetItemInput, put_item::PutItemInput,
        query::QueryInput, scan::ScanInput, transact_get_items::TransactGetItemsInput,
        transact_write_items::TransactWriteItemsInput, update_item::UpdateItemInput,
    };
    use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure as Rv;
    let all_old = |v: Option<&Rv>| matches!(v, Some(Rv::AllOld));
    let write = |action, table: Option<&str>, condition: Option<&str>, old| ItemWrite {
        action,
        table: table.map(str::to_owned),
        condition: condition.map(str::to_owned),
        all_old_on_failure: old,
    };
    if let Some(i) = input.downcast_ref::<PutItemInput>() {
        r.target = i.table_name().map(str::to_owned);
        r.item_writes = vec![write(
            "Put",
            i.table_name(),
            i.condition_expression(),
            all_old(i.return_values_on_condition_check_failure()),
        )];
    } else if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
        r.target = i.table_name().map(str::to_owned);
        r.item_writes = vec![write(
            "Update",
            i.table_name(),
            i.condition_expression(),
            all_old(i.return_values_on_condition_check_failure()),
        )];
    } else if let Some(i) = input.downcast_ref::<DeleteItemInput>() {
        r.target = i.table_name().map(str::to_owned);
        r.item_writes = vec![write(
            "Delete",
            i.table_name(),
            i.condition_expression(),
            all_old(i.return_values_on_condition_check_failure()),
        )];
    } else if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
        r.client_request_token = i.client_request_token().map(str::to_owned);
        r.item_writes = i
            .transact_items()
            .iter()
            .map(|t| {
                if let Some(p) = t.put() {
                    write(
                        "Put",
                        Some(p.table_name()),
                        p.condition_expression(),
                        all_old(p.return_values_on_condition_check_failure()),
                    )
                } else if let Some(u) = t.update() {
                    write(
                        "Update",
                        Some(u.table_name()),
                        u.condition_expression(),
                        all_old(u.return_values_on_condition_check_failure()),
                    )
                } else if let Some(d) = t.delete() {
                    write(
                        "Delete",
                        Some(d.table_name()),
                        d.condition_expression(),
                        all_old(d.return_values_on_condition_check_failure()),
                    )
                } else if let Some(c) = t.condition_check() {
                    write(
                        "ConditionCheck",
                        Some(c.table_name()),
                        Some(c.condition_expression()),
                        all_old(c.return_values_on_condition_check_failure()),
                    )
                } else {
                    write("Unknown", None, None, false)
                }
            })
            .collect();
        r.items = r.item_writes.len();
        r.target = one_table(r.item_writes.iter().map(|w| w.table.as_deref()));
    } else if let Some(i) = input.downcast_ref::<BatchWriteItemInput>() {
        let mut writes = Vec::new();
        if let Some(map) = i.request_items() {
            for (table, requests) in map {
                for q in requests {
                    let action = if q.put_request().is_some() {
                        "Put"
                    } else {
                        "Delete"
                    };
                    writes.push(write(action, Some(table), None, false));
                }
            }
        }
        r.items = writes.len();
        r.item_writes = writes;
        r.target = one_table(r.item_writes.iter().map(|w| w.table.as_deref()));
    } else if let Some(i) = input.downcast_ref::<GetItemInput>() {
        r.target = i.table_name().map(str::to_owned);
        r.consistent_read = Some(i.consistent_read().unwrap_or(false));
    } else if let Some(i) = input.downcast_ref::<QueryInput>() {
        r.target = i.table_name().map(str::to_owned);
        r.consistent_read = Some(i.consistent_read().unwrap_or(false));
    } else if let Some(i) = input.downcast_ref::<ScanInput>() {
        r.target = i.table_name().map(str::to_owned);
        r.consistent_read = Some(i.consistent_read().unwrap_or(false));
    } else if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
        if let Some(map) = i.request_items() {
            r.items = map.values().map(|k| k.keys().len()).sum();
            r.target = one_table(map.keys().map(|t| Some(t.as_str())));
            r.consistent_read = Some(map.values().all(|k| k.consistent_read() == Some(true)));
        }
    } else if let Some(i) = input.downcast_ref::<TransactGetItemsInput>() {
        r.items = i.transact_items().len();
        r.target = one_table(
            i.transact_items()
                .iter()
                .map(|t| t.get().map(|g| g.table_name())),
        );
        r.consistent_read = Some(true);
    }
}

fn describe_s3(input: &Input, r: &mut AwsRequest) {
    use aws_sdk_s3::operation::{
        delete_object::DeleteObjectInput, delete_objects::DeleteObjectsInput,
        get_object::GetObjectInput, head_object::HeadObjectInput,
        list_objects_v2::ListObjectsV2Input, put_object::PutObjectInput,
    };
    r.target = if let Some(i) = input.downcast_ref::<PutObjectInput>() {
        i.bucket().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<GetObjectInput>() {
        i.bucket().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<HeadObjectInput>() {
        i.bucket().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<DeleteObjectInput>() {
        i.bucket().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<ListObjectsV2Input>() {
        i.bucket().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<DeleteObjectsInput>() {
        r.items = i.delete().map_or(0, |d| d.objects().len());
        i.bucket().map(str::to_owned)
    } else {
        None
    };
}

fn describe_sqs(input: &Input, r: &mut AwsRequest) {
    use aws_sdk_sqs::operation::{
        change_message_visibility::ChangeMessageVisibilityInput,
        delete_message::DeleteMessageInput, delete_message_batch::DeleteMessageBatchInput,
        receive_message::ReceiveMessageInput, send_message::SendMessageInput,
        send_message_batch::SendMessageBatchInput,
    };
    r.target = if let Some(i) = input.downcast_ref::<SendMessageInput>() {
        i.queue_url().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<SendMessageBatchInput>() {
        r.items = i.entries().len();
        i.queue_url().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<ReceiveMessageInput>() {
        i.queue_url().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<DeleteMessageInput>() {
        i.queue_url().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<DeleteMessageBatchInput>() {
        r.items = i.entries().len();
        i.queue_url().map(str::to_owned)
    } else if let Some(i) = input.downcast_ref::<ChangeMessageVisibilityInput>() {
        i.queue_url().map(str::to_owned)
    } else {
        None
    };
}

/// The size DynamoDB bills an item by (its "item size"): per attribute the
/// UTF-8 length of its name plus its value's size — strings and binaries
/// their length, numbers about one byte per two significant digits plus
/// one, booleans and nulls one byte, lists and maps 3 bytes plus one per
/// element plus their contents, sets the sum of their members. Writes cost
/// 1 WRU per started KB of this size (of the larger of the old and the new
/// item for `UpdateItem`), strongly consistent reads 1 RRU per started
/// 4 KB; the request accounting turns the items it measures into capacity
/// units with it, since moto reports no real consumed capacity.
pub fn dynamo_item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn number_size(n: &str) -> usize {
    let digits: String = n
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_owned();
    digits.len().div_ceil(2) + 1
}

fn value_size(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => s.len(),
        A::N(n) => number_size(n),
        A::B(b) => b.as_ref().len(),
        A::Bool(_) | A::Null(_) => 1,
        A::Ss(v) => v.iter().map(String::len).sum(),
        A::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        A::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        A::L(v) => 3 + v.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        A::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(service: &str, operation: &str, items: usize) -> AwsRequest {
        AwsRequest {
            service: service.into(),
            operation: operation.into(),
            target: None,
            items,
            item_writes: Vec::new(),
            consistent_read: None,
            client_request_token: None,
            attempts: 1,
            outcome: Some(Outcome::Ok),
        }
    }

    #[test]
    fn writes_are_told_from_reads_by_the_operation_verb() {
        for op in [
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "TransactWriteItems",
            "BatchWriteItem",
        ] {
            assert!(req("dynamodb", op, 1).is_dynamo_write(), "{op}");
        }
        for op in [
            "GetItem",
            "Query",
            "Scan",
            "BatchGetItem",
            "TransactGetItems",
        ] {
            assert!(req("dynamodb", op, 1).is_read(), "{op}");
        }
        assert!(req("s3", "PutObject", 1).is_write());
        assert!(!req("s3", "PutObject", 1).is_dynamo_write());
        assert!(req("s3", "GetObject", 1).is_read());
        assert!(req("sqs", "SendMessage", 1).is_write());
        assert!(req("sqs", "ReceiveMessage", 1).is_read());
    }

    #[test]
    fn labels_use_the_notation_of_the_write_count_table() {
        assert_eq!(req("dynamodb", "PutItem", 1).label(), "PutItem");
        assert_eq!(
            req("dynamodb", "TransactWriteItems", 2).label(),
            "TransactWriteItems(2)"
        );
        assert_eq!(
            req("dynamodb", "BatchGetItem", 1).label(),
            "BatchGetItem(1)"
        );
        assert_eq!(req("sqs", "SendMessage", 1).to_string(), "sqs:SendMessage");
    }

    #[test]
    fn a_tally_counts_requests_writes_items_and_attempts() {
        let mut retried = req("dynamodb", "UpdateItem", 1);
        retried.attempts = 2;
        let all = [
            req("dynamodb", "PutItem", 1),
            req("dynamodb", "TransactWriteItems", 2),
            retried,
            req("dynamodb", "GetItem", 1),
            req("s3", "PutObject", 1),
        ];
        let t = Tally::of(&all);
        assert_eq!(
            (t.requests, t.writes, t.write_items, t.reads, t.attempts),
            (5, 4, 5, 1, 6)
        );
        assert_eq!(t.count("dynamodb", "PutItem"), 1);
        assert_eq!(t.count("sqs", "SendMessage"), 0);
    }

    #[test]
    fn error_codes_are_read_from_json_and_xml_bodies() {
        assert_eq!(
            error_code(br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"x"}"#)
                .as_deref(),
            Some("ConditionalCheckFailedException")
        );
        assert_eq!(
            error_code(b"<?xml version=\"1.0\"?><Error><Code>PreconditionFailed</Code></Error>")
                .as_deref(),
            Some("PreconditionFailed")
        );
        assert_eq!(error_code(b"not an error body"), None);
    }

    #[test]
    fn one_table_is_named_only_when_all_items_share_it() {
        assert_eq!(one_table([Some("a"), Some("a")]).as_deref(), Some("a"));
        assert_eq!(one_table([Some("a"), Some("b")]), None);
        assert_eq!(one_table([Some("a"), None]), None);
    }
}
