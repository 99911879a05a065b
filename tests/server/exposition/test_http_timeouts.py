"""The metrics port does not let an idle or slow client hold a thread forever."""

from __future__ import annotations

import socket
import time

import pytest

from cugar_metrics import server as server_module
from tests.conftest import ServerHandle


def test_the_metrics_port_has_a_read_timeout_by_default() -> None:
    assert server_module._QuietHandler.timeout == server_module.HTTP_READ_TIMEOUT_SECONDS == 10


def test_a_slow_request_is_dropped_after_the_read_timeout(
    server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the read timeout the server would wait for the rest of the headers forever and
    `recv` would fail after its own generous 60 s; with it the server closes the connection,
    and not before the timeout (a lower bound only the timeout produces)."""
    monkeypatch.setattr(server_module._QuietHandler, "timeout", 0.5)  # shorten the test
    with socket.create_connection(("127.0.0.1", server.running.metrics_port), timeout=60) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        assert s.recv(1024) == b""  # the server closed the connection
        assert time.monotonic() - t0 >= 0.5
