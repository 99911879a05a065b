"""Retries on UNAVAILABLE, and only on UNAVAILABLE, each attempt with its own deadline inside
the call's (clients/spec.yaml, `call`).

These tests need a server that fails on purpose, so they run a small gRPC server whose
answers they script; everything else runs against the real server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics_client import Client, CugarMetricsError, Execution, RecordResult
from cugar_metrics_client._channel import channel_options


class FlakyService(pb_grpc.MetricsServiceServicer):  # type: ignore[misc]
    """Answers UNAVAILABLE (or another code) a set number of times, then ACCEPTED."""

    def __init__(self) -> None:
        self.failures = 0
        self.code = grpc.StatusCode.UNAVAILABLE
        self.attempts = 0
        self.remaining: list[float] = []  # each attempt's deadline, as the server sees it

    def RecordExecution(self, request: Any, context: Any) -> Any:
        self.attempts += 1
        self.remaining.append(context.time_remaining())
        if self.attempts <= self.failures:
            context.abort(self.code, "scripted failure")
        return pb.RecordExecutionResponse(result=pb.RECORD_RESULT_ACCEPTED)


@pytest.fixture
def flaky() -> Iterator[tuple[FlakyService, str]]:
    service = FlakyService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_MetricsServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield service, f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def test_unavailable_is_retried_until_it_succeeds(flaky: tuple[FlakyService, str]) -> None:
    """Two UNAVAILABLE answers, then success: the caller sees one ACCEPTED."""
    service, target = flaky
    service.failures = 2
    with Client(target) as client:
        assert client.record(Execution("p", "success", 1.0)) is RecordResult.ACCEPTED
    assert service.attempts == 3


def test_retries_stop_after_max_attempts(flaky: tuple[FlakyService, str]) -> None:
    """Past max_attempts, the caller gets UNAVAILABLE."""
    service, target = flaky
    service.failures = 10
    with Client(target, max_attempts=3) as client, pytest.raises(CugarMetricsError) as caught:
        client.record(Execution("p", "success", 1.0))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert service.attempts == 3


def test_other_codes_are_not_retried(flaky: tuple[FlakyService, str]) -> None:
    """INTERNAL is not retried: one attempt, and the code reaches the caller."""
    service, target = flaky
    service.failures = 1
    service.code = grpc.StatusCode.INTERNAL
    with Client(target) as client, pytest.raises(CugarMetricsError) as caught:
        client.record(Execution("p", "success", 1.0))
    assert caught.value.code == grpc.StatusCode.INTERNAL
    assert service.attempts == 1


def test_channel_options_balance_round_robin_and_keep_alive() -> None:
    """The service config balances round robin; retries are the client's own (a gRPC retry
    policy would give every attempt the whole call's deadline)."""
    options = dict(channel_options())
    config = json.loads(str(options["grpc.service_config"]))
    assert config == {"loadBalancingConfig": [{"round_robin": {}}]}
    assert options["grpc.keepalive_time_ms"] == 60_000


def test_each_attempt_has_its_own_deadline(flaky: tuple[FlakyService, str]) -> None:
    """Within a 10 s call, each of the three attempts reaches the server with at most the
    0.5 s attempt deadline; the last attempt never gets more than what is left of the call."""
    service, target = flaky
    service.failures = 2
    with Client(target, timeout=10.0, attempt_timeout=0.5) as client:
        assert client.record(Execution("p", "success", 1.0)) is RecordResult.ACCEPTED
    assert service.attempts == 3
    # (gRPC rounds a deadline on the wire: allow 0.1 s over, far below the call's 10 s.)
    assert all(0 < remaining <= 0.6 for remaining in service.remaining), service.remaining
    service.attempts, service.failures, service.remaining = 0, 0, []
    with Client(target, timeout=0.3) as client:  # the default attempt deadline is 5 s
        client.record(Execution("p", "success", 1.0))
    assert 0 < service.remaining[0] <= 0.4


def test_a_single_attempt_turns_retries_off(flaky: tuple[FlakyService, str]) -> None:
    """max_attempts=1 is a valid client: one attempt, UNAVAILABLE reaches the caller."""
    service, target = flaky
    service.failures = 1
    service.code = grpc.StatusCode.UNAVAILABLE
    with Client(target, max_attempts=1) as client, pytest.raises(CugarMetricsError) as caught:
        client.record(Execution("p", "success", 1.0))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert service.attempts == 1
