"""thingcall: call methods on IoT devices synchronously, through a thingcall gateway.

>>> import thingcall
>>> with thingcall.Client("127.0.0.1:8080") as c:
...     c.invoke("demo-1", "echo", "hi").payload
b'hi'

:class:`Client` blocks; :class:`AsyncClient` is the same on asyncio.
Failures raise a :class:`ThingcallError` subclass per gateway reason
(:class:`DeviceOffline`, :class:`DeviceTimeout`, ...).
"""

from thingcall._connect import Tls
from thingcall.aio import AsyncClient, AsyncWatch
from thingcall.client import DEFAULT_TARGET, Client, Watch
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
    "AsyncClient",
    "AsyncWatch",
    "BrokerUnavailable",
    "Client",
    "Closing",
    "Device",
    "DeviceDisconnected",
    "DeviceMessage",
    "DeviceNotFound",
    "DeviceOffline",
    "DeviceTimeout",
    "Event",
    "InvalidArgument",
    "Invocation",
    "Lagged",
    "MethodNotSupported",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "Presence",
    "Result",
    "ShuttingDown",
    "Synced",
    "ThingcallError",
    "Tls",
    "Unauthenticated",
    "Unavailable",
    "Watch",
]
