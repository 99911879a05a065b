"""Fixtures of the Python client tests: the real server in this process (the `server` and
`server_config` fixtures of tests/conftest.py), or `cugar-metrics serve` processes started
here, with a keys file and certificates.

This directory has no `__init__.py`: as a package its name, `tests`, would shadow the
repository's `tests` package (tests.support.serverproc, ...). The repository root is on the import
path through `pythonpath` in pyproject.toml.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import server, server_config
from tests.server.auth.helpers import Keys, sample
from tests.support.serverproc import ServerProcess, launch

__all__ = ["server", "server_config"]  # fixtures shared with the server's tests


@pytest.fixture
def unreachable_target() -> str:
    """host:port where nothing listens: a free port, picked by the OS and released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def silent_target() -> Iterator[str]:
    """host:port of a listening socket that accepts connections and never answers: a call
    there waits for its deadline."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class AuthServer:
    """A `cugar-metrics serve --auth-keys-file ...` process and the keys of its file."""

    process: ServerProcess
    keys: dict[str, str]

    @property
    def target(self) -> str:
        return self.process.target

    def rate_limited(self, role: str = "recorder") -> float | None:
        """cugar_rate_limited_total{role} on the server's /metrics."""
        with urllib.request.urlopen(self.process.metrics_url, timeout=5) as response:
            text = response.read().decode()
        return sample(text, "cugar_rate_limited_total", role=role)


@contextmanager
def auth_process(
    directory: Path, keys: dict[str, tuple[str, str | None]], *flags: str, name: str
) -> Iterator[AuthServer]:
    """A server process whose keys file holds `keys` (name -> (role, own rate limit)) and the
    revoked key `gone`."""
    file = Keys(directory / f"{name}.keys.json")
    for key_name, (role, limit) in keys.items():
        file.add(key_name, role, limit)
    file.add("gone", "recorder")
    file.revoke("gone")
    process = launch(directory, "--auth-keys-file", str(file.path), *flags, name=name)
    try:
        yield AuthServer(process, dict(file.by_name))
    finally:
        assert process.stop() == 0, process.output()
