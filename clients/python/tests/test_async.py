"""The asyncio client against the live gateway.

Each test runs its own event loop with ``asyncio.run`` (grpc.aio channels
belong to one loop), so no pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
from typing import List

import pytest
from conftest import DEMO_IDS, SIM_IDS, Live

import thingcall


def test_async_echo_bytes_and_str(live: Live) -> None:
    async def main() -> None:
        async with thingcall.AsyncClient(live.address) as c:
            b = await c.invoke("demo-1", "echo", b"\x01raw")
            s = await c.invoke("demo-2", "echo", "text é", content_type="text/plain")
            assert b.payload == b"\x01raw" and b.status == 200
            assert s.text() == "text é" and s.content_type == "text/plain"

    asyncio.run(main())


def test_async_concurrent_calls(live: Live) -> None:
    async def main() -> List[thingcall.Result]:
        async with thingcall.AsyncClient(live.address) as c:
            return await asyncio.gather(*(c.invoke(d, "echo", d) for d in DEMO_IDS + SIM_IDS))

    results = asyncio.run(main())
    assert [r.text() for r in results] == list(DEMO_IDS + SIM_IDS)
    assert len({r.request_id for r in results}) == len(results)


def test_async_errors(live: Live) -> None:
    async def main() -> None:
        async with thingcall.AsyncClient(live.address) as c:
            with pytest.raises(thingcall.DeviceNotFound):
                await c.invoke("no-such-device", "echo")
            with pytest.raises(thingcall.DeviceTimeout) as e:
                await c.invoke("demo-2", "sleep", "3000", timeout=0.3)
            assert e.value.accepted is False
            with pytest.raises(thingcall.InvalidArgument):
                await c.invoke("a/b", "echo")
            with pytest.raises(thingcall.DeviceNotFound):
                await c.device("never-seen")

    asyncio.run(main())


def test_async_devices_and_device(live: Live) -> None:
    async def main() -> None:
        async with thingcall.AsyncClient(live.address) as c:
            ids = [d.id async for d in c.devices(page_size=1)]
            assert set(DEMO_IDS + SIM_IDS) <= set(ids) and ids == sorted(ids)
            d = await c.device("pysim-2")
            assert d.id == "pysim-2" and d.online

    asyncio.run(main())


def test_async_watch_until_synced_then_close(live: Live) -> None:
    async def main() -> List[thingcall.Event]:
        seen: List[thingcall.Event] = []
        async with thingcall.AsyncClient(live.address) as c:
            async with c.watch("demo-*") as w:
                async for ev in w:
                    seen.append(ev)
                    if isinstance(ev, thingcall.Synced):
                        break
            assert [ev async for ev in w] == []
        return seen

    seen = asyncio.run(asyncio.wait_for(main(), timeout=60))
    assert isinstance(seen[-1], thingcall.Synced) and seen[-1].devices == len(DEMO_IDS)
    assert {ev.device.id for ev in seen if isinstance(ev, thingcall.Presence)} == set(DEMO_IDS)
