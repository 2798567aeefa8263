"""OVERLOADED from a real gateway with room for one call in flight."""

from __future__ import annotations

import threading
from typing import Iterator, List

import pytest
from _procs import Gateway
from waiting import metric, poll, wait_online

import thingcall


@pytest.fixture(scope="module")
def tight() -> Iterator[str]:
    """A gateway with ``--max-in-flight 1``; yields its address."""
    gw = Gateway(["--max-in-flight", "1", "--demo", "1"])
    try:
        with thingcall.Client(gw.grpc) as c:
            wait_online(c, ["demo-1"])
        yield gw.grpc
    finally:
        gw.stop()


def test_a_call_past_max_in_flight_is_overloaded(tight: str) -> None:
    with thingcall.Client(tight) as c:
        slow: List[thingcall.Result] = []
        t = threading.Thread(target=lambda: slow.append(c.invoke("demo-1", "sleep", "1500", timeout=10)))
        t.start()
        try:
            poll("the slow call in flight", lambda: True if metric(tight, "thingcall_invocations_in_flight") == 1 else None)
            with pytest.raises(thingcall.Overloaded) as e:
                c.invoke("demo-1", "echo", "me too")
        finally:
            t.join(30)
        assert e.value.reason == "OVERLOADED"
        # The gateway's RetryInfo, gRPC's Retry-After.
        assert e.value.retry_after == 1.0
        assert slow and slow[0].text() == "slept 1500 ms"
