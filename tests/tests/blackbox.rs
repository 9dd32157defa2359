//! Black-box test: the functions started the way the README starts them
//! (`infra/run-local.sh`, i.e. `cargo lambda watch` with the workspace
//! router), driven over real HTTP through the README's curl walk-through.
//!
//! Needs cargo-lambda (installed into `.venv` by `infra/test.sh`, which runs
//! this test with `--ignored`).

use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "blackbox-admin-token";
const TENANT_BASE: &str = "/tpf/admin/tenants/acme/pipelines/restaurant-approval";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The running stack; stopped (whole process group) on drop.
struct Stack {
    child: Child,
    base: String,
    log: PathBuf,
    _state: tempfile::TempDir,
    state_root: PathBuf,
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
    fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let start = s.len().saturating_sub(6_000);
        s[s.floor_char_boundary(start)..].to_string()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start() -> Stack {
    use std::os::unix::process::CommandExt;
    let state = tempfile::tempdir().unwrap();
    let state_root = state.path().to_path_buf();
    let port = free_port();
    let log = state_root.join("watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("bash")
        .arg("infra/run-local.sh")
        .arg("--ignore-changes")
        .current_dir(repo_root())
        // Every local default can be overridden by exporting the variable.
        .env("TPF_STATE_ROOT", &state_root)
        .env("TPF_LOCAL_PORT", port.to_string())
        .env("TPF_ADMIN_TOKEN", ADMIN)
        .env_remove("TPF_ADMIN_TOKEN_REF")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .process_group(0)
        .spawn()
        .expect("start infra/run-local.sh");
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

async fn call(
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

#[tokio::test]
#[ignore = "needs cargo-lambda; run by infra/test.sh"]
async fn readme_walkthrough_over_cargo_lambda_watch() {
    let stack = start().await;
    let root = stack.state_root.join("releases");
    assert!(
        root.is_dir(),
        "the run command creates the registration root"
    );

    // Write a release into the registration root (what `cargo run -p demo-release` does).
    let demo = demo_release::write_release(&root, &demo_release::DemoSpec::default()).unwrap();

    // Register, read, activate.
    let (s, rel) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/releases/register"),
        Some(ADMIN),
        Some(json!({"releaseDescriptorPath": demo.descriptor_path})),
    )
    .await;
    assert_eq!(s, 200, "{rel}");
    assert_eq!(rel["status"], "REGISTERED");
    assert!(rel["primaryArtifactUri"]
        .as_str()
        .unwrap()
        .starts_with("file://"));
    let (s, act) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/releases/2025.01.0/activate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, act["status"].as_str()), (200, Some("ACTIVE")), "{act}");
    let (s, active) = call(
        &stack,
        "GET",
        &format!("{TENANT_BASE}/releases/active"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (s, active["releaseVersion"].as_str()),
        (200, Some("2025.01.0"))
    );

    // Workers: register, heartbeat, list, drain (another process, same state).
    let worker = json!({
        "workerId": "kitchen-1",
        "contractVersion": rel["contractVersion"],
        "releaseVersion": rel["releaseVersion"],
        "protocol": "rest",
        "endpoint": "http://127.0.0.1:8181",
        "artifactId": rel["primaryArtifactId"],
        "artifactDigest": rel["primaryArtifactDigest"],
    });
    let (s, w) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/workers/register"),
        Some(ADMIN),
        Some(worker),
    )
    .await;
    assert_eq!((s, w["state"].as_str()), (200, Some("HEALTHY")), "{w}");
    let (s, hb) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/workers/kitchen-1/heartbeat"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200, "{hb}");
    let (s, list) = call(
        &stack,
        "GET",
        &format!("{TENANT_BASE}/workers?releaseVersion=2025.01.0"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, d) = call(
        &stack,
        "POST",
        &format!("{TENANT_BASE}/workers/kitchen-1/drain"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, d["state"].as_str()), (200, Some("DRAINING")));

    // State is on disk where the run command put it.
    assert!(stack.state_root.join("store").join("registry").is_dir());
    assert!(stack.state_root.join("workers").join("acme").is_dir());

    // Errors are the spec's JSON, from whichever function serves the path.
    let (s, e) = call(
        &stack,
        "GET",
        &format!("{TENANT_BASE}/workers"),
        Some("wrong"),
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (s, e) = call(&stack, "GET", "/no/such/path", None, None).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("ROUTE_NOT_FOUND")));
    let (s, e) = call(
        &stack,
        "GET",
        &format!("{TENANT_BASE}/releases/register"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
    let (s, h) = call(&stack, "GET", "/tpf/health", None, None).await;
    assert_eq!((s, h["function"].as_str()), (200, Some("control-plane")));
}
