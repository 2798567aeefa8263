"""The token reaches the gateway as ``authorization: Bearer`` on every call."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Secured

import thingcall


def test_without_a_token_every_call_is_unauthenticated(secured: Secured) -> None:
    with thingcall.Client(secured.address) as c:
        with pytest.raises(thingcall.Unauthenticated) as e:
            c.invoke("demo-1", "echo", "hi")
        assert e.value.reason == "UNAUTHENTICATED"
        with pytest.raises(thingcall.Unauthenticated):
            c.device("demo-1")
        with pytest.raises(thingcall.Unauthenticated):
            list(c.devices())
        with c.watch() as w, pytest.raises(thingcall.Unauthenticated):
            next(w)


def test_a_wrong_token_is_unauthenticated(secured: Secured) -> None:
    with thingcall.Client(secured.address, token="tc_not-the-key") as c:
        with pytest.raises(thingcall.Unauthenticated) as e:
            c.invoke("demo-1", "echo", "hi")
    assert "tc_not-the-key" not in str(e.value)


def test_with_the_token_calls_succeed(secured: Secured) -> None:
    with thingcall.Client(secured.address, token=secured.key) as c:
        assert c.invoke("demo-1", "echo", "hi").payload == b"hi"
        assert c.device("demo-1").online
        assert [d.id for d in c.devices("demo-*")] == ["demo-1"]


def test_async_client_sends_the_token(secured: Secured) -> None:
    async def main() -> None:
        async with thingcall.AsyncClient(secured.address) as anon:
            with pytest.raises(thingcall.Unauthenticated):
                await anon.invoke("demo-1", "echo", "hi")
        async with thingcall.AsyncClient(secured.address, token=secured.key) as c:
            assert (await c.invoke("demo-1", "echo", "hi")).payload == b"hi"

    asyncio.run(main())
