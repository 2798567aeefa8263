#!/usr/bin/env bash
# Runs the README's quick-start examples as printed, against the debug
# binaries (`cargo run --release -p X --` in the README is the same binary
# with the same arguments; building release here too would double CI time).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p thingcall-server -p thingcall-cli -p thingcall-device
buf=${BUF:-.ci/node/node_modules/.bin/buf}
bin=${CARGO_TARGET_DIR:-target}/debug
log=$(mktemp)
"$bin/thingcall-server" --demo 3 >"$log" 2>&1 &
server=$!
sim=
trap 'kill $server $sim 2>/dev/null || true; wait $server $sim 2>/dev/null || true' EXIT

fail() { echo "smoke: $*" >&2; echo "--- server log" >&2; cat "$log" >&2; exit 1; }
# Bounded polling: a readiness probe of a separate process, not test synchronisation.
wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}
online() { "$bin/thingcall" device "$1" --json | grep -q '"online": *true'; }
offline() { "$bin/thingcall" device "$1" --json | grep -q '"online": *false'; }

wait_for "gRPC port" grpcurl -plaintext 127.0.0.1:8080 list
for d in demo-1 demo-2 demo-3; do wait_for "$d online" online "$d"; done

grpcurl -plaintext 127.0.0.1:8080 list | grep -qx 'thingcall.v1.DeviceGateway' || fail "reflection does not list the service"
out=$(grpcurl -plaintext -d '{"target":"demo-1","method":"echo","payload":"aGk="}' 127.0.0.1:8080 thingcall.v1.DeviceGateway/Invoke)
echo "$out" | grep -q '"payload": "aGk="' || fail "grpcurl Invoke: $out"
echo "$out" | grep -q '"status": 200' || fail "grpcurl Invoke status: $out"

# HTTP/JSON, SSE and the seed API, as in the README.
out=$(curl -s -XPOST localhost:8080/v1/devices/demo-1/methods/echo -d '{"payload":{"hello":"world"}}')
python3 -c 'import json,sys; v=json.loads(sys.argv[1]); assert v["payload"]=={"hello":"world"} and v["status"]==200, v' "$out" || fail "curl JSON echo: $out"
# README "Observe": Server-Timing on answers, /metrics counting the calls.
out=$(curl -si -X POST localhost:8080/v1/devices/demo-1/methods/echo -d '{"payload":"hi"}' | grep -i server-timing || true)
echo "$out" | grep -q 'device;dur=' || fail "no Server-Timing with device time: $out"
out=$(curl -s localhost:8080/metrics | grep '^thingcall_invocations_total' || true)
echo "$out" | grep -q 'method="echo",outcome="OK"' || fail "/metrics does not count echo calls: $out"
# README "Retries and idempotency keys": one key, one run, one requestId.
key_call() { curl -s -XPOST localhost:8080/v1/devices/demo-1/methods/echo -d '{"payload":"open","idempotencyKey":"order-42"}'; }
first=$(key_call); again=$(key_call)
python3 -c 'import json,sys; a,b=(json.loads(x) for x in sys.argv[1:]); assert a["status"]==200 and a["requestId"]==b["requestId"], (a,b)' "$first" "$again" || fail "idempotency key: $first / $again"
curl -s localhost:8080/metrics | grep -qx 'thingcall_idempotent_replays_total 1' || fail "/metrics does not count the replay"
# README "Fan-out": NDJSON over curl, and the CLI's table and exit code.
out=$(curl -sN -XPOST localhost:8080/v1/invoke-many -d '{"pattern":"demo-*","method":"echo","payload":{"hi":1},"rate":10}')
python3 -c '
import json,sys
lines=[json.loads(l) for l in sys.argv[1].splitlines()]
assert [l["result"]["outcome"] for l in lines[:-1]]==["OK"]*3, lines
assert lines[-1]["summary"]["succeeded"]==3 and lines[-1]["summary"]["ended"]=="COMPLETED", lines' "$out" || fail "curl invoke-many: $out"
set +e; out=$("$bin/thingcall" invoke-many 'demo-*' fail); code=$?; set -e
[ "$code" = 1 ] || fail "thingcall invoke-many fail exited $code: $out"
echo "$out" | grep -q '^demo-3  DEVICE_STATUS_500  failed on purpose$' || fail "invoke-many table: $out"
echo "$out" | grep -q '^3 devices, 3 called, 0 ok, 3 failed;' || fail "invoke-many totals: $out"
events=$(timeout 3 curl -sN localhost:8080/v1/devices/demo-1/events || true)
echo "$events" | grep -q '^event: presence' || fail "SSE stream: $events"
echo "$events" | grep -q '"online":true' || fail "SSE presence: $events"
out=$(curl -s 'localhost:8080/invoke?request=my_request_1&method=reqid-ABCD&target=Device001&timeout=3')
python3 -c '
import json,sys
v=json.loads(sys.argv[1])
assert v["result"]=="ok" and v["elapsed"].isdigit(), v
assert v["response"].startswith("Your request was '"'"'my_request_1'"'"'. Some random response: "), v' "$out" || fail "/invoke: $out"
# grpcurl streaming and buf curl over gRPC-web.
watch=$(timeout 3 grpcurl -plaintext -d '{"target":"demo-*"}' 127.0.0.1:8080 thingcall.v1.DeviceGateway/WatchDevice || true)
echo "$watch" | grep -q '"synced"' || fail "grpcurl WatchDevice: $watch"
out=$("$buf" curl --protocol grpcweb --data '{"target":"demo-1","method":"echo","payload":"aGk="}' http://127.0.0.1:8080/thingcall.v1.DeviceGateway/Invoke)
echo "$out" | grep -q '"payload": "aGk="' || fail "buf curl gRPC-web: $out"
# The simulator binary as a sample-style device.
"$bin/thingcall-sim" --mqtt-url mqtt://127.0.0.1:1883 --contract seed --device-id Device002 >>"$log" 2>&1 &
sim=$!
seed_ok() { curl -s 'localhost:8080/invoke?request=r&method=m&target=Device002&timeout=1' | grep -q '"result":"ok"'; }
wait_for "thingcall-sim --contract seed" seed_ok

[ "$("$bin/thingcall" invoke demo-1 echo --payload hi)" = hi ] || fail "thingcall invoke echo"
"$bin/thingcall" devices | grep -q demo-3 || fail "thingcall devices"

# README "Clients": the Python and TypeScript calls as printed (.ci/python.sh
# installed the package; .ci/web.sh the web client's dependencies).
out=$(python3 -c 'import thingcall; print(thingcall.Client("127.0.0.1:8080").invoke("demo-1", "echo", "hi").text())') || fail "README Python call: $out"
[ "$out" = hi ] || fail "README Python call printed $out"
out=$(cd clients/web && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run -s build >/dev/null &&
  node --input-type=module -e 'import { createClient } from "./dist/index.js"; const r = await createClient({ baseUrl: "http://127.0.0.1:8080" }).invoke("demo-1", "echo", "hi"); console.log(new TextDecoder().decode(r.payload))') || fail "README TypeScript call: $out"
[ "$out" = hi ] || fail "README TypeScript call printed $out"
out=$(curl -s localhost:8080/)
echo "$out" | grep -q 'console.js' || fail "the console page at /: $out"
[ "$("$bin/thingcall" -o json invoke demo-1 echo --payload hi | python3 -c 'import json,sys; print(json.load(sys.stdin)["payload"])')" = hi ] || fail "thingcall -o json invoke"

[ "$("$bin/thingcall" invoke demo-2 reboot --payload 15000)" = rebooting ] || fail "reboot"
wait_for "demo-2 offline" offline demo-2
set +e
err=$("$bin/thingcall" invoke demo-2 echo --payload hi 2>&1 >/dev/null); code=$?
set -e
[ "$code" = 4 ] || fail "offline device: exit $code, want 4 ($err)"
echo "$err" | grep -q '^thingcall: DEVICE_OFFLINE: ' || fail "offline device: $err"
[ "$("$bin/thingcall" invoke demo-2 echo --payload hi --connect-timeout 20s --timeout 30s)" = hi ] || fail "connect-timeout wait"

echo "smoke: README examples OK"
