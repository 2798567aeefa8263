"""thingcall's errors: one exception class per gateway reason.

The gateway puts a ``google.rpc.ErrorInfo{reason, domain: "thingcall",
metadata}`` in every error's status details (the ``grpc-status-details-bin``
trailer). Callers branch on the class (``except DeviceOffline``), never on
message text; the reason string, message, metadata and request id stay
available on every instance.

What the gateway sends, per reason (server/src/api/status.rs):

- every failed ``Invoke`` that got as far as a call: metadata ``requestId``;
- ``DEVICE_OFFLINE``, ``DEVICE_NOT_FOUND``, ``DEVICE_DISCONNECTED``: ``device``;
- ``METHOD_NOT_SUPPORTED``: ``device`` and ``method``;
- ``DEVICE_TIMEOUT``: ``accepted`` (``"true"``/``"false"``);
- ``PAYLOAD_TOO_LARGE``: ``limit`` (bytes);
- ``OVERLOADED`` of one device: ``device`` and ``limit``.

``OVERLOADED`` and ``SHUTTING_DOWN`` also carry a ``google.rpc.RetryInfo``
(1 s, as the HTTP API's ``Retry-After``), read as ``retry_after``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Mapping, Optional, Type

import grpc
from google.rpc import error_details_pb2, status_pb2

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Iterable, Tuple

#: ``google.rpc.ErrorInfo.domain`` of thingcall's errors.
DOMAIN = "thingcall"

_DETAILS_KEY = "grpc-status-details-bin"


class ThingcallError(Exception):
    """Base of every error this client raises for a failed call.

    ``reason`` is the gateway's ErrorInfo reason (``"DEVICE_OFFLINE"``...),
    or None when the failure carried none (a transport failure, a proxy's
    answer). ``code`` is the gRPC status code.
    """

    def __init__(
        self,
        reason: Optional[str],
        message: str,
        request_id: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        code: Optional[grpc.StatusCode] = None,
    ) -> None:
        super().__init__(f"{reason}: {message}" if reason else message)
        #: The ErrorInfo reason, or None when there was no ErrorInfo.
        self.reason = reason
        #: The gateway's message (for people; branch on the class instead).
        self.message = message
        #: The call's correlation id when one was made (ErrorInfo ``requestId``).
        self.request_id = request_id
        #: The ErrorInfo metadata (``device``, ``method``, ``limit``...).
        self.metadata: Dict[str, str] = dict(metadata or {})
        #: The gRPC status code of the failure.
        self.code = code


class InvalidArgument(ThingcallError):
    """Malformed input: bad id, timeout or metadata. Raised by the client
    itself, before any call, for what it can check locally."""


class PayloadTooLarge(ThingcallError):
    """The payload is over the gateway's ``--max-payload``."""

    @property
    def limit(self) -> Optional[int]:
        """The gateway's payload limit in bytes, when it said."""
        return _int(self.metadata.get("limit"))


class DeviceOffline(ThingcallError):
    """The device is offline (and ``connect_timeout``, if any, passed)."""


class DeviceNotFound(ThingcallError):
    """The gateway has never seen this device."""


class MethodNotSupported(ThingcallError):
    """The device announced its methods and this is not one of them."""


class DeviceTimeout(ThingcallError):
    """No reply by the deadline."""

    @property
    def accepted(self) -> Optional[bool]:
        """Whether the device had acknowledged the call (so it may have run
        it); None when the gateway did not say."""
        v = self.metadata.get("accepted")
        return None if v is None else v == "true"


class DeviceDisconnected(ThingcallError):
    """The device went offline while the call was in flight; it may have run it."""


class BrokerUnavailable(ThingcallError):
    """The gateway has no MQTT broker connection."""


class _RetryLater(ThingcallError):
    """A refusal that means "not now": the caller may try again later."""

    #: Seconds to wait before retrying, from a ``google.rpc.RetryInfo`` in
    #: the status details; None when there was none (the gateway sends none
    #: over gRPC today).
    retry_after: Optional[float] = None


class Overloaded(_RetryLater):
    """Too many calls in flight at the gateway (or at this device)."""


class ShuttingDown(_RetryLater):
    """The gateway is draining; another replica may take the call."""


class Unauthenticated(ThingcallError):
    """No or bad credentials (token)."""


class PermissionDenied(ThingcallError):
    """The gateway's policy forbids this caller the target or method."""


class Unavailable(ThingcallError):
    """The gateway could not be reached (connection refused, TLS failure,
    a proxy's 503): a gRPC ``UNAVAILABLE`` without thingcall's ErrorInfo."""


_BY_REASON: Dict[str, Type[ThingcallError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "PAYLOAD_TOO_LARGE": PayloadTooLarge,
    "DEVICE_OFFLINE": DeviceOffline,
    "DEVICE_NOT_FOUND": DeviceNotFound,
    "METHOD_NOT_SUPPORTED": MethodNotSupported,
    "DEVICE_TIMEOUT": DeviceTimeout,
    "DEVICE_DISCONNECTED": DeviceDisconnected,
    "BROKER_UNAVAILABLE": BrokerUnavailable,
    "OVERLOADED": Overloaded,
    "SHUTTING_DOWN": ShuttingDown,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
}

# Without ErrorInfo (a proxy, the transport, grpc itself) only the code is
# known; these codes still mean one thing whoever sent them.
_BY_CODE: Dict[grpc.StatusCode, Type[ThingcallError]] = {
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


def invalid_argument(message: str) -> InvalidArgument:
    """The error the client raises for input it refuses before calling."""
    return InvalidArgument("INVALID_ARGUMENT", message, code=grpc.StatusCode.INVALID_ARGUMENT)


def from_status(
    code: grpc.StatusCode,
    message: str,
    trailers: Optional["Iterable[Tuple[str, Any]]"],
) -> ThingcallError:
    """The typed error of a failed call's code, message and trailing metadata."""
    reason, meta, retry_after = _details(trailers)
    cls = _BY_REASON.get(reason, ThingcallError) if reason else _BY_CODE.get(code, ThingcallError)
    err = cls(reason, message, meta.get("requestId"), meta, code)
    if isinstance(err, _RetryLater):
        err.retry_after = retry_after
    return err


def from_rpc_error(e: grpc.RpcError) -> ThingcallError:
    """The typed error of a ``grpc.RpcError`` (sync or ``grpc.aio``)."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    message = (e.details() if hasattr(e, "details") else None) or str(e)  # type: ignore[attr-defined]
    trailers = e.trailing_metadata() if hasattr(e, "trailing_metadata") else None  # type: ignore[attr-defined]
    return from_status(code, message, trailers)


def _details(trailers: Optional["Iterable[Tuple[str, Any]]"]) -> "Tuple[Optional[str], Dict[str, str], Optional[float]]":
    """The ErrorInfo reason and metadata, and a RetryInfo delay, from the
    ``grpc-status-details-bin`` trailer; (None, {}, None) without one."""
    raw = next((v for k, v in (trailers or ()) if k == _DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return None, {}, None
    status = status_pb2.Status()
    try:
        status.ParseFromString(raw)
    except Exception:  # a malformed trailer is no reason to hide the failure itself
        return None, {}, None
    reason: Optional[str] = None
    meta: Dict[str, str] = {}
    retry_after: Optional[float] = None
    for any_msg in status.details:
        if any_msg.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and reason is None:
            info = error_details_pb2.ErrorInfo()
            any_msg.Unpack(info)
            if info.domain == DOMAIN:
                reason, meta = info.reason, dict(info.metadata)
        elif any_msg.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_msg.Unpack(retry)
            retry_after = retry.retry_delay.ToNanoseconds() / 1e9
    return reason, meta, retry_after


def _int(v: Optional[str]) -> Optional[int]:
    try:
        return None if v is None else int(v)
    except ValueError:
        return None
