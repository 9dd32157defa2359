#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, conformance, in-process and
# socket HTTP tests, multi-process tests, and the black-box test over
# `cargo lambda watch` (installs cargo-lambda into .venv if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh
ensure_cargo_lambda
infra/validate-template.sh  # cfn-lint + sam validate --lint, offline; before moto starts (shared venv)
ensure_moto
# One moto_server on a free loopback port for every AWS provider test; stopped on exit.
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$TPF_MOTO_SERVER" -H 127.0.0.1 -p "$MOTO_PORT" > "${TMPDIR:-/tmp}/tpf-moto-$MOTO_PORT.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
export TPF_MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break
  sleep 0.1
done
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# Black-box tests start the functions the way the README does.
cargo build --bins
cargo test -p tpf-tests --test blackbox -- --ignored --test-threads=1
