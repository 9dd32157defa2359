//! S3 providers: the `s3` artifact store (`RELEASES.md` §4) and the reader
//! of `s3://` registration roots (§3.1.2–3.1.3).
//!
//! Both take a ready [`aws_sdk_s3::Client`]; [`client`] builds one from the
//! shared SDK configuration and the `TPF_RELEASES_STORAGE_S3_*` settings
//! (region, endpoint override, path-style addressing for MinIO/moto).
//!
//! Error classes shared by both: `404`/`403` answers concern the object
//! (missing or unreadable); throttling, `5xx`, timeouts, connection
//! failures and any other answer are outages of the store
//! ([`StoreError::Unavailable`], 503).

mod artifacts;
mod locations;

pub use artifacts::S3ArtifactStore;
pub use locations::S3LocationReader;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::StoreError;

/// Builds the S3 client of the `s3` providers from the process's SDK
/// configuration: `region` and `endpoint` override it when given
/// (`TPF_RELEASES_STORAGE_S3_REGION`, `_ENDPOINT_OVERRIDE`); `path_style`
/// forces path-style addressing (`_PATH_STYLE_ACCESS`, needed by local
/// endpoints, whose `bucket.host` names do not resolve).
pub fn client(
    sdk: &aws_config::SdkConfig,
    region: Option<&str>,
    endpoint: Option<&str>,
    path_style: bool,
) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style);
    if let Some(region) = region {
        builder = builder.region(aws_sdk_s3::config::Region::new(region.to_owned()));
    }
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// What an S3 call's failure means to the providers.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `404` (`NoSuchKey`, `NotFound`, `NoSuchBucket`) or `403`.
    Missing,
    /// `412 PreconditionFailed`: an `If-None-Match`/`If-Match` condition failed.
    Precondition,
    /// `409 ConditionalRequestConflict`: a concurrent conditional write.
    ConditionalConflict,
    /// Anything else: an outage.
    Outage(String),
}

impl Failure {
    pub(crate) fn into_store_error(self, doing: &str) -> StoreError {
        match self {
            Failure::Outage(detail) => StoreError::Unavailable(format!("S3 {doing}: {detail}")),
            other => StoreError::Unavailable(format!("S3 {doing}: unexpected {other:?}")),
        }
    }
}

/// Classifies a failed S3 call by HTTP status and error code.
pub(crate) fn classify<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(service) = e {
        let status = service.raw().status().as_u16();
        match (status, service.err().code()) {
            (404 | 403, _)
            | (_, Some("NoSuchKey" | "NotFound" | "NoSuchBucket" | "AccessDenied")) => {
                return Failure::Missing
            }
            (412, _) | (_, Some("PreconditionFailed")) => return Failure::Precondition,
            (409, Some("ConditionalRequestConflict")) => return Failure::ConditionalConflict,
            _ => {}
        }
    }
    Failure::Outage(DisplayErrorContext(e).to_string())
}

/// An anonymous read/write file in the temporary directory
/// (`std::env::temp_dir()`, `/tmp` on Lambda): created as
/// `.tmp-<uuid>` (mode 0600) and unlinked at once, so nothing is left behind
/// however the process ends.
pub(crate) fn anonymous_temp_file() -> io::Result<File> {
    let path = std::env::temp_dir().join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// `sha256:<64 lower-case hex>` → the digest bytes.
pub(crate) fn parse_checksum(checksum: &str) -> Option<[u8; 32]> {
    let hex = checksum.strip_prefix("sha256:")?;
    parse_hex(hex)
}

/// 64 lower-case hex → the digest bytes.
pub(crate) fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn checksums_parse_only_in_the_record_form() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_checksum(&format!("sha256:{hex}")), Some([0xab; 32]));
        assert_eq!(parse_checksum(&hex), None);
        assert_eq!(parse_checksum(&format!("sha256:{}", "AB".repeat(32))), None);
        assert_eq!(parse_checksum("sha256:abc"), None);
    }

    #[test]
    fn anonymous_temp_files_leave_no_name() {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = anonymous_temp_file().unwrap();
        f.write_all(b"spooled").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "spooled");
        assert_eq!(f.metadata().unwrap().nlink(), 0);
    }
}
