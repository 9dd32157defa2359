//! [`LocationReader`] for `s3://bucket[/prefix]` registration roots
//! (`RELEASES.md` §3.1.2–3.1.3); local roots are handed to
//! [`LocalLocationReader`], so one reader serves every configured root.
//!
//! For an S3 root, `rest` is the object's whole key, as
//! [`find_root`](crate::domain::location::find_root) gives it; a key not
//! strictly beneath the root's prefix is refused as escaping. Its size is the
//! `ContentLength` of a `HeadObject`; the bytes are then spooled from a
//! `GetObject` (conditional on the `ETag` the head saw, so both describe the
//! same object) into an anonymous file in the temporary directory, and
//! that file is what the caller hashes and stores: the hashed bytes are the
//! stored bytes. Reading stops with an error past the size the head gave.
//!
//! Objects larger than the reader's bound are not downloaded at all: the
//! handle returned for them is empty and the size is the object's, which
//! every caller refuses before reading (`DESCRIPTOR_TOO_LARGE`,
//! `ARTIFACT_TOO_LARGE`, "unread"). Build the reader with
//! [`S3LocationReader::with_max_bytes`] = max(`TPF_RELEASES_MAX_ARTIFACT_BYTES`,
//! 262 144) so both callers see every object they could accept.

use std::fs::File;
use std::io::SeekFrom;

use async_trait::async_trait;
use aws_sdk_s3::types::ChecksumMode;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{anonymous_temp_file, classify, Failure};
use crate::domain::location::Root;
use crate::error::StoreError;
use crate::ports::{LocationReader, OpenLocationError};
use crate::providers::file::LocalLocationReader;

/// The largest `TPF_RELEASES_MAX_ARTIFACT_BYTES` (`RELEASES.md` §8), the
/// default bound of a reader.
pub const DEFAULT_MAX_BYTES: u64 = 5_368_709_120;
/// Attempts when the object changes between its head and its get.
const ATTEMPTS: u32 = 3;

/// Opens locations beneath S3 roots (and, through [`LocalLocationReader`],
/// local ones).
#[derive(Debug, Clone)]
pub struct S3LocationReader {
    client: aws_sdk_s3::Client,
    max_bytes: u64,
}

impl S3LocationReader {
    /// A reader downloading objects of up to [`DEFAULT_MAX_BYTES`].
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self {
            client,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Objects over `max_bytes` are reported with their size but not downloaded.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// One head-then-get of `bucket`/`key`; `Ok(None)` when the object
    /// changed in between.
    async fn try_open(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<(File, u64)>, OpenLocationError> {
        let head = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| open_failure(classify(&e), "HeadObject"))?;
        let size = head
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                StoreError::Unavailable(format!("S3 HeadObject {bucket}/{key}: no ContentLength"))
            })?;
        let spool = anonymous_temp_file().map_err(spool_error)?;
        if size > max_bytes {
            return Ok(Some((spool, size)));
        }
        let mut get = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled);
        if let Some(etag) = head.e_tag() {
            get = get.if_match(etag);
        }
        let object = match get.send().await {
            Ok(object) => object,
            Err(e) => {
                return match classify(&e) {
                    Failure::Precondition => Ok(None),
                    other => Err(open_failure(other, "GetObject")),
                }
            }
        };
        let mut spool = tokio::fs::File::from_std(spool);
        let mut body = object.body;
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                StoreError::Unavailable(format!("S3 GetObject {bucket}/{key}: reading: {e}"))
            })?;
            total += chunk.len() as u64;
            if total > size {
                return Ok(None);
            }
            spool.write_all(&chunk).await.map_err(spool_error)?;
        }
        if total != size {
            return Ok(None);
        }
        spool.flush().await.map_err(spool_error)?;
        spool.seek(SeekFrom::Start(0)).await.map_err(spool_error)?;
        Ok(Some((spool.into_std().await, size)))
    }
}

fn open_failure(failure: Failure, doing: &str) -> OpenLocationError {
    match failure {
        Failure::Missing => OpenLocationError::Unreadable,
        other => OpenLocationError::Store(other.into_store_error(doing)),
    }
}

fn spool_error(e: std::io::Error) -> OpenLocationError {
    OpenLocationError::Store(StoreError::Unavailable(format!(
        "spooling an S3 object to {}: {e}",
        std::env::temp_dir().display()
    )))
}

#[async_trait]
impl LocationReader for S3LocationReader {
    async fn open(
        &self,
        root: &Root,
        rest: &str,
        max_bytes: u64,
    ) -> Result<(File, u64), OpenLocationError> {
        let Root::S3 { bucket, prefix } = root else {
            return LocalLocationReader.open(root, rest, max_bytes).await;
        };
        if rest.len() <= prefix.len() || !rest.starts_with(prefix.as_str()) {
            return Err(OpenLocationError::Escapes);
        }
        let key = rest;
        for _ in 0..ATTEMPTS {
            if let Some(opened) = self
                .try_open(bucket, key, max_bytes.min(self.max_bytes))
                .await?
            {
                return Ok(opened);
            }
            tracing::info!(
                bucket,
                key,
                "S3 object changed while being read; reading again"
            );
        }
        Err(OpenLocationError::Store(StoreError::Unavailable(format!(
            "S3 object {bucket}/{key} kept changing while being read"
        ))))
    }
}
