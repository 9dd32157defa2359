//! The REST worker transport (`EXECUTION.md` §7.1–§7.8): signed execute
//! calls and capabilities probes over reqwest, with every outcome mapped to
//! the failure codes of §3.7. Bodies, secrets and payloads are never logged.

use async_trait::async_trait;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::domain::worker_protocol::{
    format_timestamp, parse_capabilities, parse_result, sign, FailureEnvelope, TransitionCommand,
    TransitionFailure, TransitionResult, WorkerCapabilities, CAPABILITIES_PATH, EXECUTE_PATH,
    NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use crate::ports::{ProbeError, WorkerTransport};
use crate::providers::secrets::CachedSecret;

/// Request timeout of the capabilities probe (`RELEASES.md` §6.1).
pub const CAPABILITIES_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Failure code: connect, DNS or TLS failure.
pub const WORKER_UNREACHABLE: &str = "WORKER_UNREACHABLE";
/// Failure code: no complete response within the request timeout.
pub const WORKER_TIMEOUT: &str = "WORKER_TIMEOUT";
/// Failure code: a status outside 200–299 (redirects included).
pub const WORKER_HTTP_ERROR: &str = "WORKER_HTTP_ERROR";
/// Failure code: a body larger than `TPF_WORKER_MAX_RESPONSE_BYTES`.
pub const WORKER_RESPONSE_TOO_LARGE: &str = "WORKER_RESPONSE_TOO_LARGE";
/// Failure code: empty body, malformed JSON or an invalid result envelope.
pub const WORKER_RESPONSE_INVALID: &str = "WORKER_RESPONSE_INVALID";
/// Failure code: the worker shared secret cannot be resolved.
pub const WORKER_SECRET_UNAVAILABLE: &str = "WORKER_SECRET_UNAVAILABLE";

/// Calls TPF REST workers: signed (`EXECUTION.md` §7.2), no redirects
/// followed, TLS certificates verified, a connect timeout and a timeout for
/// the whole exchange, response bodies read up to a size limit.
pub struct RestWorkerTransport {
    /// Built on the first call: building it loads and parses the platform's
    /// root certificates (several ms of CPU), a cost a cold start should not
    /// pay when the function answers without calling a worker (health,
    /// status, submit, a sweep without follow-ups). See BENCHMARKS.md.
    client: std::sync::OnceLock<reqwest::Client>,
    secret: CachedSecret,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_response_bytes: usize,
    extra_non_retryable: Vec<String>,
}

impl std::fmt::Debug for RestWorkerTransport {
    // Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestWorkerTransport")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("extra_non_retryable", &self.extra_non_retryable)
            .finish_non_exhaustive()
    }
}

/// Why a response body could not be read whole.
enum ReadError {
    TooLarge,
    Timeout,
    Broken(String),
}

impl RestWorkerTransport {
    /// A transport signing with `secret`, using the `TPF_WORKER_REST_*`
    /// timeouts, `TPF_WORKER_MAX_RESPONSE_BYTES` and
    /// `TPF_NON_RETRYABLE_FAILURE_CLASSES`; Err when the HTTP client cannot
    /// be built or a timeout is zero.
    pub fn new(
        secret: CachedSecret,
        connect_timeout: Duration,
        request_timeout: Duration,
        max_response_bytes: usize,
        extra_non_retryable: Vec<String>,
    ) -> Result<Self, String> {
        if connect_timeout.is_zero() || request_timeout.is_zero() {
            return Err("worker connect and request timeouts must be positive".into());
        }
        Ok(Self {
            client: std::sync::OnceLock::new(),
            secret,
            connect_timeout,
            request_timeout,
            max_response_bytes,
            extra_non_retryable,
        })
    }

    /// The extra non-retryable failure classes this transport was built with.
    pub fn extra_non_retryable(&self) -> &[String] {
        &self.extra_non_retryable
    }

    /// §3.7 classification of a worker `FAILED` outcome with this
    /// transport's extra non-retryable classes.
    pub fn classify_failure(&self, failure: &FailureEnvelope) -> TransitionFailure {
        TransitionFailure::from_worker(failure, &self.extra_non_retryable)
    }

    /// The HTTP client, built on first use; Err (a TLS backend that cannot
    /// be initialised) is retried on the next call.
    fn client(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        crate::providers::aws_sdk::install_tls_crypto();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            // Worker calls go straight to the registered endpoint.
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the REST worker HTTP client: {e}"))?;
        // A concurrent first call may have won; either client is equivalent.
        Ok(self.client.get_or_init(|| client))
    }

    /// A request to `url` carrying the three signature headers over `body`,
    /// signed with the fixed protocol `path`.
    fn signed(
        &self,
        method: Method,
        url: Url,
        path: &str,
        secret: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::RequestBuilder, String> {
        let timestamp = format_timestamp(now_ms());
        let nonce = uuid::Uuid::new_v4().to_string();
        let signature = sign(secret, method.as_str(), path, &timestamp, &nonce, &body);
        let mut request = self
            .client()?
            .request(method, url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(TIMESTAMP_HEADER, timestamp)
            .header(NONCE_HEADER, nonce)
            .header(SIGNATURE_HEADER, signature);
        if !body.is_empty() {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        Ok(request)
    }

    /// Reads the body, stopping as soon as it exceeds the size limit.
    async fn read_limited(&self, response: &mut reqwest::Response) -> Result<Vec<u8>, ReadError> {
        let max = self.max_response_bytes;
        let declared = response.content_length();
        if declared.is_some_and(|len| len > max as u64) {
            return Err(ReadError::TooLarge);
        }
        let initial = declared.map_or(8 * 1024, |len| len as usize).min(max);
        let mut body = Vec::with_capacity(initial);
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if chunk.len() > max - body.len() {
                        return Err(ReadError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => return Err(ReadError::Timeout),
                Err(e) => return Err(ReadError::Broken(cause(&e))),
            }
        }
    }

    /// §3.7 failure for an error of sending the execute request.
    fn send_failure(&self, e: &reqwest::Error, execution_id: &str) -> TransitionFailure {
        if e.is_connect() {
            let why = if e.is_timeout() {
                format!(
                    "connect timed out after {} ms",
                    self.connect_timeout.as_millis()
                )
            } else {
                cause(e)
            };
            unreachable(execution_id, &why)
        } else if e.is_timeout() {
            self.timeout_failure(execution_id)
        } else {
            unreachable(execution_id, &cause(e))
        }
    }

    fn timeout_failure(&self, execution_id: &str) -> TransitionFailure {
        TransitionFailure::new(
            WORKER_TIMEOUT,
            format!(
                "REST transition worker timed out after {} ms for execution {execution_id}",
                self.request_timeout.as_millis()
            ),
            true,
        )
    }
}

#[async_trait]
impl WorkerTransport for RestWorkerTransport {
    async fn execute(
        &self,
        endpoint: &str,
        command: &TransitionCommand,
    ) -> Result<TransitionResult, TransitionFailure> {
        let id = command.execution_id.as_str();
        let Some(secret) = self.secret.get().await else {
            tracing::warn!(execution_id = id, "worker shared secret cannot be resolved");
            return Err(TransitionFailure::new(
                WORKER_SECRET_UNAVAILABLE,
                "worker shared secret cannot be resolved",
                true,
            ));
        };
        let url = endpoint_url(endpoint, EXECUTE_PATH).map_err(|why| unreachable(id, &why))?;
        // Compact JSON; the signature covers exactly these bytes.
        let body = serde_json::to_vec(command).expect("a TransitionCommand always serialises");

        let request = self
            .signed(Method::POST, url, EXECUTE_PATH, &secret, body)
            .map_err(|why| unreachable(id, &why))?;
        let result = match request.send().await {
            Err(e) => Err(self.send_failure(&e, id)),
            Ok(response) if !response.status().is_success() => {
                // The body is not read (nor logged).
                Err(TransitionFailure::new(
                    WORKER_HTTP_ERROR,
                    format!(
                        "REST transition worker returned HTTP {} for execution {id} with response body omitted",
                        response.status().as_u16()
                    ),
                    true,
                ))
            }
            Ok(mut response) => match self.read_limited(&mut response).await {
                Err(ReadError::TooLarge) => Err(TransitionFailure::new(
                    WORKER_RESPONSE_TOO_LARGE,
                    format!(
                        "REST transition worker response for execution {id} exceeds {} bytes",
                        self.max_response_bytes
                    ),
                    false,
                )),
                Err(ReadError::Timeout) => Err(self.timeout_failure(id)),
                Err(ReadError::Broken(why)) => Err(TransitionFailure::new(
                    WORKER_RESPONSE_INVALID,
                    format!("REST transition worker response for execution {id} could not be read: {why}"),
                    true,
                )),
                Ok(body) => parse_result(&body).map_err(|why| {
                    TransitionFailure::new(
                        WORKER_RESPONSE_INVALID,
                        format!("REST transition worker returned an invalid result for execution {id}: {why}"),
                        true,
                    )
                }),
            },
        };
        if let Err(failure) = &result {
            tracing::debug!(execution_id = id, code = %failure.code, "REST transition worker call failed");
        }
        result
    }

    async fn capabilities(&self, endpoint: &str) -> Result<WorkerCapabilities, ProbeError> {
        let secret = self
            .secret
            .get()
            .await
            .ok_or(ProbeError::SecretUnavailable)?;
        let url = endpoint_url(endpoint, CAPABILITIES_PATH).map_err(ProbeError::Unreachable)?;
        let request = self
            .signed(Method::GET, url, CAPABILITIES_PATH, &secret, Vec::new())
            .map_err(ProbeError::Unreachable)?
            .timeout(CAPABILITIES_REQUEST_TIMEOUT);
        let probe_timeout = || {
            format!(
                "capabilities request timed out after {} ms",
                CAPABILITIES_REQUEST_TIMEOUT.as_millis()
            )
        };
        let mut response = request.send().await.map_err(|e| {
            ProbeError::Unreachable(if e.is_connect() {
                if e.is_timeout() {
                    format!(
                        "connect timed out after {} ms",
                        self.connect_timeout.as_millis()
                    )
                } else {
                    cause(&e)
                }
            } else if e.is_timeout() {
                probe_timeout()
            } else {
                cause(&e)
            })
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(ProbeError::Unreachable(format!(
                "capabilities returned HTTP {}",
                status.as_u16()
            )));
        }
        let body = self.read_limited(&mut response).await.map_err(|e| {
            ProbeError::Unreachable(match e {
                ReadError::TooLarge => format!(
                    "capabilities response exceeds {} bytes",
                    self.max_response_bytes
                ),
                ReadError::Timeout => probe_timeout(),
                ReadError::Broken(why) => format!("capabilities response could not be read: {why}"),
            })
        })?;
        parse_capabilities(&body).map_err(ProbeError::Unreachable)
    }
}

/// `{endpoint with one trailing / removed}{path}`; the endpoint must be an
/// absolute http(s) URL with a host and no query or fragment.
fn endpoint_url(endpoint: &str, path: &str) -> Result<Url, String> {
    let base = endpoint.strip_suffix('/').unwrap_or(endpoint);
    let parsed = Url::parse(base).map_err(|_| "worker endpoint is not a valid URL".to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("worker endpoint is not an absolute http(s) URL".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("worker endpoint has a query or fragment".into());
    }
    Url::parse(&format!("{base}{path}")).map_err(|_| "worker endpoint is not a valid URL".into())
}

/// `WORKER_UNREACHABLE` with a short cause.
fn unreachable(execution_id: &str, why: &str) -> TransitionFailure {
    TransitionFailure::new(
        WORKER_UNREACHABLE,
        format!("REST transition worker unreachable for execution {execution_id}: {why}"),
        true,
    )
}

/// The innermost cause of a transport error (e.g. `Connection refused`),
/// without the URL.
fn cause(e: &reqwest::Error) -> String {
    let mut innermost = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        innermost = Some(s);
        source = s.source();
    }
    match innermost {
        Some(s) => s.to_string().chars().take(200).collect(),
        None if e.is_body() => "body error".into(),
        None => "request error".into(),
    }
}

/// Now, in epoch milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_drop_one_trailing_slash_and_keep_prefixes() {
        let url = |e: &str| endpoint_url(e, EXECUTE_PATH).map(|u| u.to_string());
        assert_eq!(
            url("http://worker:8181").unwrap(),
            "http://worker:8181/pipeline/worker/transitions/execute"
        );
        assert_eq!(
            url("http://worker:8181/").unwrap(),
            "http://worker:8181/pipeline/worker/transitions/execute"
        );
        assert_eq!(
            url("https://w.example/prefix/").unwrap(),
            "https://w.example/prefix/pipeline/worker/transitions/execute"
        );
        assert!(url("ftp://worker").is_err());
        assert!(url("worker:8181").is_err());
        assert!(url("http://worker/?q=1").is_err());
        assert!(url("http://worker/#f").is_err());
        assert!(url("").is_err());
    }
}
