"""Conversions between Python time values and protobuf Duration/Timestamp.

Callers give durations as seconds (int or float) or ``timedelta``; the
gateway speaks ``google.protobuf.Duration``. Keeping the conversions here
means every option that takes a duration accepts the same forms.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional, Union

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

#: What every duration option accepts: seconds, or a ``timedelta``.
Seconds = Union[int, float, timedelta]


def to_seconds(value: Seconds, name: str) -> float:
    """``value`` in seconds; ``TypeError`` for anything but a number or timedelta.

    ``bool`` is refused although it is an ``int``: ``timeout=True`` is a
    mistake, not one second.
    """
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be seconds (int or float) or a timedelta, not {type(value).__name__}")
    return float(value)


def to_duration(seconds: float) -> Duration:
    """A protobuf Duration of ``seconds``, exact to the nanosecond."""
    d = Duration()
    d.FromNanoseconds(round(seconds * 1_000_000_000))
    return d


def from_duration(d: Duration) -> timedelta:
    """The ``timedelta`` of a Duration (microsecond resolution, as timedelta has)."""
    return timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)


def optional_duration(msg: object, field: str) -> Optional[timedelta]:
    """The message's Duration ``field`` as a timedelta, or None when unset."""
    if not msg.HasField(field):  # type: ignore[attr-defined]
        return None
    return from_duration(getattr(msg, field))


def optional_time(msg: object, field: str) -> Optional[datetime]:
    """The message's Timestamp ``field`` as an aware UTC datetime, or None when unset."""
    if not msg.HasField(field):  # type: ignore[attr-defined]
        return None
    ts: Timestamp = getattr(msg, field)
    return datetime.fromtimestamp(ts.seconds, tz=timezone.utc) + timedelta(microseconds=ts.nanos // 1000)
