//! release-admin through the router, in process (`RELEASES.md` §2–§5 and
//! the §10 lines "Common and security", "Registration", "Artifact store",
//! "Activation"), on the `file` registry and `local` store in a temp dir.

use crate::support;

use demo_release::{artifact_zip, contract, digest, write_release, DemoSpec};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::*;
use tpf_core::providers::memory::MemoryReleaseRegistry;

fn spec(version: &str) -> DemoSpec {
    DemoSpec {
        release_version: version.into(),
        ..DemoSpec::default()
    }
}

async fn register_path(app: &TestApp, path: &Path) -> Resp {
    let body = json!({"releaseDescriptorPath": path});
    req("POST", &format!("{RELEASES}/register"))
        .admin()
        .json(&body)
        .send(app)
        .await
}

async fn register_inline(app: &TestApp, descriptor: &Value) -> Resp {
    let body = json!({"releaseDescriptor": descriptor});
    req("POST", &format!("{RELEASES}/register"))
        .admin()
        .json(&body)
        .send(app)
        .await
}

async fn activate(app: &TestApp, version: &str) -> Resp {
    req("POST", &format!("{RELEASES}/{version}/activate"))
        .admin()
        .send(app)
        .await
}

async fn activations(app: &TestApp) -> Vec<Value> {
    let r = req("GET", &format!("{RELEASES}/activations?limit=1000"))
        .admin()
        .send(app)
        .await;
    r.assert_ok()["events"].as_array().unwrap().clone()
}

fn store_dir(app: &TestApp) -> PathBuf {
    app.dir.path().join("store").join("artifacts")
}

fn stored_objects(app: &TestApp) -> Vec<String> {
    match std::fs::read_dir(store_dir(app)) {
        Ok(d) => {
            let mut v: Vec<String> = d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect();
            v.sort();
            v
        }
        Err(_) => vec![],
    }
}

/// Writes `descriptor` as `<root>/<dir>/pipeline-release.json`.
fn write_descriptor(app: &TestApp, dir: &str, descriptor: &Value) -> PathBuf {
    let d = app.root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("pipeline-release.json");
    std::fs::write(&p, serde_json::to_vec(descriptor).unwrap()).unwrap();
    p
}

/// A descriptor whose one artifact (`uri`, `kind`) lives next to it.
fn descriptor_with(version: &str, artifacts: Value) -> Value {
    json!({
        "schemaVersion": 1,
        "pipelineId": "restaurant-approval",
        "contractVersion": "sha256:4be1f0c27a9d",
        "releaseVersion": version,
        "artifacts": artifacts,
    })
}

/// Writes `bytes` as `<root>/<dir>/<name>` and returns its digest.
fn write_artifact(app: &TestApp, dir: &str, name: &str, bytes: &[u8]) -> String {
    let d = app.root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
    digest(bytes)
}

fn demo_jar() -> Vec<u8> {
    artifact_zip(&contract(&DemoSpec::default()))
}

#[tokio::test]
async fn reg01_rrp01_demo_flow_on_file_and_memory_registries() {
    for memory in [false, true] {
        let registry: Option<Arc<dyn tpf_core::ports::ReleaseRegistry>> =
            memory.then(|| Arc::new(MemoryReleaseRegistry::new()) as _);
        let app = release_app(Options {
            release_registry: registry,
            ..Options::default()
        });
        let demo = write_release(&app.root, &spec("2025.01.0")).unwrap();
        let r = register_path(&app, &demo.descriptor_path).await;
        let v = r.assert_ok().clone();
        assert_eq!(v["status"], "REGISTERED");
        assert_eq!(v["releaseVersion"], "2025.01.0");
        assert_eq!(v["contractVersion"], "sha256:4be1f0c27a9d");
        assert_eq!(v["primaryArtifactId"], demo.artifact_id);
        assert_eq!(v["primaryArtifactDigest"], demo.artifact_digest);
        let hex = demo.artifact_digest.strip_prefix("sha256:").unwrap();
        let expected_path = store_dir(&app).join(format!("{hex}.jar"));
        assert_eq!(
            v["primaryArtifactUri"],
            format!("file://{}", expected_path.display())
        );
        assert_eq!(v["primaryArtifactChecksum"], demo.artifact_digest);
        assert_eq!(
            v["primaryArtifactSizeBytes"],
            std::fs::metadata(&demo.artifact_path).unwrap().len()
        );
        assert_eq!(v["contract"]["pipelineId"], "restaurant-approval");
        assert_eq!(
            v["descriptorLocation"],
            demo.descriptor_path.to_str().unwrap()
        );
        assert_eq!(v["createdAtEpochMs"], T0);
        assert_eq!(v["updatedAtEpochMs"], T0);
        assert_eq!(v["activatedAtEpochMs"], 0);
        assert_eq!(v["artifactVerified"], true);
        assert_eq!(v["storedArtifacts"].as_array().unwrap().len(), 1);
        assert_eq!(
            v["descriptor"]["artifacts"][0]["uri"],
            "monolith-svc-runner.jar"
        );
        assert_eq!(v["contentHash"].as_str().unwrap().len(), 64);
        assert_eq!(
            stored_objects(&app),
            vec![format!("{hex}.jar")],
            "ART-01 layout"
        );
        // Read back.
        let g = req("GET", &format!("{RELEASES}/2025.01.0"))
            .admin()
            .send(&app)
            .await;
        assert_eq!(g.assert_ok(), &v);
        let list = req("GET", RELEASES).admin().send(&app).await;
        assert_eq!(list.assert_ok(), &json!([v]));
        // Activate.
        app.clock.advance(7);
        let a = activate(&app, "2025.01.0").await;
        assert_eq!(a.assert_ok()["status"], "ACTIVE");
        assert_eq!(a.body["activatedAtEpochMs"], T0 + 7);
        assert_eq!(a.body["updatedAtEpochMs"], T0 + 7);
        let active = req("GET", &format!("{RELEASES}/active"))
            .admin()
            .send(&app)
            .await;
        assert_eq!(active.assert_ok()["releaseVersion"], "2025.01.0");
    }
}

#[tokio::test]
async fn reg03_exactly_one_request_member() {
    let app = release_app(Options::default());
    let url = format!("{RELEASES}/register");
    let d = descriptor_with("1.0", json!([]));
    let cases = vec![
        (
            json!({"releaseDescriptorPath": "/x", "releaseDescriptor": d}),
            400,
            "INVALID_FIELD",
        ),
        (json!({}), 400, "MISSING_FIELD"),
        (
            json!({"releaseDescriptorPath": "   "}),
            400,
            "MISSING_FIELD",
        ),
        (
            json!({"releaseDescriptorPath": null, "releaseDescriptor": null}),
            400,
            "MISSING_FIELD",
        ),
        (json!({"releaseDescriptorPath": 5}), 400, "INVALID_FIELD"),
        (json!({"releaseDescriptor": "x"}), 400, "INVALID_FIELD"),
        (
            json!({"releaseDescriptorPath": format!("/{}", "a".repeat(4096))}),
            400,
            "INVALID_FIELD",
        ),
    ];
    for (body, status, code) in cases {
        req("POST", &url)
            .admin()
            .json(&body)
            .send(&app)
            .await
            .assert_error(status, code);
    }
    let r = req("POST", &url).admin().json(&json!({})).send(&app).await;
    assert_eq!(r.body["message"], "releaseDescriptorPath is required");
}

#[tokio::test]
async fn reg04_identical_reregistration_reads_no_artifact_and_writes_nothing() {
    let app = release_app(Options::default());
    let demo = write_release(&app.root, &spec("2025.01.0")).unwrap();
    let first = register_path(&app, &demo.descriptor_path)
        .await
        .assert_ok()
        .clone();
    app.clock.advance(1_000);
    // The artifact is gone: an identical retry must not need it.
    std::fs::remove_file(&demo.artifact_path).unwrap();
    let again = register_path(&app, &demo.descriptor_path).await;
    assert_eq!(again.assert_ok(), &first, "original createdAtEpochMs");
    // Same content from another path, and inline (local uri is not identity).
    let other = app.root.join("copy");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&demo.descriptor_path, other.join("pipeline-release.json")).unwrap();
    register_path(&app, &other.join("pipeline-release.json"))
        .await
        .assert_ok();
    let mut inline: Value =
        serde_json::from_slice(&std::fs::read(&demo.descriptor_path).unwrap()).unwrap();
    inline["artifacts"][0]["uri"] = json!(format!("file://{}", demo.artifact_path.display()));
    let r = register_inline(&app, &inline).await;
    assert_eq!(r.assert_ok()["createdAtEpochMs"], T0);
    assert_eq!(
        r.body["descriptorLocation"],
        demo.descriptor_path.to_str().unwrap(),
        "the stored record is returned"
    );
}

#[tokio::test]
async fn reg05_same_version_other_content_is_409() {
    let app = release_app(Options::default());
    let demo = write_release(&app.root, &spec("2025.01.0")).unwrap();
    register_path(&app, &demo.descriptor_path).await.assert_ok();
    let base: Value =
        serde_json::from_slice(&std::fs::read(&demo.descriptor_path).unwrap()).unwrap();
    type Change = Box<dyn Fn(&mut Value)>;
    let variants: Vec<Change> = vec![
        Box::new(|d| d["artifacts"][0]["digest"] = json!(format!("sha256:{}", "0".repeat(64)))),
        Box::new(|d| d["artifacts"][0]["stepIds"] = json!(["only one"])),
        Box::new(|d| d["scope"] = json!("tenant")),
        Box::new(|d| {
            d["artifacts"].as_array_mut().unwrap().push(json!({
                "artifactId": "img", "kind": "container-image",
                "uri": format!("registry.example/ra@sha256:{}", "1".repeat(64)),
                "digest": format!("sha256:{}", "1".repeat(64))
            }))
        }),
    ];
    for (i, change) in variants.iter().enumerate() {
        let mut d = base.clone();
        change(&mut d);
        let p = write_descriptor(&app, &format!("2025.01.0/v{i}"), &d);
        let r = register_path(&app, &p).await;
        r.assert_error(409, "RELEASE_VERSION_CONFLICT");
        assert_eq!(
            r.body["message"],
            "Release version 2025.01.0 is already registered with different content"
        );
    }
}

#[tokio::test]
async fn reg06_concurrent_first_registrations_one_creates() {
    let app = Arc::new(release_app(Options::default()));
    let demo = write_release(&app.root, &spec("2025.01.0")).unwrap();
    let mut other: Value =
        serde_json::from_slice(&std::fs::read(&demo.descriptor_path).unwrap()).unwrap();
    other["scope"] = json!("different content");
    let other_path = app.root.join("2025.01.0").join("other.json");
    std::fs::write(&other_path, serde_json::to_vec(&other).unwrap()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let app = app.clone();
        let p = if i % 2 == 0 {
            demo.descriptor_path.clone()
        } else {
            other_path.clone()
        };
        tasks.push(tokio::spawn(async move {
            (p.clone(), register_path(&app, &p).await)
        }));
    }
    let mut winners = std::collections::HashSet::new();
    for t in tasks {
        let (p, r) = t.await.unwrap();
        match r.status.as_u16() {
            200 => {
                winners.insert(r.body["descriptorLocation"].as_str().unwrap().to_string());
            }
            409 => assert_eq!(r.code(), "RELEASE_VERSION_CONFLICT", "{}", p.display()),
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    assert_eq!(winners.len(), 1, "every 200 returns the one winner");
    let list = req("GET", RELEASES).admin().send(&app).await;
    assert_eq!(list.assert_ok().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn reg08_wrong_digest_or_upper_case_hex_stores_nothing() {
    let app = release_app(Options::default());
    let jar = demo_jar();
    write_artifact(&app, "r", "app.jar", &jar);
    let wrong = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "app.jar", "digest": digest(b"other bytes")}]),
    );
    let p = write_descriptor(&app, "r", &wrong);
    register_path(&app, &p)
        .await
        .assert_error(400, "ARTIFACT_DIGEST_MISMATCH");
    let upper = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "app.jar", "digest": digest(&jar).to_uppercase().replace("SHA256", "sha256")}]),
    );
    let p = write_descriptor(&app, "r", &upper);
    let r = register_path(&app, &p).await;
    r.assert_error(400, "INVALID_DESCRIPTOR");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("artifacts[0].digest"));
    assert!(stored_objects(&app).is_empty());
    req("GET", &format!("{RELEASES}/1.0"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
}

#[tokio::test]
async fn reg09_missing_or_oversized_artifact() {
    let app = release_app(Options::default());
    let missing = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "nope.jar", "digest": digest(b"x")}]),
    );
    let p = write_descriptor(&app, "r", &missing);
    register_path(&app, &p)
        .await
        .assert_error(400, "ARTIFACT_UNREADABLE");
    // Over TPF_RELEASES_MAX_ARTIFACT_BYTES (1 000 000 in this app): refused from stat, unread.
    let big = vec![7u8; 1_000_001];
    let d = write_artifact(&app, "r", "big.bin", &big);
    let desc = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "local-file", "uri": "big.bin", "digest": d}]),
    );
    let p = write_descriptor(&app, "r", &desc);
    register_path(&app, &p)
        .await
        .assert_error(400, "ARTIFACT_TOO_LARGE");
    // A directory is not a regular file.
    std::fs::create_dir_all(app.root.join("r").join("dir.jar")).unwrap();
    let desc = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "dir.jar", "digest": digest(b"x")}]),
    );
    let p = write_descriptor(&app, "r", &desc);
    register_path(&app, &p)
        .await
        .assert_error(400, "ARTIFACT_UNREADABLE");
    assert!(stored_objects(&app).is_empty());
}

fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    for (name, bytes) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
    buf.into_inner()
}

/// Nothing stored in the artifact store, no release record for `1.0`, and an
/// empty release list.
async fn assert_nothing_registered(app: &TestApp) {
    assert_eq!(stored_objects(app), Vec::<String>::new(), "nothing stored");
    req("GET", &format!("{RELEASES}/1.0"))
        .admin()
        .send(app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
    let list = req("GET", RELEASES).admin().send(app).await;
    assert_eq!(list.assert_ok(), &json!([]), "no record listed");
}

/// Replaces every occurrence of `from` in `buf` by `to` (same length).
fn replace_all(buf: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= buf.len() {
        if &buf[i..i + from.len()] == from {
            buf[i..i + to.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}

#[tokio::test]
async fn reg10_jar_needs_a_contract_other_local_kinds_do_not() {
    let app = release_app(Options::default());
    for (name, bytes) in [
        ("plain.jar", zip_with(&[("a.txt", b"x")])),
        ("notzip.jar", b"not a zip".to_vec()),
    ] {
        let d = write_artifact(&app, "r", name, &bytes);
        let desc = descriptor_with(
            "1.0",
            json!([{"artifactId": "app", "kind": "jar", "uri": name, "digest": d}]),
        );
        let p = write_descriptor(&app, "r", &desc);
        register_path(&app, &p)
            .await
            .assert_error(400, "CONTRACT_MISSING");
        assert_nothing_registered(&app).await;
    }
    let d = write_artifact(&app, "r", "worker", b"#!/bin/sh\necho hi\n");
    let desc = descriptor_with(
        "1.0",
        json!([{"artifactId": "bin", "kind": "Local-File", "uri": "worker", "digest": d}]),
    );
    let p = write_descriptor(&app, "r", &desc);
    let r = register_path(&app, &p).await;
    assert_eq!(r.assert_ok()["contract"], Value::Null);
    assert_eq!(
        r.body["storedArtifacts"][0]["kind"], "Local-File",
        "kind stored as written"
    );
    let hex = d.strip_prefix("sha256:").unwrap();
    assert_eq!(
        stored_objects(&app),
        vec![format!("{hex}.artifact")],
        "ART-01 .artifact extension"
    );
}

#[tokio::test]
async fn reg11_contract_identity_structure_and_unknown_members() {
    let app = release_app(Options::default());
    let mut foreign = contract(&DemoSpec::default());
    foreign["pipelineId"] = json!("another-pipeline");
    let mut invalid = contract(&DemoSpec::default());
    invalid["schemaVersion"] = json!(9);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "mismatch.jar",
            artifact_zip(&foreign),
            400,
            "CONTRACT_MISMATCH",
        ),
        (
            "invalid.jar",
            artifact_zip(&invalid),
            400,
            "CONTRACT_INVALID",
        ),
        (
            "syntax.jar",
            zip_with(&[("META-INF/pipeline/pipeline-contract.json", b"{not json")]),
            400,
            "CONTRACT_INVALID",
        ),
        (
            "big.jar",
            zip_with(&[(
                "META-INF/pipeline/pipeline-contract.json",
                &vec![b' '; 1_048_577],
            )]),
            400,
            "CONTRACT_INVALID",
        ),
    ];
    for (name, bytes, status, code) in cases {
        let d = write_artifact(&app, "r", name, &bytes);
        let desc = descriptor_with(
            "1.0",
            json!([{"artifactId": "app", "kind": "jar", "uri": name, "digest": d}]),
        );
        let p = write_descriptor(&app, "r", &desc);
        register_path(&app, &p).await.assert_error(status, code);
        assert_nothing_registered(&app).await;
    }
    let mut extended = contract(&DemoSpec::default());
    extended["futureMember"] = json!({"kept": [1, 2]});
    let d = write_artifact(&app, "r", "ok.jar", &artifact_zip(&extended));
    let desc = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "ok.jar", "digest": d}]),
    );
    let p = write_descriptor(&app, "r", &desc);
    let r = register_path(&app, &p).await;
    assert_eq!(r.assert_ok()["contract"], extended, "stored as read");
}

#[tokio::test]
async fn reg11_duplicated_contract_entry_is_contract_invalid_and_stores_nothing() {
    const ENTRY: &str = "META-INF/pipeline/pipeline-contract.json";
    let app = release_app(Options::default());
    let good = serde_json::to_vec(&contract(&DemoSpec::default())).unwrap();
    // The zip writer refuses duplicate names: write two entries whose names
    // have the contract entry's length, then rename both (local header and
    // central directory) to the contract entry.
    let (x, y) = (
        "META-INF/pipeline/pipeline-contract.jsoX",
        "META-INF/pipeline/pipeline-contract.jsoY",
    );
    let once = zip_with(&[(x, &good)]);
    let mut twice = zip_with(&[(x, &good), (y, &good)]);
    assert_eq!(replace_all(&mut twice, x.as_bytes(), ENTRY.as_bytes()), 2);
    assert_eq!(replace_all(&mut twice, y.as_bytes(), ENTRY.as_bytes()), 2);
    let d = write_artifact(&app, "r", "twice.jar", &twice);
    let desc = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "twice.jar", "digest": d}]),
    );
    let p = write_descriptor(&app, "r", &desc);
    let r = register_path(&app, &p).await;
    r.assert_error(400, "CONTRACT_INVALID");
    assert!(
        r.body["message"].as_str().unwrap().contains("twice"),
        "{}",
        r.body
    );
    assert_nothing_registered(&app).await;
    // The same bytes with the entry once (same renaming) register: the
    // refusal above is the duplicate, not the renaming.
    let mut once = once;
    assert_eq!(replace_all(&mut once, x.as_bytes(), ENTRY.as_bytes()), 2);
    let d = write_artifact(&app, "r", "once.jar", &once);
    let desc = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "once.jar", "digest": d}]),
    );
    let p = write_descriptor(&app, "r", &desc);
    let r = register_path(&app, &p).await;
    assert_eq!(r.assert_ok()["contract"], contract(&DemoSpec::default()));
    assert_eq!(stored_objects(&app).len(), 1);
}

#[tokio::test]
async fn reg12_descriptor_rules_through_the_route() {
    let app = release_app(Options::default());
    let jar = demo_jar();
    let d = write_artifact(&app, "r", "app.jar", &jar);
    let art = json!({"artifactId": "app", "kind": "jar", "uri": "app.jar", "digest": d});
    let mut cases: Vec<(String, &str)> = Vec::new();
    let text = |v: &Value| serde_json::to_string(v).unwrap();
    let mut d2 = descriptor_with("1.0", json!([art]));
    d2["schemaVersion"] = json!(2);
    cases.push((text(&d2), "INVALID_DESCRIPTOR"));
    cases.push((
        text(&descriptor_with("1.0", json!([art])))
            .replace("\"schemaVersion\":1", "\"schemaVersion\":1.0"),
        "INVALID_DESCRIPTOR",
    ));
    let mut big = descriptor_with("1.0", json!([art]));
    big["extra"] = json!(1);
    cases.push((
        text(&big).replace("\"extra\":1", "\"extra\":9007199254740993"),
        "INVALID_DESCRIPTOR",
    ));
    cases.push((
        text(&big).replace("\"extra\":1", "\"extra\":1e400"),
        "INVALID_DESCRIPTOR",
    ));
    let mut other = descriptor_with("1.0", json!([art]));
    other["pipelineId"] = json!("other");
    cases.push((text(&other), "INVALID_DESCRIPTOR"));
    cases.push((
        text(&descriptor_with("1.0", json!([]))),
        "INVALID_DESCRIPTOR",
    ));
    cases.push((
        text(&descriptor_with("1.0", Value::Array(vec![art.clone(); 65]))),
        "INVALID_DESCRIPTOR",
    ));
    cases.push((
        text(&descriptor_with("1.0", json!([art, art]))),
        "INVALID_DESCRIPTOR",
    ));
    let mut unknown_kind = art.clone();
    unknown_kind["kind"] = json!("war");
    cases.push((
        text(&descriptor_with("1.0", json!([unknown_kind]))),
        "INVALID_DESCRIPTOR",
    ));
    let bare_oci = json!({"artifactId": "img", "kind": "container-image", "uri": "registry.example/ra:latest", "digest": d});
    cases.push((
        text(&descriptor_with("1.0", json!([bare_oci]))),
        "INVALID_DESCRIPTOR",
    ));
    for reserved in ["active", "activations", "register"] {
        cases.push((text(&descriptor_with(reserved, json!([art]))), "INVALID_ID"));
        // RAC-06
    }
    cases.push((text(&descriptor_with("a/b", json!([art]))), "INVALID_ID"));
    cases.push((
        "{\"schemaVersion\":1,\"schemaVersion\":1}".into(),
        "INVALID_DESCRIPTOR",
    ));
    cases.push(("[1]".into(), "INVALID_DESCRIPTOR"));
    for (i, (body, code)) in cases.iter().enumerate() {
        let dir = app.root.join("r");
        let p = dir.join(format!("d{i}.json"));
        std::fs::write(&p, body).unwrap();
        register_path(&app, &p).await.assert_error(400, code);
    }
    // Inline: 1e400 fails JSON parsing (INVALID_JSON is accepted by the spec).
    let body = format!(
        "{{\"releaseDescriptor\":{}}}",
        text(&big).replace("\"extra\":1", "\"extra\":1e400")
    );
    let r = req("POST", &format!("{RELEASES}/register"))
        .admin()
        .raw(body)
        .send(&app)
        .await;
    assert!(
        ["INVALID_JSON", "INVALID_DESCRIPTOR"].contains(&r.code()),
        "{}",
        r.body
    );
    let body = format!(
        "{{\"releaseDescriptor\":{}}}",
        text(&big).replace("\"extra\":1", "\"extra\":9007199254740993")
    );
    let r = req("POST", &format!("{RELEASES}/register"))
        .admin()
        .raw(body)
        .send(&app)
        .await;
    r.assert_error(400, "INVALID_DESCRIPTOR");
    // scope/runtime are kept.
    let mut kept = descriptor_with("1.0", json!([art]));
    kept["scope"] = json!("tenant");
    kept["runtime"] = json!({"java": 21});
    let p = write_descriptor(&app, "r", &kept);
    let r = register_path(&app, &p).await;
    assert_eq!(r.assert_ok()["descriptor"]["scope"], "tenant");
    assert_eq!(r.body["descriptor"]["runtime"], json!({"java": 21}));
    assert_eq!(
        stored_objects(&app).len(),
        1,
        "only the successful registration stored"
    );
}

#[tokio::test]
async fn reg13_primary_artifact_selection() {
    let app = release_app(Options::default());
    // Two contract jars: the second is primary.
    let a = write_artifact(&app, "two", "a.jar", &demo_jar());
    let mut c2 = contract(&DemoSpec::default());
    c2["contractHash"] = json!("second");
    let b = write_artifact(&app, "two", "b.jar", &artifact_zip(&c2));
    let desc = descriptor_with(
        "two",
        json!([
            {"artifactId": "first", "kind": "jar", "uri": "a.jar", "digest": a},
            {"artifactId": "second", "kind": "jar", "uri": "b.jar", "digest": b}
        ]),
    );
    let r = register_path(&app, &write_descriptor(&app, "two", &desc)).await;
    assert_eq!(r.assert_ok()["primaryArtifactId"], "second");
    assert_eq!(r.body["contract"]["contractHash"], "second");
    assert_eq!(r.body["storedArtifacts"].as_array().unwrap().len(), 2);
    // Remote-only: the first, with empty store fields.
    let img = format!("sha256:{}", "5".repeat(64));
    let remote = descriptor_with(
        "remote",
        json!([
            {"artifactId": "img", "kind": "container-image", "uri": format!("oci://registry.example/ra@{img}"), "digest": img},
            {"artifactId": "api", "kind": "external-endpoint", "uri": "https://api.example/run", "digest": img}
        ]),
    );
    let r = register_inline(&app, &remote).await;
    let v = r.assert_ok();
    assert_eq!(v["primaryArtifactId"], "img");
    assert_eq!(v["primaryArtifactUri"], "");
    assert_eq!(v["primaryArtifactSizeBytes"], 0);
    assert_eq!(v["primaryArtifactChecksum"], "");
    assert_eq!(v["contract"], Value::Null);
    assert_eq!(v["descriptorLocation"], "inline");
    assert_eq!(v["storedArtifacts"], json!([]));
    // A pipeline-contract artifact supplies an image-only release's contract.
    let cbytes = serde_json::to_vec(&contract(&DemoSpec::default())).unwrap();
    let c = write_artifact(&app, "img", "pipeline-contract.json", &cbytes);
    let desc = descriptor_with(
        "image-only",
        json!([
            {"artifactId": "img", "kind": "container-image", "uri": format!("registry.example/ra@{img}"), "digest": img},
            {"artifactId": "contract", "kind": "pipeline-contract", "uri": "pipeline-contract.json", "digest": c}
        ]),
    );
    let r = register_path(&app, &write_descriptor(&app, "img", &desc)).await;
    assert_eq!(r.assert_ok()["primaryArtifactId"], "contract");
    assert_eq!(r.body["contract"]["pipelineId"], "restaurant-approval");
}

#[tokio::test]
async fn reg14_record_over_the_bound_is_refused_and_leaves_no_record() {
    let app = release_app(Options::default());
    let mut c = contract(&DemoSpec::default());
    c["padding"] = json!("x".repeat(310_000));
    let d = write_artifact(&app, "r", "app.jar", &artifact_zip(&c));
    let desc = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "app.jar", "digest": d}]),
    );
    register_path(&app, &write_descriptor(&app, "r", &desc))
        .await
        .assert_error(400, "RELEASE_TOO_LARGE");
    req("GET", &format!("{RELEASES}/1.0"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
    assert_eq!(
        req("GET", RELEASES).admin().send(&app).await.assert_ok(),
        &json!([])
    );
}

#[tokio::test]
async fn rac07_rac08_locations_outside_the_roots_are_refused_unopened() {
    let app = release_app(Options::default());
    let demo = write_release(&app.root, &spec("1.0")).unwrap();
    let root = app.root.display().to_string();
    for path in [
        format!("{root}/../etc/passwd"),
        "/srv/releases/../etc/passwd".into(),
        "/etc/hostname".into(),
        "/definitely/not/there.json".into(),
        root.clone(),
        format!("{root}x/pipeline-release.json"),
        "relative/pipeline-release.json".into(),
        format!("file://{}", demo.descriptor_path.display()),
        "s3://bucket/key.json".into(),
    ] {
        let r = register_path(&app, Path::new(&path)).await;
        r.assert_error(400, "LOCATION_NOT_ALLOWED");
    }
    // No local root at all: everything is refused, even inside the old root.
    let no_roots = release_app(Options::default()).with_release_deps(|d| d.roots.clear());
    let demo = write_release(&no_roots.root, &spec("1.0")).unwrap();
    register_path(&no_roots, &demo.descriptor_path)
        .await
        .assert_error(400, "LOCATION_NOT_ALLOWED");
}

#[tokio::test]
async fn rac09_symlinks_escaping_the_root_are_refused_inside_ones_followed() {
    let app = release_app(Options::default());
    let outside = app.dir.path().join("elsewhere-target");
    std::fs::create_dir_all(&outside).unwrap();
    let demo = write_release(&outside, &spec("1.0")).unwrap();
    let links = app.root.join("links");
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink(&demo.descriptor_path, links.join("abs.json")).unwrap();
    std::os::unix::fs::symlink(
        "../../elsewhere-target/1.0/pipeline-release.json",
        links.join("rel.json"),
    )
    .unwrap();
    for name in ["abs.json", "rel.json"] {
        let r = register_path(&app, &links.join(name)).await;
        r.assert_error(400, "LOCATION_NOT_ALLOWED");
        assert!(
            !r.body["message"]
                .as_str()
                .unwrap()
                .contains("elsewhere-target"),
            "RAC-12: no link target in {}",
            r.body
        );
    }
    // An artifact link escaping the root is refused too.
    let inside = write_release(&app.root, &spec("2.0")).unwrap();
    std::fs::remove_file(&inside.artifact_path).unwrap();
    std::os::unix::fs::symlink(&demo.artifact_path, &inside.artifact_path).unwrap();
    register_path(&app, &inside.descriptor_path)
        .await
        .assert_error(400, "LOCATION_NOT_ALLOWED");
    assert_eq!(stored_objects(&app), Vec::<String>::new(), "nothing stored");
    req("GET", &format!("{RELEASES}/2.0"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
    // A relative link staying inside the root works.
    let real = write_release(&app.root, &spec("3.0")).unwrap();
    // (A directory link, so the descriptor's relative artifact uri resolves too.)
    std::os::unix::fs::symlink("../3.0", links.join("alias")).unwrap();
    let r = register_path(&app, &links.join("alias").join("pipeline-release.json")).await;
    assert_eq!(r.assert_ok()["releaseVersion"], "3.0");
    assert!(real.descriptor_path.exists());
}

#[tokio::test]
async fn rac10_artifact_uris_outside_the_roots_are_refused() {
    let app = release_app(Options::default());
    let d = digest(b"x");
    for uri in [
        "../escape.jar",
        "file://host/srv/app.jar",
        "https://example.com/app.jar",
        "s3://bucket/app.jar",
        "mvn:org.example:app:1.0",
    ] {
        let desc = descriptor_with(
            "1.0",
            json!([{"artifactId": "app", "kind": "jar", "uri": uri, "digest": d}]),
        );
        register_path(&app, &write_descriptor(&app, "r", &desc))
            .await
            .assert_error(400, "LOCATION_NOT_ALLOWED");
    }
    let inline = descriptor_with(
        "1.0",
        json!([{"artifactId": "app", "kind": "jar", "uri": "app.jar", "digest": d}]),
    );
    register_inline(&app, &inline)
        .await
        .assert_error(400, "LOCATION_NOT_ALLOWED");
}

#[tokio::test]
async fn rac11_size_limits_and_ignored_bodies() {
    let app = release_app(Options::default());
    let p = app.root.join("big.json");
    let mut big = serde_json::to_vec(&descriptor_with("1.0", json!([]))).unwrap();
    big.resize(262_145, b' ');
    std::fs::write(&p, &big).unwrap();
    register_path(&app, &p)
        .await
        .assert_error(400, "DESCRIPTOR_TOO_LARGE");
    big.truncate(262_144);
    std::fs::write(&p, &big).unwrap();
    register_path(&app, &p)
        .await
        .assert_error(400, "INVALID_DESCRIPTOR"); // read, then validated (0 artifacts)
    let inline = json!({"releaseDescriptor": {"pad": "x".repeat(262_144)}});
    req("POST", &format!("{RELEASES}/register"))
        .admin()
        .json(&inline)
        .send(&app)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");
    let demo = write_release(&app.root, &spec("1.0")).unwrap();
    register_path(&app, &demo.descriptor_path).await.assert_ok();
    // COM-04: the GET routes ignore any body, even one that is not JSON,
    // not declared as JSON and over the 256 KiB limit.
    let get = |path: String| {
        req("GET", &path)
            .admin()
            .header("content-type", "text/plain")
            .raw(vec![b'{'; 300_000])
    };
    get(format!("{RELEASES}/active"))
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND"); // nothing active yet
    let r = req("POST", &format!("{RELEASES}/1.0/activate"))
        .admin()
        .header("content-type", "image/png")
        .raw(vec![0xffu8; 300_000])
        .send(&app)
        .await;
    assert_eq!(r.assert_ok()["status"], "ACTIVE");
    let list = get(RELEASES.to_string()).send(&app).await;
    let list = list.assert_ok().as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["releaseVersion"], "1.0");
    let one = get(format!("{RELEASES}/1.0")).send(&app).await;
    assert_eq!(one.assert_ok()["status"], "ACTIVE");
    let active = get(format!("{RELEASES}/active")).send(&app).await;
    assert_eq!(active.assert_ok()["releaseVersion"], "1.0");
    let log = get(format!("{RELEASES}/activations")).send(&app).await;
    let events = log.assert_ok()["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["releaseVersion"], "1.0");
}

#[tokio::test]
async fn register_refuses_malformed_json_other_media_types_and_wrong_tokens_storing_nothing() {
    let app = release_app(Options::default());
    let demo = write_release(&app.root, &spec("1.0")).unwrap();
    let path = demo.descriptor_path.to_str().unwrap().to_string();
    let valid = serde_json::to_vec(&json!({"releaseDescriptorPath": path})).unwrap();
    let url = format!("{RELEASES}/register");
    // Malformed JSON, and a member given twice (both copies valid).
    let duplicate = format!(
        r#"{{"releaseDescriptorPath":{p},"releaseDescriptorPath":{p}}}"#,
        p = json!(path)
    );
    // Those two, a valid body declared as something else than JSON, and a
    // valid body with no, a wrong, or the control-plane token.
    let refused = assert_register_refusals(
        &app,
        &url,
        Some("application/json"),
        &valid,
        duplicate.into_bytes(),
        || assert_nothing_registered(&app),
    )
    .await;
    for r in refused {
        assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"tpf\"");
    }
    // The same body with the admin token registers: the refusals above came
    // from the request, not from the descriptor.
    let r = req("POST", &url)
        .admin()
        .header("content-type", "application/json")
        .raw(valid)
        .send(&app)
        .await;
    assert_eq!(r.assert_ok()["status"], "REGISTERED");
    assert_eq!(stored_objects(&app).len(), 1);
}

#[tokio::test]
async fn rac12_messages_never_quote_file_contents() {
    let app = release_app(Options::default());
    let p = app.root.join("secret.json");
    std::fs::write(&p, "{\"schemaVersion\": \"TOP-SECRET-MARKER\"}").unwrap();
    let r = register_path(&app, &p).await;
    r.assert_error(400, "INVALID_DESCRIPTOR");
    assert!(!r.body.to_string().contains("TOP-SECRET-MARKER"));
    std::fs::write(&p, "TOP-SECRET-MARKER not json").unwrap();
    let r = register_path(&app, &p).await;
    r.assert_error(400, "INVALID_DESCRIPTOR");
    assert!(!r.body.to_string().contains("TOP-SECRET-MARKER"));
}

#[tokio::test]
async fn rac05_another_tenants_releases_are_invisible() {
    let app = release_app(Options::default());
    let demo = write_release(&app.root, &spec("1.0")).unwrap();
    register_path(&app, &demo.descriptor_path).await.assert_ok();
    activate(&app, "1.0").await.assert_ok();
    let other = "/tpf/admin/tenants/globex/pipelines/restaurant-approval/releases";
    req("GET", &format!("{other}/1.0"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
    req("GET", &format!("{other}/active"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
    req("POST", &format!("{other}/1.0/activate"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
    assert_eq!(
        req("GET", other).admin().send(&app).await.assert_ok(),
        &json!([])
    );
    let acts = req("GET", &format!("{other}/activations"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(acts.assert_ok()["events"], json!([]));
}

#[tokio::test]
async fn art03_corrupt_existing_copy_is_409() {
    let app = release_app(Options::default());
    let demo = write_release(&app.root, &spec("1.0")).unwrap();
    let hex = demo.artifact_digest.strip_prefix("sha256:").unwrap();
    std::fs::create_dir_all(store_dir(&app)).unwrap();
    std::fs::write(store_dir(&app).join(format!("{hex}.jar")), b"corrupt").unwrap();
    register_path(&app, &demo.descriptor_path)
        .await
        .assert_error(409, "RELEASE_ARTIFACT_UNVERIFIED");
    req("GET", &format!("{RELEASES}/1.0"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
}

async fn registered(app: &TestApp, versions: &[&str]) -> Vec<demo_release::DemoRelease> {
    let mut out = Vec::new();
    for v in versions {
        // Distinct artifacts per version: the contract hash differs.
        let d = write_release(&app.root, &spec(v)).unwrap();
        let mut c = contract(&DemoSpec::default());
        c["contractHash"] = json!(format!("hash-{v}"));
        let bytes = artifact_zip(&c);
        std::fs::write(&d.artifact_path, &bytes).unwrap();
        let mut desc: Value =
            serde_json::from_slice(&std::fs::read(&d.descriptor_path).unwrap()).unwrap();
        desc["artifacts"][0]["digest"] = json!(digest(&bytes));
        std::fs::write(&d.descriptor_path, serde_json::to_vec(&desc).unwrap()).unwrap();
        register_path(app, &d.descriptor_path).await.assert_ok();
        out.push(d);
    }
    out
}

fn stored_path(app: &TestApp, version: &str) -> PathBuf {
    let dir = app.root.join(version);
    let desc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("pipeline-release.json")).unwrap()).unwrap();
    let hex = desc["artifacts"][0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    store_dir(app).join(format!("{hex}.jar"))
}

fn tamper(path: &Path, how: &str) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
    match how {
        "delete" => std::fs::remove_file(path).unwrap(),
        "truncate" => {
            let b = std::fs::read(path).unwrap();
            std::fs::write(path, &b[..b.len() - 1]).unwrap()
        }
        _ => {
            let mut b = std::fs::read(path).unwrap();
            b[0] ^= 0xff;
            std::fs::write(path, b).unwrap()
        }
    }
}

#[tokio::test]
async fn act01_02_activate_lists_and_404s() {
    let app = release_app(Options::default());
    req("GET", &format!("{RELEASES}/active"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
    registered(&app, &["1.0", "2.0"]).await;
    activate(&app, "9.9")
        .await
        .assert_error(404, "RELEASE_NOT_FOUND");
    assert!(
        activations(&app).await.is_empty(),
        "no event for an unknown version"
    );
    app.clock.advance(10);
    let a = activate(&app, "1.0").await;
    assert_eq!(a.assert_ok()["activatedAtEpochMs"], T0 + 10);
    app.clock.advance(10);
    let b = activate(&app, "2.0").await;
    assert_eq!(b.assert_ok()["status"], "ACTIVE");
    let one = req("GET", &format!("{RELEASES}/1.0"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(one.assert_ok()["status"], "REGISTERED");
    assert_eq!(one.body["activatedAtEpochMs"], 0);
    assert_eq!(one.body["updatedAtEpochMs"], T0);
}

#[tokio::test]
async fn act03_04_reactivation_is_a_noop_and_rollback_is_an_event() {
    let app = release_app(Options::default());
    registered(&app, &["1.0", "2.0"]).await;
    activate(&app, "1.0").await.assert_ok();
    app.clock.advance(50);
    let again = activate(&app, "1.0").await;
    assert_eq!(again.assert_ok()["activatedAtEpochMs"], T0);
    assert_eq!(activations(&app).await.len(), 1);
    activate(&app, "2.0").await.assert_ok();
    app.clock.advance(50);
    activate(&app, "1.0").await.assert_ok();
    let events = activations(&app).await;
    assert_eq!(events.len(), 3);
    let last = &events[2];
    assert_eq!(last["type"], "ACTIVATED");
    assert_eq!(last["releaseVersion"], "1.0");
    assert_eq!(last["previousReleaseVersion"], "2.0");
    assert_eq!(events[0]["previousReleaseVersion"], Value::Null);
}

#[tokio::test]
async fn act05_verification_failures_block_activation_of_another_version() {
    for how in ["delete", "truncate", "alter"] {
        let app = release_app(Options::default());
        registered(&app, &["1.0", "2.0"]).await;
        activate(&app, "1.0").await.assert_ok();
        tamper(&stored_path(&app, "2.0"), how);
        let r = activate(&app, "2.0").await;
        r.assert_error(409, "RELEASE_ARTIFACT_UNVERIFIED");
        let want = match how {
            "delete" => "missing or unreadable",
            "truncate" => "size differs",
            _ => "checksum differs",
        };
        assert!(
            r.body["message"].as_str().unwrap().contains(want),
            "{how}: {}",
            r.body
        );
        let active = req("GET", &format!("{RELEASES}/active"))
            .admin()
            .send(&app)
            .await;
        assert_eq!(active.assert_ok()["releaseVersion"], "1.0");
        assert_eq!(activations(&app).await.len(), 1);
    }
}

#[tokio::test]
async fn act05_non_primary_stored_artifacts_are_checked_too() {
    let app = release_app(Options::default());
    let a = write_artifact(&app, "multi", "a.jar", &demo_jar());
    let extra = write_artifact(&app, "multi", "extra.bin", b"non-primary bytes");
    let desc = descriptor_with(
        "multi",
        json!([
            {"artifactId": "main", "kind": "jar", "uri": "a.jar", "digest": a},
            {"artifactId": "extra", "kind": "local-file", "uri": "extra.bin", "digest": extra}
        ]),
    );
    register_path(&app, &write_descriptor(&app, "multi", &desc))
        .await
        .assert_ok();
    let hex = extra.strip_prefix("sha256:").unwrap();
    tamper(&store_dir(&app).join(format!("{hex}.bin")), "alter");
    let r = activate(&app, "multi").await;
    r.assert_error(409, "RELEASE_ARTIFACT_UNVERIFIED");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("extra: checksum differs"));
}

#[tokio::test]
async fn act06_active_release_flagged_unverified_then_reverified() {
    let app = release_app(Options::default());
    registered(&app, &["1.0"]).await;
    activate(&app, "1.0").await.assert_ok();
    let path = stored_path(&app, "1.0");
    let good = std::fs::read(&path).unwrap();
    tamper(&path, "alter");
    activate(&app, "1.0")
        .await
        .assert_error(409, "RELEASE_ARTIFACT_UNVERIFIED");
    activate(&app, "1.0")
        .await
        .assert_error(409, "RELEASE_ARTIFACT_UNVERIFIED");
    let events = activations(&app).await;
    assert_eq!(events.len(), 2, "exactly one ARTIFACT_UNVERIFIED");
    assert_eq!(events[1]["type"], "ARTIFACT_UNVERIFIED");
    assert_eq!(events[1]["artifactVerified"], false);
    assert_eq!(events[1]["previousReleaseVersion"], "1.0");
    assert!(events[1]["detail"]
        .as_str()
        .unwrap()
        .contains("checksum differs"));
    let active = req("GET", &format!("{RELEASES}/active"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(active.assert_ok()["artifactVerified"], false);
    assert_eq!(active.body["status"], "ACTIVE");
    std::fs::write(&path, good).unwrap();
    let r = activate(&app, "1.0").await;
    assert_eq!(r.assert_ok()["artifactVerified"], true);
    let events = activations(&app).await;
    assert_eq!(events[2]["type"], "ARTIFACT_REVERIFIED");
    assert_eq!(
        events[2]["activatedAtEpochMs"],
        events[0]["activatedAtEpochMs"]
    );
}

#[tokio::test]
async fn act07_concurrent_activations_append_consecutive_events() {
    let app = Arc::new(release_app(Options::default()));
    registered(&app, &["1.0", "2.0"]).await;
    let (a, b) = tokio::join!(activate(&app, "1.0"), activate(&app, "2.0"));
    a.assert_ok();
    b.assert_ok();
    let events = activations(&app).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2]);
    let active = req("GET", &format!("{RELEASES}/active"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(
        active.assert_ok()["releaseVersion"],
        events[1]["releaseVersion"]
    );
}

#[tokio::test]
async fn act09_activations_page_oldest_first() {
    let app = release_app(Options::default());
    registered(&app, &["1.0", "2.0"]).await;
    for v in ["1.0", "2.0", "1.0", "2.0", "1.0"] {
        activate(&app, v).await.assert_ok();
    }
    let mut seqs = Vec::new();
    let mut url = format!("{RELEASES}/activations?limit=2");
    loop {
        let page = req("GET", &url).admin().send(&app).await;
        let body = page.assert_ok().clone();
        assert_eq!(body["pipelineId"], "restaurant-approval");
        for e in body["events"].as_array().unwrap() {
            assert_eq!(e.as_object().unwrap().len(), 8, "every member: {e}");
            seqs.push(e["seq"].as_u64().unwrap());
        }
        match body["nextCursor"].as_str() {
            Some(c) => url = format!("{RELEASES}/activations?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    req("GET", &format!("{RELEASES}/activations?cursor=e30"))
        .admin()
        .send(&app)
        .await
        .assert_error(400, "INVALID_CURSOR");
}

#[tokio::test]
async fn releases_list_orders_by_creation_then_version_and_pages() {
    let app = release_app(Options::default());
    for v in ["b", "a", "c"] {
        write_release(&app.root, &spec(v)).unwrap();
    }
    for v in ["b", "a"] {
        register_path(&app, &app.root.join(v).join("pipeline-release.json"))
            .await
            .assert_ok();
    }
    app.clock.advance(1);
    register_path(&app, &app.root.join("c").join("pipeline-release.json"))
        .await
        .assert_ok();
    let page1 = req("GET", &format!("{RELEASES}?limit=2"))
        .admin()
        .send(&app)
        .await;
    let names: Vec<_> = page1
        .assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["releaseVersion"].clone())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    let cursor = page1.headers["x-tpf-next-cursor"]
        .to_str()
        .unwrap()
        .to_string();
    let page2 = req("GET", &format!("{RELEASES}?limit=2&cursor={cursor}"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(
        page2.assert_ok().as_array().unwrap()[0]["releaseVersion"],
        "c"
    );
    assert!(!page2.headers.contains_key("x-tpf-next-cursor"));
    let other_pipeline = "/tpf/admin/tenants/acme/pipelines/other/releases";
    req("GET", &format!("{other_pipeline}?cursor={cursor}"))
        .admin()
        .send(&app)
        .await
        .assert_error(400, "INVALID_CURSOR");
}

/// An artifact store whose verification is down.
struct DownStore;

#[async_trait::async_trait]
impl tpf_core::ports::ArtifactStore for DownStore {
    async fn store(
        &self,
        _: std::fs::File,
        _: &str,
        _: &str,
        _: u64,
    ) -> Result<tpf_core::ports::StoredObject, tpf_core::ports::StoreArtifactError> {
        Err(tpf_core::error::StoreError::Unavailable("down".into()).into())
    }
    fn managed_uri(&self, _: &str, _: &str) -> String {
        String::new()
    }
    async fn verify(
        &self,
        _: &str,
        _: u64,
        _: &str,
    ) -> Result<tpf_core::ports::Verification, tpf_core::error::StoreError> {
        Err(tpf_core::error::StoreError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn act10_store_outage_during_verification_is_503_without_event() {
    let app = release_app(Options::default());
    registered(&app, &["1.0"]).await;
    let down = app.with_release_deps(|d| d.store = Arc::new(DownStore));
    let r = activate(&down, "1.0").await;
    r.assert_error(503, "DEPENDENCY_UNAVAILABLE");
    assert_eq!(r.headers["retry-after"], "5");
    assert!(activations(&down).await.is_empty());
}
