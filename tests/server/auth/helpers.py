"""Keys files and in-process servers with authentication, for the auth tests."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families

from cugar_metrics import auth
from cugar_metrics.config import Config
from cugar_metrics.server import RunningServer, create_server

BASE_CONFIG = Config(
    host="127.0.0.1", grpc_port=0, metrics_port=0, replica="auth-test", shutdown_grace=1.0
)


@dataclass
class Keys:
    """A keys file with one key per role and one revoked key."""

    path: Path
    by_name: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, role: str, rate_limit: str | None = None) -> str:
        entries = auth.load_keys(str(self.path)).entries if self.path.exists() else ()
        key, new = auth.create_key(entries, name, role, rate_limit)
        auth.save_keys(str(self.path), new)
        self.by_name[name] = key
        return key

    def revoke(self, name: str) -> None:
        count, entries = auth.revoke(auth.load_keys(str(self.path)).entries, name=name)
        assert count >= 1
        auth.save_keys(str(self.path), entries)


def make_keys(directory: Path) -> Keys:
    keys = Keys(directory / "keys.json")
    keys.add("rec-agent", "recorder")
    keys.add("read-agent", "reader")
    keys.add("admin-agent", "admin")
    keys.add("gone-agent", "recorder")
    keys.revoke("gone-agent")
    return keys


@dataclass
class Handle:
    running: RunningServer
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.grpc_port}"

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.running.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text: str = r.read().decode()
        return text

    def call_in_loop(self, fn: Callable[[], Any]) -> Any:
        """Runs `fn` on the server's event loop (where the keys store lives)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=5)


@contextmanager
def auth_server(clock: Callable[[], float] | None = None, **overrides: Any) -> Iterator[Handle]:
    """A real server on free ports in this process, configured by `overrides`."""
    config = replace(BASE_CONFIG, **overrides)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    coro = create_server(config) if clock is None else create_server(config, clock)
    future: Future[RunningServer] = asyncio.run_coroutine_threadsafe(coro, loop)
    running = future.result(timeout=10)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}")
    try:
        yield Handle(running, loop, channel)
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(running.stop(0, 0), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def bearer(key: str | None) -> Sequence[tuple[str, str]]:
    return () if key is None else (("authorization", f"Bearer {key}"),)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo detail of a failed call (fails the test if there is none)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


def retry_delay(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError(f"no RetryInfo in {status}")


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None if absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None
