//! Build script of every function package (`build = "../link-no-pie.rs"`):
//! links the bootstrap as a non-PIE executable on Linux.
//!
//! A PIE bootstrap carries ≈ 0.7 MB of dynamic relocations that the loader
//! applies at every cold start; without PIE they are resolved at link time
//! and GOT accesses become direct (arm64 control-plane 9.55 → 8.25 MB,
//! BENCHMARKS.md "Cold start and binary size"). Only the binaries get the
//! flag: a `cdylib` in the dependency graph (`crc-fast`, under the S3 SDK)
//! cannot be linked with it, so neither `-C relocation-model=static` nor a
//! `-C link-arg` in RUSTFLAGS would do.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
