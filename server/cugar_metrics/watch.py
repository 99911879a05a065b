"""WatchDashboard's shared ticks: watchers with the same request and interval share one feed,
which computes one dashboard per tick for all of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from cugar.metrics.v1 import metrics_service_pb2 as pb

log = logging.getLogger(__name__)

Compute = Callable[[pb.GetDashboardRequest, float | None], Awaitable[pb.GetDashboardResponse]]


@dataclass
class _Feed:
    request: pb.GetDashboardRequest
    seconds: float | None
    interval: float
    watchers: int = 0
    tick: int = 0
    latest: pb.GetDashboardResponse | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class WatchHub:
    """The open WatchDashboard streams: their caps, their feeds, and the drain."""

    def __init__(
        self,
        max_watchers: int = 100,
        max_per_key: int = 20,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.max_watchers = max_watchers
        self.max_per_key = max_per_key
        self._feeds: dict[tuple[bytes, float], _Feed] = {}
        self._by_caller: dict[str, int] = {}
        self._total = 0
        self._draining = False
        #: dashboards computed for watchers, over all feeds
        self.computations = 0
        self._gauge: Gauge | None = None
        self._counter: Counter | None = None
        if registry is not None:
            self._gauge = Gauge(
                "cugar_dashboard_watchers",
                "Open WatchDashboard streams.",
                registry=registry,
            )
            self._counter = Counter(
                "cugar_dashboard_watch_computations",
                "Dashboards computed for WatchDashboard streams: one per tick per distinct "
                "request and interval, however many watch it.",
                registry=registry,
            )

    def admit(self, caller: str) -> str | None:
        """Takes a place for `caller`; returns why not when a cap or the drain refuses it."""
        if self._draining:
            return "draining, reconnect"
        if self._total >= self.max_watchers:
            return (
                f"too many dashboard watchers: {self._total} open, at most "
                f"{self.max_watchers} (--max-watchers)"
            )
        held = self._by_caller.get(caller, 0)
        if held >= self.max_per_key:
            return (
                f"too many dashboard watchers for this key: {held} open, at most "
                f"{self.max_per_key} (--max-watchers-per-key)"
            )
        self._by_caller[caller] = held + 1
        self._total += 1
        if self._gauge is not None:
            self._gauge.set(self._total)
        return None

    def leave(self, caller: str) -> None:
        held = self._by_caller.get(caller, 0) - 1
        if held > 0:
            self._by_caller[caller] = held
        else:
            self._by_caller.pop(caller, None)
        self._total -= 1
        if self._gauge is not None:
            self._gauge.set(self._total)

    def drain(self) -> None:
        """Every stream ends (its caller answers UNAVAILABLE) and new ones are refused."""
        self._draining = True
        for feed in self._feeds.values():
            feed.changed.set()

    async def _run(self, feed: _Feed, compute: Compute) -> None:
        while True:
            try:
                response = await compute(feed.request, feed.seconds)
            except Exception:  # a failed tick is logged; the next one tries again
                log.exception("dashboard for watchers failed")
            else:
                self.computations += 1
                if self._counter is not None:
                    self._counter.inc()
                feed.latest = response
                feed.tick += 1
                changed, feed.changed = feed.changed, asyncio.Event()
                changed.set()
            await asyncio.sleep(feed.interval)

    async def follow(
        self,
        request: pb.GetDashboardRequest,
        seconds: float | None,
        interval: float,
        compute: Compute,
    ) -> AsyncIterator[pb.GetDashboardResponse]:
        """The dashboards of `request`, one per tick (the latest at once when the feed is
        already running), until the drain."""
        key = (request.SerializeToString(deterministic=True), interval)
        feed = self._feeds.get(key)
        if feed is None:
            feed = _Feed(request, seconds, interval)
            self._feeds[key] = feed
            feed.task = asyncio.create_task(self._run(feed, compute))
        feed.watchers += 1
        seen = 0
        try:
            while not self._draining:
                if feed.tick > seen and feed.latest is not None:
                    seen = feed.tick
                    yield feed.latest
                    continue
                await feed.changed.wait()
        finally:
            feed.watchers -= 1
            if feed.watchers == 0:
                if feed.task is not None:
                    feed.task.cancel()
                del self._feeds[key]


__all__ = ["WatchHub"]
