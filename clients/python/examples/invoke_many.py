"""Call one method on many devices and print each result, then the summary.

Against the README quick-start gateway (``cargo run --release -p
thingcall-server -- --demo 3``)::

    python3 examples/invoke_many.py                          # echo hi on demo-*
    python3 examples/invoke_many.py --targets demo-1,demo-3 random
    python3 examples/invoke_many.py --rate 2 --abort 0.5:2 fail

Each device's line goes to stdout as its call ends (``device: outcome
answer``), then one line for the whole fan-out; timings go to stderr. The
exit status is 0 when every selected device answered OK, else 1. Address
and token as in invoke.py.
"""

import argparse
import os
import sys
from datetime import timedelta
from typing import Optional

import thingcall


def abort_policy(text: str) -> thingcall.Abort:
    """``RATIO:MIN``, e.g. ``0.5:2``: stop once over half of at least 2 results failed."""
    ratio, _, least = text.partition(":")
    return thingcall.Abort(failure_ratio=float(ratio), min_results=int(least or "1"))


def _ms(d: timedelta) -> str:
    return f"{d.total_seconds() * 1000:.1f} ms"


def main() -> int:
    p = argparse.ArgumentParser(description="Invoke a method on many devices through a thingcall gateway.")
    p.add_argument("--server", default=os.environ.get("THINGCALL_SERVER", thingcall.DEFAULT_TARGET))
    p.add_argument("--pattern", default="demo-*", help="glob over the devices the gateway knows")
    p.add_argument("--targets", help="comma-separated device ids (instead of --pattern)")
    p.add_argument("--offline", choices=["report", "skip", "wait"], default="report")
    p.add_argument("--concurrency", type=int, default=0, help="calls in flight at once (0 = 16)")
    p.add_argument("--rate", type=float, default=0.0, help="calls started per second (0 = no limit)")
    p.add_argument("--abort", type=abort_policy, help="RATIO:MIN, e.g. 0.5:2")
    p.add_argument("--timeout", type=float, help="each call's, in seconds")
    p.add_argument("method", nargs="?", default="echo")
    p.add_argument("payload", nargs="?", default="hi")
    args = p.parse_args()
    targets = args.targets.split(",") if args.targets else None

    summary: Optional[thingcall.Summary] = None
    with thingcall.Client(args.server, token=os.environ.get("THINGCALL_TOKEN")) as client:
        try:
            with client.invoke_many(
                args.method,
                targets,
                pattern=None if targets else args.pattern,
                payload=args.payload,
                timeout=args.timeout,
                offline=args.offline,
                max_concurrency=args.concurrency,
                rate=args.rate,
                abort=args.abort,
            ) as fanout:
                for ev in fanout:
                    if isinstance(ev, thingcall.DeviceResult):
                        answer = ev.result.text() if ev.result is not None else ev.message
                        print(f"{ev.device}: {ev.outcome} {answer}", flush=True)
                    else:
                        summary = ev
        except thingcall.ThingcallError as e:
            # The fan-out as a whole was refused (or the gateway went away).
            print(f"thingcall: {e}", file=sys.stderr)
            return 1
    if summary is None:
        print("thingcall: the stream ended without a summary", file=sys.stderr)
        return 1
    skipped = sum(summary.not_attempted.values())
    print(
        f"-- {summary.ended}: {summary.attempted} of {summary.targets} called, "
        f"{summary.succeeded} OK, {summary.failed} failed, {skipped} not called"
    )
    if summary.p50 is not None and summary.p99 is not None:
        print(f"p50 {_ms(summary.p50)}, p99 {_ms(summary.p99)}, all {_ms(summary.elapsed)}", file=sys.stderr)
    return 0 if summary.completed and summary.succeeded == summary.targets else 1


if __name__ == "__main__":
    sys.exit(main())
