"""Decoding ``grpc-status-details-bin`` for what the live gateway cannot be
made to send: unknown reasons, a RetryInfo, another domain's ErrorInfo, a
malformed trailer. The live tests cover every reason the gateway does send."""

from __future__ import annotations

import grpc
from google.protobuf.any_pb2 import Any
from google.rpc import error_details_pb2, status_pb2

from thingcall import Overloaded, ShuttingDown, ThingcallError, Unavailable
from thingcall.errors import from_status


def trailer(*details: object) -> list:
    status = status_pb2.Status(code=14, message="m")
    for d in details:
        a = Any()
        a.Pack(d)
        status.details.append(a)
    return [("grpc-status-details-bin", status.SerializeToString())]


def info(reason: str, domain: str = "thingcall", **meta: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=meta)


def test_unknown_reason_is_a_generic_error_with_its_reason() -> None:
    e = from_status(grpc.StatusCode.UNAVAILABLE, "new", trailer(info("SOMETHING_NEW", requestId="r1")))
    assert type(e) is ThingcallError
    assert (e.reason, e.request_id, e.code) == ("SOMETHING_NEW", "r1", grpc.StatusCode.UNAVAILABLE)


def test_retry_info_becomes_retry_after() -> None:
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromMilliseconds(1500)
    e = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", trailer(info("OVERLOADED"), retry))
    assert isinstance(e, Overloaded) and e.retry_after == 1.5
    e = from_status(grpc.StatusCode.UNAVAILABLE, "bye", trailer(retry, info("SHUTTING_DOWN")))
    assert isinstance(e, ShuttingDown) and e.retry_after == 1.5


def test_other_domains_and_bad_trailers_fall_back_to_the_code() -> None:
    e = from_status(grpc.StatusCode.UNAVAILABLE, "proxy", trailer(info("DEVICE_OFFLINE", domain="envoy")))
    assert isinstance(e, Unavailable) and e.reason is None
    e = from_status(grpc.StatusCode.INTERNAL, "junk", [("grpc-status-details-bin", b"\xff\xff")])
    assert type(e) is ThingcallError and e.reason is None and e.code == grpc.StatusCode.INTERNAL
    assert type(from_status(grpc.StatusCode.INTERNAL, "none", None)) is ThingcallError
