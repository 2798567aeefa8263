"""Call several devices at once with the asyncio client.

Against the README quick-start gateway::

    python3 examples/async_invoke.py                  # demo-1 demo-2 demo-3
    python3 examples/async_invoke.py demo-1 demo-3

Each call fails or succeeds on its own: an offline device prints its
reason while the others answer. Address and token as in invoke.py.
"""

import argparse
import asyncio
import os
import sys
from typing import List, Union

import thingcall


async def call_all(server: str, devices: List[str]) -> int:
    """Echoes each device's own name back from it, concurrently."""
    async with thingcall.AsyncClient(server, token=os.environ.get("THINGCALL_TOKEN")) as client:
        outcomes: List[Union[thingcall.Result, BaseException]] = await asyncio.gather(
            *(client.invoke(d, "echo", f"hello {d}") for d in devices), return_exceptions=True
        )
    failed = 0
    for device, outcome in zip(devices, outcomes):
        if isinstance(outcome, thingcall.Result):
            print(f"{device}: {outcome.text()} ({outcome.elapsed.total_seconds() * 1000:.1f} ms)")
        elif isinstance(outcome, thingcall.ThingcallError):
            failed += 1
            print(f"{device}: {outcome}", file=sys.stderr)
        else:
            raise outcome
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description="Invoke echo on several devices concurrently.")
    p.add_argument("--server", default=os.environ.get("THINGCALL_SERVER", thingcall.DEFAULT_TARGET))
    p.add_argument("devices", nargs="*", default=["demo-1", "demo-2", "demo-3"])
    args = p.parse_args()
    return asyncio.run(call_all(args.server, args.devices))


if __name__ == "__main__":
    sys.exit(main())
