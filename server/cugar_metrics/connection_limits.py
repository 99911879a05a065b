"""Connection limits of the gRPC server: gRPC core channel arguments from the configuration,
and the caps on open streams.

- `--max-concurrent-rpcs`: MetricsService calls in flight at once (counted by
  `interceptors.RequestGuard` after authentication); past it they are answered
  RESOURCE_EXHAUSTED at once instead of queueing without bound. Health checks are not
  counted, so a flood of other calls cannot make the probe fail.
- `--max-watch-streams`, `--max-reflection-streams` and `--max-streams-per-connection`
  (`StreamCaps`): health `Watch` and reflection streams are open to callers without a key,
  so each kind has its own cap in total and per connection; streams past it are refused
  with RESOURCE_EXHAUSTED.
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


class StreamCaps:
    """Open streams of one kind (health Watch, reflection), at most `total` at once and at
    most `per_connection` on one connection (a peer address: one TCP connection)."""

    def __init__(self, kind: str, total: int, per_connection: int) -> None:
        self.kind = kind
        self.total = total
        self.per_connection = per_connection
        self.open = 0
        self._by_peer: dict[str, int] = {}

    def acquire(self, peer: str) -> str | None:
        """Takes a slot for `peer` and returns None, or returns why there is none."""
        mine = self._by_peer.get(peer, 0)
        if mine >= self.per_connection:
            return (
                f"{mine} {self.kind} streams are open on this connection, the most allowed "
                f"(--max-streams-per-connection {self.per_connection})"
            )
        if self.open >= self.total:
            return f"{self.open} {self.kind} streams are open, the most allowed in total"
        self._by_peer[peer] = mine + 1
        self.open += 1
        return None

    def release(self, peer: str) -> None:
        mine = self._by_peer.get(peer, 0)
        if mine <= 1:
            self._by_peer.pop(peer, None)
        else:
            self._by_peer[peer] = mine - 1
        self.open = max(0, self.open - 1)

    def __len__(self) -> int:
        """Connections with at least one open stream of this kind."""
        return len(self._by_peer)


__all__ = ["StreamCaps", "connection_options"]
