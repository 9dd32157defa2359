//! `s3` artifact store (`RELEASES.md` §4): objects at key
//! `<prefix>/sha256/<hex><ext>` (no prefix: `sha256/<hex><ext>`) in one
//! bucket, managed URI `s3://<bucket>/<key>`.
//!
//! **Storing** is one create-if-absent `PutObject`: `If-None-Match: *`,
//! `ChecksumAlgorithm=SHA256` with `x-amz-checksum-sha256` = base64 of the
//! digest (S3 rejects a body that does not hash to it), metadata
//! `sha256=<hex>` and `size=<bytes>`, `Content-Type:
//! application/octet-stream`. The body streams from the source file (up to
//! 5 GiB, never buffered whole) through [`HashingBody`], which hashes what it
//! sends and fails the upload *before its last bytes leave* when the source
//! no longer has `size` bytes hashing to `hex`: so a changed source is
//! never stored, even by an S3 clone that does not verify checksums (moto).
//! `409 ConditionalRequestConflict` is retried up to three times; `412`
//! means the object exists: it is verified and reused, or reported corrupt.
//!
//! **Verifying** is a `HeadObject` with `ChecksumMode=ENABLED`:
//! `ContentLength` against the size, a `sha256` metadata value against the
//! hex, and the stored full-object `ChecksumSHA256` against the digest;
//! only an object without one (put by other hands) is read in full and
//! hashed.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
use base64::Engine as _;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::{classify, parse_checksum, parse_hex, Failure};
use crate::error::StoreError;
use crate::ports::{ArtifactStore, StoreArtifactError, StoredObject, Verification};

/// Bytes read from the source per body frame.
const READ_CHUNK: usize = 512 * 1024;
/// Retries of a put answered `409 ConditionalRequestConflict`.
const CONFLICT_RETRIES: u32 = 3;
/// Puts again after a `412` whose object then vanished (outside hands only).
const VANISHED_RETRIES: u32 = 2;

/// Content-addressed artifact store in an S3 bucket (the `s3` provider of
/// release-admin).
#[derive(Debug, Clone)]
pub struct S3ArtifactStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Without outer `/`; may be empty.
    prefix: String,
}

impl S3ArtifactStore {
    /// Store in `bucket` under `prefix` (outer `/` removed here too).
    pub fn new(client: aws_sdk_s3::Client, bucket: String, prefix: String) -> Self {
        Self {
            client,
            bucket,
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    /// The object key of `<hex><ext>`.
    fn key(&self, hex: &str, ext: &str) -> String {
        if self.prefix.is_empty() {
            format!("sha256/{hex}{ext}")
        } else {
            format!("{}/sha256/{hex}{ext}", self.prefix)
        }
    }

    /// One conditional put of the source's bytes. A failure with `changed`
    /// set means the source is not what was checked (nothing was stored).
    async fn put(
        &self,
        key: &str,
        source: &Arc<File>,
        hex: &str,
        digest: [u8; 32],
        size_bytes: u64,
        changed: &Arc<AtomicBool>,
    ) -> Result<(), Failure> {
        let body = if size_bytes == 0 {
            ByteStream::new(SdkBody::empty())
        } else {
            let (source, changed) = (source.clone(), changed.clone());
            ByteStream::new(SdkBody::retryable(move || {
                SdkBody::from_body_1_x(HashingBody::new(
                    source.clone(),
                    size_bytes,
                    digest,
                    changed.clone(),
                ))
            }))
        };
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(digest))
            .metadata("sha256", hex)
            .metadata("size", size_bytes.to_string())
            .content_type("application/octet-stream")
            .content_length(size_bytes as i64)
            .body(body)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }

    /// §4.3 for the object `bucket`/`key`: `HeadObject` with checksum mode,
    /// then size, metadata and the stored checksum, or a full read.
    async fn check(
        &self,
        bucket: &str,
        key: &str,
        size_bytes: u64,
        digest: Option<[u8; 32]>,
    ) -> Result<Verification, StoreError> {
        let head = match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(head) => head,
            Err(e) => {
                return match classify(&e) {
                    Failure::Missing => Ok(Verification::Failed("missing or unreadable")),
                    other => Err(other.into_store_error("HeadObject")),
                }
            }
        };
        if head.content_length() != i64::try_from(size_bytes).ok() {
            return Ok(Verification::Failed("size differs"));
        }
        let Some(digest) = digest else {
            return Ok(Verification::Failed("checksum differs"));
        };
        if let Some(hex) = head.metadata().and_then(|m| m.get("sha256")) {
            if *hex != hex::encode(digest) {
                return Ok(Verification::Failed("checksum differs"));
            }
        }
        // A composite checksum (multipart uploads, `<b64>-<parts>`) is not
        // the object's SHA-256: read those in full.
        let full_object = head
            .checksum_sha256()
            .filter(|_| head.checksum_type() != Some(&ChecksumType::Composite))
            .filter(|c| !c.contains('-'));
        match full_object {
            Some(stored) => Ok(
                if stored == base64::engine::general_purpose::STANDARD.encode(digest) {
                    Verification::Verified
                } else {
                    Verification::Failed("checksum differs")
                },
            ),
            None => self.read_in_full(bucket, key, size_bytes, digest).await,
        }
    }

    /// Hashes the whole object (only objects without a stored SHA-256).
    async fn read_in_full(
        &self,
        bucket: &str,
        key: &str,
        size_bytes: u64,
        digest: [u8; 32],
    ) -> Result<Verification, StoreError> {
        tracing::debug!(
            bucket,
            key,
            "no stored SHA-256 checksum; reading the object in full"
        );
        let object = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) => {
                return match classify(&e) {
                    Failure::Missing => Ok(Verification::Failed("missing or unreadable")),
                    other => Err(other.into_store_error("GetObject")),
                }
            }
        };
        let mut body = object.body;
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                StoreError::Unavailable(format!("S3 GetObject {bucket}/{key}: reading: {e}"))
            })?;
            total += chunk.len() as u64;
            if total > size_bytes {
                return Ok(Verification::Failed("size differs"));
            }
            hasher.update(&chunk);
        }
        Ok(if total != size_bytes {
            Verification::Failed("size differs")
        } else if hasher.finalize().as_slice() != digest {
            Verification::Failed("checksum differs")
        } else {
            Verification::Verified
        })
    }
}

/// `.` + 1–16 ASCII letters/digits (the only extensions §4.1 produces).
fn is_valid_ext(ext: &str) -> bool {
    ext.strip_prefix('.').is_some_and(|rest| {
        (1..=16).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A chunk read from the source, and whether the file goes on past it.
type Chunk = (Vec<u8>, bool);

/// Reads up to `want` bytes at `pos` (fewer only at end of file). With
/// `last`, also reports whether the file has bytes beyond them.
fn read_chunk(file: &File, pos: u64, want: usize, last: bool) -> io::Result<Chunk> {
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut buf[filled..], pos + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    let mut longer = false;
    if last && filled == want {
        let mut one = [0u8; 1];
        longer = loop {
            match file.read_at(&mut one, pos + want as u64) {
                Ok(n) => break n > 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
    }
    Ok((buf, longer))
}

/// An upload body streaming `size` bytes of a file from offset 0
/// (positional reads on the blocking pool, so attempts never share a
/// cursor). It hashes what it sends; before handing out the frame holding
/// the last bytes it checks that the file ends there and the digest is the
/// expected one, else it sets `changed` and fails the body, so the request
/// is aborted incomplete and nothing is stored.
struct HashingBody {
    file: Arc<File>,
    size: u64,
    pos: u64,
    hasher: Sha256,
    digest: [u8; 32],
    changed: Arc<AtomicBool>,
    pending: Option<JoinHandle<io::Result<Chunk>>>,
    done: bool,
}

impl HashingBody {
    fn new(file: Arc<File>, size: u64, digest: [u8; 32], changed: Arc<AtomicBool>) -> Self {
        Self {
            file,
            size,
            pos: 0,
            hasher: Sha256::new(),
            digest,
            changed,
            pending: None,
            done: size == 0,
        }
    }

    fn source_changed(&mut self) -> io::Error {
        self.changed.store(true, Ordering::SeqCst);
        self.done = true;
        io::Error::other("artifact source changed since it was checked")
    }
}

impl http_body::Body for HashingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.size - self.pos)
            .unwrap_or(usize::MAX)
            .min(READ_CHUNK);
        let last = self.pos + want as u64 == self.size;
        if self.pending.is_none() {
            let (file, pos) = (self.file.clone(), self.pos);
            self.pending = Some(tokio::task::spawn_blocking(move || {
                read_chunk(&file, pos, want, last)
            }));
        }
        let pending = self.pending.as_mut().expect("set above");
        let joined = match Pin::new(pending).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(joined) => joined,
        };
        self.pending = None;
        let (buf, longer) = match joined {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                self.done = true;
                return Poll::Ready(Some(Err(e)));
            }
            Err(e) => {
                self.done = true;
                return Poll::Ready(Some(Err(io::Error::other(e))));
            }
        };
        if buf.len() < want || longer {
            return Poll::Ready(Some(Err(self.source_changed())));
        }
        self.hasher.update(&buf);
        self.pos += buf.len() as u64;
        if last {
            let digest = std::mem::take(&mut self.hasher).finalize();
            if digest.as_slice() != self.digest {
                return Poll::Ready(Some(Err(self.source_changed())));
            }
            self.done = true;
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(if self.done { 0 } else { self.size - self.pos })
    }
}

#[async_trait]
impl ArtifactStore for S3ArtifactStore {
    async fn store(
        &self,
        source: File,
        hex: &str,
        ext: &str,
        size_bytes: u64,
    ) -> Result<StoredObject, StoreArtifactError> {
        let Some(digest) = parse_hex(hex).filter(|_| is_valid_ext(ext)) else {
            return Err(StoreArtifactError::Store(StoreError::Unavailable(
                "refusing an artifact name outside the naming rule".to_owned(),
            )));
        };
        let source = Arc::new(source);
        if size_bytes == 0 {
            // No body to check on the way: check the source first.
            let file = source.clone();
            let (_, longer) = tokio::task::spawn_blocking(move || read_chunk(&file, 0, 0, true))
                .await
                .map_err(|e| StoreError::Unavailable(format!("artifact source task: {e}")))?
                .map_err(|e| {
                    StoreError::Unavailable(format!("reading the artifact source: {e}"))
                })?;
            if longer || Sha256::digest(b"").as_slice() != digest {
                return Err(StoreArtifactError::SourceChanged);
            }
        }
        let key = self.key(hex, ext);
        let (mut conflicts, mut vanished) = (0, 0);
        loop {
            let changed = Arc::new(AtomicBool::new(false));
            let failure = match self
                .put(&key, &source, hex, digest, size_bytes, &changed)
                .await
            {
                Ok(()) => break,
                Err(_) if changed.load(Ordering::SeqCst) => {
                    return Err(StoreArtifactError::SourceChanged)
                }
                Err(failure) => failure,
            };
            match failure {
                Failure::Precondition => {
                    match self
                        .check(&self.bucket, &key, size_bytes, Some(digest))
                        .await?
                    {
                        Verification::Verified => break,
                        // Deleted between our put and our check (only by
                        // outside hands: the store never deletes): put again.
                        Verification::Failed("missing or unreadable")
                            if vanished < VANISHED_RETRIES =>
                        {
                            vanished += 1;
                        }
                        Verification::Failed(reason) => {
                            return Err(StoreArtifactError::ExistingCorrupt(reason))
                        }
                    }
                }
                Failure::ConditionalConflict if conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    tokio::time::sleep(Duration::from_millis(100 << conflicts)).await;
                }
                other => return Err(other.into_store_error("PutObject").into()),
            }
        }
        Ok(StoredObject {
            uri: format!("s3://{}/{key}", self.bucket),
            size_bytes,
            checksum: format!("sha256:{hex}"),
        })
    }

    fn managed_uri(&self, hex: &str, ext: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(hex, ext))
    }

    async fn verify(
        &self,
        uri: &str,
        size_bytes: u64,
        checksum: &str,
    ) -> Result<Verification, StoreError> {
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Ok(Verification::Failed("artifact store changed"));
        };
        if !scheme.eq_ignore_ascii_case("s3") {
            return Ok(Verification::Failed("artifact store changed"));
        }
        let Some((bucket, key)) = rest
            .strip_prefix("//")
            .and_then(|r| r.split_once('/'))
            .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        else {
            return Ok(Verification::Failed("missing or unreadable"));
        };
        self.check(bucket, key, size_bytes, parse_checksum(checksum))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn store(prefix: &str) -> S3ArtifactStore {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        S3ArtifactStore::new(
            aws_sdk_s3::Client::from_conf(conf),
            "tpf-release-artifacts".into(),
            prefix.into(),
        )
    }

    #[test]
    fn art01_keys_and_uris() {
        let hex = "da5383930e7cb561d98a45f389562f7430ff5b1a0e07d8793e6217eec0f8e8d7";
        assert_eq!(
            store("tpf/releases").managed_uri(hex, ".jar"),
            format!("s3://tpf-release-artifacts/tpf/releases/sha256/{hex}.jar")
        );
        assert_eq!(
            store("/tpf/releases/").managed_uri(hex, ".jar"),
            format!("s3://tpf-release-artifacts/tpf/releases/sha256/{hex}.jar")
        );
        assert_eq!(
            store("").managed_uri(hex, ".artifact"),
            format!("s3://tpf-release-artifacts/sha256/{hex}.artifact")
        );
    }

    /// Drains a body, returning the bytes it handed out and its error.
    async fn drain(mut body: HashingBody) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        loop {
            let frame =
                std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx))
                    .await;
            match frame {
                None => return (out, None),
                Some(Ok(frame)) => out.extend_from_slice(&frame.into_data().unwrap()),
                Some(Err(e)) => return (out, Some(e)),
            }
        }
    }

    fn file_with(bytes: &[u8]) -> Arc<File> {
        let mut f = super::super::anonymous_temp_file().unwrap();
        f.write_all(bytes).unwrap();
        Arc::new(f)
    }

    fn digest(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[tokio::test]
    async fn the_body_streams_the_file_from_its_start_in_chunks() {
        let bytes: Vec<u8> = (0..(READ_CHUNK * 2 + 17))
            .map(|i| (i % 253) as u8)
            .collect();
        let file = file_with(&bytes);
        let changed = Arc::new(AtomicBool::new(false));
        let body = HashingBody::new(file, bytes.len() as u64, digest(&bytes), changed.clone());
        assert_eq!(
            http_body::Body::size_hint(&body).exact(),
            Some(bytes.len() as u64)
        );
        let (sent, err) = drain(body).await;
        assert!(err.is_none());
        assert_eq!(sent, bytes);
        assert!(!changed.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn the_body_withholds_its_last_bytes_when_the_source_changed() {
        let bytes: Vec<u8> = (0..(READ_CHUNK + 5)).map(|i| (i % 251) as u8).collect();
        let cases: [(&[u8], u64, [u8; 32]); 3] = [
            // Other bytes than the checked ones.
            (&bytes, bytes.len() as u64, digest(b"other")),
            // The file grew.
            (
                &bytes,
                bytes.len() as u64 - 1,
                digest(&bytes[..bytes.len() - 1]),
            ),
            // The file shrank.
            (&bytes, bytes.len() as u64 + 1, digest(&bytes)),
        ];
        for (content, size, expected) in cases {
            let changed = Arc::new(AtomicBool::new(false));
            let body = HashingBody::new(file_with(content), size, expected, changed.clone());
            let (sent, err) = drain(body).await;
            assert!(err.is_some());
            assert!(changed.load(Ordering::SeqCst));
            assert!((sent.len() as u64) < size, "the last frame is withheld");
        }
    }
}
