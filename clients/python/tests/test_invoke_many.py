"""InvokeMany against real gateways: results then one summary, globs, the
offline policy, abort, refusals, and cancelling by closing the stream."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Iterator, List, Sequence, Tuple

import pytest
from _procs import Gateway, Simulator, dead_address
from conftest import DEMO_IDS, SIM_IDS, Live
from waiting import Guarded, metric, poll, presence, wait_online

import thingcall

ALL = DEMO_IDS + SIM_IDS


def run(events: Iterator[thingcall.FanOutEvent]) -> Tuple[List[thingcall.DeviceResult], thingcall.Summary]:
    """Every result, then the summary, asserting the summary comes last and once."""
    seen = list(events)
    assert seen and isinstance(seen[-1], thingcall.Summary), seen
    results = seen[:-1]
    assert all(isinstance(r, thingcall.DeviceResult) for r in results), seen
    return results, seen[-1]  # type: ignore[return-value]


def test_a_list_gets_one_result_per_device_then_the_summary(client: thingcall.Client) -> None:
    targets = list(ALL) + ["py-nobody"]
    results, summary = run(client.invoke_many("echo", targets, payload="hi", timeout=5))
    assert sorted(r.device for r in results) == sorted(targets)
    for r in results:
        if r.device == "py-nobody":
            assert (r.outcome, r.ok, r.result) == ("DEVICE_NOT_FOUND", False, None)
            assert r.message and r.request_id
        else:
            assert r.ok and r.result is not None, r
            assert r.result.payload == b"hi" and r.result.status == 200
            assert r.request_id == r.result.request_id
            assert r.elapsed > timedelta(0)
    assert (summary.targets, summary.attempted, summary.succeeded, summary.failed) == (6, 6, 5, 1)
    assert summary.outcomes == {"OK": 5, "DEVICE_NOT_FOUND": 1}
    assert summary.p50 is not None and summary.p99 is not None and summary.p50 <= summary.p99
    assert summary.not_attempted == {} and summary.not_attempted_devices == ()
    assert summary.ended == "COMPLETED" and summary.completed
    assert summary.elapsed > timedelta(0)


def test_a_glob_calls_the_matching_devices_in_id_order(client: thingcall.Client) -> None:
    # One call at a time: results arrive in the order the calls start.
    results, summary = run(client.invoke_many("fail", pattern="pysim-*", max_concurrency=1))
    assert [r.device for r in results] == list(SIM_IDS)
    for r in results:
        # Answered with 500: a result naming the status, with the answer.
        assert r.outcome == "DEVICE_STATUS_500" and not r.ok
        assert r.result is not None and r.result.status == 500
        assert r.result.text() == "failed on purpose"
    assert (summary.targets, summary.succeeded, summary.failed) == (2, 0, 2)
    assert summary.outcomes == {"DEVICE_STATUS_500": 2}


def test_offline_skip_leaves_offline_devices_out(live: Live, client: thingcall.Client) -> None:
    gone = "pyoff-1"
    with Guarded(client.watch(gone)) as g:
        sim = Simulator(live.gateway.mqtt, ["--devices", "1", "--id-prefix", "pyoff-"])
        try:
            g.next_matching(f"{gone} online", presence(gone, True))
        finally:
            sim.stop()
        g.next_matching(f"{gone} offline", presence(gone, False))
    targets = ["demo-1", gone]

    results, summary = run(client.invoke_many("echo", targets, offline="skip"))
    assert [r.device for r in results] == ["demo-1"] and results[0].ok
    assert (summary.targets, summary.attempted) == (2, 1)
    assert summary.not_attempted == {"OFFLINE": 1}
    assert summary.not_attempted_devices == (thingcall.NotAttempted(device=gone, reason="OFFLINE"),)
    assert summary.ended == "COMPLETED"

    # The default, "report": called, and failed at once.
    results, summary = run(client.invoke_many("echo", targets))
    assert {r.device: r.outcome for r in results} == {"demo-1": "OK", gone: "DEVICE_OFFLINE"}
    assert summary.not_attempted == {}


def test_abort_stops_after_min_results(live: Live, client: thingcall.Client) -> None:
    before = metric(live.address, 'thingcall_fanouts_total{event="aborted"}')
    abort = thingcall.Abort(failure_ratio=0.5, min_results=2)
    results, summary = run(client.invoke_many("fail", list(ALL), max_concurrency=1, abort=abort))
    assert [r.device for r in results] == list(ALL[:2])
    assert summary.ended == "ABORTED" and not summary.completed
    assert (summary.targets, summary.attempted, summary.failed) == (5, 2, 2)
    assert summary.not_attempted == {"ABORTED": 3}
    assert [n.device for n in summary.not_attempted_devices] == list(ALL[2:])
    assert {n.reason for n in summary.not_attempted_devices} == {"ABORTED"}
    assert metric(live.address, 'thingcall_fanouts_total{event="aborted"}') == before + 1


@pytest.mark.parametrize(
    "targets, options, says",
    [
        (["demo-1", "demo-1"], {}, "listed twice"),
        (["demo-1"], {"rate": -1.0}, "rate"),
        (["demo-1"], {"pattern": "demo-*"}, "exclusive"),
        (["demo-1"], {"ramp": thingcall.Ramp(start_rate=1, factor=2, step_successes=1)}, "ramp"),
    ],
)
def test_the_gateway_refuses_a_bad_fan_out_whole(
    live: Live, client: thingcall.Client, targets: Sequence[str], options: dict, says: str
) -> None:
    started = 'thingcall_fanouts_total{event="started"}'
    before = metric(live.address, started)
    with pytest.raises(thingcall.InvalidArgument) as e:
        list(client.invoke_many("echo", targets, **options))
    assert e.value.reason == "INVALID_ARGUMENT" and says in e.value.message
    # Refused before it began: no fan-out ran, so nothing was published.
    assert metric(live.address, started) == before


@pytest.mark.parametrize(
    "targets, options",
    [
        ("demo-1", {}),
        (["demo-1", "a/b"], {}),
        (["demo-1", ""], {}),
        (["demo-1"], {"method": "ec#ho"}),
        (["demo-1"], {"offline": "sometimes"}),
        (["demo-1"], {"contract": "mqtt3"}),
        (["demo-1"], {"max_concurrency": -1}),
        (["demo-1"], {"max_concurrency": 2.5}),
        (["demo-1"], {"rate": "fast"}),
        (["demo-1"], {"timeout": 0}),
        (["demo-1"], {"connect_timeout": -1}),
        (["demo-1"], {"ramp": (1, 2, 3)}),
        (["demo-1"], {"abort": thingcall.Abort(failure_ratio=0.5, min_results=-1)}),
        (["demo-1"], {"metadata": {"k": "\ud800"}}),
    ],
)
def test_malformed_arguments_fail_before_any_call(targets: Sequence[str], options: dict) -> None:
    # As for invoke: nothing listens there, so InvalidArgument proves nothing was sent.
    method = options.pop("method", "echo")
    with thingcall.Client(dead_address()) as c:
        with pytest.raises(thingcall.InvalidArgument) as e:
            c.invoke_many(method, targets, **options)
    assert e.value.request_id is None


@pytest.fixture(scope="module")
def quiet() -> Iterator[str]:
    """A gateway of its own (``--demo 3``), so its fan-out counters start at zero."""
    gw = Gateway(["--demo", "3"])
    try:
        with thingcall.Client(gw.grpc) as c:
            wait_online(c, DEMO_IDS)
        yield gw.grpc
    finally:
        gw.stop()


def test_closing_the_stream_cancels_the_fan_out(quiet: str) -> None:
    calls = 'thingcall_invocations_total{method="echo",outcome="OK"}'
    with thingcall.Client(quiet) as c:
        # One call a second: the rest are still to come when the first result is in.
        with c.invoke_many("echo", pattern="demo-*", rate=1.0, max_concurrency=1) as fan:
            first = next(fan)
            assert isinstance(first, thingcall.DeviceResult) and first.ok
        assert list(fan) == []
    poll(
        "the gateway to count the fan-out cancelled",
        lambda: True if metric(quiet, 'thingcall_fanouts_total{event="cancelled"}') == 1 else None,
    )
    # Counted once its calls in flight ended: what was called is final.
    assert metric(quiet, "thingcall_fanouts_active") == 0
    assert metric(quiet, calls) in (1, 2), "calls made after the stream was closed"


def test_async_fan_out(live: Live) -> None:
    async def main() -> List[thingcall.FanOutEvent]:
        async with thingcall.AsyncClient(live.address) as c:
            async with c.invoke_many("echo", list(DEMO_IDS), payload=b"\x01", timeout=timedelta(seconds=5)) as fan:
                return [ev async for ev in fan]

    results, summary = run(iter(asyncio.run(asyncio.wait_for(main(), timeout=60))))
    assert sorted(r.device for r in results) == list(DEMO_IDS)
    assert all(r.result is not None and r.result.payload == b"\x01" for r in results)
    assert (summary.attempted, summary.succeeded, summary.ended) == (3, 3, "COMPLETED")
