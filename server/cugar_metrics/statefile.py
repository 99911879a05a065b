"""The state file: restore at start-up, checkpoint at an interval and on drain.

File I/O only; the bytes come from `aggregator.persist`. A checkpoint is written with
`files.write_atomically` (a new temporary file under a random name, fsynced, renamed over the
file, the directory fsynced), so the file is always either the previous checkpoint or the new
one, never a mix. Before that, the checkpoint is decoded and re-encoded, and must give the same
bytes: one that would not restore is not written (the failure is logged and counted in
`cugar_state_checkpoints_total{result="failure"}`) and the previous file stays. A file that cannot
be restored (damaged, truncated, another format version or bucket layout) is renamed to
`<file>.corrupt-<UTC time>` with one log line, and the server starts fresh: never a crash loop.
A file whose series sections are damaged but whose frame, header and dedup ids are sound is
restored in part: each bad section is restored empty, logged (one WARNING naming it and why)
and counted in `cugar_state_restore_problems_total{section}`; everything else is kept, and a
copy of the file as it was is kept as `<file>.partial-<UTC time>` for inspection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cugar_metrics.aggregator import Aggregator
from cugar_metrics.aggregator.core import SavedState
from cugar_metrics.aggregator.persist import (
    PARTS,
    StateFormatError,
    decode,
    decode_partial,
    encode,
)
from cugar_metrics.files import write_atomically

log = logging.getLogger("cugar_metrics.state")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aside_name(path: Path, now: float, kind: str) -> Path:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.{kind}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{kind}-{stamp}-{n}")
    return target


def move_aside(path: Path, now: float) -> Path:
    """Renames a file that cannot be restored to `<file>.corrupt-<UTC time>`; returns it."""
    target = _aside_name(path, now, "corrupt")
    os.replace(path, target)
    return target


def keep_partial(path: Path, data: bytes, now: float) -> Path:
    """Writes a copy of a file restored only in part to `<file>.partial-<UTC time>`; returns
    it. A copy, not a rename: the file stays where it is until the next checkpoint replaces
    it, so a crash before that restores the same again."""
    target = _aside_name(path, now, "partial")
    write_atomically(target, data)
    return target


#: A series section that could not be restored, and why.
Problem = tuple[str, str]


def _read_regular(path: Path) -> bytes:
    """The bytes of `path`, refusing (OSError) anything but a regular file without blocking:
    a FIFO opened for reading would wait for a writer forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def load(path: Path, now: float) -> SavedState | None:
    """The saved state in `path`, or None (no file, or one that was moved aside)."""
    return load_partial(path, now)[0]


def load_partial(path: Path, now: float) -> tuple[SavedState | None, list[Problem]]:
    """The saved state in `path` (None: no file, or one that was moved aside), and the series
    sections restored empty because they could not be restored (each logged as a WARNING)."""
    try:
        data = _read_regular(path)
    except FileNotFoundError:
        log.info("no state file at %s: starting fresh", path)
        return None, []
    except OSError as e:
        if e.errno == errno.EINVAL:  # not a regular file: left where it is, never moved
            log.error("state file %s is not a regular file: starting fresh", path)
            return None, []
        problem = f"cannot be read ({e.strerror})"
    else:
        try:
            state, problems = decode_partial(data)
        except StateFormatError as e:
            problem = f"cannot be restored ({e})"
        else:
            if problems:
                _report_partial(path, data, now, problems)
            return state, problems
    try:
        aside = move_aside(path, now)
    except OSError as e:
        log.error(
            "state file %s %s and cannot be moved aside (%s): starting fresh; the next"
            " checkpoint replaces it",
            path,
            problem,
            e.strerror,
        )
        return None, []
    log.error("state file %s %s: moved it to %s and starting fresh", path, problem, aside)
    return None, []


def _report_partial(path: Path, data: bytes, now: float, problems: list[Problem]) -> None:
    for section, reason in problems:
        log.warning(
            "state file %s: section %s cannot be restored (%s): it starts empty, the rest of"
            " the state is restored",
            path,
            section,
            reason,
        )
    try:
        copy = keep_partial(path, data, now)
    except OSError as e:
        log.error("state file %s was restored in part; no copy of it could be kept (%s)", path, e)
        return
    log.warning("state file %s was restored in part: a copy of it is kept at %s", path, copy)


def restore(
    aggregator: Aggregator, path: Path, now: float
) -> tuple[SavedState | None, list[Problem]]:
    """Restores `aggregator` from `path` if it holds a usable state; logs what it restored.
    Returns the state and the series sections that were restored empty (see load_partial)."""
    state, problems = load_partial(path, now)
    if state is None:
        return None, problems
    aggregator.restore(state, now)
    s = state.snapshot
    log.info(
        "restored state from %s (saved %s): executions=%d (accepted=%d duplicate=%d"
        " rejected=%d), dedup entries=%d; since-start window from %s; recent windows start now",
        path,
        _iso(state.saved_at),
        sum(s.executions.values()),
        s.ingest["accepted"],
        s.ingest["duplicate"],
        s.ingest["rejected"],
        s.dedup_entries,
        _iso(state.start_time),
    )
    return state, problems


class RoundTripError(ValueError):
    """A checkpoint's bytes do not decode to the state they were made from."""


def verify_round_trip(data: bytes, encoder: Callable[[SavedState], bytes] = encode) -> None:
    """Decodes `data` and encodes the result again, which must give the same bytes: a
    checkpoint that would not restore, or not to the same state, never replaces the previous
    one. Raises RoundTripError."""
    try:
        back = decode(data)
    except StateFormatError as e:
        raise RoundTripError(f"the new checkpoint would not restore: {e}") from None
    if encoder(back) != data:
        raise RoundTripError("the new checkpoint does not decode to the state it was made from")


@dataclass
class CheckpointStats:
    successes: int = 0
    failures: int = 0
    #: When the last successful checkpoint's state was taken (or the restored one's).
    last_success: float | None = None
    last_bytes: int = 0
    #: Series sections restored empty at start-up because they could not be restored.
    restore_problems: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))


class Checkpointer:
    """Saves the aggregator's state to the state file every `interval` and on close."""

    def __init__(
        self,
        aggregator: Aggregator,
        path: Path,
        interval: float,
        clock: Callable[[], float] = time.time,
        restored: SavedState | None = None,
        encoder: Callable[[SavedState], bytes] = encode,
        restore_problems: Sequence[Problem] = (),
    ) -> None:
        self.aggregator = aggregator
        #: What the server keeps outside the aggregator and saves with it: the values each
        #: agent introduced (labels.LabelPolicy.export); set once the policy exists.
        self.agent_values: Callable[[], Mapping[str, Mapping[str, frozenset[str]]]] | None = None
        self.encoder = encoder
        self.path = path
        self.interval = interval
        self.clock = clock
        self.stats = CheckpointStats(last_success=restored.saved_at if restored else None)
        for section, _ in restore_problems:
            self.stats.restore_problems[section] += 1
        self._lock = threading.Lock()  # one writer at a time: periodic and final
        self._task: asyncio.Task[None] | None = None

    def checkpoint(self) -> bool:
        """Writes one checkpoint (blocking); True on success. A failure is logged and counted."""
        with self._lock:
            t0 = time.monotonic()
            state = self.aggregator.export_state(self.clock())
            if self.agent_values is not None:
                state = dataclasses.replace(state, agent_values=self.agent_values())
            try:
                data = self.encoder(state)
                verify_round_trip(data, self.encoder)
                write_atomically(self.path, data)
            except (OSError, ValueError) as e:
                self.stats.failures += 1
                log.error("checkpoint to %s failed, the previous one is kept: %s", self.path, e)
                return False
            self.stats.successes += 1
            self.stats.last_success = state.saved_at
            self.stats.last_bytes = len(data)
            log.debug(
                "checkpoint to %s: %d bytes in %.3fs, accepted=%d, saved_at=%.6f",
                self.path,
                len(data),
                time.monotonic() - t0,
                state.snapshot.ingest["accepted"],
                state.saved_at,
            )
            return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.to_thread(self.checkpoint)

    def start(self) -> None:
        """Starts the periodic checkpoints on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="state-checkpoint")

    async def close(self) -> bool:
        """Stops the periodic checkpoints and writes the final one (after the drain)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        ok = await asyncio.to_thread(self.checkpoint)
        if ok:
            ingest = self.aggregator.snapshot(self.clock()).ingest
            log.info(
                "state saved to %s (%d bytes): accepted=%d duplicate=%d rejected=%d",
                self.path,
                self.stats.last_bytes,
                ingest["accepted"],
                ingest["duplicate"],
                ingest["rejected"],
            )
        else:
            log.error(
                "final checkpoint to %s failed: this run's last records are not saved", self.path
            )
        return ok


class CheckpointCollector(Collector):
    """Exports the checkpoint counters of this process."""

    def __init__(self, checkpointer: Checkpointer) -> None:
        self._checkpointer = checkpointer

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._checkpointer.stats
        total = CounterMetricFamily(
            "cugar_state_checkpoints_total",
            "State file checkpoints written by this process, by result.",
            labels=["result"],
        )
        total.add_metric(["success"], stats.successes)
        total.add_metric(["failure"], stats.failures)
        yield total
        problems = CounterMetricFamily(
            "cugar_state_restore_problems_total",
            "Sections of the state file restored empty at start-up because they could not be"
            " restored, by section.",
            labels=["section"],
        )
        for section, n in stats.restore_problems.items():
            problems.add_metric([section], n)
        yield problems
        if stats.last_success is not None:
            yield GaugeMetricFamily(
                "cugar_state_last_checkpoint_timestamp_seconds",
                "When the state in the state file was taken (absent: never saved).",
                value=stats.last_success,
            )


__all__ = [
    "CheckpointCollector",
    "Checkpointer",
    "Problem",
    "RoundTripError",
    "keep_partial",
    "load",
    "load_partial",
    "move_aside",
    "restore",
    "verify_round_trip",
    "write_atomically",
]
