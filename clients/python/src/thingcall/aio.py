"""The asyncio client: :class:`AsyncClient` and its streams, :class:`AsyncWatch` and :class:`AsyncFanOut`.

The same shape as :class:`thingcall.Client`, on ``grpc.aio``: every call
is a coroutine, ``devices``, ``watch`` and ``invoke_many`` are async
iterators.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, AsyncIterator, Callable, Generic, Iterable, Mapping, Optional, Type, TypeVar

import grpc
import grpc.aio

from thingcall._connect import TlsArg, connection
from thingcall._requests import Payload, invoke_many_request, invoke_request, query_timeout, validate_id
from thingcall._time import Seconds
from thingcall.client import DEFAULT_TARGET
from thingcall.errors import from_rpc_error
from thingcall.fanout import Abort, Contract, FanOutEvent, Offline, Ramp, fanout_event_from_proto
from thingcall.types import Device, Event, Result, event_from_proto
from thingcall.v1 import gateway_pb2 as pb
from thingcall.v1.gateway_pb2_grpc import DeviceGatewayStub

T = TypeVar("T")
S = TypeVar("S", bound="_AsyncStream[Any]")


class AsyncClient:
    """An asyncio client of one gateway, over one ``grpc.aio`` channel.

    Arguments as :class:`thingcall.Client`. Create it inside the event loop
    that uses it (grpc.aio channels belong to one loop); use ``async
    with``, or ``await client.close()``.
    """

    def __init__(self, target: str = DEFAULT_TARGET, token: Optional[str] = None, tls: TlsArg = None) -> None:
        self._conn = connection(target, token, tls)
        self._channel = self._conn.aio_channel()
        self._stub = DeviceGatewayStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls and watches still running are cancelled."""
        await self._channel.close()

    async def invoke(
        self,
        target: str,
        method: str,
        payload: Payload = b"",
        *,
        timeout: Seconds = 5.0,
        connect_timeout: Optional[Seconds] = None,
        idempotency_key: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        content_type: Optional[str] = None,
    ) -> Result:
        """Runs ``method`` on device ``target``; as :meth:`thingcall.Client.invoke`.

        Cancelling the awaiting task cancels the call (a keyed call still
        completes at the gateway, so a retry can pick up its answer).
        """
        call = invoke_request(
            target,
            method,
            payload,
            timeout=timeout,
            connect_timeout=connect_timeout,
            idempotency_key=idempotency_key,
            metadata=metadata,
            content_type=content_type,
        )
        try:
            reply = await self._stub.Invoke(call.request, timeout=call.deadline, metadata=self._conn.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Result._from_proto(reply)

    async def device(self, id: str, *, timeout: Seconds = 5.0) -> Device:
        """One device's presence as the gateway last saw it (``DeviceNotFound`` if never)."""
        req = pb.GetDeviceRequest(target=validate_id("device id", id))
        try:
            d = await self._stub.GetDevice(req, timeout=query_timeout(timeout), metadata=self._conn.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Device._from_proto(d)

    async def devices(self, pattern: str = "*", *, page_size: int = 0, timeout: Seconds = 5.0) -> AsyncIterator[Device]:
        """Every device matching ``pattern``, in id order, paging as iteration advances;
        as :meth:`thingcall.Client.devices`."""
        token = ""
        while True:
            req = pb.ListDevicesRequest(target=pattern, page_size=page_size, page_token=token)
            try:
                page = await self._stub.ListDevices(req, timeout=query_timeout(timeout), metadata=self._conn.metadata)
            except grpc.RpcError as e:
                raise from_rpc_error(e) from None
            for d in page.devices:
                yield Device._from_proto(d)
            token = page.next_page_token
            if not token:
                return

    def invoke_many(
        self,
        method: str,
        targets: Optional[Iterable[str]] = None,
        *,
        pattern: Optional[str] = None,
        payload: Payload = b"",
        timeout: Optional[Seconds] = None,
        connect_timeout: Optional[Seconds] = None,
        offline: Offline = "report",
        max_concurrency: int = 0,
        rate: float = 0.0,
        ramp: Optional[Ramp] = None,
        abort: Optional[Abort] = None,
        idempotency_key: Optional[str] = None,
        content_type: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        contract: Contract = None,
    ) -> AsyncFanOut:
        """Runs ``method`` on many devices; an async stream of their results,
        then a summary. Arguments and events as :meth:`thingcall.Client.invoke_many`.

        ``async for`` over it; ``await fanout.aclose()`` (or leaving its
        ``async with`` block) cancels it, and the gateway starts no more of
        its calls.
        """
        req = invoke_many_request(
            method,
            targets,
            pattern=pattern,
            payload=payload,
            timeout=timeout,
            connect_timeout=connect_timeout,
            offline=offline,
            max_concurrency=max_concurrency,
            rate=rate,
            ramp=ramp,
            abort=abort,
            idempotency_key=idempotency_key,
            content_type=content_type,
            metadata=metadata,
            contract=contract,
        )
        return AsyncFanOut(self._stub.InvokeMany(req, metadata=self._conn.metadata))

    def watch(self, pattern: str = "*", *, include_events: bool = False) -> AsyncWatch:
        """An async stream of presence changes and call outcomes; as
        :meth:`thingcall.Client.watch`. ``async for`` over it; ``await
        watch.aclose()`` (or leaving its ``async with`` block) cancels it."""
        req = pb.WatchDeviceRequest(target=pattern, include_events=include_events)
        return AsyncWatch(self._stub.WatchDevice(req, metadata=self._conn.metadata))


class _AsyncStream(AsyncIterator[T], Generic[T]):
    """A server stream of typed events on grpc.aio, cancellable: what
    :class:`AsyncWatch` and :class:`AsyncFanOut` share. Event kinds this
    client does not know are skipped."""

    def __init__(self, call: grpc.aio.UnaryStreamCall, convert: Callable[[Any], Optional[T]]) -> None:
        self._call = call
        self._convert = convert
        self._closed = False

    def __aiter__(self: S) -> S:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._closed:
                raise StopAsyncIteration
            try:
                ev = await self._call.read()
            except grpc.RpcError as e:
                if self._closed and e.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                    raise StopAsyncIteration from None
                raise from_rpc_error(e) from None
            except grpc.aio.UsageError:
                raise StopAsyncIteration from None
            if ev is grpc.aio.EOF:
                raise StopAsyncIteration
            typed = self._convert(ev)
            if typed is not None:
                return typed

    async def aclose(self) -> None:
        """Cancels the stream."""
        self._closed = True
        self._call.cancel()

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()


class AsyncWatch(_AsyncStream[Event]):
    """An open watch stream: an async iterator of typed events, cancellable."""

    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:
        super().__init__(call, event_from_proto)

    async def aclose(self) -> None:
        """Cancels the stream; the gateway drops its watcher at once."""
        await super().aclose()


class AsyncFanOut(_AsyncStream[FanOutEvent]):
    """An open InvokeMany stream on asyncio: results, then one summary;
    as :class:`thingcall.FanOut`."""

    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:
        super().__init__(call, fanout_event_from_proto)

    async def aclose(self) -> None:
        """Cancels the stream: the gateway starts no more of its calls (those
        in flight finish unreported)."""
        await super().aclose()
