"""Honouring ``google.rpc.RetryInfo``: when the server answers RESOURCE_EXHAUSTED with a
retry delay (a rate limit), wait that long and try again, a bounded number of times.

Safe for every method: the Record RPCs are idempotent by ``execution_id`` and GetDashboard
only reads.
"""

from __future__ import annotations

import grpc

from ._errors import code_of, status_details
from ._spec import RATE_LIMIT_RETRIES, RETRY_INFO_CAP

#: The longest wait honoured by default; a server asking for more is waited for this long.
MAX_RETRY_DELAY = RETRY_INFO_CAP

__all__ = ["MAX_RETRY_DELAY", "RATE_LIMIT_RETRIES", "check_cap", "check_retries"]


def retry_delay(error: grpc.RpcError, cap: float = RETRY_INFO_CAP) -> float | None:
    """The RetryInfo delay (at most ``cap``) of a RESOURCE_EXHAUSTED ``error``; None for
    other errors."""
    if code_of(error) != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    delay = status_details(error).retry_delay
    return None if delay is None else min(delay, cap)


def wait_before_retry(
    error: grpc.RpcError,
    retries_done: int,
    retries: int,
    remaining: float,
    cap: float = RETRY_INFO_CAP,
) -> float | None:
    """Seconds to wait before retrying the call that failed with ``error``, or None to give up.

    Gives up unless ``error`` carries a RetryInfo, fewer than ``retries`` retries were made,
    and the wait ends before the call's deadline (``remaining`` seconds away).
    """
    if retries_done >= retries:
        return None
    delay = retry_delay(error, cap)
    if delay is None or delay >= remaining:
        return None
    return delay


def check_retries(retries: int) -> int:
    if retries < 0:
        raise ValueError(f"rate_limit_retries must be at least 0, not {retries}")
    return retries


def check_cap(cap: float) -> float:
    if not cap >= 0:
        raise ValueError(f"retry_info_cap must be at least 0 seconds, not {cap}")
    return float(cap)
