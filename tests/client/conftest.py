"""Fixtures of the Python client tests (the real server comes from tests/conftest.py)."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def unreachable_target() -> str:
    """host:port where nothing listens: a free port, picked by the OS and released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"
