"""Certificates made once per test session, and in-process servers started with TLS options."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cugar_metrics.config import Config
from cugar_metrics.server import RunningServer
from tests.conftest import start_server
from tests.hardening.tls.certs import CA, Leaf, serial_of


@dataclass(frozen=True)
class Pki:
    server_ca: CA  # signs server certificates
    client_ca: CA  # signs client certificates; the server's --tls-client-ca
    other_ca: CA  # trusted by nobody
    client: Leaf  # signed by client_ca
    stranger: Leaf  # a client certificate signed by other_ca


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    server_ca = CA(directory, "server-ca")
    client_ca = CA(directory, "client-ca")
    other_ca = CA(directory, "other-ca")
    return Pki(
        server_ca,
        client_ca,
        other_ca,
        client_ca.issue("agent", "agent-1", server=False),
        other_ca.issue("stranger", "agent-2", server=False),
    )


@pytest.fixture
def server_cert(pki: Pki, tmp_path: Path) -> Leaf:
    """A server certificate of this test alone (rotation tests replace its files)."""
    return pki.server_ca.issue("server", "localhost", server=True, directory=tmp_path)


@contextmanager
def tls_server(**options: Any) -> Iterator[RunningServer]:
    """An in-process server on free ports with these Config options."""
    config = Config(
        host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        replica="tls-test",
        shutdown_grace=1.0,
        **options,
    )
    running, loop, thread = start_server(config)
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0, 0), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def peer_serial(port: int, ca: CA, client: Leaf | None = None, alpn: str | None = "h2") -> int:
    """Completes a TLS handshake with 127.0.0.1:`port` and returns the serial number of the
    certificate the server presented."""
    context = ssl.create_default_context(cafile=str(ca.cert))
    if alpn:
        context.set_alpn_protocols([alpn])
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return serial_of(der)
