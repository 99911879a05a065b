"""BatchRecorder: flushes by size, by time and on close; never blocks; counts every drop."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from cugar_metrics_client import BatchRecorder, Client, Execution, RecorderStats


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def executions(count: int, profile: str = "batch_p") -> list[Execution]:
    return [Execution(profile, "success", 0.25, steps=1) for _ in range(count)]


def dashboard_total(target: str, profile: str = "batch_p") -> int:
    with Client(target) as client:
        return int(client.get_dashboard(profile=profile).executions.total)


def test_flushes_full_batches_without_waiting_for_the_interval(server: Any) -> None:
    """25 executions with max_batch 10: two batches go at once, 5 wait for the interval."""
    recorder = BatchRecorder(server.target, max_batch=10, flush_interval=60.0)
    try:
        for execution in executions(25):
            assert recorder.record(execution) is True
        wait_for(lambda: recorder.stats().accepted == 20)
        stats = recorder.stats()
        assert (stats.batches_sent, stats.buffered, stats.recorded) == (2, 5, 25)
        assert dashboard_total(server.target) == 20
    finally:
        recorder.close()
    stats = recorder.stats()
    assert (stats.accepted, stats.batches_sent, stats.buffered, stats.dropped) == (25, 3, 0, 0)
    assert dashboard_total(server.target) == 25


def test_flushes_a_partial_batch_every_interval(server: Any) -> None:
    """Three executions, far from max_batch, are sent within the flush interval."""
    with BatchRecorder(server.target, max_batch=500, flush_interval=0.2) as recorder:
        for execution in executions(3):
            recorder.record(execution)
        wait_for(lambda: recorder.stats().accepted == 3, timeout=5.0)
        assert recorder.stats().batches_sent == 1
        assert dashboard_total(server.target) == 3


def test_close_sends_what_is_buffered(server: Any) -> None:
    """close() flushes: nothing recorded before it is lost."""
    recorder = BatchRecorder(server.target, max_batch=500, flush_interval=60.0)
    for execution in executions(7):
        recorder.record(execution)
    assert recorder.stats().accepted == 0
    recorder.close()
    stats = recorder.stats()
    assert (stats.recorded, stats.accepted, stats.batches_sent, stats.dropped) == (7, 7, 1, 0)
    assert dashboard_total(server.target) == 7
    assert recorder.record(Execution("batch_p", "success", 1.0)) is False
    assert recorder.stats().dropped_closed == 1


def test_flush_waits_for_the_answers(server: Any) -> None:
    """flush() returns once the server answered for everything recorded before it."""
    with BatchRecorder(server.target, max_batch=100, flush_interval=60.0) as recorder:
        for execution in executions(250):
            recorder.record(execution)
        assert recorder.flush(timeout=10.0) is True
        stats = recorder.stats()
        assert (stats.accepted, stats.buffered, stats.in_flight) == (250, 0, 0)
        assert stats.batches_sent == 3


def test_invalid_executions_are_counted_as_rejected(server: Any) -> None:
    """Server-side rejections and locally unconvertible items are counted, never raised."""
    with BatchRecorder(server.target, flush_interval=60.0) as recorder:
        recorder.record(Execution("batch_p", "success", 1.0))
        recorder.record(Execution("", "success", 1.0))  # the server rejects it
        recorder.record(Execution("batch_p", "success", math.nan))  # not a Duration
        recorder.record(Execution("batch_p", "finished", 1.0))  # not an outcome
        recorder.flush(timeout=10.0)
        stats = recorder.stats()
    assert (stats.recorded, stats.accepted, stats.rejected, stats.dropped) == (4, 1, 3, 0)
    with Client(server.target) as client:
        assert client.get_dashboard().ingest.rejected == 1


def test_duplicates_are_counted(server: Any) -> None:
    """Re-recording an execution is acknowledged as a duplicate and counted once."""
    execution = Execution("batch_p", "success", 1.0)
    with BatchRecorder(server.target, flush_interval=60.0) as recorder:
        recorder.record(execution)
        recorder.flush(timeout=10.0)
        recorder.record(execution)
        recorder.flush(timeout=10.0)
        stats = recorder.stats()
    assert (stats.accepted, stats.duplicate) == (1, 1)
    assert dashboard_total(server.target) == 1


def test_run_and_track_record_through_the_buffer(server: Any) -> None:
    """run() and track() buffer their executions; failures carry the exception's name."""

    class BudgetExhausted(Exception):
        pass

    with BatchRecorder(server.target, flush_interval=60.0) as recorder:
        with pytest.raises(BudgetExhausted), recorder.run("batch_p") as run:
            run.set_budget(spent=10.0, limit=10.0, exceeded=True)
            raise BudgetExhausted

        @recorder.track("batch_p")
        def qualify(score: int) -> bool:
            return score > 50

        assert qualify(70) is True
        recorder.flush(timeout=10.0)
    with Client(server.target) as client:
        dashboard = client.get_dashboard(profile="batch_p")
    assert (dashboard.executions.total, dashboard.executions.failed) == (2, 1)
    assert [(e.error_type, e.count) for e in dashboard.error_types] == [("BudgetExhausted", 1)]
    assert dashboard.budget.exceeded_count == 1


def test_unreachable_server_never_blocks_or_raises_and_drops_are_counted(
    unreachable_target: str, caplog: Any
) -> None:
    """With nobody listening, record() returns at once; every lost execution is counted."""
    caplog.set_level(logging.WARNING, logger="cugar_metrics_client")
    recorder = BatchRecorder(
        unreachable_target, max_batch=50, max_buffer=100, flush_interval=0.1, timeout=1.0
    )
    answers = []
    slowest = 0.0
    started = time.perf_counter()
    for execution in executions(1000):
        before = time.perf_counter()
        answers.append(recorder.record(execution))
        slowest = max(slowest, time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    refused = answers.count(False)
    stats = recorder.stats()
    assert stats.dropped_full == refused
    assert stats.recorded == 1000 - refused
    assert refused >= 1000 - 100 - 2 * 50  # the buffer plus at most two batches in flight
    assert elapsed < 0.5, f"1000 record() calls took {elapsed:.3f}s"
    assert slowest < 0.1, f"one record() call took {slowest * 1e3:.1f} ms"

    close_started = time.perf_counter()
    recorder.close(timeout=5.0)
    assert time.perf_counter() - close_started < 8.0
    final: RecorderStats = recorder.stats()
    assert (final.accepted, final.duplicate, final.rejected, final.buffered) == (0, 0, 0, 0)
    assert final.in_flight == 0
    assert final.dropped_failed == final.recorded
    assert final.dropped == 1000
    assert final.batches_sent == 0
    drop_logs = [r for r in caplog.records if "executions dropped" in r.getMessage()]
    assert 1 <= len(drop_logs) <= 60  # at most one per flush interval, not one per drop


def test_rejects_bad_settings() -> None:
    """Impossible settings fail at construction, naming the setting."""
    with pytest.raises(ValueError, match=r"max_batch must be 1\.\.1000"):
        BatchRecorder("127.0.0.1:0", max_batch=1001)
    with pytest.raises(ValueError, match="max_buffer"):
        BatchRecorder("127.0.0.1:0", max_batch=500, max_buffer=10)
