//! Conformance suite of the `ArtifactStore` port (`RELEASES.md` §4,
//! ART-01..03): every provider runs the same cases in `cases`, damaging
//! stored objects through a provider-specific [`Backdoor`]. Adding a
//! provider is one fixture function and one
//! `artifact_store_conformance!(name);` line. The `s3` provider runs
//! against moto (`support/moto.rs`), one bucket per test.

use std::any::Any;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tpf_core::ports::{ArtifactStore, StoreArtifactError, StoredObject, Verification};
use tpf_core::providers::file::LocalArtifactStore;
use tpf_core::providers::memory::MemoryArtifactStore;
use tpf_core::providers::s3::S3ArtifactStore;

use crate::support::moto;

/// Reaches behind a store to damage or inspect its objects, as an operator
/// or a failing disk would.
pub trait Backdoor: Send + Sync {
    /// Deletes the object behind `uri`.
    fn delete(&self, uri: &str);
    /// Replaces the object's bytes in place.
    fn overwrite(&self, uri: &str, bytes: &[u8]);
    /// Puts `bytes` under the name `<hex><ext>` before the store does.
    fn plant(&self, hex: &str, ext: &str, bytes: &[u8]);
    /// Names of the stored objects, sorted.
    fn object_names(&self) -> Vec<String>;
    /// A managed URI of another provider for the same object.
    fn foreign_uri(&self, hex: &str, ext: &str) -> String;
}

/// A provider under test, its backdoor, and what must outlive them.
pub struct Fixture {
    store: Arc<dyn ArtifactStore>,
    backdoor: Box<dyn Backdoor>,
    _guard: Box<dyn Any + Send>,
}

struct MemoryBackdoor(Arc<MemoryArtifactStore>);

impl Backdoor for MemoryBackdoor {
    fn delete(&self, uri: &str) {
        self.0.remove(uri);
    }
    fn overwrite(&self, uri: &str, bytes: &[u8]) {
        self.0.tamper(uri, bytes.to_vec());
    }
    fn plant(&self, hex: &str, ext: &str, bytes: &[u8]) {
        self.0
            .tamper(&MemoryArtifactStore::uri_for(hex, ext), bytes.to_vec());
    }
    fn object_names(&self) -> Vec<String> {
        self.0.object_names()
    }
    fn foreign_uri(&self, hex: &str, ext: &str) -> String {
        format!("file:///srv/tpf/artifacts/{hex}{ext}")
    }
}

fn memory() -> Fixture {
    let store = Arc::new(MemoryArtifactStore::new());
    Fixture {
        store: store.clone(),
        backdoor: Box::new(MemoryBackdoor(store)),
        _guard: Box::new(()),
    }
}

struct FileBackdoor(PathBuf);

/// The path behind a managed `file://` URI.
fn path_of(uri: &str) -> PathBuf {
    let encoded = uri.strip_prefix("file://").expect("a file URI");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    PathBuf::from(String::from_utf8(bytes).unwrap())
}

impl Backdoor for FileBackdoor {
    fn delete(&self, uri: &str) {
        fs::remove_file(path_of(uri)).unwrap();
    }
    fn overwrite(&self, uri: &str, bytes: &[u8]) {
        let path = path_of(uri);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, bytes).unwrap();
    }
    fn plant(&self, hex: &str, ext: &str, bytes: &[u8]) {
        fs::create_dir_all(self.0.join("artifacts")).unwrap();
        fs::write(self.0.join("artifacts").join(format!("{hex}{ext}")), bytes).unwrap();
    }
    fn object_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.0.join("artifacts")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }
    fn foreign_uri(&self, hex: &str, ext: &str) -> String {
        format!("s3://tpf-release-artifacts/sha256/{hex}{ext}")
    }
}

fn file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        store: Arc::new(LocalArtifactStore::new(dir.path().to_path_buf())),
        backdoor: Box::new(FileBackdoor(dir.path().to_path_buf())),
        _guard: Box::new(dir),
    }
}

/// Runs `f` to completion from the synchronous fixture and backdoor code
/// (the tests run on a multi-threaded runtime).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Damages objects directly through the S3 client; its plain puts carry the
/// SDK's default CRC32 checksum but no SHA-256 and no metadata.
struct S3Backdoor {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Backdoor {
    fn key_of(&self, uri: &str) -> String {
        let rest = uri
            .strip_prefix(&format!("s3://{}/", self.bucket))
            .expect("an s3 URI of the test bucket");
        rest.to_owned()
    }
    fn put(&self, key: String, bytes: &[u8]) {
        block_on(
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from(bytes.to_vec()))
                .send(),
        )
        .unwrap();
    }
}

impl Backdoor for S3Backdoor {
    fn delete(&self, uri: &str) {
        block_on(
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.key_of(uri))
                .send(),
        )
        .unwrap();
    }
    fn overwrite(&self, uri: &str, bytes: &[u8]) {
        self.put(self.key_of(uri), bytes);
    }
    fn plant(&self, hex: &str, ext: &str, bytes: &[u8]) {
        self.put(format!("{}/sha256/{hex}{ext}", self.prefix), bytes);
    }
    fn object_names(&self) -> Vec<String> {
        let listed = block_on(self.client.list_objects_v2().bucket(&self.bucket).send()).unwrap();
        let under = format!("{}/sha256/", self.prefix);
        let mut names: Vec<String> = listed
            .contents()
            .iter()
            .map(|o| {
                let key = o.key().unwrap();
                key.strip_prefix(&under)
                    .unwrap_or_else(|| panic!("object outside the layout: {key}"))
                    .to_owned()
            })
            .collect();
        names.sort();
        names
    }
    fn foreign_uri(&self, hex: &str, ext: &str) -> String {
        format!("file:///srv/tpf/artifacts/{hex}{ext}")
    }
}

fn s3() -> Fixture {
    block_on(async {
        let sdk = moto::sdk_config().await;
        let client = tpf_core::providers::s3::client(&sdk, None, None, true);
        let bucket = moto::unique("tpf-art");
        client.create_bucket().bucket(&bucket).send().await.unwrap();
        let prefix = "tpf/releases".to_owned();
        Fixture {
            store: Arc::new(S3ArtifactStore::new(
                client.clone(),
                bucket.clone(),
                prefix.clone(),
            )),
            backdoor: Box::new(S3Backdoor {
                client,
                bucket,
                prefix,
            }),
            _guard: Box::new(()),
        }
    })
}

/// Generates one `#[tokio::test]` per case for the provider whose fixture
/// function has the given name.
macro_rules! artifact_store_conformance {
    ($provider:ident) => {
        artifact_store_conformance!(
            $provider:
            store_returns_uri_size_and_checksum,
            store_reads_the_source_from_its_start,
            storing_the_same_bytes_twice_reuses_one_object,
            concurrent_stores_of_the_same_bytes_all_succeed,
            source_changed_when_bytes_do_not_match,
            verify_reports_each_reason,
            an_existing_object_with_other_bytes_is_corrupt,
            art01_names_are_hex_and_the_given_extension,
            empty_and_multi_chunk_objects,
        );
    };
    ($provider:ident: $($case:ident),* $(,)?) => {
        mod $provider {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::cases::$case(super::$provider()).await;
                }
            )*
        }
    };
}

artifact_store_conformance!(memory);
artifact_store_conformance!(file);
artifact_store_conformance!(s3);

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A source file holding `bytes`, its cursor left at the end.
pub fn source(bytes: &[u8]) -> fs::File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

/// Stores `bytes` under `ext`, expecting success.
pub async fn put(store: &dyn ArtifactStore, bytes: &[u8], ext: &str) -> StoredObject {
    store
        .store(source(bytes), &sha(bytes), ext, bytes.len() as u64)
        .await
        .unwrap()
}

mod cases {
    use super::*;

    const JAR: &[u8] = b"PK\x03\x04 pretend this is a jar";

    pub async fn store_returns_uri_size_and_checksum(f: Fixture) {
        let hex = sha(JAR);
        let stored = put(&*f.store, JAR, ".jar").await;
        assert!(
            stored.uri.ends_with(&format!("/{hex}.jar")),
            "{}",
            stored.uri
        );
        assert_eq!(stored.size_bytes, JAR.len() as u64);
        assert_eq!(stored.checksum, format!("sha256:{hex}"));
        assert_eq!(
            stored.uri,
            f.store.managed_uri(&hex, ".jar"),
            "known before storing"
        );
        assert_eq!(
            f.store
                .verify(&stored.uri, stored.size_bytes, &stored.checksum)
                .await
                .unwrap(),
            Verification::Verified
        );
    }

    pub async fn store_reads_the_source_from_its_start(f: Fixture) {
        let mut src = source(JAR);
        src.seek(SeekFrom::Start(5)).unwrap();
        let stored = f
            .store
            .store(src, &sha(JAR), ".jar", JAR.len() as u64)
            .await
            .unwrap();
        assert_eq!(stored.size_bytes, JAR.len() as u64);
    }

    pub async fn storing_the_same_bytes_twice_reuses_one_object(f: Fixture) {
        let a = put(&*f.store, JAR, ".jar").await;
        let b = put(&*f.store, JAR, ".jar").await;
        assert_eq!(a, b);
        assert_eq!(f.backdoor.object_names(), vec![format!("{}.jar", sha(JAR))]);
    }

    pub async fn concurrent_stores_of_the_same_bytes_all_succeed(f: Fixture) {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = f.store.clone();
                let bytes = bytes.clone();
                tokio::spawn(async move { put(&*store, &bytes, ".jar").await })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(
            f.backdoor.object_names(),
            vec![format!("{}.jar", sha(&bytes))]
        );
        let r = &results[0];
        assert_eq!(
            f.store
                .verify(&r.uri, r.size_bytes, &r.checksum)
                .await
                .unwrap(),
            Verification::Verified
        );
    }

    pub async fn source_changed_when_bytes_do_not_match(f: Fixture) {
        // The digest checked earlier is of other bytes.
        let err = f
            .store
            .store(source(JAR), &sha(b"other"), ".jar", JAR.len() as u64)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreArtifactError::SourceChanged), "{err:?}");
        // The source grew or shrank.
        for size in [JAR.len() as u64 - 1, JAR.len() as u64 + 1] {
            let err = f
                .store
                .store(source(JAR), &sha(JAR), ".jar", size)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreArtifactError::SourceChanged), "{err:?}");
        }
        assert!(
            f.backdoor.object_names().is_empty(),
            "nothing stored, no temporary left"
        );
    }

    pub async fn verify_reports_each_reason(f: Fixture) {
        let hex = sha(JAR);
        let s = put(&*f.store, JAR, ".jar").await;
        let verify = |uri: String, size: u64, checksum: String| {
            let store = f.store.clone();
            async move { store.verify(&uri, size, &checksum).await.unwrap() }
        };
        let failed = Verification::Failed;
        // Against the wrong record values.
        assert_eq!(
            verify(s.uri.clone(), s.size_bytes + 1, s.checksum.clone()).await,
            failed("size differs")
        );
        assert_eq!(
            verify(s.uri.clone(), s.size_bytes, format!("sha256:{}", sha(b"x"))).await,
            failed("checksum differs")
        );
        assert_eq!(
            verify(
                f.backdoor.foreign_uri(&hex, ".jar"),
                s.size_bytes,
                s.checksum.clone()
            )
            .await,
            failed("artifact store changed")
        );
        // Damage to the object.
        f.backdoor.overwrite(&s.uri, &JAR[..JAR.len() - 3]);
        assert_eq!(
            verify(s.uri.clone(), s.size_bytes, s.checksum.clone()).await,
            failed("size differs")
        );
        let mut altered = JAR.to_vec();
        altered[0] ^= 0xff;
        f.backdoor.overwrite(&s.uri, &altered);
        assert_eq!(
            verify(s.uri.clone(), s.size_bytes, s.checksum.clone()).await,
            failed("checksum differs")
        );
        f.backdoor.overwrite(&s.uri, &[]);
        assert_eq!(
            verify(s.uri.clone(), s.size_bytes, s.checksum.clone()).await,
            failed("size differs")
        );
        f.backdoor.delete(&s.uri);
        assert_eq!(
            verify(s.uri.clone(), s.size_bytes, s.checksum.clone()).await,
            failed("missing or unreadable")
        );
        // Never-stored objects are missing too.
        let absent = s.uri.replace(&hex, &sha(b"never"));
        assert_eq!(
            verify(absent, 5, format!("sha256:{}", sha(b"never"))).await,
            failed("missing or unreadable")
        );
    }

    pub async fn an_existing_object_with_other_bytes_is_corrupt(f: Fixture) {
        let hex = sha(JAR);
        let mut altered = JAR.to_vec();
        altered[3] ^= 0x01;
        f.backdoor.plant(&hex, ".jar", &altered);
        let err = f
            .store
            .store(source(JAR), &hex, ".jar", JAR.len() as u64)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreArtifactError::ExistingCorrupt("checksum differs")),
            "{err:?}"
        );
        f.backdoor.plant(&hex, ".jar", b"short");
        let err = f
            .store
            .store(source(JAR), &hex, ".jar", JAR.len() as u64)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreArtifactError::ExistingCorrupt("size differs")),
            "{err:?}"
        );
        // Never overwritten.
        assert_eq!(f.backdoor.object_names(), vec![format!("{hex}.jar")]);
        f.backdoor.plant(&hex, ".jar", JAR);
        assert_eq!(
            put(&*f.store, JAR, ".jar").await.size_bytes,
            JAR.len() as u64
        );
    }

    pub async fn art01_names_are_hex_and_the_given_extension(f: Fixture) {
        let hex = sha(JAR);
        let jar = put(&*f.store, JAR, ".jar").await;
        let other = put(&*f.store, JAR, ".artifact").await;
        assert!(
            jar.uri.ends_with(&format!("/sha256/{hex}.jar"))
                || jar.uri.ends_with(&format!("/artifacts/{hex}.jar"))
        );
        assert!(other.uri.ends_with(&format!("{hex}.artifact")));
        assert_ne!(jar.uri, other.uri);
        assert_eq!(
            f.backdoor.object_names(),
            vec![format!("{hex}.artifact"), format!("{hex}.jar")]
        );
    }

    pub async fn empty_and_multi_chunk_objects(f: Fixture) {
        let empty = put(&*f.store, b"", ".artifact").await;
        assert_eq!(empty.size_bytes, 0);
        assert_eq!(
            f.store
                .verify(&empty.uri, 0, &empty.checksum)
                .await
                .unwrap(),
            Verification::Verified
        );
        let big: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 % 256) as u8).collect();
        let s = put(&*f.store, &big, ".gz").await;
        assert_eq!(s.size_bytes, big.len() as u64);
        assert_eq!(
            f.store
                .verify(&s.uri, s.size_bytes, &s.checksum)
                .await
                .unwrap(),
            Verification::Verified
        );
    }
}

/// Behaviour only the `local` provider has: layout, URI encoding, file
/// modes, and what counts as "missing or unreadable".
mod file_only {
    use super::*;

    fn store_at(root: &Path) -> LocalArtifactStore {
        LocalArtifactStore::new(root.to_path_buf())
    }

    #[tokio::test]
    async fn art01_layout_uri_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("with space+\u{e9}%");
        let store = store_at(&root);
        let bytes = b"hello";
        let s = put(&store, bytes, ".jar").await;
        let object = root.join("artifacts").join(format!("{}.jar", sha(bytes)));
        let encoded_root = format!("{}/with%20space%2B%C3%A9%25", dir.path().display());
        assert_eq!(
            s.uri,
            format!("file://{encoded_root}/artifacts/{}.jar", sha(bytes)),
            "tempdir paths are plain ASCII, so only the test's segment is encoded"
        );
        assert_eq!(path_of(&s.uri), object);
        let meta = fs::metadata(&object).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o444);
        assert_eq!(fs::read(&object).unwrap(), bytes);
        assert_eq!(fs::read_dir(root.join("artifacts")).unwrap().count(), 1);
        assert_eq!(
            store.verify(&s.uri, 5, &s.checksum).await.unwrap(),
            Verification::Verified
        );
    }

    #[tokio::test]
    async fn not_a_regular_file_is_missing_or_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_at(dir.path());
        let s = put(&store, b"hello", ".jar").await;
        let object = path_of(&s.uri);
        // A symbolic link to a good copy is not the stored object.
        let copy = dir.path().join("copy");
        fs::copy(&object, &copy).unwrap();
        fs::remove_file(&object).unwrap();
        std::os::unix::fs::symlink(&copy, &object).unwrap();
        let failed = Verification::Failed("missing or unreadable");
        assert_eq!(store.verify(&s.uri, 5, &s.checksum).await.unwrap(), failed);
        fs::remove_file(&object).unwrap();
        fs::create_dir(&object).unwrap();
        assert_eq!(store.verify(&s.uri, 5, &s.checksum).await.unwrap(), failed);
        // Storing again over a directory reports the copy as corrupt.
        let err = store
            .store(source(b"hello"), &sha(b"hello"), ".jar", 5)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreArtifactError::ExistingCorrupt(_)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn odd_file_uris_are_missing_not_outages() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_at(dir.path());
        let failed = Verification::Failed("missing or unreadable");
        for uri in [
            "file://host/srv/x.jar",
            "file:relative/x.jar",
            "file:///nonexistent-dir/deeper/x.jar",
            "file:///etc/passwd/x.jar",
            "FILE:///nonexistent/x.jar",
        ] {
            assert_eq!(
                store.verify(uri, 1, "sha256:00").await.unwrap(),
                failed,
                "{uri}"
            );
        }
        assert_eq!(
            store.verify("no-scheme", 1, "sha256:00").await.unwrap(),
            Verification::Failed("artifact store changed")
        );
    }

    #[tokio::test]
    async fn a_leftover_temporary_does_not_disturb_storing() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = dir.path().join("artifacts");
        fs::create_dir_all(&artifacts).unwrap();
        fs::write(artifacts.join(".tmp-x"), b"partial").unwrap();
        let store = store_at(dir.path());
        let s = put(&store, b"hello", ".jar").await;
        assert_eq!(
            store.verify(&s.uri, 5, &s.checksum).await.unwrap(),
            Verification::Verified
        );
    }
}
