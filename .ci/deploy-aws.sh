#!/usr/bin/env bash
# Checks the AWS CloudFormation templates offline (cfn-lint bundles the
# resource specifications): lints every *.yaml / *.yml under deploy/aws/,
# SAM templates included (cfn-lint expands them with aws-sam-translator),
# with informational checks on, and fails on any finding. Then checks what
# spans the templates and the gateway (.ci/aws_templates.py): the IoT policy
# against deploy/aws-iot/gateway-policy.json, the deadlines, the ALB's
# routing and health checks, and the task's start-up script (with the real
# gateway against a Mosquitto asking for client certificates, when a built
# thingcall-server is at THINGCALL_SERVER_BIN or in target/).
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION=1.51.0

if ! cfn-lint --version 2>/dev/null | grep -qx "cfn-lint $CFN_LINT_VERSION"; then
  python3 -m pip install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION"
fi

mapfile -t templates < <(find deploy/aws -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
if [ "${#templates[@]}" -eq 0 ]; then
  echo "deploy-aws: no templates under deploy/aws" >&2
  exit 1
fi

# Exit status: a bit each for errors (2), warnings (4) and informational
# findings (8); any of them fails the check.
echo "deploy-aws: cfn-lint $CFN_LINT_VERSION on ${#templates[@]} templates: ${templates[*]}"
cfn-lint --include-checks I --format parseable -- "${templates[@]}"
echo "deploy-aws: cfn-lint found nothing"

python3 .ci/aws_templates.py
