"""What the adapters share: counting their own failures instead of raising them."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("cugar_metrics_client.adapters")


class FailureCount:
    """How many framework events an adapter could not turn into metrics (logged, not raised)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def add(self, what: str) -> None:
        with self._lock:
            self._count += 1
        logger.warning("cugar-metrics adapter: could not record %s", what, exc_info=True)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count
