//! Builds a demo release of TPF's restaurant-approval pipeline on disk: a
//! zip artifact carrying `META-INF/pipeline/pipeline-contract.json` and the
//! `pipeline-release.json` descriptor that pins it by SHA-256. Used by the
//! README walk-through and by the tests, so nothing is hand-made.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to write.
#[derive(Debug, Clone)]
pub struct DemoSpec {
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
}

impl Default for DemoSpec {
    fn default() -> Self {
        DemoSpec {
            pipeline_id: "restaurant-approval".into(),
            contract_version: "sha256:4be1f0c27a9d".into(),
            release_version: "2025.01.0".into(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct DemoRelease {
    /// Absolute path of `pipeline-release.json`.
    pub descriptor_path: PathBuf,
    /// Absolute path of the zip artifact.
    pub artifact_path: PathBuf,
    /// `sha256:<hex>` of the artifact.
    pub artifact_digest: String,
    pub artifact_id: String,
}

/// The pipeline contract of the demo pipeline (`RELEASES.md` §2.2).
pub fn contract(spec: &DemoSpec) -> Value {
    json!({
        "schemaVersion": 2,
        "pipelineId": spec.pipeline_id,
        "contractVersion": spec.contract_version,
        "contractHash": "demo-contract-hash",
        "platform": "COMPUTE",
        "transport": "REST",
        "module": "monolith-svc",
        "runtimeLayout": "MONOLITH",
        "steps": [
            {"index": 0, "authoredName": "Validate Order Request", "kind": "step", "cardinality": "ONE_TO_ONE",
             "inputTypeId": "org.example.OrderRequest", "outputTypeId": "org.example.ValidatedOrder"},
            {"index": 1, "authoredName": "Create Pending Approval", "kind": "step", "cardinality": "ONE_TO_ONE",
             "inputTypeId": "org.example.ValidatedOrder", "outputTypeId": "org.example.PendingApproval"},
            {"index": 2, "authoredName": "Await Restaurant Decision", "kind": "await", "awaitTransport": "interaction-api",
             "cardinality": "ONE_TO_ONE", "inputTypeId": "org.example.PendingApproval", "outputTypeId": "org.example.RestaurantDecision"},
            {"index": 3, "authoredName": "Finalize Restaurant Decision", "kind": "step", "cardinality": "ONE_TO_ONE",
             "inputTypeId": "org.example.RestaurantDecision", "outputTypeId": "org.example.ApprovalOutcome"}
        ],
        "capabilities": {"localTransitionExecution": true, "transitionWorkerProtocols": ["rest"]}
    })
}

/// Zip bytes holding `contract` as the embedded contract entry.
pub fn artifact_zip(contract: &Value) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("META-INF/MANIFEST.MF", opts)
            .expect("zip entry");
        zip.write_all(b"Manifest-Version: 1.0\r\n")
            .expect("zip write");
        zip.start_file("META-INF/pipeline/pipeline-contract.json", opts)
            .expect("zip entry");
        zip.write_all(contract.to_string().as_bytes())
            .expect("zip write");
        zip.finish().expect("zip finish");
    }
    buf.into_inner()
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes `<dir>/<release>/monolith-svc-runner.jar` and
/// `<dir>/<release>/pipeline-release.json`; `dir` must be absolute.
pub fn write_release(dir: &Path, spec: &DemoSpec) -> std::io::Result<DemoRelease> {
    let release_dir = dir.join(&spec.release_version);
    std::fs::create_dir_all(&release_dir)?;
    let bytes = artifact_zip(&contract(spec));
    let artifact_path = release_dir.join("monolith-svc-runner.jar");
    std::fs::write(&artifact_path, &bytes)?;
    let artifact_id = format!("{}-monolith", spec.pipeline_id);
    let artifact_digest = digest(&bytes);
    let descriptor = json!({
        "schemaVersion": 1,
        "pipelineId": spec.pipeline_id,
        "contractVersion": spec.contract_version,
        "releaseVersion": spec.release_version,
        "artifacts": [{
            "artifactId": artifact_id,
            "kind": "jar",
            "uri": "monolith-svc-runner.jar",
            "digest": artifact_digest,
            "stepIds": ["Validate Order Request", "Create Pending Approval", "Await Restaurant Decision", "Finalize Restaurant Decision"],
            "capabilities": ["rest-transition-worker"]
        }]
    });
    let descriptor_path = release_dir.join("pipeline-release.json");
    std::fs::write(&descriptor_path, serde_json::to_vec_pretty(&descriptor)?)?;
    Ok(DemoRelease {
        descriptor_path,
        artifact_path,
        artifact_digest,
        artifact_id,
    })
}
