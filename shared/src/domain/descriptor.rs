//! `pipeline-release.json` (`RELEASES.md` §2.1): validation, normalisation
//! and the content identity hash (§2.3).

use serde_json::{Map, Value};

use sha2::{Digest, Sha256};

use crate::domain::ids::{check_id, RESERVED_RELEASE_VERSIONS};
use crate::domain::location::{find_root, resolve_artifact_location, Location, Root};
use crate::domain::values::{has_control, is_digest, is_text};
use crate::error::{ApiError, ErrorCode};

/// Artifact kinds of §2.1, matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    Jar,
    LambdaZip,
    LocalFile,
    NativeBinary,
    PipelineContract,
    ContainerImage,
    LambdaImage,
    ExternalEndpoint,
}

impl ArtifactKind {
    /// Local kinds are read, hashed and stored at registration.
    pub fn is_local(self) -> bool {
        !matches!(
            self,
            ArtifactKind::ContainerImage
                | ArtifactKind::LambdaImage
                | ArtifactKind::ExternalEndpoint
        )
    }

    /// Every kind, in the order of the §2.1 table.
    pub const ALL: [ArtifactKind; 8] = [
        ArtifactKind::Jar,
        ArtifactKind::LambdaZip,
        ArtifactKind::LocalFile,
        ArtifactKind::NativeBinary,
        ArtifactKind::PipelineContract,
        ArtifactKind::ContainerImage,
        ArtifactKind::LambdaImage,
        ArtifactKind::ExternalEndpoint,
    ];

    /// The kind's name in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Jar => "jar",
            ArtifactKind::LambdaZip => "lambda-zip",
            ArtifactKind::LocalFile => "local-file",
            ArtifactKind::NativeBinary => "native-binary",
            ArtifactKind::PipelineContract => "pipeline-contract",
            ArtifactKind::ContainerImage => "container-image",
            ArtifactKind::LambdaImage => "lambda-image",
            ArtifactKind::ExternalEndpoint => "external-endpoint",
        }
    }

    /// Matches a (trimmed) kind case-insensitively.
    pub fn parse(written: &str) -> Option<ArtifactKind> {
        ArtifactKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(written))
    }
}

/// One validated artifact declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactDecl {
    pub artifact_id: String,
    pub kind: ArtifactKind,
    /// The kind as written (trimmed), which is what is stored.
    pub kind_written: String,
    /// Trimmed `uri` as written.
    pub uri: String,
    pub digest: String,
    /// For local kinds: the resolved location (checked beneath a root).
    pub location: Option<Location>,
}

/// A descriptor that passed §2.1.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedDescriptor {
    /// Normalised descriptor (stored and returned as `descriptor`).
    pub normalised: Map<String, Value>,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub artifacts: Vec<ArtifactDecl>,
    /// §2.3: lowercase hex SHA-256 of the JCS text of the identity view.
    pub content_hash: String,
}

/// Most artifacts a descriptor may declare.
pub const MAX_ARTIFACTS: usize = 64;

/// Validates and normalises a descriptor object (already strict-parsed and
/// I-JSON-checked). `path_pipeline_id` is the route's pipeline; `base` the
/// descriptor's own location (`None` inline); `roots` the registration roots.
pub fn validate(
    raw: &Map<String, Value>,
    path_pipeline_id: &str,
    base: Option<&Location>,
    roots: &[Root],
) -> Result<ValidatedDescriptor, ApiError> {
    // Top level, in table order; `null` members count as absent.
    let mut normalised: Map<String, Value> = raw
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    match present(raw, "schemaVersion") {
        None => return Err(required("schemaVersion")),
        Some(v) if integer(v) == Some(1) => {}
        Some(_) => return Err(invalid("schemaVersion must be 1")),
    }

    let pipeline_id = id_member(raw, "pipelineId")?;
    if pipeline_id != path_pipeline_id {
        return Err(invalid("pipelineId must equal the pipelineId of the path"));
    }
    let contract_version = id_member(raw, "contractVersion")?;
    let release_version = id_member(raw, "releaseVersion")?;
    if RESERVED_RELEASE_VERSIONS.contains(&release_version.as_str()) {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            format!(
                "releaseVersion must not be a reserved value ({})",
                RESERVED_RELEASE_VERSIONS.join(", ")
            ),
        ));
    }
    normalised.insert("pipelineId".into(), Value::String(pipeline_id.clone()));
    normalised.insert(
        "contractVersion".into(),
        Value::String(contract_version.clone()),
    );
    normalised.insert(
        "releaseVersion".into(),
        Value::String(release_version.clone()),
    );

    let items = match present(raw, "artifacts") {
        None => return Err(required("artifacts")),
        Some(Value::Array(items)) if (1..=MAX_ARTIFACTS).contains(&items.len()) => items,
        Some(_) => {
            return Err(invalid(format!(
                "artifacts must be an array of 1 to {MAX_ARTIFACTS} artifact objects"
            )))
        }
    };

    let mut artifacts: Vec<ArtifactDecl> = Vec::with_capacity(items.len());
    let mut normalised_items = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(invalid(format!("artifacts[{i}] must be an object")));
        };
        let (decl, norm) = validate_artifact(i, obj, &artifacts, base, roots)?;
        artifacts.push(decl);
        normalised_items.push(Value::Object(norm));
    }
    normalised.insert("artifacts".into(), Value::Array(normalised_items));

    let content_hash = content_hash(&normalised);
    Ok(ValidatedDescriptor {
        normalised,
        pipeline_id,
        contract_version,
        release_version,
        artifacts,
        content_hash,
    })
}

/// Checks `artifacts[i]` (members in table order) and returns its
/// declaration and normalised object.
fn validate_artifact(
    i: usize,
    obj: &Map<String, Value>,
    earlier: &[ArtifactDecl],
    base: Option<&Location>,
    roots: &[Root],
) -> Result<(ArtifactDecl, Map<String, Value>), ApiError> {
    let path = |member: &str| format!("artifacts[{i}].{member}");
    let mut norm: Map<String, Value> = obj
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    let artifact_id = trimmed_string(obj, &path("artifactId"))?;
    if !is_text(&artifact_id, 256) {
        return Err(invalid(format!(
            "{} must be 1-256 characters without control characters",
            path("artifactId")
        )));
    }
    if let Some(j) = earlier.iter().position(|a| a.artifact_id == artifact_id) {
        return Err(invalid(format!(
            "{} duplicates artifacts[{j}].artifactId; artifact ids must be unique",
            path("artifactId")
        )));
    }

    let kind_written = trimmed_string(obj, &path("kind"))?;
    let Some(kind) = ArtifactKind::parse(&kind_written) else {
        let names: Vec<&str> = ArtifactKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(invalid(format!(
            "{} must be one of {}",
            path("kind"),
            names.join(", ")
        )));
    };

    let uri = trimmed_string(obj, &path("uri"))?;
    if !is_text(&uri, 2048) {
        return Err(invalid(format!(
            "{} must be 1-2048 characters without control characters",
            path("uri")
        )));
    }
    let location = match kind {
        ArtifactKind::ContainerImage | ArtifactKind::LambdaImage => {
            if !is_oci_reference(&uri) {
                return Err(invalid(format!(
                    "{} must be an OCI reference ending in @sha256: followed by 64 lowercase hex digits",
                    path("uri")
                )));
            }
            None
        }
        ArtifactKind::ExternalEndpoint => {
            if !is_http_url(&uri) {
                return Err(invalid(format!(
                    "{} must be an absolute http or https URL with a host",
                    path("uri")
                )));
            }
            None
        }
        _ => {
            let location = resolve_artifact_location(&uri, base)?;
            find_root(&location, &uri, roots)?;
            Some(location)
        }
    };

    let digest = trimmed_string(obj, &path("digest"))?;
    if !is_digest(&digest) {
        return Err(invalid(format!(
            "{} must be sha256: followed by 64 lowercase hex digits",
            path("digest")
        )));
    }

    for member in ["stepIds", "capabilities"] {
        match present(obj, member) {
            None => {
                norm.insert(member.into(), Value::Array(Vec::new()));
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => {
                return Err(invalid(format!(
                    "{} must be an array of strings",
                    path(member)
                )))
            }
        }
    }

    norm.insert("artifactId".into(), Value::String(artifact_id.clone()));
    norm.insert("kind".into(), Value::String(kind_written.clone()));
    norm.insert("uri".into(), Value::String(uri.clone()));
    norm.insert("digest".into(), Value::String(digest.clone()));
    let decl = ArtifactDecl {
        artifact_id,
        kind,
        kind_written,
        uri,
        digest,
        location,
    };
    Ok((decl, norm))
}

/// §2.3: identity view (kinds lower-cased, local `uri`s removed), JCS, SHA-256.
pub fn content_hash(normalised: &Map<String, Value>) -> String {
    let jcs = serde_json_canonicalizer::to_vec(&identity_view(normalised))
        .expect("a JSON value without non-finite numbers always canonicalises");
    hex::encode(Sha256::digest(&jcs))
}

/// The identity view of §2.3: each `kind` lower-cased, local `uri`s removed.
fn identity_view(normalised: &Map<String, Value>) -> Value {
    let mut view = normalised.clone();
    if let Some(Value::Array(items)) = view.get_mut("artifacts") {
        for item in items {
            let Value::Object(obj) = item else { continue };
            let Some(Value::String(kind)) = obj.get_mut("kind") else {
                continue;
            };
            *kind = kind.to_lowercase();
            if ArtifactKind::parse(kind).is_some_and(ArtifactKind::is_local) {
                obj.remove("uri");
            }
        }
    }
    Value::Object(view)
}

/// A member's value, `null` counting as absent.
fn present<'a>(obj: &'a Map<String, Value>, member: &str) -> Option<&'a Value> {
    obj.get(member).filter(|v| !v.is_null())
}

/// A JSON integer (no fraction, no exponent) as i128, else None.
fn integer(v: &Value) -> Option<i128> {
    let Value::Number(n) = v else { return None };
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidDescriptor, message)
}

fn required(path: &str) -> ApiError {
    invalid(format!("{path} is required"))
}

/// A required string member, trimmed. `path` names it in messages; its
/// last `.`-separated part is the member name.
fn trimmed_string(obj: &Map<String, Value>, path: &str) -> Result<String, ApiError> {
    let member = path.rsplit('.').next().unwrap_or(path);
    match present(obj, member) {
        None => Err(required(path)),
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        Some(_) => Err(invalid(format!("{path} must be a string"))),
    }
}

/// A required top-level id member: trimmed, then the id rule (`INVALID_ID`).
fn id_member(obj: &Map<String, Value>, member: &str) -> Result<String, ApiError> {
    let value = trimmed_string(obj, member)?;
    check_id(member, &value)?;
    Ok(value)
}

/// `[oci://]<repository>@sha256:<64 lower hex>`, no white space or controls.
fn is_oci_reference(uri: &str) -> bool {
    let reference = uri.strip_prefix("oci://").unwrap_or(uri);
    if reference.chars().any(char::is_whitespace) || has_control(reference) {
        return false;
    }
    match reference.split_once('@') {
        Some((repository, digest)) => {
            !repository.is_empty()
                && !repository.contains("://")
                && !repository.starts_with('/')
                && is_digest(digest)
        }
        None => false,
    }
}

/// An absolute `http`/`https` URL with a non-empty host.
fn is_http_url(uri: &str) -> bool {
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return false;
    }
    match url::Url::parse(uri) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JAR_DIGEST: &str =
        "sha256:da5383930e7cb561d98a45f389562f7430ff5b1a0e07d8793e6217eec0f8e8d7";
    const IMAGE_DIGEST: &str =
        "sha256:549a51c3353052b22df7c383d80b3098f738027359d09af2f638e708d7701b77";
    const EXAMPLE_JCS: &str = r#"{"artifacts":[{"artifactId":"restaurant-approval-monolith","capabilities":["rest-transition-worker"],"digest":"sha256:da5383930e7cb561d98a45f389562f7430ff5b1a0e07d8793e6217eec0f8e8d7","kind":"jar","stepIds":["Validate Order Request","Create Pending Approval","Await Restaurant Decision","Finalize Restaurant Decision"]},{"artifactId":"restaurant-approval-image","capabilities":[],"digest":"sha256:549a51c3353052b22df7c383d80b3098f738027359d09af2f638e708d7701b77","kind":"container-image","stepIds":[],"uri":"oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/restaurant-approval@sha256:549a51c3353052b22df7c383d80b3098f738027359d09af2f638e708d7701b77"}],"contractVersion":"sha256:4be1f0c27a9d","pipelineId":"restaurant-approval","releaseVersion":"2025.01.0","schemaVersion":1}"#;
    const EXAMPLE_HASH: &str = "33b83cf07161fbaa065e1708808d3463cb16df1ac8e19a8dd17f86dcec9f8dba";

    fn roots() -> Vec<Root> {
        vec![Root::Local("/srv/releases".into())]
    }

    fn base() -> Location {
        Location::Local("/srv/releases/a/pipeline-release.json".into())
    }

    /// The descriptor of the §2.3 example, as the build writes it.
    fn example() -> Value {
        json!({
            "schemaVersion": 1,
            "pipelineId": "restaurant-approval",
            "contractVersion": "sha256:4be1f0c27a9d",
            "releaseVersion": "2025.01.0",
            "artifacts": [
                {
                    "artifactId": "restaurant-approval-monolith",
                    "kind": "jar",
                    "uri": "target/monolith-svc-runner.jar",
                    "digest": JAR_DIGEST,
                    "stepIds": [
                        "Validate Order Request",
                        "Create Pending Approval",
                        "Await Restaurant Decision",
                        "Finalize Restaurant Decision"
                    ],
                    "capabilities": ["rest-transition-worker"]
                },
                {
                    "artifactId": "restaurant-approval-image",
                    "kind": "container-image",
                    "uri": format!("oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/restaurant-approval@{IMAGE_DIGEST}"),
                    "digest": IMAGE_DIGEST
                }
            ]
        })
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn check(v: Value) -> Result<ValidatedDescriptor, ApiError> {
        validate(&obj(v), "restaurant-approval", Some(&base()), &roots())
    }

    fn check_inline(v: Value) -> Result<ValidatedDescriptor, ApiError> {
        validate(&obj(v), "restaurant-approval", None, &roots())
    }

    fn fails(v: Value, code: ErrorCode) -> String {
        let e = check(v).expect_err("descriptor must be refused");
        assert_eq!(e.code, code, "{}", e.message);
        e.message
    }

    fn with(mut v: Value, f: impl FnOnce(&mut Value)) -> Value {
        f(&mut v);
        v
    }

    #[test]
    fn reg07_example_hashes_as_in_the_spec() {
        // The normalised descriptor: the jar keeps its uri, the image got its empty arrays.
        let mut normalised = obj(example());
        let image = &mut normalised.get_mut("artifacts").unwrap()[1];
        image["stepIds"] = json!([]);
        image["capabilities"] = json!([]);
        let jcs = serde_json_canonicalizer::to_string(&identity_view(&normalised)).unwrap();
        assert_eq!(jcs, EXAMPLE_JCS);
        assert_eq!(content_hash(&normalised), EXAMPLE_HASH);
        assert_eq!(
            normalised["artifacts"][0]["uri"],
            "target/monolith-svc-runner.jar"
        );
    }

    #[test]
    fn reg07_example_validates_to_the_same_hash() {
        let d = check(example()).unwrap();
        assert_eq!(d.content_hash, EXAMPLE_HASH);
        assert_eq!(d.pipeline_id, "restaurant-approval");
        assert_eq!(d.contract_version, "sha256:4be1f0c27a9d");
        assert_eq!(d.release_version, "2025.01.0");
        assert_eq!(d.artifacts.len(), 2);
        let jar = &d.artifacts[0];
        assert_eq!(jar.kind, ArtifactKind::Jar);
        assert_eq!(jar.uri, "target/monolith-svc-runner.jar");
        assert_eq!(
            jar.location,
            Some(Location::Local(
                "/srv/releases/a/target/monolith-svc-runner.jar".into()
            ))
        );
        assert_eq!(d.artifacts[1].kind, ArtifactKind::ContainerImage);
        assert_eq!(d.artifacts[1].location, None);
        assert_eq!(
            d.normalised["artifacts"][0]["uri"],
            "target/monolith-svc-runner.jar"
        );
        assert_eq!(d.normalised["artifacts"][1]["stepIds"], json!([]));
        assert_eq!(d.normalised["artifacts"][1]["capabilities"], json!([]));
    }

    #[test]
    fn normalisation_trims_drops_nulls_defaults_arrays_and_keeps_unlisted_members() {
        let v = with(example(), |v| {
            v["pipelineId"] = json!("  restaurant-approval ");
            v["contractVersion"] = json!(" sha256:4be1f0c27a9d");
            v["releaseVersion"] = json!("2025.01.0 \t");
            v["scope"] = json!({"team": "payments", "x": null});
            v["notes"] = Value::Null;
            let a = &mut v["artifacts"][0];
            a["artifactId"] = json!("  restaurant-approval-monolith  ");
            a["kind"] = json!(" JAR ");
            a["uri"] = json!(" target/monolith-svc-runner.jar ");
            a["digest"] = json!(format!(" {JAR_DIGEST} "));
            a["runtime"] = json!("java21");
            a["extra"] = Value::Null;
            v["artifacts"][1]["stepIds"] = Value::Null;
        });
        let d = check(v).unwrap();
        let n = &d.normalised;
        assert_eq!(n["pipelineId"], "restaurant-approval");
        assert_eq!(n["contractVersion"], "sha256:4be1f0c27a9d");
        assert_eq!(n["releaseVersion"], "2025.01.0");
        assert_eq!(n["scope"], json!({"team": "payments", "x": null}));
        assert!(!n.contains_key("notes"));
        let a = &n["artifacts"][0];
        assert_eq!(a["artifactId"], "restaurant-approval-monolith");
        assert_eq!(a["kind"], "JAR");
        assert_eq!(d.artifacts[0].kind_written, "JAR");
        assert_eq!(a["uri"], "target/monolith-svc-runner.jar");
        assert_eq!(a["digest"], JAR_DIGEST);
        assert_eq!(a["runtime"], "java21");
        assert!(!a.as_object().unwrap().contains_key("extra"));
        assert_eq!(n["artifacts"][1]["stepIds"], json!([]));
        // Unlisted members are hashed; case of kind and local uri are not.
        assert_ne!(d.content_hash, EXAMPLE_HASH);
    }

    #[test]
    fn identity_ignores_kind_case_and_local_uri_but_not_remote_uri() {
        let upper = with(example(), |v| {
            v["artifacts"][0]["kind"] = json!("Jar");
            v["artifacts"][0]["uri"] = json!("elsewhere/runner.jar");
        });
        assert_eq!(check(upper).unwrap().content_hash, EXAMPLE_HASH);
        let other_image = with(example(), |v| {
            v["artifacts"][1]["uri"] = json!(format!("registry.example/other@{IMAGE_DIGEST}"));
        });
        assert_ne!(check(other_image).unwrap().content_hash, EXAMPLE_HASH);
    }

    #[test]
    fn reg12_schema_version_must_be_integer_one() {
        for sv in [json!(2), json!(1.0), json!("1"), json!(0)] {
            let m = fails(
                with(example(), |v| v["schemaVersion"] = sv),
                ErrorCode::InvalidDescriptor,
            );
            assert_eq!(m, "schemaVersion must be 1");
        }
        let parsed = crate::domain::strict_json::parse_object(br#"{"schemaVersion":1e0}"#).unwrap();
        let e = validate(&parsed, "p", None, &[]).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::InvalidDescriptor, "schemaVersion must be 1")
        );
        let m = fails(
            with(example(), |v| v["schemaVersion"] = Value::Null),
            ErrorCode::InvalidDescriptor,
        );
        assert_eq!(m, "schemaVersion is required");
    }

    #[test]
    fn reg12_pipeline_must_match_the_path() {
        let e = validate(&obj(example()), "other-pipeline", Some(&base()), &roots()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidDescriptor);
        assert!(e.message.contains("pipelineId"), "{}", e.message);
    }

    #[test]
    fn reg12_artifact_count_is_one_to_64() {
        let m = fails(
            with(example(), |v| v["artifacts"] = json!([])),
            ErrorCode::InvalidDescriptor,
        );
        assert!(m.starts_with("artifacts "), "{m}");
        let many: Vec<Value> = (0..65)
            .map(|i| {
                json!({"artifactId": format!("img-{i}"), "kind": "lambda-image",
                       "uri": format!("repo/img@{IMAGE_DIGEST}"), "digest": IMAGE_DIGEST})
            })
            .collect();
        fails(
            with(example(), |v| v["artifacts"] = Value::Array(many.clone())),
            ErrorCode::InvalidDescriptor,
        );
        let sixty_four = Value::Array(many[..64].to_vec());
        assert!(check(with(example(), |v| v["artifacts"] = sixty_four)).is_ok());
        fails(
            with(example(), |v| v["artifacts"] = json!({})),
            ErrorCode::InvalidDescriptor,
        );
        fails(
            with(example(), |v| v["artifacts"] = json!([1])),
            ErrorCode::InvalidDescriptor,
        );
    }

    #[test]
    fn reg12_duplicate_artifact_id_unknown_kind_and_bare_oci_uri() {
        let m = fails(
            with(example(), |v| {
                v["artifacts"][1]["artifactId"] = json!(" restaurant-approval-monolith ")
            }),
            ErrorCode::InvalidDescriptor,
        );
        assert!(m.starts_with("artifacts[1].artifactId"), "{m}");
        let m = fails(
            with(example(), |v| v["artifacts"][1]["kind"] = json!("docker")),
            ErrorCode::InvalidDescriptor,
        );
        assert!(m.starts_with("artifacts[1].kind"), "{m}");
        for uri in [
            "oci://registry.example/restaurant-approval:1.0",
            "registry.example/restaurant-approval",
            "oci://@sha256:549a51c3353052b22df7c383d80b3098f738027359d09af2f638e708d7701b77",
            "repo@sha256:549A51C3353052B22DF7C383D80B3098F738027359D09AF2F638E708D7701B77",
            "re po@sha256:549a51c3353052b22df7c383d80b3098f738027359d09af2f638e708d7701b77",
        ] {
            let m = fails(
                with(example(), |v| v["artifacts"][1]["uri"] = json!(uri)),
                ErrorCode::InvalidDescriptor,
            );
            assert!(m.starts_with("artifacts[1].uri"), "{m}");
        }
    }

    #[test]
    fn oci_references_and_endpoints_accepted() {
        for uri in [
            format!("oci://registry.example:5000/team/app@{IMAGE_DIGEST}"),
            format!("registry.example/app:1.0@{IMAGE_DIGEST}"),
            format!("app@{IMAGE_DIGEST}"),
        ] {
            assert!(check(with(example(), |v| v["artifacts"][1]["uri"] = json!(uri))).is_ok());
        }
        let endpoint = |uri: &str| {
            with(example(), |v| {
                v["artifacts"][1] = json!({"artifactId": "ep", "kind": "External-Endpoint",
                                           "uri": uri, "digest": IMAGE_DIGEST});
            })
        };
        for ok in [
            "https://worker.example/tpf",
            "http://10.0.0.1:8080",
            "HTTPS://Worker.Example",
        ] {
            assert!(check(endpoint(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://worker.example",
            "https:worker.example",
            "/relative",
            "https://",
            "worker.example",
        ] {
            let m = fails(endpoint(bad), ErrorCode::InvalidDescriptor);
            assert!(m.starts_with("artifacts[1].uri"), "{bad}: {m}");
        }
    }

    #[test]
    fn ids_follow_the_id_rule_and_reserved_versions_are_refused() {
        for rv in ["active", "activations", "register", " active "] {
            let e = check(with(example(), |v| v["releaseVersion"] = json!(rv))).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidId, "{rv}");
        }
        assert!(check(with(example(), |v| v["releaseVersion"] = json!("Active"))).is_ok());
        for (member, value) in [
            ("releaseVersion", "1..0"),
            ("contractVersion", "sha256/x"),
            ("releaseVersion", "  "),
            ("contractVersion", ".x"),
        ] {
            let e = check(with(example(), |v| v[member] = json!(value))).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidId, "{member}={value}");
            assert!(e.message.contains(member), "{}", e.message);
        }
        let e = validate(
            &obj(with(example(), |v| v["pipelineId"] = json!("bad#id"))),
            "bad#id",
            Some(&base()),
            &roots(),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidId);
        fails(
            with(example(), |v| v["releaseVersion"] = json!(7)),
            ErrorCode::InvalidDescriptor,
        );
        let m = fails(
            with(example(), |v| v["contractVersion"] = Value::Null),
            ErrorCode::InvalidDescriptor,
        );
        assert_eq!(m, "contractVersion is required");
    }

    #[test]
    fn digest_must_be_lower_case_sha256() {
        let upper = format!("sha256:{}", &JAR_DIGEST[7..].to_uppercase());
        let m = fails(
            with(example(), |v| v["artifacts"][1]["digest"] = json!(upper)),
            ErrorCode::InvalidDescriptor,
        );
        assert_eq!(
            m,
            "artifacts[1].digest must be sha256: followed by 64 lowercase hex digits"
        );
        fails(
            with(example(), |v| {
                v["artifacts"][0]["digest"] = json!("sha256:abc")
            }),
            ErrorCode::InvalidDescriptor,
        );
        let m = fails(
            with(example(), |v| {
                v["artifacts"][0].as_object_mut().unwrap().remove("digest");
            }),
            ErrorCode::InvalidDescriptor,
        );
        assert_eq!(m, "artifacts[0].digest is required");
    }

    #[test]
    fn text_members_are_bounded() {
        fails(
            with(example(), |v| {
                v["artifacts"][0]["artifactId"] = json!("   ")
            }),
            ErrorCode::InvalidDescriptor,
        );
        fails(
            with(example(), |v| {
                v["artifacts"][0]["artifactId"] = json!("a".repeat(257))
            }),
            ErrorCode::InvalidDescriptor,
        );
        assert!(check(with(example(), |v| v["artifacts"][0]["artifactId"] =
            json!("é".repeat(256))))
        .is_ok());
        fails(
            with(example(), |v| {
                v["artifacts"][0]["artifactId"] = json!("a\u{7f}b")
            }),
            ErrorCode::InvalidDescriptor,
        );
        let m = fails(
            with(example(), |v| {
                v["artifacts"][0]["uri"] = json!(format!("a/{}", "b".repeat(2047)))
            }),
            ErrorCode::InvalidDescriptor,
        );
        assert!(m.starts_with("artifacts[0].uri"), "{m}");
    }

    #[test]
    fn step_ids_and_capabilities_must_be_arrays_of_strings() {
        for bad in [json!("x"), json!([1]), json!({}), json!([null])] {
            let m = fails(
                with(example(), |v| {
                    v["artifacts"][0]["capabilities"] = bad.clone()
                }),
                ErrorCode::InvalidDescriptor,
            );
            assert_eq!(m, "artifacts[0].capabilities must be an array of strings");
        }
        fails(
            with(example(), |v| v["artifacts"][0]["stepIds"] = json!(true)),
            ErrorCode::InvalidDescriptor,
        );
    }

    #[test]
    fn local_uris_must_resolve_beneath_a_root() {
        let jar_uri = |uri: &str| with(example(), |v| v["artifacts"][0]["uri"] = json!(uri));
        // Relative uri in an inline descriptor: no base.
        let e = check_inline(example()).unwrap_err();
        assert_eq!(e.code, ErrorCode::LocationNotAllowed);
        assert!(
            e.message.contains("\"target/monolith-svc-runner.jar\""),
            "{}",
            e.message
        );
        for bad in [
            "../monolith-svc-runner.jar",
            "target/../../x.jar",
            "file://host/x",
            "https://example.com/x.jar",
            "mvn:org.acme:runner:1.0",
            "/etc/passwd",
            "/srv/releases",
            "s3://bucket/x.jar",
        ] {
            let e = check(jar_uri(bad)).unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::LocationNotAllowed,
                "{bad}: {}",
                e.message
            );
        }
        for ok in [
            "/srv/releases/x.jar",
            "file:///srv/releases/a/x%20y.jar",
            "file:/srv/releases/x.jar",
        ] {
            assert!(check(jar_uri(ok)).is_ok(), "{ok}");
        }
        // An inline descriptor with absolute local uris beneath a root works.
        assert!(check_inline(jar_uri("/srv/releases/x.jar")).is_ok());
        // Without roots every local location is refused.
        let e = validate(
            &obj(jar_uri("/srv/releases/x.jar")),
            "restaurant-approval",
            None,
            &[],
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::LocationNotAllowed);
    }

    #[test]
    fn first_failure_wins_in_table_order() {
        // Top level before artifacts; an earlier artifact before a later one;
        // uri (a location) before digest inside one artifact.
        let v = with(example(), |v| {
            v["releaseVersion"] = json!("register");
            v["artifacts"][0]["digest"] = json!("md5:x");
        });
        assert_eq!(check(v).unwrap_err().code, ErrorCode::InvalidId);
        let v = with(example(), |v| {
            v["artifacts"][0]["uri"] = json!("../x.jar");
            v["artifacts"][0]["digest"] = json!("md5:x");
        });
        assert_eq!(check(v).unwrap_err().code, ErrorCode::LocationNotAllowed);
        let v = with(example(), |v| {
            v["artifacts"][0]["digest"] = json!("md5:x");
            v["artifacts"][1]["kind"] = json!("nope");
        });
        assert!(check(v)
            .unwrap_err()
            .message
            .starts_with("artifacts[0].digest"));
        let v = with(example(), |v| {
            v["schemaVersion"] = json!(3);
            v["pipelineId"] = json!("other");
        });
        assert_eq!(check(v).unwrap_err().message, "schemaVersion must be 1");
        let m = fails(json!({"schemaVersion": 1}), ErrorCode::InvalidDescriptor);
        assert_eq!(m, "pipelineId is required");
    }

    #[test]
    fn kinds_match_case_insensitively() {
        assert_eq!(
            ArtifactKind::parse("Lambda-ZIP"),
            Some(ArtifactKind::LambdaZip)
        );
        assert_eq!(
            ArtifactKind::parse("pipeline-contract"),
            Some(ArtifactKind::PipelineContract)
        );
        assert_eq!(ArtifactKind::parse("jar "), None);
        assert!(ArtifactKind::ALL.iter().filter(|k| k.is_local()).count() == 5);
    }
}
