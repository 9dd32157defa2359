//! The request path in process (issue 6 item 1): each request goes through
//! the axum router of its function (`tpf_core::http::router`) with
//! `tower::ServiceExt::oneshot` — routing, authentication, path/query/body
//! validation, the action and the `memory` stores — and its response body is
//! read back. No socket, no Lambda adapter, no log subscriber.
//!
//! Two passes over fresh fixtures (the engine harness of `tpf-tests`: memory
//! stores, a manual clock that never moves, the restaurant demo release
//! active and the example worker registered):
//!
//! 1. criterion (`requests/<route>`): mean and median with confidence
//!    intervals, saved under `target/criterion/`;
//! 2. the percentile pass: per route, a warm-up of 2 000 requests, then
//!    `TPF_BENCH_REQUESTS` (20 000) requests timed one by one, the routes
//!    taking turns in chunks of 1 000; p50/p99/mean are printed against the
//!    issue's budgets and written to `target/bench-requests.json`.
//!
//! Only the request is timed: building it, and any setup it needs (parking a
//! fresh execution for each completion), happens outside the clock. The
//! measured routers enqueue onto a `RecordingQueue` that nothing dispatches
//! (drained between batches), so submit and complete time their own path
//! only.
//!
//! Environment: `TPF_BENCH_REQUESTS` (timed requests per route in the
//! percentile pass; 0 skips it), `TPF_BENCH_ROUTES` (comma-separated route
//! names to run, default all), `TPF_BENCH_CRITERION=0` (skip criterion).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use criterion::{Criterion, SamplingMode};
use serde_json::{json, Value};
use tower::ServiceExt;

use tpf_bench::latency::{self, Budget, RouteResult, Summary};
use tpf_core::actions::EngineDeps;
use tpf_core::config::FunctionName;
use tpf_core::providers::queues::RecordingQueue;
use tpf_tests::{decision, submit_body, Harness, Options, ADMIN, CONTROL, PIPELINE, TENANT};

/// Warm-up requests per route before the timed ones of the percentile pass.
const WARM_UP: usize = 2_000;
/// Default timed requests per route of the percentile pass.
const REQUESTS: usize = 20_000;
/// Requests built (and, for completions, executions parked) per batch.
const CHUNK: usize = 1_000;
/// Open interactions listed by the pending route.
const PENDING_OPEN: usize = 10;
/// A second release of the demo pipeline, for alternating activations.
const OTHER_RELEASE: &str = "2025.02.0";

/// The routes, in report order, with the p99 budgets.
const ROUTES: &[(&str, Option<f64>)] = &[
    ("status_get", Some(50.0)),
    ("result_get", None),
    ("submit", Some(200.0)),
    ("complete", None),
    ("pending_list", None),
    ("release_activate", None),
    ("worker_heartbeat", None),
];

/// What each request of a route is.
enum Kind {
    /// The same request every time (reads, submit, heartbeat).
    Fixed {
        method: &'static str,
        path: String,
        token: &'static str,
        body: Option<String>,
    },
    /// Activations alternating between two registered releases, so each one
    /// appends an activation event (re-activating the active one is a no-op).
    Activate { paths: [String; 2], next: usize },
    /// Each request completes the open interaction of a freshly parked
    /// execution (parked before the clock starts), releasing the parent.
    Complete,
}

/// One route's harness, router and request recipe.
struct Fixture {
    name: &'static str,
    harness: Harness,
    /// The router the timed requests go through.
    router: Router,
    /// The measured router's queue (nothing dispatches it).
    queue: Arc<RecordingQueue>,
    kind: Kind,
}

fn request(method: &str, path: &str, token: &str, body: Option<String>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    match body {
        Some(text) => b
            .header("content-type", "application/json")
            .body(Body::from(text)),
        None => b.body(Body::empty()),
    }
    .expect("a valid request")
}

/// Sends one request and reads its body; only this is timed.
async fn send(router: &Router, req: Request<Body>) -> (Duration, StatusCode, axum::body::Bytes) {
    let start = Instant::now();
    let resp = match router.clone().oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("a readable body");
    (start.elapsed(), status, bytes)
}

/// Submits `n` restaurant orders through the harness (its own queue) and
/// drives them to `WAITING_EXTERNAL` with the example worker; returns each
/// execution id with the completion body of its open interaction.
async fn park(h: &Harness, n: usize) -> Vec<(String, String)> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let r = h.submit(submit_body(&format!("Customer {i}"), None)).await;
        ids.push(r.ok()["executionId"].as_str().expect("an id").to_string());
    }
    h.drive().await;
    let mut bodies = Vec::with_capacity(n);
    for id in ids {
        let record = h.record(&id).await.expect("the parked execution");
        let unit_id = record.await_unit_id.expect("parked on a unit");
        let unit = h.unit_of(&unit_id).await.expect("the unit");
        let interaction = h
            .interaction_of(unit.primary_interaction_id.as_deref().expect("one"))
            .await
            .expect("the interaction");
        let request: Value = serde_json::from_str(
            interaction
                .request_payload
                .as_ref()
                .expect("a request payload")
                .get(),
        )
        .expect("JSON");
        let order_id = request["orderId"].as_str().expect("an order id");
        bodies.push((
            id,
            json!({
                "interactionId": interaction.interaction_id,
                "responsePayload": decision(order_id, true),
                "actor": "kitchen-tablet-3",
            })
            .to_string(),
        ));
    }
    bodies
}

impl Fixture {
    /// A fresh fixture of route `name`.
    async fn new(name: &'static str) -> Fixture {
        let h = Harness::new(Options::default()).await;
        let queue = Arc::new(RecordingQueue::new());
        let deps = EngineDeps {
            queue: queue.clone(),
            ..h.deps.clone()
        };
        let executions = format!("/tpf/control-plane/tenants/{TENANT}/executions");
        let admin = format!("/tpf/admin/tenants/{TENANT}/pipelines/{PIPELINE}");
        let get = |path: String| Kind::Fixed {
            method: "GET",
            path,
            token: CONTROL,
            body: None,
        };
        let mut router = h.router_altered(deps.clone(), |_| {});
        let kind = match name {
            "status_get" | "result_get" => {
                // A parked execution (polled while it runs) and a finished one.
                let (parked, _) = park(&h, 1).await.remove(0);
                let (finished, complete) = park(&h, 1).await.remove(0);
                let done = h
                    .call(
                        "POST",
                        &format!("/tpf/control-plane/tenants/{TENANT}/interactions/complete"),
                        CONTROL,
                        Some(serde_json::from_str(&complete).expect("JSON")),
                    )
                    .await;
                done.ok();
                h.drive().await;
                if name == "status_get" {
                    get(format!("{executions}/{parked}"))
                } else {
                    get(format!("{executions}/{finished}/result"))
                }
            }
            "submit" => Kind::Fixed {
                method: "POST",
                path: executions,
                token: CONTROL,
                body: Some(submit_body("Ada Lovelace", None).to_string()),
            },
            "complete" => Kind::Complete,
            "pending_list" => {
                park(&h, PENDING_OPEN).await;
                get(format!(
                    "/tpf/control-plane/tenants/{TENANT}/interactions/pending"
                ))
            }
            "release_activate" => {
                let other = demo_release::DemoSpec {
                    release_version: OTHER_RELEASE.into(),
                    ..Default::default()
                };
                h.activate_demo_release(&other).await;
                router = h.router_altered(deps, |s| {
                    s.function = FunctionName::ReleaseAdmin;
                    s.engine = None;
                    s.releases = Some(h.release_deps.clone());
                });
                let default_version = demo_release::DemoSpec::default().release_version;
                Kind::Activate {
                    paths: [default_version, OTHER_RELEASE.to_string()]
                        .map(|v| format!("{admin}/releases/{v}/activate")),
                    next: 0,
                }
            }
            "worker_heartbeat" => {
                router = h.router_altered(deps, |s| {
                    s.function = FunctionName::WorkerLifecycle;
                    s.engine = None;
                    s.workers = Some(h.worker_deps.clone());
                });
                Kind::Fixed {
                    method: "POST",
                    path: format!("{admin}/workers/kitchen-1/heartbeat"),
                    token: ADMIN,
                    body: None,
                }
            }
            other => panic!("unknown route {other}"),
        };
        Fixture {
            name,
            harness: h,
            router,
            queue,
            kind,
        }
    }

    /// The next `n` requests, with whatever they need set up.
    async fn requests(&mut self, n: usize) -> Vec<Request<Body>> {
        match &mut self.kind {
            Kind::Fixed {
                method,
                path,
                token,
                body,
            } => (0..n)
                .map(|_| request(method, path, token, body.clone()))
                .collect(),
            Kind::Activate { paths, next } => (0..n)
                .map(|_| {
                    *next = 1 - *next;
                    request("POST", &paths[*next], ADMIN, None)
                })
                .collect(),
            Kind::Complete => {
                let path = format!("/tpf/control-plane/tenants/{TENANT}/interactions/complete");
                park(&self.harness, n)
                    .await
                    .into_iter()
                    .map(|(_, body)| request("POST", &path, CONTROL, Some(body)))
                    .collect()
            }
        }
    }

    /// Sends `n` requests in batches of [`CHUNK`]; returns each one's time.
    async fn run(&mut self, n: usize) -> Vec<Duration> {
        let mut times = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let batch = left.min(CHUNK);
            left -= batch;
            for req in self.requests(batch).await {
                let (took, status, body) = send(&self.router, req).await;
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{}: {}",
                    self.name,
                    String::from_utf8_lossy(&body)
                );
                std::hint::black_box(body);
                times.push(took);
            }
            self.queue.drain();
        }
        times
    }
}

fn selected_routes() -> Vec<(&'static str, Option<f64>)> {
    let only = std::env::var("TPF_BENCH_ROUTES").unwrap_or_default();
    let only: Vec<&str> = only.split(',').filter(|s| !s.is_empty()).collect();
    ROUTES
        .iter()
        .copied()
        .filter(|(name, _)| only.is_empty() || only.contains(name))
        .collect()
}

fn criterion_pass(rt: &tokio::runtime::Runtime, routes: &[(&'static str, Option<f64>)]) {
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("requests");
    for (name, _) in routes {
        let mut fx = rt.block_on(Fixture::new(name));
        if *name == "complete" {
            // Each timed completion needs an execution parked beforehand
            // (a few HTTP calls to the worker): fewer, flat samples.
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(20)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2));
        } else {
            group
                .sampling_mode(SamplingMode::Auto)
                .sample_size(100)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3));
        }
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| rt.block_on(fx.run(iters as usize)).into_iter().sum())
        });
    }
    group.finish();
    c.final_summary();
}

/// Criterion's mean and median of `route` from this run, if it wrote them.
fn criterion_estimates(route: &str, since: SystemTime) -> Value {
    let path = latency::target_dir()
        .join("criterion/requests")
        .join(route)
        .join("new/estimates.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    let Some(v) = fresh
        .then(|| std::fs::read(&path).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return Value::Null;
    };
    let us = |k: &str| {
        v[k]["point_estimate"]
            .as_f64()
            .map_or(Value::Null, |ns| json!(ns / 1000.0))
    };
    // `slope` (linear sampling only) is the figure criterion prints as `time`.
    json!({"criterionMeanUs": us("mean"), "criterionMedianUs": us("median"), "criterionSlopeUs": us("slope")})
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    if flag("--list") {
        for (name, _) in ROUTES {
            println!("requests/{name}: benchmark");
        }
        return;
    }
    let test_mode = flag("--test");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let routes = selected_routes();
    let started = SystemTime::now();
    if std::env::var("TPF_BENCH_CRITERION").as_deref() != Ok("0") {
        criterion_pass(&rt, &routes);
    }
    let requests = if test_mode {
        20
    } else {
        std::env::var("TPF_BENCH_REQUESTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(REQUESTS)
    };
    if requests == 0 {
        return;
    }
    let warm_up = if test_mode { 0 } else { WARM_UP };
    // Routes take turns, a chunk each, so that slow and fast spells of the
    // (virtual) machine fall on every route alike.
    let mut fixtures: Vec<Fixture> = routes
        .iter()
        .map(|(name, _)| rt.block_on(Fixture::new(name)))
        .collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(requests); fixtures.len()];
    for fx in &mut fixtures {
        rt.block_on(fx.run(warm_up));
    }
    let mut left = requests;
    while left > 0 {
        let chunk = left.min(CHUNK);
        left -= chunk;
        for (fx, t) in fixtures.iter_mut().zip(&mut times) {
            t.extend(rt.block_on(fx.run(chunk)));
        }
    }
    let results: Vec<RouteResult> = routes
        .iter()
        .zip(&times)
        .map(|((name, budget), t)| RouteResult {
            route: name.to_string(),
            summary: Summary::of(t).expect("samples"),
            budget: budget.map(|b| Budget { p99_max_us: b }),
            extra: criterion_estimates(name, started),
        })
        .collect();
    let machine = tpf_bench::load::machine();
    println!(
        "\nPercentile pass: {requests} timed requests per route after {warm_up} warm-up (in process, memory providers)\nmachine: {machine}\n{}",
        latency::table(&results)
    );
    if test_mode {
        return;
    }
    let report = json!({
        "bench": "requests",
        "command": "cargo bench -p tpf-bench --bench requests",
        "machine": machine,
        "warmUpPerRoute": warm_up,
        "requestsPerRoute": requests,
        "routes": results.iter().map(RouteResult::to_json).collect::<Vec<_>>(),
    });
    let path = latency::target_dir().join("bench-requests.json");
    match latency::write_json(&path, &report) {
        Ok(()) => println!("written: {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
