"""The blocking client: :class:`Client` and its streams, :class:`Watch` and :class:`FanOut`."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Callable, Generic, Iterable, Iterator, Mapping, Optional, Type, TypeVar

import grpc

from thingcall._connect import TlsArg, connection
from thingcall._requests import Payload, invoke_many_request, invoke_request, query_timeout, validate_id
from thingcall._time import Seconds
from thingcall.errors import from_rpc_error
from thingcall.fanout import Abort, Contract, FanOutEvent, Offline, Ramp, fanout_event_from_proto
from thingcall.types import Device, Event, Result, event_from_proto
from thingcall.v1 import gateway_pb2 as pb
from thingcall.v1.gateway_pb2_grpc import DeviceGatewayStub

#: The quick-start gateway's address.
DEFAULT_TARGET = "127.0.0.1:8080"

T = TypeVar("T")
S = TypeVar("S", bound="_Stream[Any]")


class Client:
    """A blocking client of one gateway, over one gRPC channel.

    ``target`` is ``host:port`` (or ``http://``/``https://host:port``);
    ``token`` (an API key or a JWT) is sent as ``authorization: Bearer
    TOKEN`` on every call; ``tls`` is None for plaintext, True for TLS with
    the system's roots, or a :class:`thingcall.Tls`. The channel connects
    lazily, so constructing a client never blocks or fails on the network.
    Use it as a context manager, or call :meth:`close`. Safe to share
    between threads.
    """

    def __init__(self, target: str = DEFAULT_TARGET, token: Optional[str] = None, tls: TlsArg = None) -> None:
        self._conn = connection(target, token, tls)
        self._channel = self._conn.channel()
        self._stub = DeviceGatewayStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls and watches still running are cancelled."""
        self._channel.close()

    def invoke(
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
        """Runs ``method`` on device ``target`` and returns its answer.

        ``payload`` is bytes, or text sent as UTF-8. ``timeout`` (seconds or
        timedelta) bounds the whole call, including up to
        ``connect_timeout`` spent waiting for an offline device to come
        online (without it an offline device fails at once).
        ``idempotency_key`` makes retries run the method at most once;
        ``metadata`` reaches the device as MQTT user properties;
        ``content_type`` is the payload's MIME type.

        Raises a :class:`thingcall.ThingcallError` subclass naming the
        reason (``DeviceOffline``, ``DeviceTimeout``...); bad arguments raise
        ``InvalidArgument`` before anything is sent.
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
            reply = self._stub.Invoke(call.request, timeout=call.deadline, metadata=self._conn.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Result._from_proto(reply)

    def device(self, id: str, *, timeout: Seconds = 5.0) -> Device:
        """One device's presence as the gateway last saw it (``DeviceNotFound`` if never)."""
        req = pb.GetDeviceRequest(target=validate_id("device id", id))
        try:
            return Device._from_proto(self._stub.GetDevice(req, timeout=query_timeout(timeout), metadata=self._conn.metadata))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def devices(self, pattern: str = "*", *, page_size: int = 0, timeout: Seconds = 5.0) -> Iterator[Device]:
        """Every device matching ``pattern`` (an id or a glob such as ``pump-*``), in id order.

        Pages through ``ListDevices`` as the iterator advances, ``page_size``
        devices per request (0 = the gateway's default, 1000); ``timeout``
        bounds each page's request.
        """
        token = ""
        while True:
            req = pb.ListDevicesRequest(target=pattern, page_size=page_size, page_token=token)
            try:
                page = self._stub.ListDevices(req, timeout=query_timeout(timeout), metadata=self._conn.metadata)
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
    ) -> FanOut:
        """Runs ``method`` on many devices; a stream of their results, then a summary.

        The devices are ``targets`` (ids, each once) or ``pattern`` (a glob
        over the devices the gateway knows, in id order), exactly one of
        them. Each device's call is the ``invoke`` it would get: ``payload``,
        ``timeout`` (each call's; None = the gateway's default, 10 s),
        ``content_type``, ``metadata`` and ``contract`` as there; an
        ``idempotency_key`` gives device ``d`` the key ``{key}:{d}``, so a
        retried fan-out runs no device twice. ``offline`` is what a device
        not online gets (``"report"``, ``"skip"``, or ``"wait"`` up to
        ``connect_timeout``). ``max_concurrency`` bounds the calls in
        flight (0 = 16), ``rate`` the calls started per second (0 = no
        limit), ``ramp`` starts slower, and ``abort`` stops starting calls
        when too many fail.

        The gateway sends a :class:`thingcall.DeviceResult` per device as
        its call ends, then one :class:`thingcall.Summary`; the stream ends
        after it. Malformed ids and options raise ``InvalidArgument`` here,
        before anything is sent; a fan-out the gateway refuses (a device
        listed twice, a negative rate...) raises it from the first
        iteration, and nothing was called. :meth:`FanOut.close` (or leaving
        its ``with`` block) cancels the stream: the gateway starts no more
        calls of it.
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
        return FanOut(self._stub.InvokeMany(req, metadata=self._conn.metadata))

    def watch(self, pattern: str = "*", *, include_events: bool = False) -> Watch:
        """A stream of presence changes and call outcomes of matching devices.

        First the current presence of every match, then a :class:`Synced`,
        then changes as they happen (and device events with
        ``include_events``). Iterate it; :meth:`Watch.close` (or leaving its
        ``with`` block) cancels the stream.
        """
        req = pb.WatchDeviceRequest(target=pattern, include_events=include_events)
        return Watch(self._stub.WatchDevice(req, metadata=self._conn.metadata))


class _Stream(Iterator[T], Generic[T]):
    """A server stream of typed events, cancellable: what :class:`Watch`
    and :class:`FanOut` share.

    Iteration ends after :meth:`close` or when the gateway ends the stream;
    a failure raises a :class:`thingcall.ThingcallError`. Event kinds this
    client does not know are skipped.
    """

    def __init__(self, call: grpc.Call, convert: Callable[[Any], Optional[T]]) -> None:
        self._call = call
        self._convert = convert
        self._closed = False

    def __iter__(self: S) -> S:
        return self

    def __next__(self) -> T:
        while True:
            try:
                ev = next(self._call)  # type: ignore[call-overload]
            except grpc.RpcError as e:
                if self._closed and e.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                    raise StopIteration from None
                raise from_rpc_error(e) from None
            typed = self._convert(ev)
            if typed is not None:
                return typed

    def close(self) -> None:
        """Cancels the stream."""
        self._closed = True
        self._call.cancel()

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class Watch(_Stream[Event]):
    """An open watch stream: an iterator of typed events, cancellable.

    Iteration ends after :meth:`close` or when the gateway ends the stream
    (after a :class:`Closing` event); a failure raises a
    :class:`thingcall.ThingcallError`.
    """

    def __init__(self, call: grpc.Call) -> None:
        super().__init__(call, event_from_proto)

    def close(self) -> None:
        """Cancels the stream; the gateway drops its watcher at once."""
        super().close()


class FanOut(_Stream[FanOutEvent]):
    """An open InvokeMany stream: a :class:`thingcall.DeviceResult` per
    device as its call ends, then one :class:`thingcall.Summary`.

    Iteration ends after the summary, or after :meth:`close`; a failure of
    the stream itself (the gateway refused the fan-out, or went away)
    raises a :class:`thingcall.ThingcallError`. A device's failure is not
    raised: it is that device's result.
    """

    def __init__(self, call: grpc.Call) -> None:
        super().__init__(call, fanout_event_from_proto)

    def close(self) -> None:
        """Cancels the stream: the gateway starts no more of its calls (those
        in flight finish unreported)."""
        super().close()
