//! Configuration of the worker: what it hosts, where it listens, and how it
//! authenticates the coordinator (`EXECUTION.md` §7.2, §7.9).

use tpf_core::domain::values::parse_duration_ms;

/// Default listen address (`RESTAURANT_WORKER_ADDR`).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8181";
/// Default signature tolerance (`TPF_WORKER_SIGNATURE_TOLERANCE`).
pub const DEFAULT_SIGNATURE_TOLERANCE: &str = "PT2M";
/// Default await deadline (`RESTAURANT_AWAIT_TIMEOUT`).
pub const DEFAULT_AWAIT_TIMEOUT: &str = "PT30M";
/// Default worker id for the registration body (`RESTAURANT_WORKER_ID`).
pub const DEFAULT_WORKER_ID: &str = "kitchen-1";

/// The pipeline release this worker hosts, as reported by its capabilities
/// and checked against every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerIdentity {
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub artifact_id: String,
    pub artifact_digest: String,
}

impl WorkerIdentity {
    /// The identity of the demo release `demo_release::write_release` writes
    /// for `spec`: same artifact id, and the digest of the same artifact bytes.
    pub fn from_spec(spec: &demo_release::DemoSpec) -> Self {
        let bytes = demo_release::artifact_zip(&demo_release::contract(spec));
        WorkerIdentity {
            pipeline_id: spec.pipeline_id.clone(),
            contract_version: spec.contract_version.clone(),
            release_version: spec.release_version.clone(),
            artifact_id: format!("{}-monolith", spec.pipeline_id),
            artifact_digest: demo_release::digest(&bytes),
        }
    }

    /// The default demo release (`restaurant-approval`, `DemoSpec::default()`).
    pub fn demo() -> Self {
        Self::from_spec(&demo_release::DemoSpec::default())
    }
}

/// Where the shared secret comes from. Resolved on every request, so an
/// unresolvable secret answers 503 (§7.9 rule 1) rather than stopping the
/// process.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `TPF_WORKER_SHARED_SECRET`.
    Value(String),
    /// `TPF_WORKER_SHARED_SECRET_REF=env:NAME`: the variable `NAME`.
    Env(String),
    /// Neither variable set.
    Unconfigured,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("Value(<redacted>)"),
            SecretSource::Env(name) => write!(f, "Env({name})"),
            SecretSource::Unconfigured => f.write_str("Unconfigured"),
        }
    }
}

impl SecretSource {
    /// The secret, or `None` when it cannot be resolved (unset, empty).
    pub fn resolve(&self) -> Option<String> {
        let value = match self {
            SecretSource::Value(v) => Some(v.clone()),
            SecretSource::Env(name) => std::env::var(name).ok(),
            SecretSource::Unconfigured => None,
        }?;
        (!value.is_empty()).then_some(value)
    }
}

/// Everything the worker needs; [`crate::router`] serves it.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `host:port` to listen on.
    pub listen: String,
    pub secret: SecretSource,
    /// `TPF_WORKER_SIGNATURE_TOLERANCE` in milliseconds.
    pub signature_tolerance_ms: u64,
    /// `RESTAURANT_AWAIT_TIMEOUT` in milliseconds: deadline of the
    /// restaurant's decision, from the moment the transition suspends.
    pub await_timeout_ms: u64,
    pub identity: WorkerIdentity,
    /// `RESTAURANT_WORKER_ID`, for the registration body only.
    pub worker_id: String,
    /// `RESTAURANT_WORKER_ENDPOINT`: the endpoint to register when it is not
    /// `http://<listen>` (e.g. listening on 0.0.0.0 behind a host name).
    pub endpoint: Option<String>,
}

impl WorkerConfig {
    /// A configuration for the default demo release with a literal secret
    /// and the default tolerance and await timeout (tests, embedding).
    pub fn new(secret: SecretSource) -> Self {
        WorkerConfig {
            listen: DEFAULT_ADDR.to_string(),
            secret,
            signature_tolerance_ms: parse_duration_ms(DEFAULT_SIGNATURE_TOLERANCE)
                .unwrap_or(120_000),
            await_timeout_ms: parse_duration_ms(DEFAULT_AWAIT_TIMEOUT).unwrap_or(1_800_000),
            identity: WorkerIdentity::demo(),
            worker_id: DEFAULT_WORKER_ID.to_string(),
            endpoint: None,
        }
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a variable's value, or
    /// `None` when unset). Err names the offending variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let secret = match (
            get("TPF_WORKER_SHARED_SECRET"),
            get("TPF_WORKER_SHARED_SECRET_REF"),
        ) {
            (Some(_), Some(_)) => {
                return Err(
                    "set only one of TPF_WORKER_SHARED_SECRET and TPF_WORKER_SHARED_SECRET_REF"
                        .into(),
                )
            }
            (Some(v), None) => SecretSource::Value(v),
            (None, Some(reference)) => {
                let reference = reference.trim();
                match reference.strip_prefix("env:") {
                    Some(name) if !name.is_empty() => SecretSource::Env(name.to_string()),
                    _ => {
                        return Err(
                            "TPF_WORKER_SHARED_SECRET_REF must be env:NAME (the only reference this worker resolves)"
                                .into(),
                        )
                    }
                }
            }
            (None, None) => SecretSource::Unconfigured,
        };

        let duration = |name: &str, default: &str| -> Result<u64, String> {
            let text = get(name).unwrap_or_else(|| default.to_string());
            parse_duration_ms(text.trim())
                .ok_or_else(|| format!("{name} must be an ISO-8601 duration such as {default}"))
        };
        let signature_tolerance_ms = duration(
            "TPF_WORKER_SIGNATURE_TOLERANCE",
            DEFAULT_SIGNATURE_TOLERANCE,
        )?;
        let await_timeout_ms = duration("RESTAURANT_AWAIT_TIMEOUT", DEFAULT_AWAIT_TIMEOUT)?;
        if await_timeout_ms == 0 {
            return Err("RESTAURANT_AWAIT_TIMEOUT must be longer than zero".into());
        }

        let mut spec = demo_release::DemoSpec::default();
        if let Some(v) = get("RESTAURANT_RELEASE_VERSION") {
            spec.release_version = v.trim().to_string();
        }
        if let Some(v) = get("RESTAURANT_CONTRACT_VERSION") {
            spec.contract_version = v.trim().to_string();
        }

        Ok(WorkerConfig {
            listen: get("RESTAURANT_WORKER_ADDR")
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| DEFAULT_ADDR.to_string()),
            secret,
            signature_tolerance_ms,
            await_timeout_ms,
            identity: WorkerIdentity::from_spec(&spec),
            worker_id: get("RESTAURANT_WORKER_ID")
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| DEFAULT_WORKER_ID.to_string()),
            endpoint: get("RESTAURANT_WORKER_ENDPOINT").map(|v| v.trim().to_string()),
        })
    }

    /// The endpoint to register: `RESTAURANT_WORKER_ENDPOINT`, else
    /// `http://<listen>`.
    pub fn registration_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The body of `POST …/workers/register` (`RELEASES.md` §6.1) for this
    /// worker.
    pub fn registration_body(&self) -> serde_json::Value {
        serde_json::json!({
            "workerId": self.worker_id,
            "contractVersion": self.identity.contract_version,
            "releaseVersion": self.identity.release_version,
            "protocol": "rest",
            "endpoint": self.registration_endpoint(),
            "artifactId": self.identity.artifact_id,
            "artifactDigest": self.identity.artifact_digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let c = WorkerConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8181");
        assert_eq!(c.secret, SecretSource::Unconfigured);
        assert_eq!(c.signature_tolerance_ms, 120_000);
        assert_eq!(c.await_timeout_ms, 1_800_000);
        assert_eq!(c.worker_id, "kitchen-1");
        assert_eq!(c.identity, WorkerIdentity::demo());
        assert_eq!(c.identity.artifact_id, "restaurant-approval-monolith");
        assert_eq!(c.registration_endpoint(), "http://127.0.0.1:8181");
    }

    #[test]
    fn overrides() {
        let c = WorkerConfig::from_lookup(lookup(&[
            ("RESTAURANT_WORKER_ADDR", "0.0.0.0:9000"),
            ("TPF_WORKER_SHARED_SECRET_REF", "env:MY_SECRET"),
            ("TPF_WORKER_SIGNATURE_TOLERANCE", "PT30S"),
            ("RESTAURANT_AWAIT_TIMEOUT", "PT1H"),
            ("RESTAURANT_RELEASE_VERSION", "2025.02.0"),
            ("RESTAURANT_CONTRACT_VERSION", "v2"),
            ("RESTAURANT_WORKER_ID", "kitchen-9"),
            ("RESTAURANT_WORKER_ENDPOINT", "http://kitchen-9:9000"),
        ]))
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.secret, SecretSource::Env("MY_SECRET".into()));
        assert_eq!(c.signature_tolerance_ms, 30_000);
        assert_eq!(c.await_timeout_ms, 3_600_000);
        assert_eq!(c.identity.release_version, "2025.02.0");
        assert_eq!(c.identity.contract_version, "v2");
        let spec = demo_release::DemoSpec {
            contract_version: "v2".into(),
            release_version: "2025.02.0".into(),
            ..Default::default()
        };
        assert_eq!(c.identity, WorkerIdentity::from_spec(&spec));
        let body = c.registration_body();
        assert_eq!(body["workerId"], "kitchen-9");
        assert_eq!(body["endpoint"], "http://kitchen-9:9000");
        assert_eq!(body["protocol"], "rest");
    }

    #[test]
    fn rejects_bad_settings() {
        for vars in [
            vec![
                ("TPF_WORKER_SHARED_SECRET", "a"),
                ("TPF_WORKER_SHARED_SECRET_REF", "env:B"),
            ],
            vec![("TPF_WORKER_SHARED_SECRET_REF", "ssm:/x")],
            vec![("TPF_WORKER_SHARED_SECRET_REF", "env:")],
            vec![("TPF_WORKER_SIGNATURE_TOLERANCE", "2 minutes")],
            vec![("RESTAURANT_AWAIT_TIMEOUT", "PT0S")],
        ] {
            assert!(
                WorkerConfig::from_lookup(lookup(&vars)).is_err(),
                "{vars:?}"
            );
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = format!("{:?}", SecretSource::Value("hunter2".into()));
        assert!(!s.contains("hunter2"));
    }
}
