"""Channel options shared by the sync and asyncio clients."""

from __future__ import annotations

import json
from typing import Final

from ._spec import (
    INITIAL_RECONNECT_BACKOFF,
    LOAD_BALANCING_POLICY,
    MAX_ATTEMPTS,
    MAX_RECONNECT_BACKOFF,
)

SERVICE_NAME: Final = "cugar.metrics.v1.MetricsService"

__all__ = ["MAX_ATTEMPTS", "SERVICE_NAME", "channel_options", "service_config"]


def service_config() -> str:
    """The gRPC service config: per-call round-robin balancing.

    Round robin spreads calls over every address the name resolves to (a headless
    Kubernetes Service), which is how the service scales out. Retries are the client's own
    (``CallAttempts``; the recorder keeps and re-sends its batches), since a gRPC retry policy
    cannot give each attempt its own deadline.
    """
    config: dict[str, object] = {"loadBalancingConfig": [{LOAD_BALANCING_POLICY: {}}]}
    return json.dumps(config, separators=(",", ":"))


def channel_options(*, extra: dict[str, int | str] | None = None) -> list[tuple[str, int | str]]:
    """Options for ``grpc.insecure_channel`` / ``grpc.aio.insecure_channel``.

    Keepalive pings only while calls are in flight and no more often than once a minute, so a
    server with default enforcement never answers with GOAWAY ``too_many_pings``.
    """
    options: dict[str, int | str] = {
        "grpc.service_config": service_config(),
        "grpc.enable_retries": 1,
        "grpc.keepalive_time_ms": 60_000,
        "grpc.keepalive_timeout_ms": 20_000,
        "grpc.keepalive_permit_without_calls": 0,
        # Reconnect quickly after a server restart; gRPC's default starts at 1 s.
        "grpc.initial_reconnect_backoff_ms": round(INITIAL_RECONNECT_BACKOFF * 1000),
        "grpc.max_reconnect_backoff_ms": round(MAX_RECONNECT_BACKOFF * 1000),
        "grpc.primary_user_agent": "cugar-metrics-client-python/0.1.0",
    }
    if extra:
        options.update(extra)
    return list(options.items())
