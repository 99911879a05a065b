"""Honouring ``google.rpc.RetryInfo``: when the server answers RESOURCE_EXHAUSTED with a
retry delay (a rate limit), wait that long and try again, a bounded number of times.

Safe for every method: the Record RPCs are idempotent by ``execution_id`` and GetDashboard
only reads.
"""

from __future__ import annotations

from typing import Final

import grpc

from ._errors import code_of, status_details

#: Rate-limited retries per call, after the first attempt, unless the client says otherwise.
RATE_LIMIT_RETRIES: Final = 3
#: The longest wait honoured; a server asking for more is waited for this long.
MAX_RETRY_DELAY: Final = 30.0


def retry_delay(error: grpc.RpcError) -> float | None:
    """The capped RetryInfo delay of a RESOURCE_EXHAUSTED ``error``; None for other errors."""
    if code_of(error) != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    delay = status_details(error).retry_delay
    return None if delay is None else min(delay, MAX_RETRY_DELAY)


def wait_before_retry(
    error: grpc.RpcError, retries_done: int, retries: int, remaining: float
) -> float | None:
    """Seconds to wait before retrying the call that failed with ``error``, or None to give up.

    Gives up unless ``error`` carries a RetryInfo, fewer than ``retries`` retries were made,
    and the wait ends before the call's deadline (``remaining`` seconds away).
    """
    if retries_done >= retries:
        return None
    delay = retry_delay(error)
    if delay is None or delay >= remaining:
        return None
    return delay


def check_retries(retries: int) -> int:
    if retries < 0:
        raise ValueError(f"rate_limit_retries must be at least 0, not {retries}")
    return retries
