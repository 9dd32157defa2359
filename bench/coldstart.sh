#!/usr/bin/env bash
# Cold start and size of the five function bootstraps (issue 6 item 4).
#
#   bash bench/coldstart.sh [tpf-coldstart args]   # x86-64 build, then time
#       spawn → first answered invocation on an emulated runtime API
#       (this machine cannot run arm64 binaries)
#   bash bench/coldstart.sh sizes                   # arm64 (zig) build as
#       deployed (template.yaml: arm64), bootstrap and zip sizes only
#
# cargo-lambda and zig come from the project venv (.venv: cargo-lambda
# 1.9.2, ziglang 0.17.1); the arm64 build needs
# `rustup target add aarch64-unknown-linux-gnu`. Set CARGO_TARGET_DIR to
# build elsewhere than ./target; results land in $CARGO_TARGET_DIR/lambda.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
functions=(control-plane release-admin worker-lifecycle dispatcher sweeper)
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
lambda_dir="${CARGO_TARGET_DIR:-target}/lambda"

if [[ "${1:-}" == sizes ]]; then
    budget=8000000  # 8 MB (BENCHMARKS.md holds it in decimal bytes)
    cargo lambda build --profile deploy --arm64 --output-format zip "${packages[@]}"
    # The zip build leaves bootstrap.zip; build again for the bare binary
    # (no recompilation, cargo-lambda only repackages).
    cargo lambda build --profile deploy --arm64 "${packages[@]}"
    printf '%-17s %12s %12s %s\n' function bootstrap zip budget
    for f in "${functions[@]}"; do
        bin=$(stat -c %s "$lambda_dir/$f/bootstrap" 2>/dev/null || echo 0)
        zip=$(stat -c %s "$lambda_dir/$f/bootstrap.zip" 2>/dev/null || echo -)
        verdict=ok
        ((bin > 0)) || verdict="missing"
        ((bin <= budget)) || verdict="OVER 8 MB"
        printf '%-17s %12d %12d %s\n' "$f" "$bin" "$zip" "$verdict"
    done
    exit 0
fi

cargo lambda build --profile deploy --x86-64 --compiler cargo "${packages[@]}"
cargo run -p tpf-bench --release --bin tpf-coldstart -- --lambda-dir "$lambda_dir" "$@"
