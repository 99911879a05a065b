"""Connection limits: the global in-flight limit, idle connections closed, the options sent
to gRPC core."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cugar_metrics.config import Config, ConfigError
from cugar_metrics.connection_limits import connection_options
from tests.server.auth.helpers import BASE_CONFIG, auth_server
from tests.server.auth.test_matrix import get_dashboard


def test_default_connection_options() -> None:
    assert connection_options(BASE_CONFIG) == [
        ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.max_connection_idle_ms", 300_000),
    ]
    aged = replace(BASE_CONFIG, max_connection_age=3600, max_connection_idle=0)
    assert connection_options(aged)[-2:] == [
        ("grpc.max_connection_age_ms", 3_600_000),
        ("grpc.max_connection_age_grace_ms", 30_000),
    ]
    assert ("grpc.max_connection_idle_ms", 300_000) not in connection_options(aged)


def test_open_health_watches_do_not_hold_metrics_service_slots() -> None:
    """With --max-concurrent-rpcs 1, open health Watch streams take no MetricsService slot:
    calls and health checks still succeed (the limit itself: tests/server/grpc)."""
    with auth_server(max_concurrent_rpcs=1) as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        watches = [health.Watch(health_pb2.HealthCheckRequest()) for _ in range(3)]
        for watch in watches:
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        get_dashboard(h.channel, ())
        check = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        for watch in watches:
            watch.cancel()


def test_an_idle_connection_is_closed_by_the_server() -> None:
    """--max-connection-idle 1s: after a call, the client's connection goes back to IDLE
    (the server sent GOAWAY) without the client doing anything."""
    with auth_server(max_connection_idle=1.0) as h:
        states: list[grpc.ChannelConnectivity] = []
        idle_again = threading.Event()

        def on_state(state: grpc.ChannelConnectivity) -> None:
            states.append(state)
            if grpc.ChannelConnectivity.READY in states and state in (
                grpc.ChannelConnectivity.IDLE,
                grpc.ChannelConnectivity.TRANSIENT_FAILURE,
            ):
                idle_again.set()

        h.channel.subscribe(on_state)
        get_dashboard(h.channel, ())
        t0 = time.monotonic()
        assert idle_again.wait(timeout=10), states
        assert time.monotonic() - t0 >= 0.5
        h.channel.unsubscribe(on_state)
        get_dashboard(h.channel, ())  # and it reconnects transparently


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_concurrent_rpcs": 0}, "--max-concurrent-rpcs: must be between 1 and 1000000"),
        ({"max_connection_idle": 0.5}, "--max-connection-idle: must be 0 (off) or between"),
        ({"max_connection_age": 0.0}, "--max-connection-age: must be between 1s and 30d"),
        ({"keepalive_max_ping_strikes": -1}, "--keepalive-max-ping-strikes: must be between"),
    ],
)
def test_bad_connection_limits_name_their_flag(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(**overrides)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
