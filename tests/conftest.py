"""Shared fixtures: execution builders, and an in-process server on port 0."""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics import model
from cugar_metrics.config import Config
from cugar_metrics.server import RunningServer, create_server

# The helpers' module paths before tests/ was grouped by subject, still imported by the Python
# client's tests and the conformance suite: each old name is the moved module itself. Remove an
# entry once nothing imports its old name.
_MOVED_MODULES = {
    "tests.serverproc": "tests.support.serverproc",
    "tests.hardening.tls.certs": "tests.support.certs",
    "tests.hardening.auth.helpers": "tests.server.auth.helpers",
}
for _old, _new in _MOVED_MODULES.items():
    sys.modules.setdefault(_old, importlib.import_module(_new))


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def pb_execution(execution_id: str = "e-1", **overrides: Any) -> pb.Execution:
    """A valid execution message; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "execution_id": execution_id,
        "profile": "sales_rep",
        "outcome": pb.OUTCOME_SUCCESS,
        "duration": dur(1.5),
        "steps": 3,
        "budget": pb.Budget(spent=2, limit=10),
        "approvals": [
            pb.Approval(
                decision=pb.APPROVAL_DECISION_APPROVED,
                wait=dur(30),
                operation=pb.APPROVAL_OPERATION_EXECUTE,
            )
        ],
        "tool_calls": [
            pb.ToolCall(
                tool="search_accounts",
                domain="territory",
                status=pb.TOOL_CALL_STATUS_SUCCESS,
                duration=dur(0.2),
            ),
            pb.ToolCall(
                tool="score_lead",
                domain="qualification",
                status=pb.TOOL_CALL_STATUS_ERROR,
                duration=dur(0.1),
                error_type="timeout",
            ),
        ],
    }
    fields.update(overrides)
    return pb.Execution(**{k: v for k, v in fields.items() if v is not None})


BASE = model.Execution(
    execution_id="x",
    profile="sales_rep",
    outcome="success",
    error_type="",
    duration=1.0,
    steps=2,
    budget=None,
    approvals=(),
    tool_calls=(),
)


def execution(execution_id: str, **overrides: Any) -> model.Execution:
    """A domain-model execution for aggregator tests."""
    return BASE._replace(execution_id=execution_id, **overrides)


@dataclass
class ServerHandle:
    running: RunningServer
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    stub: pb_grpc.MetricsServiceStub

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.running.metrics_port}/metrics"


def start_server(
    config: Config,
) -> tuple[RunningServer, asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    future: Future[RunningServer] = asyncio.run_coroutine_threadsafe(create_server(config), loop)
    return future.result(timeout=10), loop, thread


@pytest.fixture
def server_config() -> Config:
    return Config(
        host="127.0.0.1", grpc_port=0, metrics_port=0, replica="test-replica", shutdown_grace=1.0
    )


@pytest.fixture
def server(server_config: Config) -> Iterator[ServerHandle]:
    """A real server on free ports in this process, and a stub connected to it."""
    running, loop, thread = start_server(server_config)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}")
    try:
        yield ServerHandle(running, loop, channel, pb_grpc.MetricsServiceStub(channel))
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(running.stop(0, 0), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
