//! Helpers of the black-box tests (`blackbox.rs`, `blackbox_engine.rs`): the
//! functions started the way the README starts them (`infra/run-local.sh`,
//! i.e. `cargo lambda watch` with the workspace router) on a free port with
//! their own state directory, the example worker as its own process, and
//! small HTTP helpers.
//!
//! Every process started here is stopped on drop (the stack's whole process
//! group, the worker process itself), also when a test fails; a failing test
//! keeps the stack's state directory with its logs and prints where it is.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "blackbox-admin-token";
/// The run command's local defaults (`infra/lib.sh`, README table).
pub const LOCAL_ADMIN: &str = "local-admin-token";
pub const LOCAL_CONTROL: &str = "local-control-token";
pub const LOCAL_SECRET: &str = "local-worker-secret";
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

/// The running stack; stopped (whole process group) on drop. When the test
/// is failing (dropped while panicking), its state directory — `watch.log`,
/// the worker logs, the stored state — is kept, and the end of the log is
/// printed.
pub struct Stack {
    child: Child,
    pub base: String,
    log: PathBuf,
    state: Option<tempfile::TempDir>,
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
        if std::thread::panicking() {
            if let Some(dir) = self.state.take() {
                let kept = dir.keep();
                eprintln!(
                    "test failed: state and logs kept in {} (watch.log, worker logs); end of watch.log:\n{}",
                    kept.display(),
                    self.log_tail()
                );
            }
        }
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
    start_script("infra/run-local.sh", state, env, Tokens::Harness).await
}

/// The stack exactly as the README's run command starts it: every local
/// default in force (tokens `local-admin-token` and `local-control-token`,
/// worker secret `local-worker-secret`, `RUST_LOG=info`, the file providers
/// under the state directory), whatever the calling environment exports.
/// Only the port (a free one, so tests can run beside a developer's stack on
/// 9000) and the state directory (a new temporary one) are moved.
pub async fn start_with_defaults() -> Stack {
    start_script(
        "infra/run-local.sh",
        tempfile::tempdir().unwrap(),
        &[],
        Tokens::LocalDefaults,
    )
    .await
}

/// The stack in local AWS mode (`infra/run-local-aws.sh`: moto, resources
/// from template.yaml, dynamo/s3/sqs providers, the SQS event source and the
/// schedule played by `tpf-local-aws pump`), in a new state directory.
pub async fn start_aws_with(env: &[(&str, &str)]) -> Stack {
    start_script(
        "infra/run-local-aws.sh",
        tempfile::tempdir().unwrap(),
        env,
        Tokens::Harness,
    )
    .await
}

/// Which admin token and other local settings a started stack uses.
#[derive(PartialEq)]
enum Tokens {
    /// The admin token [`ADMIN`]; the rest as inherited or defaulted.
    Harness,
    /// Every local default of the run command (see [`start_with_defaults`]).
    LocalDefaults,
}

/// The variables of the run command's local defaults (besides the port and
/// the state directory), removed from the environment for
/// [`Tokens::LocalDefaults`] so the script's own defaults apply.
const LOCAL_DEFAULT_VARS: &[&str] = &[
    "TPF_LOCAL_ADDRESS",
    "TPF_CONTROL_PLANE_ENABLED",
    "TPF_ADMIN_ENABLED",
    "TPF_CONTROL_PLANE_TOKEN",
    "TPF_CONTROL_PLANE_TOKEN_REF",
    "TPF_ADMIN_TOKEN",
    "TPF_ADMIN_TOKEN_REF",
    "TPF_WORKER_SHARED_SECRET",
    "TPF_WORKER_SHARED_SECRET_REF",
    "TPF_STATE_ROOT",
    "TPF_RELEASES_STORAGE_ROOT",
    "TPF_WORKER_LIFECYCLE_ROOT",
    "TPF_RELEASES_REGISTRATION_ROOTS",
    "TPF_RELEASES_REGISTRY_PROVIDER",
    "TPF_WORKER_LIFECYCLE_PROVIDER",
    "RUST_LOG",
];

/// Starts `script` (a README run command) with the local defaults, `env` on
/// top, and waits until the three HTTP functions answer their health route.
async fn start_script(
    script: &str,
    state: tempfile::TempDir,
    env: &[(&str, &str)],
    tokens: Tokens,
) -> Stack {
    use std::os::unix::process::CommandExt;
    let state_root = state.path().to_path_buf();
    let port = free_port();
    let log = state_root.join("watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut command = Command::new("bash");
    command
        .arg(script)
        .arg("--ignore-changes")
        .current_dir(repo_root())
        // Every local default can be overridden by exporting the variable.
        .env("TPF_LOCAL_STATE_DIR", &state_root)
        .env("TPF_LOCAL_PORT", port.to_string());
    match tokens {
        Tokens::Harness => {
            command
                .env("TPF_ADMIN_TOKEN", ADMIN)
                .env_remove("TPF_ADMIN_TOKEN_REF");
        }
        Tokens::LocalDefaults => {
            for var in LOCAL_DEFAULT_VARS {
                command.env_remove(var);
            }
        }
    }
    let child = command
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
        state: Some(state),
        state_root,
    };
    // The run command builds the binaries first (minutes on a cold or busy
    // machine), then prints its "serving" line: wait for that line, failing
    // at once if the command exits, before the per-function health waits.
    let mut stack = stack;
    let build_deadline = Instant::now() + Duration::from_secs(1800);
    while !stack.log().contains("serving http://") {
        if let Ok(Some(status)) = stack.child.try_wait() {
            panic!(
                "{script} exited ({status}) before serving; log:\n{}",
                stack.log_tail()
            );
        }
        assert!(
            Instant::now() < build_deadline,
            "{script} never finished building; log:\n{}",
            stack.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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

/// The README's `cargo run -p demo-release` helper, as built by the run
/// command (`cargo build --bins`).
pub fn demo_release_bin() -> PathBuf {
    repo_root().join("target/debug/demo-release")
}

/// Runs `command` to completion and parses its standard output as one JSON
/// value (what the README captures with `$(…)`); fails on a non-zero exit.
pub fn run_json(command: &mut Command) -> Value {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (cargo build --bins first)"));
    assert!(
        out.status.success(),
        "{command:?}: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{command:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A stack over a stand-in process (its own process group, as the run
    /// command's) and a fresh state directory holding a `watch.log`.
    fn stand_in() -> Stack {
        let state = tempfile::tempdir().unwrap();
        let state_root = state.path().to_path_buf();
        let log = state_root.join("watch.log");
        std::fs::write(&log, "the end of the log\n").unwrap();
        let child = Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .unwrap();
        Stack {
            child,
            base: String::new(),
            log,
            state: Some(state),
            state_root,
        }
    }

    fn alive(pid: u32) -> bool {
        // A reaped process has no /proc entry (a zombie would still have one).
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_passing_test_stops_the_stack_and_removes_its_state() {
        let stack = stand_in();
        let (pid, dir) = (stack.child.id(), stack.state_root.clone());
        assert!(alive(pid));
        drop(stack);
        assert!(!alive(pid), "process stopped");
        assert!(!dir.exists(), "state removed");
    }

    #[test]
    fn a_failing_test_stops_the_stack_but_keeps_its_state_and_log() {
        let stack = stand_in();
        let (pid, dir) = (stack.child.id(), stack.state_root.clone());
        let failed = std::thread::spawn(move || {
            let _stack = stack;
            panic!("an assertion of the test fails");
        })
        .join();
        assert!(failed.is_err());
        assert!(!alive(pid), "process stopped");
        assert_eq!(
            std::fs::read_to_string(dir.join("watch.log")).unwrap(),
            "the end of the log\n",
            "log kept"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
