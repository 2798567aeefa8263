#!/usr/bin/env bash
# A gateway tracking a fleet far larger than one machine can connect: a
# Mosquitto set up as deploy/mosquitto/fleet.conf says, N retained presence
# documents put there by thingcall-fleet (one connection), one live
# simulated device, then a fresh gateway. Measures:
#   - the load, and the gateway's sync: time to thingcall_presence_synced,
#     its RSS then and per device;
#   - ListDevices pages (100 devices) from the start, the middle and the end,
#     and a glob with a literal prefix;
#   - calls to the live device alone, then while a WatchDevice over the
#     whole fleet reads its snapshot (the watch's time is reported too);
#   - the simulator's memory per live connection (--live, default 10000).
# Prints a table (the figures BENCHMARKS.md quotes) and writes
# bench/results/fleet.json.
#
#   bench/fleet.sh                  1,000,000 devices (about 2 minutes on 2 cores)
#   bench/fleet.sh 100000 --live 0  a smaller fleet, no live-connection leg
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-1000000}
live=10000
[ "${2:-}" = "--live" ] && live=${3:?--live N}

cargo build --release -q -p thingcall-server -p thingcall-cli -p thingcall-device
bin=${CARGO_TARGET_DIR:-target}/release
# shellcheck source=bench/lib.sh
. bench/lib.sh
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
log() { echo "fleet: $*" >&2; }
metric() { curl -s "http://127.0.0.1:$gw_port/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

# --- broker: the fleet settings, on a free port ----------------------------
mqtt=$(free_port)
sed -e "s/^listener 1883.*/listener $mqtt 127.0.0.1/" -e 's/^persistence true/persistence false/' \
  deploy/mosquitto/fleet.conf >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=("$!")
mosq_pid=$!
wait_port "$mqtt"

log "loading $devices retained presence documents"
load_line=$("$bin/thingcall-fleet" --mqtt-url "mqtt://127.0.0.1:$mqtt" --devices "$devices" 2>/dev/null)
log "$load_line"
load_s=$(sed -n 's/.* in \([0-9.]*\) s .*/\1/p' <<<"$load_line")
mosq_kib=$(rss_kib "$mosq_pid")

"$bin/thingcall-sim" --mqtt-url "mqtt://127.0.0.1:$mqtt" --devices 1 --id-prefix live- >"$work/live.log" 2>&1 &
pids+=("$!")

# --- a fresh gateway syncs ---------------------------------------------------
gw_port=$(free_port)
t0=$(date +%s%N)
RUST_LOG=warn "$bin/thingcall-server" --listen "127.0.0.1:$gw_port" --mqtt-url "mqtt://127.0.0.1:$mqtt" \
  --gateway-id fleet-bench >"$work/gateway.log" 2>&1 &
pids+=("$!")
gw_pid=$!
wait_port "$gw_port"
# Bounded polling of a separate process's state.
for _ in $(seq 1 1200); do
  [ "$(metric thingcall_presence_synced)" = 1 ] && break
  sleep 0.05
done
[ "$(metric thingcall_presence_synced)" = 1 ] || { log "not synced after 60 s"; exit 1; }
synced_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
sync_s=$(metric thingcall_presence_sync_duration_seconds)
known=$(metric thingcall_devices_known)
reconnects=$(metric thingcall_mqtt_reconnects_total)
gw_kib=$(rss_kib "$gw_pid")
[ "$known" -ge "$devices" ] || { log "the gateway knows $known of $devices devices"; exit 1; }
log "synced: $known devices in $sync_s s (session), $synced_ms ms from start; RSS $gw_kib KiB"

# --- ListDevices pages and a glob -----------------------------------------
pages=$(python3 - "$gw_port" "$devices" <<'EOF'
import http.client, json, statistics, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
def timed(path, runs=20):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        conn.request("GET", path)
        body = conn.getresponse().read()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out), len(json.loads(body)["devices"])
res = {}
for name, token in [("first", ""), ("middle", f"fleet-{n // 2}"), ("last", f"fleet-{n - 50}")]:
    res[name] = timed(f"/v1/devices?pageSize=100&pageToken={token}")
res["glob"] = timed(f"/v1/devices?target=fleet-{n // 2 // 10}*&pageSize=100")
print(json.dumps({k: {"ms": round(v[0], 2), "devices": v[1]} for k, v in res.items()}))
EOF
)
log "pages: $pages"

# --- calls alone, then during a full-fleet watch ---------------------------
bench() { "$bin/thingcall" bench --json --quiet --label "$1" --mode grpc --concurrency 4 --duration 5s \
  --method echo --targets live-1 --server "http://127.0.0.1:$gw_port"; }
until "$bin/thingcall" --server "http://127.0.0.1:$gw_port" devices live-1 2>/dev/null | grep -q ' online '; do sleep 0.1; done
alone=$(bench alone)
watch_out="$work/watch.txt"
python3 - "$gw_port" >"$watch_out" <<'PY' &
import http.client, sys, time
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
t = time.perf_counter()
conn.request("GET", "/v1/events?target=fleet-*")
body = conn.getresponse()
events = 0
for line in body:
    if line.startswith(b"data:"):
        if b'"synced"' in line:
            break
        events += 1
print(round((time.perf_counter() - t) * 1000), events)
PY
watcher=$!
during=$(bench during-watch)
wait "$watcher"
read -r watch_ms watch_events <"$watch_out"
log "watch: $watch_events devices in $watch_ms ms"

# --- live connections: the simulator's memory per device ------------------
sim_kib=0
if [ "$live" -gt 0 ]; then
  log "live connections: $live simulated devices"
  "$bin/thingcall-sim" --mqtt-url "mqtt://127.0.0.1:$mqtt" --devices "$live" --id-prefix conn- >"$work/sim.log" 2>&1 &
  pids+=("$!")
  sim_pid=$!
  until [ "$(metric thingcall_devices_known)" -ge $((known + live)) ]; do sleep 0.5; done
  sim_kib=$(rss_kib "$sim_pid")
fi

mkdir -p bench/results
python3 - "$devices" "$load_s" "$mosq_kib" "$synced_ms" "$sync_s" "$gw_kib" "$reconnects" "$pages" \
  "$alone" "$during" "$watch_ms" "$live" "$sim_kib" <<'EOF' | tee bench/results/fleet.txt
import json, sys
(n, load_s, mosq_kib, synced_ms, sync_s, gw_kib, reconnects, pages, alone, during,
 watch_ms, live, sim_kib) = sys.argv[1:]
n, live = int(n), int(live)
pages, alone, during = json.loads(pages), json.loads(alone), json.loads(during)
out = {
    "devices": n, "load_s": float(load_s), "mosquitto_rss_mib": int(mosq_kib) / 1024,
    "synced_ms_from_start": int(synced_ms), "sync_duration_s": float(sync_s),
    "gateway_rss_mib": int(gw_kib) / 1024, "gateway_bytes_per_device": int(gw_kib) * 1024 / n,
    "reconnects": int(reconnects), "list_pages": pages, "watch_snapshot_ms": int(watch_ms),
    "calls_alone": alone, "calls_during_watch": during,
    "live_devices": live, "sim_bytes_per_live_device": (int(sim_kib) * 1024 / live) if live else None,
}
json.dump(out, open("bench/results/fleet.json", "w"), indent=2)
def row(k, v): print(f"| {k} | {v} |")
print("| measure | value |\n|---|---|")
row("retained presence documents", f"{n:,}")
row("load (thingcall-fleet, one connection)", f"{float(load_s):.1f} s")
row("Mosquitto RSS holding them", f"{int(mosq_kib) / 1024:.0f} MiB")
row("fresh gateway: start to synced", f"{int(synced_ms) / 1000:.1f} s (session sync {float(sync_s):.1f} s, {reconnects} reconnects)")
row("gateway RSS when synced", f"{int(gw_kib) / 1024:.0f} MiB = {int(gw_kib) * 1024 / n:.0f} B per device")
for k in ["first", "middle", "last", "glob"]:
    row(f"ListDevices page of 100, {k}", f"{pages[k]['ms']} ms ({pages[k]['devices']} devices)")
row("WatchDevice fleet-* snapshot read to synced (SSE)", f"{int(watch_ms) / 1000:.1f} s")
def calls(r):
    p = r["latency_us"]
    return f"{r['throughput_per_s']:.0f} calls/s, p50 {p['p50'] / 1000:.2f} ms, p99 {p['p99'] / 1000:.2f} ms, errors {r['errors']}"
row("calls to a live device, c4, alone", calls(alone))
row("the same during the watch", calls(during))
if live:
    row(f"thingcall-sim, {live:,} live connections", f"{int(sim_kib) / 1024:.0f} MiB = {int(sim_kib) * 1024 / live / 1024:.1f} KiB per device")
EOF
