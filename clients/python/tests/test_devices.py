"""Devices, paging, and watching presence through a reboot."""

from __future__ import annotations

import pytest
from conftest import DEMO_IDS, SIM_IDS, Live
from waiting import Guarded, metric, poll, presence

import thingcall


def test_device(client: thingcall.Client) -> None:
    d = client.device("demo-1")
    assert d.id == "demo-1" and d.online
    assert "echo" in d.methods and "reboot" in d.methods
    assert d.since is not None and d.session


def test_device_not_found(client: thingcall.Client) -> None:
    with pytest.raises(thingcall.DeviceNotFound):
        client.device("never-seen")


def test_devices_pages_through_every_match(client: thingcall.Client) -> None:
    everything = [d.id for d in client.devices()]
    assert set(DEMO_IDS + SIM_IDS) <= set(everything)
    assert everything == sorted(everything)
    # Two per page: five devices can only arrive over several pages.
    paged = [d.id for d in client.devices(page_size=2)]
    assert paged == everything
    assert [d.id for d in client.devices("pysim-*", page_size=1)] == list(SIM_IDS)


def test_watch_starts_with_the_current_state(client: thingcall.Client) -> None:
    with Guarded(client.watch("demo-*")) as g:
        synced = g.next_matching("synced", lambda ev: isinstance(ev, thingcall.Synced))
    assert isinstance(synced, thingcall.Synced) and synced.devices == len(DEMO_IDS)
    states = {ev.device.id: ev.device.online for ev in g.seen if isinstance(ev, thingcall.Presence)}
    assert states == {d: True for d in DEMO_IDS}


def test_watch_reports_invocations(client: thingcall.Client) -> None:
    with Guarded(client.watch("demo-3")) as g:
        g.next_matching("synced", lambda ev: isinstance(ev, thingcall.Synced))
        r = client.invoke("demo-3", "echo", "seen?")
        ev = g.next_matching("the invocation", lambda ev: isinstance(ev, thingcall.Invocation))
    assert isinstance(ev, thingcall.Invocation)
    assert (ev.device_id, ev.method, ev.request_id, ev.outcome, ev.status) == ("demo-3", "echo", r.request_id, "OK", 200)


def test_reboot_offline_then_online(client: thingcall.Client) -> None:
    device = SIM_IDS[0]
    with Guarded(client.watch(device)) as g:
        g.next_matching("synced", lambda ev: isinstance(ev, thingcall.Synced))
        assert client.invoke(device, "reboot", "3000").text() == "rebooting"
        g.next_matching(f"{device} offline", presence(device, False))
        # Known offline and no connect_timeout: refused at once.
        with pytest.raises(thingcall.DeviceOffline) as e:
            client.invoke(device, "echo", "now?")
        assert e.value.metadata["device"] == device
        # With a connect_timeout the call waits for the device to return.
        back = client.invoke(device, "echo", "later", connect_timeout=30, timeout=40)
        assert back.payload == b"later"
        g.next_matching(f"{device} online again", presence(device, True))


def test_closing_a_watch_cancels_the_stream(live: Live, client: thingcall.Client) -> None:
    before = metric(live.address, "thingcall_watchers")
    w = client.watch("demo-1")
    with Guarded(w) as g:
        g.next_matching("synced", lambda ev: isinstance(ev, thingcall.Synced))
        poll("the watcher to register", lambda: True if metric(live.address, "thingcall_watchers") == before + 1 else None)
        w.close()
        assert list(w) == []
    poll("the gateway to drop the watcher", lambda: True if metric(live.address, "thingcall_watchers") == before else None)
