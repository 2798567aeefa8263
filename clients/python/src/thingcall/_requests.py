"""Building requests, and refusing bad input before anything is sent.

The checks mirror the gateway's (proto/src/wire/mod.rs ``validate_id``) so
a malformed id fails at once with :class:`~thingcall.errors.InvalidArgument`
and no network round trip; the gateway checks everything again.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Mapping, Optional, Union

from thingcall._time import Seconds, to_duration, to_seconds
from thingcall.errors import invalid_argument
from thingcall.v1 import gateway_pb2 as pb

#: Longest device id or method name, in UTF-8 bytes.
MAX_ID_BYTES = 128

#: How much longer than the call's own timeout the gRPC deadline is, so the
#: gateway's DEVICE_TIMEOUT (with its ``accepted`` and request id) arrives
#: before grpc gives up with a bare DEADLINE_EXCEEDED.
DEADLINE_MARGIN = 1.0

#: A payload: bytes, or text sent as UTF-8.
Payload = Union[bytes, bytearray, memoryview, str]


def validate_id(what: str, value: object) -> str:
    """``value`` if it is a valid device id or method name, else InvalidArgument."""
    if not isinstance(value, str):
        raise invalid_argument(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise invalid_argument(f"{what} is empty")
    size = len(_utf8(what, value))
    if size > MAX_ID_BYTES:
        raise invalid_argument(f"{what} is {size} bytes, over the limit of {MAX_ID_BYTES}")
    if value.startswith("$"):
        raise invalid_argument(f"{what} must not start with '$'")
    for c in value:
        if c in "/+#":
            raise invalid_argument(f"{what} {value!r} contains {c!r}, reserved in MQTT topics")
        if unicodedata.category(c) == "Cc":
            raise invalid_argument(f"{what} contains a control character")
    return value


def payload_bytes(payload: Payload) -> bytes:
    """The payload as bytes: text is sent as UTF-8."""
    if isinstance(payload, str):
        return _utf8("payload", payload)
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    raise invalid_argument(f"payload must be bytes or str, not {type(payload).__name__}")


@dataclass(frozen=True)
class Invoke:
    """One validated Invoke: the request and the gRPC deadline to send it with."""

    request: pb.InvokeRequest
    #: Seconds for the gRPC call's deadline.
    deadline: float


def invoke_request(
    target: str,
    method: str,
    payload: Payload,
    *,
    timeout: Seconds,
    connect_timeout: Optional[Seconds],
    idempotency_key: Optional[str],
    metadata: Optional[Mapping[str, str]],
    content_type: Optional[str],
) -> Invoke:
    """Checks the arguments of ``invoke`` and builds its request.

    The gateway's deadline includes any wait for the device to come online,
    so ``timeout`` bounds the whole call; the gRPC deadline is set past
    ``timeout + connect_timeout`` so it never pre-empts the gateway's answer.
    """
    req = pb.InvokeRequest(
        target=validate_id("target", target),
        method=validate_id("method", method),
        payload=payload_bytes(payload),
    )
    try:
        seconds = to_seconds(timeout, "timeout")
        connect = 0.0 if connect_timeout is None else to_seconds(connect_timeout, "connect_timeout")
    except TypeError as e:
        raise invalid_argument(str(e)) from None
    if not seconds > 0:
        raise invalid_argument(f"timeout must be greater than zero, not {seconds}")
    if connect < 0:
        raise invalid_argument(f"connect_timeout must not be negative, not {connect}")
    req.timeout.CopyFrom(to_duration(seconds))
    if connect_timeout is not None:
        req.connect_timeout.CopyFrom(to_duration(connect))
    if idempotency_key is not None:
        req.idempotency_key = _text("idempotency_key", idempotency_key)
    if content_type is not None:
        req.content_type = _text("content_type", content_type)
    for k, v in (metadata or {}).items():
        req.metadata[_text("metadata key", k)] = _text(f"metadata value of {k!r}", v)
    return Invoke(request=req, deadline=seconds + connect + DEADLINE_MARGIN)


def query_timeout(timeout: Seconds) -> float:
    """A query's (GetDevice, ListDevices) timeout in seconds, refusing nonsense before calling."""
    try:
        s = to_seconds(timeout, "timeout")
    except TypeError as e:
        raise invalid_argument(str(e)) from None
    if not s > 0:
        raise invalid_argument(f"timeout must be greater than zero, not {s}")
    return s


def _text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise invalid_argument(f"{what} must be a str, not {type(value).__name__}")
    _utf8(what, value)
    return value


def _utf8(what: str, value: str) -> bytes:
    """``value`` as UTF-8; a str with a lone surrogate (``"\\ud800"``) has
    none, and is bad input like invalid UTF-8 on every other surface, not a
    ``UnicodeEncodeError`` from deep inside protobuf."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_argument(f"{what} is not valid Unicode (a lone surrogate)") from None
