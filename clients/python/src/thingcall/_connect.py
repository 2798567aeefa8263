"""How a client reaches the gateway: address, TLS and the caller's token.

Shared by the sync and asyncio clients so both accept exactly the same
``target``, ``token`` and ``tls`` arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import grpc
import grpc.aio

#: A PEM given as a path to a file or as its bytes.
Pem = Union[str, "os.PathLike[str]", bytes]

# Replies may be larger than requests (the gateway caps request payloads,
# a device's answer is capped by the broker): allow up to 64 MiB.
_CHANNEL_OPTIONS: List[Tuple[str, int]] = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


@dataclass(frozen=True)
class Tls:
    """TLS to the gateway (``--tls-cert``/``--tls-key``), optionally mutual.

    Each PEM is a file path or the PEM's bytes. Without ``ca_cert`` the
    system's root certificates are trusted. ``client_cert`` and
    ``client_key`` (both or neither) present a client certificate, which a
    gateway with ``--tls-client-ca`` maps to the subject ``cert:NAME``.
    ``server_name`` overrides the name checked in the gateway's
    certificate (when connecting by IP to a certificate issued for a name).
    """

    ca_cert: Optional[Pem] = None
    client_cert: Optional[Pem] = None
    client_key: Optional[Pem] = None
    server_name: Optional[str] = None

    def credentials(self) -> grpc.ChannelCredentials:
        """The grpc channel credentials these options describe."""
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("Tls: client_cert and client_key go together")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_cert),
            private_key=_read(self.client_key),
            certificate_chain=_read(self.client_cert),
        )


#: What ``tls=`` accepts: None/False for plaintext, True for TLS with the
#: system's roots, or a :class:`Tls`.
TlsArg = Union[None, bool, Tls]


@dataclass(frozen=True)
class Connection:
    """A parsed client configuration: where to connect and how."""

    address: str
    tls: Optional[Tls]
    #: gRPC metadata sent with every call (the token), or None.
    metadata: Optional[Tuple[Tuple[str, str], ...]]

    def channel(self) -> grpc.Channel:
        """A blocking-API channel to the gateway."""
        options = self._options()
        if self.tls is None:
            return grpc.insecure_channel(self.address, options=options)
        return grpc.secure_channel(self.address, self.tls.credentials(), options=options)

    def aio_channel(self) -> grpc.aio.Channel:
        """An asyncio channel to the gateway."""
        options = self._options()
        if self.tls is None:
            return grpc.aio.insecure_channel(self.address, options=options)
        return grpc.aio.secure_channel(self.address, self.tls.credentials(), options=options)

    def _options(self) -> List[Tuple[str, object]]:
        options: List[Tuple[str, object]] = list(_CHANNEL_OPTIONS)
        if self.tls is not None and self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return options


def connection(target: str, token: Optional[str], tls: TlsArg) -> Connection:
    """Parses the client arguments, refusing contradictions up front.

    ``target`` is ``host:port``, or a URL as the CLI takes it:
    ``http://host:port`` (plaintext) or ``https://host:port`` (TLS, the
    system's roots unless ``tls`` says otherwise). The token goes in plain
    metadata, not call credentials: grpc refuses call credentials on
    insecure channels, and the quick-start gateway is plaintext.
    """
    address = target
    scheme_tls: Optional[bool] = None
    for scheme, is_tls in (("http://", False), ("https://", True)):
        if target.startswith(scheme):
            address, scheme_tls = target[len(scheme):].rstrip("/"), is_tls
    if not address or "/" in address:
        raise ValueError(f"target must be host:port or http(s)://host:port, not {target!r}")
    if scheme_tls is False and tls not in (None, False):
        raise ValueError(f"target {target!r} says plaintext but tls options were given")
    if tls is True or (tls is None and scheme_tls):
        options: Optional[Tls] = Tls()
    elif isinstance(tls, Tls):
        options = tls
    elif tls in (None, False):
        options = None
    else:
        raise TypeError(f"tls must be None, a bool or thingcall.Tls, not {type(tls).__name__}")
    metadata = None
    if token is not None:
        if not token or any(c in token for c in "\r\n"):
            raise ValueError("token must be non-empty and on one line")
        metadata = (("authorization", f"Bearer {token}"),)
    return Connection(address=address, tls=options, metadata=metadata)


def _read(pem: Optional[Pem]) -> Optional[bytes]:
    """The PEM's bytes: given as bytes, or read from the path."""
    if pem is None or isinstance(pem, bytes):
        return pem
    with open(pem, "rb") as f:
        return f.read()
