#!/usr/bin/env bash
# The container image and the Helm chart, checked offline (no Docker engine,
# no cluster, no helm binary needed): hadolint on deploy/Dockerfile; the chart
# linted (strict) and rendered with each values file in
# deploy/helm/thingcall/ci/ (the defaults plus the two required values, and
# every optional part on: HPA, ServiceMonitor, existing and inline Secrets,
# broker TLS, JWT); each rendering validated with kubernetes-validate
# --strict against the oldest Kubernetes the chart supports and a recent one,
# its ServiceMonitor (a CRD kubernetes-validate has no schema for) against
# deploy/helm/schemas/servicemonitor-v1.json, and its promises checked by
# deploy/helm/check-rendered.py; values the gateway would refuse must fail to
# render. Installs the pinned tools of deploy/requirements.txt when missing.
# Fails on any finding.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
req=deploy/requirements.txt
chart=deploy/helm/thingcall
render=deploy/helm/render
# The chart's kubeVersion floor, and the newest kubernetes-validate bundles.
kube_versions="1.30.0 1.37.0"

installed() { "$py" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$1" 2>/dev/null || true; }
missing=()
while read -r pin; do
  name=${pin%%==*}
  [ "$(installed "$name")" = "${pin#*==}" ] || missing+=("$pin")
done < <(grep -E '^[a-z].*==' "$req")
if [ ${#missing[@]} -gt 0 ]; then
  "$py" -m pip install -q "${missing[@]}"
fi
bindir=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$bindir:$PATH"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "deploy-k8s.sh: $*" >&2; exit 1; }

# 1. The Dockerfile: any finding, down to info, fails.
hadolint --no-color --failure-threshold info deploy/Dockerfile \
  || fail "hadolint found the above in deploy/Dockerfile"

# 2. The validator itself rejects an unknown field under --strict (so a
# passing rendering means something).
cat >"$work/bad.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: bad}
spec: {ports: [{port: 80, appProtocoll: h2c}]}
EOF
if kubernetes-validate --strict --quiet -k 1.37.0 "$work/bad.yaml" >/dev/null 2>&1; then
  fail "kubernetes-validate --strict accepted an unknown field"
fi

# The THINGCALL_* variables the gateway reads: the names quoted in its source
# and in the broker flags it shares with the device crate.
known_env=$(grep -rhoE '"THINGCALL_[A-Z_]+"' server/src device/src/broker_args.rs | tr -d '"' | sort -u)

# 3. Each values file: lint, render, validate, check.
renderings=0
for values in "$chart"/ci/*-values.yaml; do
  case_name=$(basename "$values" -values.yaml)
  out="$work/$case_name.yaml"
  "$render" --sdk --lint -f "$values" >"$work/lint.txt" 2>&1 \
    || { cat "$work/lint.txt" >&2; fail "$case_name: helm lint --strict failed"; }
  "$render" --sdk -f "$values" >"$out" || fail "$case_name: the chart did not render"

  # Core objects against the Kubernetes schemas; CRDs on their own.
  "$py" - "$out" "$work/$case_name-core.yaml" "$work/$case_name-crd.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if d["kind"] != "ServiceMonitor"]
crd = [d for d in docs if d["kind"] == "ServiceMonitor"]
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
yaml.safe_dump_all(crd, open(sys.argv[3], "w"))
EOF
  for k in $kube_versions; do
    # --quiet prints only findings; a WARN (no schema for a kind) is one too.
    findings=$(kubernetes-validate --strict --quiet -k "$k" "$work/$case_name-core.yaml" 2>&1) \
      || { echo "$findings" >&2; fail "$case_name: kubernetes-validate $k failed"; }
    [ -z "$findings" ] || { echo "$findings" >&2; fail "$case_name: kubernetes-validate $k reported findings"; }
  done
  "$py" deploy/helm/check-rendered.py "$out" "$values" deploy/helm/schemas/servicemonitor-v1.json \
    || fail "$case_name: check-rendered.py failed"

  # Every THINGCALL_* name the chart sets is one the gateway reads.
  for name in $(grep -oE 'THINGCALL_[A-Z_]+' "$work/$case_name-core.yaml" | sort -u); do
    grep -qx "$name" <<<"$known_env" || fail "$case_name: the chart sets $name, which the gateway does not read"
  done
  renderings=$((renderings + 1))
done
[ "$renderings" -ge 4 ] || fail "only $renderings values files in $chart/ci"

# 4. Values the gateway would refuse at start-up fail to render, saying why.
base=(--set mqtt.url=mqtt://broker:1883)
refuse() { # expected message, render flags...
  local want=$1; shift
  if "$render" --sdk "$@" >"$work/out.txt" 2>&1; then
    fail "rendered with $*; expected a refusal: $want"
  fi
  grep -qF "$want" "$work/out.txt" || { cat "$work/out.txt" >&2; fail "refusal of $* does not say: $want"; }
}
refuse "no caller authentication" "${base[@]}"
refuse "mqtt.url is required" --set auth.apiKeysSecret=k
refuse "mqtt.url must start with" --set mqtt.url=broker:1883 --set auth.apiKeysSecret=k
refuse "drainTimeout must be whole seconds" "${base[@]}" --set auth.apiKeysSecret=k --set drainTimeout=1m
refuse "must be above preStopSleepSeconds + drainTimeout" "${base[@]}" --set auth.apiKeysSecret=k --set terminationGracePeriodSeconds=12
refuse "JWTs need auth.jwt.issuer" "${base[@]}" --set auth.jwt.existingSecret=j
refuse "a broker password needs mqtt.username" "${base[@]}" --set auth.apiKeysSecret=k --set mqtt.password=p
refuse "needs serviceMonitor.authorization.secretName" "${base[@]}" --set auth.apiKeysSecret=k \
  --set metrics.auth=true --set serviceMonitor.enabled=true
# insecureNoAuth is a choice the chart allows, and says so.
"$render" --sdk "${base[@]}" --set auth.insecureNoAuth=true | grep -q 'THINGCALL_INSECURE_NO_AUTH: "true"' \
  || fail "auth.insecureNoAuth=true did not render THINGCALL_INSECURE_NO_AUTH"

echo "deploy-k8s.sh: ok (hadolint clean; $renderings renderings linted, valid against Kubernetes ${kube_versions// /, } and checked; 8 refusals)"
