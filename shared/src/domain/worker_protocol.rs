//! TPF's REST worker protocol (`EXECUTION.md` §7): request signatures, the
//! command envelope, the result envelope and its validity rules, failure
//! retryability, and the capabilities document. Shared by the coordinator's
//! transport and by the workers we ship.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

/// Fixed protocol path of the execute call (what is signed).
pub const EXECUTE_PATH: &str = "/pipeline/worker/transitions/execute";
/// Fixed protocol path of the capabilities call (what is signed).
pub const CAPABILITIES_PATH: &str = "/pipeline/worker/capabilities";
/// Header carrying the RFC 3339 timestamp of a signed call.
pub const TIMESTAMP_HEADER: &str = "X-TPF-Worker-Timestamp";
/// Header carrying the lowercase UUID v4 nonce of a signed call.
pub const NONCE_HEADER: &str = "X-TPF-Worker-Nonce";
/// Header carrying the lowercase hex HMAC signature of a call.
pub const SIGNATURE_HEADER: &str = "X-TPF-Worker-Signature";
/// Hex SHA-256 of the empty body (capabilities calls).
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// §7.2 canonical string: METHOD \n PATH \n TIMESTAMP \n NONCE \n hex(SHA-256(body)).
pub fn canonical_string(
    method: &str,
    path: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{method}\n{path}\n{timestamp}\n{nonce}\n{body_hash}")
}

/// Raw HMAC-SHA256 of the canonical string.
fn signature_bytes(
    secret: &str,
    method: &str,
    path: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(canonical_string(method, path, timestamp, nonce, body).as_bytes());
    mac.finalize().into_bytes().into()
}

/// §7.2 signature: lowercase hex HMAC-SHA256(key = secret, canonical string).
pub fn sign(
    secret: &str,
    method: &str,
    path: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    hex::encode(signature_bytes(
        secret, method, path, timestamp, nonce, body,
    ))
}

/// Constant-time check of a presented lowercase-hex signature.
pub fn verify_signature(
    secret: &str,
    method: &str,
    path: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
    presented: &str,
) -> bool {
    let expected = sign(secret, method, path, timestamp, nonce, body);
    // Lengths are public (always 64 for a well-formed signature); the
    // contents are compared in constant time.
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// `epoch_ms` as RFC 3339 UTC with milliseconds and `Z`
/// (`2025-01-15T10:30:00.000Z`), the form of [`TIMESTAMP_HEADER`].
pub fn format_timestamp(epoch_ms: i64) -> String {
    let millis = epoch_ms.rem_euclid(1000);
    let secs = epoch_ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// §7.3: exactly these 15 members, in this order (TPF workers reject others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransitionCommand {
    pub tenant_id: String,
    pub execution_id: String,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    pub current_step_index: u64,
    pub stop_before_step_index: i64,
    pub attempt: u64,
    pub result_shape: String,
    pub execution_version: u64,
    pub transition_key: String,
    pub trace_id: String,
    pub payload_type_id: String,
    pub payload_encoding: String,
    pub payload: String,
}

/// `outcome` of a result envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Completed,
    WaitingExternal,
    Failed,
}

/// §7.6 failure envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureEnvelope {
    pub failure_class: String,
    #[serde(default)]
    pub message: Option<String>,
    /// Extension; absent = not stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// TPF framework classes treated as non-retryable (§7.6).
pub const NON_RETRYABLE_CLASSES: [&str; 9] = [
    "org.pipelineframework.step.NonRetryableException",
    "org.pipelineframework.step.PipelineControlFlowException",
    "org.pipelineframework.cache.CacheMissException",
    "org.pipelineframework.cache.CachePolicyViolation",
    "org.pipelineframework.command.CommandOutcomeException",
    "org.pipelineframework.invocation.PipelineRecursionLimitExceededException",
    "org.pipelineframework.query.QueryAuthenticationRequiredException",
    "org.pipelineframework.query.QueryNotFoundException",
    "org.pipelineframework.query.QueryTerminalFailureException",
];

impl FailureEnvelope {
    /// §7.6: retryable unless `retryable: false`, a listed framework class,
    /// or a class in `extra_non_retryable` (`TPF_NON_RETRYABLE_FAILURE_CLASSES`).
    pub fn is_retryable(&self, extra_non_retryable: &[String]) -> bool {
        if self.retryable == Some(false) {
            return false;
        }
        let class = self.failure_class.trim();
        !NON_RETRYABLE_CLASSES.contains(&class)
            && !extra_non_retryable.iter().any(|c| c.trim() == class)
    }
}

/// A valid result envelope (§7.4). Outputs and the suspension are kept as
/// raw JSON text: outputs are stored verbatim, never re-encoded.
#[derive(Debug, Clone)]
pub struct TransitionResult {
    pub outcome: Outcome,
    pub output_payloads: Vec<Box<RawValue>>,
    pub await_suspension: Option<Box<RawValue>>,
    pub failure: Option<FailureEnvelope>,
    pub terminal_output_published: bool,
    pub terminal_input_passthrough: bool,
}

/// Parses and checks a response body against §7.4; Err says what was wrong
/// (never quoting the body) → `WORKER_RESPONSE_INVALID`.
pub fn parse_result(body: &[u8]) -> Result<TransitionResult, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("response body is empty".into());
    }
    // Members kept as raw text; outputs and the suspension stay verbatim.
    let members: BTreeMap<String, Box<RawValue>> = match serde_json::from_slice(body) {
        Ok(members) => members,
        Err(_) if serde_json::from_slice::<Value>(body).is_ok() => {
            return Err("response body is not a JSON object".into())
        }
        Err(_) => return Err("response body is not valid JSON".into()),
    };
    let member = |name: &str| -> Option<&RawValue> {
        members
            .get(name)
            .map(|v| &**v)
            .filter(|v| v.get() != "null")
    };

    let outcome = match member("outcome").map(|v| serde_json::from_str::<Value>(v.get())) {
        None => return Err("outcome is required".into()),
        Some(Ok(Value::String(s))) => match s.as_str() {
            "COMPLETED" => Outcome::Completed,
            "WAITING_EXTERNAL" => Outcome::WaitingExternal,
            "FAILED" => Outcome::Failed,
            _ => return Err("outcome must be COMPLETED, WAITING_EXTERNAL or FAILED".into()),
        },
        Some(_) => return Err("outcome must be a string".into()),
    };

    let output_payloads = match member("outputPayloads") {
        None => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<Box<RawValue>>>(raw.get())
            .map_err(|_| "outputPayloads must be an array".to_string())?,
    };

    let await_suspension = match member("awaitSuspension") {
        None => None,
        Some(raw) if raw.get().starts_with('{') => Some(raw.to_owned()),
        Some(_) => return Err("awaitSuspension must be an object or null".into()),
    };

    let failure = member("failure").map(parse_failure).transpose()?;

    let flag = |name: &str| -> Result<bool, String> {
        match member(name).map(|v| v.get()) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(format!("{name} must be a boolean")),
        }
    };
    let terminal_output_published = flag("terminalOutputPublished")?;
    let terminal_input_passthrough = flag("terminalInputPassthrough")?;

    for (i, output) in output_payloads.iter().enumerate() {
        check_output(i, output)?;
    }

    let any_flag = terminal_output_published || terminal_input_passthrough;
    match outcome {
        Outcome::Completed => {
            if await_suspension.is_some() {
                return Err("COMPLETED must not carry awaitSuspension".into());
            }
            if failure.is_some() {
                return Err("COMPLETED must not carry failure".into());
            }
            if terminal_output_published && terminal_input_passthrough {
                return Err(
                    "terminalOutputPublished and terminalInputPassthrough are both true".into(),
                );
            }
            if terminal_input_passthrough && !output_payloads.is_empty() {
                return Err("terminalInputPassthrough with non-empty outputPayloads".into());
            }
        }
        Outcome::WaitingExternal => {
            if await_suspension.is_none() {
                return Err("WAITING_EXTERNAL requires awaitSuspension".into());
            }
            if !output_payloads.is_empty() {
                return Err("WAITING_EXTERNAL must have empty outputPayloads".into());
            }
            if failure.is_some() {
                return Err("WAITING_EXTERNAL must not carry failure".into());
            }
            if any_flag {
                return Err("WAITING_EXTERNAL must have both terminal flags false".into());
            }
        }
        Outcome::Failed => {
            if failure.is_none() {
                return Err("FAILED requires failure".into());
            }
            if !output_payloads.is_empty() {
                return Err("FAILED must have empty outputPayloads".into());
            }
            if await_suspension.is_some() {
                return Err("FAILED must not carry awaitSuspension".into());
            }
            if any_flag {
                return Err("FAILED must have both terminal flags false".into());
            }
        }
    }

    Ok(TransitionResult {
        outcome,
        output_payloads,
        await_suspension,
        failure,
        terminal_output_published,
        terminal_input_passthrough,
    })
}

/// §7.4: an output is an object with string `payloadTypeId`,
/// `payloadEncoding` and `payload`, the first two non-blank.
fn check_output(index: usize, output: &RawValue) -> Result<(), String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(output.get()) else {
        return Err(format!("outputPayloads[{index}] must be an object"));
    };
    for name in ["payloadTypeId", "payloadEncoding", "payload"] {
        match map.get(name) {
            Some(Value::String(s)) => {
                if name != "payload" && s.trim().is_empty() {
                    return Err(format!("outputPayloads[{index}].{name} is blank"));
                }
            }
            _ => return Err(format!("outputPayloads[{index}].{name} must be a string")),
        }
    }
    Ok(())
}

/// §7.6: `failureClass` a non-blank string, `message` a string or null,
/// `retryable` a boolean when present; other members ignored.
fn parse_failure(raw: &RawValue) -> Result<FailureEnvelope, String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(raw.get()) else {
        return Err("failure must be an object or null".into());
    };
    let failure_class = match map.get("failureClass") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("failure.failureClass is blank".into()),
        None | Some(Value::Null) => return Err("failure.failureClass is required".into()),
        Some(_) => return Err("failure.failureClass must be a string".into()),
    };
    let message = match map.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("failure.message must be a string or null".into()),
    };
    let retryable = match map.get("retryable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err("failure.retryable must be a boolean".into()),
    };
    Ok(FailureEnvelope {
        failure_class,
        message,
        retryable,
    })
}

/// A transition failure the coordinator classifies (§3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionFailure {
    /// `errorCode`, e.g. `WORKER_TIMEOUT`, `TransitionWorkerFailureException`.
    pub code: String,
    /// `errorMessage` (cut to 512 characters when stored).
    pub message: String,
    pub retryable: bool,
}

impl TransitionFailure {
    /// A failure with this code, message and retryability.
    pub fn new(code: &str, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            retryable,
        }
    }
    /// §3.7 for a worker `FAILED` outcome.
    pub fn from_worker(failure: &FailureEnvelope, extra_non_retryable: &[String]) -> Self {
        let class = failure.failure_class.as_str();
        let message = failure.message.as_deref().filter(|m| !m.trim().is_empty());
        if failure.is_retryable(extra_non_retryable) {
            let text = match message {
                Some(m) => format!("{class}: {m}"),
                None => class.to_string(),
            };
            Self::new("TransitionWorkerFailureException", text, true)
        } else {
            Self::new("NonRetryableException", message.unwrap_or(class), false)
        }
    }
}

/// §7.8 capabilities document (unknown members ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerCapabilities {
    pub protocol_version: String,
    #[serde(default)]
    pub provider_name: String,
    pub pipeline_id: String,
    pub contract_version: String,
    pub release_version: String,
    #[serde(default)]
    pub artifact_id: String,
    #[serde(default)]
    pub artifact_digest: String,
    #[serde(default)]
    pub payload_encodings: Vec<String>,
    #[serde(default)]
    pub worker_protocols: Vec<String>,
}

/// The identity a worker must serve (registered members, `RELEASES.md` §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedIdentity<'a> {
    pub pipeline_id: &'a str,
    pub contract_version: &'a str,
    pub release_version: &'a str,
    pub artifact_id: &'a str,
    pub artifact_digest: &'a str,
}

impl WorkerCapabilities {
    /// §7.8 compatibility; Err names the first differing member.
    pub fn check(&self, expected: &ExpectedIdentity<'_>) -> Result<(), String> {
        let differs = |member: &str, worker: &str, registered: &str| {
            Err(format!(
                "{member} differs: worker reports {}, expected {}",
                quote(worker),
                quote(registered)
            ))
        };
        if self.protocol_version != "1" {
            return differs("protocolVersion", &self.protocol_version, "1");
        }
        let exact = [
            ("pipelineId", &self.pipeline_id, expected.pipeline_id),
            (
                "contractVersion",
                &self.contract_version,
                expected.contract_version,
            ),
            (
                "releaseVersion",
                &self.release_version,
                expected.release_version,
            ),
        ];
        for (member, worker, registered) in exact {
            if worker != registered {
                return differs(member, worker, registered);
            }
        }
        let where_both_set = [
            ("artifactId", &self.artifact_id, expected.artifact_id),
            (
                "artifactDigest",
                &self.artifact_digest,
                expected.artifact_digest,
            ),
        ];
        for (member, worker, registered) in where_both_set {
            let both_set = !worker.trim().is_empty() && !registered.trim().is_empty();
            if both_set && worker != registered {
                return differs(member, worker, registered);
            }
        }
        Ok(())
    }
}

/// A value as a JSON string literal, cut to 128 characters (for messages).
fn quote(value: &str) -> String {
    let cut: String = value.chars().take(128).collect();
    let quoted = serde_json::to_string(&cut).unwrap_or_default();
    if cut.len() < value.len() {
        format!("{quoted}…")
    } else {
        quoted
    }
}

/// Parses a §7.8 capabilities document. The four identity-bearing members
/// `protocolVersion`, `pipelineId`, `contractVersion`, `releaseVersion` must
/// be strings; the others may be absent or `null` (TPF workers serialise
/// unset members as `null`); unknown members are ignored. Err says what was
/// wrong, never quoting the body.
pub fn parse_capabilities(body: &[u8]) -> Result<WorkerCapabilities, String> {
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("capabilities document is not a JSON object".into()),
        Err(_) => return Err("capabilities document is not valid JSON".into()),
    };
    let required = |name: &str| -> Result<String, String> {
        match map.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(format!("capabilities {name} is required")),
            Some(_) => Err(format!("capabilities {name} must be a string")),
        }
    };
    let optional = |name: &str| -> Result<String, String> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("capabilities {name} must be a string")),
        }
    };
    let list = |name: &str| -> Result<Vec<String>, String> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(format!("capabilities {name} must hold strings")),
                })
                .collect(),
            Some(_) => Err(format!("capabilities {name} must be an array")),
        }
    };
    Ok(WorkerCapabilities {
        protocol_version: required("protocolVersion")?,
        provider_name: optional("providerName")?,
        pipeline_id: required("pipelineId")?,
        contract_version: required("contractVersion")?,
        release_version: required("releaseVersion")?,
        artifact_id: optional("artifactId")?,
        artifact_digest: optional("artifactDigest")?,
        payload_encodings: list("payloadEncodings")?,
        worker_protocols: list("workerProtocols")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "tpf-demo-worker-secret";
    const TS: &str = "2025-01-15T10:30:00.000Z";
    const NONCE: &str = "0b8f3c2e-5d41-4a7b-9c6e-2f1d8a3b7e90";
    const BODY_A: &str = r#"{"tenantId":"acme","executionId":"7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34","pipelineId":"greeting","contractVersion":"v1","releaseVersion":"1.0.0","currentStepIndex":0,"stopBeforeStepIndex":-1,"attempt":0,"resultShape":"SINGLE","executionVersion":1,"transitionKey":"7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34:0:0","traceId":"7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34:0:0","payloadTypeId":"org.pipelineframework.orchestrator.ExecutionInputSnapshot","payloadEncoding":"application/tpf-transition+json","payload":"{\"shape\":\"UNI\",\"payload\":{\"payloadTypeId\":\"java.lang.String\",\"payloadEncoding\":\"application/tpf-transition+json\",\"payload\":\"\\\"hello\\\"\"},\"items\":[]}"}"#;

    #[test]
    fn proto_01_test_vector_a_execute() {
        assert_eq!(BODY_A.len(), 670);
        assert_eq!(
            hex::encode(Sha256::digest(BODY_A.as_bytes())),
            "cc3fbce4d97b020555a4dab5904828698a812d15fb3a0e84ad07bfbe168e7114"
        );
        let canonical = canonical_string("POST", EXECUTE_PATH, TS, NONCE, BODY_A.as_bytes());
        assert_eq!(
            canonical,
            "POST\n/pipeline/worker/transitions/execute\n2025-01-15T10:30:00.000Z\n0b8f3c2e-5d41-4a7b-9c6e-2f1d8a3b7e90\ncc3fbce4d97b020555a4dab5904828698a812d15fb3a0e84ad07bfbe168e7114"
        );
        assert_eq!(canonical.len(), 168);
        let signature = sign(SECRET, "POST", EXECUTE_PATH, TS, NONCE, BODY_A.as_bytes());
        assert_eq!(
            signature,
            "95739f4f920ca276e4d5feee5978f3060c79256ce70a1312c4e57959515e39d6"
        );
        assert!(verify_signature(
            SECRET,
            "POST",
            EXECUTE_PATH,
            TS,
            NONCE,
            BODY_A.as_bytes(),
            &signature
        ));
    }

    #[test]
    fn proto_01_test_vector_b_capabilities() {
        let canonical = canonical_string("GET", CAPABILITIES_PATH, TS, NONCE, b"");
        assert_eq!(
            canonical,
            "GET\n/pipeline/worker/capabilities\n2025-01-15T10:30:00.000Z\n0b8f3c2e-5d41-4a7b-9c6e-2f1d8a3b7e90\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(canonical.ends_with(EMPTY_BODY_SHA256));
        let signature = sign(SECRET, "GET", CAPABILITIES_PATH, TS, NONCE, b"");
        assert_eq!(
            signature,
            "848f9fb550c242d647e43a84d35d93af9ee4aeccbbc5a9d620f04f9edb42c87e"
        );
        assert!(verify_signature(
            SECRET,
            "GET",
            CAPABILITIES_PATH,
            TS,
            NONCE,
            b"",
            &signature
        ));
    }

    #[test]
    fn the_command_serialises_to_test_vector_a_body() {
        let command: TransitionCommand = serde_json::from_str(BODY_A).unwrap();
        assert_eq!(serde_json::to_string(&command).unwrap(), BODY_A);
    }

    #[test]
    fn verify_signature_rejects_any_difference() {
        let good = sign(SECRET, "GET", CAPABILITIES_PATH, TS, NONCE, b"");
        let check = |secret: &str, method: &str, path: &str, body: &[u8], presented: &str| {
            verify_signature(secret, method, path, TS, NONCE, body, presented)
        };
        assert!(check(SECRET, "GET", CAPABILITIES_PATH, b"", &good));
        assert!(!check("other", "GET", CAPABILITIES_PATH, b"", &good));
        assert!(!check(SECRET, "POST", CAPABILITIES_PATH, b"", &good));
        assert!(!check(SECRET, "GET", EXECUTE_PATH, b"", &good));
        assert!(!check(SECRET, "GET", CAPABILITIES_PATH, b"x", &good));
        assert!(!check(
            SECRET,
            "GET",
            CAPABILITIES_PATH,
            b"",
            &good.to_uppercase()
        ));
        assert!(!check(SECRET, "GET", CAPABILITIES_PATH, b"", &good[..63]));
        assert!(!check(SECRET, "GET", CAPABILITIES_PATH, b"", ""));
        assert!(!verify_signature(
            SECRET,
            "GET",
            CAPABILITIES_PATH,
            TS,
            "other",
            b"",
            &good
        ));
        assert!(!verify_signature(
            SECRET,
            "GET",
            CAPABILITIES_PATH,
            "2025-01-15T10:30:00.001Z",
            NONCE,
            b"",
            &good
        ));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(1_736_937_000_000), TS);
        assert_eq!(
            format_timestamp(951_782_400_123),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            format_timestamp(4_107_542_399_999),
            "2100-02-28T23:59:59.999Z"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
    }

    fn failure(class: &str, message: Option<&str>, retryable: Option<bool>) -> FailureEnvelope {
        FailureEnvelope {
            failure_class: class.into(),
            message: message.map(Into::into),
            retryable,
        }
    }

    #[test]
    fn fail_04_non_retryable_exception_is_not_retried() {
        let f = failure(
            "org.pipelineframework.step.NonRetryableException",
            Some("bad input"),
            None,
        );
        assert!(!f.is_retryable(&[]));
        assert_eq!(
            TransitionFailure::from_worker(&f, &[]),
            TransitionFailure::new("NonRetryableException", "bad input", false)
        );
        // A blank message falls back to the class.
        let blank = failure(
            "org.pipelineframework.step.NonRetryableException",
            Some("  "),
            None,
        );
        assert_eq!(
            TransitionFailure::from_worker(&blank, &[]).message,
            "org.pipelineframework.step.NonRetryableException"
        );
        let none = failure(
            "org.pipelineframework.step.NonRetryableException",
            None,
            None,
        );
        assert_eq!(
            TransitionFailure::from_worker(&none, &[]).message,
            "org.pipelineframework.step.NonRetryableException"
        );
    }

    #[test]
    fn fail_05_framework_classes_configured_classes_and_retryable_false() {
        for class in NON_RETRYABLE_CLASSES {
            assert!(!failure(class, None, None).is_retryable(&[]), "{class}");
        }
        let extra = vec!["com.acme.Fatal".to_string()];
        let custom = failure("com.acme.Fatal", Some("boom"), None);
        assert!(custom.is_retryable(&[]));
        assert!(!custom.is_retryable(&extra));
        let t = TransitionFailure::from_worker(&custom, &extra);
        assert_eq!(
            t,
            TransitionFailure::new("NonRetryableException", "boom", false)
        );
        let stated = failure("java.lang.IllegalStateException", Some("no"), Some(false));
        assert!(!stated.is_retryable(&[]));
        assert_eq!(
            TransitionFailure::from_worker(&stated, &[]).code,
            "NonRetryableException"
        );
        // `retryable: true` does not override a non-retryable class.
        let forced = failure(NON_RETRYABLE_CLASSES[0], None, Some(true));
        assert!(!forced.is_retryable(&[]));
    }

    #[test]
    fn fail_06_other_classes_are_retried() {
        let f = failure(
            "java.lang.IllegalArgumentException",
            Some("identity mismatch"),
            None,
        );
        assert!(f.is_retryable(&[]));
        assert_eq!(
            TransitionFailure::from_worker(&f, &[]),
            TransitionFailure::new(
                "TransitionWorkerFailureException",
                "java.lang.IllegalArgumentException: identity mismatch",
                true
            )
        );
        let bare = failure("java.io.IOException", None, Some(true));
        assert_eq!(
            TransitionFailure::from_worker(&bare, &[]),
            TransitionFailure::new(
                "TransitionWorkerFailureException",
                "java.io.IOException",
                true
            )
        );
        let blank = failure("java.io.IOException", Some(""), None);
        assert_eq!(
            TransitionFailure::from_worker(&blank, &[]).message,
            "java.io.IOException"
        );
    }

    const OUT: &str = r#"{"payloadTypeId":"java.lang.String","payloadEncoding":"application/tpf-transition+json","payload":"\"hi\""}"#;

    fn parse(body: &str) -> Result<TransitionResult, String> {
        parse_result(body.as_bytes())
    }

    #[test]
    fn completed_envelopes_parse_and_keep_outputs_verbatim() {
        let body = format!(
            r#"{{"outcome":"COMPLETED","outputPayloads":[{OUT}, {{ "payloadTypeId" : "t", "payloadEncoding":"e","payload":"", "extra": 1 }}],"awaitSuspension":null,"failure":null,"terminalOutputPublished":false,"terminalInputPassthrough":false,"unknown":{{"x":1}}}}"#
        );
        let r = parse(&body).unwrap();
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(r.output_payloads.len(), 2);
        assert_eq!(r.output_payloads[0].get(), OUT);
        assert_eq!(
            r.output_payloads[1].get(),
            r#"{ "payloadTypeId" : "t", "payloadEncoding":"e","payload":"", "extra": 1 }"#
        );
        assert!(r.await_suspension.is_none() && r.failure.is_none());
        assert!(!r.terminal_output_published && !r.terminal_input_passthrough);

        // Absent or null outputs are empty; absent flags are false.
        let r = parse(r#"{"outcome":"COMPLETED"}"#).unwrap();
        assert!(r.output_payloads.is_empty());
        let r = parse(
            r#"{"outcome":"COMPLETED","outputPayloads":null,"terminalOutputPublished":true}"#,
        )
        .unwrap();
        assert!(r.output_payloads.is_empty() && r.terminal_output_published);
        let r =
            parse(r#"{"outcome":"COMPLETED","outputPayloads":[],"terminalInputPassthrough":true}"#)
                .unwrap();
        assert!(r.terminal_input_passthrough);
    }

    #[test]
    fn waiting_and_failed_envelopes_parse() {
        let r = parse(
            r#"{"outcome":"WAITING_EXTERNAL","outputPayloads":[],"awaitSuspension":{"unitId":"u"},"failure":null}"#,
        )
        .unwrap();
        assert_eq!(r.outcome, Outcome::WaitingExternal);
        assert_eq!(r.await_suspension.unwrap().get(), r#"{"unitId":"u"}"#);

        let r = parse(
            r#"{"outcome":"FAILED","failure":{"failureClass":"java.lang.RuntimeException","message":null,"stack":"ignored"}}"#,
        )
        .unwrap();
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(
            r.failure.unwrap(),
            failure("java.lang.RuntimeException", None, None)
        );
        let r = parse(
            r#"{"outcome":"FAILED","failure":{"failureClass":"X","message":"m","retryable":false}}"#,
        )
        .unwrap();
        assert_eq!(r.failure.unwrap(), failure("X", Some("m"), Some(false)));
    }

    #[test]
    fn fail_08_invalid_envelopes_are_rejected() {
        let fail = r#"{"failureClass":"X"}"#;
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("null", "not a JSON object"),
            ("[]", "not a JSON object"),
            ("\"COMPLETED\"", "not a JSON object"),
            ("{", "not valid JSON"),
            ("<html>", "not valid JSON"),
            ("{}", "outcome is required"),
            (r#"{"outcome":null}"#, "outcome is required"),
            (r#"{"outcome":"DONE"}"#, "outcome must be"),
            (r#"{"outcome":1}"#, "outcome must be a string"),
            (
                r#"{"outcome":"COMPLETED","outputPayloads":{}}"#,
                "outputPayloads must be an array",
            ),
            (
                r#"{"outcome":"COMPLETED","outputPayloads":[1]}"#,
                "outputPayloads[0] must be an object",
            ),
            (
                r#"{"outcome":"COMPLETED","outputPayloads":[{"payloadTypeId":" ","payloadEncoding":"e","payload":""}]}"#,
                "outputPayloads[0].payloadTypeId is blank",
            ),
            (
                r#"{"outcome":"COMPLETED","outputPayloads":[{"payloadTypeId":"t","payloadEncoding":"","payload":""}]}"#,
                "outputPayloads[0].payloadEncoding is blank",
            ),
            (
                r#"{"outcome":"COMPLETED","outputPayloads":[{"payloadTypeId":"t","payloadEncoding":"e"}]}"#,
                "outputPayloads[0].payload must be a string",
            ),
            (
                r#"{"outcome":"COMPLETED","outputPayloads":[{"payloadTypeId":"t","payloadEncoding":"e","payload":{}}]}"#,
                "outputPayloads[0].payload must be a string",
            ),
            (
                &format!(r#"{{"outcome":"COMPLETED","failure":{fail}}}"#),
                "COMPLETED must not carry failure",
            ),
            (
                r#"{"outcome":"COMPLETED","awaitSuspension":{}}"#,
                "COMPLETED must not carry awaitSuspension",
            ),
            (
                r#"{"outcome":"COMPLETED","terminalOutputPublished":true,"terminalInputPassthrough":true}"#,
                "both true",
            ),
            (
                &format!(
                    r#"{{"outcome":"COMPLETED","outputPayloads":[{OUT}],"terminalInputPassthrough":true}}"#
                ),
                "terminalInputPassthrough with non-empty outputPayloads",
            ),
            (
                r#"{"outcome":"COMPLETED","terminalOutputPublished":"yes"}"#,
                "must be a boolean",
            ),
            (
                r#"{"outcome":"WAITING_EXTERNAL"}"#,
                "WAITING_EXTERNAL requires awaitSuspension",
            ),
            (
                r#"{"outcome":"WAITING_EXTERNAL","awaitSuspension":[]}"#,
                "awaitSuspension must be an object",
            ),
            (
                &format!(
                    r#"{{"outcome":"WAITING_EXTERNAL","awaitSuspension":{{}},"outputPayloads":[{OUT}]}}"#
                ),
                "WAITING_EXTERNAL must have empty outputPayloads",
            ),
            (
                &format!(
                    r#"{{"outcome":"WAITING_EXTERNAL","awaitSuspension":{{}},"failure":{fail}}}"#
                ),
                "WAITING_EXTERNAL must not carry failure",
            ),
            (
                r#"{"outcome":"WAITING_EXTERNAL","awaitSuspension":{},"terminalOutputPublished":true}"#,
                "WAITING_EXTERNAL must have both terminal flags false",
            ),
            (r#"{"outcome":"FAILED"}"#, "FAILED requires failure"),
            (
                r#"{"outcome":"FAILED","failure":null}"#,
                "FAILED requires failure",
            ),
            (
                &format!(r#"{{"outcome":"FAILED","failure":{fail},"outputPayloads":[{OUT}]}}"#),
                "FAILED must have empty outputPayloads",
            ),
            (
                &format!(r#"{{"outcome":"FAILED","failure":{fail},"awaitSuspension":{{}}}}"#),
                "FAILED must not carry awaitSuspension",
            ),
            (
                &format!(
                    r#"{{"outcome":"FAILED","failure":{fail},"terminalInputPassthrough":true}}"#
                ),
                "FAILED must have both terminal flags false",
            ),
            (
                r#"{"outcome":"FAILED","failure":"boom"}"#,
                "failure must be an object",
            ),
            (
                r#"{"outcome":"FAILED","failure":{}}"#,
                "failure.failureClass is required",
            ),
            (
                r#"{"outcome":"FAILED","failure":{"failureClass":" "}}"#,
                "failure.failureClass is blank",
            ),
            (
                r#"{"outcome":"FAILED","failure":{"failureClass":1}}"#,
                "failureClass must be a string",
            ),
            (
                r#"{"outcome":"FAILED","failure":{"failureClass":"X","message":1}}"#,
                "failure.message",
            ),
            (
                r#"{"outcome":"FAILED","failure":{"failureClass":"X","retryable":"no"}}"#,
                "failure.retryable",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(body)
                .err()
                .unwrap_or_else(|| panic!("accepted {body}"));
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn invalid_envelope_messages_never_quote_the_body() {
        let secretish = "SENSITIVE-VALUE-42";
        for body in [
            format!(r#"{{"outcome":"{secretish}"}}"#),
            format!(r#"{{"outcome":"COMPLETED","outputPayloads":["{secretish}"]}}"#),
            format!(
                r#"{{"outcome":"FAILED","failure":{{"failureClass":"X","message":["{secretish}"]}}}}"#
            ),
            format!(r#"{{"outcome":"COMPLETED" "{secretish}"}}"#),
            format!(r#""{secretish}""#),
        ] {
            let err = parse(&body).unwrap_err();
            assert!(!err.contains(secretish), "{err}");
        }
    }

    fn caps() -> WorkerCapabilities {
        parse_capabilities(
            br#"{"protocolVersion":"1","providerName":"rest","pipelineId":"p","contractVersion":"c","releaseVersion":"r","artifactId":"a","artifactDigest":"sha256:aa","payloadEncodings":["application/tpf-transition-envelope+json"],"workerProtocols":["rest"],"extra":true}"#,
        )
        .unwrap()
    }

    fn expected<'a>(artifact_id: &'a str, artifact_digest: &'a str) -> ExpectedIdentity<'a> {
        ExpectedIdentity {
            pipeline_id: "p",
            contract_version: "c",
            release_version: "r",
            artifact_id,
            artifact_digest,
        }
    }

    #[test]
    fn capabilities_check_accepts_a_matching_worker() {
        let c = caps();
        assert_eq!(c.provider_name, "rest");
        assert_eq!(c.worker_protocols, vec!["rest".to_string()]);
        assert_eq!(c.check(&expected("a", "sha256:aa")), Ok(()));
        // Artifact members compare only where both sides are non-blank.
        assert_eq!(c.check(&expected("", "")), Ok(()));
        assert_eq!(c.check(&expected("  ", "")), Ok(()));
        let blank_worker = WorkerCapabilities {
            artifact_id: String::new(),
            artifact_digest: " ".into(),
            ..caps()
        };
        assert_eq!(blank_worker.check(&expected("other", "sha256:bb")), Ok(()));
    }

    #[test]
    fn capabilities_check_names_the_first_differing_member() {
        let first_word = |c: &WorkerCapabilities, e: &ExpectedIdentity<'_>| {
            c.check(e)
                .unwrap_err()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        };
        let e = expected("a", "sha256:aa");
        let with = |f: fn(&mut WorkerCapabilities)| {
            let mut c = caps();
            f(&mut c);
            c
        };
        assert_eq!(
            first_word(&with(|c| c.protocol_version = "2".into()), &e),
            "protocolVersion"
        );
        assert_eq!(
            first_word(&with(|c| c.pipeline_id = "q".into()), &e),
            "pipelineId"
        );
        assert_eq!(
            first_word(&with(|c| c.contract_version = "d".into()), &e),
            "contractVersion"
        );
        assert_eq!(
            first_word(&with(|c| c.release_version = "s".into()), &e),
            "releaseVersion"
        );
        assert_eq!(
            first_word(&with(|c| c.artifact_id = "b".into()), &e),
            "artifactId"
        );
        assert_eq!(
            first_word(&with(|c| c.artifact_digest = "sha256:bb".into()), &e),
            "artifactDigest"
        );
        // Several differ: the first in order is named.
        let many = with(|c| {
            c.release_version = "s".into();
            c.contract_version = "d".into();
        });
        assert_eq!(first_word(&many, &e), "contractVersion");
        let msg = with(|c| c.release_version = "2.0".into())
            .check(&e)
            .unwrap_err();
        assert_eq!(
            msg,
            r#"releaseVersion differs: worker reports "2.0", expected "r""#
        );
    }

    #[test]
    fn capabilities_documents_tolerate_null_optional_members() {
        let c = parse_capabilities(
            br#"{"protocolVersion":"1","providerName":null,"pipelineId":"p","contractVersion":"c","releaseVersion":"r","artifactId":null,"artifactDigest":null,"payloadEncodings":null}"#,
        )
        .unwrap();
        assert_eq!(c.artifact_id, "");
        assert!(c.payload_encodings.is_empty() && c.worker_protocols.is_empty());
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{",
            br#"{"pipelineId":"p","contractVersion":"c","releaseVersion":"r"}"#,
            br#"{"protocolVersion":1,"pipelineId":"p","contractVersion":"c","releaseVersion":"r"}"#,
            br#"{"protocolVersion":"1","pipelineId":"p","contractVersion":"c","releaseVersion":null}"#,
            br#"{"protocolVersion":"1","pipelineId":"p","contractVersion":"c","releaseVersion":"r","artifactId":5}"#,
            br#"{"protocolVersion":"1","pipelineId":"p","contractVersion":"c","releaseVersion":"r","workerProtocols":[1]}"#,
        ] {
            assert!(parse_capabilities(bad).is_err());
        }
    }
}
