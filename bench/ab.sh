#!/usr/bin/env bash
# Interleaved A/B of two gateway binaries on one Mosquitto, one simulator
# and one bench client, so machine noise hits both alike: each round runs
# raw-mqtt, A and B back to back at c1, c16 and c256 (QoS 1), the gateways
# loaded through the bench's cheap path (`--mode h2 --threads 1`), and the
# summary gives throughput, p50, the gateway's CPU per call and the
# gateway / broker CPU ratio for each. Use it to
# check that a change on the hot path costs nothing, e.g. against the binary
# of an earlier commit:
#
#   bench/ab.sh /tmp/thingcall-server-old target/release/thingcall-server [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
a=${1:?gateway binary A}; b=${2:?gateway binary B}; rounds=${3:-3}; secs=${4:-5}
cargo build --release -q -p thingcall-cli -p thingcall-device
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
mqtt=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nmax_packet_size 1048576\nlog_dest none\n' "$mqtt" >"$work/mosquitto.conf"
"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$work/mosquitto.conf" & broker=$!; pids+=("$broker")
wait_port "$mqtt"
"$bin/thingcall-sim" --mqtt-url "mqtt://127.0.0.1:$mqtt" --devices 50 --id-prefix ab- >/dev/null 2>&1 & pids+=("$!")
start() { # binary -> "port pid"
  local port; port=$(free_port)
  RUST_LOG=warn "$1" --listen "127.0.0.1:$port" --gateway-id "ab-$port" --mqtt-url "mqtt://127.0.0.1:$mqtt" >/dev/null 2>&1 &
  local pid=$!; wait_port "$port"; echo "$port $pid"
}
# start runs in a subshell here: record the gateways' pids in this shell.
read -r port_a pid_a < <(start "$a"); pids+=("$pid_a")
read -r port_b pid_b < <(start "$b"); pids+=("$pid_b")
until "$bin/thingcall" --server "http://127.0.0.1:$port_b" devices 'ab-*' 2>/dev/null | grep -c ' online ' | grep -qx 50; do sleep 0.2; done
leg() { "$bin/thingcall" bench --json --quiet --duration "${secs}s" --count 100000000 --payload-bytes 64 \
  --method echo --targets 'ab-{1..50}' --broker-pid "$broker" "$@"; }
out="$work/legs.txt"
for round in $(seq 1 "$rounds"); do
  for c in 1 16 256; do
    echo "bench ab: round $round c$c" >&2
    echo "raw c$c $(leg --mode raw-mqtt --qos 1 --concurrency "$c" --mqtt-url "mqtt://127.0.0.1:$mqtt")" >>"$out"
    echo "A c$c $(leg --mode h2 --threads 1 --concurrency "$c" --server "http://127.0.0.1:$port_a" --gateway-pid "$pid_a")" >>"$out"
    echo "B c$c $(leg --mode h2 --threads 1 --concurrency "$c" --server "http://127.0.0.1:$port_b" --gateway-pid "$pid_b")" >>"$out"
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    who, c, js = line.split(" ", 2)
    d = json.loads(js)
    cpu = d.get("cpu_s", {})
    gw, broker = cpu.get("gateway"), cpu.get("broker")
    per = f"{gw / d['count'] * 1e6:.0f}" if gw and d["count"] else "-"
    ratio = f" gw/broker {gw / broker:.2f}" if gw and broker else ""
    rows.setdefault((c, who), []).append(
        f"{d['throughput_per_s']:.0f}/s p50 {d['latency_us']['p50']} cpu/call {per} us{ratio} err {d['errors']}")
for c in ("c1", "c16", "c256"):
    for who in ("raw", "A", "B"):
        print(f"{c:5} {who:4}", " | ".join(rows.get((c, who), [])))
PY
