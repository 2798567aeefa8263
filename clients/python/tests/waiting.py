"""Waiting on events with a deadline, never on the clock alone.

A watch stream blocks until the gateway sends something; a timer that
closes it bounds the wait, so a missing event fails the test with what was
awaited instead of hanging it.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Callable, Iterable, List, Optional, TypeVar

import thingcall

T = TypeVar("T")

DEADLINE_SECONDS = 60.0


class Guarded:
    """A watch that closes itself after ``seconds``, ending any wait on it."""

    def __init__(self, watch: thingcall.Watch, seconds: float = DEADLINE_SECONDS) -> None:
        self.watch = watch
        self.seen: List[thingcall.Event] = []
        self._timer = threading.Timer(seconds, watch.close)
        self._timer.daemon = True
        self._timer.start()

    def next_matching(self, what: str, wanted: Callable[[thingcall.Event], bool]) -> thingcall.Event:
        """The next event ``wanted`` accepts; AssertionError if the deadline closes the stream first."""
        for ev in self.watch:
            self.seen.append(ev)
            if wanted(ev):
                return ev
        raise AssertionError(f"watch ended before {what}; events: {self.seen}")

    def close(self) -> None:
        """Cancels the timer and the stream."""
        self._timer.cancel()
        self.watch.close()

    def __enter__(self) -> Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def presence(device_id: str, online: bool) -> Callable[[thingcall.Event], bool]:
    """Accepts a presence event of ``device_id`` in the ``online`` state."""
    return lambda ev: isinstance(ev, thingcall.Presence) and ev.device.id == device_id and ev.device.online == online


def wait_online(client: thingcall.Client, ids: Iterable[str], pattern: str = "*") -> None:
    """Returns once every device in ``ids`` is online, as the watch stream tells."""
    wanted = set(ids)
    pending = set(wanted)
    with Guarded(client.watch(pattern)) as g:
        while pending:
            ev = g.next_matching(
                f"{sorted(pending)} online",
                lambda ev: isinstance(ev, thingcall.Presence) and ev.device.id in wanted,
            )
            assert isinstance(ev, thingcall.Presence)
            if ev.device.online:
                pending.discard(ev.device.id)
            else:
                pending.add(ev.device.id)

def poll(what: str, probe: Callable[[], Optional[T]], seconds: float = DEADLINE_SECONDS) -> T:
    """``probe()``'s first non-None value, polled until ``seconds`` pass.

    For state that announces no event (a metrics gauge): a bounded poll of
    a condition, not a sleep standing in for synchronisation.
    """
    deadline = time.monotonic() + seconds
    while True:
        v = probe()
        if v is not None:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def metric(address: str, name: str) -> float:
    """The value of an unlabelled metric on the gateway's /metrics."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name} on /metrics")
