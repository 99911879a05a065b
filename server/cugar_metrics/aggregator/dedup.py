"""Bounded memory of recently recorded execution ids, for idempotent retries.

An id is remembered as a 64-bit BLAKE2b hash (a false "duplicate" needs a 64-bit collision
among the ids in the horizon: about 1 in 4 billion with 5 million ids). Ids arrive in the
*open generation*, a Python set; every `horizon / 10` it is sealed into a sorted numpy array
(8 bytes an id). A generation is forgotten once its newest id is older than the horizon, so an
id is remembered for at least the horizon. When more than `max_entries` ids are remembered,
the oldest generations are forgotten early and counted in `evicted` (the horizon shortens
under extreme load instead of memory growing).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

GENERATIONS = 10


def id_hash(execution_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(execution_id.encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True, slots=True)
class _Sealed:
    hashes: npt.NDArray[np.uint64]
    newest: float


@dataclass(frozen=True, slots=True)
class DedupState:
    """Everything a DedupIndex remembers, to save and restore it (see aggregator.persist)."""

    #: The open generation's hashes, sorted.
    open: npt.NDArray[np.uint64]
    open_since: float | None
    open_newest: float
    #: Sealed generations, oldest first: (sorted hashes, time of the newest id).
    sealed: tuple[tuple[npt.NDArray[np.uint64], float], ...]
    evicted: int


class DedupIndex:
    def __init__(self, horizon_seconds: float, max_entries: int) -> None:
        self.horizon = horizon_seconds
        self.max_entries = max_entries
        self._generation_seconds = horizon_seconds / GENERATIONS
        self._open: set[int] = set()
        self._open_since: float | None = None
        self._open_newest = 0.0
        self._sealed: deque[_Sealed] = deque()
        self._sealed_entries = 0
        #: The open generation is sealed early at this size, so it too stays bounded.
        self._open_limit = max(1, max_entries // GENERATIONS)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._open) + self._sealed_entries

    def check_and_add(self, hashes: list[int], now: float) -> list[bool]:
        """For each hash, True if it was seen within the horizon (or earlier in this call).

        New hashes are remembered. Call under the aggregator's lock.
        """
        self._rotate(now)
        seen = [h in self._open for h in hashes]
        if self._sealed and not all(seen):
            arr = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
            for gen in self._sealed:
                idx = np.searchsorted(gen.hashes, arr)
                idx[idx == len(gen.hashes)] = 0
                hits = gen.hashes[idx] == arr
                if hits.any():
                    seen = [s or bool(hit) for s, hit in zip(seen, hits, strict=True)]
        for i, h in enumerate(hashes):
            if not seen[i]:
                if h in self._open:  # the same id twice in one call: the later one is a duplicate
                    seen[i] = True
                else:
                    self._open.add(h)
        if self._open_since is None and self._open:
            self._open_since = now
        self._open_newest = now
        self._enforce_cap()
        return seen

    def _rotate(self, now: float) -> None:
        if self._open_since is not None and (
            now - self._open_since >= self._generation_seconds
            or len(self._open) >= self._open_limit
        ):
            sealed = np.fromiter(self._open, dtype=np.uint64, count=len(self._open))
            sealed.sort()
            self._sealed.append(_Sealed(sealed, self._open_newest))
            self._sealed_entries += len(sealed)
            self._open = set()
            self._open_since = None
        while self._sealed and now - self._sealed[0].newest > self.horizon:
            self._sealed_entries -= len(self._sealed.popleft().hashes)

    def _enforce_cap(self) -> None:
        while self._sealed and len(self) > self.max_entries:
            gone = self._sealed.popleft()
            self._sealed_entries -= len(gone.hashes)
            self.evicted += len(gone.hashes)

    def export(self) -> DedupState:
        """A copy of the remembered ids (sealed arrays are never modified, so shared)."""
        open_ = np.fromiter(self._open, dtype=np.uint64, count=len(self._open))
        open_.sort()
        return DedupState(
            open=open_,
            open_since=self._open_since,
            open_newest=self._open_newest,
            sealed=tuple((g.hashes, g.newest) for g in self._sealed),
            evicted=self.evicted,
        )

    def restore(self, state: DedupState, now: float) -> None:
        """Replaces what is remembered by `state`; generations past the horizon are dropped,
        and the entry cap of this index applies."""
        self._open = {int(h) for h in state.open}
        self._open_since = state.open_since if self._open else None
        self._open_newest = state.open_newest
        self._sealed = deque(
            _Sealed(np.array(hashes, dtype=np.uint64), newest) for hashes, newest in state.sealed
        )
        self._sealed_entries = sum(len(g.hashes) for g in self._sealed)
        self.evicted = state.evicted
        self._rotate(now)
        self._enforce_cap()
