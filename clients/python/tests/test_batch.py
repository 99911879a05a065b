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


def test_record_never_waits_for_a_server_that_never_answers(
    silent_target: str, caplog: Any
) -> None:
    """With a server that accepts connections and never answers, 1000 record() calls all
    return while no call has been answered: record() does not wait for the network. The
    recorder holds at most max_buffer (the rest are dropped and counted), and close() reports
    every one of the 1000 as dropped."""
    caplog.set_level(logging.INFO, logger="cugar_metrics_client")
    recorder = BatchRecorder(
        silent_target, max_batch=50, max_buffer=100, flush_interval=0.1, timeout=60.0
    )
    answers = [recorder.record(execution) for execution in executions(1000)]
    stats = recorder.stats()
    # No call was answered (each may wait 60 s), yet every record() returned.
    assert (stats.batches_sent, stats.batches_failed, stats.batches_retried) == (0, 0, 0)
    assert (stats.accepted, stats.dropped_failed) == (0, 0)
    assert stats.recorded == 1000
    assert stats.buffered + stats.in_flight == 100  # held: at most max_buffer
    assert stats.dropped_full == 900
    # The new execution is refused only while every held one is in flight.
    assert answers.count(False) <= stats.dropped_full

    assert recorder.close(timeout=0.5) == 1000
    final: RecorderStats = recorder.stats()
    assert (final.accepted, final.duplicate, final.rejected, final.buffered) == (0, 0, 0, 0)
    assert final.in_flight == 0
    assert (final.dropped_full, final.dropped_failed, final.dropped) == (900, 100, 1000)
    closing = [r for r in caplog.records if "recorder closed" in r.getMessage()]
    assert len(closing) == 1
    assert closing[0].levelno == logging.WARNING
    assert closing[0].cugar_dropped_total == 1000  # type: ignore[attr-defined]
    assert "1000 executions dropped in all (buffer full 900, undelivered 100" in (
        closing[0].getMessage()
    )


def test_rejects_bad_settings() -> None:
    """Impossible settings fail at construction, naming the setting."""
    with pytest.raises(ValueError, match=r"max_batch must be 1\.\.1000"):
        BatchRecorder("127.0.0.1:0", max_batch=1001)
    with pytest.raises(ValueError, match="max_buffer"):
        BatchRecorder("127.0.0.1:0", max_batch=500, max_buffer=10)
