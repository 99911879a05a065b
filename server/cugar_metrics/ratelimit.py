"""Token buckets for per-key rate limits. Pure: every method takes `now` from its caller.

A limit is written `RATE[/UNIT][:BURST]`: `200/s`, `600/m:50`, `5` (per second). RATE is
how many tokens a key may spend per UNIT (`s`, `m` or `h`; default `s`) on average; BURST is
how many it may spend at once after being idle (default: one second's worth, at least 1).
A call costs one token, a RecordExecutions batch one per execution.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_SYNTAX = re.compile(r"^(\d+(?:\.\d+)?)(?:/([smh]))?(?::(\d+))?$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`rate` tokens per second on average, at most `burst` at once."""

    rate: float
    burst: int
    text: str = ""

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate {self.rate!r} must be a positive number")
        if self.burst < 1:
            raise ValueError(f"burst {self.burst!r} must be at least 1")

    def __str__(self) -> str:
        return self.text or f"{self.rate:g}/s:{self.burst}"


def parse_rate(text: str) -> RateLimit:
    """'200/s', '600/m:50', '5' -> RateLimit; ValueError explains the syntax."""
    m = _SYNTAX.fullmatch(text.strip())
    if m is None:
        raise ValueError(
            f"{text!r} is not a rate limit; use RATE[/s|/m|/h][:BURST], e.g. 200/s:400"
        )
    number, unit, burst = m.groups()
    rate = float(number) / _UNITS[unit or "s"]
    if rate <= 0:
        raise ValueError(f"{text!r}: the rate must be more than 0")
    if burst is not None and int(burst) < 1:
        raise ValueError(f"{text!r}: the burst must be at least 1")
    return RateLimit(
        rate=rate,
        burst=int(burst) if burst is not None else max(1, math.ceil(rate)),
        text=text.strip(),
    )


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second."""

    __slots__ = ("_last", "_tokens", "limit")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self._tokens = float(limit.burst)
        self._last = now

    def take(self, now: float, n: float = 1.0) -> float:
        """Takes `n` tokens and returns 0.0, or takes none and returns the seconds until
        they can be taken. More than the burst at once (a large batch) needs a full bucket
        and leaves it in debt, so the average stays at `rate` whatever the batch size."""
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)
        self._tokens = min(float(self.limit.burst), self._tokens + elapsed * self.limit.rate)
        need = min(n, float(self.limit.burst))
        if self._tokens >= need:
            self._tokens -= n
            return 0.0
        return (need - self._tokens) / self.limit.rate


class KeyedLimiter:
    """One bucket per key; a key whose limit changes gets a fresh bucket. The number of
    buckets is bounded by the caller's set of keys (see `retain`)."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, limit: RateLimit, now: float, n: float = 1.0) -> float:
        """0.0 if `key` may spend `n` tokens now (and they are taken), else the seconds
        until it may."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[key] = TokenBucket(limit, now)
        return bucket.take(now, n)

    def retain(self, keys: Iterable[str]) -> None:
        """Forgets the buckets of keys not in `keys` (e.g. removed from the keys file)."""
        keep = set(keys)
        for key in [k for k in self._buckets if k not in keep]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["KeyedLimiter", "RateLimit", "TokenBucket", "parse_rate"]
