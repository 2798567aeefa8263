#!/usr/bin/env python3
"""Turns the legs of one bench/run.sh into bench/results/latest.json and the
results and goals tables of BENCHMARKS.md. With --smoke 1 it only checks that
every leg ran without errors (CI), writing bench/results/smoke.json."""
import argparse, datetime, json, os, platform, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("legs")
ap.add_argument("--memory", nargs=3, type=int, metavar=("CALLS", "BASE_KIB", "PEAK_KIB"))
ap.add_argument("--presence", nargs=4, type=int, metavar=("DEVICES", "BASE_KIB", "RSS_KIB", "LIST_MS"))
ap.add_argument("--smoke", type=int, default=0)
ap.add_argument("--leg-time")
ap.add_argument("--payload", type=int)
ap.add_argument("--devices", type=int)
a = ap.parse_args()

legs = [json.loads(line) for line in open(a.legs) if line.strip()]
by = {leg["label"]: leg for leg in legs}
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()

calls, mem_base, mem_peak = a.memory
devices, pres_base, pres_rss, list_ms = a.presence
memory = {"calls_in_flight": calls, "rss_base_kib": mem_base, "rss_peak_kib": mem_peak,
          "bytes_per_call": round((mem_peak - mem_base) * 1024 / calls)}
presence = {"devices": devices, "rss_base_kib": pres_base, "rss_kib": pres_rss,
            "bytes_per_device": round((pres_rss - pres_base) * 1024 / devices), "list_devices_ms": list_ms}

def ratio(x, y):
    return x / y if y else float("nan")

def p(label, pct):
    return by[label]["latency_us"][pct]

def tput(label):
    return by[label]["throughput_per_s"]

def cpu(label, who):
    """CPU µs per call of `who` (gateway, broker, bench) in leg `label`."""
    return by[label].get("cpu_us_per_call", {}).get(who, float("nan"))

def have(*labels):
    return all(l in by for l in labels)

cheap_legs = [l for l in by if l.startswith("gateway ") and "cpu_us_per_call" in by[l]]
goals = [
    ("load generator / gateway CPU per call, worst cheap-path leg", max((ratio(cpu(l, "bench"), cpu(l, "gateway")) for l in cheap_legs), default=float("nan")), "< 0.20", lambda v: v < 0.20),
    *[(f"gateway / broker CPU per call, QoS 1, c{c}", ratio(cpu(f"gateway qos1 c{c}", "gateway"), cpu(f"gateway qos1 c{c}", "broker")), "<= 1.0", lambda v: v <= 1.0) for c in (1, 16, 256)],
    ("gateway / raw-MQTT throughput, QoS 1, c256", ratio(tput("gateway qos1 c256"), tput("raw-mqtt qos1 c256")), ">= 0.90", lambda v: v >= 0.90),
    ("gateway / raw-MQTT throughput, QoS 1, c16", ratio(tput("gateway qos1 c16"), tput("raw-mqtt qos1 c16")), ">= 0.80", lambda v: v >= 0.80),
    ("gateway p50 - raw p50, c1 (µs)", p("gateway qos1 c1", "p50") - p("raw-mqtt qos1 c1", "p50"), "<= 40", lambda v: v <= 40),
    ("gateway p99 / raw p99, c1", ratio(p("gateway qos1 c1", "p99"), p("raw-mqtt qos1 c1", "p99")), "<= 1.5", lambda v: v <= 1.5),
    ("Rust client p50 - cheap path p50, c1 (µs)", p("rust-client qos1 c1", "p50") - p("gateway qos1 c1", "p50"), "<= 30", lambda v: v <= 30),
    ("gateway p50 at 1 ms RTT to the broker (µs)", p("gateway tls rtt1ms c1", "p50"), "<= 1300", lambda v: v <= 1300),
    ("gateway p50 at 20 ms RTT to the broker (µs)", p("gateway tls rtt20ms c1", "p50"), "<= 20300", lambda v: v <= 20300),
    *([(f"gateway p50 - raw-MQTT p50 over the same {r} RTT link (µs, informative)", p(f"gateway tls rtt{r} c1", "p50") - p(f"raw-mqtt tls rtt{r} c1", "p50"), "<= 300", lambda v: v <= 300) for r in ("1ms", "20ms")]
      if have("raw-mqtt tls rtt1ms c1", "raw-mqtt tls rtt20ms c1") else []),
    ("conn-per-request / gateway p50, 20 ms RTT", ratio(p("conn-per-request tls rtt20ms c1", "p50"), p("gateway tls rtt20ms c1", "p50")), ">= 5", lambda v: v >= 5),
    ("conn-per-request / gateway p50, 1 ms RTT (informative)", ratio(p("conn-per-request tls rtt1ms c1", "p50"), p("gateway tls rtt1ms c1", "p50")), "> 1", lambda v: v > 1),
    # The default --qos is 0: an AWS-SDK device must cost no more than the
    # simulator there (a Nagle hold behind a PUBACK costs about 40 ms).
    *([("AWS-SDK device p50 - simulator p50, seed contract, default QoS 0 (µs)", p("aws-sdk-device seed qos0 c1", "p50") - p("sim seed qos0 c1", "p50"), "<= 1000", lambda v: v <= 1000)]
      if have("aws-sdk-device seed qos0 c1", "sim seed qos0 c1") else []),
    ("JSON / Rust client throughput, c16", ratio(tput("json qos1 c16"), tput("rust-client qos1 c16")), ">= 0.70", lambda v: v >= 0.70),
    ("gateway p50, QoS 1, c1 (µs)", p("gateway qos1 c1", "p50"), "< 1000", lambda v: v < 1000),
    ("gateway RSS per call in flight (bytes)", memory["bytes_per_call"], "<= 2048", lambda v: v <= 2048),
    ("gateway RSS per online device (bytes)", presence["bytes_per_device"], "<= 512", lambda v: v <= 512),
    ("errors in legs that expect none", sum(leg["errors"] for leg in legs), "= 0", lambda v: v == 0),
]
goal_rows = [{"goal": g, "value": round(v, 3), "target": t, "met": bool(ok(v))} for g, v, t, ok in goals]

result = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "kernel": platform.release()},
    "commit": subprocess.run(["git", "-C", root, "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True, text=True).stdout.strip(),
    "settings": {"leg_time": a.leg_time, "payload_bytes": a.payload, "devices": a.devices},
    "legs": legs, "memory": memory, "presence": presence, "goals": goal_rows,
}

errors = [(leg["label"], leg["outcomes"]) for leg in legs if leg["errors"]]
if a.smoke:
    json.dump(result, open(os.path.join(root, "bench/results/smoke.json"), "w"), indent=2)
    for label, outcomes in errors:
        print(f"bench smoke: leg '{label}' had errors: {outcomes}", file=sys.stderr)
    print(f"bench smoke: {len(legs)} legs ran, {len(errors)} with errors")
    sys.exit(1 if errors else 0)

json.dump(result, open(os.path.join(root, "bench/results/latest.json"), "w"), indent=2)

def fmt(v):
    return f"{v:,.0f}" if isinstance(v, (int, float)) and abs(v) >= 100 else f"{v:.2f}" if isinstance(v, float) else str(v)

rows = ["| leg | concurrency | calls | throughput/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors | bench CPU µs/call | gateway CPU µs/call | broker CPU µs/call | gateway / broker CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for leg in legs:
    l, per = leg["latency_us"], leg.get("cpu_us_per_call", {})
    g, b = per.get("gateway"), per.get("broker")
    gb = f"{g / b:.2f}" if g is not None and b else "-"
    show = lambda v: "-" if v is None else f"{v:.1f}"
    rows.append(f"| {leg['label']} | {leg['concurrency']} | {leg['count']} | {fmt(leg['throughput_per_s'])} | {l['p50']} | {l['p90']} | {l['p99']} | {l['p999']} | {l['max']} | {leg['errors']} | {show(per.get('bench'))} | {show(g)} | {show(b)} | {gb} |")
goal_lines = ["| goal | measured | target | met |", "|---|---|---|---|"]
goal_lines += [f"| {g['goal']} | {g['value']} | {g['target']} | {'yes' if g['met'] else '**no**'} |" for g in goal_rows]

body = f"""# Benchmarks

Generated by `bench/run.sh` ({result['date']}, commit {result['commit']}); do
not edit by hand. Machine: {result['machine']['cores']} cores, {result['machine']['cpu']},
Linux {result['machine']['kernel']}. Everything (Mosquitto 2, the simulator,
the gateways, the bench client) ran on this one machine over loopback, so the
client and the servers compete for the same {result['machine']['cores']} cores.

Each leg ran for {a.leg_time} against the same Mosquitto, the same
{a.devices} simulated devices (`echo`), a {a.payload}-byte payload; QoS 1
unless the label says otherwise. `raw-mqtt` is the floor: a client speaking
the wire contract straight to the broker over one connection, to the same
device process as every gateway leg. `gateway` legs load the gateway through
the cheap path (`thingcall bench --mode h2`: HTTP/2 frames built once,
blocking sockets, a thread per 256 calls in flight), whose own CPU per call
is in the `bench` column, so the figures are the gateway's and not the load
generator's; `rust-client` legs call through `thingcall-client`, what Rust
users call with. CPU columns are per call, from /proc over the leg: the
gateway does the same four packet operations per call as the broker (HTTP/2
in, MQTT out, MQTT in, HTTP/2 out), so gateway / broker is the yardstick that
does not depend on the machine. `conn-per-request` is the pattern thingcall
replaces: a new TLS connection, subscribe, publish, wait, disconnect for
every call. Legs marked `rtt1ms` and `rtt20ms` reach the broker's TLS
listener through `delay-proxy` (testkit), which holds each direction 0.5 ms
or 10 ms: a round trip as to a broker in the same region, or in another
(a new connection waits one round trip before its first byte moves, as
TCP's handshake does); the devices stay on loopback, next to the broker,
and the `raw-mqtt tls rtt` legs are the floor over the same link.
Legs labelled `seed` call over the AWS sample's contract with an empty
request (a seed request is a string, the bench's payload random bytes)
through gateways whose calls default to it: `sim seed` against 4
`thingcall-sim --contract seed` devices, `aws-sdk-device` against 4 devices
of `bench/aws_device.py` on AWS's own MQTT client (skipped when `awscrt` does
not import; docs/qos.md says why its QoS 1 leg is slow and the default QoS
is 0).

## Goals

{chr(10).join(goal_lines)}

Memory: {memory['calls_in_flight']} calls in flight to slow devices took the
gateway from {memory['rss_base_kib']} KiB to a peak of {memory['rss_peak_kib']} KiB RSS.
Presence: {presence['devices']} devices online took a fresh gateway from
{presence['rss_base_kib']} KiB to {presence['rss_kib']} KiB RSS; listing them all
(`thingcall devices`, paged) took {presence['list_devices_ms']} ms. (The sandbox
caps open files at 20,000 per process, so one Mosquitto cannot hold 20,000
device connections plus its own; the presence leg uses {presence['devices']}.)

## Results

{chr(10).join(rows)}

## Reproduce

```sh
bench/run.sh            # full run, writes bench/results/latest.json and this file
bench/run.sh --smoke    # a few seconds per leg; what CI runs
bench/ab.sh OLD NEW     # two gateway binaries interleaved on one broker: did a change cost anything?
```
"""
marker = "<!-- analysis -->"
path = os.path.join(root, "BENCHMARKS.md")
tail = ""
if os.path.exists(path):
    old = open(path).read()
    if marker in old:
        tail = old[old.index(marker):]
open(path, "w").write(body + ("\n" + tail if tail else f"\n{marker}\n"))
print(f"bench: wrote BENCHMARKS.md and bench/results/latest.json ({len(legs)} legs)")
