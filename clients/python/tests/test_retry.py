"""Retries on UNAVAILABLE come from the channel's service config, and only on UNAVAILABLE.

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

    def RecordExecution(self, request: Any, context: Any) -> Any:
        self.attempts += 1
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


def test_channel_options_carry_the_retry_policy_and_keepalive() -> None:
    """The service config retries UNAVAILABLE on every method and balances round robin."""
    options = dict(channel_options())
    config = json.loads(str(options["grpc.service_config"]))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": "cugar.metrics.v1.MetricsService"}]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["retryPolicy"]["maxAttempts"] == 5
    assert options["grpc.keepalive_time_ms"] == 60_000


def test_a_single_attempt_turns_retries_off(flaky: tuple[FlakyService, str]) -> None:
    """max_attempts=1 is a valid client: one attempt, UNAVAILABLE reaches the caller."""
    service, target = flaky
    service.failures = 1
    service.code = grpc.StatusCode.UNAVAILABLE
    with Client(target, max_attempts=1) as client, pytest.raises(CugarMetricsError) as caught:
        client.record(Execution("p", "success", 1.0))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert service.attempts == 1
