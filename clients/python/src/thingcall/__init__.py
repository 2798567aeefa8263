"""thingcall: call methods on IoT devices synchronously, through a thingcall gateway.

>>> import thingcall
>>> with thingcall.Client("127.0.0.1:8080") as c:
...     c.invoke("demo-1", "echo", "hi").payload
b'hi'

:class:`Client` blocks; :class:`AsyncClient` is the same on asyncio.
Failures raise a :class:`ThingcallError` subclass per gateway reason
(:class:`DeviceOffline`, :class:`DeviceTimeout`, ...). ``invoke_many``
runs one method on many devices and streams a :class:`DeviceResult` per
device, then a :class:`Summary`.
"""

from thingcall._connect import Tls
from thingcall.aio import AsyncClient, AsyncFanOut, AsyncWatch
from thingcall.client import DEFAULT_TARGET, Client, FanOut, Watch
from thingcall.errors import (
    BrokerUnavailable,
    DeviceDisconnected,
    DeviceNotFound,
    DeviceOffline,
    DeviceTimeout,
    InvalidArgument,
    MethodNotSupported,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    ShuttingDown,
    ThingcallError,
    Unauthenticated,
    Unavailable,
)
from thingcall.fanout import Abort, DeviceResult, FanOutEvent, NotAttempted, Ramp, Summary
from thingcall.types import (
    Closing,
    Device,
    DeviceMessage,
    Event,
    Invocation,
    Lagged,
    Presence,
    Result,
    Synced,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TARGET",
    "Abort",
    "AsyncClient",
    "AsyncFanOut",
    "AsyncWatch",
    "BrokerUnavailable",
    "Client",
    "Closing",
    "Device",
    "DeviceDisconnected",
    "DeviceMessage",
    "DeviceNotFound",
    "DeviceOffline",
    "DeviceResult",
    "DeviceTimeout",
    "Event",
    "FanOut",
    "FanOutEvent",
    "InvalidArgument",
    "Invocation",
    "Lagged",
    "MethodNotSupported",
    "NotAttempted",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "Presence",
    "Ramp",
    "Result",
    "ShuttingDown",
    "Summary",
    "Synced",
    "ThingcallError",
    "Tls",
    "Unauthenticated",
    "Unavailable",
    "Watch",
]
