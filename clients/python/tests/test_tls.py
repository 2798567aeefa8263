"""TLS to the gateway: a private CA, a client certificate, and a token over TLS.

The certificates are made with openssl, as an operator would (.ci/tls-smoke.sh
does the same for the other tools).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from _procs import Gateway
from waiting import wait_online

import thingcall


@dataclass
class TlsGateway:
    """A gateway serving TLS, accepting client certificates of ``dir/ca.pem``, and one API key."""

    address: str
    dir: Path
    key: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _leaf(d: Path, name: str, cn: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("openssl is needed for the TLS tests (apt-get install openssl)")
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=py-tests CA",
             "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=d)
    _leaf(d, "server", "gateway", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    _leaf(d, "client", "py-admin", "extendedKeyUsage=clientAuth")
    key = "tc_" + secrets.token_hex(24)
    (d / "api-keys").write_text(f"py-tls sha256:{hashlib.sha256(key.encode()).hexdigest()}\n")
    gw = Gateway([
        "--tls-cert", str(d / "server.pem"), "--tls-key", str(d / "server-key.pem"),
        "--tls-client-ca", str(d / "ca.pem"), "--api-keys", str(d / "api-keys"), "--demo", "1",
    ])
    try:
        with thingcall.Client(gw.grpc, token=key, tls=thingcall.Tls(ca_cert=str(d / "ca.pem"))) as c:
            wait_online(c, ["demo-1"])
        yield TlsGateway(address=gw.grpc, dir=d, key=key)
    finally:
        gw.stop()


def test_token_over_tls(tls_gateway: TlsGateway) -> None:
    tls = thingcall.Tls(ca_cert=tls_gateway.dir / "ca.pem")
    with thingcall.Client(tls_gateway.address, token=tls_gateway.key, tls=tls) as c:
        assert c.invoke("demo-1", "echo", "secret").payload == b"secret"


def test_client_certificate_authenticates(tls_gateway: TlsGateway) -> None:
    d = tls_gateway.dir
    tls = thingcall.Tls(
        ca_cert=(d / "ca.pem").read_bytes(),
        client_cert=str(d / "client.pem"),
        client_key=str(d / "client-key.pem"),
    )
    with thingcall.Client(tls_gateway.address, tls=tls) as c:
        assert c.invoke("demo-1", "echo", "by cert").payload == b"by cert"


def test_tls_without_credentials_is_unauthenticated(tls_gateway: TlsGateway) -> None:
    with thingcall.Client(tls_gateway.address, tls=thingcall.Tls(ca_cert=tls_gateway.dir / "ca.pem")) as c:
        with pytest.raises(thingcall.Unauthenticated):
            c.invoke("demo-1", "echo")


def test_untrusted_certificate_is_unavailable(tls_gateway: TlsGateway) -> None:
    # The system roots do not know the test CA: the handshake fails.
    with thingcall.Client(tls_gateway.address, token=tls_gateway.key, tls=True) as c:
        with pytest.raises(thingcall.Unavailable):
            c.invoke("demo-1", "echo", timeout=2)


def test_async_client_over_tls(tls_gateway: TlsGateway) -> None:
    import asyncio

    async def main() -> bytes:
        tls = thingcall.Tls(ca_cert=tls_gateway.dir / "ca.pem")
        async with thingcall.AsyncClient(f"https://{tls_gateway.address}", token=tls_gateway.key, tls=tls) as c:
            return (await c.invoke("demo-1", "echo", "async tls")).payload

    assert asyncio.run(main()) == b"async tls"
