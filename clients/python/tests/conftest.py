"""Session fixtures: one real gateway with demo and simulated devices, and a
second one that requires an API key. Both are killed at teardown."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from _procs import Gateway, Simulator
from waiting import wait_online

import thingcall

#: Simulated devices (thingcall-sim with --ack, so DEVICE_TIMEOUT says accepted).
SIM_IDS = ("pysim-1", "pysim-2")
DEMO_IDS = ("demo-1", "demo-2", "demo-3")


@dataclass
class Live:
    """A running gateway (``address``) with its devices online."""

    address: str
    gateway: Gateway


@pytest.fixture(scope="session")
def live() -> Iterator[Live]:
    """``--demo 3`` plus ``thingcall-sim --devices 2 --id-prefix pysim- --ack``
    on the gateway's embedded broker, all online before any test runs."""
    gw = Gateway(["--demo", "3"])
    sim = None
    try:
        sim = Simulator(gw.mqtt, ["--devices", str(len(SIM_IDS)), "--id-prefix", "pysim-", "--ack"])
        with thingcall.Client(gw.grpc) as c:
            wait_online(c, DEMO_IDS + SIM_IDS)
        yield Live(address=gw.grpc, gateway=gw)
    finally:
        if sim is not None:
            sim.stop()
        gw.stop()


@pytest.fixture()
def client(live: Live) -> Iterator[thingcall.Client]:
    """A blocking client of the live gateway."""
    with thingcall.Client(live.address) as c:
        yield c


@dataclass
class Secured:
    """A gateway that requires an API key, and the key."""

    address: str
    key: str


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """``--api-keys`` with one key (stored hashed, as README "Security" shows) and ``--demo 1``."""
    key = "tc_" + secrets.token_hex(24)
    keys: Path = tmp_path_factory.mktemp("auth") / "api-keys"
    keys.write_text(f"py-tests sha256:{hashlib.sha256(key.encode()).hexdigest()}\n")
    gw = Gateway(["--api-keys", str(keys), "--demo", "1"])
    try:
        with thingcall.Client(gw.grpc, token=key) as c:
            wait_online(c, ["demo-1"])
        yield Secured(address=gw.grpc, key=key)
    finally:
        gw.stop()
