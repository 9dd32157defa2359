#!/usr/bin/env bash
# Local AWS mode: every function under one base URL (default
# http://127.0.0.1:9000) on the dynamo, s3 and sqs providers, against a
# local moto_server, the way template.yaml wires them on AWS:
#   1. moto_server on a free loopback port (or TPF_LOCAL_AWS_ENDPOINT if set);
#   2. `tpf-local-aws provision` creates the template's tables, bucket and
#      queues there, stores the local tokens and worker secret in SSM and
#      Secrets Manager, and writes the functions' environment, evaluated from
#      the template's Globals, to $TPF_LOCAL_STATE_DIR/aws.env;
#   3. `tpf-local-aws pump` plays the SQS event source of the dispatcher and
#      the schedule of the sweeper (TPF_LOCAL_SWEEP_SECONDS overrides the
#      template's rate);
#   4. `cargo lambda watch` serves the functions.
# Extra arguments go to `cargo lambda watch` (e.g. --ignore-changes).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh
ensure_cargo_lambda
ensure_moto
export_local_defaults
ADDRESS="${TPF_LOCAL_ADDRESS:-127.0.0.1}"
PORT="${TPF_LOCAL_PORT:-9000}"
STACK="${TPF_LOCAL_AWS_STACK:-tpf-local}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
mkdir -p "$TPF_LOCAL_STATE_DIR"

cleanup() { kill $(jobs -p) 2>/dev/null || true; }
trap cleanup EXIT

if [ -z "${TPF_LOCAL_AWS_ENDPOINT:-}" ]; then
  MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$TPF_MOTO_SERVER" -H 127.0.0.1 -p "$MOTO_PORT" > "$TPF_LOCAL_STATE_DIR/moto.log" 2>&1 &
  TPF_LOCAL_AWS_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break
    sleep 0.1
  done
fi
# Every AWS client of the functions and of the tool goes to the local peer.
export AWS_ENDPOINT_URL="$TPF_LOCAL_AWS_ENDPOINT"
export TPF_DYNAMO_ENDPOINT_OVERRIDE="$TPF_LOCAL_AWS_ENDPOINT"
export TPF_SQS_ENDPOINT_OVERRIDE="$TPF_LOCAL_AWS_ENDPOINT"
export TPF_RELEASES_STORAGE_S3_ENDPOINT_OVERRIDE="$TPF_LOCAL_AWS_ENDPOINT"
export TPF_RELEASES_STORAGE_S3_PATH_STYLE_ACCESS=true

cargo build --bins
target/debug/tpf-local-aws provision template.yaml "$STACK" "$TPF_LOCAL_STATE_DIR/aws.env"
source "$TPF_LOCAL_STATE_DIR/aws.env"
# Besides the bucket's releases/ prefix, the local registration root, so a
# release written by `demo-release` registers without an upload step.
export TPF_RELEASES_REGISTRATION_ROOTS="$TPF_LOCAL_STATE_DIR/releases,$TPF_RELEASES_REGISTRATION_ROOTS"

target/debug/tpf-local-aws pump template.yaml "$STACK" "http://$ADDRESS:$PORT" ${TPF_LOCAL_SWEEP_SECONDS:-} &
echo "serving http://$ADDRESS:$PORT on $TPF_LOCAL_AWS_ENDPOINT (stack $STACK, state in $TPF_LOCAL_STATE_DIR)" >&2
cargo lambda watch -A "$ADDRESS" -P "$PORT" "$@"
