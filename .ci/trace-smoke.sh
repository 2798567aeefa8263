#!/usr/bin/env bash
# Issue 5's "done when", with the real binaries: one curl call with a
# traceparent yields one trace across the gateway and simulator processes,
# received by an OTLP receiver (testkit's otlp-receiver, printing spans).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p thingcall-server -p thingcall-device
cargo build -q -p thingcall-testkit --bin otlp-receiver
bin=${CARGO_TARGET_DIR:-target}/debug
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "trace smoke: $*" >&2; for f in "$work"/*.log "$work/spans"; do echo "--- $f" >&2; cat "$f" >&2; done; exit 1; }
# Bounded polling: readiness of separate processes, not test synchronisation.
wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}
otlp=$(free_port); port=$(free_port); mqtt=$(free_port)
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp"
unset OTEL_SERVICE_NAME OTEL_SDK_DISABLED

"$bin/otlp-receiver" "127.0.0.1:$otlp" >"$work/spans" 2>"$work/receiver.log" &
receiver=$!; pids+=("$receiver")
"$bin/thingcall-server" --listen "127.0.0.1:$port" --embedded-broker-listen "127.0.0.1:$mqtt" >"$work/gateway.log" 2>&1 &
gateway=$!; pids+=("$gateway")
wait_for "gateway port" curl -sf "localhost:$port/metrics"
"$bin/thingcall-sim" --mqtt-url "mqtt://127.0.0.1:$mqtt" --device-id tr-1 >"$work/sim.log" 2>&1 &
sim=$!; pids+=("$sim")
online() { curl -s "localhost:$port/v1/devices/tr-1" | grep -q '"online":true'; }
wait_for "tr-1 online" online

trace=4bf92f3577b34da6a3ce929d0e0e4736
out=$(curl -s -X POST "localhost:$port/v1/devices/tr-1/methods/echo" -d '{"payload":"hi"}' \
  -H "traceparent: 00-$trace-00f067aa0ba902b7-01")
echo "$out" | grep -q '"status":200' || fail "call: $out"

# Both processes flush their spans as they stop.
kill -TERM "$sim" "$gateway"
wait "$sim" "$gateway" || true
exported() { grep -q "^thingcall-sim $trace" "$work/spans" && grep -q "^thingcall-gateway $trace .* SPAN_KIND_PRODUCER" "$work/spans"; }
wait_for "spans from both processes" exported
kill -TERM "$receiver"

# service trace span parent kind name...
read -r _ _ server server_parent _ < <(grep "^thingcall-gateway $trace .* SPAN_KIND_SERVER " "$work/spans") || fail "no gateway server span"
read -r _ _ publish publish_parent _ < <(grep "^thingcall-gateway $trace .* SPAN_KIND_PRODUCER " "$work/spans") || fail "no publish span"
read -r _ _ _ device_parent _ < <(grep "^thingcall-sim $trace .* SPAN_KIND_CONSUMER " "$work/spans") || fail "no device span"
[ "$server_parent" = 00f067aa0ba902b7 ] || fail "gateway span's parent is $server_parent, not the caller's"
[ "$publish_parent" = "$server" ] || fail "publish span's parent is $publish_parent, not the call's"
[ "$device_parent" = "$publish" ] || fail "device span's parent is $device_parent, not the publish span"
echo "trace smoke: one trace, caller -> gateway -> device, across processes"
cat "$work/spans"
