"""Call one method on one device and print its answer.

Against the README quick-start gateway (``cargo run --release -p
thingcall-server -- --demo 3``)::

    python3 examples/invoke.py                      # demo-1 echo hi
    python3 examples/invoke.py demo-2 random
    python3 examples/invoke.py --server 127.0.0.1:9090 demo-1 echo hello

The gateway address comes from ``--server``, else ``THINGCALL_SERVER`` (as
the CLI reads it), else 127.0.0.1:8080; a token from ``THINGCALL_TOKEN``.
"""

import argparse
import os
import sys

import thingcall


def main() -> int:
    p = argparse.ArgumentParser(description="Invoke a method on a device through a thingcall gateway.")
    p.add_argument("--server", default=os.environ.get("THINGCALL_SERVER", thingcall.DEFAULT_TARGET))
    p.add_argument("--timeout", type=float, default=5.0, help="seconds")
    p.add_argument("device", nargs="?", default="demo-1")
    p.add_argument("method", nargs="?", default="echo")
    p.add_argument("payload", nargs="?", default="hi")
    args = p.parse_args()

    with thingcall.Client(args.server, token=os.environ.get("THINGCALL_TOKEN")) as client:
        try:
            result = client.invoke(args.device, args.method, args.payload, timeout=args.timeout)
        except thingcall.DeviceOffline:
            print(f"{args.device} is offline; try again with a connect_timeout", file=sys.stderr)
            return 4
        except thingcall.ThingcallError as e:
            # One line, as the CLI prints it: the reason, then the message.
            print(f"thingcall: {e}", file=sys.stderr)
            return 1
    print(result.text())
    print(f"status {result.status}, request {result.request_id}, {result.elapsed.total_seconds() * 1000:.1f} ms", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
