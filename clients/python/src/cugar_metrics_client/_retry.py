"""The retries of a direct call: on UNAVAILABLE with backoff, each attempt with its own
deadline; and honouring ``google.rpc.RetryInfo``: when the server answers RESOURCE_EXHAUSTED
with a retry delay (a rate limit), wait that long and try again, a bounded number of times.

Safe for every method: the Record RPCs are idempotent by ``execution_id`` and GetDashboard
only reads.
"""

from __future__ import annotations

import random
import time

import grpc

from ._errors import code_of, status_details
from ._spec import (
    BACKOFF_MULTIPLIER,
    INITIAL_BACKOFF,
    MAX_BACKOFF,
    RATE_LIMIT_RETRIES,
    RETRY_INFO_CAP,
    RETRYABLE_CODES,
)

#: The longest wait honoured by default; a server asking for more is waited for this long.
MAX_RETRY_DELAY = RETRY_INFO_CAP

__all__ = [
    "MAX_RETRY_DELAY",
    "RATE_LIMIT_RETRIES",
    "CallAttempts",
    "check_attempt_timeout",
    "check_attempts",
    "check_cap",
    "check_retries",
]


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


def unavailable_backoff(retry: int) -> float:
    """The longest wait before the ``retry``-th retry (from 1) of a call answered UNAVAILABLE:
    the spec's initial backoff times the multiplier per retry, at most the maximum."""
    return float(min(INITIAL_BACKOFF * BACKOFF_MULTIPLIER ** (retry - 1), MAX_BACKOFF))


class CallAttempts:
    """The attempts of one direct call (``clients/spec.yaml``, ``call`` and ``rate_limit``).

    The call has one deadline for everything. Each attempt gets at most ``attempt_timeout``
    of what is left (the last one gets the rest). An attempt answered with a retryable code
    (UNAVAILABLE) is tried again, up to ``max_attempts`` in all, after a random wait of up to
    ``unavailable_backoff(n)``; a RESOURCE_EXHAUSTED with RetryInfo after the server's delay
    (at most ``cap``), up to ``rate_limit_retries`` times. A wait that would not end before
    the deadline is not started: the error is raised at once.
    """

    def __init__(
        self,
        timeout: float,
        *,
        attempt_timeout: float | None,
        max_attempts: int,
        rate_limit_retries: int,
        cap: float,
    ) -> None:
        self.deadline = time.monotonic() + timeout
        self._attempt_timeout = attempt_timeout
        self._max_attempts = max_attempts
        self._rate_limit_retries = rate_limit_retries
        self._cap = cap
        self._attempts = 1
        self._rate_limited = 0

    def timeout(self) -> float:
        """The deadline of the next attempt, in seconds from now."""
        remaining = max(0.0, self.deadline - time.monotonic())
        if self._attempt_timeout is None:
            return remaining
        return min(self._attempt_timeout, remaining)

    def wait(self, error: grpc.RpcError) -> float | None:
        """Seconds to wait before the next attempt after ``error``, or None to give up."""
        remaining = self.deadline - time.monotonic()
        if code_of(error).name in RETRYABLE_CODES:
            if self._attempts >= self._max_attempts:
                return None
            wait = random.uniform(0.0, unavailable_backoff(self._attempts))
            if wait >= remaining:
                return None
            self._attempts += 1
            return wait
        wait_or_none = wait_before_retry(
            error, self._rate_limited, self._rate_limit_retries, remaining, self._cap
        )
        if wait_or_none is not None:
            self._rate_limited += 1
        return wait_or_none


def check_attempts(max_attempts: int) -> int:
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    return max_attempts


def check_attempt_timeout(attempt_timeout: float | None) -> float | None:
    if attempt_timeout is not None and not attempt_timeout > 0:
        raise ValueError(f"attempt_timeout must be positive or None, not {attempt_timeout}")
    return attempt_timeout
