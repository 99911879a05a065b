"""In-process servers started with TLS options; the certificates come from tests.support.certs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cugar_metrics.config import Config
from cugar_metrics.server import RunningServer
from tests.conftest import start_server
from tests.support.certs import pki, server_cert  # noqa: F401  (fixtures of this directory)


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
