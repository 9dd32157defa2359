//! The worker's identity matches the demo release it hosts, and
//! `--print-registration` prints the worker-lifecycle register body.

use restaurant_worker::{WorkerConfig, WorkerIdentity};
use serde_json::{json, Value};

#[test]
fn artifact_digest_is_deterministic_and_matches_the_written_release() {
    let spec = demo_release::DemoSpec::default();
    let first = demo_release::digest(&demo_release::artifact_zip(&demo_release::contract(&spec)));
    // Zip entry times have a 2 s resolution: build again after that, so a
    // clock-dependent artifact (entry mtimes) could not pass by chance.
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let second = demo_release::digest(&demo_release::artifact_zip(&demo_release::contract(&spec)));
    assert_eq!(
        first, second,
        "two builds of the artifact have the same digest"
    );

    let identity = WorkerIdentity::demo();
    assert_eq!(identity.artifact_digest, first);
    assert_eq!(identity.pipeline_id, "restaurant-approval");
    assert_eq!(identity.contract_version, spec.contract_version);
    assert_eq!(identity.release_version, spec.release_version);
    assert_eq!(identity.artifact_id, "restaurant-approval-monolith");

    let dir = tempfile::tempdir().unwrap();
    let written = demo_release::write_release(dir.path(), &spec).unwrap();
    assert_eq!(written.artifact_digest, identity.artifact_digest);
    assert_eq!(written.artifact_id, identity.artifact_id);
    let on_disk = std::fs::read(&written.artifact_path).unwrap();
    assert_eq!(demo_release::digest(&on_disk), identity.artifact_digest);
    let descriptor: Value =
        serde_json::from_slice(&std::fs::read(&written.descriptor_path).unwrap()).unwrap();
    assert_eq!(
        descriptor["contractVersion"],
        identity.contract_version.as_str()
    );
    assert_eq!(
        descriptor["releaseVersion"],
        identity.release_version.as_str()
    );
    assert_eq!(
        descriptor["artifacts"][0]["digest"],
        identity.artifact_digest.as_str()
    );
    assert_eq!(
        descriptor["artifacts"][0]["artifactId"],
        identity.artifact_id.as_str()
    );
}

#[test]
fn overridden_release_matches_the_release_written_for_it() {
    let spec = demo_release::DemoSpec {
        release_version: "2025.02.0".into(),
        contract_version: "sha256:0123456789ab".into(),
        ..Default::default()
    };
    let config = WorkerConfig::from_lookup(|name| match name {
        "RESTAURANT_RELEASE_VERSION" => Some(spec.release_version.clone()),
        "RESTAURANT_CONTRACT_VERSION" => Some(spec.contract_version.clone()),
        _ => None,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = demo_release::write_release(dir.path(), &spec).unwrap();
    assert_eq!(config.identity.release_version, "2025.02.0");
    assert_eq!(config.identity.contract_version, "sha256:0123456789ab");
    assert_eq!(config.identity.artifact_digest, written.artifact_digest);
}

fn registration(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_restaurant-worker"));
    cmd.args(args);
    for var in [
        "RESTAURANT_WORKER_ADDR",
        "RESTAURANT_WORKER_ID",
        "RESTAURANT_WORKER_ENDPOINT",
        "RESTAURANT_RELEASE_VERSION",
        "RESTAURANT_CONTRACT_VERSION",
        "TPF_WORKER_SHARED_SECRET",
        "TPF_WORKER_SHARED_SECRET_REF",
        "TPF_WORKER_SIGNATURE_TOLERANCE",
        "RESTAURANT_AWAIT_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn print_registration_prints_the_register_body() {
    let identity = WorkerIdentity::demo();
    let body = registration(&["--print-registration"], &[]);
    assert_eq!(
        body,
        json!({
            "workerId": "kitchen-1",
            "contractVersion": identity.contract_version,
            "releaseVersion": identity.release_version,
            "protocol": "rest",
            "endpoint": "http://127.0.0.1:8181",
            "artifactId": "restaurant-approval-monolith",
            "artifactDigest": identity.artifact_digest,
        })
    );

    let body = registration(
        &["--listen", "127.0.0.1:9191", "--print-registration"],
        &[
            ("RESTAURANT_WORKER_ID", "kitchen-2"),
            ("RESTAURANT_WORKER_ADDR", "127.0.0.1:9999"),
        ],
    );
    assert_eq!(body["workerId"], "kitchen-2");
    assert_eq!(body["endpoint"], "http://127.0.0.1:9191");

    let body = registration(
        &["--print-registration"],
        &[("RESTAURANT_WORKER_ADDR", "127.0.0.1:9999")],
    );
    assert_eq!(body["endpoint"], "http://127.0.0.1:9999");
}

#[test]
fn bad_configuration_stops_the_binary() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_restaurant-worker"))
        .arg("--print-registration")
        .env("TPF_WORKER_SIGNATURE_TOLERANCE", "two minutes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TPF_WORKER_SIGNATURE_TOLERANCE"));
}
