"""Channel options shared by the sync and asyncio clients."""

from __future__ import annotations

import json
from typing import Final

from ._spec import (
    BACKOFF_MULTIPLIER,
    INITIAL_BACKOFF,
    INITIAL_RECONNECT_BACKOFF,
    LOAD_BALANCING_POLICY,
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_RECONNECT_BACKOFF,
    RETRYABLE_CODES,
    seconds_text,
)

SERVICE_NAME: Final = "cugar.metrics.v1.MetricsService"

# MAX_ATTEMPTS: attempts per RPC, the first one included, when the server answers UNAVAILABLE
# (starting, draining, or unreachable). The Record RPCs are idempotent by ``execution_id`` and
# GetDashboard only reads, so every method of the service is safe to retry.
__all__ = ["MAX_ATTEMPTS", "SERVICE_NAME", "channel_options", "service_config"]


def service_config(*, max_attempts: int = MAX_ATTEMPTS) -> str:
    """The gRPC service config: per-call round-robin balancing and retries on UNAVAILABLE.

    Round robin spreads calls over every address the name resolves to (a headless
    Kubernetes Service), which is how the service scales out. Retries back off
    exponentially (``clients/spec.yaml``: from 0.1 s, times 2, to at most 2 s), with jitter
    applied by gRPC; the call's deadline bounds them all.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    method: dict[str, object] = {"name": [{"service": SERVICE_NAME}]}
    if max_attempts > 1:  # gRPC refuses a retry policy of one attempt: none means no retry
        method["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": seconds_text(INITIAL_BACKOFF),
            "maxBackoff": seconds_text(MAX_BACKOFF),
            "backoffMultiplier": BACKOFF_MULTIPLIER,
            "retryableStatusCodes": list(RETRYABLE_CODES),
        }
    config = {
        "loadBalancingConfig": [{LOAD_BALANCING_POLICY: {}}],
        "methodConfig": [method],
    }
    return json.dumps(config, separators=(",", ":"))


def channel_options(
    *, max_attempts: int = MAX_ATTEMPTS, extra: dict[str, int | str] | None = None
) -> list[tuple[str, int | str]]:
    """Options for ``grpc.insecure_channel`` / ``grpc.aio.insecure_channel``.

    Keepalive pings only while calls are in flight and no more often than once a minute, so a
    server with default enforcement never answers with GOAWAY ``too_many_pings``.
    """
    options: dict[str, int | str] = {
        "grpc.service_config": service_config(max_attempts=max_attempts),
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
