#!/usr/bin/env bash
# Starts every function locally under one base URL (default
# http://127.0.0.1:9000) on the file providers, through `cargo lambda watch`
# and the router in Cargo.toml's [workspace.metadata.lambda.watch.router].
# Extra arguments go to `cargo lambda watch` (e.g. --ignore-changes).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh
ensure_cargo_lambda
export_local_defaults
ADDRESS="${TPF_LOCAL_ADDRESS:-127.0.0.1}"
PORT="${TPF_LOCAL_PORT:-9000}"
cargo build --bins
echo "serving http://$ADDRESS:$PORT (state in $TPF_LOCAL_STATE_DIR)" >&2
exec cargo lambda watch -A "$ADDRESS" -P "$PORT" "$@"
