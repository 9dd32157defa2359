#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, conformance, in-process and
# socket HTTP tests, multi-process tests, and the black-box test over
# `cargo lambda watch` (installs cargo-lambda into .venv if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh
ensure_cargo_lambda
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# Black-box tests start the functions the way the README does.
cargo build --bins
cargo test -p tpf-tests --test blackbox -- --ignored --test-threads=1
cargo test -p tpf-tests --test blackbox_engine -- --ignored --test-threads=1
