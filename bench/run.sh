#!/usr/bin/env bash
# The side-by-side benchmark: one Mosquitto (plain and TLS listeners,
# set_tcp_nodelay, certificates made for the run), simulators, gateways, the
# AWS-SDK devices of bench/aws_device.py (when awscrt imports), and every leg
# of the matrix back to back, so ratios compare like with like.
# Writes bench/results/latest.json and regenerates BENCHMARKS.md.
#
#   bench/run.sh           full run (about 5 minutes on 2 cores)
#   bench/run.sh --smoke   a few seconds per leg: proves the harness, judges nothing
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1

if [ $smoke = 1 ]; then
  leg_time=2s; devices=20; slow_calls=500; presence_devices=500
else
  leg_time=10s; devices=50; slow_calls=10000; presence_devices=19500
fi
payload=64

cargo build --release -q -p thingcall-server -p thingcall-cli -p thingcall-device
cargo build --release -q -p thingcall-testkit --bin delay-proxy
bin=${CARGO_TARGET_DIR:-target}/release
# shellcheck source=bench/lib.sh
. bench/lib.sh
log() { echo "bench: $*" >&2; }

# --- broker ------------------------------------------------------------
# A throwaway CA and a server certificate for 127.0.0.1 signed by it.
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days 1 -subj /CN=thingcall-bench-ca -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req "${ec[@]}" -subj /CN=127.0.0.1 -keyout "$work/key.pem" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 1 -extfile "$work/ext" -out "$work/server.pem" 2>/dev/null
# Mosquitto started as root drops to its own user: let it read its files.
chmod 755 "$work"; chmod 644 "$work"/*.pem
mqtt=$(free_port); mqtts=$(free_port)
cat >"$work/mosquitto.conf" <<CONF
listener $mqtt 127.0.0.1
listener $mqtts 127.0.0.1
cafile $work/ca.pem
certfile $work/server.pem
keyfile $work/key.pem
allow_anonymous true
set_tcp_nodelay true
persistence false
max_queued_messages 0
max_inflight_messages 0
max_packet_size 1048576
log_dest none
CONF
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$work/mosquitto.conf" &
broker=$!; pids+=("$broker")
wait_port "$mqtt"; wait_port "$mqtts"

# --- devices -----------------------------------------------------------
"$bin/thingcall-sim" --mqtt-url "mqtt://127.0.0.1:$mqtt" --devices "$devices" --id-prefix bench- >"$work/sim.log" 2>&1 &
pids+=("$!")

# --- gateways (one per configuration: plain QoS 1, plain QoS 0, TLS) -----
start_gateway() { # name, extra args...
  local name=$1; shift
  local port; port=$(free_port)
  RUST_LOG=warn "$bin/thingcall-server" --listen "127.0.0.1:$port" --gateway-id "bench-$name" "$@" >"$work/gw-$name.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  wait_port "$port"
  eval "gw_${name}_port=$port gw_${name}_pid=$pid"
}
start_gateway q1 --mqtt-url "mqtt://127.0.0.1:$mqtt" --qos 1
start_gateway q0 --mqtt-url "mqtt://127.0.0.1:$mqtt" --qos 0
start_gateway tls --mqtt-url "mqtts://127.0.0.1:$mqtts" --mqtt-ca "$work/ca.pem" --qos 1
# The same TLS listener behind a relay that delays each direction by 0.5 ms:
# a 1 ms round trip, like a cloud service to a broker in its region. Loopback
# makes round trips free, which hides what connection setup costs.
wan=$(free_port)
"$bin/delay-proxy" "127.0.0.1:$wan" "127.0.0.1:$mqtts" 500 &
pids+=("$!")
wait_port "$wan"
start_gateway wan --mqtt-url "mqtts://127.0.0.1:$wan" --mqtt-ca "$work/ca.pem" --qos 1
# And 10 ms each way: a 20 ms round trip, a broker in another region. Round
# trips bound the connection-per-request comparison: about 5 of them against
# the gateway's 1.
wan20=$(free_port)
"$bin/delay-proxy" "127.0.0.1:$wan20" "127.0.0.1:$mqtts" 10000 &
pids+=("$!")
wait_port "$wan20"
start_gateway wan20 --mqtt-url "mqtts://127.0.0.1:$wan20" --mqtt-ca "$work/ca.pem" --qos 1

targets="bench-{1..$devices}"
until "$bin/thingcall" --server "http://127.0.0.1:$gw_q1_port" devices 'bench-*' 2>/dev/null | grep -c ' online ' | grep -qx "$devices"; do sleep 0.2; done
log "broker, $devices devices and 5 gateways up"

results="$work/legs.jsonl"
: >"$results"
leg() { # label, bench args... (one JSON object per leg; payload: $leg_payload, else $payload)
  local label=$1; shift
  log "$label"
  "$bin/thingcall" bench --json --quiet --label "$label" --duration "$leg_time" --count 100000000 \
    --payload-bytes "${leg_payload:-$payload}" --method echo --broker-pid "$broker" "$@" >>"$results"
}
# The gateway legs load it through the cheap path (`--mode h2`: frames built
# once, blocking sockets, the bench's own CPU per call reported), so the
# figures are the gateway's and not the load generator's. The `rust-client`
# legs call through thingcall-client, what Rust users call with.
grpc_q1=(--server "http://127.0.0.1:$gw_q1_port" --gateway-pid "$gw_q1_pid" --targets "$targets")
grpc_q0=(--server "http://127.0.0.1:$gw_q0_port" --gateway-pid "$gw_q0_pid" --targets "$targets")
raw=(--mqtt-url "mqtt://127.0.0.1:$mqtt" --targets "$targets")
cheap=(--mode h2 --threads 1)

for c in 1 16 256; do
  leg "raw-mqtt qos1 c$c" --mode raw-mqtt --qos 1 --concurrency "$c" "${raw[@]}"
  leg "gateway qos1 c$c" "${cheap[@]}" --concurrency "$c" "${grpc_q1[@]}"
  leg "raw-mqtt qos0 c$c" --mode raw-mqtt --qos 0 --concurrency "$c" "${raw[@]}"
  leg "gateway qos0 c$c" "${cheap[@]}" --concurrency "$c" "${grpc_q0[@]}"
done
leg "rust-client qos1 c1" --mode grpc --concurrency 1 "${grpc_q1[@]}"
leg "rust-client qos1 c16" --mode grpc --concurrency 16 "${grpc_q1[@]}"
leg "rust-client channel qos1 c1" --mode grpc-channel --concurrency 1 "${grpc_q1[@]}"
leg "json qos1 c16" --mode json --concurrency 16 "${grpc_q1[@]}"
leg "grpc-web qos1 c16" --mode grpc-web --concurrency 16 "${grpc_q1[@]}"
cpr=(--mode conn-per-request --tls --mqtt-ca "$work/ca.pem" --qos 1 --concurrency 1 --targets "$targets")
leg "conn-per-request tls c1" "${cpr[@]}" --mqtt-url "mqtts://127.0.0.1:$mqtts"
leg "gateway tls c1" "${cheap[@]}" --concurrency 1 --server "http://127.0.0.1:$gw_tls_port" --gateway-pid "$gw_tls_pid" --targets "$targets"
# The floor over the same relayed links: what one round trip plus the broker
# and the device cost there, with no gateway in between.
rawtls=(--mode raw-mqtt --mqtt-ca "$work/ca.pem" --qos 1 --concurrency 1 --targets "$targets")
leg "raw-mqtt tls rtt1ms c1" "${rawtls[@]}" --mqtt-url "mqtts://127.0.0.1:$wan"
leg "raw-mqtt tls rtt20ms c1" "${rawtls[@]}" --mqtt-url "mqtts://127.0.0.1:$wan20"
leg "conn-per-request tls rtt1ms c1" "${cpr[@]}" --mqtt-url "mqtts://127.0.0.1:$wan"
leg "gateway tls rtt1ms c1" "${cheap[@]}" --concurrency 1 --server "http://127.0.0.1:$gw_wan_port" --gateway-pid "$gw_wan_pid" --targets "$targets"
leg "conn-per-request tls rtt20ms c1" "${cpr[@]}" --mqtt-url "mqtts://127.0.0.1:$wan20"
leg "gateway tls rtt20ms c1" "${cheap[@]}" --concurrency 1 --server "http://127.0.0.1:$gw_wan20_port" --gateway-pid "$gw_wan20_pid" --targets "$targets"

# --- seed contract: devices built for the AWS sample -----------------------
# Two more gateways whose calls default to the seed contract (the bench names
# no contract), each with its own client prefix. A seed request is a string
# and the bench's payload is random bytes, so these legs send an empty one.
# The baseline is the simulator's seed devices; then bench/aws_device.py, four
# devices on AWS's own client (awscrt, as the sample's test client), which
# subscribes and acks at QoS 1 and sets no TCP_NODELAY: at gateway QoS 1 its
# PUBACK and its ack leave as two segments, and Nagle holds the second until
# the broker's delayed ACK (about 40 ms) arrives. See docs/qos.md.
start_gateway seedq1 --mqtt-url "mqtt://127.0.0.1:$mqtt" --qos 1 --default-contract seed --seed-client-prefix bench-seed-q1
start_gateway seedq0 --mqtt-url "mqtt://127.0.0.1:$mqtt" --qos 0 --default-contract seed --seed-client-prefix bench-seed-q0
for port in "$gw_seedq1_port" "$gw_seedq0_port"; do
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
done
seed_q1=("${cheap[@]}" --concurrency 1 --server "http://127.0.0.1:$gw_seedq1_port" --gateway-pid "$gw_seedq1_pid")
seed_q0=("${cheap[@]}" --concurrency 1 --server "http://127.0.0.1:$gw_seedq0_port" --gateway-pid "$gw_seedq0_pid")
"$bin/thingcall-sim" --mqtt-url "mqtt://127.0.0.1:$mqtt" --contract seed --devices 4 --id-prefix seed- >"$work/seed-sim.log" 2>&1 &
pids+=("$!")
# Seed devices announce no presence: the simulator's own line says they are up.
until grep -q ' 4 devices online' "$work/seed-sim.log"; do sleep 0.2; done
leg_payload=0 leg "sim seed qos1 c1" "${seed_q1[@]}" --targets "seed-{1..4}"
leg_payload=0 leg "sim seed qos0 c1" "${seed_q0[@]}" --targets "seed-{1..4}"
if python3 -c 'import awscrt' 2>/dev/null; then
  # aws_device.py prints "ready" once every device holds its subscription;
  # read it through a FIFO (no polling), kept open until the run ends.
  mkfifo "$work/aws-device.out"
  python3 bench/aws_device.py --port "$mqtt" --devices 4 --id-prefix aws- >"$work/aws-device.out" 2>"$work/aws-device.log" &
  pids+=("$!")
  exec {aws_out}<"$work/aws-device.out"
  if ! { read -r -t 60 -u "$aws_out" line && [ "$line" = ready ]; }; then
    log "bench/aws_device.py did not get ready:"; cat "$work/aws-device.log" >&2; exit 1
  fi
  leg_payload=0 leg "aws-sdk-device seed qos1 c1" "${seed_q1[@]}" --targets "aws-{1..4}"
  leg_payload=0 leg "aws-sdk-device seed qos0 c1" "${seed_q0[@]}" --targets "aws-{1..4}"
else
  log "skipping the aws-sdk-device legs: awscrt is not importable (pip install awsiotsdk)"
fi

# --- memory: calls in flight to slow devices on a fresh gateway -----------
"$bin/thingcall-sim" --mqtt-url "mqtt://127.0.0.1:$mqtt" --devices 100 --id-prefix slow- --latency 4s >"$work/slow.log" 2>&1 &
pids+=("$!")
start_gateway mem --mqtt-url "mqtt://127.0.0.1:$mqtt" --qos 1 --max-in-flight 100000
until "$bin/thingcall" --server "http://127.0.0.1:$gw_mem_port" devices 'slow-*' 2>/dev/null | grep -c ' online ' | grep -qx 100; do sleep 0.2; done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
"$bin/thingcall" --server "http://127.0.0.1:$gw_mem_port" invoke slow-1 echo --payload warm >/dev/null
mem_base=$(rss "$gw_mem_pid")
log "memory: $slow_calls calls in flight"
"$bin/thingcall" bench --json --quiet --label "memory c$slow_calls" "${cheap[@]}" --concurrency "$slow_calls" --count "$slow_calls" \
  --timeout 60s --duration 120s --payload-bytes "$payload" --method echo --targets "slow-{1..100}" \
  --server "http://127.0.0.1:$gw_mem_port" --gateway-pid "$gw_mem_pid" >>"$results"
mem_peak=$(awk '/^VmHWM/ {print $2}' "/proc/$gw_mem_pid/status")

# --- presence: many devices online, one fresh gateway --------------------
start_gateway presence --mqtt-url "mqtt://127.0.0.1:$mqtt" --qos 1
pres_base=$(rss "$gw_presence_pid")
log "presence: $presence_devices devices"
"$bin/thingcall-sim" --mqtt-url "mqtt://127.0.0.1:$mqtt" --devices "$presence_devices" --id-prefix p- >"$work/presence.log" 2>&1 &
pids+=("$!")
until [ "$("$bin/thingcall" --server "http://127.0.0.1:$gw_presence_port" devices 'p-*' 2>/dev/null | grep -c ' online ')" = "$presence_devices" ]; do sleep 0.5; done
pres_rss=$(rss "$gw_presence_pid")
t0=$(date +%s%N)
"$bin/thingcall" --server "http://127.0.0.1:$gw_presence_port" devices 'p-*' --json >/dev/null
list_ms=$(( ($(date +%s%N) - t0) / 1000000 ))

python3 bench/report.py "$results" \
  --memory "$slow_calls" "$mem_base" "$mem_peak" \
  --presence "$presence_devices" "$pres_base" "$pres_rss" "$list_ms" \
  --smoke "$smoke" --leg-time "$leg_time" --payload "$payload" --devices "$devices"
