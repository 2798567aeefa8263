"""Print the presence changes and call outcomes of matching devices.

Against the README quick-start gateway::

    python3 examples/watch.py 'demo-*'           # Ctrl-C to stop
    python3 examples/watch.py --count 4 'demo-*' # stop after four events

Make something happen in another terminal, e.g.
``python3 examples/invoke.py demo-2 reboot 5000``. Address and token as in
invoke.py.
"""

import argparse
import os
import sys

import thingcall


def describe(ev: thingcall.Event) -> str:
    """One line per event kind."""
    if isinstance(ev, thingcall.Presence):
        state = "online" if ev.device.online else "offline"
        return f"{ev.device.id}: {state} (methods: {', '.join(ev.device.methods) or 'unknown'})"
    if isinstance(ev, thingcall.Synced):
        return f"-- {ev.devices} devices now; changes follow"
    if isinstance(ev, thingcall.Invocation):
        return f"{ev.device_id}: {ev.method} -> {ev.outcome} {ev.status} in {ev.elapsed.total_seconds() * 1000:.1f} ms"
    if isinstance(ev, thingcall.DeviceMessage):
        return f"{ev.device_id}: event {ev.name} {ev.payload!r}"
    if isinstance(ev, thingcall.Lagged):
        return f"-- missed {ev.dropped} events (reading too slowly)"
    return f"-- gateway closing: {ev.reason}"


def main() -> int:
    p = argparse.ArgumentParser(description="Watch devices through a thingcall gateway.")
    p.add_argument("--server", default=os.environ.get("THINGCALL_SERVER", thingcall.DEFAULT_TARGET))
    p.add_argument("--events", action="store_true", help="also print device events")
    p.add_argument("--count", type=int, default=0, help="stop after this many events (0 = never)")
    p.add_argument("pattern", nargs="?", default="*")
    args = p.parse_args()

    with thingcall.Client(args.server, token=os.environ.get("THINGCALL_TOKEN")) as client:
        with client.watch(args.pattern, include_events=args.events) as events:
            try:
                for n, ev in enumerate(events, 1):
                    print(describe(ev), flush=True)
                    if n == args.count:
                        break
            except KeyboardInterrupt:
                pass
            except thingcall.ThingcallError as e:
                print(f"thingcall: {e}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
