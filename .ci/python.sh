#!/usr/bin/env bash
# The Python client (clients/python): installs what is missing, checks that
# the committed stubs are what the pinned grpcio-tools generates, runs its
# tests against real gateway and simulator processes, and runs the invoke
# example against a --demo 3 gateway on free ports. Assumes
# target/debug/thingcall-server and thingcall-sim are built (CI builds them
# before; locally: cargo build -p thingcall-server -p thingcall-device --bins).
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
pkg=clients/python
bin=${CARGO_TARGET_DIR:-target}/debug

pinned() { sed -n "s/.*\"$1==\([0-9.]*\)\".*/\1/p" "$pkg/pyproject.toml"; }
installed() { "$py" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$1" 2>/dev/null || true; }
tools=$(pinned grpcio-tools)
if [ "$(installed grpcio-tools)" != "$tools" ]; then
  "$py" -m pip install -q "grpcio-tools==$tools"
fi
if [ -z "$(installed pytest)" ]; then
  "$py" -m pip install -q "pytest==$(pinned pytest)"
fi
# Always: the tests must import this checkout's package, not an older install.
"$py" -m pip install -q "./$pkg"

# The stubs are committed; a fresh generation must match them byte for byte.
PYTHON="$py" bash "$pkg/generate.sh"
if ! git diff --exit-code --stat -- "$pkg/src/thingcall/v1" \
  || [ -n "$(git status --porcelain --untracked-files=all -- "$pkg/src/thingcall/v1" | grep -v __pycache__ || true)" ]; then
  echo "python.sh: the generated stubs differ from the committed ones; run $pkg/generate.sh and commit" >&2
  exit 1
fi

"$py" -m pytest "$pkg" -q

# The invoke example against a gateway of its own (the example's default,
# 127.0.0.1:8080, may be taken; --server points it at this one).
log=$(mktemp)
RUST_LOG=warn,thingcall_server=info "$bin/thingcall-server" --listen 127.0.0.1:0 \
  --embedded-broker-listen 127.0.0.1:0 --log-format json --demo 3 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
fail() { echo "python.sh: $*" >&2; echo "--- server log" >&2; cat "$log" >&2; exit 1; }
# Bounded polling: readiness of a separate process, not test synchronisation.
wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}
listening() { grep -q '"thingcall-server listening"' "$log"; }
wait_for "the gateway's listening line" listening
addr=$("$py" -c 'import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)
    if v.get("fields", {}).get("message") == "thingcall-server listening":
        print(v["fields"]["grpc"]); break' "$log")
online() { curl -sf "http://$addr/v1/devices/demo-1" | grep -q '"online": *true'; }
wait_for "demo-1 online" online
out=$("$py" "$pkg/examples/invoke.py" --server "$addr") || fail "examples/invoke.py failed: $out"
[ "$out" = "hi" ] || fail "examples/invoke.py printed $out, not hi"
echo "python.sh: ok"
