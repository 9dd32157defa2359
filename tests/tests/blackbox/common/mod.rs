//! Helpers of the black-box tests (`blackbox.rs`, `blackbox_engine.rs`): the
//! functions started the way the README starts them (`infra/run-local.sh`,
//! i.e. `cargo lambda watch` with the workspace router) on a free port with
//! their own state directory, the example worker as its own process, and
//! small HTTP helpers.
//!
//! Every process started here is stopped on drop (the stack's whole process
//! group, the worker process itself), also when a test fails.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "blackbox-admin-token";
pub const CONTROL: &str = "blackbox-control-token";
pub const SECRET: &str = "blackbox-worker-secret";
pub const TENANT_BASE: &str = "/tpf/admin/tenants/acme/pipelines/restaurant-approval";
/// Control-plane paths of tenant `acme`.
pub const CP: &str = "/tpf/control-plane/tenants/acme";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The running stack; stopped (whole process group) on drop.
pub struct Stack {
    child: Child,
    pub base: String,
    log: PathBuf,
    _state: tempfile::TempDir,
    pub state_root: PathBuf,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

impl Stack {
    /// The whole log of `cargo lambda watch` and the functions so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn log_tail(&self) -> String {
        let s = self.log();
        let start = s.len().saturating_sub(6_000);
        s[s.floor_char_boundary(start)..].to_string()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the stack in a new state directory, with `env` exported on top of
/// the local defaults.
pub async fn start_with(env: &[(&str, &str)]) -> Stack {
    start_in(tempfile::tempdir().unwrap(), env).await
}

/// [`start_with`] in a state directory the caller created (to name files
/// inside it in `env`).
pub async fn start_in(state: tempfile::TempDir, env: &[(&str, &str)]) -> Stack {
    start_script("infra/run-local.sh", state, env).await
}

/// The stack in local AWS mode (`infra/run-local-aws.sh`: moto, resources
/// from template.yaml, dynamo/s3/sqs providers, the SQS event source and the
/// schedule played by `tpf-local-aws pump`), in a new state directory.
pub async fn start_aws_with(env: &[(&str, &str)]) -> Stack {
    start_script("infra/run-local-aws.sh", tempfile::tempdir().unwrap(), env).await
}

/// Starts `script` (a README run command) with the local defaults, `env` on
/// top, and waits until the three HTTP functions answer their health route.
async fn start_script(script: &str, state: tempfile::TempDir, env: &[(&str, &str)]) -> Stack {
    use std::os::unix::process::CommandExt;
    let state_root = state.path().to_path_buf();
    let port = free_port();
    let log = state_root.join("watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("bash")
        .arg(script)
        .arg("--ignore-changes")
        .current_dir(repo_root())
        // Every local default can be overridden by exporting the variable.
        .env("TPF_LOCAL_STATE_DIR", &state_root)
        .env("TPF_LOCAL_PORT", port.to_string())
        .env("TPF_ADMIN_TOKEN", ADMIN)
        .env_remove("TPF_ADMIN_TOKEN_REF")
        .envs(env.iter().copied())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let stack = Stack {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
        _state: state,
        state_root,
    };
    let client = reqwest::Client::new();
    for function in ["control-plane", "release-admin", "worker-lifecycle"] {
        let url = format!("{}/lambda-url/{function}/tpf/health", stack.base);
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let attempt = client
                .get(&url)
                .timeout(Duration::from_secs(20))
                .send()
                .await;
            if let Ok(r) = attempt {
                if r.status() == 200 {
                    let v: Value = r.json().await.unwrap();
                    assert_eq!(v["function"], function);
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{function} did not become healthy; log:\n{}",
                stack.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    stack
}

/// The example worker as its own process, the way the README starts it;
/// killed on drop.
pub struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn worker_bin() -> PathBuf {
    repo_root().join("target/debug/restaurant-worker")
}

pub fn start_worker(port: u16, secret: &str, log: &Path) -> WorkerProcess {
    start_worker_with(port, secret, log, &[])
}

/// [`start_worker`] with extra environment (`RESTAURANT_*`); the log is
/// appended to, so a restarted worker keeps its earlier lines.
pub fn start_worker_with(
    port: u16,
    secret: &str,
    log: &Path,
    env: &[(&str, &str)],
) -> WorkerProcess {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(worker_bin())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("TPF_WORKER_SHARED_SECRET", secret)
        .env_remove("TPF_WORKER_SHARED_SECRET_REF")
        .envs(env.iter().copied())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start restaurant-worker (cargo build --bins first)");
    WorkerProcess(child)
}

pub async fn wait_for<F: Fn(&Value) -> bool>(
    stack: &Stack,
    path: &str,
    token: &str,
    done: F,
) -> Value {
    wait_for_within(stack, path, token, Duration::from_secs(60), done).await
}

/// Polls `GET path` (every 100 ms) until it answers 200 with a body `done`
/// accepts; fails the test after `within`.
pub async fn wait_for_within<F: Fn(&Value) -> bool>(
    stack: &Stack,
    path: &str,
    token: &str,
    within: Duration,
    done: F,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (s, v) = call(stack, "GET", path, Some(token), None).await;
        if s == 200 && done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never reached the state; last {v}; log:\n{}",
            stack.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn call(
    stack: &Stack,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut rb = client
        .request(method.parse().unwrap(), format!("{}{path}", stack.base))
        .timeout(Duration::from_secs(60));
    if let Some(t) = token {
        rb = rb.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        rb = rb
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}; log:\n{}", stack.log_tail()));
    let status = r.status().as_u16();
    assert!(
        r.headers().contains_key("x-request-id"),
        "{method} {path} has X-Request-Id"
    );
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The restaurant's answer: a `java.util.Map` envelope with `orderId` and,
/// when given, `approved`.
pub fn decision(order_id: &str, approved: Option<bool>) -> Value {
    let item = |t: &str, p: String| json!({"payloadTypeId": t, "payloadEncoding": "application/tpf-transition+json", "payload": p});
    let mut items = serde_json::Map::new();
    items.insert(
        "orderId".into(),
        item("java.lang.String", json!(order_id).to_string()),
    );
    if let Some(a) = approved {
        items.insert("approved".into(), item("java.lang.Boolean", a.to_string()));
    }
    json!({"payloadTypeId": "java.util.Map", "payloadEncoding": "application/tpf-transition+json",
           "payload": json!({"items": items}).to_string()})
}
