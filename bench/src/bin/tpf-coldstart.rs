//! `tpf-coldstart`: cold start of each function's release `bootstrap`
//! (issue 6 item 4).
//!
//! A Lambda cold start is, from the function's side, "process spawned →
//! first invocation answered". This tool reproduces that locally without
//! Docker or AWS: it serves an emulated Lambda runtime API on a loopback
//! port (`/2018-06-01/runtime/invocation/next`, `…/{id}/response`,
//! `…/{id}/error`, `/2018-06-01/runtime/init/error`), spawns the bootstrap
//! with `AWS_LAMBDA_RUNTIME_API` pointing at it and the environment
//! `template.yaml` gives the function (DynamoDB/S3/SQS providers, static
//! credentials, plain `TPF_*_TOKEN` secrets, so every SDK client is built
//! but no network call is made), hands it one event that answers without a
//! network call, and times
//!
//! * **init**: spawn → the first `GET …/invocation/next` (start-up done:
//!   logging, configuration, SDK clients, router);
//! * **first response**: spawn → the first `POST …/invocation/{id}/response`;
//! * **cpu** and **rq**: the CPU time of the function's threads and the time
//!   they waited for a CPU until that response (`/proc/<pid>/task/*/schedstat`);
//!   on a shared machine wall time ≈ cpu + rq, so cpu is the figure that does
//!   not depend on what else runs.
//!
//! Events: `GET /tpf/health` as an API Gateway HTTP API v2 event for the
//! three HTTP functions, an SQS event with zero records for the dispatcher,
//! an EventBridge scheduled event for the sweeper. The sweeper always
//! queries DynamoDB, so its SDK endpoint is a closed loopback port with
//! `AWS_MAX_ATTEMPTS=1`: its first response includes refused connections
//! (no waiting on a network), and its budget is held against init.
//!
//! Each function runs `--runs` times after one discarded warm-up run (which
//! pulls the binary into the page cache); the report gives min/p50/p99 per
//! function and the bootstrap's size, held against the 8 MB budget when the
//! bootstrap is an arm64 one (the deployed architecture; the timing runs
//! x86-64 builds, whose size is reported only), and is written as JSON. Build the bootstraps first (`bash bench/coldstart.sh` does both).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::{Arg, ArgAction, Command};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tpf_bench::latency::Summary;

/// Start-up budget of one function, spawn → first answered request.
const COLD_START_BUDGET: Duration = Duration::from_millis(20);
/// Size budget of one deployed (arm64) `bootstrap`: 8 MB.
const SIZE_BUDGET_BYTES: u64 = 8_000_000;
/// `e_machine` of an AArch64 ELF file.
const EM_AARCH64: u16 = 183;

/// Whether `binary` is an AArch64 ELF executable (the architecture
/// `template.yaml` deploys, the one the size budget is about).
fn is_aarch64_elf(binary: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut header = [0u8; 20];
    std::fs::File::open(binary)?.read_exact(&mut header)?;
    Ok(header[..4] == *b"\x7fELF" && u16::from_le_bytes([header[18], header[19]]) == EM_AARCH64)
}
/// The five functions of `template.yaml`, in its order.
const FUNCTIONS: [&str; 5] = [
    "control-plane",
    "release-admin",
    "worker-lifecycle",
    "dispatcher",
    "sweeper",
];
const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

/// Why a measurement could not be taken.
#[derive(Debug, thiserror::Error)]
enum ColdStartError {
    #[error("{0}: not found (build it first: bash bench/coldstart.sh)")]
    MissingBinary(PathBuf),
    #[error("unknown function {0:?} (one of {FUNCTIONS:?})")]
    UnknownFunction(String),
    #[error("invalid {name}: {why}")]
    BadArgument { name: &'static str, why: String },
    #[error("emulated runtime API: {0}")]
    Io(#[from] std::io::Error),
    #[error("{function}: {what}")]
    Run { function: String, what: String },
    #[error("JSON report: {0}")]
    Json(#[from] serde_json::Error),
}

/// What the emulated runtime API saw the function do.
#[derive(Debug)]
enum Seen {
    /// `GET /invocation/next` served with this run's event.
    Next(Instant),
    /// `POST /invocation/{id}/response` with its body.
    Response(Instant, Bytes),
    /// `POST /invocation/{id}/error` with its body.
    InvocationError(Bytes),
    /// `POST /init/error` with its body.
    InitError(Bytes),
}

/// The run currently served: its event and where to report.
struct Current {
    event: Bytes,
    served: bool,
    seen: mpsc::UnboundedSender<Seen>,
}

/// State of the emulated runtime API: at most one run at a time.
#[derive(Clone, Default)]
struct Api {
    current: Arc<Mutex<Option<Current>>>,
}

impl Api {
    fn report(&self, seen: Seen) {
        let guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = guard.as_ref() {
            let _ = current.seen.send(seen);
        }
    }
}

/// `GET /2018-06-01/runtime/invocation/next`: the run's event once; every
/// later poll waits (the function is killed before it matters).
async fn next(State(api): State<Api>) -> Response {
    let event = {
        let mut guard = api.current.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(current) if !current.served => {
                current.served = true;
                let _ = current.seen.send(Seen::Next(Instant::now()));
                Some(current.event.clone())
            }
            _ => None,
        }
    };
    let Some(event) = event else {
        std::future::pending::<()>().await;
        return StatusCode::NO_CONTENT.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    put("content-type", "application/json".into());
    put("lambda-runtime-aws-request-id", REQUEST_ID.into());
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:123456789012:function:tpf-coldstart".into(),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".into(),
    );
    (StatusCode::OK, headers, event).into_response()
}

async fn response(State(api): State<Api>, body: Bytes) -> StatusCode {
    api.report(Seen::Response(Instant::now(), body));
    StatusCode::ACCEPTED
}

async fn invocation_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    api.report(Seen::InvocationError(body));
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    api.report(Seen::InitError(body));
    StatusCode::ACCEPTED
}

/// The emulated runtime API on a loopback port; returns its `host:port`.
async fn serve_runtime_api(api: Api) -> Result<String, ColdStartError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("emulated runtime API stopped: {e}");
        }
    });
    Ok(address)
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> Result<u16, ColdStartError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

/// The invocation event of `function`: one that it answers without a
/// network call (the sweeper's cannot; see the module doc).
fn event_for(function: &str) -> Value {
    match function {
        "dispatcher" => json!({ "Records": [] }),
        "sweeper" => json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-01-01T00:00:00Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/tpf-sweep"],
            "detail": {}
        }),
        _ => json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/tpf/health",
            "rawQueryString": "",
            "headers": {
                "accept": "application/json",
                "host": "abc123.execute-api.eu-west-1.amazonaws.com",
                "user-agent": "tpf-coldstart"
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {
                    "method": "GET",
                    "path": "/tpf/health",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "tpf-coldstart"
                },
                "requestId": "coldstart",
                "routeKey": "$default",
                "stage": "$default",
                "time": "01/Jan/2026:00:00:00 +0000",
                "timeEpoch": 1767225600000u64
            },
            "isBase64Encoded": false
        }),
    }
}

/// The environment Lambda and `template.yaml` (Globals) give `function`,
/// with the SSM/Secrets Manager references replaced by plain values so no
/// secret is fetched. Nothing else of this process's environment leaks in.
fn environment(function: &str, runtime_api: &str, closed: u16) -> Vec<(&'static str, String)> {
    let region = "eu-west-1";
    let queue = |name: &str| format!("https://sqs.{region}.amazonaws.com/123456789012/{name}");
    let mut env: Vec<(&'static str, String)> = vec![
        // What the Lambda service sets.
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.into()),
        ("AWS_LAMBDA_FUNCTION_NAME", format!("tpf-{function}")),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/tpf-{function}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]coldstart".into(),
        ),
        ("AWS_REGION", region.into()),
        ("AWS_DEFAULT_REGION", region.into()),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE".into()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        ),
        ("AWS_SESSION_TOKEN", "coldstart-session-token".into()),
        ("_HANDLER", "bootstrap".into()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        // template.yaml Globals.Function.Environment.
        ("RUST_LOG", "info".into()),
        ("TPF_CONTROL_PLANE_ENABLED", "true".into()),
        ("TPF_ADMIN_ENABLED", "true".into()),
        (
            "TPF_CONTROL_PLANE_TOKEN",
            "coldstart-control-plane-token".into(),
        ),
        ("TPF_ADMIN_TOKEN", "coldstart-admin-token".into()),
        ("TPF_WORKER_SHARED_SECRET", "coldstart-worker-secret".into()),
        ("TPF_RESUME_TOKEN_SECRET", "coldstart-resume-secret".into()),
        ("TPF_TENANCY_ALLOWED_TENANTS", String::new()),
        ("TPF_RELEASES_REGISTRY_PROVIDER", "dynamo".into()),
        ("TPF_DYNAMO_RELEASE_TABLE", "tpf-release".into()),
        ("TPF_WORKER_LIFECYCLE_PROVIDER", "dynamo".into()),
        ("TPF_DYNAMO_WORKER_TABLE", "tpf-worker".into()),
        ("TPF_RELEASES_STORAGE_PROVIDER", "s3".into()),
        ("TPF_RELEASES_STORAGE_S3_BUCKET", "tpf-storage".into()),
        ("TPF_RELEASES_STORAGE_S3_PREFIX", "artifacts".into()),
        (
            "TPF_RELEASES_REGISTRATION_ROOTS",
            "s3://tpf-storage/releases/".into(),
        ),
        ("TPF_RELEASES_MAX_ARTIFACT_BYTES", "268435456".into()),
        ("TPF_STATE_PROVIDER", "dynamo".into()),
        ("TPF_DYNAMO_EXECUTION_TABLE", "tpf-execution".into()),
        ("TPF_DYNAMO_AWAIT_TABLE", "tpf-await".into()),
        ("TPF_DYNAMO_INDEX_SHARDS", "1".into()),
        ("TPF_PAYLOAD_S3_BUCKET", "tpf-storage".into()),
        ("TPF_PAYLOAD_S3_PREFIX", "payloads".into()),
        ("TPF_QUEUE_PROVIDER", "sqs".into()),
        ("TPF_QUEUE_URL", queue("tpf-work")),
        ("TPF_DLQ_PROVIDER", "sqs".into()),
        ("TPF_DLQ_URL", queue("tpf-dead-letters")),
        ("TPF_EXECUTION_TTL_DAYS", "7".into()),
        ("TPF_LEASE_MS", "60000".into()),
        ("TPF_WORKER_REST_CONNECT_TIMEOUT", "PT2S".into()),
        ("TPF_WORKER_REST_REQUEST_TIMEOUT", "PT30S".into()),
    ];
    if function == "sweeper" {
        // Its sweep queries DynamoDB: refused at once, never retried.
        env.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}")));
        env.push(("AWS_MAX_ATTEMPTS", "1".into()));
    }
    env
}

/// One cold start: (spawn → init done, spawn → first response), and the
/// scheduler's account of the process at its first response.
struct Sample {
    init: Duration,
    first_response: Duration,
    /// CPU time of all its threads (independent of the machine's load).
    cpu: Duration,
    /// Time its threads were runnable but waited for a CPU (the load's share
    /// of the wall time).
    run_queue: Duration,
}

/// CPU time and run-queue wait summed over the threads of `pid`, from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds: on CPU, waiting, slices).
/// Zero when unreadable (not Linux, or the process is gone).
fn schedstat(pid: Option<u32>) -> (Duration, Duration) {
    let Some(pid) = pid else {
        return (Duration::ZERO, Duration::ZERO);
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    let (mut cpu, mut wait) = (0u64, 0u64);
    for task in tasks.flatten() {
        let Ok(line) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut fields = line
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        cpu += fields.next().unwrap_or(0);
        wait += fields.next().unwrap_or(0);
    }
    (Duration::from_nanos(cpu), Duration::from_nanos(wait))
}

/// Spawns `binary` once and waits for its first answer.
async fn run_once(
    api: &Api,
    function: &str,
    binary: &Path,
    env: &[(&'static str, String)],
    timeout: Duration,
    show_logs: bool,
) -> Result<Sample, ColdStartError> {
    let failed = |what: String| ColdStartError::Run {
        function: function.to_owned(),
        what,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    *api.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Current {
        event: Bytes::from(event_for(function).to_string()),
        served: false,
        seen: tx,
    });
    let logs = || {
        if show_logs {
            Stdio::inherit()
        } else {
            Stdio::null()
        }
    };
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(logs())
        .stderr(logs())
        .kill_on_drop(true);
    let spawned = Instant::now();
    let mut child = command.spawn()?;
    let pid = child.id();
    let mut init = None;
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            match rx.recv().await {
                Some(Seen::Next(at)) => init = Some(at - spawned),
                Some(Seen::Response(at, body)) => return Ok((at - spawned, body, schedstat(pid))),
                Some(Seen::InvocationError(body)) => {
                    return Err(format!(
                        "invocation error: {}",
                        String::from_utf8_lossy(&body)
                    ))
                }
                Some(Seen::InitError(body)) => {
                    return Err(format!("init error: {}", String::from_utf8_lossy(&body)))
                }
                None => return Err("runtime API stopped".to_owned()),
            }
        }
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    *api.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let (first_response, body, (cpu, run_queue)) = outcome
        .map_err(|_| failed(format!("no response within {timeout:?}")))?
        .map_err(failed)?;
    check_answer(function, &body).map_err(failed)?;
    let init = init.ok_or_else(|| failed("answered without polling next".into()))?;
    Ok(Sample {
        init,
        first_response,
        cpu,
        run_queue,
    })
}

/// The answer is the one expected: 200 from `/tpf/health`, no failed
/// SQS record; any JSON from the sweeper (its sweep failed on the closed
/// port, which it reports in its summary).
fn check_answer(function: &str, body: &[u8]) -> Result<(), String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "response is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    let ok = match function {
        "dispatcher" => value
            .get("batchItemFailures")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty),
        "sweeper" => true,
        _ => value.get("statusCode").and_then(Value::as_u64) == Some(200),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected response: {value}"))
    }
}

/// Milliseconds with three decimals.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn summary_ms(s: &Summary) -> Value {
    let ms = |ns: u64| (ns as f64 / 1e3).round() / 1e3;
    json!({
        "samples": s.samples,
        "minMs": ms(s.min_ns),
        "p50Ms": ms(s.p50_ns),
        "p99Ms": ms(s.p99_ns),
        "maxMs": ms(s.max_ns),
    })
}

fn cli() -> Command {
    Command::new("tpf-coldstart")
        .about("Cold start (spawn → first answered invocation) and size of each function's release bootstrap, on an emulated Lambda runtime API.")
        .arg(
            Arg::new("lambda-dir")
                .long("lambda-dir")
                .value_name("DIR")
                .help("Where `cargo lambda build` put <function>/bootstrap [default: $CARGO_TARGET_DIR/lambda or target/lambda]"),
        )
        .arg(
            Arg::new("runs")
                .long("runs")
                .value_name("N")
                .default_value("30")
                .help("Measured cold starts per function (after one warm-up)"),
        )
        .arg(
            Arg::new("function")
                .long("function")
                .value_name("NAME")
                .action(ArgAction::Append)
                .help("Only this function (repeatable) [default: all five]"),
        )
        .arg(
            Arg::new("timeout-ms")
                .long("timeout-ms")
                .value_name("MS")
                .default_value("10000")
                .help("Give up on one start after this long"),
        )
        .arg(
            Arg::new("out")
                .long("out")
                .value_name("FILE")
                .default_value("target/bench-coldstart.json")
                .help("JSON report"),
        )
        .arg(
            Arg::new("show-logs")
                .long("show-logs")
                .action(ArgAction::SetTrue)
                .help("Pass the functions' log lines through (they cost time on a terminal)"),
        )
}

fn parse<T: std::str::FromStr>(
    matches: &clap::ArgMatches,
    name: &'static str,
) -> Result<T, ColdStartError>
where
    T::Err: std::fmt::Display,
{
    let raw = matches.get_one::<String>(name).cloned().unwrap_or_default();
    raw.parse()
        .map_err(|e: T::Err| ColdStartError::BadArgument {
            name,
            why: format!("{raw:?}: {e}"),
        })
}

async fn run() -> Result<bool, ColdStartError> {
    let matches = cli().get_matches();
    let runs: usize = parse(&matches, "runs")?;
    if runs == 0 {
        return Err(ColdStartError::BadArgument {
            name: "runs",
            why: "must be at least 1".into(),
        });
    }
    let timeout = Duration::from_millis(parse(&matches, "timeout-ms")?);
    let show_logs = matches.get_flag("show-logs");
    let lambda_dir = match matches.get_one::<String>("lambda-dir") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("lambda"),
    };
    let functions: Vec<String> = match matches.get_many::<String>("function") {
        Some(names) => names.cloned().collect(),
        None => FUNCTIONS.iter().map(|f| f.to_string()).collect(),
    };
    for f in &functions {
        if !FUNCTIONS.contains(&f.as_str()) {
            return Err(ColdStartError::UnknownFunction(f.clone()));
        }
    }

    let api = Api::default();
    let address = serve_runtime_api(api.clone()).await?;
    let closed = closed_port().await?;
    let mut report = BTreeMap::new();
    let mut within_budget = true;
    println!(
        "{:<17} {:>10} {:>23} {:>23} {:>13} {:>7}",
        "function",
        "size",
        "init min/p50/p99 ms",
        "response min/p50/p99 ms",
        "cpu p50/p99",
        "rq p50"
    );
    for function in &functions {
        let binary = lambda_dir.join(function).join("bootstrap");
        let size = std::fs::metadata(&binary)
            .map_err(|_| ColdStartError::MissingBinary(binary.clone()))?
            .len();
        let env = environment(function, &address, closed);
        // Warm-up: page cache, not counted.
        run_once(&api, function, &binary, &env, timeout, show_logs).await?;
        let mut init = Vec::with_capacity(runs);
        let mut first = Vec::with_capacity(runs);
        let mut cpu = Vec::with_capacity(runs);
        let mut run_queue = Vec::with_capacity(runs);
        for _ in 0..runs {
            let sample = run_once(&api, function, &binary, &env, timeout, show_logs).await?;
            init.push(sample.init);
            first.push(sample.first_response);
            cpu.push(sample.cpu);
            run_queue.push(sample.run_queue);
        }
        let failed = |what: &str| ColdStartError::Run {
            function: function.clone(),
            what: what.into(),
        };
        let init = Summary::of(&init).ok_or_else(|| failed("no samples"))?;
        let first = Summary::of(&first).ok_or_else(|| failed("no samples"))?;
        let cpu = Summary::of(&cpu).ok_or_else(|| failed("no samples"))?;
        let run_queue = Summary::of(&run_queue).ok_or_else(|| failed("no samples"))?;
        // The sweeper's first answer includes refused DynamoDB calls; its
        // start-up is init.
        let held = if function == "sweeper" { &init } else { &first };
        let start_ok = Duration::from_nanos(held.p99_ns) <= COLD_START_BUDGET;
        let size_held = is_aarch64_elf(&binary)?;
        let size_ok = !size_held || size <= SIZE_BUDGET_BYTES;
        within_budget &= start_ok && size_ok;
        let p = |ns: u64| ms(Duration::from_nanos(ns));
        println!(
            "{:<17} {:>8.2}MB {:>7.2}/{:>6.2}/{:>6.2} {:>7.2}/{:>6.2}/{:>6.2} {:>6.2}/{:>6.2} {:>7.2}  {}",
            function,
            size as f64 / 1_048_576.0,
            p(init.min_ns),
            p(init.p50_ns),
            p(init.p99_ns),
            p(first.min_ns),
            p(first.p50_ns),
            p(first.p99_ns),
            p(cpu.p50_ns),
            p(cpu.p99_ns),
            p(run_queue.p50_ns),
            if start_ok && size_ok {
                "ok"
            } else {
                "OVER BUDGET"
            },
        );
        report.insert(
            function.clone(),
            json!({
                "binary": binary.display().to_string(),
                "sizeBytes": size,
                "sizeBudgetHeld": size_held,
                "initMs": summary_ms(&init),
                "firstResponseMs": summary_ms(&first),
                "cpuMs": summary_ms(&cpu),
                "runQueueWaitMs": summary_ms(&run_queue),
                "budgetHeldAgainst": if function == "sweeper" { "init" } else { "firstResponse" },
                "withinBudget": start_ok && size_ok,
            }),
        );
    }
    let out = PathBuf::from(
        matches
            .get_one::<String>("out")
            .cloned()
            .unwrap_or_default(),
    );
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let document = json!({
        "loadAverage": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "runsPerFunction": runs,
        "budget": { "coldStartP99Ms": ms(COLD_START_BUDGET), "sizeBytes": SIZE_BUDGET_BYTES },
        "functions": report,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&document)?)?;
    println!(
        "budgets: cold start p99 <= {} ms, arm64 bootstrap size <= 8 MB (x86-64: reported only); report: {}",
        ms(COLD_START_BUDGET),
        out.display()
    );
    Ok(within_budget)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("tpf-coldstart: over budget");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tpf-coldstart: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 20 bytes of an ELF header with `e_machine` = `machine`.
    fn elf_header(machine: u16) -> Vec<u8> {
        let mut header = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
        header.extend_from_slice(&machine.to_le_bytes());
        header
    }

    #[test]
    fn only_aarch64_elf_files_are_held_to_the_size_budget() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            path
        };
        let arm64 = file("arm64", &elf_header(EM_AARCH64));
        let x86_64 = file("x86_64", &elf_header(62));
        let script = file("script", b"#!/bin/sh\nexec qemu-aarch64 bootstrap\n");
        let short = file("short", b"\x7fELF");
        assert!(is_aarch64_elf(&arm64).expect("readable"));
        assert!(!is_aarch64_elf(&x86_64).expect("readable"));
        assert!(!is_aarch64_elf(&script).expect("readable"));
        assert!(is_aarch64_elf(&short).is_err());
    }
}
