"""Connection limits of the gRPC server: gRPC core channel arguments from the configuration.

- `--max-concurrent-rpcs` (grpc.aio.server's `maximum_concurrent_rpcs`): RPCs past it are
  answered RESOURCE_EXHAUSTED at once instead of queueing without bound.
- Keepalive enforcement: a client may ping no more often than `--keepalive-min-ping-interval`
  (and only while it has calls in flight unless `--keepalive-permit-without-calls`); after
  `--keepalive-max-ping-strikes` bad pings the server sends GOAWAY `too_many_pings`.
- `--max-connection-idle`: a connection with no RPC for this long is closed with GOAWAY
  (clients reconnect transparently on their next call).
- `--max-connection-age` (off by default): connections are closed after this long, after a
  grace of `--max-connection-age-grace` for RPCs in flight, so clients re-resolve and spread
  over new replicas.
"""

from __future__ import annotations

from typing import Any

from cugar_metrics.config import Config


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def connection_options(config: Config) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(config.keepalive_min_ping_interval)),
        ("grpc.http2.max_ping_strikes", config.keepalive_max_ping_strikes),
        ("grpc.keepalive_permit_without_calls", int(config.keepalive_permit_without_calls)),
    ]
    if config.max_connection_idle:
        options.append(("grpc.max_connection_idle_ms", _ms(config.max_connection_idle)))
    if config.max_connection_age is not None:
        options.append(("grpc.max_connection_age_ms", _ms(config.max_connection_age)))
        options.append(("grpc.max_connection_age_grace_ms", _ms(config.max_connection_age_grace)))
    return options


__all__ = ["connection_options"]
