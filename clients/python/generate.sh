#!/usr/bin/env bash
# Regenerates the gRPC stubs in src/thingcall/v1/ from the gateway's proto.
# `-I proto` makes the generated imports `from thingcall.v1 import ...`,
# which resolve inside this package, so they never collide with another
# project's top-level *_pb2 modules. Needs grpcio-tools at the version
# pinned in pyproject.toml (the committed output is checked against it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
want="$(sed -n 's/.*"grpcio-tools==\([0-9.]*\)".*/\1/p' "$here/pyproject.toml")"
have="$("$python" -c 'from importlib.metadata import version; print(version("grpcio-tools"))' 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
  echo "generate.sh: needs grpcio-tools==$want (found ${have:-none}): $python -m pip install grpcio-tools==$want" >&2
  exit 1
fi
"$python" -m grpc_tools.protoc \
  -I "$repo/proto" \
  --python_out="$here/src" \
  --pyi_out="$here/src" \
  --grpc_python_out="$here/src" \
  "$repo/proto/thingcall/v1/gateway.proto"
