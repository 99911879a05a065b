"""The client's defaults, one per entry of ``clients/spec.yaml`` (shared by the four clients).

``clients/python/tests/test_spec.py`` reads that file and fails when a value here, or a
default the client actually uses, differs from it: change a default there and here together.
"""

from __future__ import annotations

from typing import Final

# call: one direct RPC.
CALL_DEADLINE: Final = 10.0
"""Seconds one call may take, retries included (``Client(timeout=...)``)."""
ATTEMPT_DEADLINE: Final = 5.0
"""Seconds one attempt may take: each RecordExecutions call of the recorder."""
MAX_ATTEMPTS: Final = 5
"""Attempts in all, the first one included, while the server answers UNAVAILABLE."""
INITIAL_BACKOFF: Final = 0.1
MAX_BACKOFF: Final = 2.0
BACKOFF_MULTIPLIER: Final = 2.0
RETRYABLE_CODES: Final = ("UNAVAILABLE",)

# connection: the channel.
INITIAL_RECONNECT_BACKOFF: Final = 0.1
MAX_RECONNECT_BACKOFF: Final = 5.0
LOAD_BALANCING_POLICY: Final = "round_robin"

# rate_limit: google.rpc.RetryInfo.
RETRY_INFO_CAP: Final = 30.0
"""The longest RetryInfo delay waited for; a server asking for more is waited for this long."""
RATE_LIMIT_RETRIES: Final = 3
"""Rate-limited retries of a direct call, after its first attempt."""

# recorder: BatchRecorder.
BUFFER_SIZE: Final = 10_000
BATCH_SIZE: Final = 500
FLUSH_INTERVAL: Final = 1.0
CLOSE_TIMEOUT: Final = 10.0
RECORDER_RETRY_INITIAL_BACKOFF: Final = 0.2
RECORDER_RETRY_MAX_BACKOFF: Final = 2.0
RECORDER_RETRY_BACKOFF_MULTIPLIER: Final = 2.0
RECORDER_RETRYABLE_CODES: Final = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")

# watch: WatchDashboard streams.
WATCH_INTERVAL: Final = 5.0
WATCH_RECONNECT_CODES: Final = ("UNAVAILABLE",)
WATCH_RECONNECT_INITIAL_BACKOFF: Final = 0.2
WATCH_RECONNECT_MAX_BACKOFF: Final = 5.0
WATCH_RECONNECT_BACKOFF_MULTIPLIER: Final = 2.0


def watch_backoff(failures: int) -> float:
    """Seconds to wait before reopening a watch that has failed ``failures`` times in a row
    (0 after a stream that delivered something)."""
    return min(
        WATCH_RECONNECT_INITIAL_BACKOFF * WATCH_RECONNECT_BACKOFF_MULTIPLIER**failures,
        WATCH_RECONNECT_MAX_BACKOFF,
    )


def seconds_text(seconds: float) -> str:
    """A duration as the gRPC service config writes it: ``0.1s``, ``2s``."""
    return f"{seconds:g}s"
