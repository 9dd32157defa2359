//! The load itself: `executions` runs of the restaurant-approval pipeline
//! from `clients` concurrent clients, each run going through the API only:
//!
//! 1. submit (timed: the submit latency);
//! 2. poll the status until `WAITING_EXTERNAL` (the await at step index 2);
//! 3. read the history for the `interactionId` of that `WAITING_EXTERNAL`
//!    event (API.md §3.2) and complete it with an approval of the order
//!    (its `orderId` is the `requestId` the client put in the input);
//! 4. poll the status until `SUCCEEDED` (step index 3).
//!
//! Submit→SUCCEEDED is measured from just before the submit request to the
//! status read that first shows `SUCCEEDED`, so it includes the client's
//! own polling delay (backing off from 1 ms to `poll_max`) and the
//! completion request. Throughput is succeeded executions over the wall
//! time of the whole run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::client::Api;
use super::stack::TENANT;
use super::LoadError;
use crate::latency::Summary;

/// The demo pipeline the driver submits.
pub const PIPELINE: &str = "restaurant-approval";
/// Errors kept verbatim in the report (the rest are only counted).
const KEPT_ERRORS: usize = 20;
/// Attempts of a completion answered 503 or 409 `CONCURRENT_MODIFICATION`.
const COMPLETE_ATTEMPTS: usize = 5;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Executions to submit.
    pub executions: usize,
    /// Concurrent clients (each runs one execution at a time).
    pub clients: usize,
    /// Longest pause between two status polls of one client.
    pub poll_max: Duration,
    /// Per-execution limit from submit to `SUCCEEDED`.
    pub timeout: Duration,
    /// Show the progress bar (on stderr, when it is a terminal).
    pub progress: bool,
}

/// How one execution ended.
#[derive(Debug)]
enum Outcome {
    Succeeded {
        submit: Duration,
        complete: Duration,
        total: Duration,
    },
    Failed(String),
    TimedOut(String),
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub succeeded: usize,
    pub failed: usize,
    pub timeouts: usize,
    pub wall: Duration,
    pub submit: Option<Summary>,
    pub complete: Option<Summary>,
    pub total: Option<Summary>,
    /// The first few failure messages.
    pub errors: Vec<String>,
}

impl LoadResult {
    /// Succeeded executions per second of wall time.
    pub fn executions_per_s(&self) -> f64 {
        let s = self.wall.as_secs_f64();
        if s > 0.0 {
            self.succeeded as f64 / s
        } else {
            0.0
        }
    }

    /// The figures as JSON (latencies in microseconds, see `latency`).
    pub fn to_json(&self) -> Value {
        let summary = |s: &Option<Summary>| s.map_or(Value::Null, |s| s.to_json());
        json!({
            "succeeded": self.succeeded,
            "failed": self.failed,
            "timeouts": self.timeouts,
            "wallS": self.wall.as_secs_f64(),
            "executionsPerS": self.executions_per_s(),
            "submitLatency": summary(&self.submit),
            "completeLatency": summary(&self.complete),
            "submitToSucceeded": summary(&self.total),
            "errors": self.errors,
        })
    }
}

fn order(request_id: &str, n: usize) -> Value {
    let payload = json!({
        "requestId": request_id,
        "customerName": format!("Load client {n}"),
        "restaurantName": "Cafe TPF",
        "items": "Margherita Pizza, Sparkling Water",
        "totalAmount": "27.50",
        "currency": "EUR"
    });
    json!({
        "payloadTypeId": "org.pipelineframework.restaurantapproval.common.dto.PlaceRestaurantOrderRequestDto",
        "payloadEncoding": "application/tpf-transition+json",
        "payload": payload.to_string(),
    })
}

/// An approval of `order_id` as a completion envelope (a `java.util.Map`).
fn approval(order_id: &str) -> Value {
    let item = |t: &str, p: String| json!({"payloadTypeId": t, "payloadEncoding": "application/tpf-transition+json", "payload": p});
    let items = json!({
        "orderId": item("java.lang.String", json!(order_id).to_string()),
        "approved": item("java.lang.Boolean", "true".to_string()),
        "note": item("java.lang.String", "\"Looks good\"".to_string()),
    });
    json!({"payloadTypeId": "java.util.Map", "payloadEncoding": "application/tpf-transition+json",
           "payload": json!({"items": items}).to_string()})
}

/// Polls the status of `id` until `want` (or a terminal status, or the
/// deadline); returns the status DTO that showed `want`.
async fn wait_for(
    api: &Api,
    id: &str,
    want: &str,
    deadline: Instant,
    poll_max: Duration,
) -> Result<Value, Outcome> {
    let path = format!("/tpf/control-plane/tenants/{TENANT}/executions/{id}");
    let mut pause = Duration::from_millis(1);
    loop {
        let reply = api
            .call("GET", &path, None)
            .await
            .map_err(|e| Outcome::Failed(format!("status: {e}")))?;
        if reply.status == 200 {
            let status = reply.body["status"].as_str().unwrap_or_default();
            if status == want {
                return Ok(reply.body);
            }
            if status == "FAILED" || status == "SUCCEEDED" {
                return Err(Outcome::Failed(format!(
                    "{id} ended {status} waiting for {want}: {}",
                    reply.body
                )));
            }
        } else if reply.status != 503 {
            return Err(Outcome::Failed(format!(
                "status {id}: HTTP {} {}",
                reply.status, reply.body
            )));
        }
        if Instant::now() + pause > deadline {
            return Err(Outcome::TimedOut(format!(
                "{id} not {want} in time (last: {})",
                reply.body["status"]
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(poll_max);
    }
}

/// The `interactionId` of the latest `WAITING_EXTERNAL` event of `id`.
async fn interaction_of(api: &Api, id: &str) -> Result<String, Outcome> {
    let path = format!("/tpf/control-plane/tenants/{TENANT}/executions/{id}/history?limit=100");
    let reply = api
        .call("GET", &path, None)
        .await
        .map_err(|e| Outcome::Failed(format!("history: {e}")))?;
    if reply.status != 200 {
        return Err(Outcome::Failed(format!(
            "history {id}: HTTP {} {}",
            reply.status, reply.body
        )));
    }
    reply.body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|e| e["type"] == "WAITING_EXTERNAL")
        .and_then(|e| e["interactionId"].as_str())
        .map(str::to_string)
        .ok_or_else(|| Outcome::Failed(format!("history {id}: no WAITING_EXTERNAL interaction")))
}

/// One execution, start to `SUCCEEDED`.
async fn one(api: &Api, n: usize, config: &LoadConfig) -> Outcome {
    let order_id = uuid::Uuid::new_v4().to_string();
    let body =
        json!({"pipelineId": PIPELINE, "inputShape": "UNI", "inputPayload": order(&order_id, n)});
    let start = Instant::now();
    let deadline = start + config.timeout;
    let reply = match api
        .call(
            "POST",
            &format!("/tpf/control-plane/tenants/{TENANT}/executions"),
            Some(&body),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("submit: {e}")),
    };
    let submit = start.elapsed();
    let Some(id) = reply.body["executionId"].as_str().map(str::to_string) else {
        return Outcome::Failed(format!("submit: HTTP {} {}", reply.status, reply.body));
    };
    if reply.status != 200 {
        return Outcome::Failed(format!("submit: HTTP {} {}", reply.status, reply.body));
    }
    if let Err(o) = wait_for(api, &id, "WAITING_EXTERNAL", deadline, config.poll_max).await {
        return o;
    }
    let interaction_id = match interaction_of(api, &id).await {
        Ok(i) => i,
        Err(o) => return o,
    };
    let completion = json!({
        "interactionId": interaction_id,
        "idempotencyKey": format!("complete-{interaction_id}"),
        "responsePayload": approval(&order_id),
        "actor": "tpf-load",
    });
    let path = format!("/tpf/control-plane/tenants/{TENANT}/interactions/complete");
    let mut complete = Duration::ZERO;
    for attempt in 1..=COMPLETE_ATTEMPTS {
        let t = Instant::now();
        let reply = match api.call("POST", &path, Some(&completion)).await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("complete: {e}")),
        };
        complete = t.elapsed();
        let retryable =
            reply.status == 503 || reply.body["code"].as_str() == Some("CONCURRENT_MODIFICATION");
        if reply.status == 200 {
            break;
        }
        if !retryable || attempt == COMPLETE_ATTEMPTS {
            return Outcome::Failed(format!(
                "complete {id}: HTTP {} {}",
                reply.status, reply.body
            ));
        }
        tokio::time::sleep(Duration::from_millis(10 * attempt as u64)).await;
    }
    if let Err(o) = wait_for(api, &id, "SUCCEEDED", deadline, config.poll_max).await {
        return o;
    }
    Outcome::Succeeded {
        submit,
        complete,
        total: start.elapsed(),
    }
}

/// Per-client tallies, merged at the end.
#[derive(Default)]
struct Tally {
    submit: Vec<Duration>,
    complete: Vec<Duration>,
    total: Vec<Duration>,
    failed: usize,
    timeouts: usize,
    errors: Vec<String>,
}

/// Runs the load against `api`, showing a progress bar on stderr (hidden
/// when stderr is not a terminal).
pub async fn run(api: &Api, config: &LoadConfig, label: &str) -> Result<LoadResult, LoadError> {
    if config.executions == 0 || config.clients == 0 {
        return Err(LoadError::Usage(
            "--executions and --clients must be at least 1".into(),
        ));
    }
    let bar = ProgressBar::new(config.executions as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>7} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .map_err(|e| LoadError::Setup(format!("progress style: {e}")))?,
    );
    bar.set_prefix(label.to_string());
    if !config.progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let next = Arc::new(AtomicUsize::new(0));
    let problems = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..config.clients {
        let (api, config, next, tally, bar, problems) = (
            api.clone(),
            config.clone(),
            next.clone(),
            tally.clone(),
            bar.clone(),
            problems.clone(),
        );
        clients.spawn(async move {
            let mut mine = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= config.executions {
                    break;
                }
                match one(&api, n, &config).await {
                    Outcome::Succeeded {
                        submit,
                        complete,
                        total,
                    } => {
                        mine.submit.push(submit);
                        mine.complete.push(complete);
                        mine.total.push(total);
                    }
                    Outcome::Failed(e) => {
                        mine.failed += 1;
                        mine.errors.push(e);
                        let p = problems.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("{p} failed/timed out"));
                    }
                    Outcome::TimedOut(e) => {
                        mine.timeouts += 1;
                        mine.errors.push(e);
                        let p = problems.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("{p} failed/timed out"));
                    }
                }
                bar.inc(1);
            }
            let mut all = tally.lock().unwrap_or_else(|p| p.into_inner());
            all.submit.append(&mut mine.submit);
            all.complete.append(&mut mine.complete);
            all.total.append(&mut mine.total);
            all.failed += mine.failed;
            all.timeouts += mine.timeouts;
            let room = KEPT_ERRORS.saturating_sub(all.errors.len());
            all.errors.extend(mine.errors.into_iter().take(room));
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.map_err(|e| LoadError::Setup(format!("client task: {e}")))?;
    }
    let wall = started.elapsed();
    bar.finish();
    let all = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(LoadResult {
        succeeded: all.total.len(),
        failed: all.failed,
        timeouts: all.timeouts,
        wall,
        submit: Summary::of(&all.submit),
        complete: Summary::of(&all.complete),
        total: Summary::of(&all.total),
        errors: all.errors,
    })
}
