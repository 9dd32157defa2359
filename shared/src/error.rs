//! The client-facing error of every action and route (`API.md` §1.8).
//!
//! Actions decide the error code because the spec ties codes to domain
//! conditions; the HTTP layer only turns an [`ApiError`] into a response.

use std::fmt;

/// Every error code of `API.md` §1.8 and `RELEASES.md` §1.3 this build emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    InvalidId,
    MissingField,
    InvalidField,
    InvalidParameter,
    InvalidCursor,
    Unauthorized,
    TenantNotAllowed,
    RouteNotFound,
    MethodNotAllowed,
    ConcurrentModification,
    PayloadTooLarge,
    UnsupportedMediaType,
    InternalError,
    AuthUnavailable,
    DependencyUnavailable,
    LocationNotAllowed,
    DescriptorUnreadable,
    DescriptorTooLarge,
    InvalidDescriptor,
    ArtifactUnreadable,
    ArtifactTooLarge,
    ArtifactDigestMismatch,
    ContractMissing,
    ContractInvalid,
    ContractMismatch,
    ReleaseTooLarge,
    ReleaseNotFound,
    WorkerNotFound,
    ReleaseVersionConflict,
    ReleaseArtifactUnverified,
    InvalidPayload,
    IdempotencyKeyRequired,
    OutputStreamingUnsupported,
    ResumeTokenInvalid,
    ExecutionNotFound,
    InteractionNotFound,
    NoActiveRelease,
    IdempotencyKeyReused,
    InteractionAlreadyCompleted,
    InteractionTerminal,
    InteractionTimedOut,
    ExecutionNotRedrivable,
    VersionMismatch,
    WorkerCapabilitiesMismatch,
    NoHealthyWorker,
    ResumeTokenUnavailable,
    WorkerUnreachable,
}

impl ErrorCode {
    /// The stable `code` string clients branch on.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "INVALID_JSON",
            InvalidId => "INVALID_ID",
            MissingField => "MISSING_FIELD",
            InvalidField => "INVALID_FIELD",
            InvalidParameter => "INVALID_PARAMETER",
            InvalidCursor => "INVALID_CURSOR",
            Unauthorized => "UNAUTHORIZED",
            TenantNotAllowed => "TENANT_NOT_ALLOWED",
            RouteNotFound => "ROUTE_NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ConcurrentModification => "CONCURRENT_MODIFICATION",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            InternalError => "INTERNAL_ERROR",
            AuthUnavailable => "AUTH_UNAVAILABLE",
            DependencyUnavailable => "DEPENDENCY_UNAVAILABLE",
            LocationNotAllowed => "LOCATION_NOT_ALLOWED",
            DescriptorUnreadable => "DESCRIPTOR_UNREADABLE",
            DescriptorTooLarge => "DESCRIPTOR_TOO_LARGE",
            InvalidDescriptor => "INVALID_DESCRIPTOR",
            ArtifactUnreadable => "ARTIFACT_UNREADABLE",
            ArtifactTooLarge => "ARTIFACT_TOO_LARGE",
            ArtifactDigestMismatch => "ARTIFACT_DIGEST_MISMATCH",
            ContractMissing => "CONTRACT_MISSING",
            ContractInvalid => "CONTRACT_INVALID",
            ContractMismatch => "CONTRACT_MISMATCH",
            ReleaseTooLarge => "RELEASE_TOO_LARGE",
            ReleaseNotFound => "RELEASE_NOT_FOUND",
            WorkerNotFound => "WORKER_NOT_FOUND",
            ReleaseVersionConflict => "RELEASE_VERSION_CONFLICT",
            ReleaseArtifactUnverified => "RELEASE_ARTIFACT_UNVERIFIED",
            InvalidPayload => "INVALID_PAYLOAD",
            IdempotencyKeyRequired => "IDEMPOTENCY_KEY_REQUIRED",
            OutputStreamingUnsupported => "OUTPUT_STREAMING_UNSUPPORTED",
            ResumeTokenInvalid => "RESUME_TOKEN_INVALID",
            ExecutionNotFound => "EXECUTION_NOT_FOUND",
            InteractionNotFound => "INTERACTION_NOT_FOUND",
            NoActiveRelease => "NO_ACTIVE_RELEASE",
            IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            InteractionAlreadyCompleted => "INTERACTION_ALREADY_COMPLETED",
            InteractionTerminal => "INTERACTION_TERMINAL",
            InteractionTimedOut => "INTERACTION_TIMED_OUT",
            ExecutionNotRedrivable => "EXECUTION_NOT_REDRIVABLE",
            VersionMismatch => "VERSION_MISMATCH",
            WorkerCapabilitiesMismatch => "WORKER_CAPABILITIES_MISMATCH",
            NoHealthyWorker => "NO_HEALTHY_WORKER",
            ResumeTokenUnavailable => "RESUME_TOKEN_UNAVAILABLE",
            WorkerUnreachable => "WORKER_UNREACHABLE",
        }
    }

    /// The HTTP status the spec assigns to the code.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            Unauthorized => 401,
            TenantNotAllowed => 403,
            RouteNotFound | ReleaseNotFound | WorkerNotFound | ExecutionNotFound
            | InteractionNotFound => 404,
            MethodNotAllowed => 405,
            ConcurrentModification
            | ReleaseVersionConflict
            | ReleaseArtifactUnverified
            | NoActiveRelease
            | IdempotencyKeyReused
            | InteractionAlreadyCompleted
            | InteractionTerminal
            | InteractionTimedOut
            | ExecutionNotRedrivable
            | VersionMismatch
            | WorkerCapabilitiesMismatch => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            InternalError => 500,
            AuthUnavailable
            | DependencyUnavailable
            | NoHealthyWorker
            | ResumeTokenUnavailable
            | WorkerUnreachable => 503,
            _ => 400,
        }
    }
}

/// A client-facing error: a code from the spec and a message for people.
///
/// Messages never contain tokens, secrets, payloads, file bytes or link
/// targets (`API.md` §1.8, `RELEASES.md` §1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.chars().count() > 1024 {
            message = message.chars().take(1024).collect();
        }
        Self { code, message }
    }
    pub fn missing(member: &str) -> Self {
        Self::new(ErrorCode::MissingField, format!("{member} is required"))
    }
    pub fn invalid_field(member: &str, why: &str) -> Self {
        Self::new(ErrorCode::InvalidField, format!("{member} {why}"))
    }
    pub fn unavailable(what: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::DependencyUnavailable,
            format!("a backing service is unavailable: {what}"),
        )
    }
    pub fn status(&self) -> u16 {
        self.code.status()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// Failure of a backing store: the only thing an action cannot decide itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is unreachable, throttling or failed an I/O call (503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Two ids collide on a case-insensitive file system (409).
    #[error("identifier collides with a stored one: {0}")]
    CaseCollision(String),
    /// A payload stored apart from its record (`EXECUTION.md` §10.5) is
    /// missing, expired or does not match its digest: `PAYLOAD_UNAVAILABLE`
    /// in a transition (§3.7), 503 `DEPENDENCY_UNAVAILABLE` in an HTTP read.
    #[error("payload unavailable: {0}")]
    PayloadUnavailable(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "store unavailable");
                ApiError::new(
                    ErrorCode::DependencyUnavailable,
                    "the state store is unavailable; retry later",
                )
            }
            StoreError::CaseCollision(what) => ApiError::new(
                ErrorCode::ConcurrentModification,
                format!("{what} collides with a stored identifier differing only in case"),
            ),
            StoreError::PayloadUnavailable(why) => {
                tracing::warn!(error = %why, "payload unavailable");
                ApiError::new(
                    ErrorCode::DependencyUnavailable,
                    "a stored payload is unavailable; retry later",
                )
            }
        }
    }
}
