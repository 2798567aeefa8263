"""The values the client returns: call results, devices and watch events.

They are frozen dataclasses rather than the generated protobuf messages so
callers get plain Python types (``bytes``, ``timedelta``, ``datetime``,
``None`` for "not given") and the wire format can evolve without breaking
them.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional, Tuple, Union

from thingcall._time import from_duration, optional_duration, optional_time
from thingcall.v1 import gateway_pb2 as pb


@dataclass(frozen=True)
class Result:
    """The device's answer to one ``invoke``.

    A device-reported failure (``status`` 500, say) is still a ``Result``:
    the gateway delivered the answer; only gateway-level failures raise.
    """

    #: The device's status, HTTP-like; 200 when it reported none.
    status: int
    #: The reply payload, as the device sent it.
    payload: bytes
    #: MIME type of the payload; empty when the device gave none.
    content_type: str
    #: Correlation id of the call (UUID text), as in the gateway's logs and traces.
    request_id: str
    #: Gateway receipt to reply.
    elapsed: timedelta
    #: Execution time the device reported, when it reported one.
    device_time: Optional[timedelta]

    @property
    def ok(self) -> bool:
        """Whether the device's status is 2xx."""
        return 200 <= self.status < 300

    def text(self, encoding: str = "utf-8") -> str:
        """The payload decoded as text (``UnicodeDecodeError`` if it is not)."""
        return self.payload.decode(encoding)

    def json(self) -> Any:
        """The payload parsed as JSON (``ValueError`` if it is not)."""
        return _json.loads(self.payload)

    @classmethod
    def _from_proto(cls, r: pb.InvokeResponse) -> Result:
        return cls(
            status=r.status,
            payload=bytes(r.payload),
            content_type=r.content_type,
            request_id=r.request_id,
            elapsed=from_duration(r.elapsed),
            device_time=optional_duration(r, "device_time"),
        )


@dataclass(frozen=True)
class Device:
    """A device's presence as the gateway last saw it."""

    #: Device id.
    id: str
    #: Whether the device is online now.
    online: bool
    #: Methods the device announced; empty = unknown, any method may be tried.
    methods: Tuple[str, ...]
    #: Last presence change seen by the gateway (UTC), if known.
    since: Optional[datetime]
    #: Session id the device announced with its presence.
    session: str

    @classmethod
    def _from_proto(cls, d: pb.Device) -> Device:
        return cls(
            id=d.id,
            online=d.online,
            methods=tuple(d.methods),
            since=optional_time(d, "since"),
            session=d.session,
        )


@dataclass(frozen=True)
class Presence:
    """A device's presence: first the current state of each match, then changes."""

    #: When the gateway emitted the event (UTC).
    time: Optional[datetime]
    #: The device's state.
    device: Device


@dataclass(frozen=True)
class Synced:
    """Every current state has been sent; what follows are changes."""

    time: Optional[datetime]
    #: Number of presence states in the initial snapshot.
    devices: int


@dataclass(frozen=True)
class Invocation:
    """An invoke on a watched device finished."""

    time: Optional[datetime]
    #: The device called.
    device_id: str
    method: str
    request_id: str
    #: ``"OK"`` or the error reason (``DEVICE_TIMEOUT``, ...).
    outcome: str
    #: The device's status when ``outcome`` is ``"OK"``.
    status: int
    elapsed: timedelta


@dataclass(frozen=True)
class Lagged:
    """This watcher read too slowly and lost events; re-read state if it matters."""

    time: Optional[datetime]
    #: Events this watcher missed.
    dropped: int


@dataclass(frozen=True)
class DeviceMessage:
    """An event a device published (only with ``include_events=True``)."""

    time: Optional[datetime]
    device_id: str
    #: Event name (the last topic level).
    name: str
    payload: bytes
    content_type: str


@dataclass(frozen=True)
class Closing:
    """The gateway is shutting down; the last event of the stream."""

    time: Optional[datetime]
    #: Why the stream ends, e.g. ``"SHUTTING_DOWN"``.
    reason: str


#: One event of a watch stream.
Event = Union[Presence, Synced, Invocation, Lagged, DeviceMessage, Closing]


def event_from_proto(ev: pb.DeviceEvent) -> Optional[Event]:
    """The typed event of ``ev``; None for a kind this client does not know.

    Unknown kinds are skipped rather than raised so a newer gateway adding
    an event kind does not break older clients' watch loops.
    """
    time = optional_time(ev, "time")
    kind = ev.WhichOneof("kind")
    if kind == "presence":
        return Presence(time=time, device=Device._from_proto(ev.presence))
    if kind == "synced":
        return Synced(time=time, devices=ev.synced.devices)
    if kind == "invocation":
        i = ev.invocation
        return Invocation(
            time=time,
            device_id=ev.device,
            method=i.method,
            request_id=i.request_id,
            outcome=i.outcome,
            status=i.status,
            elapsed=from_duration(i.elapsed),
        )
    if kind == "lagged":
        return Lagged(time=time, dropped=ev.lagged.dropped)
    if kind == "event":
        e = ev.event
        return DeviceMessage(
            time=time,
            device_id=ev.device,
            name=e.name,
            payload=bytes(e.payload),
            content_type=e.content_type,
        )
    if kind == "closing":
        return Closing(time=time, reason=ev.closing.reason)
    return None
