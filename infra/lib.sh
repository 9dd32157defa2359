# Shared helpers of the infra scripts (sourced, not run).

# Project-local tool directory (git-ignored).
TPF_VENV="${TPF_VENV:-$PWD/.venv}"
CARGO_LAMBDA_VERSION="1.9.2"

# Installs cargo-lambda into the project venv if missing and puts it on PATH.
# `watch` needs no zig, so the wheel is installed without its dependencies.
ensure_cargo_lambda() {
  if [ ! -x "$TPF_VENV/bin/cargo-lambda" ]; then
    echo "installing cargo-lambda $CARGO_LAMBDA_VERSION into $TPF_VENV" >&2
    if python3 -m venv "$TPF_VENV" 2>/dev/null; then
      "$TPF_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "cargo-lambda==$CARGO_LAMBDA_VERSION"
    else
      # No venv module: install the wheel into a plain target directory.
      python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$TPF_VENV/site" "cargo-lambda==$CARGO_LAMBDA_VERSION"
      mkdir -p "$TPF_VENV/bin"
      ln -sf "$TPF_VENV/site/bin/cargo-lambda" "$TPF_VENV/bin/cargo-lambda"
    fi
  fi
  export PATH="$TPF_VENV/bin:$PATH"
  export TPF_CARGO_LAMBDA="$TPF_VENV/bin/cargo-lambda"
}

MOTO_VERSION="5.2.5"

# Installs moto's server (the DynamoDB/S3/SQS/SSM/Secrets Manager wire peer
# of the AWS provider tests) into the project venv and exports its path.
ensure_moto() {
  ensure_cargo_lambda
  if [ ! -x "$TPF_VENV/bin/moto_server" ]; then
    echo "installing moto[server] $MOTO_VERSION into $TPF_VENV" >&2
    "$TPF_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  export TPF_MOTO_SERVER="$TPF_VENV/bin/moto_server"
}

# Local defaults of every function; each one can be overridden by exporting
# the variable before running the command.
export_local_defaults() {
  # Everything local lives under one git-ignored directory.
  export TPF_LOCAL_STATE_DIR="${TPF_LOCAL_STATE_DIR:-$PWD/.tpf-state}"
  export TPF_STATE_ROOT="${TPF_STATE_ROOT:-$TPF_LOCAL_STATE_DIR/state}"
  export TPF_CONTROL_PLANE_ENABLED="${TPF_CONTROL_PLANE_ENABLED:-true}"
  export TPF_ADMIN_ENABLED="${TPF_ADMIN_ENABLED:-true}"
  if [ -z "${TPF_CONTROL_PLANE_TOKEN_REF:-}" ]; then
    export TPF_CONTROL_PLANE_TOKEN="${TPF_CONTROL_PLANE_TOKEN:-local-control-token}"
  fi
  if [ -z "${TPF_ADMIN_TOKEN_REF:-}" ]; then
    export TPF_ADMIN_TOKEN="${TPF_ADMIN_TOKEN:-local-admin-token}"
  fi
  if [ -z "${TPF_WORKER_SHARED_SECRET_REF:-}" ]; then
    export TPF_WORKER_SHARED_SECRET="${TPF_WORKER_SHARED_SECRET:-local-worker-secret}"
  fi
  export TPF_RELEASES_REGISTRY_PROVIDER="${TPF_RELEASES_REGISTRY_PROVIDER:-file}"
  export TPF_WORKER_LIFECYCLE_PROVIDER="${TPF_WORKER_LIFECYCLE_PROVIDER:-file}"
  export TPF_RELEASES_STORAGE_ROOT="${TPF_RELEASES_STORAGE_ROOT:-$TPF_LOCAL_STATE_DIR/store}"
  export TPF_WORKER_LIFECYCLE_ROOT="${TPF_WORKER_LIFECYCLE_ROOT:-$TPF_LOCAL_STATE_DIR/workers}"
  export TPF_RELEASES_REGISTRATION_ROOTS="${TPF_RELEASES_REGISTRATION_ROOTS:-$TPF_LOCAL_STATE_DIR/releases}"
  export RUST_LOG="${RUST_LOG:-info}"
  # Create local registration roots (they must exist at start-up).
  local root
  IFS=',' read -ra roots <<< "$TPF_RELEASES_REGISTRATION_ROOTS"
  for root in "${roots[@]}"; do
    root="$(echo "$root" | xargs)"
    case "$root" in /*) mkdir -p "$root" ;; esac
  done
}
