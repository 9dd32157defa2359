//! The `s3` providers against moto (`support/moto.rs`): the artifact
//! store's wire behaviour (`RELEASES.md` §4, ART-02, ART-04), the reader of
//! `s3://` registration roots (§3.1.2–3.1.3) and a registration from an S3
//! root (REG-02). The behaviour every store shares is in
//! `conformance_artifact_store.rs`.
//!
//! A [`Tap`] interceptor on the client under test records every request
//! it transmits (method, path and query, headers) and can rewrite chosen
//! responses, for what moto never answers (`409 ConditionalRequestConflict`,
//! `503 SlowDown`).

use crate::support::moto;

use std::fs::File;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::ChecksumMode;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use tpf_core::actions::register_release::{self, DescriptorSource};
use tpf_core::actions::{activate_release, ReleaseDeps};
use tpf_core::domain::location::{parse_root, Root};
use tpf_core::error::{ErrorCode, StoreError};
use tpf_core::ports::{
    ArtifactStore, LocationReader, ManualClock, OpenLocationError, StoreArtifactError,
    StoredObject, Verification,
};
use tpf_core::providers::memory::MemoryReleaseRegistry;
use tpf_core::providers::s3::{S3ArtifactStore, S3LocationReader};

const PREFIX: &str = "tpf/releases";

/// One request as it went on the wire.
#[derive(Debug, Clone)]
struct Sent {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

impl Sent {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response rewrite: the next `times` answers to `method` requests become
/// `status` with the S3 error `code`.
#[derive(Debug, Clone)]
struct Rewrite {
    method: &'static str,
    status: u16,
    code: &'static str,
    times: usize,
}

#[derive(Debug, Default, Clone)]
struct Tap {
    sent: Arc<Mutex<Vec<Sent>>>,
    rewrite: Arc<Mutex<Option<Rewrite>>>,
}

impl Tap {
    fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
    fn methods(&self) -> Vec<String> {
        self.take().into_iter().map(|s| s.method).collect()
    }
    fn rewrite(&self, method: &'static str, status: u16, code: &'static str, times: usize) {
        *self.rewrite.lock().unwrap() = Some(Rewrite {
            method,
            status,
            code,
            times,
        });
    }
}

impl Intercept for Tap {
    fn name(&self) -> &'static str {
        "Tap"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        self.sent.lock().unwrap().push(Sent {
            method: request.method().to_owned(),
            uri: request.uri().to_owned(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        });
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let last = self.sent.lock().unwrap().last().map(|s| s.method.clone());
        let mut rewrite = self.rewrite.lock().unwrap();
        if let Some(r) = rewrite.as_mut() {
            if r.times > 0 && last.as_deref() == Some(r.method) {
                r.times -= 1;
                let response = context.response_mut();
                *response.status_mut() = r.status.try_into().unwrap();
                *response.body_mut() = SdkBody::from(format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>injected</Message></Error>",
                    r.code
                ));
            }
        }
        Ok(())
    }
}

/// A bucket on moto, a tapped client (the providers') and a plain one (the
/// test's own hands).
struct Env {
    bucket: String,
    tapped: aws_sdk_s3::Client,
    plain: aws_sdk_s3::Client,
    tap: Tap,
}

impl Env {
    async fn new() -> Env {
        let sdk = moto::sdk_config().await;
        let plain = tpf_core::providers::s3::client(&sdk, None, None, true);
        let tap = Tap::default();
        let tapped = aws_sdk_s3::Client::from_conf(
            plain
                .config()
                .to_builder()
                .interceptor(tap.clone())
                // Injected 503s fail at once instead of being retried.
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                .build(),
        );
        let bucket = moto::unique("tpf-s3");
        plain.create_bucket().bucket(&bucket).send().await.unwrap();
        Env {
            bucket,
            tapped,
            plain,
            tap,
        }
    }

    fn store(&self) -> S3ArtifactStore {
        S3ArtifactStore::new(self.tapped.clone(), self.bucket.clone(), PREFIX.into())
    }

    fn reader(&self) -> S3LocationReader {
        S3LocationReader::new(self.tapped.clone())
    }

    fn key_of(&self, uri: &str) -> String {
        uri.strip_prefix(&format!("s3://{}/", self.bucket))
            .unwrap()
            .to_owned()
    }

    /// A plain put (SDK default CRC32 checksum, no SHA-256, no metadata).
    async fn put(&self, key: &str, bytes: &[u8]) {
        self.plain
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .unwrap();
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let out = self
            .plain
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().to_vec()
    }

    async fn keys(&self) -> Vec<String> {
        let listed = self
            .plain
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn b64_sha(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

fn source(bytes: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

async fn put(store: &dyn ArtifactStore, bytes: &[u8], ext: &str) -> StoredObject {
    store
        .store(source(bytes), &sha(bytes), ext, bytes.len() as u64)
        .await
        .unwrap()
}

// ---------------------------------------------------------------- ART-02

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art02_put_is_conditional_with_sha256_checksum_metadata_and_type() {
    let env = Env::new().await;
    // Over 64 KiB: several frames of the streamed body.
    let bytes = pattern(300_001, 7);
    let hex = sha(&bytes);
    let stored = put(&env.store(), &bytes, ".jar").await;
    let key = format!("{PREFIX}/sha256/{hex}.jar");
    assert_eq!(stored.uri, format!("s3://{}/{key}", env.bucket));

    let sent = env.tap.take();
    assert_eq!(sent.len(), 1, "one request: {sent:?}");
    let p = &sent[0];
    assert_eq!(p.method, "PUT");
    assert!(p.uri.contains(&key), "{}", p.uri);
    assert_eq!(p.header("if-none-match"), Some("*"));
    assert_eq!(p.header("x-amz-sdk-checksum-algorithm"), Some("SHA256"));
    assert_eq!(
        p.header("x-amz-checksum-sha256"),
        Some(b64_sha(&bytes).as_str())
    );
    assert_eq!(p.header("x-amz-meta-sha256"), Some(hex.as_str()));
    assert_eq!(p.header("x-amz-meta-size"), Some("300001"));
    assert_eq!(p.header("content-type"), Some("application/octet-stream"));
    assert_eq!(p.header("content-length"), Some("300001"));
    // Streamed, not buffered for a payload hash; integrity is the SHA-256 checksum.
    assert_eq!(p.header("x-amz-content-sha256"), Some("UNSIGNED-PAYLOAD"));

    // What S3 kept.
    let head = env
        .plain
        .head_object()
        .bucket(&env.bucket)
        .key(&key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(300_001));
    assert_eq!(head.checksum_sha256(), Some(b64_sha(&bytes).as_str()));
    assert_eq!(head.content_type(), Some("application/octet-stream"));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("sha256"), Some(&hex));
    assert_eq!(meta.get("size").map(String::as_str), Some("300001"));
    assert_eq!(env.get(&key).await, bytes, "byte-exact round trip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art02_existing_objects_are_verified_and_reused_never_overwritten() {
    let env = Env::new().await;
    let store = env.store();
    let bytes = b"PK\x03\x04 a jar".to_vec();
    let first = put(&store, &bytes, ".jar").await;
    let key = env.key_of(&first.uri);
    let etag = |env: &Env| {
        let (client, bucket, key) = (env.plain.clone(), env.bucket.clone(), key.clone());
        async move {
            let head = client.head_object().bucket(bucket).key(key).send().await;
            head.unwrap().e_tag().unwrap().to_owned()
        }
    };
    let before = etag(&env).await;
    env.tap.take();

    // Again: the put is refused (412), the copy is checked with one HEAD.
    let second = put(&store, &bytes, ".jar").await;
    assert_eq!(first, second);
    let sent = env.tap.take();
    let methods: Vec<&str> = sent.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["PUT", "HEAD"]);
    assert_eq!(sent[1].header("x-amz-checksum-mode"), Some("ENABLED"));
    assert_eq!(etag(&env).await, before, "not overwritten");

    // A copy put by other hands (no stored SHA-256) with the right bytes is
    // read in full and reused as it is.
    let other = b"other bytes".to_vec();
    let other_key = format!("{PREFIX}/sha256/{}.bin", sha(&other));
    env.put(&other_key, &other).await;
    env.tap.take();
    let reused = put(&store, &other, ".bin").await;
    assert_eq!(env.key_of(&reused.uri), other_key);
    assert_eq!(env.tap.methods(), ["PUT", "HEAD", "GET"]);
    let head = env
        .plain
        .head_object()
        .bucket(&env.bucket)
        .key(&other_key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert!(
        head.metadata().is_none_or(|m| m.is_empty()),
        "kept as it was"
    );

    // A corrupt copy is reported, and left alone.
    let corrupt_bytes = b"PK\x03\x04 a jaR".to_vec();
    let target = format!("{PREFIX}/sha256/{}.war", sha(&bytes));
    env.put(&target, &corrupt_bytes).await;
    let err = store
        .store(source(&bytes), &sha(&bytes), ".war", bytes.len() as u64)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreArtifactError::ExistingCorrupt("checksum differs")),
        "{err:?}"
    );
    assert_eq!(env.get(&target).await, corrupt_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn art02_concurrent_stores_of_the_same_bytes_both_succeed_with_one_object() {
    let env = Env::new().await;
    let bytes = Arc::new(pattern(2 * 1024 * 1024 + 3, 11));
    let store: Arc<dyn ArtifactStore> = Arc::new(env.store());
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (store, bytes) = (store.clone(), bytes.clone());
            tokio::spawn(async move { put(&*store, &bytes, ".jar").await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results[0], results[1]);
    let puts: Vec<Sent> = env
        .tap
        .take()
        .into_iter()
        .filter(|s| s.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    assert!(puts.iter().all(|p| p.header("if-none-match") == Some("*")));
    assert_eq!(
        env.keys().await,
        [format!("{PREFIX}/sha256/{}.jar", sha(&bytes))]
    );
    assert_eq!(env.get(&env.key_of(&results[0].uri)).await, *bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art02_conditional_request_conflicts_are_retried_three_times() {
    let env = Env::new().await;
    let store = env.store();
    let bytes = b"conflicted".to_vec();
    // Two conflicts, then the put goes through (moto stored the first
    // attempt, so the third answer is 412 and the copy is verified).
    env.tap.rewrite("PUT", 409, "ConditionalRequestConflict", 2);
    let stored = put(&store, &bytes, ".jar").await;
    assert_eq!(stored.size_bytes, 10);
    assert_eq!(env.tap.methods(), ["PUT", "PUT", "PUT", "HEAD"]);

    // Four conflicts: three retries, then an outage.
    let other = b"always conflicted".to_vec();
    env.tap.rewrite("PUT", 409, "ConditionalRequestConflict", 4);
    let err = store
        .store(source(&other), &sha(&other), ".jar", other.len() as u64)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreArtifactError::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );
    assert_eq!(env.tap.methods(), ["PUT", "PUT", "PUT", "PUT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art02_a_changed_source_is_never_stored() {
    let env = Env::new().await;
    let store = env.store();
    let bytes = pattern(200_000, 3);
    // The checked digest is of other bytes: the body fails before its last
    // frame, so even moto (which never verifies checksums) stores nothing.
    let err = store
        .store(source(&bytes), &sha(b"other"), ".jar", bytes.len() as u64)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreArtifactError::SourceChanged), "{err:?}");
    assert_eq!(env.tap.methods(), ["PUT"], "not retried");
    assert!(env.keys().await.is_empty());
}

// ---------------------------------------------------------------- ART-04

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art04_verification_is_one_head_object_in_checksum_mode() {
    let env = Env::new().await;
    let store = env.store();
    let bytes = pattern(150_000, 5);
    let s = put(&store, &bytes, ".jar").await;
    env.tap.take();
    assert_eq!(
        store
            .verify(&s.uri, s.size_bytes, &s.checksum)
            .await
            .unwrap(),
        Verification::Verified
    );
    let sent = env.tap.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].method, "HEAD");
    assert_eq!(sent[0].header("x-amz-checksum-mode"), Some("ENABLED"));
    // A wrong record checksum is caught from the head alone.
    assert_eq!(
        store
            .verify(&s.uri, s.size_bytes, &format!("sha256:{}", sha(b"x")))
            .await
            .unwrap(),
        Verification::Failed("checksum differs")
    );
    assert_eq!(env.tap.methods(), ["HEAD"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art04_only_objects_without_a_stored_checksum_are_read_in_full() {
    let env = Env::new().await;
    let store = env.store();
    let bytes = pattern(100_000, 9);
    let hex = sha(&bytes);
    let key = format!("{PREFIX}/sha256/{hex}.jar");
    let uri = format!("s3://{}/{key}", env.bucket);
    let checksum = format!("sha256:{hex}");
    env.put(&key, &bytes).await;
    env.tap.take();
    assert_eq!(
        store.verify(&uri, 100_000, &checksum).await.unwrap(),
        Verification::Verified
    );
    assert_eq!(env.tap.methods(), ["HEAD", "GET"]);

    let mut altered = bytes.clone();
    altered[99_999] ^= 1;
    env.put(&key, &altered).await;
    assert_eq!(
        store.verify(&uri, 100_000, &checksum).await.unwrap(),
        Verification::Failed("checksum differs")
    );

    // A `sha256` metadata value that differs fails without a read.
    env.plain
        .put_object()
        .bucket(&env.bucket)
        .key(&key)
        .metadata("sha256", sha(b"something else"))
        .body(ByteStream::from(bytes.clone()))
        .send()
        .await
        .unwrap();
    env.tap.take();
    assert_eq!(
        store.verify(&uri, 100_000, &checksum).await.unwrap(),
        Verification::Failed("checksum differs")
    );
    assert_eq!(env.tap.methods(), ["HEAD"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art04_the_bucket_comes_from_the_uri_and_the_scheme_must_be_s3() {
    let env = Env::new().await;
    let other = Env::new().await;
    let bytes = b"in another bucket".to_vec();
    let s = put(&other.store(), &bytes, ".jar").await;
    let store = env.store();
    assert_eq!(
        store
            .verify(&s.uri, s.size_bytes, &s.checksum)
            .await
            .unwrap(),
        Verification::Verified
    );
    for uri in [
        format!("file:///srv/tpf/artifacts/{}.jar", sha(&bytes)),
        "https://example.com/x.jar".to_owned(),
        "no-scheme".to_owned(),
    ] {
        assert_eq!(
            store.verify(&uri, s.size_bytes, &s.checksum).await.unwrap(),
            Verification::Failed("artifact store changed"),
            "{uri}"
        );
    }
    for uri in [
        format!("s3://{}/", env.bucket),
        "s3:///key".to_owned(),
        format!("s3://no-such-bucket-{}/k.jar", sha(b"b")[..8].to_owned()),
    ] {
        assert_eq!(
            store.verify(&uri, s.size_bytes, &s.checksum).await.unwrap(),
            Verification::Failed("missing or unreadable"),
            "{uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_are_outages_not_verdicts() {
    let env = Env::new().await;
    let store = env.store();
    let bytes = b"throttled".to_vec();
    let s = put(&store, &bytes, ".jar").await;
    env.tap.rewrite("HEAD", 503, "SlowDown", 1);
    let err = store
        .verify(&s.uri, s.size_bytes, &s.checksum)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    env.tap.rewrite("PUT", 500, "InternalError", 1);
    let err = store
        .store(source(b"new"), &sha(b"new"), ".jar", 3)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreArtifactError::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );
    // An endpoint that refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = aws_sdk_s3::Client::from_conf(
        env.plain
            .config()
            .to_builder()
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    );
    let dead_store = S3ArtifactStore::new(dead.clone(), env.bucket.clone(), PREFIX.into());
    let err = dead_store
        .verify(&s.uri, s.size_bytes, &s.checksum)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let root = Root::S3 {
        bucket: env.bucket.clone(),
        prefix: String::new(),
    };
    let err = S3LocationReader::new(dead)
        .open(&root, "x.json", u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, OpenLocationError::Store(_)), "{err:?}");
}

// ---------------------------------------------------------------- roots

fn read_all(mut f: File) -> Vec<u8> {
    let mut out = Vec::new();
    f.read_to_end(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_reader_opens_objects_beneath_an_s3_root_with_the_head_size() {
    let env = Env::new().await;
    let bytes = br#"{"schemaVersion": 1}"#.to_vec();
    env.put("releases/app/pipeline-release.json", &bytes).await;
    let root = parse_root(&format!("s3://{}/releases", env.bucket)).unwrap();
    env.tap.take();
    let (file, size) = env
        .reader()
        .open(&root, "releases/app/pipeline-release.json", u64::MAX)
        .await
        .unwrap();
    assert_eq!(size, bytes.len() as u64);
    assert_eq!(read_all(file), bytes);
    let sent = env.tap.take();
    let methods: Vec<&str> = sent.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
    assert!(
        sent[1].header("if-match").is_some(),
        "the GET reads the object the HEAD saw"
    );

    // A root without a prefix.
    let root = parse_root(&format!("s3://{}", env.bucket)).unwrap();
    let (file, size) = env
        .reader()
        .open(&root, "releases/app/pipeline-release.json", u64::MAX)
        .await
        .unwrap();
    assert_eq!((read_all(file), size), (bytes.clone(), bytes.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_reader_missing_objects_and_buckets_are_unreadable() {
    let env = Env::new().await;
    let root = parse_root(&format!("s3://{}/releases", env.bucket)).unwrap();
    let err = env
        .reader()
        .open(&root, "releases/nope.json", u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, OpenLocationError::Unreadable), "{err:?}");
    // `rest` is the whole key, and it must lie beneath the prefix.
    env.put("elsewhere/x.json", b"{}").await;
    let err = env
        .reader()
        .open(&root, "elsewhere/x.json", u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, OpenLocationError::Escapes), "{err:?}");
    let root = Root::S3 {
        bucket: moto::unique("tpf-none"),
        prefix: String::new(),
    };
    let err = env
        .reader()
        .open(&root, "x.json", u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, OpenLocationError::Unreadable), "{err:?}");
    env.tap.rewrite("HEAD", 403, "Forbidden", 1);
    env.put("secret.json", b"{}").await;
    let root = Root::S3 {
        bucket: env.bucket.clone(),
        prefix: String::new(),
    };
    let err = env
        .reader()
        .open(&root, "secret.json", u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, OpenLocationError::Unreadable), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_reader_large_bodies_are_byte_exact() {
    let env = Env::new().await;
    let bytes = pattern(3 * 1024 * 1024 + 7, 13);
    env.put("big/artifact.jar", &bytes).await;
    let root = Root::S3 {
        bucket: env.bucket.clone(),
        prefix: "big/".into(),
    };
    let (file, size) = env
        .reader()
        .open(&root, "big/artifact.jar", u64::MAX)
        .await
        .unwrap();
    assert_eq!(size, bytes.len() as u64);
    let read = read_all(file);
    assert_eq!(read.len(), bytes.len());
    assert!(read == bytes, "byte-exact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_reader_does_not_download_objects_over_its_bound() {
    let env = Env::new().await;
    env.put("d/huge.json", &pattern(262_145, 1)).await;
    let root = Root::S3 {
        bucket: env.bucket.clone(),
        prefix: "d/".into(),
    };
    env.tap.take();
    let (file, size) = env
        .reader()
        .with_max_bytes(262_144)
        .open(&root, "d/huge.json", u64::MAX)
        .await
        .unwrap();
    assert_eq!(size, 262_145, "the size is the object's");
    assert!(read_all(file).is_empty(), "nothing was read");
    assert_eq!(env.tap.methods(), ["HEAD"]);
    // The caller's bound works the same way (RAC-11: a descriptor over
    // 262 144 bytes is refused unread).
    env.tap.take();
    let (file, size) = env
        .reader()
        .open(&root, "d/huge.json", 262_144)
        .await
        .unwrap();
    assert_eq!(size, 262_145);
    assert!(read_all(file).is_empty());
    assert_eq!(env.tap.methods(), ["HEAD"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_reader_hands_local_roots_to_openat2() {
    let env = Env::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.json"), b"local").unwrap();
    let root = parse_root(dir.path().to_str().unwrap()).unwrap();
    let (file, size) = env.reader().open(&root, "d.json", u64::MAX).await.unwrap();
    assert_eq!((read_all(file), size), (b"local".to_vec(), 5));
    assert!(env.tap.take().is_empty());
}

// ---------------------------------------------------------------- REG-02

fn deps(env: &Env, max_artifact_bytes: u64) -> ReleaseDeps {
    ReleaseDeps {
        registry: Arc::new(MemoryReleaseRegistry::new()),
        store: Arc::new(env.store()),
        locations: Arc::new(env.reader().with_max_bytes(max_artifact_bytes.max(262_144))),
        clock: Arc::new(ManualClock::new(1_736_937_600_000)),
        roots: vec![parse_root(&format!("s3://{}/releases", env.bucket)).unwrap()],
        max_artifact_bytes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reg02_s3_descriptor_with_relative_jar_and_inline_s3_artifacts() {
    let env = Env::new().await;
    let dir = tempfile::tempdir().unwrap();
    let demo = demo_release::write_release(dir.path(), &demo_release::DemoSpec::default()).unwrap();
    let jar = std::fs::read(&demo.artifact_path).unwrap();
    let descriptor = std::fs::read(&demo.descriptor_path).unwrap();
    env.put("releases/2025.01.0/monolith-svc-runner.jar", &jar)
        .await;
    env.put("releases/2025.01.0/pipeline-release.json", &descriptor)
        .await;
    let deps = deps(&env, 268_435_456);
    let location = format!(
        "s3://{}/releases/2025.01.0/pipeline-release.json",
        env.bucket
    );
    let view = register_release::run(
        &deps,
        "t1",
        "restaurant-approval",
        DescriptorSource::Location(location.clone()),
    )
    .await
    .unwrap();
    let record = &view.record;
    assert_eq!(record.descriptor_location, location);
    let hex = sha(&jar);
    let managed = format!("s3://{}/{PREFIX}/sha256/{hex}.jar", env.bucket);
    assert_eq!(record.primary_artifact_uri, managed);
    assert_eq!(record.primary_artifact_checksum, format!("sha256:{hex}"));
    assert_eq!(record.primary_artifact_size_bytes, jar.len() as u64);
    assert!(record.contract.is_some());
    assert_eq!(env.get(&format!("{PREFIX}/sha256/{hex}.jar")).await, jar);
    // Activation verifies the stored copy.
    let active = activate_release::run(&deps, "t1", "restaurant-approval", "2025.01.0")
        .await
        .unwrap();
    assert!(active.artifact_verified);

    // Inline, the artifact named by an absolute s3:// URI.
    let mut inline: serde_json::Value = serde_json::from_slice(&descriptor).unwrap();
    inline["releaseVersion"] = "2025.01.1".into();
    inline["artifacts"][0]["uri"] = format!(
        "s3://{}/releases/2025.01.0/monolith-svc-runner.jar",
        env.bucket
    )
    .into();
    let text = inline.to_string();
    let view = register_release::run(
        &deps,
        "t1",
        "restaurant-approval",
        DescriptorSource::Inline {
            object: inline.as_object().unwrap().clone(),
            text,
        },
    )
    .await
    .unwrap();
    assert_eq!(view.record.descriptor_location, "inline");
    assert_eq!(view.record.primary_artifact_uri, managed, "the same object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rac11_reg09_oversized_s3_objects_are_refused_unread() {
    let env = Env::new().await;
    env.put("releases/big/pipeline-release.json", &pattern(262_145, 2))
        .await;
    let deps = deps(&env, 100);
    env.tap.take();
    let err = register_release::run(
        &deps,
        "t1",
        "restaurant-approval",
        DescriptorSource::Location(format!(
            "s3://{}/releases/big/pipeline-release.json",
            env.bucket
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::DescriptorTooLarge);
    assert_eq!(env.tap.methods(), ["HEAD"], "unread");

    // An artifact over both bounds (the reader's is max(100, 262 144)).
    let dir = tempfile::tempdir().unwrap();
    let demo = demo_release::write_release(dir.path(), &demo_release::DemoSpec::default()).unwrap();
    let big = pattern(300_000, 4);
    let mut descriptor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&demo.descriptor_path).unwrap()).unwrap();
    descriptor["artifacts"][0]["uri"] = "big.jar".into();
    descriptor["artifacts"][0]["digest"] = format!("sha256:{}", sha(&big)).into();
    env.put("releases/small/big.jar", &big).await;
    env.put(
        "releases/small/pipeline-release.json",
        descriptor.to_string().as_bytes(),
    )
    .await;
    env.tap.take();
    let err = register_release::run(
        &deps,
        "t1",
        "restaurant-approval",
        DescriptorSource::Location(format!(
            "s3://{}/releases/small/pipeline-release.json",
            env.bucket
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::ArtifactTooLarge);
    assert_eq!(
        env.tap.methods(),
        ["HEAD", "GET", "HEAD"],
        "the descriptor is read, the artifact is not"
    );
}
