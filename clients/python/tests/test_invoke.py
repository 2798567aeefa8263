"""Invoke against the live gateway: answers, options and the error reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from _procs import dead_address

import thingcall


def test_echo_bytes(client: thingcall.Client) -> None:
    r = client.invoke("demo-1", "echo", b"\x00\xffbytes")
    assert r.payload == b"\x00\xffbytes"
    assert r.status == 200 and r.ok
    assert r.request_id
    assert r.elapsed > timedelta(0)
    assert r.device_time is not None


def test_echo_str_is_sent_as_utf8(client: thingcall.Client) -> None:
    r = client.invoke("demo-2", "echo", "grüß dich")
    assert r.payload == "grüß dich".encode("utf-8")
    assert r.text() == "grüß dich"


def test_content_type_reaches_the_device_and_back(client: thingcall.Client) -> None:
    r = client.invoke("pysim-1", "echo", '{"a": 1}', content_type="application/json", metadata={"origin": "py-tests"})
    assert r.content_type == "application/json"
    assert r.json() == {"a": 1}


def test_timedelta_timeout(client: thingcall.Client) -> None:
    r = client.invoke("demo-1", "sleep", "10", timeout=timedelta(seconds=5))
    assert r.text() == "slept 10 ms"


def test_device_status_is_a_result_not_an_error(client: thingcall.Client) -> None:
    r = client.invoke("demo-1", "fail")
    assert r.status == 500 and not r.ok
    assert r.text() == "failed on purpose"


def test_idempotency_key_replays_the_same_call(client: thingcall.Client) -> None:
    first = client.invoke("demo-3", "echo", "once", idempotency_key="py-order-42")
    again = client.invoke("demo-3", "echo", "once", idempotency_key="py-order-42")
    assert again.request_id == first.request_id
    assert again.payload == b"once"


def test_device_not_found(client: thingcall.Client) -> None:
    with pytest.raises(thingcall.DeviceNotFound) as e:
        client.invoke("no-such-device", "echo")
    assert e.value.reason == "DEVICE_NOT_FOUND"
    assert e.value.metadata["device"] == "no-such-device"
    assert e.value.request_id


def test_method_not_supported(client: thingcall.Client) -> None:
    with pytest.raises(thingcall.MethodNotSupported) as e:
        client.invoke("demo-1", "self-destruct")
    assert e.value.metadata["method"] == "self-destruct"
    assert e.value.metadata["device"] == "demo-1"


def test_device_timeout_says_whether_the_device_accepted(client: thingcall.Client) -> None:
    # Demo devices send no interim ack; the simulator runs with --ack.
    with pytest.raises(thingcall.DeviceTimeout) as e:
        client.invoke("demo-1", "sleep", "3000", timeout=0.3)
    assert e.value.accepted is False
    assert e.value.request_id
    with pytest.raises(thingcall.DeviceTimeout) as e:
        client.invoke("pysim-2", "sleep", "3000", timeout=0.3)
    assert e.value.accepted is True


def test_payload_too_large(client: thingcall.Client) -> None:
    with pytest.raises(thingcall.PayloadTooLarge) as e:
        client.invoke("demo-1", "echo", b"x" * (128 * 1024 + 1))
    assert e.value.limit == 128 * 1024


def test_gateway_refuses_reserved_metadata(client: thingcall.Client) -> None:
    with pytest.raises(thingcall.InvalidArgument) as e:
        client.invoke("demo-1", "echo", metadata={"deadline": "never"})
    assert "reserved" in e.value.message


@pytest.mark.parametrize(
    "target, method, options",
    [
        ("a/b", "echo", {}),
        ("demo-1", "ec#ho", {}),
        ("", "echo", {}),
        ("$SYS", "echo", {}),
        ("x" * 129, "echo", {}),
        ("demo-1", "echo", {"timeout": 0}),
        ("demo-1", "echo", {"connect_timeout": -1}),
        ("demo-\ud800", "echo", {}),
        ("demo-1", "echo", {"payload": "\ud800"}),
        ("demo-1", "echo", {"metadata": {"k": "\ud800"}}),
    ],
)
def test_bad_input_fails_before_any_call(target: str, method: str, options: dict) -> None:
    # Nothing listens at this address: reaching the network would raise
    # Unavailable, so InvalidArgument proves nothing was sent.
    with thingcall.Client(dead_address()) as c:
        with pytest.raises(thingcall.InvalidArgument) as e:
            c.invoke(target, method, **options)
        assert e.value.request_id is None
        with pytest.raises(thingcall.InvalidArgument):
            c.device("a/b")


def test_unreachable_gateway_is_unavailable() -> None:
    with thingcall.Client(dead_address()) as c:
        with pytest.raises(thingcall.Unavailable) as e:
            c.invoke("demo-1", "echo", timeout=2)
    assert e.value.reason is None


def test_client_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        thingcall.Client("http://127.0.0.1:1", tls=True)
    with pytest.raises(ValueError):
        thingcall.Client("127.0.0.1:1", token="")
