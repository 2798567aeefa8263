"""Building requests, and refusing bad input before anything is sent.

The checks mirror the gateway's (proto/src/wire/mod.rs ``validate_id``) so
a malformed id fails at once with :class:`~thingcall.errors.InvalidArgument`
and no network round trip; the gateway checks everything again.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, TypeVar, Union

from thingcall._time import Seconds, to_duration, to_seconds
from thingcall.errors import invalid_argument
from thingcall.fanout import Abort, Ramp
from thingcall.v1 import gateway_pb2 as pb

#: Longest device id or method name, in UTF-8 bytes.
MAX_ID_BYTES = 128

#: How much longer than the call's own timeout the gRPC deadline is, so the
#: gateway's DEVICE_TIMEOUT (with its ``accepted`` and request id) arrives
#: before grpc gives up with a bare DEADLINE_EXCEEDED.
DEADLINE_MARGIN = 1.0

#: A payload: bytes, or text sent as UTF-8.
Payload = Union[bytes, bytearray, memoryview, str]

#: ``invoke_many(offline=...)``: what a device not online gets.
OFFLINE_POLICIES = {
    "report": pb.OFFLINE_POLICY_REPORT,
    "skip": pb.OFFLINE_POLICY_SKIP,
    "wait": pb.OFFLINE_POLICY_WAIT,
}

#: ``contract=...``: the MQTT contract the devices speak; None = the gateway's default.
CONTRACTS = {None: pb.CONTRACT_UNSPECIFIED, "native": pb.CONTRACT_NATIVE, "seed": pb.CONTRACT_SEED}

_UINT32 = 2**32

E = TypeVar("E")


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
    seconds = positive_seconds("timeout", timeout)
    connect = 0.0 if connect_timeout is None else _non_negative_seconds("connect_timeout", connect_timeout)
    req.timeout.CopyFrom(to_duration(seconds))
    if connect_timeout is not None:
        req.connect_timeout.CopyFrom(to_duration(connect))
    _set_options(req, idempotency_key=idempotency_key, content_type=content_type, metadata=metadata)
    return Invoke(request=req, deadline=seconds + connect + DEADLINE_MARGIN)


def invoke_many_request(
    method: str,
    targets: Optional[Iterable[str]],
    *,
    pattern: Optional[str],
    payload: Payload,
    timeout: Optional[Seconds],
    connect_timeout: Optional[Seconds],
    offline: str,
    max_concurrency: int,
    rate: float,
    ramp: Optional[Ramp],
    abort: Optional[Abort],
    idempotency_key: Optional[str],
    content_type: Optional[str],
    metadata: Optional[Mapping[str, str]],
    contract: Optional[str],
) -> pb.InvokeManyRequest:
    """Checks the arguments of ``invoke_many`` and builds its request.

    Checked here: what ``invoke`` checks (ids, timeouts, text), and that
    each option has a type the request can carry. The fan-out's own rules
    (targets or pattern, no duplicates, limits, rate and abort ranges) are
    the gateway's, which refuses a bad fan-out whole before any call, so
    they are not repeated here to drift apart.
    """
    if isinstance(targets, (str, bytes)):
        raise invalid_argument("targets must be a list of device ids, not one string (a glob goes in pattern=)")
    req = pb.InvokeManyRequest(
        targets=[validate_id("target", t) for t in targets or ()],
        method=validate_id("method", method),
        payload=payload_bytes(payload),
    )
    if pattern is not None:
        req.pattern = _text("pattern", pattern)
    if timeout is not None:
        req.timeout.CopyFrom(to_duration(positive_seconds("timeout", timeout)))
    if connect_timeout is not None:
        req.connect_timeout.CopyFrom(to_duration(_non_negative_seconds("connect_timeout", connect_timeout)))
    req.offline = _choice("offline", offline, OFFLINE_POLICIES)
    req.contract = _choice("contract", contract, CONTRACTS)
    req.max_concurrency = _count("max_concurrency", max_concurrency)
    req.rate = _number("rate", rate)
    if ramp is not None:
        if not isinstance(ramp, Ramp):
            raise invalid_argument(f"ramp must be a thingcall.Ramp, not {type(ramp).__name__}")
        req.ramp.start_rate = _number("ramp start_rate", ramp.start_rate)
        req.ramp.factor = _number("ramp factor", ramp.factor)
        req.ramp.step_successes = _count("ramp step_successes", ramp.step_successes)
    if abort is not None:
        if not isinstance(abort, Abort):
            raise invalid_argument(f"abort must be a thingcall.Abort, not {type(abort).__name__}")
        req.abort.failure_ratio = _number("abort failure_ratio", abort.failure_ratio)
        req.abort.min_results = _count("abort min_results", abort.min_results)
    _set_options(req, idempotency_key=idempotency_key, content_type=content_type, metadata=metadata)
    return req


def _choice(what: str, value: object, choices: Mapping[Any, E]) -> E:
    try:
        return choices[value]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in choices)
        raise invalid_argument(f"{what} must be one of {names}, not {value!r}") from None


def _count(what: str, value: object) -> int:
    """A uint32 field: ``bool`` is refused, as for durations."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_argument(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < _UINT32:
        raise invalid_argument(f"{what} must be from 0 to {_UINT32 - 1}, not {value}")
    return value


def _number(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_argument(f"{what} must be a number, not {type(value).__name__}")
    return float(value)


def query_timeout(timeout: Seconds) -> float:
    """A query's (GetDevice, ListDevices) timeout in seconds, refusing nonsense before calling."""
    return positive_seconds("timeout", timeout)


def positive_seconds(what: str, value: Seconds) -> float:
    """``value`` in seconds if it is a duration greater than zero, else InvalidArgument."""
    s = _seconds(what, value)
    if not s > 0:
        raise invalid_argument(f"{what} must be greater than zero, not {s}")
    return s


def _non_negative_seconds(what: str, value: Seconds) -> float:
    s = _seconds(what, value)
    if s < 0:
        raise invalid_argument(f"{what} must not be negative, not {s}")
    return s


def _seconds(what: str, value: Seconds) -> float:
    try:
        return to_seconds(value, what)
    except TypeError as e:
        raise invalid_argument(str(e)) from None


def _set_options(
    req: Union[pb.InvokeRequest, pb.InvokeManyRequest],
    *,
    idempotency_key: Optional[str],
    content_type: Optional[str],
    metadata: Optional[Mapping[str, str]],
) -> None:
    """The options Invoke and InvokeMany share, checked and set on ``req``."""
    if idempotency_key is not None:
        req.idempotency_key = _text("idempotency_key", idempotency_key)
    if content_type is not None:
        req.content_type = _text("content_type", content_type)
    for k, v in (metadata or {}).items():
        req.metadata[_text("metadata key", k)] = _text(f"metadata value of {k!r}", v)


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
