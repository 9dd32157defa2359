#!/usr/bin/env bash
# Offline checks of the SAM template: `cfn-lint` and `sam validate --lint`.
# Both run with no AWS credentials and no network (the region only names the
# cfn-lint resource spec); each must report zero findings.
#
# Installs pinned cfn-lint and aws-sam-cli into the project venv (.venv) on
# first use, next to cargo-lambda (infra/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh
ensure_cargo_lambda

CFN_LINT_VERSION="1.58.0"
SAM_CLI_VERSION="1.170.0"
TEMPLATE="${1:-template.yaml}"

installed="$("$TPF_VENV/bin/python" -c 'import importlib.metadata as m
print(m.version("cfn-lint"), m.version("aws-sam-cli"))' 2>/dev/null || true)"
if [ "$installed" != "$CFN_LINT_VERSION $SAM_CLI_VERSION" ]; then
  echo "installing cfn-lint $CFN_LINT_VERSION and aws-sam-cli $SAM_CLI_VERSION into $TPF_VENV" >&2
  "$TPF_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "cfn-lint==$CFN_LINT_VERSION" "aws-sam-cli==$SAM_CLI_VERSION"
fi

export SAM_CLI_TELEMETRY=0
# No AWS account is needed; keep the tools from reading the user's profile.
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

echo "cfn-lint $TEMPLATE" >&2
"$TPF_VENV/bin/cfn-lint" "$TEMPLATE"
echo "sam validate --lint -t $TEMPLATE" >&2
"$TPF_VENV/bin/sam" validate --lint -t "$TEMPLATE" --region us-east-1
