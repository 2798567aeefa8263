"""Stubs generated from proto/thingcall/v1/gateway.proto (see generate.sh).

They live inside the ``thingcall`` package so their imports
(``from thingcall.v1 import gateway_pb2``) never resolve to another
project's modules. Prefer the typed API in :mod:`thingcall`; these are for
what it does not wrap yet.
"""
