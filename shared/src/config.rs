//! All configuration, read once at cold start from the `TPF_*` variables
//! (`RELEASES.md` §8, `API.md` §1.1, §1.5–§1.6). An invalid value or
//! combination is a start-up error naming the variable.

use std::path::{Path, PathBuf};

use crate::domain::ids::is_valid_id;
use crate::domain::location::{parse_root, Root};
use crate::domain::values::parse_duration_ms;

/// The logical function a binary serves; decides which surfaces and
/// tokens start-up must check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionName {
    ControlPlane,
    ReleaseAdmin,
    /// SQS event source → `process_work_item` (AWS).
    Dispatcher,
    /// Schedule → `sweep_once` (AWS).
    Sweeper,
    WorkerLifecycle,
}

impl FunctionName {
    /// Name reported by the health route (and used by cargo-lambda and SAM).
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionName::ControlPlane => "control-plane",
            FunctionName::ReleaseAdmin => "release-admin",
            FunctionName::Dispatcher => "dispatcher",
            FunctionName::Sweeper => "sweeper",
            FunctionName::WorkerLifecycle => "worker-lifecycle",
        }
    }
}

/// A secret reference (`API.md` §1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`: another environment variable.
    Env(String),
    /// `ssm:/param/name`: SSM `GetParameter` with decryption.
    Ssm(String),
    /// `secretsmanager:arn-or-name`: Secrets Manager `SecretString`.
    SecretsManager(String),
}

impl SecretRef {
    fn parse(text: &str) -> Result<Self, String> {
        let (scheme, name) = text
            .split_once(':')
            .ok_or_else(|| "must be env:NAME, ssm:NAME or secretsmanager:NAME".to_string())?;
        if name.trim().is_empty() {
            return Err("names an empty reference".into());
        }
        match scheme {
            "env" => Ok(SecretRef::Env(name.to_string())),
            "ssm" => Ok(SecretRef::Ssm(name.to_string())),
            "secretsmanager" => Ok(SecretRef::SecretsManager(name.to_string())),
            other => Err(format!("has unknown reference scheme '{other}'")),
        }
    }
}

/// Where a token or secret comes from: the literal variable or a reference.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Literal(String),
    Reference(SecretRef),
}

impl std::fmt::Debug for SecretSource {
    // Never print a literal secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Literal(_) => f.write_str("Literal(<redacted>)"),
            SecretSource::Reference(r) => write!(f, "Reference({r:?})"),
        }
    }
}

/// Backends a registry may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryProvider {
    Memory,
    File,
    Dynamo,
}

/// Backends of the artifact store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageProvider {
    Local,
    S3,
}

/// `TPF_WORKER_CAPABILITIES_CHECK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapabilitiesCheck {
    Register,
    Off,
}

/// S3 settings of the artifact store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Settings {
    pub bucket: Option<String>,
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint_override: Option<String>,
    pub path_style_access: bool,
}

/// DynamoDB settings of the `dynamo` release and worker registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoSettings {
    pub release_table: String,
    pub worker_table: String,
    pub region: Option<String>,
    pub endpoint_override: Option<String>,
}

/// `TPF_IDEMPOTENCY_POLICY` (`API.md` §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyPolicy {
    OptionalClientKey,
    ClientKeyRequired,
    ServerKeyOnly,
}

/// Backends of the execution and await stores (`TPF_STATE_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateProvider {
    Memory,
    File,
    Dynamo,
}

/// `TPF_DLQ_PROVIDER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterProvider {
    Log,
    File(PathBuf),
    Sqs(String),
}

/// `TPF_STATE_PROVIDER=dynamo`: tables and payload spill (`EXECUTION.md` §10.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoStateConfig {
    pub execution_table: String,
    pub await_table: String,
    pub payload_bucket: String,
    pub payload_prefix: String,
    pub threshold_bytes: usize,
    pub index_shards: u8,
}

/// `TPF_QUEUE_PROVIDER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueProvider {
    /// In-process (local runs).
    Inline,
    /// A standard SQS queue at this URL.
    Sqs(String),
}

/// Client settings of the work queue and the `sqs` dead-letter sink.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqsSettings {
    pub region: Option<String>,
    pub endpoint_override: Option<String>,
}

/// The execution engine's settings (`EXECUTION.md` §1, §10.1).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub lease_ms: i64,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub max_response_bytes: usize,
    pub non_retryable_classes: Vec<String>,
    pub max_retries: u64,
    pub retry_delay_ms: u64,
    pub retry_multiplier: f64,
    pub ttl_days: i64,
    pub sweep_limit: usize,
    pub sweep_interval_ms: u64,
    pub idempotency_policy: IdempotencyPolicy,
    pub state_provider: StateProvider,
    pub state_root: PathBuf,
    pub dead_letters: DeadLetterProvider,
    /// The `dynamo` state store's settings (`EXECUTION.md` §10.1), when selected.
    pub dynamo_state: Option<DynamoStateConfig>,
    /// `TPF_QUEUE_PROVIDER` (+ `TPF_QUEUE_URL`).
    pub queue: QueueProvider,
    /// `TPF_SQS_REGION`, `TPF_SQS_ENDPOINT_OVERRIDE`.
    pub sqs: SqsSettings,
    pub resume_token_secret: Option<SecretSource>,
    pub signature_tolerance_ms: u64,
}

/// The whole configuration of one function process.
#[derive(Debug, Clone)]
pub struct Config {
    pub function: FunctionName,
    pub control_plane_enabled: bool,
    pub admin_enabled: bool,
    pub control_plane_token: Option<SecretSource>,
    pub admin_token: Option<SecretSource>,
    /// `None`: every tenant is allowed.
    pub allowed_tenants: Option<Vec<String>>,
    pub releases_registry_provider: RegistryProvider,
    pub releases_storage_provider: StorageProvider,
    pub releases_storage_root: PathBuf,
    pub s3: S3Settings,
    pub registration_roots: Vec<Root>,
    pub max_artifact_bytes: u64,
    pub dynamo: DynamoSettings,
    pub worker_lifecycle_provider: RegistryProvider,
    pub worker_stale_after_ms: u64,
    pub capabilities_check: CapabilitiesCheck,
    pub worker_lifecycle_root: PathBuf,
    pub worker_shared_secret: Option<SecretSource>,
    pub engine: EngineSettings,
}

/// A start-up failure; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn err(var: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{var} {why}"))
}

/// Largest `TPF_RELEASES_MAX_ARTIFACT_BYTES`.
pub const MAX_ARTIFACT_BYTES_LIMIT: u64 = 5_368_709_120;

impl Config {
    /// Reads the process environment.
    pub fn from_env(function: FunctionName) -> Result<Self, ConfigError> {
        let cwd =
            std::env::current_dir().map_err(|e| ConfigError(format!("working directory: {e}")))?;
        Self::from_lookup(function, &cwd, |k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (tests pass a map); relative paths
    /// are made absolute against `cwd`.
    pub fn from_lookup(
        function: FunctionName,
        cwd: &Path,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let r = Reader { get: &get };
        let control_plane_enabled = r.boolean("TPF_CONTROL_PLANE_ENABLED", false)?;
        let admin_enabled = r.boolean("TPF_ADMIN_ENABLED", false)?;

        // A token pair is required where the function serves its routes with
        // the surface enabled (API.md §1.5).
        let serves_control_plane = function == FunctionName::ControlPlane && control_plane_enabled;
        let serves_admin = admin_enabled; // every function serves /tpf/admin/... routes
        let control_plane_token = r.secret_pair(
            "TPF_CONTROL_PLANE_TOKEN",
            "TPF_CONTROL_PLANE_TOKEN_REF",
            serves_control_plane,
        )?;
        let admin_token = r.secret_pair("TPF_ADMIN_TOKEN", "TPF_ADMIN_TOKEN_REF", serves_admin)?;

        let allowed_tenants = match r.raw("TPF_TENANCY_ALLOWED_TENANTS") {
            None => None,
            Some(list) => {
                let ids: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = ids.iter().find(|id| !is_valid_id(id)) {
                    return Err(err(
                        "TPF_TENANCY_ALLOWED_TENANTS",
                        format!("entry '{bad}' breaks the id rule"),
                    ));
                }
                if ids.is_empty() {
                    None
                } else {
                    Some(ids)
                }
            }
        };

        let releases_registry_provider = r.registry_provider("TPF_RELEASES_REGISTRY_PROVIDER")?;
        let releases_storage_provider = match r.lower("TPF_RELEASES_STORAGE_PROVIDER").as_deref() {
            None | Some("local") => StorageProvider::Local,
            Some("s3") => StorageProvider::S3,
            Some(_) => return Err(err("TPF_RELEASES_STORAGE_PROVIDER", "must be local or s3")),
        };
        let releases_storage_root = absolute(
            cwd,
            &r.raw("TPF_RELEASES_STORAGE_ROOT")
                .unwrap_or_else(|| "target/tpf-releases".into()),
        );

        let prefix_raw = r
            .raw("TPF_RELEASES_STORAGE_S3_PREFIX")
            .unwrap_or_else(|| "tpf/releases".into());
        let prefix = prefix_raw.trim_matches('/').to_string();
        if !prefix.is_empty()
            && prefix.split('/').any(|seg| {
                seg.is_empty()
                    || seg == "."
                    || seg == ".."
                    || seg.contains(['\\', '#', '?'])
                    || seg.chars().any(crate::domain::values::is_control)
            })
        {
            return Err(err(
                "TPF_RELEASES_STORAGE_S3_PREFIX",
                "has an empty, '.', '..' or otherwise invalid segment",
            ));
        }
        let s3 = S3Settings {
            bucket: r
                .raw("TPF_RELEASES_STORAGE_S3_BUCKET")
                .filter(|b| !b.trim().is_empty()),
            prefix,
            region: r.raw("TPF_RELEASES_STORAGE_S3_REGION"),
            endpoint_override: r.raw("TPF_RELEASES_STORAGE_S3_ENDPOINT_OVERRIDE"),
            path_style_access: r.boolean("TPF_RELEASES_STORAGE_S3_PATH_STYLE_ACCESS", false)?,
        };
        if releases_storage_provider == StorageProvider::S3 && s3.bucket.is_none() {
            return Err(err(
                "TPF_RELEASES_STORAGE_S3_BUCKET",
                "is required with TPF_RELEASES_STORAGE_PROVIDER=s3",
            ));
        }

        let mut registration_roots = Vec::new();
        if let Some(list) = r.raw("TPF_RELEASES_REGISTRATION_ROOTS") {
            for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let root = parse_root(entry).map_err(|why| {
                    err(
                        "TPF_RELEASES_REGISTRATION_ROOTS",
                        format!("entry '{entry}': {why}"),
                    )
                })?;
                if let Root::Local(dir) = &root {
                    if !Path::new(dir).is_dir() {
                        return Err(err(
                            "TPF_RELEASES_REGISTRATION_ROOTS",
                            format!("entry '{entry}' is not an existing absolute directory"),
                        ));
                    }
                }
                registration_roots.push(root);
            }
        }

        let max_artifact_bytes = match r.raw("TPF_RELEASES_MAX_ARTIFACT_BYTES") {
            None => 268_435_456,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (1..=MAX_ARTIFACT_BYTES_LIMIT).contains(&n) => n,
                _ => {
                    return Err(err(
                        "TPF_RELEASES_MAX_ARTIFACT_BYTES",
                        "must be an integer from 1 to 5368709120",
                    ))
                }
            },
        };

        let worker_lifecycle_provider = r.registry_provider("TPF_WORKER_LIFECYCLE_PROVIDER")?;
        let dynamo = DynamoSettings {
            release_table: r
                .raw("TPF_DYNAMO_RELEASE_TABLE")
                .unwrap_or_else(|| "tpf_release_registry".into()),
            worker_table: r
                .raw("TPF_DYNAMO_WORKER_TABLE")
                .unwrap_or_else(|| "tpf_worker_registry".into()),
            region: r.raw("TPF_DYNAMO_REGION"),
            endpoint_override: r.raw("TPF_DYNAMO_ENDPOINT_OVERRIDE"),
        };
        if releases_registry_provider == RegistryProvider::Dynamo
            && dynamo.release_table.trim().is_empty()
        {
            return Err(err(
                "TPF_DYNAMO_RELEASE_TABLE",
                "must not be blank with the dynamo provider",
            ));
        }
        if worker_lifecycle_provider == RegistryProvider::Dynamo
            && dynamo.worker_table.trim().is_empty()
        {
            return Err(err(
                "TPF_DYNAMO_WORKER_TABLE",
                "must not be blank with the dynamo provider",
            ));
        }

        let worker_stale_after_ms = match r.raw("TPF_WORKER_LIFECYCLE_STALE_AFTER") {
            None => 120_000,
            Some(v) => parse_duration_ms(v.trim()).ok_or_else(|| {
                err(
                    "TPF_WORKER_LIFECYCLE_STALE_AFTER",
                    "must be an ISO-8601 duration such as PT2M",
                )
            })?,
        };
        let capabilities_check = match r.lower("TPF_WORKER_CAPABILITIES_CHECK").as_deref() {
            None | Some("register") => CapabilitiesCheck::Register,
            Some("off") => CapabilitiesCheck::Off,
            Some(_) => {
                return Err(err(
                    "TPF_WORKER_CAPABILITIES_CHECK",
                    "must be register or off",
                ))
            }
        };
        // The control-plane calls workers (inline dispatch); worker-lifecycle
        // probes them when the capability check is on.
        let needs_secret = matches!(
            function,
            FunctionName::ControlPlane | FunctionName::Dispatcher
        ) || (function == FunctionName::WorkerLifecycle
            && capabilities_check == CapabilitiesCheck::Register);
        let worker_shared_secret = r.secret_pair(
            "TPF_WORKER_SHARED_SECRET",
            "TPF_WORKER_SHARED_SECRET_REF",
            needs_secret,
        )?;
        let worker_lifecycle_root = match r.raw("TPF_WORKER_LIFECYCLE_ROOT") {
            Some(p) => absolute(cwd, &p),
            None => releases_storage_root.join("workers"),
        };

        let engine = r.engine(function, cwd, &releases_storage_root)?;

        Ok(Config {
            engine,
            function,
            control_plane_enabled,
            admin_enabled,
            control_plane_token,
            admin_token,
            allowed_tenants,
            releases_registry_provider,
            releases_storage_provider,
            releases_storage_root,
            s3,
            registration_roots,
            max_artifact_bytes,
            dynamo,
            worker_lifecycle_provider,
            worker_stale_after_ms,
            capabilities_check,
            worker_lifecycle_root,
            worker_shared_secret,
        })
    }
}

fn absolute(cwd: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

fn duration(r: &Reader, var: &str, default_ms: u64) -> Result<u64, ConfigError> {
    match r.raw(var) {
        None => Ok(default_ms),
        Some(v) => parse_duration_ms(v.trim())
            .ok_or_else(|| err(var, "must be an ISO-8601 duration such as PT30S")),
    }
}

fn integer<T: std::str::FromStr>(r: &Reader, var: &str, default: T) -> Result<T, ConfigError> {
    match r.raw(var) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| err(var, "must be an integer")),
    }
}

impl Reader<'_> {
    /// `EXECUTION.md` §1 and §10.1 (validated in the functions that build the engine).
    fn engine(
        &self,
        function: FunctionName,
        cwd: &Path,
        storage_root: &Path,
    ) -> Result<EngineSettings, ConfigError> {
        let builds_engine = matches!(
            function,
            FunctionName::ControlPlane | FunctionName::Dispatcher | FunctionName::Sweeper
        );
        let connect_timeout_ms = duration(self, "TPF_WORKER_REST_CONNECT_TIMEOUT", 2_000)?;
        let request_timeout_ms = duration(self, "TPF_WORKER_REST_REQUEST_TIMEOUT", 30_000)?;
        let lease_ms: i64 = integer(self, "TPF_LEASE_MS", 60_000)?;
        if builds_engine
            && (lease_ms <= 0
                || (lease_ms as u64) < connect_timeout_ms + request_timeout_ms + 10_000)
        {
            return Err(err(
                "TPF_LEASE_MS",
                "must be > 0 and at least TPF_WORKER_REST_CONNECT_TIMEOUT + TPF_WORKER_REST_REQUEST_TIMEOUT + 10000 ms",
            ));
        }
        let max_response_bytes: usize = integer(self, "TPF_WORKER_MAX_RESPONSE_BYTES", 5_242_880)?;
        if max_response_bytes == 0 {
            return Err(err("TPF_WORKER_MAX_RESPONSE_BYTES", "must be at least 1"));
        }
        let non_retryable_classes = self
            .raw("TPF_NON_RETRYABLE_FAILURE_CLASSES")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let max_retries: u64 = integer(self, "TPF_MAX_RETRIES", 3)?;
        let retry_delay_ms = duration(self, "TPF_RETRY_DELAY", 10_000)?;
        let retry_multiplier: f64 = match self.raw("TPF_RETRY_MULTIPLIER") {
            None => 2.0,
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|m: &f64| m.is_finite())
                .ok_or_else(|| err("TPF_RETRY_MULTIPLIER", "must be a number"))?,
        };
        let ttl_days: i64 = integer::<i64>(self, "TPF_EXECUTION_TTL_DAYS", 7)?.max(1);
        let sweep_limit: i64 = integer(self, "TPF_SWEEP_LIMIT", 100)?;
        let sweep_interval_ms = duration(self, "TPF_SWEEP_INTERVAL", 30_000)?;
        if builds_engine && sweep_interval_ms == 0 {
            return Err(err("TPF_SWEEP_INTERVAL", "must be longer than zero"));
        }
        let idempotency_policy = match self
            .raw("TPF_IDEMPOTENCY_POLICY")
            .map(|v| v.trim().to_ascii_uppercase())
            .as_deref()
        {
            None | Some("OPTIONAL_CLIENT_KEY") => IdempotencyPolicy::OptionalClientKey,
            Some("CLIENT_KEY_REQUIRED") => IdempotencyPolicy::ClientKeyRequired,
            Some("SERVER_KEY_ONLY") => IdempotencyPolicy::ServerKeyOnly,
            Some(_) => {
                return Err(err(
                    "TPF_IDEMPOTENCY_POLICY",
                    "must be OPTIONAL_CLIENT_KEY, CLIENT_KEY_REQUIRED or SERVER_KEY_ONLY",
                ))
            }
        };
        let state_provider = match self.lower("TPF_STATE_PROVIDER").as_deref() {
            None | Some("file") => StateProvider::File,
            Some("memory") => StateProvider::Memory,
            Some("dynamo") => StateProvider::Dynamo,
            Some(_) => return Err(err("TPF_STATE_PROVIDER", "must be memory, file or dynamo")),
        };
        let dynamo_state = if builds_engine {
            self.storage_variables(state_provider)?
        } else {
            None
        };
        let state_root = match self.raw("TPF_STATE_ROOT") {
            Some(p) => absolute(cwd, &p),
            None => storage_root.join("state"),
        };
        let queue = match self.lower("TPF_QUEUE_PROVIDER").as_deref() {
            None | Some("inline") => QueueProvider::Inline,
            Some("sqs") => {
                let url = self
                    .raw("TPF_QUEUE_URL")
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let valid = url::Url::parse(&url)
                    .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    .unwrap_or(false);
                if builds_engine && !valid {
                    return Err(err(
                        "TPF_QUEUE_URL",
                        "must be an absolute http(s) URL with TPF_QUEUE_PROVIDER=sqs",
                    ));
                }
                QueueProvider::Sqs(url)
            }
            Some(_) => return Err(err("TPF_QUEUE_PROVIDER", "must be inline or sqs")),
        };
        let sqs = SqsSettings {
            region: self.raw("TPF_SQS_REGION"),
            endpoint_override: self.raw("TPF_SQS_ENDPOINT_OVERRIDE"),
        };
        let dead_letters = match self.lower("TPF_DLQ_PROVIDER").as_deref() {
            None | Some("log") => DeadLetterProvider::Log,
            Some("file") => match self.raw("TPF_DLQ_FILE") {
                Some(p) => DeadLetterProvider::File(absolute(cwd, &p)),
                None => {
                    return Err(err(
                        "TPF_DLQ_FILE",
                        "is required with TPF_DLQ_PROVIDER=file",
                    ))
                }
            },
            Some("sqs") => match self.raw("TPF_DLQ_URL") {
                Some(u) => DeadLetterProvider::Sqs(u.trim().to_string()),
                None => return Err(err("TPF_DLQ_URL", "is required with TPF_DLQ_PROVIDER=sqs")),
            },
            Some(_) => return Err(err("TPF_DLQ_PROVIDER", "must be log, file or sqs")),
        };
        let resume_token_secret =
            match (
                self.raw("TPF_RESUME_TOKEN_SECRET"),
                self.raw("TPF_RESUME_TOKEN_SECRET_REF"),
            ) {
                (Some(_), Some(_)) => return Err(ConfigError(
                    "set at most one of TPF_RESUME_TOKEN_SECRET and TPF_RESUME_TOKEN_SECRET_REF"
                        .into(),
                )),
                (Some(v), None) => Some(SecretSource::Literal(v)),
                (None, Some(r)) => Some(SecretSource::Reference(
                    SecretRef::parse(r.trim())
                        .map_err(|why| err("TPF_RESUME_TOKEN_SECRET_REF", why))?,
                )),
                (None, None) => None,
            };
        let signature_tolerance_ms = duration(self, "TPF_WORKER_SIGNATURE_TOLERANCE", 120_000)?;
        Ok(EngineSettings {
            lease_ms,
            connect_timeout_ms,
            request_timeout_ms,
            max_response_bytes,
            non_retryable_classes,
            max_retries,
            retry_delay_ms,
            retry_multiplier,
            ttl_days,
            sweep_limit: sweep_limit.max(0) as usize,
            sweep_interval_ms,
            idempotency_policy,
            state_provider,
            state_root,
            dead_letters,
            dynamo_state,
            queue,
            sqs,
            resume_token_secret,
            signature_tolerance_ms,
        })
    }
}

impl Reader<'_> {
    /// `EXECUTION.md` §10.1 storage variables of the selected provider.
    fn storage_variables(
        &self,
        state_provider: StateProvider,
    ) -> Result<Option<DynamoStateConfig>, ConfigError> {
        let prefix = self
            .raw("TPF_PAYLOAD_S3_PREFIX")
            .unwrap_or_else(|| "tpf/payloads".into());
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() && prefix.split('/').any(|seg| !valid_segment(seg)) {
            return Err(err(
                "TPF_PAYLOAD_S3_PREFIX",
                "has an empty, '.', '..' or otherwise invalid segment",
            ));
        }
        let threshold: i64 = integer(self, "TPF_PAYLOAD_S3_THRESHOLD_BYTES", 8192)?;
        if !(1024..=358_400).contains(&threshold) {
            return Err(err(
                "TPF_PAYLOAD_S3_THRESHOLD_BYTES",
                "must be an integer from 1024 to 358400",
            ));
        }
        let shards: i64 = integer(self, "TPF_DYNAMO_INDEX_SHARDS", 1)?;
        if !(1..=16).contains(&shards) {
            return Err(err(
                "TPF_DYNAMO_INDEX_SHARDS",
                "must be an integer from 1 to 16",
            ));
        }
        if state_provider != StateProvider::Dynamo {
            return Ok(None);
        }
        let mut tables = Vec::new();
        for (var, default) in [
            ("TPF_DYNAMO_EXECUTION_TABLE", "tpf_execution"),
            ("TPF_DYNAMO_AWAIT_TABLE", "tpf_await"),
        ] {
            let name = self
                .raw(var)
                .unwrap_or_else(|| default.into())
                .trim()
                .to_string();
            if name.is_empty() {
                return Err(err(var, "must not be blank with TPF_STATE_PROVIDER=dynamo"));
            }
            tables.push(name);
        }
        let bucket = self
            .raw("TPF_PAYLOAD_S3_BUCKET")
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty());
        let Some(payload_bucket) = bucket else {
            return Err(err(
                "TPF_PAYLOAD_S3_BUCKET",
                "is required with TPF_STATE_PROVIDER=dynamo",
            ));
        };
        Ok(Some(DynamoStateConfig {
            execution_table: tables[0].clone(),
            await_table: tables[1].clone(),
            payload_bucket,
            payload_prefix: prefix,
            threshold_bytes: threshold as usize,
            index_shards: shards as u8,
        }))
    }
}

/// The segment rule of `RELEASES.md` §3.1.2.
fn valid_segment(seg: &str) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && !seg.contains(['\\', '#', '?'])
        && !seg.chars().any(crate::domain::values::is_control)
}

struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    /// A variable's value; unset and empty are the same.
    fn raw(&self, var: &str) -> Option<String> {
        (self.get)(var).filter(|v| !v.is_empty())
    }
    fn lower(&self, var: &str) -> Option<String> {
        self.raw(var).map(|v| v.trim().to_ascii_lowercase())
    }
    fn boolean(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.lower(var).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(err(var, "must be true or false")),
        }
    }
    fn registry_provider(&self, var: &str) -> Result<RegistryProvider, ConfigError> {
        match self.lower(var).as_deref() {
            None | Some("file") => Ok(RegistryProvider::File),
            Some("memory") => {
                tracing::warn!(
                    variable = var,
                    "memory provider: state is lost when the process ends"
                );
                Ok(RegistryProvider::Memory)
            }
            Some("dynamo") => Ok(RegistryProvider::Dynamo),
            Some(_) => Err(err(var, "must be memory, file or dynamo")),
        }
    }
    /// Exactly one of `literal` / `reference` when `required`; a reference
    /// must have a known scheme and a name whenever it is set.
    fn secret_pair(
        &self,
        literal: &str,
        reference: &str,
        required: bool,
    ) -> Result<Option<SecretSource>, ConfigError> {
        let lit = self.raw(literal);
        let refr = self.raw(reference);
        let source = match (lit, refr) {
            (Some(_), Some(_)) if required => {
                return Err(ConfigError(format!(
                    "set exactly one of {literal} and {reference}, not both"
                )))
            }
            (None, None) if required => {
                return Err(ConfigError(format!(
                    "set exactly one of {literal} and {reference}"
                )))
            }
            (None, None) => None,
            (_, Some(r)) => Some(SecretSource::Reference(
                SecretRef::parse(r.trim()).map_err(|why| err(reference, why))?,
            )),
            (Some(l), None) => Some(SecretSource::Literal(l)),
        };
        Ok(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(function: FunctionName, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(function, Path::new("/work"), |k| map.get(k).cloned())
    }

    #[test]
    fn cfg01_defaults_equal_the_spec() {
        let c = load(FunctionName::ReleaseAdmin, &[]).unwrap();
        assert!(!c.admin_enabled && !c.control_plane_enabled);
        assert_eq!(c.releases_registry_provider, RegistryProvider::File);
        assert_eq!(c.releases_storage_provider, StorageProvider::Local);
        assert_eq!(
            c.releases_storage_root,
            PathBuf::from("/work/target/tpf-releases")
        );
        assert_eq!(c.s3.prefix, "tpf/releases");
        assert!(!c.s3.path_style_access);
        assert!(c.registration_roots.is_empty());
        assert_eq!(c.max_artifact_bytes, 268_435_456);
        assert_eq!(c.dynamo.release_table, "tpf_release_registry");
        assert_eq!(c.dynamo.worker_table, "tpf_worker_registry");
        assert_eq!(c.worker_lifecycle_provider, RegistryProvider::File);
        assert_eq!(c.worker_stale_after_ms, 120_000);
        assert_eq!(c.capabilities_check, CapabilitiesCheck::Register);
        assert_eq!(
            c.worker_lifecycle_root,
            PathBuf::from("/work/target/tpf-releases/workers")
        );
        assert_eq!(c.allowed_tenants, None);
    }

    #[test]
    fn cfg02_each_invalid_case_names_its_variable() {
        use FunctionName::*;
        type Case<'a> = (FunctionName, Vec<(&'a str, &'a str)>, &'a str);
        let cases: Vec<Case> = vec![
            (
                ReleaseAdmin,
                vec![("TPF_RELEASES_REGISTRY_PROVIDER", "redis")],
                "TPF_RELEASES_REGISTRY_PROVIDER",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_WORKER_LIFECYCLE_PROVIDER", "x")],
                "TPF_WORKER_LIFECYCLE_PROVIDER",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_RELEASES_STORAGE_PROVIDER", "gcs")],
                "TPF_RELEASES_STORAGE_PROVIDER",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_ADMIN_ENABLED", "yes")],
                "TPF_ADMIN_ENABLED",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_ADMIN_ENABLED", "1")],
                "TPF_ADMIN_ENABLED",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_RELEASES_STORAGE_PROVIDER", "s3")],
                "TPF_RELEASES_STORAGE_S3_BUCKET",
            ),
            (
                ReleaseAdmin,
                vec![
                    ("TPF_RELEASES_REGISTRY_PROVIDER", "dynamo"),
                    ("TPF_DYNAMO_RELEASE_TABLE", " "),
                ],
                "TPF_DYNAMO_RELEASE_TABLE",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_ADMIN_ENABLED", "true")],
                "TPF_ADMIN_TOKEN_REF",
            ),
            (
                ReleaseAdmin,
                vec![
                    ("TPF_ADMIN_ENABLED", "TRUE"),
                    ("TPF_ADMIN_TOKEN", "a"),
                    ("TPF_ADMIN_TOKEN_REF", "env:X"),
                ],
                "TPF_ADMIN_TOKEN",
            ),
            (
                ReleaseAdmin,
                vec![
                    ("TPF_ADMIN_ENABLED", "true"),
                    ("TPF_ADMIN_TOKEN_REF", "vault:x"),
                ],
                "TPF_ADMIN_TOKEN_REF",
            ),
            (
                ReleaseAdmin,
                vec![
                    ("TPF_ADMIN_ENABLED", "true"),
                    ("TPF_ADMIN_TOKEN_REF", "env:"),
                ],
                "TPF_ADMIN_TOKEN_REF",
            ),
            (
                ControlPlane,
                vec![("TPF_CONTROL_PLANE_ENABLED", "true")],
                "TPF_CONTROL_PLANE_TOKEN",
            ),
            (
                ControlPlane,
                vec![
                    ("TPF_CONTROL_PLANE_ENABLED", "true"),
                    ("TPF_CONTROL_PLANE_TOKEN", "a"),
                    ("TPF_CONTROL_PLANE_TOKEN_REF", "env:X"),
                ],
                "TPF_CONTROL_PLANE_TOKEN_REF",
            ),
            (
                ControlPlane,
                vec![
                    ("TPF_CONTROL_PLANE_ENABLED", "true"),
                    ("TPF_CONTROL_PLANE_TOKEN_REF", "vault:x"),
                ],
                "TPF_CONTROL_PLANE_TOKEN_REF",
            ),
            (WorkerLifecycle, vec![], "TPF_WORKER_SHARED_SECRET_REF"),
            (
                WorkerLifecycle,
                vec![
                    ("TPF_WORKER_SHARED_SECRET", "s"),
                    ("TPF_WORKER_SHARED_SECRET_REF", "env:S"),
                ],
                "TPF_WORKER_SHARED_SECRET",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_RELEASES_REGISTRATION_ROOTS", "/definitely/not/here")],
                "TPF_RELEASES_REGISTRATION_ROOTS",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_RELEASES_REGISTRATION_ROOTS", "relative/dir")],
                "TPF_RELEASES_REGISTRATION_ROOTS",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_RELEASES_MAX_ARTIFACT_BYTES", "0")],
                "TPF_RELEASES_MAX_ARTIFACT_BYTES",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_RELEASES_MAX_ARTIFACT_BYTES", "5368709121")],
                "TPF_RELEASES_MAX_ARTIFACT_BYTES",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_WORKER_LIFECYCLE_STALE_AFTER", "2 minutes")],
                "TPF_WORKER_LIFECYCLE_STALE_AFTER",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_WORKER_CAPABILITIES_CHECK", "maybe")],
                "TPF_WORKER_CAPABILITIES_CHECK",
            ),
            (
                ReleaseAdmin,
                vec![("TPF_TENANCY_ALLOWED_TENANTS", "a,b/c")],
                "TPF_TENANCY_ALLOWED_TENANTS",
            ),
        ];
        for (function, vars, names) in cases {
            let e = load(function, &vars).expect_err(&format!("{vars:?} must fail"));
            assert!(e.0.contains(names), "{vars:?}: {e}");
        }
    }

    /// The `TPF_*` names a message mentions (whole words only, so
    /// `TPF_X_REF` does not count as a mention of `TPF_X`).
    fn named_variables(message: &str) -> Vec<&str> {
        message
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("TPF_"))
            .collect()
    }

    #[test]
    fn auth09_each_token_pair_must_be_exactly_one_with_a_known_scheme() {
        use FunctionName::*;
        let pairs = [
            (
                ControlPlane,
                "TPF_CONTROL_PLANE_ENABLED",
                "TPF_CONTROL_PLANE_TOKEN",
                "TPF_CONTROL_PLANE_TOKEN_REF",
            ),
            (
                ControlPlane,
                "TPF_ADMIN_ENABLED",
                "TPF_ADMIN_TOKEN",
                "TPF_ADMIN_TOKEN_REF",
            ),
            (
                ReleaseAdmin,
                "TPF_ADMIN_ENABLED",
                "TPF_ADMIN_TOKEN",
                "TPF_ADMIN_TOKEN_REF",
            ),
        ];
        // The engine's own required variable, so only the pair can fail.
        let s = ("TPF_WORKER_SHARED_SECRET", "s");
        for (function, enabled, literal, reference) in pairs {
            let on = (enabled, "true");
            // Neither and both: the message names both variables.
            for vars in [
                vec![s, on],
                vec![s, on, (literal, "t"), (reference, "env:T")],
            ] {
                let e = load(function, &vars).expect_err(&format!("{vars:?} must fail"));
                let named = named_variables(&e.0);
                assert!(
                    named.contains(&literal) && named.contains(&reference),
                    "{function:?} {vars:?}: {e}"
                );
            }
            // A reference with an unknown scheme, or without a name: the
            // message names the reference variable.
            for bad in ["vault:x", "env:", "ssm", "x"] {
                let vars = [s, on, (reference, bad)];
                let e = load(function, &vars).expect_err(&format!("{vars:?} must fail"));
                assert!(named_variables(&e.0).contains(&reference), "{vars:?}: {e}");
            }
            // Exactly one, with a known scheme: start-up succeeds.
            for one in [
                (literal, "t"),
                (reference, "env:T"),
                (reference, "ssm:/tpf/token"),
                (reference, "secretsmanager:tpf/token"),
            ] {
                load(function, &[s, on, one])
                    .unwrap_or_else(|e| panic!("{function:?} {one:?}: {e}"));
            }
        }
        // The surface disabled (the default), or a function that does not
        // serve the control-plane routes: no token is needed.
        load(ControlPlane, &[s]).unwrap();
        load(ReleaseAdmin, &[("TPF_CONTROL_PLANE_ENABLED", "true")]).unwrap();
        let c = load(ControlPlane, &[s, ("TPF_CONTROL_PLANE_ENABLED", "false")]).unwrap();
        assert!(c.control_plane_token.is_none());
    }

    #[test]
    fn providers_and_booleans_match_case_insensitively() {
        let c = load(
            FunctionName::ReleaseAdmin,
            &[
                ("TPF_RELEASES_REGISTRY_PROVIDER", "MeMoRy"),
                ("TPF_ADMIN_ENABLED", "True"),
                ("TPF_ADMIN_TOKEN_REF", "env:SOME_TOKEN"),
                ("TPF_WORKER_CAPABILITIES_CHECK", "OFF"),
                ("TPF_WORKER_LIFECYCLE_STALE_AFTER", "PT0S"),
                ("TPF_TENANCY_ALLOWED_TENANTS", " acme , ,beta "),
            ],
        )
        .unwrap();
        assert_eq!(c.releases_registry_provider, RegistryProvider::Memory);
        assert!(c.admin_enabled);
        assert_eq!(
            c.admin_token,
            Some(SecretSource::Reference(SecretRef::Env("SOME_TOKEN".into())))
        );
        assert_eq!(c.capabilities_check, CapabilitiesCheck::Off);
        assert_eq!(c.worker_stale_after_ms, 0);
        assert_eq!(
            c.allowed_tenants,
            Some(vec!["acme".to_string(), "beta".to_string()])
        );
    }

    #[test]
    fn proto05_engine_defaults_equal_the_spec() {
        let c = load(
            FunctionName::ControlPlane,
            &[("TPF_WORKER_SHARED_SECRET", "s")],
        )
        .unwrap();
        let e = &c.engine;
        assert_eq!(
            (e.lease_ms, e.connect_timeout_ms, e.request_timeout_ms),
            (60_000, 2_000, 30_000)
        );
        assert_eq!(e.max_response_bytes, 5_242_880);
        assert!(e.non_retryable_classes.is_empty());
        assert_eq!(
            (e.max_retries, e.retry_delay_ms, e.retry_multiplier),
            (3, 10_000, 2.0)
        );
        assert_eq!(
            (e.ttl_days, e.sweep_limit, e.sweep_interval_ms),
            (7, 100, 30_000)
        );
        assert_eq!(e.idempotency_policy, IdempotencyPolicy::OptionalClientKey);
        assert_eq!(e.state_provider, StateProvider::File);
        assert_eq!(
            e.state_root,
            PathBuf::from("/work/target/tpf-releases/state")
        );
        assert_eq!(e.dead_letters, DeadLetterProvider::Log);
        assert_eq!(e.resume_token_secret, None);
        assert_eq!(e.signature_tolerance_ms, 120_000);
    }

    #[test]
    fn proto03_store07_engine_start_up_failures_name_the_variable() {
        use FunctionName::ControlPlane;
        let s = ("TPF_WORKER_SHARED_SECRET", "s");
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str);
        let cases: Vec<Case> = vec![
            (vec![], "TPF_WORKER_SHARED_SECRET_REF"),
            (
                vec![s, ("TPF_WORKER_SHARED_SECRET_REF", "env:X")],
                "TPF_WORKER_SHARED_SECRET",
            ),
            (vec![s, ("TPF_LEASE_MS", "41999")], "TPF_LEASE_MS"),
            (vec![s, ("TPF_LEASE_MS", "0")], "TPF_LEASE_MS"),
            (
                vec![s, ("TPF_WORKER_REST_REQUEST_TIMEOUT", "PT60S")],
                "TPF_LEASE_MS",
            ),
            (
                vec![s, ("TPF_STATE_PROVIDER", "redis")],
                "TPF_STATE_PROVIDER",
            ),
            (vec![s, ("TPF_QUEUE_PROVIDER", "sqs")], "TPF_QUEUE_URL"),
            (
                vec![s, ("TPF_QUEUE_PROVIDER", "kafka")],
                "TPF_QUEUE_PROVIDER",
            ),
            (
                vec![s, ("TPF_STATE_PROVIDER", "DYNAMO")],
                "TPF_PAYLOAD_S3_BUCKET",
            ),
            (
                vec![
                    s,
                    ("TPF_STATE_PROVIDER", "dynamo"),
                    ("TPF_PAYLOAD_S3_BUCKET", "b"),
                    ("TPF_DYNAMO_EXECUTION_TABLE", " "),
                ],
                "TPF_DYNAMO_EXECUTION_TABLE",
            ),
            (
                vec![s, ("TPF_PAYLOAD_S3_THRESHOLD_BYTES", "1023")],
                "TPF_PAYLOAD_S3_THRESHOLD_BYTES",
            ),
            (
                vec![s, ("TPF_PAYLOAD_S3_THRESHOLD_BYTES", "358401")],
                "TPF_PAYLOAD_S3_THRESHOLD_BYTES",
            ),
            (
                vec![s, ("TPF_DYNAMO_INDEX_SHARDS", "17")],
                "TPF_DYNAMO_INDEX_SHARDS",
            ),
            (
                vec![s, ("TPF_DYNAMO_INDEX_SHARDS", "0")],
                "TPF_DYNAMO_INDEX_SHARDS",
            ),
            (
                vec![s, ("TPF_PAYLOAD_S3_PREFIX", "a/../b")],
                "TPF_PAYLOAD_S3_PREFIX",
            ),
            (vec![s, ("TPF_DLQ_PROVIDER", "file")], "TPF_DLQ_FILE"),
            (vec![s, ("TPF_DLQ_PROVIDER", "kafka")], "TPF_DLQ_PROVIDER"),
            (
                vec![s, ("TPF_IDEMPOTENCY_POLICY", "ALWAYS")],
                "TPF_IDEMPOTENCY_POLICY",
            ),
            (
                vec![
                    s,
                    ("TPF_RESUME_TOKEN_SECRET", "a"),
                    ("TPF_RESUME_TOKEN_SECRET_REF", "env:B"),
                ],
                "TPF_RESUME_TOKEN_SECRET_REF",
            ),
            (vec![s, ("TPF_RETRY_DELAY", "10s")], "TPF_RETRY_DELAY"),
        ];
        for (vars, names) in cases {
            let e = load(ControlPlane, &vars).expect_err(&format!("{vars:?} must fail"));
            assert!(e.0.contains(names), "{vars:?}: {e}");
        }
        // Provider names in any letter case.
        let c = load(
            ControlPlane,
            &[
                s,
                ("TPF_STATE_PROVIDER", "MEMORY"),
                ("TPF_DLQ_PROVIDER", "File"),
                ("TPF_DLQ_FILE", "dlq.jsonl"),
            ],
        )
        .unwrap();
        assert_eq!(c.engine.state_provider, StateProvider::Memory);
        assert_eq!(
            c.engine.dead_letters,
            DeadLetterProvider::File(PathBuf::from("/work/dlq.jsonl"))
        );
    }

    #[test]
    fn dynamo_registries_are_accepted() {
        for function in [
            FunctionName::ReleaseAdmin,
            FunctionName::WorkerLifecycle,
            FunctionName::ControlPlane,
        ] {
            let c = load(
                function,
                &[
                    ("TPF_RELEASES_REGISTRY_PROVIDER", "dynamo"),
                    ("TPF_WORKER_LIFECYCLE_PROVIDER", "DYNAMO"),
                    ("TPF_DYNAMO_RELEASE_TABLE", "releases"),
                    ("TPF_DYNAMO_REGION", "eu-west-1"),
                    ("TPF_DYNAMO_ENDPOINT_OVERRIDE", "http://127.0.0.1:5000"),
                    ("TPF_WORKER_CAPABILITIES_CHECK", "off"),
                    ("TPF_WORKER_SHARED_SECRET", "s"),
                ],
            )
            .unwrap_or_else(|e| panic!("{function:?}: {e}"));
            assert_eq!(c.releases_registry_provider, RegistryProvider::Dynamo);
            assert_eq!(c.worker_lifecycle_provider, RegistryProvider::Dynamo);
            assert_eq!(c.dynamo.release_table, "releases");
            assert_eq!(c.dynamo.worker_table, "tpf_worker_registry");
            assert_eq!(c.dynamo.region.as_deref(), Some("eu-west-1"));
            assert_eq!(
                c.dynamo.endpoint_override.as_deref(),
                Some("http://127.0.0.1:5000")
            );
        }
        // A blank table of a selected dynamo provider still fails.
        let e = load(
            FunctionName::WorkerLifecycle,
            &[
                ("TPF_WORKER_LIFECYCLE_PROVIDER", "dynamo"),
                ("TPF_DYNAMO_WORKER_TABLE", "  "),
                ("TPF_WORKER_CAPABILITIES_CHECK", "off"),
            ],
        )
        .unwrap_err();
        assert!(e.0.contains("TPF_DYNAMO_WORKER_TABLE"), "{e}");
    }

    #[test]
    fn dynamo_state_sqs_queue_and_s3_store_are_accepted() {
        let c = load(
            FunctionName::Dispatcher,
            &[
                ("TPF_WORKER_SHARED_SECRET_REF", "secretsmanager:tpf/worker"),
                ("TPF_STATE_PROVIDER", "dynamo"),
                ("TPF_PAYLOAD_S3_BUCKET", "payloads"),
                ("TPF_DYNAMO_INDEX_SHARDS", "4"),
                ("TPF_QUEUE_PROVIDER", "sqs"),
                (
                    "TPF_QUEUE_URL",
                    "https://sqs.eu-west-1.amazonaws.com/123/work",
                ),
                ("TPF_DLQ_PROVIDER", "sqs"),
                ("TPF_DLQ_URL", "https://sqs.eu-west-1.amazonaws.com/123/dlq"),
                ("TPF_RELEASES_STORAGE_PROVIDER", "s3"),
                ("TPF_RELEASES_STORAGE_S3_BUCKET", "artifacts"),
                ("TPF_RELEASES_REGISTRATION_ROOTS", "s3://artifacts/releases"),
            ],
        )
        .unwrap();
        let d = c.engine.dynamo_state.clone().unwrap();
        assert_eq!(
            (d.execution_table.as_str(), d.await_table.as_str()),
            ("tpf_execution", "tpf_await")
        );
        assert_eq!(
            (
                d.payload_bucket.as_str(),
                d.payload_prefix.as_str(),
                d.threshold_bytes,
                d.index_shards
            ),
            ("payloads", "tpf/payloads", 8192, 4)
        );
        assert_eq!(
            c.engine.queue,
            QueueProvider::Sqs("https://sqs.eu-west-1.amazonaws.com/123/work".into())
        );
        assert_eq!(
            c.engine.dead_letters,
            DeadLetterProvider::Sqs("https://sqs.eu-west-1.amazonaws.com/123/dlq".into())
        );
        assert_eq!(c.releases_storage_provider, StorageProvider::S3);
        // The sweeper calls no worker: no shared secret needed.
        load(FunctionName::Sweeper, &[("TPF_STATE_PROVIDER", "memory")]).unwrap();
    }

    #[test]
    fn a_disabled_surface_needs_no_token() {
        let c = load(
            FunctionName::ControlPlane,
            &[
                ("TPF_CONTROL_PLANE_ENABLED", "false"),
                ("TPF_WORKER_SHARED_SECRET", "s"),
            ],
        )
        .unwrap();
        assert_eq!(c.control_plane_token, None);
    }

    #[test]
    fn literal_secrets_are_redacted_in_debug_output() {
        let s = format!("{:?}", SecretSource::Literal("hunter2".into()));
        assert!(!s.contains("hunter2"));
    }
}
