"""InvokeMany's options and events: one method on many devices.

``Client.invoke_many`` streams a :class:`DeviceResult` per device as its
call ends, then one :class:`Summary` as the last event. The options that
are more than one number (:class:`Ramp`, :class:`Abort`) are small frozen
dataclasses so a typo in a field name fails at once instead of being
ignored, as a keyword in a dict would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Dict, Literal, Optional, Tuple, Union

from thingcall._time import from_duration, optional_duration
from thingcall.types import Result
from thingcall.v1 import gateway_pb2 as pb

#: The outcome of a call the device answered with a status below 400.
OK = "OK"

#: ``invoke_many(offline=...)``: a device not online is reported (its
#: result is ``DEVICE_OFFLINE``/``DEVICE_NOT_FOUND`` at once), skipped (not
#: called; counted in the summary's ``not_attempted``), or waited for (up
#: to ``connect_timeout``).
Offline = Literal["report", "skip", "wait"]

#: ``contract=...``: the MQTT contract the devices speak; None = the gateway's default.
Contract = Optional[Literal["native", "seed"]]


@dataclass(frozen=True)
class Ramp:
    """Start slower and speed up, as AWS IoT Jobs' rollouts do.

    Calls start at ``start_rate`` per second; after every
    ``step_successes`` successful calls the rate is multiplied by
    ``factor``, up to the fan-out's ``rate`` (which a ramp needs). A few
    devices failing early then stop a rollout (with :class:`Abort`) before
    most devices were called.
    """

    start_rate: float
    factor: float
    step_successes: int


@dataclass(frozen=True)
class Abort:
    """Stop starting calls once, after at least ``min_results`` results,
    more than ``failure_ratio`` of them failed (any outcome but ``OK``).

    ``failure_ratio`` 0 stops at the first failure. Calls in flight then
    finish and are reported; the devices left are counted in the summary's
    ``not_attempted`` as ``ABORTED``.
    """

    failure_ratio: float
    min_results: int


@dataclass(frozen=True)
class DeviceResult:
    """How one device's call of a fan-out ended."""

    #: The device called.
    device: str
    #: ``"OK"`` (answered with a status below 400), ``"DEVICE_STATUS_{n}"``
    #: (answered with ``n`` >= 400), or the error reason ``invoke`` would
    #: raise (``"DEVICE_TIMEOUT"``, ``"DEVICE_OFFLINE"``...).
    outcome: str
    #: The device's answer, when it answered (also for ``DEVICE_STATUS_*``).
    result: Optional[Result]
    #: Why the call failed, when the device did not answer; else empty.
    message: str
    #: Correlation id of the call (UUID text), as in the gateway's logs.
    request_id: str
    #: The gateway's receipt of the call to its end.
    elapsed: timedelta

    @property
    def ok(self) -> bool:
        """Whether the outcome is ``OK``."""
        return self.outcome == OK

    @classmethod
    def _from_proto(cls, r: pb.DeviceResult) -> DeviceResult:
        return cls(
            device=r.device,
            outcome=r.outcome,
            result=Result._from_proto(r.response) if r.HasField("response") else None,
            message=r.message,
            request_id=r.request_id,
            elapsed=from_duration(r.elapsed),
        )


@dataclass(frozen=True)
class NotAttempted:
    """A device the fan-out did not call, and why."""

    device: str
    #: ``"OFFLINE"`` (skipped), ``"ABORTED"`` or ``"SHUTTING_DOWN"``.
    reason: str


@dataclass(frozen=True)
class Summary:
    """The last event of a fan-out: what it did, counted.

    The maps are plain dicts and take no part in the hash, so a summary
    stays hashable.
    """

    #: Devices selected (called or not).
    targets: int
    #: Calls made; one :class:`DeviceResult` each.
    attempted: int
    #: Results with outcome ``OK``.
    succeeded: int
    #: The other results.
    failed: int
    #: Results per outcome.
    outcomes: Dict[str, int] = field(hash=False)
    #: Median of the results' ``elapsed``; None without results.
    p50: Optional[timedelta]
    #: 99th percentile of the results' ``elapsed``; None without results.
    p99: Optional[timedelta]
    #: Devices not called, per reason (``OFFLINE``, ``ABORTED``, ``SHUTTING_DOWN``).
    not_attempted: Dict[str, int] = field(hash=False)
    #: The first 1000 devices not called, with their reasons.
    not_attempted_devices: Tuple[NotAttempted, ...]
    #: ``"COMPLETED"``, ``"ABORTED"`` or ``"SHUTTING_DOWN"``.
    ended: str
    #: The whole fan-out, first call to summary.
    elapsed: timedelta

    @property
    def completed(self) -> bool:
        """Whether every selected device had its turn (none aborted or cut by a shutdown)."""
        return self.ended == "COMPLETED"

    @classmethod
    def _from_proto(cls, s: pb.InvokeManySummary) -> Summary:
        return cls(
            targets=s.targets,
            attempted=s.attempted,
            succeeded=s.succeeded,
            failed=s.failed,
            outcomes=dict(s.outcomes),
            p50=optional_duration(s, "p50"),
            p99=optional_duration(s, "p99"),
            not_attempted=dict(s.not_attempted),
            not_attempted_devices=tuple(NotAttempted(device=n.device, reason=n.reason) for n in s.not_attempted_devices),
            ended=s.ended,
            elapsed=from_duration(s.elapsed),
        )


#: One event of a fan-out stream.
FanOutEvent = Union[DeviceResult, Summary]


def fanout_event_from_proto(ev: pb.InvokeManyEvent) -> Optional[FanOutEvent]:
    """The typed event of ``ev``; None for a kind this client does not know
    (skipped, as watch events are, so a newer gateway breaks no loop)."""
    kind = ev.WhichOneof("kind")
    if kind == "result":
        return DeviceResult._from_proto(ev.result)
    if kind == "summary":
        return Summary._from_proto(ev.summary)
    return None
